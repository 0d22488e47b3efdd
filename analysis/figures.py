"""The study's figures, each as PNG (300 dpi) and SVG (text kept as text) side by side, drawn with
matplotlib's object API (Agg; no pyplot state, no display needed).

Fig. 1  rate savings vs bitrate against a reference curve
Fig. 2  left: RD loss vs decode kFLOPs/px coloured by family, the frontier drawn and labelled;
        right: PSNR vs bpp, an RD curve per architecture trained at several lambdas, the anchors
Fig. 3  rate savings (BD-rate) bars over one PSNR range
Fig. 4  decode time vs kFLOPs/px per device; rank on one device vs rank on another
Every family keeps one colour and every transform one marker (the study: diamonds for Conv,
dots for ELIC, squares for SwinT) across all figures; every codec one colour and line style;
models trained elsewhere (reference runs) are black stars with their name. Axis labels and
units come from analysis.labels. Which panels are worth drawing is the caller's choice (the
report leaves out degenerate ones); what a panel cannot show is returned in `Drawn.notes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context, ticker
from matplotlib.figure import Figure

from analysis.curves import RDCurve
from analysis.labels import label
from rdc import names

DPI = 300
FORMATS = ("png", "svg")
SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "rdc"}  # editable text; stable ids between runs
MARKERS = {"Conv": "D", "ELIC": "o", "SwinT": "s"}
OTHER_MARKER = "^"
REFERENCE_STYLE = {"color": "black", "marker": "*", "s": 90}
# Codecs: colours none of the family palette (tab10) uses, each with its own line style, so two
# anchors never look alike in colour or in black-and-white print. Known codecs keep their slot.
CODEC_STYLES = [("#000000", "-"), ("#5e3c99", "--"), ("#8c6d1f", "-."), ("#01665e", ":"),
                ("#b2182b", (0, (6, 2))), ("#4d4d4d", (0, (3, 1, 1, 1, 1, 1))), ("#c51b7d", (0, (1, 2))),
                ("#253494", (0, (8, 2, 2, 2)))]
# (name pattern, slot in CODEC_STYLES), checked in order: JPEG 2000 before JPEG.
KNOWN_CODECS = (("jpeg ?2000|j2k", 7), ("bpg", 0), ("vtm", 1), ("hm|hevc", 2), ("jpeg", 3), ("webp", 4),
                ("avif|av1", 5))
AXES_MARGIN = 0.3  # the PSNR-bpp panel shows rates up to 1.3 x the highest rate of a run


@dataclass(frozen=True)
class Drawn:
    """A figure written in every format, its axes limits (first panel) and what it could not show."""

    png: Path
    svg: Path
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    xscale: str = "linear"


def family_styles(families) -> dict[str, dict]:
    """{family: {"color", "marker"}}, stable for a given set of families."""
    from matplotlib import colormaps

    ordered = sorted({f for f in families if isinstance(f, str)})
    palette = colormaps["tab10" if len(ordered) <= 10 else "tab20"]
    return {family: {"color": palette(i % palette.N), "marker": MARKERS.get(family.split("/", 1)[0], OTHER_MARKER)}
            for i, family in enumerate(ordered)}


def codec_styles(curve_names: list[str]) -> dict[str, dict]:
    """{curve name: {"color", "linestyle"}}: known codecs (BPG, VTM, JPEG, ...) by name, others in
    the free slots; no two curves share a colour or a line style while slots last."""
    slots: dict[str, int] = {}
    for name in curve_names:
        for pattern, slot in KNOWN_CODECS:
            if re.search(rf"\b({pattern})\b", name, re.IGNORECASE) and slot not in slots.values():
                slots[name] = slot
                break
    free = iter(i for i in range(10**6) if i not in slots.values())
    for name in curve_names:
        if name not in slots:
            slots[name] = next(free)
    return {name: {"color": CODEC_STYLES[slots[name] % len(CODEC_STYLES)][0],
                   "linestyle": CODEC_STYLES[slots[name] % len(CODEC_STYLES)][1]} for name in curve_names}


def save_figure(fig: Figure, path: Path, **info) -> Drawn:
    path = Path(path).with_suffix("")
    out = {}
    with rc_context(SVG_RC):
        for fmt in FORMATS:
            out[fmt] = path.with_suffix(f".{fmt}")
            fig.savefig(out[fmt], dpi=DPI, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    return Drawn(out["png"], out["svg"], **info)


def _new(width: float, height: float, panels: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * panels, height), layout="constrained")
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _scatter_by_family(ax, frame: pd.DataFrame, x: str, y: str, styles: dict, **kwargs) -> None:
    for family, group in frame.groupby(names.TAG_FAMILY, sort=True):
        style = styles[family]
        ax.scatter(group[x], group[y], s=28, color=style["color"], marker=style["marker"], label=family,
                   edgecolors="white", linewidths=0.4, zorder=3, **kwargs)


def _references(ax, references: pd.DataFrame | None, x: str, y: str, label_column: str) -> None:
    """Models trained elsewhere: black stars with their name, never part of the sweep's frontier."""
    if references is None or references.empty:
        return
    shown = references.dropna(subset=[x, y])
    if shown.empty:
        return
    ax.scatter(shown[x], shown[y], zorder=4, edgecolors="white", linewidths=0.4, label="reference (trained elsewhere)",
               **REFERENCE_STYLE)
    for row in shown.itertuples(index=False):
        ax.annotate(str(getattr(row, label_column)), (getattr(row, x), getattr(row, y)), textcoords="offset points",
                    xytext=(5, -10), fontsize=7, style="italic")


