"""What an earlier launch left in runs_dir is read safely by `rdc sweep` (issue 12): a planted
pickle in Tune's state never runs, a second driver is refused by the lock beside the sweep
whatever its TMPDIR, and the training-config id ignores how often a trial logs or checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from rdc.cli import main
from sweep.tracking import train_config_id

REPO = Path(__file__).resolve().parents[2]
GOLDEN_STATE = Path(__file__).resolve().parent / "tune_state" / "experiment_state-2026-12-01_10-00-00.json"


class _Plant:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant_state(sweep_folder: Path, marker: Path) -> None:
    """A Tune state whose first trial is RUNNING and carries a pickle that touches `marker`."""
    sweep_folder.mkdir(parents=True)
    state = json.loads(GOLDEN_STATE.read_text())
    trial = json.loads(state["trial_data"][0][0])
    trial["status"] = "RUNNING"
    trial["results"] = pickle.dumps(_Plant(marker)).hex()
    state["trial_data"][0][0] = json.dumps(trial)
    (sweep_folder / GOLDEN_STATE.name).write_text(json.dumps(state))


def sweep_argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["sweep", f"runs_dir={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", *extra]


def test_planted_pickle_in_runs_dir_never_runs(tmp_path: Path, capsys):
    marker = tmp_path / "code-ran"
    plant_state(tmp_path / "runs" / "ray" / "demo", marker)
    code = main(sweep_argv(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "was interrupted with 1 trial(s) unfinished" in err, err
    assert not marker.exists(), "the driver unpickled the planted state"


HOLDER = """
import sys
from pathlib import Path
from sweep.driver_lock import driver_lock
with driver_lock(Path(sys.argv[1]), "demo"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_second_driver_with_another_tmpdir_is_refused_by_rdc_sweep(tmp_path: Path, capsys, monkeypatch):
    """A real process holds the sweep's lock (as a running driver does) with its own TMPDIR;
    `rdc sweep` of the same sweep, with another TMPDIR, is refused for that reason."""
    (tmp_path / "tmp-a").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp-a"), "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "runs" / "ray" / "demo")], cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "tmp-b").mkdir()
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp-b"))
        code = main(sweep_argv(tmp_path))
        err = capsys.readouterr().err
        assert code == 2 and "another rdc sweep is running this sweep" in err and f"pid {holder.pid}" in err, err
        assert len(err.strip().splitlines()) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def test_config_id_ignores_how_often_a_trial_logs_checkpoints_and_evaluates():
    from dataclasses import asdict

    from jobs.settings import TrainSettings

    settings = asdict(TrainSettings())
    base = train_config_id(settings)
    for key, value in (("checkpoint_every", 7), ("log_every", 1), ("eval_every", 3), ("eval_crop", 64)):
        assert train_config_id({**settings, key: value}) == base, key
    for key, value in (("lr", 2e-4), ("lmbda", 0.05), ("steps", 301), ("seed", 1), ("batch_size", 4),
                       ("warmup_steps", 10)):
        assert train_config_id({**settings, key: value}) != base, key
    assert train_config_id(settings, "/data/clic") != base


def test_config_id_of_a_sweep_from_before_the_new_keys_is_unchanged():
    """Settings of the earlier version (without warmup_steps, eval_every, eval_crop) hashed as
    that version hashed them: a sweep that does not use the new keys keeps its finished runs."""
    import hashlib
    from dataclasses import asdict

    from jobs.settings import TrainSettings

    settings = asdict(TrainSettings())
    earlier = {k: v for k, v in settings.items() if k not in ("warmup_steps", "eval_every", "eval_crop", "seeds", "lmbdas")}
    before = hashlib.sha256(json.dumps(earlier, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert train_config_id(settings) == before
    assert train_config_id({**settings, "eval_every": 0, "eval_crop": 0}) == before


def test_a_running_sweep_is_refused_as_running_not_as_interrupted(tmp_path: Path, capsys, monkeypatch):
    """The other driver's Tune state says RUNNING (it is running): the lock refuses first, with
    the right reason, instead of "interrupted ... use resume=true"."""
    plant_state(tmp_path / "runs" / "ray" / "demo", tmp_path / "code-ran")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "runs" / "ray" / "demo")], cwd=REPO,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["resume=true"]):
            assert main(sweep_argv(tmp_path, *extra)) == 2
            err = capsys.readouterr().err
            assert "another rdc sweep is running this sweep" in err and "interrupted" not in err, err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize("address", ["auto\n", "head:6379\n", "ray://head:10001\n"])
def test_a_cluster_address_with_a_trailing_newline_is_refused(address: str):
    from rdc.errors import UserError
    from sweep.launch import check_cluster

    cluster = {"mode": "ray", "address": address, "num_cpus": None, "num_gpus": None, "trial_cpus": 1.0,
               "trial_gpus": 0.0, "max_concurrent_trials": 0, "max_failures": 3, "storage_path": None}
    with pytest.raises(UserError) as caught:
        check_cluster(cluster)
    assert caught.value.key == "cluster.address"
