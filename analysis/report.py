"""`rdc report`: the study's figures and one self-contained HTML page for an experiment.

Everything is checked before anything is written (experiment, metrics, anchor files, codecs,
image folder, reference name); the files are then built in a temporary folder beside --out
and moved in only once all of them exist, so a failure leaves --out as it was.

Beside report.html: the PNG figures, frontier.csv (the study's Table 1 for this sweep),
bd_rates.csv, rate_savings.csv, the runtime tables, and the Pillow codec curves as compressai
JSON (pass them back with --anchor to skip re-encoding).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.anchors import read_anchor, unique_names
from analysis.classical import PILLOW_SOURCE, codec_curve, codecs_from, load_images, write_compressai_json
from analysis.curves import RDCurve
from analysis.page import Section, render
from analysis.frontier import RANK_COLUMN
from analysis.query import DEFAULT_X, DEFAULT_Y, LABEL_COLUMN, FrontierResult, query_frontier
from analysis.runs import runs, runtime_columns
from analysis.runtime import device_rankings, flops_runtime_correlation, kendall_tau_between_devices
from analysis.savings import RateSavings, model_curves, rate_savings
from analysis.store import display_uri, tracking_uri
from rdc import names
from rdc.errors import UserError

PAGE = "report.html"
OUT_KEY = "--out"
REFERENCE_KEY = "--reference"
MAX_RANK_PLOTS = 3  # device pairs drawn; every pair is in the Kendall table
SAVINGS_COLUMN = "rate_savings_percent"


@dataclass
class ReportOptions:
    experiment: str
    out: str | Path
    tracking_uri: str | None = None
    anchors: list[str] = field(default_factory=list)
    reference: str | None = None
    images: str | None = None
    codecs: list[str] = field(default_factory=lambda: ["jpeg", "webp", "avif"])
    family: str | None = None
    lmbda: float | None = None
    bd_method: str = "pchip"


def write_report(options: ReportOptions) -> Path:
    """Write the report; returns the page's path. UserError (and nothing written) on bad input."""
    out = Path(options.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(OUT_KEY, str(out), reason="is a file", allowed="a folder (created if missing)")
    frame = runs(options.experiment, options.tracking_uri, family=options.family)
    needed = [DEFAULT_X, DEFAULT_Y, names.BPP, names.PSNR]
    for metric in needed:
        if metric not in frame or frame[metric].isna().all():
            raise UserError("--experiment", options.experiment, reason=f"no finished run has {metric}",
                            allowed="runs of an rdc sweep (they log " + ", ".join(needed) + ")")
    codecs = codecs_from(options.codecs) if options.images else []
    # An anchor named like a codec computed here (a saved classical_jpeg.json passed back) is renamed.
    anchors = unique_names([read_anchor(path) for path in options.anchors], reserved={c.name() for c in codecs})
    images = load_images(options.images) if options.images else []
    reference = _pick_reference(options.reference, anchors, codecs)
    result = query_frontier(options.experiment, frame=frame, lmbda=options.lmbda)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rdc-report-", dir=out.parent))
    try:
        page = _build(options, frame, result, anchors, codecs, images, reference, staging)
        out.mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            path.replace(out / path.name)
        return out / page.name
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pick_reference(wanted: str | None, anchors: list[RDCurve], codecs) -> str | None:
    """The curve rate savings are measured against: by name, file stem or codec key
    (default: the first anchor, else the first codec)."""
    choices = {c.name: c.name for c in anchors}
    choices.update({Path(c.source).stem: c.name for c in anchors})
    choices.update({c.key: c.name() for c in codecs})
    choices.update({c.name(): c.name() for c in codecs})
    if wanted is None:
        return anchors[0].name if anchors else (codecs[0].name() if codecs else None)
    for key, name in choices.items():
        if key.lower() == wanted.lower():
            return name
    raise UserError(REFERENCE_KEY, wanted, reason="not one of the anchors or codecs of this report",
                    allowed=", ".join(dict.fromkeys(choices.values())) or "none: pass --anchor FILE or --images DIR")


def _build(options: ReportOptions, frame: pd.DataFrame, result: FrontierResult, anchors: list[RDCurve], codecs,
           images, reference: str | None, folder: Path) -> Path:
    notes = list(result.notes)
    classical = []
    for codec in codecs:
        curve = codec_curve(codec, images)
        classical.append(curve)
        write_compressai_json(curve, folder / f"classical_{codec.key}.json", images=str(options.images),
                              qualities=codec.qualities)
    references = anchors + classical

    savings = None
    if references:
        models, variant_of, curve_notes = model_curves(frame, result.ranked, options.bd_method)
        notes += curve_notes
        if models:
            savings = rate_savings(models, references, reference, options.bd_method, variant_of,
                                   along_bitrate_of=lambda curve: not curve.source.startswith(PILLOW_SOURCE))
            notes += savings.notes
            savings.pairs.to_csv(folder / "bd_rates.csv", index=False)
            savings.bars.to_csv(folder / "rate_savings.csv", index=False)

    # Fig. 4 uses decode time without entropy coding when runs have it, as the study does.
    stage = names.DECODE_NETWORKS if runtime_columns(frame, names.DECODE_NETWORKS) else names.DECODE
    table_one = _table_one(result, frame, stage, savings)
    table_one.to_csv(folder / "frontier.csv", index=False)

    sections = [
        _frontier_section(options, result, table_one, stage, savings, folder),
        Section("Quality vs rate").figure(
            figures.psnr_vs_bpp(frame, references, folder / "fig2_psnr_vs_bpp.png",
                                title=f"{options.experiment}: quality vs rate"),
            "Fig. 2 (right): PSNR vs bpp of every finished run, with the reference curves"),
        _savings_section(savings, references, folder),
        _runtime_section(frame, stage, folder, notes),
    ]
    if not options.images:
        notes.append("JPEG/WebP/AVIF curves not computed: pass --images DIR (the evaluation images, e.g. Kodak)")
    sources = [f"anchor {c.name}: {c.source} ({len(c)} points, {c.psnr_range[0]:.2f}-{c.psnr_range[1]:.2f} dB)"
               for c in anchors]
    sources += [f"codec {c.name}: measured here on {len(images)} images of {options.images}" for c in classical]
    sections.append(Section("Notes and sources").items(notes or ["none"]).items(sources))

    families = ", ".join(sorted(frame[names.TAG_FAMILY].dropna().unique()))
    meta = (f"{len(frame)} finished runs from {display_uri(tracking_uri(options.tracking_uri))}"
            f"{f' (family {options.family})' if options.family else ''}; families: {families}."
            f" Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.")
    page = folder / PAGE
    page.write_text(render(f"rdc report: {options.experiment}", meta, sections))
    return page


def _table_one(result: FrontierResult, frame: pd.DataFrame, stage: str, savings: RateSavings | None) -> pd.DataFrame:
    """The frontier as the study's Table 1: cost, quality, decode MP/s per device, rate savings."""
    table = result.table.copy()
    by_run = frame.set_index("run_id")
    for device, column in runtime_columns(frame, stage, names.MPS).items():
        table[column] = table["run_id"].map(by_run[column])
    if savings is not None and len(savings.bars):
        per_variant = savings.bars.dropna(subset=["variant_id"]).set_index("variant_id")[SAVINGS_COLUMN]
        table[SAVINGS_COLUMN] = table[names.TAG_VARIANT_ID].map(per_variant)
    return table


def _frontier_section(options: ReportOptions, result: FrontierResult, table_one: pd.DataFrame, stage: str,
                      savings: RateSavings | None, folder: Path) -> Section:
    section = Section("Rate-distortion-computation frontier")
    section.text(f"{result.hypervolume.describe()}.")
    caption = [f"Table 1: the frontier runs, most complex first labelled A; {stage}_mps_<device> = megapixels per second"]
    if savings is not None and SAVINGS_COLUMN in table_one:
        span = (f"{savings.common_range[0]:.2f}-{savings.common_range[1]:.2f} dB" if savings.common_range
                else "each curve's own overlap")
        caption.append(f"{SAVINGS_COLUMN} = BD rate savings vs {savings.reference} over {span}"
                       " (variants trained at several lambdas only)")
    # On the page: A (most complex) first, as the study's Table 1; run ids stay in frontier.csv.
    view = table_one.assign(_order=table_one[LABEL_COLUMN].str.len()).sort_values(["_order", LABEL_COLUMN])
    view = view.drop(columns=["_order", RANK_COLUMN, "run_id"], errors="ignore")
    section.text("; ".join(caption) + ".").table(view, "frontier")
    fig = figures.rd_loss_vs_flops(result.ranked, DEFAULT_X, DEFAULT_Y, folder / "fig2_rd_loss_vs_kflops.png",
                                   title=f"{options.experiment}: RD loss vs decode complexity")
    return section.figure(fig, "Fig. 2 (left): RD loss vs decode kFLOPs/px; the frontier is the black staircase, "
                               "its runs labelled as in Table 1")


def _savings_section(savings: RateSavings | None, references: list[RDCurve], folder: Path) -> Section:
    section = Section("Rate savings (BD-rate)")
    if not references:
        return section.text("No reference curves: pass --anchor FILE (e.g. VTM, BPG) and/or --images DIR.")
    if savings is None:
        return section.text("No RD curve among the runs: BD-rate needs runs at several rates (train.lmbda).")
    if len(savings.bars):
        span = (f"{savings.common_range[0]:.2f}-{savings.common_range[1]:.2f} dB, the range every curve covers"
                if savings.common_range else "each pair's own overlap")
        fig3 = figures.rate_savings_bars(savings.bars, savings.reference, savings.common_range,
                                         folder / "fig3_rate_savings.png")
        section.figure(fig3, f"Fig. 3: BD rate savings vs {savings.reference} ({savings.method}) over {span}")
    if savings.along_bitrate:
        fig1 = figures.rate_savings_vs_bitrate(savings.along_bitrate, savings.reference,
                                               folder / "fig1_rate_savings_vs_bpp.png")
        section.figure(fig1, f"Fig. 1: rate savings vs {savings.reference} along the bitrate")
    cells = savings.pairs.assign(cell=[_bd_cell(row) for row in savings.pairs.itertuples()])
    wide = cells.pivot(index="curve", columns="reference", values="cell").rename_axis(
        index="curve \\ reference", columns=None).reset_index()
    section.text(f"BD-rate in % (negative = fewer bits than the reference at equal PSNR; {savings.method} "
                 "interpolation by the bjontegaard package), each over the PSNR range both curves cover:")
    return section.table(wide, "bd-rates")


def _bd_cell(row) -> str:
    if pd.isna(row.bd_rate_percent):
        return f"- ({row.note})"
    return f"{row.bd_rate_percent:+.2f} % ({row.psnr_low:.1f}-{row.psnr_high:.1f} dB, overlap {row.overlap:.0%})"


def _runtime_section(frame: pd.DataFrame, stage: str, folder: Path, notes: list[str]) -> Section:
    section = Section("FLOPs vs runtime")
    runtimes = runtime_columns(frame, stage)
    shared = runtime_columns(frame, stage, include_shared=True).keys() - runtimes.keys()
    if shared:
        notes.append(f"times on shared devices left out of every runtime comparison: {', '.join(sorted(shared))}")
    if not runtimes:
        return section.text(f"No run has a clean {stage} time ({names.runtime_metric(stage, names.MS, '<device>')}).")
    what = ("decode time without entropy coding" if stage == names.DECODE_NETWORKS
            else "decode time, entropy coding included")
    correlation = flops_runtime_correlation(frame, stage=stage)
    rankings = device_rankings(frame, stage=stage)
    taus = kendall_tau_between_devices(frame, stage=stage)
    correlation.to_csv(folder / "flops_runtime_correlation.csv", index=False)
    rankings.to_csv(folder / "device_rankings.csv", index=False)
    taus.to_csv(folder / "kendall_tau.csv", index=False)
    fig4 = figures.decode_time_vs_flops(frame, runtimes, correlation, folder / "fig4_decode_time_vs_kflops.png",
                                        what=what)
    section.figure(fig4, f"Fig. 4 (left): {what} vs decode kFLOPs/px per device; r = Pearson per family")
    section.text(f"Correlation of decode kFLOPs/px with {what}:").table(correlation, "correlation")
    if taus.empty:
        notes.append("runtimes from one device only: no rank-rank comparison (run `rdc profile` on another device)")
        return section
    section.text("Do devices order the runs alike? Kendall tau-b between their times:").table(taus, "kendall")
    for i, row in enumerate(taus.head(MAX_RANK_PLOTS).itertuples()):
        path = figures.rank_rank(rankings, row.device_a, row.device_b, row.kendall_tau,
                                 folder / f"fig4_rank_rank_{i + 1}.png")
        section.figure(path, f"Fig. 4 (right): rank on {row.device_a} vs on {row.device_b} (1 = fastest)")
    return section
