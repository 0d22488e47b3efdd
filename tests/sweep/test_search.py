"""search=optuna: Optuna proposes only the space's variants, never one already tried, the same
ones for the same MLflow history; a real sweep spends exactly its budget in rounds, and a re-run
continues from MLflow instead of starting over."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient

from rdc import names
from rdc.cli import main
from sweep.search.optuna import PRUNED, Coordinates, outcomes, propose, study_of
from sweep.space import expand
from sweep.tracking import RunState
from tests.cluster.rig import make_root, sweep_args, write_space, variant_runs

SPACE = {
    "name": "searched",
    "shared": {"entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}},
    "families": [
        {"name": "conv", "transform": {"type": "conv", "N": [8, 16, 24]}, "M": [8, 16]},
        {"name": "elic", "transform": {"type": "elic", "channels": [[8, 8, 8], [16, 16, 16]]}, "M": 8},
    ],
}


@pytest.fixture(scope="module")
def variants():
    return expand(SPACE)


def finished(metrics_by_id: dict[str, tuple[float, float]]) -> dict:
    return {vid: RunState("FINISHED", {names.RD_LOSS: loss, names.DECODE_KFLOPS_PER_PX: kflops})
            for vid, (loss, kflops) in metrics_by_id.items()}


def test_every_variant_is_one_point_of_optuna_s_space(variants):
    coordinates = Coordinates.of(variants)
    assert coordinates.families == ("conv", "elic")
    assert set(coordinates.knobs["conv"]) == {"M", "transform.N"}
    assert set(coordinates.knobs["elic"]) == {"transform.channels"}
    for variant in variants:
        trial = optuna.trial.FixedTrial(coordinates.params_of[variant.variant_id])
        assert coordinates.suggest(trial) == variant
    # A combination the space does not hold (e.g. a constraint removed it) lands nowhere.
    holed = Coordinates.of([v for v in variants if v != variants[1]])
    assert holed.suggest(optuna.trial.FixedTrial(coordinates.params_of[variants[1].variant_id])) is None


def test_proposals_are_untried_variants_of_the_space_and_repeat_for_the_same_history(variants):
    history = finished({variants[0].variant_id: (1.0, 5.0), variants[1].variant_id: (0.8, 9.0)})
    history[variants[2].variant_id] = RunState("FAILED", {})
    first = propose(variants, history, 3, sampler="tpe", seed=7)
    again = propose(variants, history, 3, sampler="tpe", seed=7)
    assert first == again and len(first) == 3 and len(set(first)) == 3
    assert set(first) <= set(variants[3:])
    for sampler in ("nsga2", "random"):
        picks = propose(variants, history, 5, sampler=sampler, seed=0)
        assert sorted(picks) == sorted(variants[3:])  # asked for more than are left: all of them


def test_a_space_with_holes_and_a_nearly_spent_budget(variants):
    holed = [v for v in variants if v.variant_id != variants[1].variant_id]  # e.g. removed by a constraint
    assert sorted(propose(holed, {}, len(holed), seed=1)) == sorted(holed)
    tried = finished({v.variant_id: (1.0, float(i)) for i, v in enumerate(holed[:-1])})
    assert propose(holed, tried, 2, seed=1) == [holed[-1]]
    assert propose(holed, finished({v.variant_id: (1.0, 1.0) for v in holed}), 2) == []


def test_the_study_is_rebuilt_from_mlflow_results(variants):
    runs = finished({variants[0].variant_id: (1.0, 5.0), variants[1].variant_id: (0.5, 9.0),
                     variants[2].variant_id: (2.0, 9.5)})
    runs[variants[3].variant_id] = RunState("FAILED", {names.RD_LOSS: float("nan")})
    runs[variants[4].variant_id] = RunState("FINISHED", {names.RD_LOSS: float("nan"), names.DECODE_KFLOPS_PER_PX: 1.0})
    runs[variants[5].variant_id] = RunState(names.STOPPED_STATUS, {names.TRAIN_LOSS: 3.0}, stopped_at=4, stopped_by="asha")
    runs["from-an-older-space"] = RunState("FINISHED", {names.RD_LOSS: 0.1, names.DECODE_KFLOPS_PER_PX: 0.1})
    assert outcomes(runs)[variants[5].variant_id] == PRUNED
    study = study_of(Coordinates.of(variants), outcomes(runs), optuna.samplers.RandomSampler(seed=0))
    states = [t.state.name for t in study.trials]
    # A trial a scheduler stopped is a pruned one for Optuna, not a failure.
    assert (states.count("COMPLETE"), states.count("FAIL"), states.count("PRUNED")) == (3, 2, 1)
    front = {tuple(t.values) for t in study.best_trials}
    assert front == {(1.0, 5.0), (0.5, 9.0)}  # (2.0, 9.5) is dominated


@pytest.mark.slow
def test_a_search_sweep_spends_its_budget_in_rounds_and_continues_from_mlflow(shared_ray, tmp_path, capsys):
    root = make_root(tmp_path)
    write_space(root, "searched", "searched", [8, 16], ms=[8, 16])  # 4 variants

    def sweep(*extra: str) -> int:
        return main(sweep_args(root, "searched", steps=6, log_every=3, checkpoint_every=3,
                               extra=("search=optuna", "search.batch=2", *extra)))

    def runs():
        client = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}")
        found = variant_runs(client.search_runs([client.get_experiment_by_name("searched").experiment_id]))
        return {r.data.tags[names.TAG_VARIANT_ID]: r.info.status for r in found}

    assert sweep("search.budget=3") == 0
    out = capsys.readouterr().out
    assert out.count("search round: ") == 2 and "4 variants, budget 3, 0 tried, 3 to train" in out
    assert "finished 3/3 variants" in out
    first = runs()
    assert len(first) == 3 and set(first.values()) == {"FINISHED"}

    assert sweep("search.budget=3") == 0  # spent: nothing trains again
    assert "3 tried, 0 to train" in capsys.readouterr().out and runs() == first

    assert sweep("search.budget=5") == 2  # more than the space holds: refused with its size
    assert "search.budget" in capsys.readouterr().err and len(runs()) == 3

    assert sweep("search.budget=4") == 0  # widened: the one variant left, then the space is done
    out = capsys.readouterr().out
    assert "budget 4, 3 tried, 1 to train" in out and "finished 1/1 variants" in out
    assert len(runs()) == 4 and set(runs().values()) == {"FINISHED"}
