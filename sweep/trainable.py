"""The Ray Tune trainable: glue between one trial and the plain jobs (train, evaluate, profile).

Everything a trial needs arrives in its config as plain data (the variant and the resolved
settings). The MLflow run is found by tags, checkpoints go through Tune, so a retried or
restored trial continues where its last checkpoint left it. One invariant makes that safe:
a checkpoint at step k is reported only after every metric up to step k is in MLflow, so a
trial resumed from any checkpoint has lost nothing, and the steps it trains again are skipped
when logged (they are already in the history, with the same values: training is a pure
function of (seed, step)).
"""

from __future__ import annotations

import errno
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from jobs.crops import DEFAULT_CACHE, RandomCrops, TrainingSet
from jobs.data import DEFAULT_MAX_PIXELS, load_images
from jobs.heldout import HeldOutSet
from jobs.settings import TrainSettings
from jobs.train import Trainer, TrainingDiverged
from models import build
from jobs.measure import measure
from rdc import names
from rdc.errors import UserError
from sweep.schedulers.base import FULL_DISK, FULL_DISK_DETAIL, OUTCOME, PROGRESS_METRIC, PROGRESS_SOURCE
from sweep.reevaluate import evaluate_again, evaluated_elsewhere
from sweep.tracking import SweepRecord, VariantRun
from sweep.trials import trial_of
from sweep.variant import Variant, variant_of

TRAINER_FILE = "trainer.pt"
FLUSH_SECONDS = 30.0  # between checkpoints, buffered metrics still reach MLflow this often

# Fault injection for tests and drills, never from YAML: the driver reads this environment
# variable (commands.py) and ships it to the trials. "<variant id prefix>@<step>[:nan|:inf]"
# poisons that variant's weights just before the step, so its loss really becomes non-finite
# and the ordinary divergence path (TrainingDiverged -> FAILED run with a reason) runs.
FAULT_ENV = "RDC_FAULT_NONFINITE"


