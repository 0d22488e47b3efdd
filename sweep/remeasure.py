"""`rdc profile` and `rdc eval`: measure finished runs again, writing into the same MLflow runs.

`rdc profile --experiment NAME [--device cpu|cuda]` loads each FINISHED run's final model (the
artifact names.MODEL_ARTIFACT) and adds this device's runtimes to that run: the cross-device
leaderboard the study asks for, one column per device. Each runtime metric is written once
per run: MLflow keeps every logged value as history and has no way to delete one (logging
again at the same step adds a second row; with the same timestamp too, the larger value, not
the newer, becomes the run's "latest"), so a run that already holds this device's metrics is
left as it is. Running
the command twice, or again after an interruption or after new runs finished, profiles exactly
the runs still missing them. A run whose checkpoint is missing or unreadable gets one error
line and the others are still profiled; the exit code is then 2.

`rdc eval --run RUN_ID --images DIR` evaluates one run's model on any folder with real
bitstreams, prints per-image and average results, and keeps the per-image table as the run's
artifact eval/<folder>.csv (replaced on a rerun; artifacts, unlike metrics, overwrite).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rdc import names
from rdc.arguments import ArgumentParser
from rdc.errors import UserError
from sweep.tracking import DEFAULT_TRACKING_URI, FinishedRun, StaleAttempt, client as _client, search_all, with_retries
PROFILE_CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "profile"
STEP = 0  # runtime metrics are not a curve: one value, at step 0


# -- shared: the store, the runs, their models -------------------------------------------------
def tracking_uri(uri: str | None) -> str:
    """The MLflow store to use; a sqlite file must exist (MLflow would create an empty one)."""
    from rdc.stores import check_tracking_uri, given_or_default_uri

    uri = given_or_default_uri(uri)
    # Read-only checks: never MLflow's schema written into an empty file or another program's database.
    check_tracking_uri(uri, key="--tracking-uri")
    return uri


def find_experiment(client, name: str, uri: str):
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments())
        raise UserError("--experiment", name, reason=f"no such experiment in {uri}",
                        allowed=", ".join(known) or "none (run a sweep first)")
    return experiment


def finished_and_other_runs(client, experiment_id: str) -> tuple[list, list]:
    """(FINISHED runs oldest first, runs in any other state); the sweep-level run holds no model
    and is neither."""
    runs = with_retries(lambda: search_all(client, experiment_id), what="reading the runs")
    runs = [r for r in runs if r.data.tags.get(names.TAG_SWEEP_RUN) != "true"]
    runs.sort(key=lambda r: r.info.start_time)
    return [r for r in runs if r.info.status == "FINISHED"], [r for r in runs if r.info.status != "FINISHED"]


def get_run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise UserError("--run", run_id, reason=f"no such run in {uri}", allowed="a run id from `rdc frontier` or the MLflow UI") from None


def load_run_model(client, run_id: str, label: str | None = None):
    """The run's final model on the CPU, with its entropy-coder tables; UserError if it cannot be."""
    import torch
    from mlflow.exceptions import MlflowException

    from models import build
    from models.errors import SpecError
    from models.saved_specs import read_saved_spec

    key = f"run {run_id}" + (f" ({label})" if label and label != run_id else "") + ": checkpoint"
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, names.MODEL_ARTIFACT, folder)
        except (MlflowException, OSError):
            raise UserError(key, names.MODEL_ARTIFACT, reason="missing from the run's artifacts",
                            allowed="a run finished by `rdc sweep`, which saves its final model") from None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
        except Exception as err:  # noqa: BLE001 - torch raises many types for truncated or foreign files
            # The type alone: torch's messages for foreign files run to paragraphs of advice
            # about unpickling, which is never what a user should do with a run's artifact.
            raise UserError(key, names.MODEL_ARTIFACT, reason=f"not a readable torch checkpoint ({_type_name(err)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict) or not isinstance(state.get("model"), dict):
        raise UserError(key, names.MODEL_ARTIFACT, reason="not an rdc model checkpoint",
                        allowed='{"spec": spec mapping, "model": state_dict}')
    try:
        model = build(read_saved_spec(state["spec"]))  # an earlier version's spec as the function it was
    except SpecError as err:
        raise UserError(f"{key} spec.{err.key}", err.value, allowed=err.allowed) from None
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise UserError(key, names.MODEL_ARTIFACT, reason=f"weights do not fit its spec ({_first_line(err)})") from None
    model.eval()
    with torch.no_grad():
        model.update(force=True)
    return model


def _type_name(err: Exception) -> str:
    kind = type(err)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.lstrip('_')}.{kind.__name__}"


