"""MLflow run identity and logging for one variant.

A variant's run is found again by its tags (sweep, variant_id, train_config_id) every time a
trial starts, never kept in driver memory: a retried or restored trial reopens the same run,
so MLflow holds exactly one run per variant per sweep.

Three rules keep the metric history exact through retries, restores and server restarts:
- a step already in the history is never logged again (the trial resumes at a checkpoint that
  may be older than what it logged before dying);
- rows go out in whole steps, each batch built once and resent unchanged when a call fails, so
  a request the server applied but never answered is deduplicated by MLflow (same key, step,
  value and timestamp);
- every attempt writes a fresh attempt id into the run; an older attempt (a worker cut off from
  the cluster that comes back, a driver that was thought dead) finds the id changed and stops
  before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from rdc import names
from rdc.errors import UserError
from rdc.stores import DEFAULT_TRACKING_URI  # noqa: F401 - tracking.uri's default; sweep's modules import it here
from sweep.variant import Variant, flatten_spec

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_TAG_LENGTH = 5000
RETRY_SECONDS = 300.0  # a tracking server restart or a locked sqlite file is waited out this long
SERVER_SCHEMES = ("http://", "https://")

# MLflow error codes that no amount of waiting fixes.
_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS",
              "INVALID_STATE", "BAD_REQUEST", "PERMISSION_DENIED", "UNAUTHENTICATED", "ENDPOINT_NOT_FOUND"}

T = TypeVar("T")


@dataclass(frozen=True)
class SweepRecord:
    """Where a sweep's runs live and how they are found again: the store, the experiment, the
    sweep's name and the training-config id. The one thing tracking, launch and search are
    given about a sweep (its runs carry the last two as tags)."""

    uri: str
    experiment: str
    sweep: str
    train_config_id: str
    parent_run: str = ""  # the sweep-level run (sweep.sweep_run) every run of the sweep is a child of

    @classmethod
    def of(cls, settings: dict) -> "SweepRecord":
        """The record of a sweep from its settings (sweep.commands.sweep_settings)."""
        return cls(settings["tracking"]["uri"], settings["experiment"], settings["sweep_name"],
                   train_config_id(settings["train"], settings["data"]["train_dir"]))

    def as_config(self) -> dict:
        """Plain data for a trial's config (Tune keeps other objects out of what the driver sees)."""
        return {"uri": self.uri, "experiment": self.experiment, "sweep": self.sweep,
                "train_config_id": self.train_config_id, "parent_run": self.parent_run}

    def filter(self, variant_id: str | None = None) -> str:
        """MLflow's filter for this sweep's runs (of one variant)."""
        text = f"tags.{names.TAG_SWEEP} = '{self.sweep}' and tags.{names.TAG_TRAIN_CONFIG} = '{self.train_config_id}'"
        if variant_id is not None:
            text += f" and tags.{names.TAG_VARIANT_ID} = '{variant_id}'"
        return text


@dataclass(frozen=True)
class RunState:
    """What MLflow holds about one variant of a sweep: what search strategies and the summary read."""

    status: str  # MLflow's run status: FINISHED, FAILED, KILLED (names.STOPPED_STATUS), RUNNING, ...
    metrics: dict[str, float]
    failure: str = ""  # names.TAG_FAILURE
    stopped_at: int | None = None  # names.TAG_STOPPED_EARLY: the step a scheduler stopped it at
    stopped_by: str = ""
    missing: int = 0  # of a variant's points (sweep.trials.combine): how many have no run yet
    eval_images: str = ""  # names.TAG_EVAL_IMAGES: the set its final metrics were measured on

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    @property
    def stopped(self) -> bool:
        """Ended on purpose by a trial scheduler: a result, not a failure."""
        return self.status == names.STOPPED_STATUS and self.stopped_at is not None

    @property
    def settled(self) -> bool:
        """Nothing left to train: finished, or stopped by a scheduler's decision."""
        return self.finished or self.stopped

    @classmethod
    def of(cls, run) -> "RunState":
        tags = run.data.tags
        stopped = tags.get(names.TAG_STOPPED_EARLY)
        return cls(run.info.status, dict(run.data.metrics), tags.get(names.TAG_FAILURE, ""),
                   int(stopped) if stopped not in (None, "") else None, tags.get(names.TAG_STOPPED_BY, ""),
                   eval_images=tags.get(names.TAG_EVAL_IMAGES, ""))


