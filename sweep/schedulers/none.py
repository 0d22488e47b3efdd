"""`scheduler=none` (the default): every trial trains all its steps."""

from __future__ import annotations

from sweep.schedulers.base import SchedulerContext, TrialSchedulerFactory


class NoScheduler(TrialSchedulerFactory):
    name = "none"

    @property
    def active(self) -> bool:
        return False  # nothing to report to: trials report only at their checkpoints

    def create(self, context: SchedulerContext):
        return None