def _first_line(err: Exception, limit: int = 160) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _images(source: str | None, key: str):
    from jobs.data import BUILTIN, load_images

    return load_images(source, split="eval", key=key), (str(Path(source).expanduser().resolve()) if source else BUILTIN)


def _store_and_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<index> (default: cpu)")
    parser.add_argument("--tracking-uri", default=None,
                        help=f"MLflow store (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})")


def _error(command: str, err: Exception) -> None:
    sys.stdout.flush()  # keep the error line where it happened among the progress lines
    print(f"rdc {command}: error: {err}", file=sys.stderr, flush=True)


# -- rdc profile -------------------------------------------------------------------------------
def profile_defaults(kind: str) -> dict:
    """warmup and repeats from conf/profile/<kind>.yaml (what a sweep's trials use too)."""
    from omegaconf import OmegaConf

    path = PROFILE_CONF_DIR / f"{kind}.yaml"
    values = {"warmup": 1, "repeats": 5}
    if path.is_file():
        loaded = OmegaConf.to_container(OmegaConf.load(path))
        values.update({k: loaded[k] for k in values if k in (loaded or {})})
    return values


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("an integer >= 0")
    return value


def profile_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="rdc profile",
        description="Add this device's runtimes (decode with and without entropy coding, encode) to every "
                    "FINISHED run of an experiment. Runs that already have them are left as they are.")
    parser.add_argument("--experiment", required=True, help="the MLflow experiment (the sweep's name)")
    _store_and_device(parser)
    parser.add_argument("--images", default=None, help="folder of images to time (default: each run's own evaluation "
                                                         "images, from its eval_images tag; the built-in photographs for runs without it)")
    parser.add_argument("--threads", type=_non_negative, default=None, help="CPU threads to pin torch to (default: torch's); part of the device name")
    parser.add_argument("--warmup", type=_non_negative, default=None, help="untimed calls per image and stage (default: conf/profile/<device>.yaml)")
    parser.add_argument("--repeats", type=_non_negative, default=None, help="timed calls per image and stage, at least 2 (default: conf/profile/<device>.yaml)")
    return parser


