"""The driver's record of trials a scheduler stopped: their MLflow runs end as stopped, not failed.

Tune stops a trial by ending its actor between two reports, so the trial itself never learns
it was stopped: its run would stay RUNNING. Tune calls on_trial_complete for a stopped trial as
for a finished one; the trainable's own last report says how it ended (OUTCOME), so a completed
trial without one was stopped by the scheduler. Every metric up to the step it was stopped at
is in MLflow already (the trainable flushes before each progress report).
"""

from __future__ import annotations

from ray.tune import Callback

from sweep.schedulers.base import stopped_step
from sweep.tracking import SweepRecord, mark_stopped
from sweep.trials import trial_of
from sweep.variant import variant_of


class StoppedTrialRecorder(Callback):
    """`tune_scheduler`: the round's Ray Tune scheduler; one that defines `stop_tags(trial)` adds
    those tags (e.g. names.TAG_STOP_DECISION: why it stopped the trial) to the stopped run."""

    def __init__(self, scheduler: str, tune_scheduler=None, record: SweepRecord | None = None):
        # record: where a trial from before trials carried their own (sweep.trials) logs.
        self.record, self.scheduler, self.tune_scheduler = record, scheduler, tune_scheduler

    def on_trial_complete(self, iteration, trials, trial, **info):
        step = stopped_step(trial)
        if step is None:
            return
        stop_tags = getattr(self.tune_scheduler, "stop_tags", None)
        tags = stop_tags(trial) if callable(stop_tags) else {}
        entry = trial_of(trial.config)
        record = entry.record if entry is not None else self.record
        if record is not None:
            mark_stopped(record, variant_of(trial.config).variant_id, step, self.scheduler, tags)
