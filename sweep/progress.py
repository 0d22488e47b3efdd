"""Progress lines on the driver while trials run (Tune's own tables are switched off).

One line when a trial starts, at each checkpoint, when it is retried after a crash (with the
step its checkpoint resumes from), and when it finishes, fails or errors. Tune pickles this
callback with the experiment, so a restored sweep prints through it again.
"""

from __future__ import annotations

import sys
import time

from ray.tune import Callback

from sweep.schedulers.base import stopped_step
from sweep.trials import trial_of
from sweep.variant import variant_of


class ProgressPrinter(Callback):
    def __init__(self, total: int, steps: int, scheduler: str = "none"):
        # No stream is kept: Tune pickles callbacks, and pytest's or Jupyter's stdout cannot be.
        self.total, self.steps, self.scheduler = total, steps, scheduler
        self.done = 0
        self.started = time.monotonic()

    def setup(self, **info):
        # Runs again after Tuner.restore, with the state pickled at the interruption.
        self.started = time.monotonic()
        self.counted = False

    def on_step_begin(self, iteration, trials, **info):
        if not self.counted:  # after a restore, the trials that ended before it are done already
            self.done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
            self.counted = True

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.0f}s {self.done}/{self.total} done] {text}", file=sys.stdout, flush=True)

    def _name(self, trial) -> str:
        variant, entry = variant_of(trial.config), trial_of(trial.config)
        point = f" {entry.point_label}" if entry is not None and entry.point_label else ""
        return f"{variant.variant_id[:8]}{point} {variant.family} {variant.label()}"

    def on_trial_start(self, iteration, trials, trial, **info):
        self._print(f"start  {self._name(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("done") or result.get("failed") or "train_loss" not in result:
            return  # the end (printed on completion), or a progress report for the scheduler
        loss = result.get("train_loss", float("nan"))
        self._print(f"train  {self._name(trial)} step {result.get('step')}/{self.steps} loss {loss:.4f}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        step = (trial.last_result or {}).get("step", 0)
        where = f"from its checkpoint at step {step}" if step else "from the start (no checkpoint yet)"
        self._print(f"retry  {self._name(trial)} after a crash (attempt {trial.num_failures + 1}), {where}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        result = trial.last_result or {}
        stopped = stopped_step(trial)
        if stopped is not None:
            self._print(f"STOPPED {self._name(trial)} at step {stopped}/{self.steps} by {self.scheduler}")
        elif result.get("failed"):
            self._print(f"FAILED {self._name(trial)}: {result['failed']}")
        elif result.get("skipped") and result.get("evaluated_again"):
            self._print(f"done   {self._name(trial)} (had finished: evaluated again on this sweep's images, "
                        f"not trained again) bpp {result.get('bpp', float('nan')):.3f} "
                        f"psnr {result.get('psnr', float('nan')):.2f}")
        elif result.get("skipped"):
            self._print(f"done   {self._name(trial)} (had finished already; not trained again)")
        else:
            self._print(
                f"done   {self._name(trial)} rd_loss {result.get('rd_loss', float('nan')):.4f} "
                f"bpp {result.get('bpp', float('nan')):.3f} psnr {result.get('psnr', float('nan')):.2f}"
            )

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self._print(f"ERROR  {self._name(trial)} gave up after {trial.num_failures} crash(es) (see {trial.local_path})")
