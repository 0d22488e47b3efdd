"""`search=grid` (the default, the study's design): every variant of the space, in one round.

Variants whose run is settled (FINISHED, or stopped by a trial scheduler) are not trained again,
so a re-run trains only what is new or failed; force=true trains every variant into fresh runs.
"""

from __future__ import annotations

from sweep.search.base import Runs, SearchStrategy
from sweep.variant import Variant


class GridSearch(SearchStrategy):
    name = "grid"

    def _todo(self, runs: Runs) -> list[Variant]:
        if self.force:
            return list(self.variants)
        return [v for v in self.variants if not (v.variant_id in runs and runs[v.variant_id].settled)]

    def left(self, runs: Runs) -> int:
        return len(self._todo(runs))

    def describe(self, runs: Runs) -> str:
        todo = self._todo(runs)
        chosen = {v.variant_id for v in todo}
        stopped = sum(1 for v in self.variants if v.variant_id not in chosen and runs[v.variant_id].stopped)
        done = len(self.variants) - len(todo) - stopped
        also = f", {stopped} stopped early" if stopped else ""
        return f": {len(self.variants)} variants, {done} already finished{also}, {len(todo)} to train"

    def propose(self, runs: Runs, slots: int, launched: list[str]) -> list[Variant]:
        # One round per invocation; a resumed sweep only finishes the round it restored.
        return [] if launched else self._todo(runs)
