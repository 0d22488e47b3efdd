"""`rdc report`: the study's figures and one self-contained HTML page for an experiment.

Everything is checked before anything is written (experiment, metrics, anchor files, codecs,
image folder, reference name); the files are then built in a temporary folder beside --out
and moved in only when all of them exist, so a failure leaves --out as it was.

The page embeds its figures (PNG, base64) and styles: one file to mail or attach to a paper
draft. Beside it: the PNGs, frontier.csv, bd_rates.csv, runtime tables, and the Pillow codec
curves as compressai JSON (pass them back with --anchor to skip re-encoding).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.anchors import read_anchor, unique_names
from analysis.bdrate import CurveError, bd_rate, overlap_range, savings_vs_bitrate
from analysis.classical import PILLOW_SOURCE, codec_curve, codecs_from, load_images, write_compressai_json
from analysis.curves import RDCurve, curves_from_runs
from analysis.query import DEFAULT_X, DEFAULT_Y, query_frontier
from analysis.runs import runs, runtime_columns
from analysis.runtime import device_rankings, flops_runtime_correlation, kendall_tau_between_devices
from analysis.store import display_uri, tracking_uri
from rdc import names
from rdc.errors import UserError

PAGE = "report.html"
OUT_KEY = "--out"
REFERENCE_KEY = "--reference"
MAX_RANK_PLOTS = 3  # device pairs drawn; all pairs are in the Kendall table


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


@dataclass
class _Section:
    title: str
    body: list[str] = field(default_factory=list)


def write_report(options: ReportOptions) -> Path:
    """Write the report; returns the page's path. UserError (nothing written) on bad input."""
    out = Path(options.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(OUT_KEY, str(out), reason="is a file", allowed="a folder (created if missing)")
    frame = runs(options.experiment, options.tracking_uri, family=options.family)
    needed = [DEFAULT_X, DEFAULT_Y, names.BPP, names.PSNR]
    for metric in needed:
        if metric not in frame or frame[metric].isna().all():
            raise UserError("--experiment", options.experiment, reason=f"no finished run has {metric}",
                            allowed="runs of an rdc sweep (they log " + ", ".join(needed) + ")")
    anchors = unique_names([read_anchor(path) for path in options.anchors])
    codecs = codecs_from(options.codecs) if options.images else []
    images = load_images(options.images) if options.images else []
    reference = _pick_reference(options.reference, anchors, codecs)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rdc-report-", dir=out.parent))
    try:
        page = _build(options, frame, anchors, codecs, images, reference, staging)
        out.mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            path.replace(out / path.name)
        return out / page.name
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pick_reference(wanted: str | None, anchors: list[RDCurve], codecs) -> str | None:
    """The name of the curve rate savings are measured against (default: first anchor, else the first codec)."""
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


def _build(options: ReportOptions, frame: pd.DataFrame, anchors, codecs, images, reference, folder: Path) -> Path:
    sections, notes = [], []

    # Frontier (Fig. 2 left).
    result = query_frontier(options.experiment, frame=frame, lmbda=options.lmbda)
    notes += result.notes
    result.table.to_csv(folder / "frontier.csv", index=False)
    fig2 = figures.rd_loss_vs_flops(result.ranked, DEFAULT_X, DEFAULT_Y, folder / "fig2_rd_loss_vs_kflops.png",
                                    title=f"{options.experiment}: RD loss vs decode complexity")
    sections.append(_Section("Rate-distortion-computation frontier", [
        f"<p>{_e(result.hypervolume.describe())}.</p>",
        _table(result.table, "frontier"),
        _figure(fig2, "Fig. 2 (left): RD loss vs decode kFLOPs/px; the frontier is the black staircase, its runs labelled"),
    ]))

    # Curves: the runs' (per variant trained at several lambdas, and per family), anchors, Pillow codecs.
    classical = []
    for codec in codecs:
        curve = codec_curve(codec, images)
        classical.append(curve)
        write_compressai_json(curve, folder / f"classical_{codec.key}.json", images=str(options.images),
                              qualities=codec.qualities)
    references = anchors + classical
    fig2r = figures.psnr_vs_bpp(frame, references, folder / "fig2_psnr_vs_bpp.png",
                                title=f"{options.experiment}: quality vs rate")
    sections.append(_Section("Quality vs rate", [
        _figure(fig2r, "Fig. 2 (right): PSNR vs bpp of every finished run, with the reference curves"),
    ]))

    model_curves = _model_curves(frame, result.ranked, options.bd_method, notes)
    sections.append(_rate_savings(model_curves, references, reference, options.bd_method, folder, notes))

    # FLOPs vs runtime (Fig. 4).
    sections.append(_runtime(frame, folder, notes))

    sources = [f"<li>anchor <b>{_e(c.name)}</b>: {_e(c.source)} ({len(c)} points, {c.psnr_range[0]:.2f}-{c.psnr_range[1]:.2f} dB)</li>"
               for c in anchors]
    sources += [f"<li>codec <b>{_e(c.name)}</b>: measured here on {len(images)} images of {_e(str(options.images))}</li>"
                for c in classical]
    if not options.images:
        notes.append("JPEG/WebP/AVIF curves not computed: pass --images DIR (the evaluation images, e.g. Kodak)")
    sections.append(_Section("Notes and sources", [
        "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>" if notes else "<p>None.</p>",
        "<ul>" + "".join(sources) + "</ul>" if sources else "",
    ]))

    page = folder / PAGE
    page.write_text(_page(options, frame, sections))
    return page


def _model_curves(frame: pd.DataFrame, ranked: pd.DataFrame, method: str, notes: list[str]) -> list[RDCurve]:
    """Curves of the runs: each frontier variant trained at 2+ rates (named by its frontier label)
    and each family's envelope over all its runs."""
    from analysis.bdrate import MIN_POINTS

    need = MIN_POINTS[method]
    labels = ranked.dropna(subset=["label"]).drop_duplicates(names.TAG_VARIANT_ID).set_index(names.TAG_VARIANT_ID)["label"]
    variants = [RDCurve(f"{labels[c.name]}: {c.name}", c.bpp, c.psnr, c.source, c.dropped)
                for c in curves_from_runs(frame, names.TAG_VARIANT_ID, min_points=need) if c.name in labels.index]
    # A family whose envelope is one of its variants' curves would only repeat that bar.
    same = {(tuple(c.bpp), tuple(c.psnr)) for c in variants}
    families = [RDCurve(f"family {c.name}", c.bpp, c.psnr, c.source, c.dropped)
                for c in curves_from_runs(frame, names.TAG_FAMILY, min_points=need)
                if (tuple(c.bpp), tuple(c.psnr)) not in same]
    if not variants:
        notes.append(f"no frontier variant has runs at {need}+ rates (train it at several train.lmbda values); "
                     "rate savings use each family's RD envelope instead")
    for curve in variants + families:
        if curve.dropped:
            notes.append(f"{curve.name}: {curve.dropped} RD point(s) beaten by another point of the same curve left out")
    return variants + families


def _rate_savings(models: list[RDCurve], references: list[RDCurve], reference: str | None, method: str,
                  folder: Path, notes: list[str]) -> _Section:
    section = _Section("Rate savings (BD-rate)")
    if not references:
        section.body.append("<p>No reference curves: pass --anchor FILE (e.g. VTM, BPG) and/or --images DIR.</p>")
        return section
    if not models:
        section.body.append(f"<p>No RD curve among the runs: BD-rate needs runs at several rates ({method}).</p>")
        return section
    # Every model curve against every reference, each over the two curves' own overlap.
    rows = []
    for test in models:
        for anchor in references:
            try:
                value = bd_rate(anchor, test, method)
                rows.append({"curve": test.name, "reference": anchor.name, "bd_rate_percent": value.percent,
                             "psnr_low": value.psnr_low, "psnr_high": value.psnr_high, "overlap": value.overlap,
                             "method": method})
            except CurveError as err:
                rows.append({"curve": test.name, "reference": anchor.name, "method": method, "note": str(err)})
    table = pd.DataFrame(rows)
    table.to_csv(folder / "bd_rates.csv", index=False)

    anchor = next(c for c in references if c.name == reference)
    others = [c for c in references if c.name != reference]
    savings, fig1_curves = [], {}
    compared = models + others
    common = overlap_range(anchor, *compared)
    for curve in compared:
        try:
            value = bd_rate(anchor, curve, method, psnr_range=common)
            if not curve.source.startswith(PILLOW_SOURCE):  # Fig. 1 compares models; JPEG would flatten it
                fig1_curves[curve.name] = savings_vs_bitrate(anchor, curve, method)
        except CurveError as err:
            notes.append(f"rate savings of {curve.name} vs {reference}: {err}")
            continue
        savings.append({"name": curve.name, "rate_savings_percent": value.rate_savings,
                        "psnr_low": value.psnr_low, "psnr_high": value.psnr_high})
    if common is None:
        notes.append(f"no PSNR range is covered by every curve and {reference}: each bar uses its own overlap")
    bars = pd.DataFrame(savings, columns=["name", "rate_savings_percent", "psnr_low", "psnr_high"])
    if len(bars):
        fig3 = figures.rate_savings_bars(bars, reference, common, folder / "fig3_rate_savings.png")
        span = f"{common[0]:.2f}-{common[1]:.2f} dB, the range every curve covers" if common else "each pair's overlap"
        section.body.append(_figure(fig3, f"Fig. 3: BD rate savings vs {reference} ({method}) over {span}"))
    if fig1_curves:
        fig1 = figures.rate_savings_vs_bitrate(fig1_curves, reference, folder / "fig1_rate_savings_vs_bpp.png")
        section.body.append(_figure(fig1, f"Fig. 1: rate savings vs {reference} along the bitrate"))
    wide = table.assign(cell=[_bd_cell(r) for r in table.itertuples()]).pivot(index="curve", columns="reference",
                                                                               values="cell")
    wide = wide.rename_axis(index="curve \\ reference", columns=None)
    section.body += [f"<p>BD-rate in % (negative = fewer bits than the reference at equal PSNR; {method}"
                     " interpolation, bjontegaard package), each over the PSNR range both curves cover:</p>",
                     _table(wide.reset_index(), "bd-rates")]
    return section


def _bd_cell(row) -> str:
    value = getattr(row, "bd_rate_percent", float("nan"))
    if pd.isna(value):
        return f"- ({getattr(row, 'note', '')})"
    return f"{value:+.2f} % ({row.psnr_low:.1f}-{row.psnr_high:.1f} dB, overlap {row.overlap:.0%})"


def _runtime(frame: pd.DataFrame, folder: Path, notes: list[str]) -> _Section:
    section = _Section("FLOPs vs runtime")
    runtimes = runtime_columns(frame)
    if not runtimes:
        section.body.append(f"<p>No run has a decode time ({names.DECODE_MS_PREFIX}&lt;device&gt;).</p>")
        return section
    shared = frame.get(names.TAG_SHARED_DEVICE)
    if shared is not None and (shared == "true").any():
        notes.append(f"{int((shared == 'true').sum())} run(s) were timed on a device shared with other trials "
                     f"(tag {names.TAG_SHARED_DEVICE}=true): their times are not clean measurements")
    correlation = flops_runtime_correlation(frame)
    rankings = device_rankings(frame)
    taus = kendall_tau_between_devices(frame)
    correlation.to_csv(folder / "flops_runtime_correlation.csv", index=False)
    rankings.to_csv(folder / "device_rankings.csv", index=False)
    taus.to_csv(folder / "kendall_tau.csv", index=False)
    fig4 = figures.decode_time_vs_flops(frame, runtimes, correlation, folder / "fig4_decode_time_vs_kflops.png")
    section.body += [_figure(fig4, "Fig. 4 (left): decode time vs decode kFLOPs/px per device; r = Pearson per family"),
                     "<p>Correlation of decode kFLOPs/px with decode time:</p>", _table(correlation, "correlation")]
    if len(taus):
        section.body += ["<p>Do devices order the runs alike? Kendall tau-b between the decode times:</p>",
                         _table(taus, "kendall")]
        for i, row in enumerate(taus.head(MAX_RANK_PLOTS).itertuples()):
            path = figures.rank_rank(rankings, row.device_a, row.device_b, row.kendall_tau,
                                     folder / f"fig4_rank_rank_{i + 1}.png")
            section.body.append(_figure(path, f"Fig. 4 (right): rank on {row.device_a} vs on {row.device_b}"))
    else:
        notes.append("decode times from one device only: no rank-rank comparison (run `rdc profile` on another device)")
    return section


def _e(text) -> str:
    return html.escape(str(text))


def _table(frame: pd.DataFrame, css_id: str) -> str:
    return frame.to_html(index=False, border=0, classes="tbl", table_id=css_id, na_rep="-",
                         float_format=lambda v: f"{v:.6g}", escape=True)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}" data-file="{_e(path.name)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.tbl { border-collapse: collapse; font-size: 12px; margin: .5em 0 1em; }
table.tbl th, table.tbl td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.tbl th { background: #f3f3f3; } table.tbl td:nth-child(-n+4) { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; } .meta { color: #555; }
"""


def _page(options: ReportOptions, frame: pd.DataFrame, sections: list[_Section]) -> str:
    uri = display_uri(tracking_uri(options.tracking_uri))
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    families = ", ".join(sorted(frame[names.TAG_FAMILY].dropna().unique()))
    body = "".join(f"<section><h2>{_e(s.title)}</h2>{''.join(s.body)}</section>" for s in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>rdc report: {_e(options.experiment)}</title><style>{STYLE}</style></head><body>"
            f"<h1>rdc report: {_e(options.experiment)}</h1>"
            f"<p class=\"meta\">{len(frame)} finished runs from {_e(uri)}"
            f"{' (family ' + _e(options.family) + ')' if options.family else ''}; families: {_e(families)}."
            f" Generated {when}.</p>{body}</body></html>\n")
