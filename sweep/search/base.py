"""The interface every search strategy implements: propose the next round of variants from
what MLflow holds about the sweep."""

from __future__ import annotations

from typing import ClassVar, Mapping

from rdc.errors import UserError
from sweep.tracking import RunState
from sweep.variant import Variant

Runs = Mapping[str, RunState]  # variant_id -> its run in this sweep (sweep.tracking.run_states)


class SearchStrategy:
    """Chooses which variants of a space to train, round by round.

    The driver (sweep.commands.run_sweep) reads the sweep's runs from MLflow, asks `left` whether
    there is anything to do before it starts Ray, then loops: `propose` a round, train it (one
    Ray Tune trial and one MLflow run per variant), read the runs again, until `propose` returns
    nothing or a round is interrupted. A strategy keeps no state that MLflow does not hold, so a
    re-run of the same command, a resumed driver or a widened space continues from the store.
    """

    name: ClassVar[str]
    # Why force=true (retrain into fresh runs) cannot work with this strategy; None: it can.
    force_refusal: ClassVar[str | None] = None

    @classmethod
    def check_config(cls, search: dict) -> None:
        """UserError for `search.*` values this strategy cannot run with (checked at load time)."""

    def __init__(self, search: dict, variants: list[Variant], *, force: bool = False):
        if force and self.force_refusal:
            raise UserError("force", True, reason=self.force_refusal,
                            allowed="a new sweep_name to search again from scratch")
        self.search, self.variants, self.force = search, list(variants), force

    def left(self, runs: Runs) -> int:
        """How many variants this strategy may still train, given the sweep's runs."""
        raise NotImplementedError

    def describe(self, runs: Runs) -> str:
        """Where the search stands, after "sweep 'NAME'" in the driver's lines."""
        raise NotImplementedError

    def propose(self, runs: Runs, slots: int, launched: list[str]) -> list[Variant]:
        """The next round: variants to train now ([] when done). `slots`: trials the cluster
        runs at once; `launched`: variant_ids this invocation trained already (restored ones too)."""
        raise NotImplementedError

    def round_line(self, picks: list[Variant]) -> str:
        """A line announcing a round, or "" for none."""
        return ""
