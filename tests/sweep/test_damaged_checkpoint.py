"""A damaged latest checkpoint, with real processes: the driver SIGKILLed while a trial has two
checkpoints, the latest one cut off on disk, then resume=true. The trial resumes from the one
kept before it, and its run ends FINISHED with every step logged once (issue 12). Without the
fallback, Tune reloads the same damaged file on every retry and the variant FAILs."""

from __future__ import annotations

import os
import signal

import pytest

from rdc import names
from rdc.cli import main
from tests.cluster.rig import kill_group, make_root, start_driver, steps_of, sweep_args, sweep_runs, trial_results, \
    wait_for, write_space
from tests.conftest import TEST_SCALE

STEPS = max(70, int(70 * TEST_SCALE))
LOG_EVERY, CHECKPOINT_EVERY = 5, 10
TIMEOUT_S = 420

pytestmark = pytest.mark.slow


def args(root, *extra):
    return sweep_args(root, "two", steps=STEPS, log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY, extra=extra)


def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one(shared_ray, tmp_path, capsys):
    root = make_root(tmp_path)
    write_space(root, "two", "damaged", [8], [8])
    uri = f"sqlite:///{root / 'runs' / 'mlflow.db'}"
    log = root / "driver.log"
    driver = start_driver(args(root), log)
    try:
        def two_checkpoints_and_more_to_go():
            for variant, results in trial_results(root / "runs", "damaged").items():
                if results and not results[-1].get("done") and 2 * CHECKPOINT_EVERY <= results[-1]["step"] <= STEPS - 2 * LOG_EVERY:
                    folder = root / "runs" / "ray" / "damaged" / variant
                    if len(sorted(folder.glob("checkpoint_*/trainer.pt"))) >= 2:
                        return folder
            return None
        trial = wait_for(two_checkpoints_and_more_to_go, "a trial with two checkpoints", TIMEOUT_S, driver, log)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_group(driver)
    checkpoints = sorted(trial.glob("checkpoint_*/trainer.pt"))
    latest = checkpoints[-1]
    latest.write_bytes(latest.read_bytes()[:100])  # cut off, as a full disk or a crash mid-write leaves it

    capsys.readouterr()
    assert main(args(root, "resume=true")) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "finished 1/1 variants" in out, out
    (run,) = sweep_runs(uri, "damaged")
    assert run.info.status == "FINISHED"
    assert steps_of(uri, run.info.run_id) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    assert "weights_only" not in run.data.tags.get(names.TAG_FAILURE, "")
