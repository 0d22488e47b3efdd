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
from sweep.variant import variant_of


class StoppedTrialRecorder(Callback):
    def __init__(self, record: SweepRecord, scheduler: str):
        self.record, self.scheduler = record, scheduler

    def on_trial_complete(self, iteration, trials, trial, **info):
        step = stopped_step(trial)
        if step is not None:
            mark_stopped(self.record, variant_of(trial.config).variant_id, step, self.scheduler)
