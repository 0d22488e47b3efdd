"""Trial schedulers plug in by name (conf/scheduler/), are checked before anything starts, and a
trial one stops ends its MLflow run stopped (names.STOPPED_STATUS, the step, the scheduler), counted
apart from failures, and is not trained again by a re-run. One real sweep on a real Ray instance."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from rdc import names
from rdc.cli import main
from rdc.errors import UserError
from sweep.config import load_config
from sweep.schedulers import PROGRESS_METRIC, SCHEDULERS, SchedulerContext, TrialSchedulerFactory, scheduler_for
from tests.cluster.rig import history, make_root, sweep_args, variant_runs

# Two variants that differ only in M, trained one after the other on the same seeded crops. At
# the rung (step 2) the second (M=64) has a higher held-out RD loss than the first (M=8) (the
# test asserts it from MLflow), so ASHA (reduction factor 2: the better half goes on) stops it.
SPACE = """
name: asha
shared:
  entropy: {type: hyperprior}
  hyper: {type: conv, N: 8}
  transform: {type: conv, N: 8}
families:
  - name: tiny
    M: [8, 64]
"""
STEPS, GRACE = 6, 2


def test_the_registry_resolves_names_and_checks_options_before_anything_starts():
    assert set(SCHEDULERS) >= {"none", "asha"}
    for name, cls in SCHEDULERS.items():
        assert issubclass(cls, TrialSchedulerFactory) and cls.name == name
    assert scheduler_for(None, 100).create(SchedulerContext(100)) is None
    assert load_config([])["scheduler"] == {"name": "none"}
    for overrides, key in ((["scheduler=asha", "+scheduler.rungs=3"], "scheduler.rungs"),
                           (["scheduler=asha", "scheduler.reduction_factor=1"], "scheduler.reduction_factor"),
                           (["scheduler=asha", "scheduler.grace_period=300", "train.steps=300"], "scheduler.grace_period"),
                           (["scheduler.name=hyperband"], "scheduler.name")):
        with pytest.raises(UserError) as err:
            load_config(overrides)
        assert err.value.key == key, overrides


def test_asha_ranks_the_progress_metric_by_step_below_the_last_step():
    from ray.tune.schedulers import ASHAScheduler

    cfg = load_config(["scheduler=asha", "train.steps=300"])
    scheduler = scheduler_for(cfg["scheduler"], 300).create(SchedulerContext(300))
    assert isinstance(scheduler, ASHAScheduler)
    assert (scheduler._time_attr, scheduler._metric, scheduler._mode) == ("step", PROGRESS_METRIC, "min")
    milestones = sorted(r[0] for r in scheduler._brackets[0]._rungs)
    assert milestones == [30, 90, 270]  # a tenth of the steps, then x3, below train.steps
    # Trials take a held-out point at each milestone (sweep.trainable), whatever train.eval_every is.
    assert scheduler_for(cfg["scheduler"], 300).judged_steps() == (30, 90, 270)
    several = load_config(["scheduler=asha", "train.steps=300", "scheduler.brackets=3"])
    brackets = scheduler_for(several["scheduler"], 300).create(SchedulerContext(300))._brackets
    assert {r[0] for b in brackets for r in b._rungs if r[0] < 300} <= {30, 90, 270}


@pytest.mark.slow
def test_an_asha_stopped_trial_ends_its_run_stopped_with_its_step_and_is_not_retrained(shared_ray, tmp_path: Path, capsys):
    root = make_root(tmp_path)
    (root / "conf" / "search_space" / "asha.yaml").write_text(SPACE)
    args = sweep_args(root, "asha", steps=STEPS, log_every=1, checkpoint_every=3,
                      extra=("scheduler=asha", f"scheduler.grace_period={GRACE}", "scheduler.reduction_factor=2",
                             "cluster.max_concurrent_trials=1", "train.eval_every=5", "train.eval_crop=32"))
    assert main(args) == 0  # a stopped trial is no failure
    out = capsys.readouterr().out
    assert "finished 1/2 variants, 1 stopped early" in out
    assert f"STOPPED " in out and f"at step {GRACE}/{STEPS} by asha" in out

    uri = f"sqlite:///{root / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = {int(r.data.params[names.SPEC_PARAM_PREFIX + "M"]): r
            for r in variant_runs(client.search_runs([client.get_experiment_by_name("asha").experiment_id]))}
    kept, stopped = runs[8], runs[64]
    # What ASHA saw at the rung is what MLflow holds: the second trial was worse there. The rung
    # milestones (steps 2 and 4) are not multiples of train.eval_every (5): the trials took points there.
    assert [step for step, _ in history(uri, kept.info.run_id, names.EVAL_RD_LOSS)] == [GRACE, 2 * GRACE, 5, STEPS]
    curve = history(uri, stopped.info.run_id, names.EVAL_RD_LOSS)
    assert curve[-1][0] == GRACE and curve[-1][1] > dict(history(uri, kept.info.run_id, names.EVAL_RD_LOSS))[GRACE]
    assert kept.info.status == "FINISHED" and names.TAG_STOPPED_EARLY not in kept.data.tags
    assert stopped.info.status == names.STOPPED_STATUS
    assert stopped.data.tags[names.TAG_STOPPED_EARLY] == str(GRACE)
    assert stopped.data.tags[names.TAG_STOPPED_BY] == "asha"
    assert names.TAG_FAILURE not in stopped.data.tags and names.RD_LOSS not in stopped.data.metrics
    # Every step up to the decision reached MLflow before the scheduler saw it.
    assert [step for step, _ in history(uri, stopped.info.run_id)] == list(range(1, GRACE + 1))

    assert main(args) == 0  # settled: a re-run trains neither
    assert "2 variants, 1 already finished, 1 stopped early, 0 to train" in capsys.readouterr().out