def profile_main(argv: list[str] | None = None) -> int:
    args = profile_parser().parse_args(argv)
    from jobs.device import device_name, pinned_threads, resolve_device
    from jobs.profile import RuntimeProtocol

    device = resolve_device(args.device)
    defaults = profile_defaults(device.type)
    warmup = defaults["warmup"] if args.warmup is None else args.warmup
    repeats = defaults["repeats"] if args.repeats is None else args.repeats
    if repeats < 2:
        raise UserError("--repeats", repeats, reason="the coefficient of variation needs two timings", allowed="an integer >= 2")
    if args.threads is not None and (args.threads < 1 or device.type != "cpu"):
        raise UserError("--threads", args.threads, allowed="an integer >= 1, with --device cpu")
    image_sets = {args.images: _images(args.images, "--images")} if args.images else {}
    uri = tracking_uri(args.tracking_uri)
    client = _client(uri)
    experiment = find_experiment(client, args.experiment, uri)
    finished, others = finished_and_other_runs(client, experiment.experiment_id)
    if not finished:
        raise UserError("--experiment", args.experiment, reason="has no FINISHED runs", allowed="an experiment whose sweep finished some runs")

    protocol = RuntimeProtocol(warmup=warmup, repeats=repeats, threads=args.threads)
    counts = {"profiled": 0, "already profiled": 0, "failed": 0, "suspect": 0}
    with pinned_threads(args.threads):
        name = device_name(device)
        which = f"{len(image_sets[args.images][0])} images" if args.images else "each run's evaluation images"
        print(f"rdc profile: {len(finished)} finished runs of {args.experiment!r} on {name} "
              f"({which}, warmup {warmup}, repeats {repeats})")
        for run in finished:
            label = f"{run.info.run_name or run.info.run_id} ({run.info.run_id})"
            if not _missing(run, name):
                counts["already profiled"] += 1
                print(f"  {label}: already has {name}'s runtimes, left as they are")
                continue
            try:
                images, images_label = _run_images(run, args.images, image_sets)
                line = _profile_run(client, run, device, protocol, images, images_label)
            except UserError as err:
                counts["failed"] += 1
                _error("profile", err)
                continue
            counts["profiled"] += 1
            counts["suspect"] += "; SUSPECT: " in line
            print(f"  {label}: {line}", flush=True)
    if others:
        counts["not finished (skipped)"] = len(others)
    suspect = counts.pop("suspect")
    print(f"rdc profile: {name}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    if suspect:
        print(f"rdc profile: {suspect} of {counts['profiled']} runs still looked disturbed after re-measuring "
              f"(tag {names.TAG_RUNTIME_SUSPECT}): time them again on a quiet machine")
    return 2 if counts["failed"] else 0


def _run_images(run, chosen: str | None, loaded: dict):
    """The images to time `run` on: --images, else the ones its trial evaluated on (loaded once
    per folder); UserError naming the run when that folder is not on this machine."""
    from jobs.data import BUILTIN

    source = chosen or run.data.tags.get(names.TAG_EVAL_IMAGES) or BUILTIN
    if source not in loaded:
        try:
            loaded[source] = _images(None if source == BUILTIN else source, "--images")
        except UserError as err:
            loaded[source] = err
    if isinstance(loaded[source], UserError):
        raise UserError(f"run {run.info.run_id}: {names.TAG_EVAL_IMAGES}", source,
                        reason=f"cannot time on the run's evaluation images here ({loaded[source].reason})",
                        allowed="--images DIR: the same images on every device")
    return loaded[source]


def _missing(run, device: str) -> list[str]:
    return [m for m in names.runtime_metrics(device) if m not in run.data.metrics]


def _flops_size(tag: str | None) -> tuple[int, ...]:
    """(height, width) from a run's flops_size tag ("512x768"); () for the default size."""
    height, sep, width = (tag or "").partition("x")
    return (int(height), int(width)) if sep and height.isdigit() and width.isdigit() else ()


def _profile_run(client, run, device, protocol, images, images_label: str) -> str:
    import torch

    from jobs.profile import flops_metrics, profile_runtime

    run_id = run.info.run_id
    target = FinishedRun(client, run)
    model = load_run_model(client, run_id, run.info.run_name)
    try:
        runtime = profile_runtime(model, images, device, protocol)
    except torch.OutOfMemoryError:
        raise UserError(f"run {run_id}: --device", str(device), reason="out of memory while timing this model",
                        allowed="a device with more memory, or smaller --images") from None
    metrics = runtime.metrics()
    # Runs from before encode FLOPs (or any cost metric) existed get them too, once, counted at
    # the size the run's other FLOPs were counted at.
    size = _flops_size(run.data.tags.get(names.TAG_FLOPS_SIZE))
    costs = {k: v for k, v in flops_metrics(model.cpu(), *size).items() if k not in run.data.metrics}
    try:
        with tempfile.TemporaryDirectory() as folder:
            table = Path(folder) / names.runtime_table(runtime.device)
            runtime.table().to_csv(table, index=False)
            target.log_artifact(table)
        target.set_tags({names.runtime_protocol_tag(runtime.device): runtime.describe(images_label),
                         **_suspect_tags(run, runtime)})
        # Metrics last, in one batch: they are what marks the run as profiled. The run is read
        # again first, so a concurrent `rdc profile` on this device cannot make us write a second value.
        target.log_new_metrics({**metrics, **costs}, STEP)
    except StaleAttempt as err:
        raise UserError(f"run {run_id}", None, reason=str(err), allowed="rdc profile again once the sweep is done") from None
    summary = {stage: runtime.summary(stage) for stage in names.RUNTIME_STAGES}
    line = ", ".join(f"{stage} {s[names.MS]:.2f} ms (cv {100 * s[names.CV]:.1f}%)" for stage, s in summary.items())
    suspects = runtime.suspects()
    return line + (f"; SUSPECT: {', '.join(suspects)}" if suspects else "")


def _suspect_tags(run, runtime) -> dict[str, str]:
    """names.TAG_RUNTIME_SUSPECT with this device's part replaced by what this profiling found
    (other devices' parts kept; the tag goes when no device is suspect any more)."""
    old = run.data.tags.get(names.TAG_RUNTIME_SUSPECT, "")
    parts = [p for p in old.split(" | ") if p and not p.startswith(runtime.device + ":")]
    mine = runtime.suspect_tag()
    parts += [mine] if mine else []
    if not parts:
        return {names.TAG_RUNTIME_SUSPECT: ""} if old else {}
    return {names.TAG_RUNTIME_SUSPECT: " | ".join(parts)}


# -- rdc eval ----------------------------------------------------------------------------------
def eval_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="rdc eval",
        description="Evaluate one run's final model on a folder of images with real bitstreams: bpp from bytes, "
                    "PSNR and MS-SSIM on 8-bit RGB, per image and averaged per image.")
    parser.add_argument("--run", required=True, help="the MLflow run id")
    parser.add_argument("--images", required=True, help="a folder of images (or one image file)")
    _store_and_device(parser)
    parser.add_argument("--reconstructions", default=None, help="folder to save the decoded images in, as PNG")
    parser.add_argument("--csv", default=None, help="also write the per-image table to this file")
    parser.add_argument("--no-log", action="store_true", help="do not keep the per-image table as the run's artifact")
    return parser


