"""The empirical attainment function (EAF) of the frontier across seeds, for two objectives.

A set of points attains a goal z when one of its points is at least as good as z on both
objectives. Given m sets, one per seed (the frontier of that seed's runs, one run per variant), the
EAF at z is the share of the m sets that attain z (Grunert da Fonseca, Fonseca & Hall, EMO 2001).
The k-attainment surface bounds the goals that at least k of the m sets attain; the p % surface
is the k-surface with k = ceil(p m / 100), at least 1 (the rule of moocore and the EAF tools of
Lopez-Ibanez et al.): with 3 seeds the 50 % surface is what 2 of them reach (the median frontier)
and the 90 % surface what all 3 reach; the 1/m surface is the frontier of all runs together.

Exact in 2-D, objectives turned into ones to minimise as analysis.frontier does: set j reaches
y = f_j(x), the best y among its points with x' <= x (a staircase, +inf left of its first point),
so it attains (x, y) iff y >= f_j(x), and at least k sets attain it iff y >= g_k(x), the k-th
smallest of f_1(x), ..., f_m(x). g_k is a staircase that changes only at the points' x values;
the surface is given by its corners, the points where g_k steps down, sorted by the first
objective from best to worst: what `attainment_surfaces` returns and `surface_path` turns into
the line to draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import DPI, family_styles
from analysis.frontier import frontier, minimisation_matrix
from analysis.query import LABEL_COLUMN
from analysis.replicates import SEED_COLUMN, distinct_replicates, stat_column
from rdc import names

PERCENTS = (50, 90)
PERCENT_COLUMN = "percent"
LEVEL_COLUMN = "level"  # k: the number of seeds that attain every goal on the surface
SETS_COLUMN = "n_sets"  # m: the number of seeds
LINE_STYLES = {50: "-", 90: "--"}
OTHER_LINE_STYLE = ":"
_TOLERANCE = math.sqrt(np.finfo(float).eps)  # p m / 100 this close to an integer is that integer


def level_for(percent: float, n_sets: int) -> int:
    """k of the p % attainment surface of m sets: ceil(p m / 100), at least 1."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent: {percent}, allowed: above 0, at most 100")
    exact = percent * n_sets / 100
    k = math.floor(exact) if exact - math.floor(exact) <= _TOLERANCE else math.ceil(exact)
    return max(1, k)


def attainment_surface(sets: Sequence[np.ndarray], level: int) -> np.ndarray:
    """Corners of the `level`-attainment surface of `sets`, each an (n, 2) array of points to
    minimise (no NaN): a (k, 2) array, first column ascending, second strictly descending."""
    m = len(sets)
    if not 1 <= level <= m:
        raise ValueError(f"level: {level}, allowed: 1 to {m} (the number of sets)")
    points = [np.asarray(s, dtype=float).reshape(-1, 2) for s in sets]
    xs = np.unique(np.concatenate([p[:, 0] for p in points]))
    reached = np.full((len(xs), m), np.inf)  # reached[i, j] = f_j(xs[i])
    for j, p in enumerate(points):
        if not len(p):
            continue
        order = np.argsort(p[:, 0], kind="stable")
        px, best_y = p[order, 0], np.minimum.accumulate(p[order, 1])
        last = np.searchsorted(px, xs, side="right") - 1  # the last point with x' <= x
        reached[:, j] = np.where(last >= 0, best_y[np.maximum(last, 0)], np.inf)
    g = np.sort(reached, axis=1)[:, level - 1]
    before = np.concatenate([[np.inf], g[:-1]])
    corner = np.isfinite(g) & (g < before)
    return np.column_stack([xs[corner], g[corner]])


def seed_fronts(frame: pd.DataFrame, objectives: dict[str, str]) -> dict[int, pd.DataFrame]:
    """{seed: that seed's frontier} (analysis.frontier.frontier over the runs with the seed, one per
    variant). Runs without a seed tag belong to no seed and are left out."""
    _check_two(objectives)
    runs, _ = distinct_replicates(frame)
    seeded = runs[runs[SEED_COLUMN].notna()]
    return {int(seed): frontier(group.reset_index(drop=True), objectives)
            for seed, group in seeded.groupby(SEED_COLUMN, sort=True)}


def attainment_surfaces(fronts: Mapping[object, pd.DataFrame] | Sequence[pd.DataFrame], objectives: dict[str, str],
                        percents: Sequence[float] = PERCENTS) -> pd.DataFrame:
    """The p % attainment surfaces of `fronts` (one frame per seed, with the objectives' columns;
    seed_fronts gives them) for each p in `percents`.

    One row per corner: percent, level (k), n_sets (m), and the two objectives in their own units,
    sorted by percent, then along the surface from the best value of the first objective.
    """
    _check_two(objectives)
    frames = list(fronts.values()) if isinstance(fronts, Mapping) else list(fronts)
    if not frames:
        raise ValueError("attainment surfaces need at least one set of points")
    columns = list(objectives)
    signs = np.array([1.0 if objectives[c] == "min" else -1.0 for c in columns])
    sets = []
    for points in frames:
        values = minimisation_matrix(points, objectives)
        sets.append(values[~np.isnan(values).any(axis=1)])
    rows = []
    for percent in percents:
        k = level_for(percent, len(sets))
        for corner in attainment_surface(sets, k) * signs:
            rows.append({PERCENT_COLUMN: percent, LEVEL_COLUMN: k, SETS_COLUMN: len(sets),
                         columns[0]: float(corner[0]), columns[1]: float(corner[1])})
    return pd.DataFrame(rows, columns=[PERCENT_COLUMN, LEVEL_COLUMN, SETS_COLUMN, *columns])


