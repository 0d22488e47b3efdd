"""Early-stopping baselines, as pure, incremental decision objects like rdc.stopping.FrontierRule.

Every policy here has one method, `on_report(report) -> Decision`, and keeps only what earlier
reports told it; `rdc replay` (analysis/replay.py) drives them over a finished sweep's learning
curves beside the frontier rule (rdc/stopping.py, which the sweep's scheduler drives too; its names
which the replay imports from there). Nothing here imports Ray, torch, sweep or jobs.

The baselines:
- AshaRule: Ray Tune's ASHA on RD loss alone (Li et al. 2020), one bracket, same cut-off rule.
- MoAshaRule: MO-ASHA (Schmucker et al. 2021): ASHA whose promotion order is non-dominated
  sorting with an epsilon-net inside each front (Salinas et al. 2021), reduction factor 3.
- ScaledParetoRule: Ax's ScaledParetoEarlyStoppingStrategy as documented: stop a trial that the
  current front, shrunk toward the reference point by a factor (0.5), still strictly dominates,
  once it passed `min_progression` and `min_curves` trials have completed.
- FinishChosen: finish a fixed set of variants, stop the others at a step (the random baseline).
"""

from __future__ import annotations

import math

import numpy as np

from rdc.stopping import CONTINUE, STOP, Decision, Dominator, Report, _known


# --- Baselines -------------------------------------------------------------------------------


def asha_milestones(max_steps: int, grace_steps: int, reduction_factor: float) -> list[float]:
    """The rungs of one ASHA bracket (s = 0), as Ray's _Bracket builds them: grace * rf^k <= max."""
    count = int(np.log(max_steps / grace_steps) / np.log(reduction_factor) + 1)
    return [grace_steps * reduction_factor**k for k in range(count)]


class _SuccessiveHalving:
    """The bookkeeping ASHA and MO-ASHA share (Ray's _Bracket): a trial is judged once per rung,
    at the highest rung it newly passed, against the values recorded there before it."""

    name = "sh"

    def __init__(self, max_steps: int, grace_steps: int, reduction_factor: float):
        if not 0 < grace_steps <= max_steps or reduction_factor <= 1:
            raise ValueError(f"grace_steps={grace_steps} (0 < . <= {max_steps}), reduction_factor={reduction_factor} (> 1)")
        self.max_steps, self.grace_steps, self.reduction_factor = max_steps, grace_steps, reduction_factor
        self.milestones = asha_milestones(max_steps, grace_steps, reduction_factor)
        self._recorded: list[dict[str, tuple]] = [{} for _ in self.milestones]
        self.stopped: set[str] = set()

    def on_report(self, report: Report) -> Decision:
        base = dict(policy=self.name, trial_id=report.trial_id, variant_id=report.variant_id, step=report.step)
        if report.trial_id in self.stopped:
            return Decision(STOP, reason="stopped earlier", **base)
        finished = report.step >= self.max_steps  # Ray ends a trial at max_t, then records its result
        for index in reversed(range(len(self.milestones))):
            milestone, recorded = self.milestones[index], self._recorded[index]
            if report.step < milestone or report.trial_id in recorded:
                continue
            point = self._point(report)
            stop = not finished and bool(recorded) and self._worse_than_cutoff(point, recorded)
            recorded[report.trial_id] = point
            if stop:
                self.stopped.add(report.trial_id)
            return Decision(STOP if stop else CONTINUE, reason=f"{'not ' if stop else ''}in the top 1/{self.reduction_factor:g} "
                            f"of {len(recorded)} at rung {milestone:g}", rung=milestone, rung_step=report.step,
                            rd_loss=report.rd_loss, **base)
        return Decision(CONTINUE, reason="no new rung reached", **base)


class AshaRule(_SuccessiveHalving):
    """Ray Tune's ASHA (one bracket) on RD loss: stop a trial worse than the (1 - 1/rf) quantile
    of the losses recorded at its rung before it (numpy's linear percentile, as Ray's cutoff)."""

    name = "asha"

    def __init__(self, max_steps: int, grace_steps: int, reduction_factor: float = 4):
        super().__init__(max_steps, grace_steps, reduction_factor)

    def describe(self) -> str:
        return f"ASHA on rd_loss, grace {self.grace_steps} steps, reduction factor {self.reduction_factor:g}"

    def _point(self, report: Report) -> tuple:
        return (-float(report.rd_loss),)  # Ray maximises metric_op * metric: -loss for mode=min

    def _worse_than_cutoff(self, point: tuple, recorded: dict) -> bool:
        cutoff = np.nanpercentile([p[0] for p in recorded.values()], (1 - 1 / self.reduction_factor) * 100)
        return point[0] < cutoff


