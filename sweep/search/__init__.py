"""Search strategies: which variants of a space a sweep trains, round by round.

A strategy is a class behind one small interface (sweep.search.base.SearchStrategy), registered
by name below and chosen with `search=<name>` (conf/search/<name>.yaml holds its settings), the
way Optuna's samplers are. Adding one is one file, one line in STRATEGIES and a test.
"""

from __future__ import annotations

from rdc.errors import UserError
from sweep.search.base import Runs, SearchStrategy
from sweep.search.grid import GridSearch
from sweep.search.optuna import OptunaSearch, SAMPLERS
from sweep.variant import Variant

STRATEGIES: dict[str, type[SearchStrategy]] = {
    GridSearch.name: GridSearch,
    OptunaSearch.name: OptunaSearch,
}

__all__ = ["Runs", "SAMPLERS", "STRATEGIES", "SearchStrategy", "check_search", "strategy_for"]


def check_search(search: dict) -> None:
    """UserError for a `search` config no strategy can run (before anything starts)."""
    if search["strategy"] not in STRATEGIES:
        raise UserError("search.strategy", search["strategy"], allowed=", ".join(STRATEGIES))
    if search["sampler"] not in SAMPLERS:
        raise UserError("search.sampler", search["sampler"], allowed=", ".join(SAMPLERS))
    STRATEGIES[search["strategy"]].check_config(search)


def strategy_for(search: dict, variants: list[Variant], *, force: bool = False) -> SearchStrategy:
    check_search(search)
    return STRATEGIES[search["strategy"]](search, variants, force=force)
