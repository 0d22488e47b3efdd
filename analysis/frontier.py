"""Pareto frontier, non-dominated ranks and hypervolume over 2 or 3 objectives.

Objectives are {column: "min" | "max"}. Run a dominates run b when a is at least as good on
every objective and strictly better on one. Identical runs do not dominate each other, so ties
share a rank (and all sit on the frontier). Runs missing an objective get no rank.

Non-dominated sorting (Deb et al. 2002, NSGA-II): rank 1 is the frontier; rank k the frontier
of what remains after removing ranks 1..k-1.

Hypervolume (Zitzler & Thiele 1998): the volume dominated by the frontier and bounded by a
reference point. Raw objectives have unrelated units (kFLOPs/px, ms, RD loss), so each is first
normalised to [0, 1] with 0 = best and 1 = worst over the ranked runs (or over bounds the caller
fixes, which is what makes two sweeps comparable); the reference point is 1.1 on every axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DIRECTIONS = ("min", "max")
RANK_COLUMN = "pareto_rank"
REFERENCE_POINT = 1.1  # on every normalised axis: worst observed value plus 10 % of the range
_CHUNK = 1024  # rows of the domination matrix computed at once (bounds memory to n x 1024 x d)


def _check(objectives: dict[str, str]) -> None:
    if not 1 <= len(objectives) <= 3:
        raise ValueError(f"objectives: {len(objectives)} given, 1 to 3 supported")
    for column, direction in objectives.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"objective {column!r}: direction {direction!r}, allowed: min, max")


def minimisation_matrix(frame: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    """(n, d) float array, every objective turned into one to minimise (maximised ones negated)."""
    _check(objectives)
    return np.column_stack([
        frame[column].to_numpy(dtype=float) * (1.0 if direction == "min" else -1.0)
        for column, direction in objectives.items()
    ])


def domination_matrix(values: np.ndarray) -> np.ndarray:
    """dominates[i, j]: point i dominates point j (all minimised)."""
    n = len(values)
    dominates = np.zeros((n, n), dtype=bool)
    for start in range(0, n, _CHUNK):
        block = values[start : start + _CHUNK, None, :]
        no_worse = np.all(block <= values[None, :, :], axis=2)
        better = np.any(block < values[None, :, :], axis=2)
        dominates[start : start + _CHUNK] = no_worse & better
    return dominates


def nondominated_ranks(values: np.ndarray) -> np.ndarray:
    """Rank (1 = frontier) of every row of a (n, d) minimisation array with no NaN."""
    n = len(values)
    ranks = np.zeros(n, dtype=int)
    if n == 0:
        return ranks
    dominates = domination_matrix(values)
    dominated_by = dominates.sum(axis=0)
    current = np.flatnonzero(dominated_by == 0)
    rank = 1
    while current.size:
        ranks[current] = rank
        dominated_by = dominated_by - dominates[current].sum(axis=0)
        dominated_by[ranks > 0] = -1  # never picked again
        current = np.flatnonzero(dominated_by == 0)
        rank += 1
    return ranks


def rank_runs(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """A copy of `frame` with `pareto_rank` (1 = frontier, <NA> for runs missing an objective)."""
    values = minimisation_matrix(frame, objectives)
    complete = ~np.isnan(values).any(axis=1)
    ranks = pd.array([pd.NA] * len(frame), dtype="Int64")
    ranks[complete] = nondominated_ranks(values[complete])
    out = frame.copy()
    out[RANK_COLUMN] = ranks
    return out


def pareto_mask(frame: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    """True for rows on the frontier (rows missing an objective are never on it)."""
    return (rank_runs(frame, objectives)[RANK_COLUMN] == 1).fillna(False).to_numpy(dtype=bool)


def frontier(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The frontier rows, sorted by the first objective (best first)."""
    rows = frame[pareto_mask(frame, objectives)]
    first = next(iter(objectives))
    return rows.sort_values(first, ascending=objectives[first] == "min", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Hypervolume:
    """The hypervolume of a frontier and everything needed to reproduce it."""

    value: float
    objectives: dict  # column -> direction
    bounds: dict  # column -> (best, worst) in raw units: normalised 0 and 1
    reference: float  # the reference point on every normalised axis
    n_points: int  # frontier points inside the reference box

    @property
    def maximum(self) -> float:
        """The hypervolume of a single point that is best on every axis."""
        return self.reference ** len(self.objectives)

    def describe(self) -> str:
        axes = "; ".join(f"{c} ({d}): 0 = {self.bounds[c][0]:.6g}, 1 = {self.bounds[c][1]:.6g}"
                         for c, d in self.objectives.items())
        return (f"hypervolume {self.value:.4f} (of at most {self.maximum:.4f}) from {self.n_points} frontier points;"
                f" each objective normalised to 0 = best, 1 = worst [{axes}]; reference point {self.reference:g} on every axis")


def hypervolume(frame: pd.DataFrame, objectives: dict[str, str], *, bounds: dict | None = None,
                reference: float = REFERENCE_POINT) -> Hypervolume:
    """Hypervolume of the runs' frontier after normalising each objective to 0 = best, 1 = worst.

    `bounds` {column: (best, worst)} fixes the normalisation in raw units (use the same bounds
    to compare sweeps); by default they are the best and worst values among the complete runs.
    """
    values = minimisation_matrix(frame, objectives)
    values = values[~np.isnan(values).any(axis=1)]
    columns = list(objectives)
    signs = np.array([1.0 if objectives[c] == "min" else -1.0 for c in columns])
    if bounds is None:
        if len(values) == 0:
            raise ValueError("hypervolume: no run has every objective")
        best, worst = values.min(axis=0), values.max(axis=0)
    else:
        missing = [c for c in columns if c not in bounds]
        if missing:
            raise ValueError(f"hypervolume bounds missing for {missing}")
        best = np.array([bounds[c][0] for c in columns], dtype=float) * signs
        worst = np.array([bounds[c][1] for c in columns], dtype=float) * signs
        if np.any(worst <= best):
            raise ValueError("hypervolume bounds: each worst value must be worse than its best value")
    normalised = _scaled(values, best, worst)
    inside = normalised[np.all(normalised < reference, axis=1)]
    front = inside[nondominated_ranks(inside) == 1] if len(inside) else inside
    front = np.unique(front, axis=0)
    value = _volume(front, np.full(len(columns), reference))
    raw_bounds = {c: (float(best[i] * signs[i]), float(worst[i] * signs[i])) for i, c in enumerate(columns)}
    return Hypervolume(float(value), dict(objectives), raw_bounds, reference, len(front))


def normalised(frame: pd.DataFrame, objectives: dict[str, str], bounds: dict) -> np.ndarray:
    """The rows' objectives on hypervolume()'s axes: minimised, 0 = best and 1 = worst of `bounds`
    (a Hypervolume's raw bounds), so a point's box reaches to the reference point on each axis."""
    signs = np.array([1.0 if objectives[c] == "min" else -1.0 for c in objectives])
    best = np.array([bounds[c][0] for c in objectives], dtype=float) * signs
    worst = np.array([bounds[c][1] for c in objectives], dtype=float) * signs
    return _scaled(minimisation_matrix(frame, objectives), best, worst)


def _scaled(values: np.ndarray, best: np.ndarray, worst: np.ndarray) -> np.ndarray:
    span = np.where(worst > best, worst - best, 1.0)  # an objective nobody varies adds no spread
    return (values - best) / span


def _volume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact volume dominated by `points` (minimised, all below `reference`), by slicing the last axis."""
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    if points.shape[1] == 2:
        order = np.argsort(points[:, 0], kind="stable")
        x, y = points[order, 0], np.minimum.accumulate(points[order, 1])
        widths = np.diff(np.append(x, reference[0]))
        return float(np.sum(widths * (reference[1] - y)))
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    tops = np.append(points[1:, -1], reference[-1])
    total = 0.0
    for k in range(len(points)):
        thickness = tops[k] - points[k, -1]
        if thickness > 0:
            total += thickness * _volume(points[: k + 1, :-1], reference[:-1])
    return total
