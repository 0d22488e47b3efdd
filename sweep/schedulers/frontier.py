"""`scheduler=frontier`: stop a trial its cheaper rivals already beat (rdc.stopping.FrontierRule).

Decode FLOPs are exact and known from the plan before training, so at rungs (fractions of
train.steps) a trial whose progress RD loss is worse, by more than a margin, than that of a
variant of no more decode kFLOPs/px at the same step cannot end on the frontier: it stops.
The decisions are the rule's, taken report by report in the order Tune delivers them, so
`rdc replay` over the sweep's logged curves predicts exactly which trials this stops.
The options are checked when the config loads; the Ray Tune TrialScheduler that drives the
rule is in sweep/schedulers/frontier_tune.py (Ray is imported only when a sweep starts).
"""

from __future__ import annotations

from rdc.stopping import DEFAULT_CURVE_MULTIPLE, DEFAULT_RUNGS, DEFAULT_WINDOW, FrontierRule, Margin
from rdc.errors import UserError
from sweep.schedulers.base import SchedulerContext, TrialSchedulerFactory


class Frontier(TrialSchedulerFactory):
    name = "frontier"
    needs_costs = True
    options = {
        "rungs": list(DEFAULT_RUNGS),  # fractions of train.steps where trials are judged
        "margin": 0.0,  # relative: stop only when worse than a cheaper variant by this share of the loss
        "noise_multiple": 0.0,  # plus this many noise sds (of a difference of means over seeds)
        "noise_sd": None,  # the sweep's noise (pooled within-variant sd of RD loss); needed with noise_multiple
        "curve_multiple": DEFAULT_CURVE_MULTIPLE,  # plus this many sds of one evaluation, measured on the curves at the rung (benched)
        "revisit": True,  # a later arrival at a rung stops the earlier variants it beats there
        "window": DEFAULT_WINDOW,  # judge the mean of a trial's last `window` reports (1: the report at the rung; benched: 3)
    }

    def check(self, values: dict, steps: int) -> None:
        self.rule(values, steps)

    @staticmethod
    def rule(values: dict, steps: int) -> FrontierRule:
        """The decision object these options describe; UserError naming the option otherwise."""
        rungs = values["rungs"]
        if not isinstance(rungs, (list, tuple)) or not rungs or any(
                isinstance(r, bool) or not isinstance(r, (int, float)) for r in rungs):
            raise UserError("scheduler.rungs", rungs, allowed="a list of increasing fractions in (0, 1), e.g. [0.1, 0.25, 0.5]")
        for key in ("margin", "noise_multiple", "curve_multiple"):
            if isinstance(values[key], bool) or not isinstance(values[key], (int, float)) or values[key] < 0:
                raise UserError(f"scheduler.{key}", values[key], allowed="a number >= 0")
        noise = values["noise_sd"]
        if values["noise_multiple"] > 0 and (isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0):
            raise UserError("scheduler.noise_sd", noise, reason="a noise-scaled margin needs the sweep's measured noise",
                            allowed="a number >= 0: the pooled within-variant sd of rd_loss (rdc frontier --replicates)")
        if not isinstance(values["revisit"], bool):
            raise UserError("scheduler.revisit", values["revisit"], allowed="true, false")
        if isinstance(values["window"], bool) or not isinstance(values["window"], int) or values["window"] < 1:
            raise UserError("scheduler.window", values["window"], allowed="an integer >= 1")
        try:
            return FrontierRule(steps, tuple(float(r) for r in rungs),
                                Margin(float(values["margin"]), float(values["noise_multiple"]),
                                       None if noise is None else float(noise), float(values["curve_multiple"])),
                                revisit=values["revisit"], window=values["window"])
        except ValueError as err:
            raise UserError("scheduler.rungs", rungs, reason=str(err)) from None

    def judged_steps(self) -> tuple[int, ...]:
        return self.rule(self.values, self.steps).rung_steps

    def create(self, context: SchedulerContext):
        from sweep.schedulers.frontier_tune import FrontierScheduler  # Ray only once a sweep starts

        return FrontierScheduler(self.rule(self.values, context.steps), context.decode_kflops, context.metric,
                                 context.time_attr)
