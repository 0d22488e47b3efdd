"""Frontier, non-dominated ranks and hypervolume: worked out by hand on MLflow data, and
checked against brute force on random points."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.frontier import hypervolume, nondominated_ranks, rank_runs
from analysis.query import frontier_table, query_frontier
from analysis.runs import runs
from rdc import names

KFLOPS, LOSS, PSNR = names.DECODE_KFLOPS_PER_PX, names.RD_LOSS, names.PSNR


def _ranks_by_name(frame: pd.DataFrame) -> dict:
    return {row.run_name: (None if pd.isna(row.pareto_rank) else int(row.pareto_rank)) for row in frame.itertuples()}


def test_known_frontier_ranks_ties_missing_and_failed_runs(known_store):
    frame = runs("known", known_store)
    assert sorted(frame["run_name"]) == ["a", "b", "c", "d", "e", "f", "g", "h", "k"]  # no failed, no running
    ranked = rank_runs(frame, {KFLOPS: "min", LOSS: "min"})
    # b and c are identical: both on the frontier. d (300, .8) is beaten by b; g only by d/k.
    assert _ranks_by_name(ranked) == {"a": 1, "b": 1, "c": 1, "e": 1, "d": 2, "f": 2, "k": 2, "g": 3, "h": None}


def test_frontier_table_labels_most_expensive_first(known_store):
    table = frontier_table("known", tracking_uri=known_store)
    assert list(table["variant_id"]) == ["e", "b", "c", "a"]  # in label order: most complex first
    assert list(table["label"]) == ["A", "B", "C", "D"]
    assert list(table[KFLOPS]) == [400.0, 200.0, 200.0, 100.0]
    assert list(table[LOSS]) == [0.5, 0.8, 0.8, 1.0]
    assert table.attrs["objectives"] == {KFLOPS: "min", LOSS: "min"}


def test_hypervolume_known_2d(known_store):
    result = query_frontier("known", tracking_uri=known_store)
    # Normalised over the 8 ranked runs: x (100..500), y (0.5..1.2); frontier a (0, 5/7),
    # b (1/4, 3/7), e (3/4, 0); reference 1.1: 1/4 (1.1 - 5/7) + 1/2 (1.1 - 3/7) + 0.35 x 1.1.
    assert result.hypervolume.value == pytest.approx(5.72 / 7, rel=1e-12)
    assert result.hypervolume.bounds == {KFLOPS: (100.0, 500.0), LOSS: (0.5, 1.2)}
    assert result.hypervolume.n_points == 3  # the tie counts once
    assert "reference point 1.1" in result.hypervolume.describe()
    assert any("1 run(s) lack rd_loss" in note for note in result.notes)


def test_hypervolume_with_fixed_bounds_is_comparable_across_sweeps(known_store):
    frame = runs("known", known_store)
    volume = hypervolume(frame, {KFLOPS: "min", LOSS: "min"}, bounds={KFLOPS: (0, 1000), LOSS: (0, 2)})
    # a (0.1, 0.5), b (0.2, 0.4), e (0.4, 0.25): 0.1 x 0.6 + 0.2 x 0.7 + 0.7 x 0.85
    assert volume.value == pytest.approx(0.795, rel=1e-12)


def test_known_3d_with_a_maximised_objective(known_store, devices):
    cpu_ms = names.decode_ms(devices["cpu"])
    result = query_frontier("known3d", x=KFLOPS, y=PSNR, z=cpu_ms, tracking_uri=known_store, all_runs=True)
    assert result.objectives == {KFLOPS: "min", PSNR: "max", cpu_ms: "min"}
    assert _ranks_by_name(result.ranked) == {"p": 1, "q": 1, "r": 1, "t": 1, "s": 2}
    assert list(result.table["pareto_rank"]) == [1, 1, 1, 1, 2]
    # Normalised p (0, 0, 1), q (1, .5, 0), r = t (.5, .25, .5); inclusion-exclusion by hand:
    # .121 + .066 + .306 - .006 - .051 - .036 + .006
    assert result.hypervolume.value == pytest.approx(0.406, rel=1e-12)


def _dominates(a, b) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def _brute_ranks(values: np.ndarray) -> list[int]:
    ranks, left, rank = [0] * len(values), set(range(len(values))), 1
    while left:
        front = {i for i in left if not any(_dominates(values[j], values[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def _inclusion_exclusion(points: np.ndarray, reference: np.ndarray) -> float:
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(reference - corner, 0, None))
    return total


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_ranks_and_hypervolume_match_brute_force(dims, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(9, dims)).astype(float)  # small integers: many ties
    assert list(nondominated_ranks(values)) == _brute_ranks(values)
    frame = pd.DataFrame(values, columns=[f"m{i}" for i in range(dims)])
    objectives = {c: "min" for c in frame.columns}
    volume = hypervolume(frame, objectives)
    low, high = values.min(axis=0), values.max(axis=0)
    normalised = (values - low) / np.where(high > low, high - low, 1.0)
    assert volume.value == pytest.approx(_inclusion_exclusion(normalised, np.full(dims, 1.1)), rel=1e-12, abs=1e-12)


def test_maximised_objective_is_the_mirror_of_minimising_its_negative():
    frame = pd.DataFrame({"cost": [1.0, 2.0, 3.0, 2.5], "quality": [30.0, 32.0, 35.0, 31.0]})
    mirrored = frame.assign(quality=-frame["quality"])
    up = rank_runs(frame, {"cost": "min", "quality": "max"})["pareto_rank"].tolist()
    down = rank_runs(mirrored, {"cost": "min", "quality": "min"})["pareto_rank"].tolist()
    assert up == down == [1, 1, 1, 2]
    assert hypervolume(frame, {"cost": "min", "quality": "max"}).value == pytest.approx(
        hypervolume(mirrored, {"cost": "min", "quality": "min"}).value)
