"""How well a sweep's held-out curves rank its final RD loss: what any early-stopping policy can know.

A policy judges trials on their held-out curve (eval/rd_loss on fixed crops, a likelihood
estimate) while the frontier is made of final RD losses (real bitstreams on the whole evaluation
images). Two figures say whether the first can stand for the second, within each seed (variants
ranked against each other) and averaged over seeds (Spearman's rho of the ranks):
- at each rung: the last evaluation at or before it, against the final RD loss; near 0 the rung
  cannot tell who ends best, and no margin fixes that;
- at the curve's last point: near 1 when the curve measures what the final does. Low there means
  the held-out set is unlike the final evaluation (other crops, other images, an architecture
  that behaves differently at full size), and every curve-judging policy inherits that: make
  train.eval_crop / data.eval_dir like the final evaluation before trusting one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats

# Below this rho between the curve's last point and the final RD loss, a replay warns: the curve
# orders the variants another way than the frontier will (for a dozen variants chance alone
# reaches 0.5 one time in twenty; the noise bench's conv hyperpriors agree at 0.98).
POOR_END_AGREEMENT = 0.5


@dataclass(frozen=True)
class Agreement:
    rungs: tuple[tuple[float, float], ...]  # (rung fraction, rho) per rung; rho NaN where unknown
    end: float  # rho of the curves' last points against the final RD loss (NaN: unknown)
    seeds: int  # seeds the figures are averaged over (those with at least 3 finished variants)

    @property
    def end_is_poor(self) -> bool:
        return not math.isnan(self.end) and self.end < POOR_END_AGREEMENT

    def describe(self) -> str:
        rungs = ", ".join(f"at {rung:.0%} of the steps {_rho(rho)}" for rung, rho in self.rungs)
        text = (f"the held-out curve ranks the final RD loss with Spearman rho {rungs}, at its last point "
                f"{_rho(self.end)} (within each seed, mean over {self.seeds} seed(s))")
        if self.end_is_poor:
            text += (f". Below {POOR_END_AGREEMENT:g} at the last point the held-out set orders the variants "
                     "unlike the final evaluation, so no policy judging this curve can be trusted to keep the "
                     "final frontier: make train.eval_crop and data.eval_dir like the final evaluation")
        return text


def _rho(value: float) -> str:
    return "unknown" if math.isnan(value) else f"{value:.2f}"


def _within_seeds(pairs: list[tuple[object, float, float]]) -> tuple[float, int]:
    """Mean over seeds of Spearman's rho between the two values of (seed, a, b) rows."""
    frame = pd.DataFrame(pairs, columns=["seed", "a", "b"])
    rhos = []
    for _, rows in frame.groupby("seed", sort=False):
        # Every value tied on either side: no order to agree with.
        if len(rows) > 2 and rows["a"].nunique() > 1 and rows["b"].nunique() > 1:
            rhos.append(float(stats.spearmanr(rows["a"], rows["b"]).statistic))
    return (float(sum(rhos) / len(rhos)), len(rhos)) if rhos else (math.nan, 0)


def curve_agreement(curves: list, max_steps: int, rungs: tuple[float, ...]) -> Agreement:
    """`curves`: analysis.replay.Curve objects (not imported: replay imports this module).
    The rank agreement of the curves with their final RD loss, at each rung and at the end.
    Only trials with a final RD loss count; a seed needs three such variants to be ranked."""
    done = [c for c in curves if c.final_rd_loss is not None and c.steps]
    per_rung = []
    for rung in rungs:
        limit = rung * max_steps
        pairs = [(str(c.seed), c.rd_loss[max(i for i, s in enumerate(c.steps) if s <= limit)], c.final_rd_loss)
                 for c in done if c.steps[0] <= limit]
        per_rung.append((rung, _within_seeds(pairs)[0]))
    end, seeds = _within_seeds([(str(c.seed), c.rd_loss[-1], c.final_rd_loss) for c in done])
    return Agreement(tuple(per_rung), end, seeds)