def eval_main(argv: list[str] | None = None) -> int:
    args = eval_parser().parse_args(argv)
    from jobs.device import resolve_device
    from jobs.evaluate import evaluate
    from jobs.settings import TrainSettings

    device = resolve_device(args.device)
    for key, value in (("--reconstructions", args.reconstructions), ("--csv", args.csv)):
        _check_writable(key, value, folder=key == "--reconstructions")
    images, images_label = _images(args.images, "--images")
    uri = tracking_uri(args.tracking_uri)
    client = _client(uri)
    run = get_run(client, args.run, uri)
    lmbda = _lmbda(run, TrainSettings().lmbda)
    model = load_run_model(client, args.run, run.info.run_name).to(device)

    evaluation = evaluate(model, images, lmbda, keep_reconstructions=args.reconstructions is not None)
    table = evaluation.table()
    # Outputs only after every image succeeded: nothing half-written for bad input.
    if args.reconstructions:
        _save_reconstructions(Path(args.reconstructions), images, evaluation.reconstructions)
    if args.csv:
        table.to_csv(args.csv, index=False)
    artifact = None
    if not args.no_log:
        artifact = f"{names.EVAL_TABLE_DIR}/{_table_name(args.images)}.csv"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(artifact).name
            table.to_csv(path, index=False)
            try:
                FinishedRun(client, run).log_artifact(path, names.EVAL_TABLE_DIR)
            except StaleAttempt as err:
                raise UserError("--run", args.run, reason=str(err), allowed="rdc eval again once the run is done") from None

    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    s = evaluation.summary
    line = (f"run {args.run} on {images_label} ({len(images)} images, averaged per image): "
            f"bpp {s[names.BPP]:.4f} (likelihoods {s[names.BPP_EST]:.4f}), PSNR {s[names.PSNR]:.2f} dB")
    if names.MS_SSIM in s:
        line += f", MS-SSIM {s[names.MS_SSIM]:.4f} ({s[names.MS_SSIM_DB]:.2f} dB)"
    print(line + f", rd_loss {s[names.RD_LOSS]:.4f} (lambda {lmbda:g})")
    if artifact:
        print(f"per-image table kept as the run's artifact {artifact}")
    return 0


def _lmbda(run, default: float) -> float:
    try:
        return float(run.data.params[names.TRAIN_PARAM_PREFIX + "lmbda"])
    except (KeyError, ValueError):
        return default


def _check_writable(key: str, value: str | None, *, folder: bool) -> None:
    if value is None:
        return
    path = Path(value).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise UserError(key, value, reason="exists and is not a folder", allowed="a folder (created if absent)")
    if not folder and (path.is_dir() or not path.parent.is_dir()):
        raise UserError(key, value, reason="not a file in an existing folder", allowed="a path like results/kodak.csv")


def _save_reconstructions(folder: Path, images, reconstructions) -> None:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    for image, pixels in zip(images, reconstructions):
        PILImage.fromarray(pixels).save(folder / f"{image.name}.png")


def _table_name(source: str) -> str:
    """eval/<name>.csv: the folder's name, or the image's name without its suffix."""
    path = Path(source).expanduser().resolve()
    return names.name_part(path.stem if path.is_file() else path.name)