@dataclass(frozen=True)
class NonFiniteFault:
    variant_prefix: str
    step: int
    value: float

    @classmethod
    def parse(cls, text: str) -> "NonFiniteFault":
        target, _, kind = text.partition(":")
        prefix, _, step = target.partition("@")
        kind = kind or "nan"
        if not prefix or not step.isdigit() or kind not in ("nan", "inf"):
            raise UserError(FAULT_ENV, text, allowed="<variant id prefix>@<step>[:nan|:inf], e.g. 3fa2@5:inf")
        return cls(prefix, int(step), float(kind))

    def applies(self, variant_id: str, step: int) -> bool:
        return variant_id.startswith(self.variant_prefix) and step == self.step

    def poison(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(self.value)


class MetricBuffer:
    """Training rows waiting for MLflow: flushed every FLUSH_SECONDS and before each checkpoint."""

    def __init__(self, run: VariantRun, logged_through: int):
        self.run, self.logged_through = run, logged_through
        self.rows: list[tuple[int, dict]] = []
        self.last_flush = time.monotonic()

    def add(self, step: int, metrics: dict) -> None:
        if step > self.logged_through:
            self.rows.append((step, metrics))
        if time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Raises if MLflow stays unreachable; the rows stay buffered for the next try."""
        self.run.log_rows(self.rows, skip_through=self.logged_through)
        if self.rows:
            self.logged_through = self.rows[-1][0]
        self.rows.clear()
        self.last_flush = time.monotonic()


def run_variant(config: dict) -> None:
    """Train one trial (a variant at one seed and lambda) and log it to its MLflow run."""
    try:
        _run_variant(config)
    except Exception as err:  # noqa: BLE001 - only a full disk is handled here; anything else is Tune's to retry
        from rdc.diskfull import disk_full_detail

        detail = disk_full_detail(err)
        if detail is None:
            raise
        _stop_on_full_disk(detail, err)


# How long a trial that reported a full disk waits for the driver to end the launch; the
# driver does so at that report, so this runs out only if no driver listens (then Tune retries).
FULL_DISK_WAIT_S = 120.0


def _stop_on_full_disk(detail: str, err: Exception) -> None:
    """Tell the driver the disk is full and wait to be stopped. Retrying frees no space: each
    retry rebuilds the trial and fails again. The driver ends the launch as Ctrl-C would, so
    this trial stays unfinished in Tune's state and its MLflow run stays open: resume=true on a
    disk with room continues it from its last checkpoint. Nothing is written to the full disk here."""
    from ray import tune

    tune.report({OUTCOME: FULL_DISK, FULL_DISK_DETAIL: detail})
    time.sleep(FULL_DISK_WAIT_S)
    raise OSError(errno.ENOSPC, detail) from err


def _run_variant(config: dict) -> None:
    # Ray is imported here, not at the top: the driver imports this module's fault parser before
    # it has told Ray (at import) which addresses to use.
    from ray import tune

    started, started_at = time.perf_counter(), time.time()
    variant, settings = variant_of(config), config["settings"]
    trial = trial_of(config)
    if trial is not None:  # the trial's own point: its seed, its lambda, its run
        record, train_settings = trial.record, trial.train
    else:  # a sweep restored from before trials travelled: one point, the sweep's
        record = SweepRecord(**config["record"]) if config.get("record") else SweepRecord.of(settings)
        train_settings = settings["train"]
    report_progress = bool(config.get("report_progress"))
    train = TrainSettings(**train_settings)
    torch.set_num_threads(max(1, int(settings["cluster"]["trial_cpus"])))
    fault = NonFiniteFault.parse(settings["fault_nonfinite"]) if settings.get("fault_nonfinite") else None

    run = VariantRun(record, variant, train_settings).open()
    if run.finished:
        # Finished before a restore or a driver crash caught up with it: never train twice. Its
        # final metrics are measured again if they are of other images than the sweep names.
        final = run.logged_metrics()
        was = evaluated_elsewhere(run.opened.data.tags, settings["data"])
        if was:
            final.update(evaluate_again(run.client, run.opened, settings, train.lmbda, was))
        tune.report({"step": int(final.get(names.TRAIN_STEPS, train.steps)), "done": True, "skipped": True,
                     "evaluated_again": bool(was), OUTCOME: "skipped", **_short(final)})
        return

    torch.manual_seed(train.seed)  # the initial weights too: a variant trains identically every time
    model = build(variant.spec).to(trial_device(settings["cluster"]))
    data = settings["data"]
    try:
        # .get: a sweep restored from before these keys existed still trains as it did
        crops = RandomCrops(TrainingSet.scan(data["train_dir"], cache_size=data.get("cache_images", DEFAULT_CACHE),
                                             max_pixels=data.get("max_pixels", DEFAULT_MAX_PIXELS)),
                            train.crop, train.batch_size, train.seed, workers=data.get("workers", 0))
    except UserError as err:  # e.g. the folder is not on this node
        return _fail(run, 0, err)
    # The scheduler's rungs get held-out points of their own (a config from before they did: none).
    trainer = Trainer(model, train, crops, eval_at=config.get("judged_steps") or ())
    try:
        held_out = _held_out_set(settings, train)
    except UserError as err:  # e.g. the evaluation folder is not on this node: retrying ends the same
        return _fail(run, 0, err)
    resumed_from = _restore(trainer, list((config.get("trial") or {}).get("resume_from") or []))
    # Rows of training metrics and of held-out points fall on different steps: the last of either
    # is where the history ends (a resumed trial logs no step twice).
    buffer = MetricBuffer(run, max(run.last_step(names.TRAIN_LOSS), run.last_step(names.EVAL_RD_LOSS)))
    # A retried trial trains again through steps it logged (and reported) before it died: the
    # scheduler saw those points once already, and must not see them twice.
    reported_through = buffer.logged_through
    run.set_tags({names.TAG_RESUMED_FROM_STEP: resumed_from})

    train_started = time.perf_counter()
    try:
        while trainer.step < train.steps:
            if fault is not None and fault.applies(variant.variant_id, trainer.step):
                fault.poison(model)
            metrics = trainer.train_step()
            step = trainer.step
            row = dict(metrics) if step % train.log_every == 0 or step == train.steps else {}
            if held_out is not None and trainer.eval_due():
                row.update(trainer.evaluate_held_out(held_out))
            if row:
                buffer.add(step, row)
                if report_progress and reported_through < step < train.steps and PROGRESS_SOURCE in row:
                    # A scheduler may stop the trial at this report: Tune then ends it inside
                    # tune.report, so the metrics up to this step go to MLflow first.
                    buffer.flush()
                    tune.report({"step": step, PROGRESS_METRIC: float(row[PROGRESS_SOURCE])})
            if step % train.checkpoint_every == 0 or step == train.steps:
                buffer.flush()  # metrics first: a checkpoint never runs ahead of MLflow
                _checkpoint(trainer, {"step": step, **_short(metrics)})
    except (TrainingDiverged, UserError) as err:
        # A diverged loss, or a training image that cannot be decoded: retrying would end the same.
        buffer.flush()
        return _fail(run, trainer.step, err)
    final = _measure_and_log(run, model, variant, settings, train.lmbda)
    final.update({names.TRAIN_STEPS: trainer.step, names.TRAIN_SECONDS: time.perf_counter() - train_started})
    if trainer.curve:
        final[names.RD_LOSS_SMOOTHED] = trainer.rd_loss_smoothed()
    run.log_final(trainer.step, final)
    run.finish()
    # When and how long the trial worked, for the overhead benchmark (bench/bench_overhead.py).
    tune.report({"step": trainer.step, "done": True, OUTCOME: "finished", "trial_seconds": time.perf_counter() - started,
                 "started_at": started_at, **_short(final)})


def _held_out_set(settings: dict, train: TrainSettings) -> HeldOutSet | None:
    """The fixed crops of the evaluation images the held-out curve is measured on (None when
    train.eval_every is 0). The driver checked the folder; a node without it fails the trial."""
    if train.eval_every <= 0:
        return None
    images = load_images(settings["data"]["eval_dir"], split="eval", key="data.eval_dir",
                         max_pixels=settings["data"].get("max_pixels", DEFAULT_MAX_PIXELS))
    return HeldOutSet.from_images(images, train.eval_crop)


def _fail(run: VariantRun, step: int, err: Exception) -> None:
    """End the variant's run FAILED with the reason, and tell Tune the trial is over (no retry)."""
    from ray import tune

    run.fail(str(err))
    tune.report({"step": step, "failed": str(err), OUTCOME: "failed"})


def trial_device(cluster: dict) -> torch.device:
    """The device Ray gave this trial: a GPU when it asked for one (Ray sets CUDA_VISIBLE_DEVICES
    to the GPUs it holds, so "cuda" is its own), else the CPU."""
    if cluster["trial_gpus"] > 0:
        if not torch.cuda.is_available():
            raise RuntimeError("the trial holds a GPU (cluster.trial_gpus > 0) but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def device_is_shared(cluster: dict, node_cpus: float | None) -> bool:
    """Whether another trial may run on this trial's device while it is timed.

    A GPU trial holds its GPU alone unless it asked for a fraction (packing). A CPU trial holds
    its node's CPUs alone when one trial runs at a time, or when its node cannot fit two.
    """
    if cluster["trial_gpus"] > 0:
        return cluster["trial_gpus"] < 1
    if cluster.get("max_concurrent_trials") == 1:
        return False
    return node_cpus is None or node_cpus >= 2 * cluster["trial_cpus"]


def _node_cpus() -> float | None:
    """CPUs of the Ray node this trial runs on (None outside Ray)."""
    import ray

    if not ray.is_initialized():
        return None
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return node.get("Resources", {}).get("CPU")
    return None


def _measure_and_log(run: VariantRun, model: torch.nn.Module, variant: Variant, settings: dict, lmbda: float) -> dict:
    """The final measurements: tags and artifacts logged here, metrics returned for one batch."""
    shared = device_is_shared(settings["cluster"], _node_cpus())
    measured = measure(model, settings, lmbda, shared_device=shared)
    run.set_tags(measured.tags)
    with tempfile.TemporaryDirectory() as folder:
        for name, table in measured.tables.items():
            table.to_csv(Path(folder) / name, index=False)
            run.log_artifact(Path(folder) / name)
        path = Path(folder) / names.MODEL_ARTIFACT
        torch.save({"spec": variant.spec, "model": model.state_dict()}, path)
        run.log_artifact(path)
    return dict(measured.metrics)


def _restore(trainer: Trainer, earlier: list[str]) -> int:
    """Load the trial's latest checkpoint, if any; the step it resumes from (0: from scratch).

    Tune's checkpoint of this launch comes first; without one, the checkpoints the interrupted
    launches left in `earlier` (the trial's folders there, newest launch first: sweep.launch
    sets them aside on resume=true, so Tune never has to unpickle their state)."""
    from ray import tune

    from jobs.checkpoints import checkpoint_folders, checkpoints_in, restore_newest

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        folders = [folder for trial_folder in earlier for folder in checkpoints_in(Path(trial_folder))]
        if not folders:
            return 0
    else:
        # A damaged latest checkpoint falls back to the one kept before it (CHECKPOINTS_KEPT).
        folders = checkpoint_folders(Path(checkpoint.path)) if Path(checkpoint.path).is_dir() else None
        if folders is None:
            with checkpoint.as_directory() as folder:
                trainer.load_state_dict(read_trainer_state(Path(folder)))
            return trainer.step
    restored = restore_newest(folders, TRAINER_FILE, trainer.load_state_dict)
    for line in restored.skipped:
        print(f"{line}; resuming from {restored.folder}", flush=True)
    return trainer.step


def read_trainer_state(folder: Path) -> dict:
    """A checkpoint's trainer state: tensors and plain data only, never pickled code."""
    from jobs.checkpoints import read_state

    return read_state(folder / TRAINER_FILE)  # its errors never suggest weights_only=False


def _checkpoint(trainer: Trainer, metrics: dict) -> None:
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        trainer.save(Path(folder) / TRAINER_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _short(metrics: dict) -> dict:
    # Tune flattens "/" into nested keys; keep its result names flat and readable.
    return {key.replace("/", "_"): value for key, value in metrics.items()}