def epsilon_net_order(points: np.ndarray) -> list[int]:
    """Promotion order of (n, d) minimised points: non-dominated fronts in turn, and inside each
    front an epsilon-net (Salinas et al. 2021): the point best on the first objective, then
    repeatedly the point farthest (Euclidean, each objective scaled to [0, 1] over all points)
    from those already chosen. Ties go to the lower index."""
    from analysis.frontier import nondominated_ranks

    n = len(points)
    if n == 0:
        return []
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    ranks = nondominated_ranks(points)
    order: list[int] = []
    for rank in range(1, ranks.max() + 1):
        members = [int(i) for i in np.flatnonzero(ranks == rank)]
        chosen = [min(members, key=lambda i: (points[i, 0], i))]
        rest = np.array([i for i in members if i != chosen[0]], dtype=int)
        # Each rest point's distance to the nearest chosen one, updated as points are chosen;
        # a chosen point's entry becomes -inf.
        nearest = np.linalg.norm(scaled[rest] - scaled[chosen[0]], axis=1)
        for _ in range(len(rest)):
            at = int(np.argmax(nearest))  # argmax keeps the first (lowest index) of ties
            pick = int(rest[at])
            chosen.append(pick)
            nearest[at] = -np.inf
            np.minimum(nearest, np.linalg.norm(scaled[rest] - scaled[pick], axis=1), out=nearest)
        order += chosen
    return order


class MoAshaRule(_SuccessiveHalving):
    """MO-ASHA on (RD loss, decode kFLOPs): at a rung, the arriving trial is ranked with everything
    recorded there (non-dominated sorting, epsilon-net inside fronts) and continues only if its
    position / count is at most 1/rf, the top 1/rf that successive halving promotes."""

    name = "mo-asha"

    def __init__(self, max_steps: int, grace_steps: int, reduction_factor: float = 3):
        super().__init__(max_steps, grace_steps, reduction_factor)

    def describe(self) -> str:
        return f"MO-ASHA (epsilon-net), grace {self.grace_steps} steps, reduction factor {self.reduction_factor:g}"

    def _point(self, report: Report) -> tuple:
        kflops = float(report.kflops) if _known(report.kflops) else math.inf
        return (float(report.rd_loss), kflops)

    def _worse_than_cutoff(self, point: tuple, recorded: dict) -> bool:
        if not math.isfinite(point[1]):
            return False  # unknown FLOPs: cannot be ranked, never stopped (as the frontier rule)
        points = np.array([p for p in recorded.values() if math.isfinite(p[1])] + [point])
        position = epsilon_net_order(points).index(len(points) - 1)
        return position / len(points) > 1 / self.reduction_factor