def spans_a_decade(values: pd.Series) -> bool:
    values = pd.to_numeric(values, errors="coerce")
    values = values[values > 0]
    return bool(len(values)) and values.max() / values.min() >= 10


def _log_axis(axis) -> None:
    """Log scale with plain numbers (100, 200, 500, 1000), not powers of ten only."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else ""))


def _log_if_wide(ax, values: pd.Series) -> None:
    if spans_a_decade(values):
        ax.set_xscale("log")
        _log_axis(ax.xaxis)


def _legend(ax) -> None:
    # Beside the axes, never over the points; none when nothing labelled was drawn.
    if not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)


def rd_loss_vs_flops(ranked: pd.DataFrame, x: str, y: str, path: Path, *, title: str,
                     references: pd.DataFrame | None = None, label_column: str = "label",
                     reference_label: str = "reference") -> Drawn:
    """Fig. 2 left: every ranked run, the frontier as a staircase, frontier runs labelled A, B, ...;
    reference runs as labelled stars."""
    complete = ranked.dropna(subset=[x, y])
    styles = family_styles(complete[names.TAG_FAMILY])
    fig, (ax,) = _new(6.5, 4.2)
    _scatter_by_family(ax, complete, x, y, styles)
    front = complete[complete["pareto_rank"] == 1].sort_values([x, y])
    if len(front):
        # Runs dominated by nothing: a step line through them (both objectives minimised here).
        ax.step(front[x], front[y], where="post", color="black", linewidth=1.0, label="frontier", zorder=2)
        for row in front.itertuples(index=False):
            ax.annotate(getattr(row, label_column), (getattr(row, x), getattr(row, y)), textcoords="offset points",
                        xytext=(4, 5), fontsize=8, fontweight="bold")
    _references(ax, references, x, y, reference_label)
    everything = pd.concat([complete[x], references[x]]) if references is not None and x in references else complete[x]
    _log_if_wide(ax, everything)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return save_figure(fig, path, xlim=ax.get_xlim(), ylim=ax.get_ylim(), xscale=ax.get_xscale())


def _psnr_window(points: pd.DataFrame, anchors: list[RDCurve]) -> tuple[tuple[float, float], tuple[float, float], list]:
    """Axes limits that hold every run and every anchor point at the runs' rates; the anchors
    with no point there (named in the panel instead)."""
    bpp, psnr = points[names.BPP].to_numpy(float), points[names.PSNR].to_numpy(float)
    if len(bpp):
        high = float(bpp.max()) * (1 + AXES_MARGIN) + 0.02
    else:
        high = max((float(c.bpp.max()) for c in anchors), default=1.0) * 1.05
    shown_psnr, outside = list(psnr), []
    for curve in anchors:
        inside = curve.bpp <= high
        if inside.any():
            shown_psnr += list(curve.psnr[inside])
        else:
            outside.append(curve)
    low_psnr, high_psnr = (min(shown_psnr), max(shown_psnr)) if shown_psnr else (20.0, 40.0)
    pad = max(0.5, 0.05 * (high_psnr - low_psnr))
    return (0.0, high), (low_psnr - pad, high_psnr + pad), outside


def psnr_vs_bpp(frame: pd.DataFrame, anchors: list[RDCurve], path: Path, *, title: str,
                row_labels: dict[str, str] | None = None, references: pd.DataFrame | None = None,
                reference_label: str = "reference") -> Drawn:
    """Fig. 2 right: PSNR vs bpp of every run; one RD curve per architecture (variant_id) with runs
    at several lambdas, labelled by its frontier row; the anchors drawn inside the axes (the
    axes extend to every anchor point at the runs' rates; an anchor with none there is named)."""
    complete = frame.dropna(subset=[names.BPP, names.PSNR])
    refs = references.dropna(subset=[names.BPP, names.PSNR]) if references is not None else complete.iloc[:0]
    styles = family_styles(complete[names.TAG_FAMILY])
    row_labels = row_labels or {}
    fig, (ax,) = _new(6.5, 4.2)
    _scatter_by_family(ax, complete, names.BPP, names.PSNR, styles)
    for variant, group in complete.groupby(names.TAG_VARIANT_ID, sort=True):
        curve = RDCurve(str(variant), group[names.BPP], group[names.PSNR], "runs").envelope()
        if len(curve) < 2:
            continue
        family = group[names.TAG_FAMILY].iloc[0]
        ax.plot(curve.bpp, curve.psnr, color=styles[family]["color"], linewidth=0.9, alpha=0.8, zorder=2)
        if variant in row_labels:
            ax.annotate(row_labels[variant], (curve.bpp[-1], curve.psnr[-1]), textcoords="offset points",
                        xytext=(4, 2), fontsize=8, fontweight="bold")
    _references(ax, refs, names.BPP, names.PSNR, reference_label)
    xlim, ylim, outside = _psnr_window(pd.concat([complete, refs]), anchors)
    anchor_styles = codec_styles([c.name for c in anchors])
    for curve in anchors:
        ax.plot(curve.bpp, curve.psnr, linewidth=1.1, label=curve.name, zorder=1, **anchor_styles[curve.name])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    notes = []
    if outside:
        named = "; ".join(f"{c.name} (from {c.bpp.min():.2g} bpp)" for c in outside)
        note = f"outside the axes (no point at these rates): {named}"
        ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5, wrap=True,
                bbox={"facecolor": "white", "edgecolor": "0.7", "alpha": 0.9})
        notes.append(f"Fig. 2 right: {note}")
    ax.set_xlabel("rate of the real bitstreams (bpp)")
    ax.set_ylabel(label(names.PSNR))
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return save_figure(fig, path, xlim=xlim, ylim=ylim, notes=notes)


