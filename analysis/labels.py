"""Human labels with units for metric names: the one table figures, CLI headers and the report use.

`label("decode_kflops_per_px")` -> "decode complexity (kFLOPs/px)"; runtime metrics
(`<stage>_<stat>_<device>`) are spelled out with their device; rate-savings columns
(`rate_savings_vs_<curve>`) name their reference. An unknown name is returned unchanged, so a
new metric shows up as its key until it gets a line here.
"""

from __future__ import annotations

from rdc import names

# metric: (what it is, unit or "")
METRICS: dict[str, tuple[str, str]] = {
    names.RD_LOSS: ("RD loss, λ·255²·MSE + bpp", ""),
    names.BPP: ("rate", "bpp"),
    names.BPP_EST: ("estimated rate", "bpp"),
    names.PSNR: ("PSNR on RGB", "dB"),
    names.MSE: ("MSE", "[0, 1] scale"),
    names.MS_SSIM: ("MS-SSIM on RGB", ""),
    names.MS_SSIM_DB: ("MS-SSIM on RGB", "dB"),
    names.PARAMS: ("parameters", ""),
    "params_m": ("parameters", "M"),
    names.DECODE_KFLOPS_PER_PX: ("decode complexity", "kFLOPs/px"),
    names.DECODE_KMACS_PER_PX: ("decode complexity", "kMACs/px"),
    names.ENCODE_KFLOPS_PER_PX: ("encode complexity", "kFLOPs/px"),
    names.ENCODE_KMACS_PER_PX: ("encode complexity", "kMACs/px"),
    names.TRAIN_STEPS: ("training steps", ""),
    names.TRAIN_SECONDS: ("training time", "s"),
    names.ESCAPE_SHARE: ("escape-coded share of symbols", ""),
    names.BPP_OVER_EST: ("rate from bytes / estimated rate", ""),
    names.TRAIN_PARAM_PREFIX + "lmbda": ("λ", ""),
    "label": ("row", ""),
    "pareto_rank": ("rank", ""),
    names.TAG_VARIANT_ID: ("variant", ""),
    names.TAG_FAMILY: ("architecture", ""),
    "rd_points": ("RD points (λs)", ""),
    "n_seeds": ("seeds", ""),
    "seeds": ("seed list", ""),
    "p_frontier": ("P(on frontier)", ""),
}
# Replicate statistics over seeds (analysis.replicates): <metric>_<stat> -> "<metric>, <words>".
REPLICATE_STATS = {"_mean": "mean over seeds", "_sd": "sd over seeds", "_ci_low": "CI low", "_ci_high": "CI high"}
STAGES = {names.DECODE: "decode", names.DECODE_NETWORKS: "decode (networks only)", names.ENCODE: "encode"}
STATS = {names.MS: ("time", "ms/image"), names.MPS: ("throughput", "MP/s"), names.CV: ("timing spread (robust CV)", "")}
SAVINGS_PREFIX = "rate_savings_vs_"  # + a curve's name (an anchor or a frontier row): BD rate savings in %
PARAMS_MILLIONS = "params_m"  # Table 1 shows parameters in millions


def savings_column(reference: str) -> str:
    return f"{SAVINGS_PREFIX}{reference}"


def label(metric: str, *, unit: bool = True, device: bool = True) -> str:
    """The metric in words, with its unit in parentheses (unit=False: words only)."""
    replicate = _replicate_stat(metric)
    if replicate is not None:
        base, what = replicate
        words, units = _words_and_unit(base, device)
        words = f"{words}, {what}"
    elif metric.startswith(SAVINGS_PREFIX):
        words, units = f"rate savings vs {metric[len(SAVINGS_PREFIX):]}", "%"
    elif metric in METRICS:
        words, units = METRICS[metric]
    elif (runtime := names.parse_runtime_metric(metric)) is not None:
        stage, stat, on = runtime
        what, units = STATS[stat]
        words = f"{STAGES[stage]} {what}" + (f" on {on}" if device else "")
    else:
        return metric
    return f"{words} ({units})" if unit and units else words


def _replicate_stat(metric: str) -> tuple[str, str] | None:
    """(metric, statistic in words) of a replicate column such as rd_loss_sd; None otherwise."""
    for suffix, what in REPLICATE_STATS.items():
        base = metric[: -len(suffix)]
        if metric.endswith(suffix) and label(base) != base:
            return base, what
    return None


def _words_and_unit(metric: str, device: bool) -> tuple[str, str]:
    text = label(metric, device=device)
    bare = label(metric, unit=False, device=device)
    return bare, text[len(bare) + 2 : -1] if text != bare else ""


def headers(columns) -> dict[str, str]:
    """{column: label} for a table's header row (labels made unique)."""
    out, taken = {}, set()
    for column in columns:
        text = label(column) or column
        out[column] = text if text not in taken else f"{text} [{column}]"
        taken.add(out[column])
    return out
