"""`rdc import`: models trained elsewhere as reference runs of a sweep's experiment.

Every paper compares against compressai's pretrained zoo; the study's leaderboard argument asks
for those models measured on your device, beside your sweep. A reference run gets what a trained
variant's run gets (jobs.measure: real-bitstream evaluation on the given images, params, decode
and encode FLOPs, runtimes on this device, model.pt for `rdc profile` elsewhere), tagged
`reference` with its source. Its training-config id names the source, so it is never mistaken for
a sweep's own run of the same architecture, and analysis shows it apart unless asked to rank it
(`rdc frontier --with-references`).

Sources: a compressai zoo name with a quality (compressai downloads the weights: a machine with
internet), or a local checkpoint of one of the classes models.compat supports, saved as a state
dict (`torch.save(model.state_dict(), path)`) or as compressai's training script saves it
(`{"state_dict": ...}`), loaded with weights_only (a checkpoint never runs code).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from rdc import names
from rdc.arguments import ArgumentParser
from rdc.errors import UserError

# compressai's zoo models that models.compat converts, and the class each one is.
ZOO_CLASSES = {"bmshj2018-hyperprior": "ScaleHyperprior", "mbt2018-mean": "MeanScaleHyperprior"}
# compressai's MSE-trained qualities and the lambda each was trained at (compressai's zoo docs).
ZOO_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
REFERENCE_GROUP = "reference"  # the tag `group` of an imported run (it came from no YAML family)
PROFILE_CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "profile"


def parser() -> argparse.ArgumentParser:
    from sweep.tracking import DEFAULT_TRACKING_URI

    p = ArgumentParser(prog="rdc import", description="Put a model trained elsewhere into an experiment as a "
                       "reference run: evaluated on your images with real bitstreams, costed and timed on this device.")
    p.add_argument("--experiment", required=True, help="the MLflow experiment (a sweep's name) to add the run to")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--compressai", metavar="NAME", choices=sorted(ZOO_CLASSES),
                        help="a compressai zoo model (downloads its weights: needs internet)")
    source.add_argument("--checkpoint", metavar="FILE", help="a local checkpoint (state dict) of a compressai model")
    p.add_argument("--quality", type=int, choices=sorted(ZOO_LAMBDAS), help="with --compressai: the zoo quality")
    p.add_argument("--arch", choices=("ScaleHyperprior", "MeanScaleHyperprior", "Elic2022Official"),
                   help="with --checkpoint: the compressai class the checkpoint is of")
    p.add_argument("--lmbda", type=float, default=None,
                   help="the lambda the model was trained at (RD loss; default for --compressai: its quality's)")
    p.add_argument("--images", required=True, help="evaluation images (use the sweep's, e.g. Kodak)")
    p.add_argument("--name", default=None, help="the run's name (default: the source)")
    p.add_argument("--replace", action="store_true", help="replace an earlier import of the same source")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<index> (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads while timing (default 1)")
    p.add_argument("--tracking-uri", default=None,
                   help=f"MLflow store (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    source, lmbda = _source_and_lambda(args)
    uri = _store(args.tracking_uri)
    from jobs.data import load_images

    images = load_images(args.images, split="eval", key="--images")  # before any download or write
    module = _load(args)
    from models.compat import from_compressai, spec_of

    model = from_compressai(module)
    variant = reference_variant(spec_of(module))
    line = import_run(model, variant, source=source, lmbda=lmbda, uri=uri, experiment=args.experiment,
                      images=args.images, device=args.device, threads=args.threads, name=args.name,
                      replace=args.replace, image_count=len(images))
    print(line)
    return 0


def _source_and_lambda(args) -> tuple[str, float]:
    """The run's source tag (what it is and where it came from) and its lambda."""
    if args.compressai:
        if args.quality is None:
            raise UserError("--quality", None, reason="required with --compressai",
                            allowed=", ".join(map(str, ZOO_LAMBDAS)))
        if args.arch:
            raise UserError("--arch", args.arch, reason="only with --checkpoint (a zoo name says its class)")
        return f"compressai:{args.compressai}:q{args.quality}", args.lmbda or ZOO_LAMBDAS[args.quality]
    if args.quality is not None:
        raise UserError("--quality", args.quality, reason="only with --compressai")
    if not args.arch:
        raise UserError("--arch", None, reason="required with --checkpoint",
                        allowed="ScaleHyperprior, MeanScaleHyperprior, Elic2022Official")
    if args.lmbda is None or not args.lmbda > 0 or args.lmbda == float("inf"):
        raise UserError("--lmbda", args.lmbda, reason="required with --checkpoint: the lambda it was trained at",
                        allowed="a positive number, e.g. 0.013 (compressai's quality 4)")
    path = Path(args.checkpoint).expanduser()
    if not path.is_file():
        raise UserError("--checkpoint", args.checkpoint, reason="no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"file:{path.name}:{args.arch}:sha256={digest}", args.lmbda


def _store(uri: str | None) -> str:
    from rdc.stores import check_tracking_uri, given_or_default_uri

    uri = given_or_default_uri(uri)
    check_tracking_uri(uri, key="--tracking-uri", may_create=True)
    return uri


def _load(args):
    """The compressai module of the source; UserError for a checkpoint it cannot be."""
    import torch

    if args.compressai:
        from compressai.zoo import models as zoo

        try:
            return zoo[args.compressai](quality=args.quality, metric="mse", pretrained=True).eval()
        except Exception as err:  # noqa: BLE001 - a download fails in many ways (offline, proxy, hub)
            raise UserError("--compressai", args.compressai, reason=f"compressai could not fetch its weights "
                                                                    f"({type(err).__name__})",
                            allowed="a machine with internet, or --checkpoint FILE --arch CLASS") from None
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior
    from compressai.models.sensetime import Elic2022Official

    try:
        state = torch.load(Path(args.checkpoint).expanduser(), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for damaged or foreign files
        raise UserError("--checkpoint", args.checkpoint, reason=f"not a readable torch checkpoint "
                                                                f"({type(err).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # as compressai's examples/train.py saves it
    if not isinstance(state, dict):
        raise UserError("--checkpoint", args.checkpoint, reason="holds no state dict")
    cls = {"ScaleHyperprior": ScaleHyperprior, "MeanScaleHyperprior": MeanScaleHyperprior,
           "Elic2022Official": Elic2022Official}[args.arch]
    try:
        return cls.from_state_dict(state).eval()
    except Exception as err:  # noqa: BLE001 - missing or misshapen tensors
        raise UserError("--checkpoint", args.checkpoint, reason=f"not a {args.arch} state dict "
                                                                f"({type(err).__name__}: {str(err).splitlines()[0][:120]})",
                        allowed="a state dict saved from that compressai class") from None


def reference_variant(spec: dict):
    """The Variant of an imported model: its canonical spec and the study's label, so it has the
    same variant_id as the same architecture trained by a sweep."""
    from models import parse_spec
    from sweep.variant import Variant

    parsed = parse_spec(spec)
    return Variant.from_canonical(parsed.to_dict(), parsed.family, REFERENCE_GROUP)


def import_run(model, variant, *, source: str, lmbda: float, uri: str, experiment: str, images: str, device: str,
               threads: int, name: str | None, replace: bool, image_count: int) -> str:
    """Measure `model` and write it as a FINISHED reference run; the line to print."""
    import tempfile

    import torch

    from jobs.device import pinned_threads, resolve_device
    from jobs.measure import measure
    from sweep.tracking import SweepRecord, VariantRun, discard_runs, ensure_experiment

    record = SweepRecord(uri, experiment, experiment, "reference-" + hashlib.sha256(source.encode()).hexdigest()[:12])
    ensure_experiment(uri, experiment, _artifact_root(uri))
    training = {"lmbda": lmbda, "source": source}
    run = VariantRun(record, variant, training).open()
    if run.finished:
        if not replace:
            raise UserError("--replace", False, reason=f"{source} is already in {experiment!r} (run {run.run_id})",
                            allowed="--replace to measure it again into a fresh run")
        discard_runs(record, {variant.variant_id})
        run = VariantRun(record, variant, training).open()
    target = resolve_device(device)
    with pinned_threads(threads):
        measured = measure(model.to(target), _settings(images, target.type), lmbda, shared_device=False)
    run.set_tags({**measured.tags, names.TAG_REFERENCE: source, "mlflow.runName": name or source})
    with tempfile.TemporaryDirectory() as folder:
        for table_name, table in measured.tables.items():
            table.to_csv(Path(folder) / table_name, index=False)
            run.log_artifact(Path(folder) / table_name)
        path = Path(folder) / names.MODEL_ARTIFACT
        torch.save({"spec": variant.spec, "model": model.cpu().state_dict()}, path)
        run.log_artifact(path)
    run.log_final(0, measured.metrics)
    run.finish()
    metrics = measured.metrics
    return (f"rdc import: {source} -> run {run.run_id} in {experiment!r} ({variant.family}, {image_count} images): "
            f"bpp {metrics[names.BPP]:.4f}, PSNR {metrics[names.PSNR]:.2f} dB, rd_loss {metrics[names.RD_LOSS]:.4f}, "
            f"{metrics[names.DECODE_KFLOPS_PER_PX]:.1f} decode kFLOPs/px")


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a new experiment in a sqlite store go beside the database, as a sweep's do
    (runs/mlartifacts); a server keeps its own default."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts")
    return None


def _settings(images: str, kind: str) -> dict:
    """What jobs.measure reads of a sweep's settings: the images and conf/profile/<kind>.yaml."""
    from omegaconf import OmegaConf

    profile = {"warmup": 1, "repeats": 5, "flops_height": 512, "flops_width": 768}
    path = PROFILE_CONF_DIR / f"{kind}.yaml"
    if path.is_file():
        loaded = OmegaConf.to_container(OmegaConf.load(path)) or {}
        profile.update({k: loaded[k] for k in profile if k in loaded})
    return {"data": {"eval_dir": str(Path(images).expanduser().resolve())}, "profile": profile}
