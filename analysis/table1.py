"""The study's Table 1 for a sweep: one row per frontier architecture with its parameters, decode
kFLOPs/px, decode MP/s on every device it was timed on, and its rate savings against anchor
curves (BPG, VTM, ...) and optionally against one chosen frontier row.

The frontier is taken at one lambda, as the study does (the query's choice, named in
`TableOne.describe()`); the rate savings of a row come from its architecture's RD curve: every
run of that variant_id at every lambda (seed replicates at one lambda averaged into one point),
through the `bjontegaard` package (analysis.bdrate). The PSNR range is stated with the values:
- "common" (default): one range every row's curve and every anchor cover, as the study's Fig. 3;
- "overlap": each pair's own overlap, exactly `bjontegaard.bd_rate(...)`;
- (low, high): a range the user names, e.g. the study's 31.6-40.8 dB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bdrate import MIN_POINTS, CurveError, bd_rate, overlap_range
from analysis.curves import RDCurve
from analysis.labels import PARAMS_MILLIONS, savings_column
from analysis.query import LABEL_COLUMN, REFERENCE_PREFIX, FrontierResult
from analysis.runs import LMBDA_COLUMN, runtime_columns
from rdc import names
from rdc.errors import UserError

PSNR_RANGE_KEY = "--psnr-range"
VERSUS_KEY = "--versus"
RANGE_RULES = ("common", "overlap")
RD_POINTS = "rd_points"


def parse_psnr_range(text: str | None):
    """"common", "overlap" or "LOW:HIGH" (dB) -> the rule or the (low, high) range."""
    if text is None or text in RANGE_RULES:
        return text or "common"
    low, sep, high = str(text).partition(":")
    try:
        span = (float(low), float(high))
    except ValueError:
        span = None
    if not sep or span is None or not span[0] < span[1]:
        raise UserError(PSNR_RANGE_KEY, text, reason="not a PSNR range", allowed="common, overlap or LOW:HIGH in dB, e.g. 31.6:40.8")
    return span


def runtime_stage(frame: pd.DataFrame, stat: str = names.MS) -> str:
    """Decode without entropy coding when runs have that `stat` for it (the study's Table 1 and Fig. 4)."""
    return names.DECODE_NETWORKS if runtime_columns(frame, names.DECODE_NETWORKS, stat) else names.DECODE


def architecture_curve(runs: pd.DataFrame, name: str) -> tuple[RDCurve, int]:
    """The RD curve of one architecture's runs: one point per lambda (replicates averaged), then
    the envelope. Returns the curve and how many runs were averaged into another's point."""
    complete = runs.dropna(subset=[names.BPP, names.PSNR])
    if LMBDA_COLUMN in complete and complete[LMBDA_COLUMN].notna().all() and len(complete):
        points = complete.groupby(LMBDA_COLUMN, sort=True)[[names.BPP, names.PSNR]].mean()
    else:
        points = complete[[names.BPP, names.PSNR]]
    curve = RDCurve(name, points[names.BPP].to_numpy(), points[names.PSNR].to_numpy(), "mlflow").envelope()
    return curve, len(complete) - len(points)


@dataclass
class TableOne:
    table: pd.DataFrame  # one row per frontier row (A first), then reference rows; raw column names
    lmbda: float | None  # the lambda the frontier was taken at (None: compared over every lambda)
    lambdas: list[float]  # every lambda the RD curves use
    rule: str  # "common", "overlap" or "given"
    psnr_range: tuple[float, float] | None  # the one range used; None: each pair's overlap (see `ranges`)
    references: list[str]  # the curves of the savings columns, in order (anchors, then the chosen row)
    method: str
    curves: dict[str, RDCurve] = field(default_factory=dict)  # row label -> its RD curve
    ranges: pd.DataFrame | None = None  # label, reference, psnr_low, psnr_high, overlap of every value
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        at = (f"frontier at {LMBDA_COLUMN}={self.lmbda:g}" if self.lmbda is not None
              else "frontier over every lambda")
        lambdas = ", ".join(f"{v:g}" for v in self.lambdas) or "none"
        text = f"{at}; RD curves from each architecture's runs at every lambda ({lambdas})"
        if not self.references:
            return text
        if self.psnr_range is not None:
            where = ("the PSNR range every row's curve and every anchor cover" if self.rule == "common"
                     else "the range asked for")
            span = f"over {self.psnr_range[0]:.2f}-{self.psnr_range[1]:.2f} dB ({where})"
        else:
            span = "each over its pair's own PSNR overlap"
        return f"{text}; rate savings = -BD-rate ({self.method}, bjontegaard) vs {', '.join(self.references)} {span}"


def table_one(result: FrontierResult, anchors: list[RDCurve], *, versus: str | None = None,
              psnr_range="common", method: str = "pchip") -> TableOne:
    """Table 1 from a frontier query (`query_frontier(...)`, frontier rows only) and anchor curves."""
    rows = result.table.copy()
    pool = pd.concat([f for f in (result.runs, result.references) if f is not None and len(f)], ignore_index=True)
    stage = runtime_stage(pool, names.MPS)
    need = MIN_POINTS[method]
    notes = []
    curves, points = {}, {}
    for row in rows.itertuples(index=False):
        row_label = getattr(row, LABEL_COLUMN)
        variant = getattr(row, names.TAG_VARIANT_ID)
        curve, averaged = architecture_curve(pool[pool[names.TAG_VARIANT_ID] == variant], row_label)
        points[row_label] = len(curve)
        if averaged:
            notes.append(f"{row_label}: {averaged} replicate run(s) averaged into the point of their lambda")
        if len(curve) >= need:
            curves[row_label] = curve
        elif anchors or versus:
            notes.append(f"{row_label} ({variant}): {len(curve)} RD point(s), {method} BD-rate needs {need}: "
                         "no rate savings (train it at several lambdas: train.lmbdas)")
    if versus is not None:
        labels = list(rows[LABEL_COLUMN])
        if versus not in labels:
            raise UserError(VERSUS_KEY, versus, reason="not a row of this Table 1", allowed=", ".join(labels))
        if versus not in curves:
            raise UserError(VERSUS_KEY, versus, reason=f"row has {points[versus]} RD point(s): no curve to compare with",
                            allowed=", ".join(curves) or "none (no row has runs at several lambdas)")
    against = list(anchors) + ([curves[versus]] if versus is not None else [])

    rule, span = ("given", psnr_range) if isinstance(psnr_range, tuple) else (psnr_range, None)
    if rule == "common" and against and curves:
        span = overlap_range(*curves.values(), *anchors)
        if span is None:
            rule = "overlap"
            notes.append("no PSNR range is covered by every row's curve and every anchor: each value uses its pair's overlap")

    table = rows[[c for c in (LABEL_COLUMN, names.TAG_FAMILY, names.TAG_VARIANT_ID) if c in rows]].copy()
    table[PARAMS_MILLIONS] = rows[names.PARAMS] / 1e6 if names.PARAMS in rows else np.nan
    for column in [*result.objectives, names.DECODE_KFLOPS_PER_PX]:
        if column in rows and column not in table:
            table[column] = rows[column]
    by_run = pool.set_index("run_id")
    for column in runtime_columns(pool, stage, names.MPS).values():
        table[column] = rows["run_id"].map(by_run[column])
    if LMBDA_COLUMN in rows:
        table[LMBDA_COLUMN] = rows[LMBDA_COLUMN]
    table[RD_POINTS] = rows[LABEL_COLUMN].map(points)
    ranges = []
    for anchor in against:
        values = []
        for row_label in rows[LABEL_COLUMN]:
            curve = curves.get(row_label)
            if curve is None:
                values.append(np.nan)
                continue
            try:
                value = bd_rate(anchor, curve, method, psnr_range=span)
            except CurveError as err:
                notes.append(f"{row_label} vs {anchor.name}: {err}")
                values.append(np.nan)
                continue
            values.append(value.rate_savings)
            ranges.append({"label": row_label, "reference": anchor.name, "psnr_low": value.psnr_low,
                           "psnr_high": value.psnr_high, "overlap": value.overlap})
        table[savings_column(anchor.name)] = values
    table["run_id"] = rows["run_id"]
    lambdas = sorted(pd.to_numeric(pool[pool[names.TAG_VARIANT_ID].isin(rows[names.TAG_VARIANT_ID])]
                                   .get(LMBDA_COLUMN, pd.Series(dtype=float)), errors="coerce").dropna().unique())
    if not against:
        notes.append("no rate savings: pass --anchor FILE (e.g. BPG, VTM curves) or --versus ROW")
    if (rows[LABEL_COLUMN].astype(str).str.startswith(REFERENCE_PREFIX)).any():
        notes.append("rows labelled ref: are models trained elsewhere, listed after the frontier and not ranked")
    return TableOne(table.reset_index(drop=True), result.lmbda, [float(v) for v in lambdas],
                    rule if against else "none", span, [c.name for c in against], method, curves,
                    pd.DataFrame(ranges, columns=["label", "reference", "psnr_low", "psnr_high", "overlap"]), notes)