class StaleAttempt(RuntimeError):
    """A newer attempt of the same trial owns the run; this one must stop writing."""


def client(uri: str):
    """The MLflow client every room of sweep/ uses (commands print their own lines on stderr:
    MLflow's INFO chatter and download progress bars are kept off it)."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run ... at" per ended run
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Its SQL store logs every database error with a traceback, then raises it: the caller
    # reports what it raises (a full disk in one line), so the log would only say it twice.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _is_transient(err: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    from rdc.diskfull import is_disk_full

    if is_disk_full(err):  # MLflow calls SQLITE_FULL TEMPORARILY_UNAVAILABLE: waiting frees no space
        return False

    if isinstance(err, MlflowException):
        return err.error_code not in _PERMANENT
    # sqlite's "database is locked" surfaces as SQLAlchemy's OperationalError when MLflow does not wrap it.
    return isinstance(err, (ConnectionError, TimeoutError, OSError)) or type(err).__name__ == "OperationalError"


def with_retries(call: Callable[[], T], *, what: str, deadline_s: float = RETRY_SECONDS) -> T:
    """`call()`, retried with backoff while the store is unreachable or locked, up to `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    delay = 0.5
    while True:
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - classified just below
            if not _is_transient(err) or time.monotonic() + delay > give_up:
                raise
            print(f"tracking: {what} failed ({type(err).__name__}); retrying in {delay:.1f}s", flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def is_server_uri(uri: str) -> bool:
    return uri.startswith(SERVER_SCHEMES)


def check_store(uri: str, *, key: str = "tracking.uri", timeout_s: float = 5.0) -> None:
    """UserError unless `uri` is a usable store (rdc.stores): a sqlite file that is an MLflow
    store or can be created there, a server answering /health within `timeout_s`."""
    from rdc.stores import check_tracking_uri

    check_tracking_uri(uri, key=key, may_create=True, timeout_s=timeout_s)


# The training-config id says "same trained weights". Keys that change no weight (a resumed run
# is bit-for-bit the uninterrupted one; the held-out curve draws no random number):
# - how often a trial logs and checkpoints hash at their defaults, so changing them keeps the
#   finished runs and the ids of sweeps that never set them stay what they were;
# - the held-out curve's settings, added later, are left out.
NOT_TRAINING = ("log_every", "checkpoint_every")
NOT_TRAINING_ADDED = ("eval_every", "eval_crop")
# Training keys added after ids existed, left out at the value that trains as before they existed
# (so a sweep that does not use them keeps its id and its finished runs).
ADDED_INERT = {"warmup_steps": 0}
# The sweep's axes (sweep.trials): each trial trains at one point of them, with train.seed and
# train.lmbda set to it; the lists themselves train nothing.
TRAIN_AXES = ("seeds", "lmbdas")


def train_config_id(train_settings: dict, train_data: str | None = None) -> str:
    """Same id <=> same trained weights (settings and training images): the incremental-sweep key."""
    import dataclasses

    from jobs.settings import TrainSettings

    defaults = {f.name: f.default for f in dataclasses.fields(TrainSettings)}
    identity = {key: (defaults[key] if key in NOT_TRAINING and key in defaults else value)
                for key, value in train_settings.items()
                if key not in NOT_TRAINING_ADDED and key not in TRAIN_AXES and not (key in ADDED_INERT and value == ADDED_INERT[key])}
    if train_data:  # builtin photographs hash as before, so existing ids stay valid
        identity["data.train_dir"] = train_data
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_experiment(uri: str, name: str, artifact_root: str | None) -> str:
    """The experiment's id, creating it (with an explicit artifact location) if needed."""
    mlflow = client(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise UserError("sweep_name", name, reason="an MLflow experiment of this name was deleted",
                            allowed="another sweep_name, or restore it (mlflow experiments restore)")
        return experiment.experiment_id
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root, name).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:
        # Another process created it between our lookup and create.
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def search_all(client, experiments: str | list[str], filter_string: str = "") -> list:
    """Every run of an experiment (an id, or a list of ids) that matches `filter_string`, all pages of it."""
    ids = [experiments] if isinstance(experiments, str) else list(experiments)
    out, token = [], None
    while True:
        page = client.search_runs(ids, filter_string=filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def store_exists(uri: str) -> bool:
    """False for a sqlite store whose file does not exist yet: looking must not create it (a
    sweep refused later leaves nothing behind). Servers and other stores exist."""
    return not (uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists())


def _sweep_runs(record: SweepRecord) -> list:
    if not store_exists(record.uri):
        return []
    mlflow = client(record.uri)
    exp = with_retries(lambda: mlflow.get_experiment_by_name(record.experiment), what="finding the experiment")
    if exp is None:
        return []
    return with_retries(lambda: search_all(mlflow, exp.experiment_id, record.filter()), what="reading the runs")


def run_states(record: SweepRecord) -> dict[str, RunState]:
    """variant_id -> what MLflow holds about its run, for every run of this sweep."""
    return {r.data.tags[names.TAG_VARIANT_ID]: RunState.of(r) for r in _sweep_runs(record)}


def settled_variant_ids(record: SweepRecord) -> set[str]:
    """Variants of this sweep with nothing left to train: FINISHED, or stopped by a scheduler."""
    return {variant_id for variant_id, state in run_states(record).items() if state.settled}


def discard_runs(record: SweepRecord, variant_ids: set[str]) -> int:
    """Soft-delete the runs of these variants (force=true retrains them into fresh runs)."""
    mlflow = client(record.uri)
    count = 0
    for run in _sweep_runs(record):
        if run.data.tags[names.TAG_VARIANT_ID] in variant_ids:
            with_retries(lambda: mlflow.delete_run(run.info.run_id), what="deleting a run")  # `mlflow runs restore`
            count += 1
    return count


def _end_open_run(record: SweepRecord, variant_id: str, status: str, tags: dict[str, str]) -> bool:
    """End a variant's run with `status` and `tags`, unless it already ended; whether it did."""
    from mlflow.entities import RunTag

    mlflow = client(record.uri)
    for run in _sweep_runs(record):
        if run.data.tags[names.TAG_VARIANT_ID] == variant_id and run.info.status not in TERMINAL_STATUSES:
            items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
            with_retries(lambda: mlflow.log_batch(run.info.run_id, tags=items), what="tagging the run")
            with_retries(lambda: mlflow.set_terminated(run.info.run_id, status=status), what="ending the run")
            return True
    return False


def mark_failed(record: SweepRecord, variant_id: str, reason: str) -> bool:
    """End a variant's run FAILED with `reason`, unless it already ended: for trials Ray gave up on."""
    return _end_open_run(record, variant_id, "FAILED", {names.TAG_FAILURE: reason})


def mark_stopped(record: SweepRecord, variant_id: str, step: int, stopped_by: str,
                 tags: dict[str, str] | None = None) -> bool:
    """End a variant's run as stopped by a trial scheduler at `step` (status names.STOPPED_STATUS,
    tags names.TAG_STOPPED_EARLY and names.TAG_STOPPED_BY, and the scheduler's own `tags`, e.g.
    names.TAG_STOP_DECISION), unless it already ended."""
    return _end_open_run(record, variant_id, names.STOPPED_STATUS,
                         {**(tags or {}), names.TAG_STOPPED_EARLY: step, names.TAG_STOPPED_BY: stopped_by})


TERMINAL_STATUSES = ("FINISHED", "FAILED", names.STOPPED_STATUS)


class VariantRun:
    """The one MLflow run of a variant within a sweep, as seen by one attempt of its trial."""

    def __init__(self, record: SweepRecord, variant: Variant, train_settings: dict):
        self.record, self.variant, self.train_settings = record, variant, train_settings
        self.client = client(record.uri)
        self.run_id: str | None = None
        self.attempt = uuid.uuid4().hex
        self.previous_status: str | None = None  # the run's status before this attempt opened it
        self.opened = None

    # -- identity -------------------------------------------------------------------------
    def open(self) -> "VariantRun":
        """Find this variant's run (or create it) and take it over for this attempt.

        A FINISHED run is left as it is (`finished` tells the caller not to train again).
        """
        return with_retries(self._open, what="opening the run")

    def _open(self) -> "VariantRun":
        exp = self.client.get_experiment_by_name(self.record.experiment)
        if exp is None:
            raise RuntimeError(f"experiment {self.record.experiment!r} does not exist; the driver creates it")
        run = self._find(exp.experiment_id)
        if run is None:
            tags = {
                names.TAG_SWEEP: self.record.sweep,
                names.TAG_VARIANT_ID: self.variant.variant_id,
                names.TAG_FAMILY: self.variant.family,
                names.TAG_TRAIN_CONFIG: self.record.train_config_id,
                names.TAG_GROUP: self.variant.group,
            }
            # Replicates and RD-curve points of one variant share its id; these tell them apart.
            if "seed" in self.train_settings:
                tags[names.TAG_SEED] = str(self.train_settings["seed"])
            if "lmbda" in self.train_settings:
                tags[names.TAG_LMBDA] = f"{float(self.train_settings['lmbda']):g}"
            if self.record.parent_run:
                tags[names.TAG_PARENT_RUN] = self.record.parent_run
            self.client.create_run(exp.experiment_id, tags=tags, run_name=self.variant.label())
            run = self._find(exp.experiment_id)  # two racing creators agree on the oldest run
        self.run_id = run.info.run_id
        self.previous_status = run.info.status
        self.opened = run  # the run as this attempt found it
        if self.finished:
            return self
        if not run.data.params:
            self._log_params()
        if self.record.parent_run and run.data.tags.get(names.TAG_PARENT_RUN) != self.record.parent_run:
            self.client.set_tag(self.run_id, names.TAG_PARENT_RUN, self.record.parent_run)  # a run from before
        if names.TAG_FAILURE in run.data.tags:  # a failure of an earlier launch no longer applies
            self.client.delete_tag(self.run_id, names.TAG_FAILURE)
        self.client.set_tag(self.run_id, names.TAG_ATTEMPT, self.attempt)
        self.client.update_run(self.run_id, status="RUNNING")
        return self

    def _find(self, experiment_id: str):
        runs = search_all(self.client, experiment_id, self.record.filter(self.variant.variant_id))
        if not runs:
            return None
        runs.sort(key=lambda r: (r.info.start_time, r.info.run_id))
        for extra in runs[1:]:  # only a create race leaves two; every racer keeps the same one
            self.client.delete_run(extra.info.run_id)
        return runs[0]

    @property
    def finished(self) -> bool:
        return self.previous_status == "FINISHED"

    def check_owner(self) -> None:
        """StaleAttempt if a newer attempt has taken the run over since this one opened it."""
        owner = with_retries(lambda: self.client.get_run(self.run_id).data.tags.get(names.TAG_ATTEMPT),
                             what="checking the run's attempt")
        if owner != self.attempt:
            raise StaleAttempt(f"run {self.run_id} now belongs to attempt {owner}; this attempt ({self.attempt}) stops")

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = {names.SPEC_JSON_PARAM: self.variant.spec_json}
        params.update({names.SPEC_PARAM_PREFIX + k: v for k, v in flatten_spec(self.variant.spec).items()})
        params.update({names.TRAIN_PARAM_PREFIX + k: v for k, v in self.train_settings.items()})
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    # -- metrics ----------------------------------------------------------------------------
    def last_step(self, metric: str) -> int:
        history = with_retries(lambda: self.client.get_metric_history(self.run_id, metric), what="reading history")
        return max((m.step for m in history), default=-1)

    def logged_metrics(self) -> dict[str, float]:
        """The latest value of every metric the run holds."""
        return dict(with_retries(lambda: self.client.get_run(self.run_id), what="reading the run").data.metrics)

    def log_rows(self, rows: list[tuple[int, dict[str, float]]], *, skip_through: int = -1,
                 deadline_s: float = RETRY_SECONDS) -> None:
        """Log (step, metrics) rows in step order; steps <= skip_through are already in the history.

        Raises StaleAttempt if a newer attempt owns the run, and the store's error if it stays
        unreachable past `deadline_s` (the caller keeps the rows and tries again later).
        """
        from mlflow.entities import Metric

        rows = [(step, values) for step, values in rows if step > skip_through and values]
        if not rows:
            return
        self.check_owner()
        now = int(time.time() * 1000)
        for batch in _whole_step_batches(rows):
            items = [Metric(k, float(v), now, step) for step, values in batch for k, v in values.items()]
            with_retries(lambda: self.client.log_batch(self.run_id, metrics=items), what="logging metrics",
                         deadline_s=deadline_s)

    def log_final(self, step: int, metrics: dict[str, float]) -> None:
        """Log the final metrics once: keys the run already holds (an earlier attempt) are kept."""
        present = self.logged_metrics()
        self.log_rows([(step, {k: v for k, v in metrics.items() if k not in present})])

    # -- tags, artifacts, status ------------------------------------------------------------
    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.check_owner()
        items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
        with_retries(lambda: self.client.log_batch(self.run_id, tags=items), what="setting tags")

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self.check_owner()
        with_retries(lambda: self.client.log_artifact(self.run_id, str(path), artifact_dir), what="uploading an artifact")

    def finish(self) -> None:
        self.check_owner()
        with_retries(lambda: self.client.set_terminated(self.run_id, status="FINISHED"), what="ending the run")

    def fail(self, reason: str) -> None:
        self.set_tags({names.TAG_FAILURE: reason})  # checks the owner first
        with_retries(lambda: self.client.set_terminated(self.run_id, status="FAILED"), what="ending the run")


class FinishedRun:
    """A FINISHED run that a command measures again (rdc profile, rdc eval): its writes go through
    the store's retries, and each first checks that the run is still the one that was read (still
    FINISHED, same trial attempt), so a measurement of one model never lands on another's run."""

    def __init__(self, mlflow, run):
        self.client, self.run_id = mlflow, run.info.run_id
        self.status, self.attempt = run.info.status, run.data.tags.get(names.TAG_ATTEMPT)

    def current(self):
        return with_retries(lambda: self.client.get_run(self.run_id), what="reading the run")

    def check_unchanged(self):
        """The run now; StaleAttempt if it was reopened or retrained since it was read."""
        run = self.current()
        if run.info.status != self.status or run.data.tags.get(names.TAG_ATTEMPT) != self.attempt:
            raise StaleAttempt(f"run {self.run_id} changed while it was measured (now {run.info.status}, attempt "
                               f"{run.data.tags.get(names.TAG_ATTEMPT)})")
        return run

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self.check_unchanged()
        with_retries(lambda: self.client.log_artifact(self.run_id, str(path), artifact_dir), what="uploading an artifact")

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.check_unchanged()
        items = [RunTag(k, str(v)[:MAX_TAG_LENGTH]) for k, v in tags.items()]
        with_retries(lambda: self.client.log_batch(self.run_id, tags=items), what="setting tags")

    def log_new_metrics(self, metrics: dict[str, float], step: int) -> int:
        """Log the metrics the run does not hold yet, in one batch (each is written once per run);
        how many were written."""
        from mlflow.entities import Metric

        present = self.check_unchanged().data.metrics
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if k not in present]
        if items:
            with_retries(lambda: self.client.log_batch(self.run_id, metrics=items), what="logging metrics")
        return len(items)


def _whole_step_batches(rows: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """Rows grouped into log_batch calls that never split a step: a step is all there or absent."""
    batches: list[list[tuple[int, dict]]] = [[]]
    size = 0
    for step, values in rows:
        if len(values) > MAX_METRICS_PER_BATCH:
            raise ValueError(f"step {step} has {len(values)} metrics; at most {MAX_METRICS_PER_BATCH} fit one batch")
        if size + len(values) > MAX_METRICS_PER_BATCH:
            batches.append([])
            size = 0
        batches[-1].append((step, values))
        size += len(values)
    return batches
