"""The frontier stopping rule: one held-out report in, one decision out.

Decode FLOPs are exact and known before training, so at rungs (fractions of the training steps)
a trial whose held-out RD loss is worse, by more than a margin, than that of a variant of no more
decode FLOPs at the same step cannot reach the frontier's cost range it would occupy: stop it.

FrontierRule keeps only what earlier reports told it, behind one method, `on_report(report) ->
Decision`. The same object is driven by a Ray Tune TrialScheduler during a sweep
(sweep/schedulers/, which maps CONTINUE/STOP onto Tune's) and by `rdc replay` over a finished
sweep's learning curves (analysis/replay.py), so given the same reports in the same order both
stop exactly the same trials: that is why it lives here, in the room both may import. It needs
numpy only (no Ray, torch or pandas). The baselines it is compared with live in analysis/stopping.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

CONTINUE = "CONTINUE"  # the same strings as ray.tune.schedulers.TrialScheduler's
STOP = "STOP"
DEFAULT_RUNGS = (0.1, 0.25, 0.5)
# scheduler=frontier's defaults (sweep/schedulers/frontier.py reads them here; conf/scheduler/frontier.yaml
# says the same): the margin is one sd of an evaluation measured on the curves at the rung, and a
# trial is judged on the mean of its last 3 evaluations, the setting bench/bench_early_stopping.py chose.
DEFAULT_CURVE_MULTIPLE = 1.0
DEFAULT_WINDOW = 3


@dataclass(frozen=True)
class Report:
    """One held-out evaluation of one trial: the only input any policy sees."""

    trial_id: str  # one (variant, seed) training run
    variant_id: str  # the architecture; replicates (seeds) share it
    step: int
    rd_loss: float  # held-out RD loss at `step` (eval/rd_loss)
    kflops: float | None  # decode kFLOPs/px of the variant, from the plan (None/NaN: unknown)


@dataclass(frozen=True)
class Dominator:
    """A variant that beat the judged one at a rung: its mean loss there, its FLOPs, the margin used."""

    variant_id: str
    rd_loss: float
    kflops: float
    margin: float  # in RD-loss units: the judged loss had to exceed rd_loss + margin


@dataclass(frozen=True)
class Decision:
    """What a policy decided on one report, with what a user needs to audit a stop."""

    action: str  # CONTINUE or STOP
    policy: str
    trial_id: str
    variant_id: str
    step: int
    reason: str
    rung: float | None = None  # the rung (a fraction of the steps, or a step milestone for ASHA)
    rung_step: int | None = None  # the step the rung's values were taken at
    rd_loss: float | None = None  # the value judged (the variant's mean over its seeds at the rung)
    seeds: int = 1  # how many of the variant's seeds that mean is over
    kflops: float | None = None  # the judged variant's decode kFLOPs/px (from the plan)
    dominators: tuple[Dominator, ...] = ()
    margin: str = ""  # the margin rule, e.g. "2 x noise sd 0.031 x sqrt(1/n_a + 1/n_b)"

    @property
    def stop(self) -> bool:
        return self.action == STOP

    def to_json(self) -> str:
        """The stop_decision tag of a stopped run (rdc.names.TAG_STOP_DECISION)."""
        return json.dumps(asdict(self), sort_keys=True, default=float)


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# --- The frontier rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Margin:
    """How much worse than a cheaper variant a trial must be to stop: relative and/or noise-scaled.

    Against a dominator u, variant v stops when loss_v > loss_u + relative * loss_v
    + (noise_multiple * noise_sd + curve_multiple * curve_sd) * sqrt(1/n_u + 1/n_v), where n are
    the numbers of seeds in each mean (the standard error of a difference of two means of
    independent seeds):
    - noise_sd: the sweep's measured noise, the pooled within-variant sd of the final RD loss;
    - curve_sd: measured on the curves themselves at the rung, by the rule: the pooled sd of one
      held-out evaluation around its trend, sqrt(mean((x_t - x_{t-1})^2) / 2) over each trial's
      last CURVE_POINTS evaluations (differences cancel the slow descent). It needs no replicates
      and is large where the curves still jump (early, on a plateau), small once they settle.
    """

    relative: float = 0.0
    noise_multiple: float = 0.0
    noise_sd: float | None = None
    curve_multiple: float = 0.0

    def __post_init__(self):
        if self.relative < 0 or self.noise_multiple < 0 or self.curve_multiple < 0:
            raise ValueError(f"margin: relative={self.relative}, noise_multiple={self.noise_multiple}, "
                             f"curve_multiple={self.curve_multiple}; each must be >= 0")
        if self.noise_multiple > 0 and not (_known(self.noise_sd) and self.noise_sd >= 0):
            raise ValueError(f"margin: a noise-scaled margin needs a measured noise sd >= 0, got {self.noise_sd}")

    def between(self, loss: float, seeds: int, dominator_seeds: int, curve_sd: float = 0.0) -> float:
        sd = self.noise_multiple * (self.noise_sd or 0.0) + self.curve_multiple * curve_sd
        return self.relative * loss + sd * math.sqrt(1 / seeds + 1 / dominator_seeds)

    def describe(self) -> str:
        parts = []
        if self.relative:
            parts.append(f"{self.relative:g} x loss")
        if self.noise_multiple:
            parts.append(f"{self.noise_multiple:g} x noise sd {self.noise_sd:.4g} x sqrt(1/n_a + 1/n_b)")
        if self.curve_multiple:
            parts.append(f"{self.curve_multiple:g} x the curves' sd at the rung x sqrt(1/n_a + 1/n_b)")
        return " + ".join(parts) or "0"


CURVE_POINTS = 5  # evaluations per trial the curve noise is measured over


@dataclass
class _RungValues:
    """What a rung knows: per variant, the loss of each seed that reached it, and the step."""

    losses: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> trial -> loss
    curve_noise: dict[str, float] = field(default_factory=dict)  # trial -> its curve's sd of one evaluation
    steps: dict[str, int] = field(default_factory=dict)  # variant -> step its values were taken at
    kflops: dict[str, float] = field(default_factory=dict)

    def mean(self, variant_id: str) -> tuple[float, int]:
        values = self.losses[variant_id].values()
        return sum(values) / len(values), len(values)  # a few seeds: plain Python beats np.mean 10x

    def curve_sd(self) -> float:
        """Pooled sd of one evaluation around its trend over the trials recorded here (0: none yet)."""
        values = list(self.curve_noise.values())
        return math.sqrt(float(np.mean(np.square(values)))) if values else 0.0


class FrontierRule:
    """Stop a trial whose held-out RD loss at a rung is dominated, by more than a margin, by a
    variant of no more decode FLOPs at the same step.

    - Rungs are fractions of `max_steps`; a trial is judged once per rung, at its first report at
      or past the rung's step (a report past several rungs is judged at the highest, as ASHA does).
    - Late reporters are judged when they reach a rung, against every variant already recorded
      there (including stopped ones: their loss at that step is still evidence).
    - `revisit` (default): a new value at a rung is also evidence against the variants recorded
      there before it. One whose latest rung is this one and that the newcomer dominates stops
      at its next report, so who stops at a rung does not depend on who reported first. A
      variant already past a later rung is left to that rung's evidence.
    - Only values taken at the same step are compared ("at a matched step"); with `window` > 1 a
      trial's value at a rung is the mean of its last `window` evaluations (a spike is not a verdict).
    - Replicates: a variant is judged on the mean over its seeds at the rung so far, and a stop
      is the variant's: every seed of it stops at its next report.
    - Missing decode FLOPs: such a variant is never stopped and never dominates another (whether
      it costs no more than another cannot be known).
    - Ties: a loss equal to a cheaper variant's (within the margin) never stops a trial; equal
      FLOPs count as "no more".
    """

    name = "frontier"

    def __init__(self, max_steps: int, rungs: tuple[float, ...] = DEFAULT_RUNGS, margin: Margin = Margin(), *,
                 revisit: bool = True, window: int = 1, label: str = ""):
        if window < 1:
            raise ValueError(f"window={window} must be >= 1")
        if max_steps <= 0:
            raise ValueError(f"max_steps={max_steps} must be positive")
        if not rungs or any(not 0 < r < 1 for r in rungs) or list(rungs) != sorted(set(rungs)):
            raise ValueError(f"rungs={rungs}: increasing fractions strictly between 0 and 1")
        self.max_steps, self.rungs, self.margin, self.revisit, self.window = max_steps, tuple(rungs), margin, revisit, window
        self.label = label  # what this setting is to a reader, e.g. "scheduler=frontier's defaults"
        self._recent: dict[str, list[float]] = {}  # trial -> its last max(window, CURVE_POINTS) held-out losses
        self.rung_steps = tuple(max(1, math.ceil(r * max_steps)) for r in rungs)
        self._rungs = [_RungValues() for _ in rungs]
        self._passed: dict[str, int] = {}  # trial -> index of the highest rung it was judged at
        self._latest: dict[str, int] = {}  # variant -> index of the highest rung any of its seeds reached
        self.stopped: dict[str, Decision] = {}  # variant -> the decision that stopped it

    def describe(self) -> str:
        again = "" if self.revisit else ", arrivals judged once"
        mean = f", mean of the last {self.window} evaluations" if self.window > 1 else ""
        return (f"frontier rule at {', '.join(f'{r:g}' for r in self.rungs)} of {self.max_steps} steps, "
                f"margin {self.margin.describe()}{mean}{again}" + (f" ({self.label})" if self.label else ""))

    def _dominators(self, values: _RungValues, variant: str) -> list[Dominator]:
        """The variants recorded at this rung that beat `variant` by more than the margin."""
        if variant not in values.kflops:
            return []
        loss, seeds = values.mean(variant)
        kflops, step = values.kflops[variant], values.steps[variant]
        curve_sd = values.curve_sd() if self.margin.curve_multiple else 0.0
        out = []
        for other, other_kflops in values.kflops.items():
            if other == variant or other_kflops > kflops or values.steps[other] != step:
                continue
            other_loss, other_seeds = values.mean(other)
            margin = self.margin.between(loss, seeds, other_seeds, curve_sd)
            if loss > other_loss + margin:
                out.append(Dominator(other, other_loss, other_kflops, margin))
        return sorted(out, key=lambda d: (d.rd_loss, d.kflops, d.variant_id))

    def on_report(self, report: Report) -> Decision:
        base = dict(policy=self.name, trial_id=report.trial_id, variant_id=report.variant_id, step=report.step,
                    margin=self.margin.describe())
        if report.variant_id in self.stopped:
            first = self.stopped[report.variant_id]
            reason = first.reason if first.trial_id == report.trial_id else \
                f"{first.reason}; the variant's stop, decided on {first.trial_id}'s report"
            return Decision(STOP, reason=reason, rung=first.rung, rung_step=first.rung_step, rd_loss=first.rd_loss,
                            seeds=first.seeds, kflops=first.kflops, dominators=first.dominators, **base)
        if _known(report.rd_loss):  # one spiky evaluation should not decide: optionally a short mean
            keep = max(self.window, CURVE_POINTS)
            self._recent[report.trial_id] = (self._recent.get(report.trial_id, []) + [float(report.rd_loss)])[-keep:]
        reached = [i for i, s in enumerate(self.rung_steps) if report.step >= s and i > self._passed.get(report.trial_id, -1)]
        if not reached:
            return Decision(CONTINUE, reason="no new rung reached", **base)
        index = reached[-1]
        self._passed[report.trial_id] = index
        self._latest[report.variant_id] = max(index, self._latest.get(report.variant_id, -1))
        rung, values = self.rungs[index], self._rungs[index]
        at = dict(rung=rung, rung_step=report.step)
        if not _known(report.rd_loss):
            return Decision(CONTINUE, reason="no held-out RD loss in this report: not judged", **at, **base)
        recent = self._recent[report.trial_id]
        values.losses.setdefault(report.variant_id, {})[report.trial_id] = float(np.mean(recent[-self.window:]))
        if len(recent) >= 3:  # the mean of `window` points is sqrt(window) times less noisy than one
            steps = np.diff(recent[-CURVE_POINTS:])
            values.curve_noise[report.trial_id] = math.sqrt(float(np.mean(steps**2)) / 2 / self.window)
        values.steps.setdefault(report.variant_id, report.step)
        loss, seeds = values.mean(report.variant_id)
        at.update(rd_loss=loss, seeds=seeds)
        if not _known(report.kflops):
            return Decision(CONTINUE, reason="decode FLOPs unknown: whether any variant costs no more cannot be "
                            "known, so it is never stopped", **at, **base)
        values.kflops[report.variant_id] = float(report.kflops)
        at["kflops"] = float(report.kflops)
        if self.revisit:
            self._revisit(index, report.variant_id)
        dominators = self._dominators(values, report.variant_id)
        if not dominators:
            return Decision(CONTINUE, reason=f"not dominated at rung {rung:g} by the {len(values.kflops) - 1} other "
                            "variant(s) recorded there", **at, **base)
        decision = Decision(STOP, reason=f"dominated at rung {rung:g} (step {values.steps[report.variant_id]}) by "
                            f"{len(dominators)} variant(s) of no more decode FLOPs", dominators=tuple(dominators),
                            **at, **base)
        self.stopped[report.variant_id] = decision
        return decision

    def _revisit(self, index: int, newcomer: str) -> None:
        """Stop (at their next report) the variants whose latest rung is `index` that `newcomer` beats."""
        values, rung = self._rungs[index], self.rungs[index]
        new_loss, new_seeds = values.mean(newcomer)
        new_kflops, new_step = values.kflops[newcomer], values.steps[newcomer]
        curve_sd = values.curve_sd() if self.margin.curve_multiple else 0.0
        for variant in list(values.kflops):
            if variant == newcomer or variant in self.stopped or self._latest.get(variant) != index:
                continue
            # Only a variant the newcomer beats needs its full list of dominators (O(n) each):
            # the test of the newcomer alone keeps a rung's revisit O(n), not O(n^2).
            if new_kflops > values.kflops[variant] or values.steps[variant] != new_step:
                continue
            loss, seeds = values.mean(variant)
            if not loss > new_loss + self.margin.between(loss, seeds, new_seeds, curve_sd):
                continue
            dominators = self._dominators(values, variant)
            if any(d.variant_id == newcomer for d in dominators):
                loss, seeds = values.mean(variant)
                self.stopped[variant] = Decision(
                    STOP, policy=self.name, trial_id=next(iter(values.losses[variant])), variant_id=variant,
                    step=values.steps[variant], margin=self.margin.describe(),
                    reason=f"dominated at rung {rung:g} (step {values.steps[variant]}) by {len(dominators)} variant(s) "
                           f"of no more decode FLOPs, {newcomer} arriving after it",
                    rung=rung, rung_step=values.steps[variant], rd_loss=loss, seeds=seeds, kflops=values.kflops[variant],
                    dominators=tuple(dominators))