class ScaledParetoRule:
    """Ax's ScaledParetoEarlyStoppingStrategy on (RD loss, decode kFLOPs), from its documentation:
    at each report past `min_progression` steps, once `min_curves` trials have completed and at
    least `min_curves` trials with data at this step are strictly better than the reference point,
    stop the trial if some trial's improvement over the reference, scaled by `factor`, is still
    larger than this trial's on every objective (it is not weakly Pareto-efficient against the
    shrunk front). Ax takes the reference point from the user's objective thresholds; here it is
    the worst value at that step plus 10 % of the range on each objective (FLOPs: over all
    variants of the plan), the rule the hypervolume uses.
    """

    name = "ax-scaled-pareto"

    def __init__(self, max_steps: int, min_progression: int, min_curves: int = 5, factor: float = 0.5,
                 kflops_reference: float | None = None):
        if not 0 <= factor <= 1:
            raise ValueError(f"factor={factor} must be in [0, 1]")
        self.max_steps, self.min_progression, self.min_curves, self.factor = max_steps, min_progression, min_curves, factor
        self.kflops_reference = kflops_reference
        self._curves: dict[str, dict[int, float]] = {}  # trial -> step -> loss
        self._kflops: dict[str, float] = {}
        self._completed: set[str] = set()
        self.stopped: set[str] = set()

    def describe(self) -> str:
        return (f"Ax scaled-Pareto rule, factor {self.factor:g}, min_progression {self.min_progression} steps,"
                f" min_curves {self.min_curves}")

    def _value_at(self, trial: str, step: int) -> float | None:
        # Ax aligns curves by interpolating each one inside the range it covers (no extrapolation).
        curve = self._curves[trial]
        if step in curve:
            return curve[step]  # what np.interp gives at a knot, without sorting the curve
        steps = sorted(curve)
        if not steps or step < steps[0] or step > steps[-1]:
            return None
        return float(np.interp(step, steps, [curve[s] for s in steps]))

    def on_report(self, report: Report) -> Decision:
        base = dict(policy=self.name, trial_id=report.trial_id, variant_id=report.variant_id, step=report.step)
        if report.trial_id in self.stopped:
            return Decision(STOP, reason="stopped earlier", **base)
        if _known(report.rd_loss):
            self._curves.setdefault(report.trial_id, {})[report.step] = float(report.rd_loss)
        if _known(report.kflops):
            self._kflops[report.trial_id] = float(report.kflops)
        if report.step >= self.max_steps:
            self._completed.add(report.trial_id)
            return Decision(CONTINUE, reason="finished", **base)
        if report.step < self.min_progression:
            return Decision(CONTINUE, reason=f"before min_progression {self.min_progression}", **base)
        if len(self._completed) < self.min_curves:
            return Decision(CONTINUE, reason=f"{len(self._completed)} of min_curves {self.min_curves} trials completed", **base)
        if report.trial_id not in self._kflops or not _known(report.rd_loss):
            return Decision(CONTINUE, reason="decode FLOPs or loss unknown: never stopped", **base)
        others = {t: self._value_at(t, report.step) for t in self._curves if t in self._kflops}
        others = {t: v for t, v in others.items() if v is not None}
        losses = np.array(list(others.values()))
        flops = np.array([self._kflops[t] for t in others])
        every_flops = np.array(list(self._kflops.values()))
        loss_ref = losses.max() + 0.1 * (losses.max() - losses.min())
        flops_ref = self.kflops_reference if self.kflops_reference is not None else \
            every_flops.max() + 0.1 * (every_flops.max() - every_flops.min())
        centered = np.column_stack([loss_ref - losses, flops_ref - flops])  # larger is better, ref at 0
        if int((centered > 0).all(axis=1).sum()) < self.min_curves:
            return Decision(CONTINUE, reason=f"fewer than {self.min_curves} trials better than the reference point", **base)
        mine = np.array([loss_ref - report.rd_loss, flops_ref - self._kflops[report.trial_id]])
        beaten = (mine < self.factor * centered).all(axis=1)
        if not beaten.any():
            return Decision(CONTINUE, reason="weakly Pareto-efficient against the scaled front", rd_loss=report.rd_loss, **base)
        self.stopped.add(report.trial_id)
        names = [t for t, b in zip(others, beaten) if b]
        return Decision(STOP, reason=f"dominated by the front scaled by {self.factor:g} ({len(names)} trial(s))",
                        rd_loss=report.rd_loss, rung_step=report.step,
                        dominators=tuple(Dominator(t, others[t], self._kflops[t], 0.0) for t in names[:5]), **base)


class FinishChosen:
    """Finish the chosen variants; stop every other one at its first report at or past `stop_step`."""

    name = "finish-chosen"

    def __init__(self, chosen: set[str], stop_step: int, name: str = "finish-chosen"):
        self.chosen, self.stop_step, self.name = set(chosen), stop_step, name

    def describe(self) -> str:
        return f"finish {len(self.chosen)} chosen variants, stop the rest at step {self.stop_step}"

    def on_report(self, report: Report) -> Decision:
        base = dict(policy=self.name, trial_id=report.trial_id, variant_id=report.variant_id, step=report.step)
        if report.variant_id in self.chosen or report.step < self.stop_step:
            return Decision(CONTINUE, reason="chosen" if report.variant_id in self.chosen else "before the stop step", **base)
        return Decision(STOP, reason="not chosen", rung_step=report.step, **base)
