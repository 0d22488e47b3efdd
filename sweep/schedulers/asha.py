"""`scheduler=asha`: Asynchronous Successive Halving (Li et al., 2020) on the RD loss.

Ray Tune's ASHAScheduler on PROGRESS_METRIC by step: at each rung (grace_period, then x
reduction_factor, below train.steps) a trial continues only if its RD loss is in the best
1/reduction_factor of the trials that reached that rung before it. One objective, compute
ignored: the single-metric baseline the frontier-aware scheduler is measured against.
"""

from __future__ import annotations

from sweep.schedulers.base import SchedulerContext, TrialSchedulerFactory, positive_int
from rdc.errors import UserError


class Asha(TrialSchedulerFactory):
    name = "asha"
    one_scale = True  # one bracket ranks every trial by its rd_loss
    options = {
        "grace_period": None,  # steps before the first rung; null: a tenth of train.steps
        "reduction_factor": 3,  # 1/reduction_factor of the trials go on at each rung
        "brackets": 1,
    }

    def check(self, values: dict, steps: int) -> None:
        positive_int(values, "grace_period", allow_none=True)
        positive_int(values, "reduction_factor", minimum=2)
        positive_int(values, "brackets")
        if self._grace_period(values, steps) >= steps:
            raise UserError("scheduler.grace_period", values["grace_period"],
                            reason=f"no rung before the last step (train.steps={steps})", allowed=f"1 to {steps - 1}")

    @staticmethod
    def _grace_period(values: dict, steps: int) -> int:
        return values["grace_period"] or max(1, steps // 10)

    def judged_steps(self) -> tuple[int, ...]:
        """Ray's ASHA milestones: grace_period x reduction_factor^k below train.steps (every
        bracket's rungs are among them)."""
        milestone, steps = self._grace_period(self.values, self.steps), []
        while milestone < self.steps:
            steps.append(milestone)
            milestone *= self.values["reduction_factor"]
        return tuple(steps)

    def create(self, context: SchedulerContext):
        from ray.tune.schedulers import ASHAScheduler

        grace = self._grace_period(self.values, context.steps)
        return ASHAScheduler(time_attr=context.time_attr, metric=context.metric, mode=context.mode,
                             max_t=context.steps, grace_period=grace,
                             reduction_factor=self.values["reduction_factor"], brackets=self.values["brackets"])
