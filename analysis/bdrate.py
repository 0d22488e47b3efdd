"""Rate savings (Bjontegaard-delta rate, VCEG-M33) of one RD curve against another.

All integration is the `bjontegaard` package's: log10(rate) interpolated as a function of PSNR
(pchip by default, as in the JVET sheet; akima or a cubic fit on request) and averaged over a
PSNR range. By default that range is where the two curves overlap, exactly
`bjontegaard.bd_rate(...)`; the study's Fig. 3 instead uses one range covered by every curve
(31.6-40.8 dB there), which `psnr_range` gives. The range used is always returned with the value.

Sign: BD-rate < 0 means the test curve needs fewer bits; rate savings = -BD-rate (the study's
Fig. 1 and 3 plot savings, higher is better).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.curves import RDCurve

METHODS = ("pchip", "akima", "cubic")
MIN_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}  # a cubic fit needs 4 points to be determined


class CurveError(ValueError):
    """Two curves cannot be compared (too few points, no overlap, a range outside a curve)."""


@dataclass(frozen=True)
class BDRate:
    anchor: str
    test: str
    percent: float  # BD-rate in %: negative = the test needs fewer bits for the same PSNR
    psnr_low: float  # the PSNR range integrated over (dB)
    psnr_high: float
    overlap: float  # overlap / union of the two PSNR ranges (bjontegaard warns below 0.75)
    method: str

    @property
    def rate_savings(self) -> float:
        return -self.percent


def _prepared(anchor: RDCurve, test: RDCurve, method: str) -> tuple[RDCurve, RDCurve]:
    if method not in METHODS:
        raise CurveError(f"method {method!r}: allowed {', '.join(METHODS)}")
    anchor, test = anchor.envelope(), test.envelope()
    for curve in (anchor, test):
        if len(curve) < MIN_POINTS[method]:
            raise CurveError(f"{curve.name}: {len(curve)} RD points, {method} needs {MIN_POINTS[method]}")
    return anchor, test


def overlap_range(*curves: RDCurve) -> tuple[float, float] | None:
    """The PSNR range every curve covers, or None."""
    low = max(c.psnr_range[0] for c in curves)
    high = min(c.psnr_range[1] for c in curves)
    return (low, high) if high > low else None


def _overlap_fraction(anchor: RDCurve, test: RDCurve) -> float:
    both = overlap_range(anchor, test)
    union = max(anchor.psnr_range[1], test.psnr_range[1]) - min(anchor.psnr_range[0], test.psnr_range[0])
    return 0.0 if both is None or union <= 0 else (both[1] - both[0]) / union


def _interpolators(anchor: RDCurve, test: RDCurve, method: str):
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported with every value instead
        _, f_anchor, f_test = bjontegaard.bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=method,
                                                  require_matching_points=False, interpolators=True, min_overlap=0)
    return f_anchor, f_test


def bd_rate(anchor: RDCurve, test: RDCurve, method: str = "pchip",
            psnr_range: tuple[float, float] | None = None) -> BDRate:
    """BD-rate of `test` against `anchor` over their overlap, or over `psnr_range` (inside both)."""
    import bjontegaard

    anchor, test = _prepared(anchor, test, method)
    overlap = overlap_range(anchor, test)
    if overlap is None:
        raise CurveError(f"{test.name} ({_fmt(test.psnr_range)}) and {anchor.name} ({_fmt(anchor.psnr_range)}) "
                         "share no PSNR range")
    fraction = _overlap_fraction(anchor, test)
    if psnr_range is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            percent = bjontegaard.bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr, method=method,
                                          require_matching_points=False, min_overlap=0)
        return BDRate(anchor.name, test.name, float(percent), overlap[0], overlap[1], fraction, method)
    low, high = psnr_range
    if not (overlap[0] - 1e-9 <= low < high <= overlap[1] + 1e-9):
        raise CurveError(f"PSNR range {_fmt(psnr_range)} is not inside the overlap {_fmt(overlap)} "
                         f"of {test.name} and {anchor.name}")
    f_anchor, f_test = _interpolators(anchor, test, method)
    # The same average as bjontegaard's own, over the range asked for.
    mean_log_ratio = (f_test.integrate(low, high) - f_anchor.integrate(low, high)) / (high - low)
    return BDRate(anchor.name, test.name, float((10 ** mean_log_ratio - 1) * 100), low, high, fraction, method)


def savings_vs_bitrate(anchor: RDCurve, test: RDCurve, method: str = "pchip", samples: int = 200) -> pd.DataFrame:
    """Rate savings of `test` at each PSNR of the overlap (the study's Fig. 1): columns psnr,
    bpp (the test's rate there), anchor_bpp and rate_savings_percent (higher is better)."""
    anchor, test = _prepared(anchor, test, method)
    overlap = overlap_range(anchor, test)
    if overlap is None:
        raise CurveError(f"{test.name} and {anchor.name} share no PSNR range")
    f_anchor, f_test = _interpolators(anchor, test, method)
    psnr = np.linspace(overlap[0], overlap[1], samples)
    log_test, log_anchor = np.asarray(f_test(psnr), dtype=float), np.asarray(f_anchor(psnr), dtype=float)
    return pd.DataFrame({"psnr": psnr, "bpp": 10**log_test, "anchor_bpp": 10**log_anchor,
                         "rate_savings_percent": (1 - 10 ** (log_test - log_anchor)) * 100})


def _fmt(span: tuple[float, float]) -> str:
    return f"{span[0]:.2f}-{span[1]:.2f} dB"
