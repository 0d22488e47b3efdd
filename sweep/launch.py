"""Ray: start or join the cluster, check it can run the sweep, and run (or restore) one Tune
trial per variant.

Two modes (conf/cluster/*.yaml): `local` starts a private Ray instance on 127.0.0.1;
`ray` joins a running cluster (`cluster.address`: auto, host:port of the head, or ray://).
Before any trial starts on a cluster, every node must be able to reach the tracking store and
import this package, and some node must be large enough for one trial: otherwise the sweep
would hang pending or fail trial by trial, hours later.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rdc.errors import UserError
from sweep.config import DEFAULT_MAX_FAILURES
from sweep.variant import Variant, variant_of

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
CHECKPOINTS_KEPT = 2  # the latest, and one more in case the latest was cut short
PREFLIGHT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 5.0
ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d{1,5}|[^\s/:]+:\d{1,5})$")
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


# -- configuration checks (before anything starts) -----------------------------------------
def check_cluster(cluster: dict) -> None:
    """UserError for a cluster config that cannot work; nothing is started."""
    mode = cluster["mode"]
    if cluster["trial_cpus"] <= 0:
        raise UserError("cluster.trial_cpus", cluster["trial_cpus"], allowed="a positive number")
    gpus = cluster["trial_gpus"]
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UserError("cluster.trial_gpus", gpus, allowed="0, a fraction below 1 (GPU packing) or a whole number")
    if cluster["max_concurrent_trials"] < 0:
        raise UserError("cluster.max_concurrent_trials", cluster["max_concurrent_trials"],
                        allowed="0 (as many as resources allow) or a positive integer")
    if max_failures(cluster) < 0:
        raise UserError("cluster.max_failures", max_failures(cluster), allowed="0 or a positive integer")
    storage = cluster.get("storage_path")
    if storage and "://" in storage:
        raise UserError("cluster.storage_path", storage, reason="cloud storage is not supported yet",
                        allowed="a folder every node mounts (e.g. NFS)")
    if mode == "local":
        if cluster["address"]:
            raise UserError("cluster.address", cluster["address"], reason="only for cluster=ray",
                            allowed="null with the local cluster")
        for key in ("num_cpus", "num_gpus"):
            if cluster[key] is not None and cluster[key] < 0:
                raise UserError(f"cluster.{key}", cluster[key], allowed="null (all of this machine's) or a count >= 0")
        if cluster["num_cpus"] is not None and cluster["trial_cpus"] > cluster["num_cpus"]:
            raise UserError("cluster.trial_cpus", cluster["trial_cpus"],
                            allowed=f"at most cluster.num_cpus ({cluster['num_cpus']})")
        return
    for key in ("num_cpus", "num_gpus"):
        if cluster[key] is not None:
            raise UserError(f"cluster.{key}", cluster[key], reason="only for cluster=local",
                            allowed="null: a cluster's nodes declare their own (ray start --num-cpus/--num-gpus)")
    address = cluster["address"] or "auto"
    if not ADDRESS.fullmatch(address):
        raise UserError("cluster.address", address, allowed="auto, <head host>:<port> or ray://<head host>:<port>")


def max_failures(cluster: dict) -> int:
    return int(cluster.get("max_failures", DEFAULT_MAX_FAILURES))


# -- Ray ------------------------------------------------------------------------------------
def configure_ray_import(cluster: dict) -> None:
    """Set what Ray reads when it is first imported; call before anything imports ray.

    Local: keep every Ray process on 127.0.0.1 (a laptop's sweep opens no port to its network).
    Cluster: the driver must find its own node by the address it reaches the head with.
    """
    wanted = "0" if cluster["mode"] == "local" else "1"
    if "ray" in sys.modules and os.environ.get(LOOPBACK_ENV, "1") != wanted:
        raise RuntimeError(f"ray was imported before {LOOPBACK_ENV} was set for cluster.mode={cluster['mode']}")
    os.environ[LOOPBACK_ENV] = wanted


_STARTED_HERE = False  # whether stop_ray ends the instance: only one start_ray began for a sweep


def start_ray(cluster: dict, log: Path | None = None, *, shared: bool = False) -> None:
    """Start the local instance, or connect to the cluster; UserError if it cannot be reached.
    Ray's own log lines go to `log` (the sweep's output keeps to the sweep's lines). A Ray the
    caller initialised already (a notebook's; `shared=True`: several sweeps on one instance)
    is used as it is and left running by stop_ray."""
    global _STARTED_HERE
    local = cluster["mode"] == "local"
    configure_ray_import(cluster)
    import ray

    if ray.is_initialized():
        _ray_logs_to(log)  # Tune's lines of this sweep still go to its log
        return
    _STARTED_HERE = not shared
    if local:
        _ray_logs_to(log, "ray._private")  # init's own notices (e.g. on token authentication)
        ray.init(
            address="local",
            num_cpus=cluster["num_cpus"],
            num_gpus=cluster["num_gpus"],
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
        _ray_logs_to(log)  # after init: init drops the handlers of Ray's logger
        return
    address = cluster["address"] or "auto"
    if address != "auto":
        _check_reachable(address)
    try:
        _ray_logs_to(log, "ray._private")
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as err:  # noqa: BLE001 - Ray raises many types for an unreachable or locked cluster
        raise UserError("cluster.address", address, reason=_connect_reason(err),
                        allowed="the address of a running Ray head (ray start --head)") from None
    _ray_logs_to(log)


class _LogFile(logging.FileHandler):
    """Ray's log file; a line it cannot write (a full disk under runs_dir) is dropped without
    Python's "--- Logging error ---" traceback: the sweep names the full disk itself."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def ray_log_path(settings: dict) -> Path:
    """Where a sweep's driver keeps Ray's and Tune's own lines: beside its Tune folder."""
    path = experiment_path(settings)
    return path.with_name(path.name + ".ray.log")


def _ray_logs_to(log: Path | None, name: str = "ray") -> None:
    """Ray's and Tune's loggers (`name` and below) write to `log` instead of the terminal."""
    ray_logger = logging.getLogger(name)
    if log is None:  # no file: warnings and errors on stderr (Python's last-resort handler)
        ray_logger.setLevel(logging.WARNING)
        return
    ray_logger.setLevel(logging.INFO)
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = _LogFile(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for earlier in list(ray_logger.handlers):  # ray.init's console handler, an earlier sweep's file
        ray_logger.removeHandler(earlier)
        if isinstance(earlier, logging.FileHandler):
            earlier.close()
    ray_logger.addHandler(handler)
    ray_logger.propagate = False


def _check_reachable(address: str) -> None:
    """UserError at once if nothing listens at the head's address: ray.init would wait minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise UserError("cluster.address", address, reason=f"nothing answers there ({err.strerror or err})",
                        allowed="the address of a running Ray head (ray start --head; docs/cluster.md)") from None


def _connect_reason(err: Exception) -> str:
    text = " ".join(str(err).split())
    if "uthentic" in text or "token" in text.lower():
        return ("token authentication failed: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH to the "
                "cluster's token file (docs/cluster.md)")
    return f"cannot connect ({type(err).__name__}: {text[:200]})"


def stop_ray() -> None:
    """End the instance start_ray began for this sweep (never a caller's own)."""
    global _STARTED_HERE
    import ray

    if _STARTED_HERE and ray.is_initialized():
        ray.shutdown()
    _STARTED_HERE = False


def check_capacity(cluster: dict) -> None:
    """UserError unless some alive node can hold one trial (Tune would wait forever otherwise)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    largest_cpus = max((r.get("CPU", 0) for r in nodes), default=0)
    largest_gpus = max((r.get("GPU", 0) for r in nodes), default=0)
    if not any(r.get("CPU", 0) >= cluster["trial_cpus"] for r in nodes):
        raise UserError("cluster.trial_cpus", cluster["trial_cpus"], reason="no node has that many CPUs",
                        allowed=f"at most {largest_cpus:g} (the largest node)")
    if not any(r.get("CPU", 0) >= cluster["trial_cpus"] and r.get("GPU", 0) >= cluster["trial_gpus"] for r in nodes):
        raise UserError("cluster.trial_gpus", cluster["trial_gpus"],
                        reason=f"no node has that many GPUs beside {cluster['trial_cpus']:g} CPUs",
                        allowed=f"at most {largest_gpus:g} (the most any node has)")


def trial_slots(cluster: dict) -> int:
    """How many trials the cluster runs at once: per alive node, its CPUs (and GPUs) over one
    trial's, summed; capped by cluster.max_concurrent_trials."""
    import math

    import ray

    slots = 0
    for node in (n["Resources"] for n in ray.nodes() if n["Alive"]):
        fits = [math.floor(node.get("CPU", 0) / cluster["trial_cpus"] + 1e-9)]
        if cluster["trial_gpus"] > 0:
            fits.append(math.floor(node.get("GPU", 0) / cluster["trial_gpus"] + 1e-9))
        slots += min(fits)
    cap = cluster["max_concurrent_trials"]
    return max(1, min(slots, cap) if cap else slots)


def check_nodes_reach(tracking_uri: str) -> None:
    """UserError unless every alive node can import rdc-sweep and reach the tracking store.

    Workers must never depend on something only the driver has: a relative path, the driver's
    loopback, a package installed only on the head.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_probe_tracking)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    pending = {
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(tracking_uri):
        n["NodeManagerAddress"]
        for n in nodes
    }
    ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=PREFLIGHT_TIMEOUT_S)
    if not_ready:
        hosts = ", ".join(sorted(pending[ref] for ref in not_ready))
        raise UserError("cluster.address", None, reason=f"node(s) {hosts} did not answer a probe within {PREFLIGHT_TIMEOUT_S:.0f}s")
    for ref in ready:
        try:
            problem = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - the probe could not even run there
            problem = f"cannot run rdc-sweep code ({last_line(err)}); install it on every node"
        if problem:
            raise UserError("tracking.uri", tracking_uri, reason=f"from node {pending[ref]}: {problem}",
                            allowed="a store every node reaches (tracking=server with a host the nodes can route to)")


def _probe_tracking(uri: str) -> str:
    """Runs on one node: '' if the tracking store answers from there, else why not."""
    from sweep.tracking import check_store

    try:
        check_store(uri)
    except UserError as err:
        return err.reason or str(err)
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            return f"{folder} does not exist on this node (a sqlite store must be on storage every node shares)"
    return ""


# -- the experiment folder -------------------------------------------------------------------
def experiment_path(settings: dict) -> Path:
    storage = settings["cluster"].get("storage_path") or Path(settings["runs_dir"], "ray")
    return Path(storage).expanduser().resolve() / settings["sweep_name"]


@contextmanager
def sweep_lock(settings: dict) -> Iterator[None]:
    """One driver per sweep: the lock beside the sweep's Tune folder (sweep.driver_lock), so
    it holds across TMPDIRs and across hosts that share runs_dir."""
    from sweep.driver_lock import driver_lock

    with driver_lock(experiment_path(settings), settings["sweep_name"]):
        yield


def trial_statuses(settings: dict) -> dict[str, str] | None:
    """variant_id -> Tune status of the experiment under experiment_path, or None if there is none."""
    # Parsed as JSON, never unpickled (sweep.tune_state): runs_dir may be shared storage.
    from sweep.tune_state import read_tune_state

    state = read_tune_state(experiment_path(settings))
    if state is None or state.damaged:
        return None
    return dict(state.statuses)


def damaged_state(settings: dict) -> str | None:
    """Why the earlier launch's Tune state cannot be read (cut off by a full disk or Ctrl-C), or None."""
    from sweep.tune_state import read_tune_state

    state = read_tune_state(experiment_path(settings))
    return state.damaged if state is not None else None


def unfinished(settings: dict) -> bool:
    """Whether the sweep's Tune experiment has trials left unfinished (an interrupted fit)."""
    return any(status in UNFINISHED for status in (trial_statuses(settings) or {}).values())


def check_fresh(settings: dict) -> None:
    """Before a new launch: refuse to bury an interrupted sweep of the same name."""
    statuses = trial_statuses(settings)
    if statuses is not None:
        unfinished = sum(s in UNFINISHED for s in statuses.values())
        if unfinished:
            raise UserError("resume", False,
                            reason=f"sweep {settings['sweep_name']!r} was interrupted with {unfinished} trial(s) "
                                   f"unfinished (state in {experiment_path(settings)})",
                            allowed="resume=true to continue it, or delete that folder to start over")


def start_fresh(settings: dict) -> None:
    """Clear the folder of an earlier launch whose trials all ended (check_fresh said so): its
    results are in MLflow. Record what this launch trains with, for a later resume."""
    path = experiment_path(settings)
    if path.exists():
        shutil.rmtree(path)
    _write_fingerprint(settings)


def check_resumable(settings: dict) -> dict[str, str]:
    """Statuses of the interrupted sweep to restore; UserError if there is none or it differs.
    The store is identified by its experiment (id and creation time), not by its path, so a
    runs_dir moved to a bigger disk resumes."""
    statuses = trial_statuses(settings)
    if statuses is None:
        raise UserError("resume", True, reason=f"no sweep {settings['sweep_name']!r} to restore under "
                                               f"{experiment_path(settings)}",
                        allowed="resume=false to start it, or the sweep_name/runs_dir of the interrupted sweep")
    saved = _read_fingerprint(settings)
    now = _fingerprint(settings)
    if "store" not in saved:  # written before stores were identified: by their URI
        now = {**{k: v for k, v in now.items() if k != "store"}, "tracking.uri": settings["tracking"]["uri"]}
    for key, value in now.items():
        if saved.get(key) != value:
            raise UserError("resume", True, reason=f"the interrupted sweep ran with another {key} "
                                                   f"({saved.get(key)!r}, now {value!r})",
                            allowed="the same overrides as the interrupted sweep")
    return statuses


def _fingerprint(settings: dict) -> dict:
    from sweep.tracking import train_config_id

    train = settings["train"]
    return {"train_config_id": train_config_id(train, settings["data"]["train_dir"]),
            "train.seeds": train.get("seeds"), "train.lmbdas": train.get("lmbdas"),
            "store": _store_identity(settings), "sweep_name": settings["sweep_name"]}


def _store_identity(settings: dict) -> str | None:
    """The sweep's experiment as "<id>@<creation time>": the same store wherever its file now is."""
    from sweep.tracking import client, store_exists, with_retries

    uri = settings["tracking"]["uri"]
    if not store_exists(uri):
        return None
    experiment = with_retries(lambda: client(uri).get_experiment_by_name(settings["experiment"]),
                              what="finding the experiment")
    return None if experiment is None else f"{experiment.experiment_id}@{experiment.creation_time}"


def _fingerprint_path(settings: dict) -> Path:
    # Not with_suffix: a sweep named "paper.v2" would share "paper.sweep.json" with "paper.v3".
    path = experiment_path(settings)
    return path.with_name(path.name + ".sweep.json")


def _write_fingerprint(settings: dict) -> None:
    from rdc.atomic import write_atomic

    path = _fingerprint_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(_fingerprint(settings), indent=2))  # a resume never reads half of it


def _read_fingerprint(settings: dict) -> dict:
    try:
        return json.loads(_fingerprint_path(settings).read_text())
    except (OSError, ValueError):
        return {}


# -- trials -----------------------------------------------------------------------------------
def _trainable(cluster: dict):
    from ray import tune

    from sweep.trainable import run_variant

    return tune.with_resources(run_variant, {"cpu": cluster["trial_cpus"], "gpu": cluster["trial_gpus"]})


def run_trials(trials: list, settings: dict, scheduler=None, *, resume_from: list[Path] = ()):
    """Fit one Tune trial per sweep.trials.Trial (a variant at one seed and lambda), under
    `scheduler` (a sweep.schedulers factory; None: none); returns Tune's ResultGrid. Each trial
    logs to the MLflow run its record finds."""
    from ray import tune

    from sweep.full_disk_stop import FullDiskStop
    from sweep.progress import ProgressPrinter
    from sweep.schedulers import SchedulerContext, scheduler_for
    from sweep.schedulers.recorder import StoppedTrialRecorder

    cluster = settings["cluster"]
    path = experiment_path(settings)
    _quiet_tune()
    scheduler = scheduler or scheduler_for(settings.get("scheduler"), settings["train"]["steps"])
    variants = list({t.variant.variant_id: t.variant for t in trials}.values())
    context = SchedulerContext(settings["train"]["steps"], tuple(variants), _decode_kflops(variants, scheduler))
    tune_scheduler = scheduler.create(context)  # also read by the recorder: the stop decisions' tags
    param_space = {
        # rebuilt by sweep.trials.trial_of; resume_from: the trial's folders in interrupted launches
        "trial": tune.grid_search([{**t.as_config(), "resume_from": [str(Path(f, t.key)) for f in resume_from]}
                                   for t in trials]),
        "settings": settings,
        "report_progress": scheduler.active,
        "judged_steps": list(scheduler.judged_steps()),  # held-out points at the rungs (sweep.trainable)
    }
    full_disk = FullDiskStop()
    run_config = tune.RunConfig(
        name=path.name,
        storage_path=str(path.parent),
        verbose=0,
        callbacks=[full_disk, ProgressPrinter(len(trials), settings["train"]["steps"], scheduler.name),
                   StoppedTrialRecorder(scheduler.name, tune_scheduler)],
        failure_config=tune.FailureConfig(max_failures=max_failures(cluster)),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
    )
    tune_config = tune.TuneConfig(
        scheduler=tune_scheduler,
        max_concurrent_trials=cluster["max_concurrent_trials"] or None,
        # One process per concurrent slot, reused trial after trial: starting a fresh worker
        # (torch, compressai, mlflow imports) costs seconds per trial otherwise.
        reuse_actors=True,
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    tuner = tune.Tuner(_trainable(cluster), param_space=param_space, tune_config=tune_config, run_config=run_config)
    results = tuner.fit()
    full_disk.raise_if_full()
    return results


def _decode_kflops(variants: list[Variant], scheduler) -> dict[str, float]:
    """The plan's decode kFLOPs/px of each variant, for a scheduler that needs them."""
    if not scheduler.needs_costs:
        return {}
    from rdc import names
    from sweep.costs import reference_costs

    return {v.variant_id: reference_costs(v.spec)[names.DECODE_KFLOPS_PER_PX] for v in variants}


# Where resume=true sets an interrupted launch's folder aside: <sweep>.interrupted-<n>.
SET_ASIDE = re.compile(r"\.interrupted-(\d+)")
RESUMED = (*UNFINISHED, "ERROR")  # errored trials too: resuming is the user's request to try again


def set_aside_folders(settings: dict) -> list[Path]:
    """The folders earlier interrupted launches of this sweep were set aside in, newest first."""
    path = experiment_path(settings)
    try:
        found = [p for p in path.parent.iterdir()
                 if p.name.startswith(path.name) and SET_ASIDE.fullmatch(p.name[len(path.name):]) and p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(SET_ASIDE.fullmatch(p.name[len(path.name):]).group(1)), reverse=True)


def resume_trials(trials: list, settings: dict, scheduler=None):
    """Continue the interrupted launch's unfinished `trials` (sweep.trials.Trial, rebuilt from
    the current config) as a new Tune experiment: its folder is set aside, never restored, so
    nothing in it is unpickled (runs_dir may be shared storage), and each trial resumes from its
    newest intact checkpoint there (sweep.trainable). The trials' paths are today's, so a moved
    runs_dir resumes. Trials a scheduler stopped before the interruption stay stopped; the
    scheduler judges the resumed trials from their next reports on."""
    path = experiment_path(settings)
    earlier = set_aside_folders(settings)
    number = 1 + max((int(SET_ASIDE.fullmatch(p.name[len(path.name):]).group(1)) for p in earlier), default=0)
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.interrupted-{number}"))
    sources = set_aside_folders(settings)
    start_fresh(settings)
    return run_trials(trials, settings, scheduler, resume_from=sources)


def clear_set_aside(settings: dict) -> None:
    """Once nothing is unfinished, the checkpoints of interrupted launches are no longer needed."""
    for folder in set_aside_folders(settings):
        shutil.rmtree(folder, ignore_errors=True)


def _quiet_tune() -> None:
    # Tune's start-up box and TensorBoard hint: the sweep prints its own lines (sweep.progress).
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Keeping CHECKPOINTS_KEPT forces a state snapshot whenever a trial checkpoints that often,
    # which is what a driver crash needs; Tune warns about it each time on short test trials.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A trial's reports differ by design: progress reports carry the scheduler's metric, checkpoint
    # and final reports do not (a scheduler reads only the former; ASHA skips results without it).
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def _trial_name(trial) -> str:
    from sweep.trials import trial_of

    entry = trial_of(trial.config)
    return entry.key if entry is not None else variant_of(trial.config).variant_id


def last_line(error: BaseException) -> str:
    """The reason in an error Ray wrapped with a whole traceback: its last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]