def rate_savings_vs_bitrate(curves: dict[str, pd.DataFrame], reference: str, path: Path, *,
                            codecs: frozenset | set = frozenset()) -> Drawn:
    """Fig. 1: rate savings against `reference` along the bitrate (higher is better); curves named
    in `codecs` are anchors, drawn in their codec style."""
    from matplotlib import colormaps

    fig, (ax,) = _new(6.5, 3.8)
    palette = colormaps["tab10"]
    anchor_styles = codec_styles([n for n in curves if n in codecs])
    for i, (name, curve) in enumerate(curves.items()):
        style = anchor_styles.get(name, {"color": palette(i % palette.N), "linestyle": "-"})
        ax.plot(curve["bpp"], curve["rate_savings_percent"], linewidth=1.3, label=name, **style)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel(label(names.BPP))
    ax.set_ylabel(f"rate savings vs {reference} (%)")
    ax.set_title(f"Rate savings relative to {reference} (higher is better)", fontsize=10)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return save_figure(fig, path)


def rate_savings_bars(table: pd.DataFrame, reference: str, psnr_range: tuple[float, float] | None, path: Path) -> Drawn:
    """Fig. 3: one bar per curve (columns name, rate_savings_percent), best at the top."""
    ordered = table.sort_values("rate_savings_percent")
    fig, (ax,) = _new(6.5, 0.9 + 0.35 * max(len(ordered), 1))
    colours = ["tab:green" if v >= 0 else "tab:red" for v in ordered["rate_savings_percent"]]
    bars = ax.barh(ordered["name"], ordered["rate_savings_percent"], color=colours)
    ax.bar_label(bars, labels=[f"{v:.2f}%" for v in ordered["rate_savings_percent"]], fontsize=7, padding=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.tick_params(axis="y", labelsize=7)
    over = f" over {psnr_range[0]:.1f}-{psnr_range[1]:.1f} dB" if psnr_range else " over each pair's overlap"
    ax.set_xlabel(f"BD rate savings vs {reference} (%)")
    ax.set_title(f"Rate savings vs {reference}{over}", fontsize=10)
    ax.margins(x=0.2)
    return save_figure(fig, path)


def decode_time_vs_flops(frame: pd.DataFrame, runtimes: dict[str, str], correlation: pd.DataFrame, path: Path,
                         *, what: str = "decode time") -> Drawn:
    """Fig. 4 left/centre: one panel per device, time (of `what`) vs kFLOPs/px, Pearson r per family."""
    styles = family_styles(frame[names.TAG_FAMILY])
    fig, axes = _new(4.5, 3.6, len(runtimes))
    for ax, (device, column) in zip(axes, runtimes.items()):
        timed = frame.dropna(subset=[names.DECODE_KFLOPS_PER_PX, column])
        for family, group in timed.groupby(names.TAG_FAMILY, sort=True):
            r = correlation[(correlation["device"] == device) & (correlation["family"] == family)]["pearson_r"]
            text = f"{family} (r={r.item():.2f})" if len(r) and np.isfinite(r.item()) else family
            ax.scatter(group[names.DECODE_KFLOPS_PER_PX], group[column], s=24, label=text,
                       color=styles[family]["color"], marker=styles[family]["marker"], edgecolors="white", linewidths=0.4)
        _log_if_wide(ax, timed[names.DECODE_KFLOPS_PER_PX])
        ax.set_xlabel(label(names.DECODE_KFLOPS_PER_PX))
        ax.set_ylabel(f"{what} (ms/image)")
        ax.set_title(device, fontsize=9)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="upper left")
    return save_figure(fig, path, xlim=axes[0].get_xlim(), ylim=axes[0].get_ylim(), xscale=axes[0].get_xscale())


