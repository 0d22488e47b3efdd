"""Pareto frontier: the runs no other run beats on every objective."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(frame: pd.DataFrame, objectives: dict[str, str]) -> np.ndarray:
    """True for rows not dominated by any other row. `objectives`: column -> "min" | "max".

    Row a dominates row b when a is at least as good on every objective and strictly better on
    one; identical rows do not dominate each other, so ties all stay on the frontier.
    """
    values = np.column_stack([
        frame[col].to_numpy(dtype=float) * (1.0 if direction == "min" else -1.0)
        for col, direction in objectives.items()
    ])
    n = len(values)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = np.all(values <= values[i], axis=1)
        better = np.any(values < values[i], axis=1)
        if np.any(no_worse & better):
            mask[i] = False
    return mask


def frontier(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The frontier rows, sorted by the first objective."""
    complete = frame.dropna(subset=list(objectives))
    mask = pareto_mask(complete, objectives)
    first = next(iter(objectives))
    return complete[mask].sort_values(first, ascending=objectives[first] == "min").reset_index(drop=True)
