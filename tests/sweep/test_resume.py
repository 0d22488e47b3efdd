"""Crashes mid-sweep, with real processes: a trial's worker SIGKILLed, the driver SIGKILLed and
the sweep resumed. Each time: the sweep completes, MLflow holds exactly one run per variant, and
every training step is in its history once. (A search round: test_resume_search.py; the tracking
server and Ctrl-C: test_resume_interrupts.py.)"""

from __future__ import annotations

import json
import os
import signal

import pytest

from rdc import names
from rdc.cli import main
from tests.cluster.rig import history, kill_group, rd_metrics, start_driver, sweep_runs, trial_results, wait_for, write_space
from tests.sweep.resume_rig import TIMEOUT_S, args, assert_one_complete_run_per_variant, mid_training, uri_of
from tests.sweep.resume_rig import root  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_a_killed_worker_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(shared_ray, root):
    write_space(root, "four", "killw", [8, 16], [8, 12])
    log = root / "driver.log"
    driver = start_driver(args(root, "four"), log)
    try:
        def victim():
            for variant_id, results in trial_results(root / "runs", "killw").items():
                last = mid_training(results)
                if last:
                    return variant_id, last
        variant_id, last = wait_for(victim, "a trial past its first checkpoint", TIMEOUT_S, driver, log)
        os.kill(last["pid"], signal.SIGKILL)
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
    finally:
        kill_group(driver)

    uri = uri_of(root)
    runs = assert_one_complete_run_per_variant(uri, "killw", 4)
    killed = runs[variant_id]
    # It resumed from a checkpoint at or after the step we saw, not from 0.
    assert int(killed.data.tags[names.TAG_RESUMED_FROM_STEP]) >= last["step"] > 0
    assert "retry  " + variant_id[:8] in log.read_text()
    steps_after_kill = [r["step"] for r in trial_results(root / "runs", "killw")[variant_id]
                        if r["pid"] != last["pid"]]
    assert steps_after_kill and min(steps_after_kill) > last["step"]

    # The same variant, never interrupted, in another sweep: identical training and evaluation.
    spec = json.loads(killed.data.params[names.SPEC_JSON_PARAM])
    write_space(root, "alone", "alone", [spec["transform"]["N"]], spec["M"])
    assert main(args(root, "alone", "force=true")) == 0  # trained, not reused from "killw"
    (baseline,) = sweep_runs(uri, "alone")
    assert baseline.data.tags[names.TAG_VARIANT_ID] == variant_id
    assert baseline.data.tags[names.TAG_RESUMED_FROM_STEP] == "0"
    assert rd_metrics(killed) == rd_metrics(baseline)
    assert history(uri, killed.info.run_id) == history(uri, baseline.info.run_id)


def test_a_killed_driver_resumes_without_retraining_finished_variants(shared_ray, root, capsys):
    write_space(root, "four", "killd", [8, 16], [8, 12])
    uri = uri_of(root)
    log = root / "driver.log"
    driver = start_driver(args(root, "four"), log)
    try:
        def one_finished_one_training():
            # Trials start after the driver has created the store: only then is it safe to read.
            training = [v for v, results in trial_results(root / "runs", "killd").items() if mid_training(results)]
            return training and [r for r in sweep_runs(uri, "killd") if r.info.status == "FINISHED"]
        wait_for(one_finished_one_training, "a finished variant and one mid-training", TIMEOUT_S, driver, log)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_group(driver)  # what the dead driver's Ray instance left behind
    before = {r.data.tags[names.TAG_VARIANT_ID]: r for r in sweep_runs(uri, "killd") if r.info.status == "FINISHED"}
    assert 1 <= len(before) < 4
    histories = {v: history(uri, r.info.run_id) for v, r in before.items()}

    # Starting it afresh would bury the interrupted sweep: refused, one line.
    capsys.readouterr()
    assert main(args(root, "four")) == 2
    assert "resume=true to continue it" in capsys.readouterr().err
    # Resuming with other training settings would mix two trainings in one run: refused.
    assert main(args(root, "four", "resume=true", "train.seed=1")) == 2
    assert "the interrupted sweep ran with another train_config_id" in capsys.readouterr().err

    assert main(args(root, "four", "resume=true")) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "finished 4/4 variants" in out
    after = assert_one_complete_run_per_variant(uri, "killd", 4)
    for variant_id, run in before.items():
        again = after[variant_id]
        assert again.info.run_id == run.info.run_id
        assert again.info.end_time == run.info.end_time  # not trained, measured or ended again
        assert again.data.tags[names.TAG_ATTEMPT] == run.data.tags[names.TAG_ATTEMPT]
        assert history(uri, run.info.run_id) == histories[variant_id]
