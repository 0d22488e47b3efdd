"""Rate-distortion curves (bpp, RGB PSNR): from anchors, from Pillow codecs, and from runs.

A curve from runs is the RD envelope of a group of runs trained at several lambdas (one
variant, a family, or any chosen set): the points no other point of the group beats on both
rate and PSNR. For one variant that is usually every lambda; for a family it is the best the
family reached at each rate. BD-rate needs PSNR strictly increasing with rate, which the
envelope guarantees; points it drops are counted so a report can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rdc import names


@dataclass(frozen=True)
class RDCurve:
    name: str
    bpp: np.ndarray
    psnr: np.ndarray  # dB, RGB PSNR averaged per image
    source: str  # a file, "pillow:<codec>" or "mlflow:<experiment>"
    dropped: int = 0  # points removed because another point of the curve beat them

    def __post_init__(self):
        object.__setattr__(self, "bpp", np.asarray(self.bpp, dtype=float))
        object.__setattr__(self, "psnr", np.asarray(self.psnr, dtype=float))

    @property
    def psnr_range(self) -> tuple[float, float]:
        return float(self.psnr.min()), float(self.psnr.max())

    def __len__(self) -> int:
        return len(self.bpp)

    def envelope(self) -> "RDCurve":
        """The points not beaten by another (lower or equal rate with higher or equal PSNR),
        sorted by rate; PSNR then rises strictly with rate."""
        finite = np.isfinite(self.bpp) & np.isfinite(self.psnr) & (self.bpp > 0)
        bpp, psnr = self.bpp[finite], self.psnr[finite]
        order = np.lexsort((-psnr, bpp))  # by rate, best PSNR first among equal rates
        keep, best = [], -np.inf
        for i in order:
            if psnr[i] > best:
                keep.append(i)
                best = psnr[i]
        keep = np.array(keep, dtype=int)
        return RDCurve(self.name, bpp[keep], psnr[keep], self.source, self.dropped + len(self.bpp) - len(keep))


def curves_from_runs(frame: pd.DataFrame, by: str = names.TAG_VARIANT_ID, *, min_points: int = 2,
                     source: str = "mlflow") -> list[RDCurve]:
    """One envelope curve per value of `by` (variant_id, family, ...) with at least `min_points`
    points after the envelope; groups with fewer are left out (they have no curve to integrate)."""
    complete = frame.dropna(subset=[names.BPP, names.PSNR])
    curves = []
    for key, group in complete.groupby(by, sort=True):
        curve = RDCurve(str(key), group[names.BPP].to_numpy(), group[names.PSNR].to_numpy(), source).envelope()
        if len(curve) >= min_points:
            curves.append(curve)
    return curves


def curve_from_runs(frame: pd.DataFrame, name: str, *, source: str = "mlflow") -> RDCurve:
    """The envelope of a chosen set of runs (e.g. one architecture at several lambdas)."""
    complete = frame.dropna(subset=[names.BPP, names.PSNR])
    return RDCurve(name, complete[names.BPP].to_numpy(), complete[names.PSNR].to_numpy(), source).envelope()
