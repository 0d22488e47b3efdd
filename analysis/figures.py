"""The study's figures as PNG files, drawn with matplotlib's object API (Agg; no pyplot state,
no display needed).

Fig. 1  rate savings vs bitrate against a reference curve
Fig. 2  left: RD loss vs decode kFLOPs/px coloured by family, the frontier drawn and labelled;
        right: PSNR vs bpp with the anchor curves
Fig. 3  rate savings (BD-rate) bars over one PSNR range
Fig. 4  decode time vs kFLOPs/px per device; rank on one device vs rank on another
Every family keeps one colour and every transform one marker (the study: diamonds for Conv,
dots for ELIC, squares for SwinT) across all figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.curves import RDCurve
from rdc import names

DPI = 110
MARKERS = {"Conv": "D", "ELIC": "o", "SwinT": "s"}
OTHER_MARKER = "^"
ANCHOR_STYLES = ["-", "--", "-.", ":"]


def family_styles(families) -> dict[str, dict]:
    """{family: {"color", "marker"}}, stable for a given set of families."""
    from matplotlib import colormaps

    ordered = sorted({f for f in families if isinstance(f, str)})
    palette = colormaps["tab10" if len(ordered) <= 10 else "tab20"]
    return {family: {"color": palette(i % palette.N), "marker": MARKERS.get(family.split("/", 1)[0], OTHER_MARKER)}
            for i, family in enumerate(ordered)}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def _scatter_by_family(ax, frame: pd.DataFrame, x: str, y: str, styles: dict, **kwargs) -> None:
    for family, group in frame.groupby(names.TAG_FAMILY, sort=True):
        style = styles[family]
        ax.scatter(group[x], group[y], s=28, color=style["color"], marker=style["marker"], label=family,
                   edgecolors="white", linewidths=0.4, zorder=3, **kwargs)


def _log_if_wide(ax, values: pd.Series, axis: str = "x") -> None:
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def rd_loss_vs_flops(ranked: pd.DataFrame, x: str, y: str, path: Path, *, title: str) -> Path:
    """Fig. 2 left: every ranked run, the frontier as a staircase, frontier runs labelled A, B, ..."""
    complete = ranked.dropna(subset=[x, y])
    styles = family_styles(complete[names.TAG_FAMILY])
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    _scatter_by_family(ax, complete, x, y, styles)
    front = complete[complete["pareto_rank"] == 1].sort_values([x, y])
    if len(front):
        # Runs dominated by nothing: a step line through them (both objectives minimised here).
        ax.step(front[x], front[y], where="post", color="black", linewidth=1.2, label="frontier", zorder=2)
        for row in front.itertuples(index=False):
            ax.annotate(getattr(row, "label"), (getattr(row, x), getattr(row, y)), textcoords="offset points",
                        xytext=(4, 5), fontsize=9, fontweight="bold")
    _log_if_wide(ax, complete[x])
    ax.set_xlabel(f"{x} (decode)" if x == names.DECODE_KFLOPS_PER_PX else x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def psnr_vs_bpp(frame: pd.DataFrame, anchors: list[RDCurve], path: Path, *, title: str) -> Path:
    """Fig. 2 right: PSNR vs bpp of every run, with the anchor curves for context."""
    complete = frame.dropna(subset=[names.BPP, names.PSNR])
    styles = family_styles(complete[names.TAG_FAMILY])
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    _scatter_by_family(ax, complete, names.BPP, names.PSNR, styles)
    for i, curve in enumerate(anchors):
        ax.plot(curve.bpp, curve.psnr, ANCHOR_STYLES[i % len(ANCHOR_STYLES)], color="0.35", linewidth=1,
                label=curve.name, zorder=1)
    if len(complete):
        spread = complete[names.BPP].max() - complete[names.BPP].min()
        ax.set_xlim(max(0.0, complete[names.BPP].min() - 0.5 * spread - 0.05), complete[names.BPP].max() + 0.5 * spread + 0.05)
        low, high = complete[names.PSNR].min(), complete[names.PSNR].max()
        ax.set_ylim(low - 0.5 * (high - low) - 1, high + 0.5 * (high - low) + 1)
    ax.set_xlabel("bits per pixel (real bitstreams)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def rate_savings_vs_bitrate(curves: dict[str, pd.DataFrame], reference: str, path: Path) -> Path:
    """Fig. 1: rate savings against `reference` along the bitrate (higher is better)."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(curve["bpp"], curve["rate_savings_percent"], linewidth=1.5, label=name)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(f"rate savings vs {reference} (%)")
    ax.set_title(f"Rate savings relative to {reference} (higher is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def rate_savings_bars(table: pd.DataFrame, reference: str, psnr_range: tuple[float, float] | None, path: Path) -> Path:
    """Fig. 3: one bar per curve (columns name, rate_savings_percent), best at the top."""
    ordered = table.sort_values("rate_savings_percent")
    fig = Figure(figsize=(7.5, 0.9 + 0.4 * max(len(ordered), 1)))
    ax = fig.add_subplot()
    colours = ["tab:green" if v >= 0 else "tab:red" for v in ordered["rate_savings_percent"]]
    bars = ax.barh(ordered["name"], ordered["rate_savings_percent"], color=colours)
    ax.bar_label(bars, labels=[f"{v:.2f}%" for v in ordered["rate_savings_percent"]], fontsize=8, padding=3)
    ax.axvline(0, color="black", linewidth=0.8)
    over = f" over {psnr_range[0]:.1f}-{psnr_range[1]:.1f} dB" if psnr_range else " over each pair's overlap"
    ax.set_xlabel(f"BD rate savings vs {reference} (%)")
    ax.set_title(f"Rate savings vs {reference}{over}")
    ax.margins(x=0.2)
    return _save(fig, path)


def decode_time_vs_flops(frame: pd.DataFrame, runtimes: dict[str, str], correlation: pd.DataFrame, path: Path,
                         *, what: str = "decode time") -> Path:
    """Fig. 4 left/centre: one panel per device, time (of `what`) vs kFLOPs/px, Pearson r per family."""
    styles = family_styles(frame[names.TAG_FAMILY])
    fig = Figure(figsize=(6 * len(runtimes), 4.5))
    for i, (device, column) in enumerate(runtimes.items()):
        ax = fig.add_subplot(1, len(runtimes), i + 1)
        timed = frame.dropna(subset=[names.DECODE_KFLOPS_PER_PX, column])
        for family, group in timed.groupby(names.TAG_FAMILY, sort=True):
            r = correlation[(correlation["device"] == device) & (correlation["family"] == family)]["pearson_r"]
            label = f"{family} (r={r.item():.2f})" if len(r) and np.isfinite(r.item()) else family
            ax.scatter(group[names.DECODE_KFLOPS_PER_PX], group[column], s=28, label=label,
                       color=styles[family]["color"], marker=styles[family]["marker"], edgecolors="white", linewidths=0.4)
        ax.set_xlabel("decode kFLOPs/px")
        ax.set_ylabel(f"{what} (ms per image)")
        ax.set_title(device)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def rank_rank(rankings: pd.DataFrame, device_a: str, device_b: str, tau: float, path: Path) -> Path:
    """Fig. 4 right: rank (1 = fastest) on device_a vs on device_b; off-diagonal = order changes."""
    a, b = f"rank_{device_a}", f"rank_{device_b}"
    both = rankings.dropna(subset=[a, b])
    # Re-rank among the runs timed on both, so the diagonal means "same place".
    ranks = both.assign(**{a: both[a].astype(float).rank(method="min"), b: both[b].astype(float).rank(method="min")})
    styles = family_styles(ranks[names.TAG_FAMILY])
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot()
    _scatter_by_family(ax, ranks, a, b, styles)
    top = max(len(ranks), 1)
    ax.plot([1, top], [1, top], color="black", linewidth=0.8, label="same rank")
    ax.set_xlabel(f"rank on {device_a} (1 = fastest)")
    ax.set_ylabel(f"rank on {device_b} (1 = fastest)")
    ax.set_title(f"Kendall tau = {tau:.3f} over {len(ranks)} runs")
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
