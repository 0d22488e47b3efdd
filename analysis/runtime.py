"""FLOPs vs runtime (the study's section 4 and Fig. 4): is decode FLOPs a proxy for decode time,
and do two devices rank the same models in the same order?

- Per family and device: Pearson r (linear, what the study's scatter plots look for) and
  Spearman rho (monotone) between decode kFLOPs/px and decode time.
- Per device: each run's rank, 1 = fastest.
- Per pair of devices: Kendall's tau-b between the two orders (1 = the same order; ties allowed),
  over the runs timed on both.
Times are the median ms per image of a stage (names.DECODE with entropy coding, or
names.DECODE_NETWORKS without, as in the study's Fig. 4); shared-device times are left out.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

from analysis.runs import runtime_columns
from rdc import names

ALL_FAMILIES = "(all)"
MIN_POINTS = 3  # a correlation of two points is always +-1


def _correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(x, y).statistic), float(stats.spearmanr(x, y).statistic)


def flops_runtime_correlation(frame: pd.DataFrame, flops: str = names.DECODE_KFLOPS_PER_PX,
                              stage: str = names.DECODE) -> pd.DataFrame:
    """One row per (device, family) and per device over all families: n, pearson_r, spearman_rho,
    and the least-squares slope in ms per kFLOP/px (NaN with fewer than 3 runs or no spread)."""
    rows = []
    for device, column in runtime_columns(frame, stage).items():
        timed = frame.dropna(subset=[flops, column])
        groups = [(ALL_FAMILIES, timed)] + list(timed.groupby(names.TAG_FAMILY, sort=True))
        for family, group in groups:
            x, y = group[flops].to_numpy(float), group[column].to_numpy(float)
            pearson, spearman = _correlations(x, y)
            slope = float(np.polyfit(x, y, 1)[0]) if len(x) >= MIN_POINTS and np.ptp(x) > 0 else float("nan")
            rows.append({"device": device, "family": family, "n": len(group), "pearson_r": pearson,
                         "spearman_rho": spearman, "ms_per_kflop_px": slope})
    return pd.DataFrame(rows, columns=["device", "family", "n", "pearson_r", "spearman_rho", "ms_per_kflop_px"])


def device_rankings(frame: pd.DataFrame, stage: str = names.DECODE) -> pd.DataFrame:
    """run_id, variant_id, family, then `rank_<device>` (1 = fastest; ties share the best rank)
    and the time itself, for every run timed on at least one device."""
    columns = runtime_columns(frame, stage)
    out = frame[["run_id", names.TAG_VARIANT_ID, names.TAG_FAMILY]].copy()
    for device, column in columns.items():
        out[f"rank_{device}"] = frame[column].rank(method="min").astype("Int64")
        out[column] = frame[column]
    timed = frame[list(columns.values())].notna().any(axis=1) if columns else pd.Series(False, index=frame.index)
    return out[timed].reset_index(drop=True)


def kendall_tau_between_devices(frame: pd.DataFrame, stage: str = names.DECODE) -> pd.DataFrame:
    """One row per pair of devices: n runs timed on both, Kendall tau-b and its p-value."""
    from scipy import stats

    rows = []
    for (a, col_a), (b, col_b) in itertools.combinations(sorted(runtime_columns(frame, stage).items()), 2):
        both = frame.dropna(subset=[col_a, col_b])
        tau = p_value = float("nan")
        if len(both) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = stats.kendalltau(both[col_a], both[col_b])
            tau, p_value = float(result.statistic), float(result.pvalue)
        rows.append({"device_a": a, "device_b": b, "n": len(both), "kendall_tau": tau, "p_value": p_value})
    return pd.DataFrame(rows, columns=["device_a", "device_b", "n", "kendall_tau", "p_value"])
