"""What the sweep reliability tests share: tiny spaces, sweep arguments, a driver in its own
process (so a test can kill it, or a worker, or the tracking server), and MLflow read-backs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import skimage.data
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from PIL import Image

from rdc import names

REPO = Path(__file__).resolve().parents[2]
SPACE = """
name: {name}
shared:
  entropy: {{type: hyperprior}}
  hyper: {{type: conv, N: 8}}
families:
  - name: tiny
    transform: {{type: conv, N: {widths}}}
    M: {ms}
"""


def make_root(root: Path) -> Path:
    """A folder with conf/search_space/ and an eval folder of one small photograph."""
    (root / "conf" / "search_space").mkdir(parents=True, exist_ok=True)
    (root / "eval").mkdir(exist_ok=True)
    Image.fromarray(skimage.data.coffee()[:64, :96]).save(root / "eval" / "coffee.png")
    return root


def write_space(root: Path, file: str, name: str, widths: list[int], ms: list[int] | int = 8) -> None:
    (root / "conf" / "search_space" / f"{file}.yaml").write_text(SPACE.format(name=name, widths=widths, ms=ms))


def sweep_args(root: Path, space: str, *, steps: int, log_every: int, checkpoint_every: int,
               extra: tuple[str, ...] = (), runs: Path | None = None) -> list[str]:
    local = [] if any(e.startswith("cluster=") for e in extra) else ["cluster.num_cpus=2"]
    return [
        "sweep", "--config-dir", str(root / "conf"), f"search_space={space}", f"runs_dir={runs or root / 'runs'}",
        f"train.steps={steps}", "train.batch_size=2", "train.crop=32", f"train.log_every={log_every}",
        f"train.checkpoint_every={checkpoint_every}", f"data.eval_dir={root / 'eval'}", "profile.repeats=2",
        "profile.warmup=0", "profile.flops_height=64", "profile.flops_width=64",
        # The sweep run's report costs a process of its own per sweep; tests/sweep/test_trials.py runs it.
        *([] if any(e.startswith("tracking.sweep_report=") for e in extra) else ["tracking.sweep_report=false"]),
        *local, *extra,
    ]


def start_driver(args: list[str], log: Path, *, prefix: list[str] = (), env: dict | None = None) -> subprocess.Popen:
    """`rdc <args>` in a process group of its own, output to `log`."""
    handle = open(log, "w")
    return subprocess.Popen([*prefix, sys.executable, "-m", "rdc.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True, env=env)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process group this test started (the driver and whatever it left behind)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float, process: subprocess.Popen | None = None,
             log: Path | None = None):
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited ({process.returncode}) before {what}:\n{_tail(log)}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}:\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text()[-4000:] if log and log.exists() else ""


def trial_results(runs: Path, sweep: str) -> dict[str, list[dict]]:
    """variant_id -> every result Tune recorded for that trial (result.json, one JSON per line)."""
    out = {}
    for path in (runs / "ray" / sweep).glob("*/result.json"):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue  # gone since the glob: a search round's Tune folder is replaced by the next one's
        lines = [line for line in text.splitlines() if line.strip()]
        results = []
        for line in lines:
            try:
                results.append(json.loads(line))
            except ValueError:
                break  # a line Tune is still writing
        out[path.parent.name] = results
    return out


def client(uri: str) -> MlflowClient:
    return MlflowClient(uri)


def variant_runs(runs: list) -> list:
    """The runs of variants: every run but the sweep-level one (names.TAG_SWEEP_RUN)."""
    return [r for r in runs if r.data.tags.get(names.TAG_SWEEP_RUN) != "true"]


def sweep_runs(uri: str, experiment: str, view=ViewType.ACTIVE_ONLY) -> list:
    """The variant runs of an experiment (not its sweep-level run)."""
    mlflow = client(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    return [] if exp is None else variant_runs(mlflow.search_runs([exp.experiment_id], run_view_type=view))


def steps_of(uri: str, run_id: str, key: str = names.TRAIN_LOSS) -> list[int]:
    return sorted(m.step for m in client(uri).get_metric_history(run_id, key))


def history(uri: str, run_id: str, key: str = names.TRAIN_LOSS) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client(uri).get_metric_history(run_id, key))


def rd_metrics(run) -> dict[str, float]:
    """The final metrics that depend only on training (not on timing)."""
    return {k: run.data.metrics[k] for k in (names.RD_LOSS, names.BPP, names.BPP_EST, names.PSNR, names.MSE,
                                             names.PARAMS, names.TRAIN_STEPS)}