def rank_rank(rankings: pd.DataFrame, device_a: str, device_b: str, tau: float, path: Path) -> Drawn:
    """Fig. 4 right: rank (1 = fastest) on device_a vs on device_b; off-diagonal = order changes."""
    a, b = f"rank_{device_a}", f"rank_{device_b}"
    both = rankings.dropna(subset=[a, b])
    # Re-rank among the runs timed on both, so the diagonal means "same place".
    ranks = both.assign(**{a: both[a].astype(float).rank(method="min"), b: both[b].astype(float).rank(method="min")})
    styles = family_styles(ranks[names.TAG_FAMILY])
    fig, (ax,) = _new(4.2, 4.2)
    _scatter_by_family(ax, ranks, a, b, styles)
    top = max(len(ranks), 1)
    ax.plot([1, top], [1, top], color="black", linewidth=0.8, label="same rank")
    ax.set_xlabel(f"rank on {device_a} (1 = fastest)")
    ax.set_ylabel(f"rank on {device_b} (1 = fastest)")
    ax.set_title(f"Kendall τ = {tau:.3f} over {len(ranks)} runs", fontsize=10)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, loc="upper left")
    return save_figure(fig, path)


# Early-stopping policies (analysis.replay): one colour and marker each, the exhaustive grid at (1, 1).
POLICY_STYLES = {"exhaustive": ("black", "s"), "oracle": ("black", "*"), "frontier": ("C3", "o"), "asha": ("C0", "s"),
                 "mo-asha": ("C1", "^"), "ax-scaled-pareto": ("C2", "D"), "random": ("0.5", "."),
                 "optuna-tpe": ("C4", "x")}
CURVE_POLICIES = ("random", "optuna-tpe")  # rows over k (variants finished): drawn as a line


def hypervolume_vs_steps(table: pd.DataFrame, path: Path, *, title: str,
                         goal: tuple[float, float] | None = None) -> Drawn:
    """What each early-stopping policy keeps for what it spends: the hypervolume of its final
    frontier over the exhaustive one against its training steps over the exhaustive grid's, a
    point per setting (a line over k for the finish-k baselines). `table`: analysis.replay rows
    (policy, steps_fraction, hypervolume_kept). `goal`: (steps, hypervolume) drawn as dotted lines."""
    fig, (ax,) = _new(5.5, 4.0)
    rows = table.dropna(subset=["steps_fraction", "hypervolume_kept"])
    policies = list(POLICY_STYLES) + sorted(set(rows["policy"]) - set(POLICY_STYLES))
    for policy in policies:
        mine = rows[rows["policy"] == policy].sort_values("steps_fraction")
        if mine.empty:
            continue
        color, marker = POLICY_STYLES.get(policy, ("C5", "v"))
        ax.plot(mine["steps_fraction"], mine["hypervolume_kept"], marker=marker, color=color, label=policy, ms=6,
                linestyle="-" if policy in CURVE_POLICIES and len(mine) > 1 else "none")
    if goal is not None:
        ax.axvline(goal[0], color="k", lw=0.8, ls=":")
        ax.axhline(goal[1], color="k", lw=0.8, ls=":")
    ax.set_xlabel("training steps / exhaustive grid's")
    ax.set_ylabel("frontier hypervolume kept / exhaustive")
    ax.set_xlim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if rows.empty:  # every trial unfinished: say so on the figure rather than leave it blank
        ax.text(0.5, 0.5, "no hypervolume to compare\n(some trials never reached the end)", ha="center",
                va="center", transform=ax.transAxes, fontsize=8)
    _legend(ax)
    return save_figure(fig, path)
