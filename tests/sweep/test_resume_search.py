"""A driver SIGKILLed in the middle of a search round (search=optuna), with real processes: the
round resumes, then the rest of the budget is spent; finished variants are never trained again."""

from __future__ import annotations

import os
import signal

import pytest

from rdc import names
from rdc.cli import main
from tests.cluster.rig import kill_group, start_driver, sweep_runs, trial_results, wait_for, write_space
from tests.sweep.resume_rig import TIMEOUT_S, args, assert_one_complete_run_per_variant, mid_training, uri_of
from tests.sweep.resume_rig import root  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_a_killed_driver_resumes_a_search_round_then_spends_the_rest_of_the_budget(shared_ray, root, capsys):
    write_space(root, "four", "killsearch", [8, 16], [8, 12])
    uri = uri_of(root)
    log = root / "driver.log"
    search = ("search=optuna", "search.budget=4", "search.batch=2")
    driver = start_driver(args(root, "four", *search), log)
    try:
        def second_round_training():
            # Round 1's two variants FINISHED, and a trial of round 2 (the Tune folder holds only
            # the current round) mid-training.
            done = [r for r in sweep_runs(uri, "killsearch") if r.info.status == "FINISHED"]
            training = [v for v, results in trial_results(root / "runs", "killsearch").items() if mid_training(results)]
            return len(done) >= 2 and training
        wait_for(second_round_training, "round 2 mid-training", TIMEOUT_S, driver, log)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_group(driver)
    before = {r.data.tags[names.TAG_VARIANT_ID]: r for r in sweep_runs(uri, "killsearch") if r.info.status == "FINISHED"}
    assert 2 <= len(before) < 4

    capsys.readouterr()
    assert main(args(root, "four", *search)) == 2  # the interrupted round is not buried
    assert "resume=true to continue it" in capsys.readouterr().err
    assert main(args(root, "four", *search, "resume=true")) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "4 tried, 0 to train" in out
    after = assert_one_complete_run_per_variant(uri, "killsearch", 4)
    for variant_id, run in before.items():
        assert after[variant_id].info.end_time == run.info.end_time  # not trained again
