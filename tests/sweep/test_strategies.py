"""Search strategies are registered components behind one interface: grid and optuna are two
classes, a third is one class and one registry line, and samplers come from a table. No Ray:
strategies only read MLflow's record of the sweep (RunState), so they are tested on plain data."""

from __future__ import annotations

import pytest

from rdc import names
from rdc.errors import UserError
from sweep import search
from sweep.config import load_config
from sweep.search import STRATEGIES, SearchStrategy, strategy_for
from sweep.search.grid import GridSearch
from sweep.search.optuna import SAMPLERS, OptunaSearch, sampler_for
from sweep.space import expand
from sweep.tracking import RunState

SPACE = {
    "name": "strategies",
    "shared": {"entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}},
    "families": [{"name": "conv", "transform": {"type": "conv", "N": [8, 16, 24]}, "M": [8, 16]}],
}
GRID = {"strategy": "grid", "budget": 0, "batch": 0, "sampler": "tpe", "seed": 0}


@pytest.fixture(scope="module")
def variants():
    return expand(SPACE)


def test_every_registered_strategy_implements_the_interface():
    assert set(STRATEGIES) >= {"grid", "optuna"}
    for name, cls in STRATEGIES.items():
        assert issubclass(cls, SearchStrategy) and cls.name == name
        for method in ("left", "describe", "propose"):
            assert getattr(cls, method) is not getattr(SearchStrategy, method), (name, method)


def test_grid_trains_what_is_not_settled_in_one_round(variants):
    ids = [v.variant_id for v in variants]
    runs = {ids[0]: RunState("FINISHED", {}), ids[1]: RunState("FAILED", {}, failure="nan"),
            ids[2]: RunState(names.STOPPED_STATUS, {}, stopped_at=3, stopped_by="asha")}
    grid = strategy_for(GRID, variants)
    assert isinstance(grid, GridSearch)
    assert grid.left(runs) == len(variants) - 2
    assert grid.describe(runs) == f": {len(variants)} variants, 1 already finished, 1 stopped early, {len(variants) - 2} to train"
    round_ = grid.propose(runs, slots=2, launched=[])
    assert [v.variant_id for v in round_] == [ids[1], *ids[3:]]
    assert grid.propose(runs, slots=2, launched=[v.variant_id for v in round_]) == []  # one round only
    forced = strategy_for(GRID, variants, force=True)
    assert forced.propose(runs, slots=2, launched=[]) == variants


def test_optuna_refuses_force_and_spends_its_budget(variants):
    with pytest.raises(UserError) as err:
        strategy_for({**GRID, "strategy": "optuna", "budget": 2}, variants, force=True)
    assert err.value.key == "force"
    optuna_search = strategy_for({**GRID, "strategy": "optuna", "budget": 4, "batch": 3}, variants)
    assert isinstance(optuna_search, OptunaSearch)
    first = optuna_search.propose({}, slots=1, launched=[])
    assert len(first) == 3
    runs = {v.variant_id: RunState("FINISHED", {names.RD_LOSS: 1.0, names.DECODE_KFLOPS_PER_PX: 2.0}) for v in first}
    assert optuna_search.left(runs) == 1 and len(optuna_search.propose(runs, slots=1, launched=[])) == 1
    assert optuna_search.round_line(first) == "search round: 3 variant(s) proposed by optuna (tpe)"


def test_a_widened_optuna_sweep_fills_in_missing_seeds_before_proposing_new_variants(variants):
    """Seeds added to a sweep (train.seeds widened): the variants optuna already tried lack
    points; they are trained first, within the budget they already count against, and only then
    does optuna propose variants it has not tried."""
    optuna_search = strategy_for({**GRID, "strategy": "optuna", "budget": 4, "batch": 2}, variants)
    tried = optuna_search.propose({}, slots=1, launched=[])
    done = {names.RD_LOSS: 1.0, names.DECODE_KFLOPS_PER_PX: 2.0}
    widened = {v.variant_id: RunState("RUNNING", done, missing=1) for v in tried}  # seed 1 has no run yet
    assert optuna_search.tried(widened) == 2
    assert optuna_search.left(widened) == 2 + 2  # two more variants of the budget, and the two to complete
    assert {v.variant_id for v in optuna_search.propose(widened, slots=1, launched=[])} == set(widened)
    complete = {v.variant_id: RunState("FINISHED", done) for v in tried}
    fresh = optuna_search.propose(complete, slots=1, launched=[])
    assert len(fresh) == 2 and not {v.variant_id for v in fresh} & set(complete)


def test_samplers_come_from_a_table():
    import optuna

    assert list(SAMPLERS) == ["tpe", "nsga2", "random"]
    assert isinstance(sampler_for("nsga2", seed=0, batch=3), optuna.samplers.NSGAIISampler)
    with pytest.raises(UserError) as err:
        load_config(["search.sampler=cmaes"])
    assert (err.value.key, err.value.allowed) == ("search.sampler", "tpe, nsga2, random")


class FirstOnly(SearchStrategy):
    """A third strategy, written as a user would: one class, one registry line."""

    name = "first"

    def left(self, runs):
        return 0 if self.variants[0].variant_id in runs else 1

    def describe(self, runs):
        return f": the first of {len(self.variants)} variants"

    def propose(self, runs, slots, launched):
        return [] if launched or self.left(runs) == 0 else self.variants[:1]


def test_a_new_strategy_is_one_class_and_one_registry_line(variants, monkeypatch):
    with pytest.raises(UserError) as err:
        load_config(["search.strategy=first"])
    assert (err.value.key, err.value.allowed) == ("search.strategy", "grid, optuna")
    monkeypatch.setitem(search.STRATEGIES, "first", FirstOnly)
    cfg = load_config(["search.strategy=first"])  # accepted by the config check as it is
    strategy = strategy_for(cfg["search"], variants)
    assert strategy.propose({}, slots=4, launched=[]) == variants[:1]


def test_optuna_refuses_a_budget_larger_than_the_space(variants):
    with pytest.raises(UserError) as err:
        strategy_for({**GRID, "strategy": "optuna", "budget": len(variants) + 1}, variants)
    assert err.value.key == "search.budget" and f"only {len(variants)} variants" in err.value.reason
    assert strategy_for({**GRID, "strategy": "optuna", "budget": len(variants)}, variants).left({}) == len(variants)
