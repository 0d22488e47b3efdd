"""The rank agreement of held-out curves with the final RD loss: known answers on hand-made curves."""

from __future__ import annotations

import math

import pytest

from analysis.curve_agreement import POOR_END_AGREEMENT, curve_agreement
from analysis.replay import Curve

STEPS = (10, 25, 50, 100)


def curve(variant: str, losses: tuple[float, ...], final: float | None, seed: int = 0) -> Curve:
    return Curve(f"{variant}/{seed}", variant, 1.0, STEPS, losses, final, seed=seed)


def test_a_curve_that_ends_where_the_finals_do_agrees_at_its_end_and_not_at_a_crossed_rung():
    # The order at step 10 is the reverse of the final one; by step 25 it is the final one.
    curves = [curve("a", (9.0, 1.0, 1.0, 1.0), 1.0), curve("b", (8.0, 2.0, 2.0, 2.0), 2.0),
              curve("c", (7.0, 3.0, 3.0, 3.0), 3.0), curve("d", (6.0, 4.0, 4.0, 4.0), 4.0)]
    found = curve_agreement(curves, 100, (0.1, 0.25))
    assert found.rungs == ((0.1, pytest.approx(-1.0)), (0.25, pytest.approx(1.0)))
    assert found.end == pytest.approx(1.0) and found.seeds == 1 and not found.end_is_poor
    assert "at 10% of the steps -1.00, at 25% of the steps 1.00, at its last point 1.00" in found.describe()


def test_a_held_out_set_unlike_the_final_evaluation_is_called_out():
    # The curves end in the reverse order of the finals (e.g. crops that favour another family).
    curves = [curve(v, (5.0, 4.0, 3.0, end), final) for v, end, final in
              (("a", 1.0, 4.0), ("b", 2.0, 3.0), ("c", 3.0, 2.0), ("d", 4.0, 1.0))]
    found = curve_agreement(curves, 100, (0.5,))
    assert found.end == pytest.approx(-1.0) and found.end_is_poor
    assert f"Below {POOR_END_AGREEMENT:g} at the last point" in found.describe()


def test_seeds_are_ranked_apart_and_averaged_and_unfinished_or_tied_seeds_do_not_count():
    agree = [curve(v, (1.0, 1.0, 1.0, end), end, seed=0) for v, end in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    reverse = [curve(v, (1.0, 1.0, 1.0, end), 4.0 - end, seed=1) for v, end in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    two = [curve(v, (1.0, 1.0, 1.0, end), end, seed=2) for v, end in (("a", 1.0), ("b", 2.0))]  # too few to rank
    unfinished = [curve(v, (1.0, 1.0, 1.0, end), None, seed=3) for v, end in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    found = curve_agreement(agree + reverse + two + unfinished, 100, (0.1,))
    assert found.end == pytest.approx(0.0) and found.seeds == 2  # (1 + -1) / 2 over seeds 0 and 1
    assert math.isnan(found.rungs[0][1])  # every value tied at step 10: no order to agree with
    assert "at 10% of the steps unknown" in found.describe()
    nothing = curve_agreement(unfinished, 100, (0.1,))
    assert math.isnan(nothing.end) and nothing.seeds == 0 and not nothing.end_is_poor
