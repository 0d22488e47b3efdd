"""`scheduler=frontier`: its options are checked before anything starts, and on a real Ray Tune
sweep it stops exactly the trials that replaying the sweep's logged curves predicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from analysis.replay import curves_from_mlflow, replay
from rdc import names
from rdc.cli import main
from rdc.errors import UserError
from sweep.schedulers import PROGRESS_METRIC, PROGRESS_SOURCE, SCHEDULERS, SchedulerContext
from sweep.schedulers.frontier import Frontier
from tests.cluster.rig import history, make_root, sweep_args, write_space, variant_runs

# Three variants that differ only in M (rig's tiny space): from initialisation, more latent
# channels cost more decode FLOPs and spend more bits, so at the first rungs the larger ones lose.
MS = [8, 16, 64]
STEPS = 6
OPTIONS = {"rungs": [0.2, 0.5], "margin": 0.0, "noise_multiple": 0.0, "noise_sd": None, "curve_multiple": 0.0,
           "revisit": True, "window": 1}


@pytest.fixture
def registered(monkeypatch):
    """scheduler=frontier in the registry (until sweep/schedulers/__init__.py lists it)."""
    monkeypatch.setitem(SCHEDULERS, Frontier.name, Frontier)


def test_options_are_checked_and_make_the_rule(registered):
    rule = Frontier({"rungs": [0.1, 0.5], "margin": 0.02}, 200).rule({**Frontier.options, "rungs": [0.1, 0.5],
                                                                     "margin": 0.02}, 200)
    assert rule.rung_steps == (20, 100) and rule.margin.relative == 0.02 and rule.revisit
    for given, key in (({"rungs": [0.5, 0.1]}, "scheduler.rungs"), ({"rungs": "0.1"}, "scheduler.rungs"),
                       ({"margin": -1}, "scheduler.margin"), ({"curve_multiple": -1}, "scheduler.curve_multiple"), ({"noise_multiple": 2}, "scheduler.noise_sd"),
                       ({"revisit": "yes"}, "scheduler.revisit"), ({"window": 0}, "scheduler.window"),
                       ({"grace_period": 3}, "scheduler.grace_period")):
        with pytest.raises(UserError) as err:
            Frontier(given, 200)
        assert err.value.key == key, given


def test_the_tune_scheduler_turns_reports_into_the_rules_decisions(registered):
    from ray.tune.schedulers import TrialScheduler

    from sweep.variant import Variant

    scheduler = Frontier({}, 100).create(SchedulerContext(100, (), {"cheap": 1.0, "costly": 2.0}))
    # Tune hands the scheduler its Trial objects; only trial_id and config are read.
    spec = json.dumps({"M": 8, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8},
                       "transform": {"type": "conv", "N": 8}})
    trials = {name: type("Trial", (), {"trial_id": f"t-{name}",
                                       "config": {"variant": Variant(name, "Conv/Hyperprior:Conv", "tiny", spec).as_config()}})()
              for name in ("cheap", "costly")}
    assert scheduler.on_trial_result(None, trials["cheap"], {"step": 5}) == TrialScheduler.CONTINUE  # no metric
    assert scheduler.on_trial_result(None, trials["cheap"], {"step": 10, PROGRESS_METRIC: 1.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, trials["costly"], {"step": 10, PROGRESS_METRIC: 2.0}) == TrialScheduler.STOP
    decision = json.loads(scheduler.stop_tags(trials["costly"])[names.TAG_STOP_DECISION])
    assert decision["dominators"][0]["variant_id"] == "cheap" and decision["rung"] == 0.1
    assert scheduler.stop_tags(trials["cheap"]) == {}


def test_trials_are_judged_only_against_trials_of_their_own_lambda(registered):
    """RD losses at two lambdas weigh rate and distortion differently: a costly trial at the
    lambda that spends more bits is not stopped by a cheap trial at the other lambda, however
    much lower that one's loss; at its own lambda the same report is dominated."""
    from ray.tune.schedulers import TrialScheduler

    from sweep.tracking import SweepRecord
    from sweep.trials import TrainPoint, Trial
    from sweep.variant import Variant

    scheduler = Frontier({}, 100).create(SchedulerContext(100, (), {"cheap": 1.0, "costly": 2.0}))
    spec = json.dumps({"M": 8, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8},
                       "transform": {"type": "conv", "N": 8}})

    def tune_trial(name: str, lmbda: float):
        variant = Variant(name, "Conv/Hyperprior:Conv", "tiny", spec)
        trial = Trial(variant, TrainPoint(lmbda, 0), SweepRecord("sqlite:///x.db", "s", "s", "cfg"),
                      f"{name}-l{lmbda:g}", {})
        return type("Trial", (), {"trial_id": trial.key, "config": {"trial": trial.as_config()}})()

    cheap_low, costly_high, costly_low = tune_trial("cheap", 0.01), tune_trial("costly", 0.05), tune_trial("costly", 0.01)
    assert scheduler.on_trial_result(None, cheap_low, {"step": 10, PROGRESS_METRIC: 1.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, costly_high, {"step": 10, PROGRESS_METRIC: 3.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, costly_low, {"step": 10, PROGRESS_METRIC: 3.0}) == TrialScheduler.STOP
    assert set(scheduler.rules) == {0.01, 0.05}
    decision = json.loads(scheduler.stop_tags(costly_low)[names.TAG_STOP_DECISION])
    assert [d["variant_id"] for d in decision["dominators"]] == ["cheap"]
    assert scheduler.stop_tags(costly_high) == {}


@pytest.mark.slow
def test_a_frontier_sweep_stops_exactly_the_trials_its_replay_predicts(shared_ray, tmp_path: Path, registered):
    from sweep.costs import reference_costs
    from sweep.space import expand

    root = make_root(tmp_path)
    write_space(root, "stopping", "stopping", widths=[8], ms=MS)  # "frontier" is a shipped space
    (root / "conf" / "scheduler").mkdir()
    # Its own option file: a user's conf/scheduler/frontier.yaml would not shadow the shipped one.
    (root / "conf" / "scheduler" / "frontier_test.yaml").write_text(json.dumps({"name": "frontier", **OPTIONS}))
    args = sweep_args(root, "stopping", steps=STEPS, log_every=1, checkpoint_every=3,
                      extra=("scheduler=frontier_test", "cluster.max_concurrent_trials=1",
                             "train.eval_every=4", "train.eval_crop=32"))
    assert main(args) == 0

    uri = f"sqlite:///{root / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = variant_runs(client.search_runs([client.get_experiment_by_name("stopping").experiment_id]))
    stopped = {r.info.run_id: int(r.data.tags[names.TAG_STOPPED_EARLY]) for r in runs
               if r.info.status == names.STOPPED_STATUS}
    assert stopped, "the larger variants should lose to M=8 at a rung"
    assert all(r.data.tags[names.TAG_STOPPED_BY] == "frontier" for r in runs if r.info.run_id in stopped)

    # Replay: the curve the scheduler ranked (PROGRESS_SOURCE), in the order it was logged, with
    # the plan's FLOPs the scheduler was given; the same rule from the same options.
    plan = {v.variant_id: reference_costs(v.spec)[names.DECODE_KFLOPS_PER_PX]
            for v in variants_of(root, expand)}
    curves, max_steps, _ = curves_from_mlflow("stopping", uri, metric=PROGRESS_SOURCE, plan_kflops=plan)
    assert max_steps == STEPS
    predicted = replay(curves, Frontier.rule({**Frontier.options, **OPTIONS}, STEPS), max_steps, order="observed")
    assert {run: decision.step for run, decision in predicted.stops.items()} == stopped
    # The rungs (steps 2 and 3) fall between train.eval_every's points (4, 6): every trial took a
    # held-out point at each rung it reached, so each stop came at its rung, not at step 4.
    rung_steps = Frontier.rule({**Frontier.options, **OPTIONS}, STEPS).rung_steps
    assert rung_steps == (2, 3) and set(stopped.values()) <= set(rung_steps)
    for run in runs:
        steps = [step for step, _ in history(uri, run.info.run_id, PROGRESS_SOURCE)]
        end = stopped.get(run.info.run_id, STEPS)
        assert steps == [s for s in (2, 3, 4, 6) if s <= end], (run.info.run_id, steps)


def variants_of(root: Path, expand):
    from sweep.config import load_config

    return expand(load_config(["search_space=stopping"], str(root / "conf"))["search_space"])
