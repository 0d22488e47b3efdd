"""Empirical attainment surfaces on hand-made fronts, their expected corners written down; the
staircase drawn from them; the figure with error bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.attainment import (attainment_surface, attainment_surfaces, level_for, plot_attainment, seed_fronts,
                                 surface_path)
from rdc import names

X, Y = names.DECODE_KFLOPS_PER_PX, names.RD_LOSS
MINIMISE = {X: "min", Y: "min"}
# Three seeds' fronts, both objectives minimised:
#   seed 0: (1, 5) (3, 2)     seed 1: (2, 4) (4, 1)     seed 2: (2, 6) (5, 3)
# Best y each seed reaches up to x:  x = 1    2    3    4    5
#   seed 0                               5    5    2    2    2
#   seed 1                               -    4    4    1    1
#   seed 2                               -    6    6    6    3
# The k-th smallest at each x is the k-surface; its corners are where it steps down.
SEEDS = [np.array([[1, 5], [3, 2]]), np.array([[2, 4], [4, 1]]), np.array([[2, 6], [5, 3]])]
LEVEL_1 = [[1, 5], [2, 4], [3, 2], [4, 1]]  # reached by any seed: the front of all points
LEVEL_2 = [[2, 5], [3, 4], [4, 2]]  # by two of three: the 50 % surface
LEVEL_3 = [[2, 6], [5, 3]]  # by all three: the 90 % (and 100 %) surface


def fronts_frame(seeds=SEEDS, objectives=MINIMISE) -> list[pd.DataFrame]:
    x, y = objectives
    return [pd.DataFrame({x: s[:, 0].astype(float), y: s[:, 1].astype(float)}) for s in seeds]


@pytest.mark.parametrize("level, corners", [(1, LEVEL_1), (2, LEVEL_2), (3, LEVEL_3)])
def test_surfaces_of_a_hand_made_example(level, corners):
    assert attainment_surface(SEEDS, level).tolist() == corners


def test_percent_surfaces_with_their_levels():
    surfaces = attainment_surfaces(fronts_frame(), MINIMISE)
    expected = pd.DataFrame([[50, 2, 3, *c] for c in LEVEL_2] + [[90, 3, 3, *c] for c in LEVEL_3],
                            columns=["percent", "level", "n_sets", X, Y])
    pd.testing.assert_frame_equal(surfaces, expected, check_dtype=False)
    # The same fronts keyed by seed give the same surfaces.
    keyed = attainment_surfaces(dict(enumerate(fronts_frame())), MINIMISE, percents=(100 / 3,))
    assert keyed[[X, Y]].to_numpy().tolist() == LEVEL_1 and set(keyed["level"]) == {1}


def test_a_maximised_objective_mirrors_the_surface():
    # PSNR is maximised: the same example with y negated has the same surfaces, negated.
    objectives = {X: "min", names.PSNR: "max"}
    mirrored = [s * np.array([1, -1]) for s in SEEDS]
    surfaces = attainment_surfaces(fronts_frame(mirrored, objectives), objectives, percents=(50,))
    assert surfaces[[X, names.PSNR]].to_numpy().tolist() == [[x, -y] for x, y in LEVEL_2]
    # Both maximised: x negated too, and the corners still run from the best x.
    both = {"throughput": "max", names.PSNR: "max"}
    flipped = [-s for s in SEEDS]
    surfaces = attainment_surfaces(fronts_frame(flipped, both), both, percents=(90,))
    assert surfaces[["throughput", names.PSNR]].to_numpy().tolist() == [[-x, -y] for x, y in LEVEL_3]


def test_ties_duplicates_and_dominated_points():
    sets = [np.array([[1, 3], [1, 2], [2, 2], [3, 3]]),  # (1, 2) dominates the rest of this set
            np.array([[1, 2], [1, 2]]),  # the same point twice
            np.array([[0, 9]])]
    assert attainment_surface(sets, 1).tolist() == [[0, 9], [1, 2]]
    assert attainment_surface(sets, 2).tolist() == [[1, 2]]
    assert attainment_surface(sets, 3).tolist() == [[1, 9]]
    assert attainment_surface([np.empty((0, 2)), np.array([[1, 1]])], 2).tolist() == []  # one set reaches nothing


@pytest.mark.parametrize("percent, n_sets, level", [
    (50, 3, 2), (90, 3, 3), (50, 4, 2), (90, 10, 9), (100 / 3, 3, 1), (10, 3, 1), (100, 5, 5), (50, 1, 1)])
def test_level_of_a_percent(percent, n_sets, level):
    assert level_for(percent, n_sets) == level


def test_bad_levels_and_objectives_are_refused():
    with pytest.raises(ValueError, match="percent"):
        level_for(0, 3)
    with pytest.raises(ValueError, match="level: 4"):
        attainment_surface(SEEDS, 4)
    with pytest.raises(ValueError, match="exactly 2"):
        attainment_surfaces(fronts_frame(), {X: "min"})


def test_staircase_through_the_corners():
    surfaces = attainment_surfaces(fronts_frame(), MINIMISE, percents=(50,))
    path = surface_path(surfaces, MINIMISE, far={X: 6.0, Y: 7.0})
    # Down from the top edge to the first corner, then across and down through each, out to the right edge.
    assert path.tolist() == [[2, 7], [2, 5], [3, 5], [3, 4], [4, 4], [4, 2], [6, 2]]


def test_seed_fronts_from_runs():
    frame = pd.DataFrame({"run_id": list("abcdefg"), names.TAG_VARIANT_ID: list("uvuvuvw"),
                          names.TAG_SEED: [0, 0, 1, 1, 2, 2, None],
                          X: [1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 0.5], Y: [5.0, 2.0, 5.0, 6.0, 5.0, 4.0, 0.1]})
    fronts = seed_fronts(frame, MINIMISE)
    assert sorted(fronts) == [0, 1, 2]  # the run without a seed belongs to no seed
    assert fronts[0][names.TAG_VARIANT_ID].tolist() == ["u", "v"]
    assert fronts[1][names.TAG_VARIANT_ID].tolist() == ["u"]  # v is dominated in seed 1


def test_figure_draws_intervals_and_surfaces(tmp_path):
    table = pd.DataFrame({
        "label": ["A", "B", None], names.TAG_VARIANT_ID: ["u", "v", "w"], names.TAG_FAMILY: ["Conv/Hyperprior:Conv"] * 3,
        f"{X}_mean": [4.0, 2.0, 5.0], f"{X}_ci_low": [4.0, 2.0, 5.0], f"{X}_ci_high": [4.0, 2.0, 5.0],
        f"{Y}_mean": [1.5, 4.5, 5.0], f"{Y}_ci_low": [1.0, 4.0, np.nan], f"{Y}_ci_high": [2.0, 5.0, np.nan]})
    surfaces = attainment_surfaces(fronts_frame(), MINIMISE)
    png = tmp_path / "attainment.png"
    fig = plot_attainment(table, surfaces, MINIMISE, path=png)
    assert png.stat().st_size > 10_000
    ax = fig.axes[0]
    lines = {line.get_label(): line.get_xydata() for line in ax.get_lines() if "attainment" in line.get_label()}
    assert set(lines) == {"50 % attainment (2 of 3 seeds)", "90 % attainment (3 of 3 seeds)"}
    for label, corners in (("50 % attainment (2 of 3 seeds)", LEVEL_2), ("90 % attainment (3 of 3 seeds)", LEVEL_3)):
        drawn = lines[label].tolist()
        assert all(c in drawn for c in corners)
    # One error-bar container per family, with the interval of y around each mean.
    (bars,) = ax.containers
    segments = [s.tolist() for s in bars.lines[2][1].get_segments()]
    assert segments[:2] == [[[4.0, 1.0], [4.0, 2.0]], [[2.0, 4.0], [2.0, 5.0]]]
    assert sorted(t.get_text() for t in ax.texts) == ["A", "B"]
