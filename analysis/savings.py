"""Rate savings of a sweep's models against reference curves (the study's Fig. 1, Fig. 3 and
the last column of Table 1), as plain tables.

Model curves come from the runs: each frontier variant trained at several lambdas (named by
its frontier label, "B: <variant_id>") and each family's RD envelope. Two views:
- the BD-rate of every model curve against every reference, each over that pair's own overlap
  (the bjontegaard default), with the range;
- bars against one reference over ONE PSNR range covered by every model curve and the
  reference, as the study computes Fig. 3 (31.6-40.8 dB there), and the savings along the
  bitrate (Fig. 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.bdrate import MIN_POINTS, CurveError, bd_rate, overlap_range, savings_vs_bitrate
from analysis.curves import RDCurve, curves_from_runs
from analysis.query import LABEL_COLUMN
from rdc import names

BAR_COLUMNS = ["name", "variant_id", "rate_savings_percent", "psnr_low", "psnr_high"]


def model_curves(frame: pd.DataFrame, ranked: pd.DataFrame, method: str) -> tuple[list[RDCurve], dict, list[str]]:
    """(curves, {curve name: variant_id}, notes): frontier variants with 2+ rates, then families."""
    need = MIN_POINTS[method]
    notes = []
    labelled = ranked.dropna(subset=[LABEL_COLUMN]).drop_duplicates(names.TAG_VARIANT_ID)
    labels = labelled.set_index(names.TAG_VARIANT_ID)[LABEL_COLUMN]
    variants, variant_of = [], {}
    for curve in curves_from_runs(frame, names.TAG_VARIANT_ID, min_points=need):
        if curve.name in labels.index:
            name = f"{labels[curve.name]}: {curve.name}"
            variants.append(RDCurve(name, curve.bpp, curve.psnr, curve.source, curve.dropped))
            variant_of[name] = curve.name
    # A family whose envelope is one of its variants' curves would only repeat that curve.
    seen = {(tuple(c.bpp), tuple(c.psnr)): c.name for c in variants}
    families = []
    envelopes = {c.name: c for c in curves_from_runs(frame, names.TAG_FAMILY, min_points=1)}
    for family in sorted(frame[names.TAG_FAMILY].dropna().unique()):
        curve = envelopes.get(family)
        points = 0 if curve is None else len(curve)
        if points < need:
            notes.append(f"family {family} is in no rate-savings table: its RD envelope has {points} point(s), "
                         f"{method} BD-rate needs {need} (train it at several lambdas: train.lmbdas)")
        elif (tuple(curve.bpp), tuple(curve.psnr)) in seen:
            notes.append(f"family {family}: its RD envelope is the curve of {seen[(tuple(curve.bpp), tuple(curve.psnr))]}, "
                         "shown once under that name")
        else:
            families.append(RDCurve(f"family {curve.name}", curve.bpp, curve.psnr, curve.source, curve.dropped))
    if not variants:
        notes.append(f"no frontier variant has runs at {need}+ rates (train it at several lambdas: train.lmbdas); "
                     "rate savings use each family's RD envelope")
    notes += [f"{c.name}: {c.dropped} RD point(s) beaten by another point of the same curve left out"
              for c in variants + families if c.dropped]
    return sorted(variants, key=lambda c: c.name) + families, variant_of, notes


@dataclass
class RateSavings:
    reference: str
    method: str
    pairs: pd.DataFrame  # curve, reference, bd_rate_percent, psnr_low, psnr_high, overlap, method, note
    bars: pd.DataFrame  # BAR_COLUMNS: savings vs `reference` over `common_range`
    common_range: tuple[float, float] | None  # None: no range every model covers; bars use each overlap
    along_bitrate: dict[str, pd.DataFrame] = field(default_factory=dict)  # Fig. 1 curves
    notes: list[str] = field(default_factory=list)


def rate_savings(models: list[RDCurve], references: list[RDCurve], reference: str, method: str = "pchip",
                 variant_of: dict | None = None, along_bitrate_of=lambda curve: True) -> RateSavings:
    """Every model vs every reference; bars and Fig. 1 curves vs `reference` (a name in `references`).

    `along_bitrate_of(curve)` picks the curves drawn along the bitrate (Fig. 1 compares models;
    a JPEG curve 100s of % below would flatten it).
    """
    variant_of = variant_of or {}
    rows = []
    for test in models:
        for anchor in references:
            try:
                value = bd_rate(anchor, test, method)
                rows.append({"curve": test.name, "reference": anchor.name, "bd_rate_percent": value.percent,
                             "psnr_low": value.psnr_low, "psnr_high": value.psnr_high, "overlap": value.overlap,
                             "method": method, "note": ""})
            except CurveError as err:
                rows.append({"curve": test.name, "reference": anchor.name, "method": method, "note": str(err)})
    pairs = pd.DataFrame(rows, columns=["curve", "reference", "bd_rate_percent", "psnr_low", "psnr_high",
                                        "overlap", "method", "note"])

    anchor = next(c for c in references if c.name == reference)
    # The range comes from the models and the reference only, so a model's savings do not move
    # when a user adds another anchor; other references use it when they cover it.
    common = overlap_range(anchor, *models) if models else None
    notes = [] if common or not models else [
        f"no PSNR range is covered by every model curve and {reference}: each bar uses its own overlap"]
    bars, along = [], {}
    for curve in models + [c for c in references if c.name != reference]:
        covers = common is not None and curve.psnr_range[0] <= common[0] and common[1] <= curve.psnr_range[1]
        if common is not None and not covers:
            notes.append(f"{curve.name} does not cover {common[0]:.2f}-{common[1]:.2f} dB: its bar uses its own "
                         f"overlap with {reference}")
        try:
            value = bd_rate(anchor, curve, method, psnr_range=common if covers else None)
            if along_bitrate_of(curve):
                along[curve.name] = savings_vs_bitrate(anchor, curve, method)
        except CurveError as err:
            notes.append(f"rate savings of {curve.name} vs {reference}: {err}")
            continue
        bars.append({"name": curve.name, "variant_id": variant_of.get(curve.name),
                     "rate_savings_percent": value.rate_savings, "psnr_low": value.psnr_low, "psnr_high": value.psnr_high})
    return RateSavings(reference, method, pairs, pd.DataFrame(bars, columns=BAR_COLUMNS), common, along, notes)