def surface_path(surface: pd.DataFrame, objectives: dict[str, str], far: Mapping[str, float]) -> np.ndarray:
    """The staircase line of one surface's corners (rows of one percent), as (n, 2) vertices in the
    objectives' units: from the far end of the second objective down to the first corner, then
    across and down through every corner, out to the far end of the first objective. `far`
    {objective: value}: where each axis ends on the side of worse values (e.g. the plot's edge)."""
    _check_two(objectives)
    x, y = objectives
    if surface.empty:
        return np.empty((0, 2))
    corners = surface[[x, y]].to_numpy(dtype=float)
    vertices = [(corners[0, 0], far[y])]
    for i, (cx, cy) in enumerate(corners):
        vertices.append((cx, cy))
        next_x = corners[i + 1, 0] if i + 1 < len(corners) else far[x]
        vertices.append((next_x, cy))
    return np.array(vertices)


def plot_attainment(table: pd.DataFrame, surfaces: pd.DataFrame, objectives: dict[str, str], *,
                    path: str | Path | None = None, ax=None, title: str | None = None) -> Figure:
    """Variant means with their confidence intervals as error bars on both objectives, labelled as
    on the frontier table, and the attainment surfaces as staircases (50 % solid, 90 % dashed).

    `table`: analysis.replicates.replicate_frontier's rows (columns <objective>_mean, _ci_low,
    _ci_high, label, family); `surfaces`: attainment_surfaces. Writes a PNG to `path` if given.
    """
    _check_two(objectives)
    x, y = objectives
    if ax is None:
        fig = Figure(figsize=(6.4, 4.8))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    styles = family_styles(table[names.TAG_FAMILY]) if names.TAG_FAMILY in table else {}
    for family, rows in table.groupby(table.get(names.TAG_FAMILY, pd.Series("", index=table.index)).fillna(""),
                                      sort=True):
        style = styles.get(family, {"color": "tab:gray", "marker": "o"})
        ax.errorbar(rows[stat_column(x, "mean")], rows[stat_column(y, "mean")],
                    xerr=_error(rows, x), yerr=_error(rows, y), fmt=style["marker"], color=style["color"],
                    capsize=3, label=family or None)
    for _, row in table.iterrows():
        if isinstance(row.get(LABEL_COLUMN), str):
            ax.annotate(row[LABEL_COLUMN], (row[stat_column(x, "mean")], row[stat_column(y, "mean")]),
                        textcoords="offset points", xytext=(5, 5))
    far = _far_corner(table, surfaces, objectives)
    for percent, surface in surfaces.groupby(PERCENT_COLUMN, sort=True):
        vertices = surface_path(surface, objectives, far)
        k, m = int(surface[LEVEL_COLUMN].iloc[0]), int(surface[SETS_COLUMN].iloc[0])
        ax.plot(vertices[:, 0], vertices[:, 1], LINE_STYLES.get(percent, OTHER_LINE_STYLE), color="black",
                linewidth=1.2, label=f"{percent:g} % attainment ({k} of {m} seeds)")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or "frontier across seeds: means with intervals, attainment surfaces")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if path is not None:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


def _error(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """(2, n) distances from the mean to each end of its interval; 0 where there is none (one seed)."""
    mean = rows[stat_column(metric, "mean")].to_numpy(dtype=float)
    low = mean - rows[stat_column(metric, "ci_low")].to_numpy(dtype=float)
    high = rows[stat_column(metric, "ci_high")].to_numpy(dtype=float) - mean
    return np.nan_to_num(np.vstack([low, high]), nan=0.0)


def _far_corner(table: pd.DataFrame, surfaces: pd.DataFrame, objectives: dict[str, str]) -> dict[str, float]:
    """Where the staircases end: 5 % of the spread past the worst mean, interval end or corner."""
    far = {}
    for metric, direction in objectives.items():
        values = np.concatenate([table[stat_column(metric, s)].to_numpy(dtype=float) for s in ("mean", "ci_low", "ci_high")]
                                + [surfaces[metric].to_numpy(dtype=float)])
        values = values[np.isfinite(values)]
        if not len(values):
            far[metric] = 1.0 if direction == "min" else 0.0
            continue
        spread = (values.max() - values.min()) or 1.0
        far[metric] = values.max() + 0.05 * spread if direction == "min" else values.min() - 0.05 * spread
    return far


def _check_two(objectives: dict[str, str]) -> None:
    if len(objectives) != 2:
        raise ValueError(f"attainment surfaces: {len(objectives)} objectives given, exactly 2 supported")
    minimisation_matrix(pd.DataFrame(columns=list(objectives), dtype=float), objectives)  # checks directions
