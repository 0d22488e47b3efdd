"""`rdc report`: the study's figures and one self-contained HTML page for an experiment.

Everything is checked before anything is written (experiment, metrics, anchor files, codecs,
image folder, reference name); the files are then built in a temporary folder beside --out
and moved in only once all of them exist, so a failure leaves --out as it was.

Beside report.html: every figure as PNG (300 dpi) and SVG, frontier.csv (the study's Table 1
for this sweep), replicates.csv and noise.json (with seed replicates), bd_rates.csv,
rate_savings.csv, the runtime tables, early_stopping.csv (every early-stopping policy replayed
over the sweep's held-out curves, as `rdc replay`), and the Pillow codec curves as compressai JSON (pass them back with --anchor to skip re-encoding). A panel with nothing to
show (one point, one run per device) is left out and the notes say so; so is every family or
frontier row a table has no value for, with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.attainment import attainment_surfaces, plot_attainment, seed_fronts
from analysis.labels import headers
from analysis.anchors import read_anchor, unique_names
from analysis.classical import PILLOW_SOURCE, codec_curve, codecs_from, load_images, write_compressai_json
from analysis.curves import RDCurve
from analysis.page import Section, render
from analysis.frontier import RANK_COLUMN
from analysis.query import DEFAULT_X, DEFAULT_Y, LABEL_COLUMN, FrontierResult, query_frontier
from analysis.replicates import query_replicates
from analysis.runs import runs, runtime_columns
from analysis.table1 import TableOne, runtime_stage, table_one
from analysis.runtime import ALL_FAMILIES, device_rankings, flops_runtime_correlation, kendall_tau_between_devices
from analysis.savings import RateSavings, model_curves, rate_savings
from analysis.store import display_uri, tracking_uri
from rdc import names
from rdc.paths import check_writable_folder
from rdc.errors import UserError

PAGE = "report.html"
OUT_KEY = "--out"
REFERENCE_KEY = "--reference"
MAX_RANK_PLOTS = 3  # device pairs drawn; every pair is in the Kendall table
MIN_PANEL_POINTS = 2  # a scatter panel of one point shows nothing: left out, with a note


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
    psnr_range: str | tuple[float, float] = "common"  # of Table 1's rate savings (analysis.table1)
    include_stopped: bool = False
    with_references: bool = False


def write_report(options: ReportOptions) -> Path:
    """Write the report; returns the page's path. UserError (and nothing written) on bad input."""
    out = Path(options.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(OUT_KEY, str(out), reason="is a file", allowed="a folder (created if missing)")
    check_writable_folder(out, key=OUT_KEY)  # before the store is read: a refusal costs nothing
    result = query_frontier(options.experiment, frame=runs(options.experiment, options.tracking_uri, finished_only=False),
                            family=options.family, lmbda=options.lmbda, include_stopped=options.include_stopped,
                            with_references=options.with_references)
    frame = result.runs
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

    # Table 1: rate savings vs the reference first, then every other anchor file (codecs measured
    # here with Pillow stay in the BD-rate table: they would crowd Table 1 out of the page).
    columns = [c for c in references if c.name == reference] + [c for c in anchors if c.name != reference]
    table1 = table_one(result, columns, psnr_range=options.psnr_range, method=options.bd_method)
    notes += table1.notes
    table1.table.to_csv(folder / "frontier.csv", index=False)

    stage = runtime_stage(frame)
    row_labels = result.ranked.dropna(subset=[LABEL_COLUMN]).drop_duplicates(names.TAG_VARIANT_ID)
    row_labels = dict(zip(row_labels[names.TAG_VARIANT_ID], row_labels[LABEL_COLUMN]))
    quality = Section("Quality vs rate")
    rd_points = len(frame.dropna(subset=[names.BPP, names.PSNR]))
    if rd_points >= MIN_PANEL_POINTS or references:
        psnr_figure = figures.psnr_vs_bpp(frame, references, folder / "fig2_psnr_vs_bpp.png",
                                          title=f"{options.experiment}: quality vs rate", row_labels=row_labels,
                                          references=result.references, reference_label=LABEL_COLUMN)
        notes += psnr_figure.notes
        _figure(quality, psnr_figure, "Fig. 2 (right): PSNR vs bpp of every finished run; a line per architecture "
                                      "trained at several lambdas (labelled by its Table 1 row), the reference curves")
    else:
        notes.append(f"Fig. 2 (right) not drawn: {rd_points} run with bpp and PSNR and no reference curve")
    sections = [
        _frontier_section(options, result, table1, folder, notes),
        quality,
        _savings_section(savings, references, folder),
        _runtime_section(frame, stage, folder, notes),
    ]
    seeds = _replicates_section(options, frame, folder, notes)
    if seeds is not None:
        sections.insert(1, seeds)
    stopping = _early_stopping_section(options, folder, notes)
    if stopping is not None:
        sections.append(stopping)
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


def _figure(section: Section, drawn: figures.Drawn, caption: str) -> Section:
    return section.figure(drawn.png, caption, svg=drawn.svg)


def _frontier_section(options: ReportOptions, result: FrontierResult, table1: TableOne, folder: Path,
                      notes: list[str]) -> Section:
    section = Section("Rate-distortion-computation frontier")
    section.text(f"{result.hypervolume.describe()}.")
    # On the page: A (most complex) first, as the study's Table 1; run ids stay in frontier.csv.
    view = table1.table.drop(columns=["run_id"], errors="ignore")
    section.text(f"Table 1: the frontier runs, most complex first labelled A; {table1.describe()}.")
    section.table(view, "frontier", header=headers(view.columns))
    ranked = int(result.ranked[RANK_COLUMN].notna().sum())
    if ranked < MIN_PANEL_POINTS:
        notes.append(f"Fig. 2 (left) not drawn: {ranked} ranked run (a frontier plot needs {MIN_PANEL_POINTS})")
        return section
    fig = figures.rd_loss_vs_flops(result.ranked, DEFAULT_X, DEFAULT_Y, folder / "fig2_rd_loss_vs_kflops.png",
                                   title=f"{options.experiment}: RD loss vs decode complexity",
                                   references=result.references, reference_label=LABEL_COLUMN)
    return _figure(section, fig, "Fig. 2 (left): RD loss vs decode kFLOPs/px; the frontier is the black staircase, "
                                 "its runs labelled as in Table 1; stars: models trained elsewhere (not ranked)")


def _replicates_section(options: ReportOptions, frame: pd.DataFrame, folder: Path, notes: list[str]) -> Section | None:
    """Seeds: each variant's mean with its interval, p_frontier, and the 50 % / 90 % attainment
    surfaces of the frontier across seeds. None (with a note) when no variant has two seeds."""
    seeds = pd.to_numeric(frame.get(names.TAG_SEED), errors="coerce") if names.TAG_SEED in frame else None
    if seeds is None or not (frame.assign(_seed=seeds).groupby(names.TAG_VARIANT_ID)["_seed"].nunique() >= 2).any():
        notes.append("seed replicates not shown: no variant has runs with two training seeds (train.seeds)")
        return None
    result = query_replicates(options.experiment, DEFAULT_X, DEFAULT_Y, family=options.family, lmbda=options.lmbda,
                              tracking_uri=options.tracking_uri, frame=frame)
    notes += result.notes
    section = Section("Seed replicates")
    section.text(f"{result.describe()}; {result.noise.describe()}.")
    view = result.table.drop(columns=["run_ids"], errors="ignore")
    section.table(view, "replicates", header=headers(view.columns))
    view.to_csv(folder / "replicates.csv", index=False)  # beside the page: what a sweep run keeps
    (folder / "noise.json").write_text(json.dumps(dataclasses.asdict(result.noise), indent=2) + "\n")
    surfaces = attainment_surfaces(seed_fronts(result.runs, result.objectives), result.objectives)
    fig = plot_attainment(result.ranked, surfaces, result.objectives,
                          title=f"{options.experiment}: frontier across seeds")
    drawn = figures.save_figure(fig, folder / "fig2_attainment.png")
    return _figure(section, drawn, "Variant means with their intervals over seeds (error bars), and the attainment "
                                   "surfaces of the frontier across seeds: 50 % solid, 90 % dashed")


REPORT_REPLAY_DRAWS = 50  # random draws of the finish-k baseline on the page (rdc replay: 200 by default)


def _early_stopping_section(options: ReportOptions, folder: Path, notes: list[str]) -> Section | None:
    """What each early-stopping policy would have stopped in this sweep (rdc replay, the sweep's
    own report order): steps spent against frontier hypervolume kept, as a table and a figure.
    None, with a note, when the runs have no held-out curves, or fewer than two variants do, or
    the sweep did not train every run to the end (no exhaustive frontier to compare with)."""
    from analysis.curve_agreement import curve_agreement
    from analysis.replay import Suite, curves_from_mlflow, pooled_noise_sd, replay_all

    try:
        curves, max_steps, replay_notes = curves_from_mlflow(options.experiment, options.tracking_uri, lmbda=options.lmbda)
    except UserError as err:
        notes.append(f"early-stopping replay not shown: {err.reason or err}")
        return None
    if len({c.variant_id for c in curves}) < 2:
        notes.append("early-stopping replay not shown: fewer than two variants have held-out curves")
        return None
    table, outcomes = replay_all(curves, max_steps, noise_sd=pooled_noise_sd(curves),
                                 suite=Suite(draws=REPORT_REPLAY_DRAWS), order="observed")
    if table["hypervolume_kept"].iloc[1:].isna().all():
        notes.append("early-stopping replay not shown: " + (outcomes[0].notes[-1] if outcomes[0].notes
                                                            else "no policy's hypervolume could be compared"))
        return None
    notes += [f"early-stopping replay: {n}" for n in replay_notes]
    agreement = curve_agreement(curves, max_steps, Suite.rungs)
    table.to_csv(folder / "early_stopping.csv", index=False)
    section = Section("Early stopping: what each policy would have kept")
    section.text(f"Every policy replayed over this sweep's held-out curves ({len(curves)} trials, {max_steps} steps "
                 "each, in the order the sweep logged them), as `rdc replay` does: the share of the training steps "
                 "it spends and the share of the exhaustive frontier's hypervolume (RD loss, decode kFLOPs/px) "
                 "it keeps. The first row is scheduler=frontier with its defaults; random and TPE finish the "
                 "number of variants that its steps pay for "
                 f"(random: mean of {REPORT_REPLAY_DRAWS} draws). The oracle row is hindsight, not a policy: "
                 "the fewest variants that keep 95 % of the hypervolume, the rest stopped at the first rung, "
                 "so the least any policy stopping there could have spent for that share. What any policy "
                 f"could know: {agreement.describe()}.")
    view = table[["policy", "setting", "steps_fraction", "hypervolume_kept", "stopped", "lost_frontier_variants"]]
    section.table(view, "early_stopping", header=headers(view.columns))
    drawn = figures.hypervolume_vs_steps(table, folder / "early_stopping_hv.png",
                                         title=f"{options.experiment}: early-stopping policies replayed")
    return _figure(section, drawn, "Frontier hypervolume kept vs training steps spent, both relative to training "
                                   "every trial to the end (the black square)")


def _savings_section(savings: RateSavings | None, references: list[RDCurve], folder: Path) -> Section:
    section = Section("Rate savings (BD-rate)")
    if not references:
        return section.text("No reference curves: pass --anchor FILE (e.g. VTM, BPG) and/or --images DIR.")
    if savings is None:
        return section.text("No RD curve among the runs: BD-rate needs runs at several rates (train.lmbdas).")
    if len(savings.bars):
        span = (f"{savings.common_range[0]:.2f}-{savings.common_range[1]:.2f} dB, the range every curve covers"
                if savings.common_range else "each pair's own overlap")
        fig3 = figures.rate_savings_bars(savings.bars, savings.reference, savings.common_range,
                                         folder / "fig3_rate_savings.png")
        _figure(section, fig3, f"Fig. 3: BD rate savings vs {savings.reference} ({savings.method}) over {span}")
    if savings.along_bitrate:
        fig1 = figures.rate_savings_vs_bitrate(savings.along_bitrate, savings.reference,
                                               folder / "fig1_rate_savings_vs_bpp.png",
                                               codecs={c.name for c in references})
        _figure(section, fig1, f"Fig. 1: rate savings vs {savings.reference} along the bitrate")
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


def drawable_devices(frame: pd.DataFrame, runtimes: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The devices whose Fig. 4 panel has 2+ timed runs, and a note for each left out."""
    keep, notes = {}, []
    for device, column in runtimes.items():
        timed = int(frame.dropna(subset=[names.DECODE_KFLOPS_PER_PX, column]).shape[0])
        if timed >= MIN_PANEL_POINTS:
            keep[device] = column
        else:
            notes.append(f"Fig. 4: no panel for {device}: {timed} run(s) timed there (a panel needs {MIN_PANEL_POINTS})")
    return keep, notes


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
    drawable, left_out = drawable_devices(frame, runtimes)
    notes += left_out
    if drawable:
        fig4 = figures.decode_time_vs_flops(frame, drawable, correlation, folder / "fig4_decode_time_vs_kflops.png",
                                            what=what)
        _figure(section, fig4, f"Fig. 4 (left): {what} vs decode kFLOPs/px per device; r = Pearson per family")
    few = correlation[(correlation["family"] != ALL_FAMILIES) & correlation["pearson_r"].isna()]
    if len(few):
        notes.append("correlation not computed (fewer than 3 timed runs, or no spread) for: "
                     + "; ".join(f"{r.family} on {r.device} ({r.n} run(s))" for r in few.itertuples()))
    section.text(f"Correlation of decode kFLOPs/px with {what}:").table(correlation, "correlation")
    if taus.empty:
        notes.append("runtimes from one device only: no rank-rank comparison (run `rdc profile` on another device)")
        return section
    section.text("Do devices order the runs alike? Kendall tau-b between their times:").table(taus, "kendall")
    drawn = 0
    for row in taus.itertuples():
        if not (row.n >= MIN_PANEL_POINTS and pd.notna(row.kendall_tau)):
            notes.append(f"Fig. 4: no rank-rank plot of {row.device_a} vs {row.device_b}: Kendall tau undefined "
                         f"over {row.n} run(s) timed on both")
            continue
        if drawn == MAX_RANK_PLOTS:
            continue
        drawn += 1
        path = figures.rank_rank(rankings, row.device_a, row.device_b, row.kendall_tau,
                                 folder / f"fig4_rank_rank_{drawn}.png")
        _figure(section, path, f"Fig. 4 (right): rank on {row.device_a} vs on {row.device_b} (1 = fastest)")
    return section
