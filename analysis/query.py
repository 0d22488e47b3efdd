"""The frontier query users run: an experiment's runs -> the frontier table, ranks, hypervolume.

`frontier_table(...)` is the Python call (a DataFrame); `query_frontier(...)` returns the same
table with the notes and hypervolume that `rdc frontier` prints. Bad input raises UserError
naming the CLI option, so the CLI and Python users see the same one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.frontier import RANK_COLUMN, Hypervolume, hypervolume, rank_runs
from analysis.runs import LMBDA_COLUMN, is_reference, metric_columns, run_set, runs
from rdc import names
from rdc.errors import UserError

DEFAULT_X = names.DECODE_KFLOPS_PER_PX
DEFAULT_Y = names.RD_LOSS
# Higher is better for these and for throughput (`<stage>_mps_<device>`); every other metric
# (loss, rate, FLOPs, time, params) is minimised.
MAXIMISED = frozenset({names.PSNR, names.MS_SSIM, names.MS_SSIM_DB})
# A frontier over only one side of rate and distortion compares runs at one lambda, as RD loss
# does: otherwise a variant trained at a higher lambda wins on quality by spending more bits.
RATE_METRICS = frozenset({names.BPP, names.BPP_EST})
DISTORTION_METRICS = frozenset({names.PSNR, names.MSE, names.MS_SSIM, names.MS_SSIM_DB})
LABEL_COLUMN = "label"
REFERENCE_PREFIX = "ref: "  # the label of a reference run: "ref: <its source's last part>"
LMBDA_KEY = "--lmbda"
SUMMARY_COLUMNS = [names.RD_LOSS, names.DECODE_KFLOPS_PER_PX, names.BPP, names.PSNR, names.PARAMS]


def default_direction(metric: str) -> str:
    runtime = names.parse_runtime_metric(metric)
    return "max" if metric in MAXIMISED or (runtime is not None and runtime[1] == names.MPS) else "min"


def needs_one_lambda(objectives: dict[str, str]) -> bool:
    """RD loss, or quality without rate (or rate without quality), only compares at one lambda."""
    rate, distortion = bool(RATE_METRICS & set(objectives)), bool(DISTORTION_METRICS & set(objectives))
    return names.RD_LOSS in objectives or rate != distortion


def parse_objective(text: str, key: str) -> tuple[str, str]:
    """`psnr` or `psnr:max` -> ("psnr", "max"); the direction defaults by metric."""
    metric, _, direction = text.partition(":")
    direction = direction or default_direction(metric)
    if not metric or direction not in ("min", "max"):
        raise UserError(key, text, reason="not an objective", allowed="METRIC, METRIC:min or METRIC:max")
    return metric, direction


def objectives_from(x: str, y: str, z: str | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, text in (("--x", x), ("--y", y), ("--z", z)):
        if text is None:
            continue
        metric, direction = parse_objective(text, key)
        if metric in out:
            raise UserError(key, text, reason="already an objective", allowed="a metric not given in --x/--y/--z")
        out[metric] = direction
    return out


def check_metrics(frame: pd.DataFrame, objectives: dict[str, str], keys: dict[str, str], where: str = "") -> None:
    """UserError naming the option whose metric no run has (`where`: e.g. " at train.lmbda=0.01")."""
    available = metric_columns(frame)
    for metric in objectives:
        if metric not in frame.columns or frame[metric].isna().all():
            raise UserError(keys.get(metric, "metric"), metric, reason=f"no finished run{where} has this metric",
                            allowed=", ".join(c for c in available if frame[c].notna().any()))


def select_lambda(frame: pd.DataFrame, lmbda: float | None) -> tuple[pd.DataFrame, float | None, str | None]:
    """Keep the runs trained at one lambda (RD loss compares runs only at the same lambda).

    Default: the lambda most runs were trained at; runs without a lambda are left out. Returns
    the runs, the lambda (None: runs carry none) and a note when a choice was made for the user.
    """
    if LMBDA_COLUMN not in frame or frame[LMBDA_COLUMN].isna().all():
        if lmbda is not None:
            raise UserError(LMBDA_KEY, lmbda, reason=f"runs carry no {LMBDA_COLUMN} param")
        return frame, None, None
    lambdas = pd.to_numeric(frame[LMBDA_COLUMN], errors="coerce")
    counts = lambdas.value_counts()
    said = []
    if lmbda is None:
        # Most runs first; on a tie, the smaller lambda (stable and documented).
        lmbda = float(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0])
        if len(counts) > 1:
            others = ", ".join(f"{v:g}" for v in sorted(counts.index) if v != lmbda)
            said.append(f"{counts[lmbda]} runs; also {others}: pick with {LMBDA_KEY}")
        if lambdas.isna().any():
            said.append(f"left out {int(lambdas.isna().sum())} run(s) without a {LMBDA_COLUMN} param")
    keep = (lambdas - lmbda).abs() <= 1e-12 * max(1.0, abs(lmbda))
    if not keep.any():
        raise UserError(LMBDA_KEY, lmbda, reason="no finished run at this lambda",
                        allowed=", ".join(f"{v:g}" for v in sorted(counts.index)))
    note = f"{LMBDA_COLUMN}={lmbda:g} ({'; '.join(said)})" if said else None
    return frame[keep].reset_index(drop=True), lmbda, note


def _label_order(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Worst value of the first objective first (for FLOPs: most complex first), then by id."""
    first = next(iter(objectives))
    return frame.sort_values([first, names.TAG_VARIANT_ID, "run_id"],
                             ascending=[objectives[first] == "max", True, True], kind="stable")


def label_frontier(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Letters A, B, ... for frontier runs in descending order of the first objective (most
    expensive first, as the study labels its models A-G); later letters continue as AA, AB, ..."""
    out = frame.copy()
    on_front = _label_order(out[out[RANK_COLUMN] == 1], objectives)
    out[LABEL_COLUMN] = None
    out.loc[on_front.index, LABEL_COLUMN] = [_letters(i) for i in range(len(on_front))]
    return out


def reference_label(source) -> str:
    """"ref: <name>" from a reference tag (a zoo name or a checkpoint path: its file name)."""
    text = str(source).rstrip("/")
    return REFERENCE_PREFIX + text.rsplit("/", 1)[-1]


def _letters(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


@dataclass
class FrontierResult:
    table: pd.DataFrame  # frontier rows (or every ranked run) A first, then reference rows; labelled
    ranked: pd.DataFrame  # every run considered, with pareto_rank and label
    objectives: dict[str, str]
    hypervolume: Hypervolume
    notes: list[str] = field(default_factory=list)
    lmbda: float | None = None  # the one lambda the runs were compared at (None: every lambda)
    runs: pd.DataFrame | None = None  # the sweep's runs at every lambda (RD curves are built from them)
    references: pd.DataFrame | None = None  # reference runs shown apart (labelled, not ranked)


def query_frontier(experiment: str, x: str = DEFAULT_X, y: str = DEFAULT_Y, z: str | None = None, *,
                   family: str | None = None, lmbda: float | None = None, tracking_uri: str | None = None,
                   all_runs: bool = False, hv_bounds: dict | None = None, include_stopped: bool = False,
                   with_references: bool = False, frame: pd.DataFrame | None = None) -> FrontierResult:
    """The frontier of an experiment's finished runs over 2 or 3 objectives (x, y[, z]).

    Runs a scheduler stopped early are left out unless `include_stopped`; reference runs (models
    trained elsewhere) are listed after the frontier, labelled "ref: ...", and ranked only with
    `with_references`. `frame` reuses runs already read (the report reads MLflow once).
    """
    objectives = objectives_from(x, y, z)
    keys = {m: k for m, k in zip(objectives, ("--x", "--y", "--z"))}
    if frame is None:
        frame = runs(experiment, tracking_uri, finished_only=False)
    chosen_runs = run_set(frame, experiment, family=family, include_stopped=include_stopped,
                          with_references=with_references)
    frame, references = chosen_runs.sweep, chosen_runs.references
    every_lambda = frame
    check_metrics(frame, objectives, keys)
    notes = list(chosen_runs.notes)
    used = None
    # Ranked references keep out of the lambda choice: their training is not the sweep's.
    ranked_references = frame[is_reference(frame)]
    if needs_one_lambda(objectives) or lmbda is not None:
        frame, used, chosen = select_lambda(frame[~is_reference(frame)], lmbda)
        frame = pd.concat([frame, ranked_references], ignore_index=True)
        if chosen:
            what = "RD loss" if names.RD_LOSS in objectives else "quality without rate (or rate without quality)"
            notes.append(f"{what} compares runs at one lambda: using {chosen}")
        if used is not None:
            check_metrics(frame, objectives, keys, where=f" at {LMBDA_COLUMN}={used:g}")
    ranked = label_frontier(rank_runs(frame, objectives), objectives)
    replicated = _replicated_variants(frame)
    if replicated:
        notes.append(f"{replicated} variant(s) have several seeds: each run is ranked on its own; "
                     "rdc frontier --replicates ranks their means, with confidence")
    missing = {m: int(frame[m].isna().sum()) for m in objectives if frame[m].isna().any()}
    if missing:
        notes.append("not ranked, missing a metric: " + ", ".join(f"{n} run(s) lack {m}" for m, n in missing.items()))
    if hv_bounds:
        unknown = [c for c in hv_bounds if c not in objectives]
        if unknown:
            raise UserError("--hv-bounds", unknown[0], reason="not an objective", allowed=", ".join(objectives))
    try:
        volume = hypervolume(ranked, objectives, bounds=hv_bounds)
    except ValueError as err:
        raise UserError("--hv-bounds", hv_bounds, reason=str(err)) from None
    table = ranked[ranked[RANK_COLUMN].notna()] if all_runs else ranked[ranked[RANK_COLUMN] == 1]
    # One order everywhere (CLI, CSV, JSON, the report): by rank, then as labelled (A, B, C, ...).
    table = _label_order(table, objectives).sort_values(RANK_COLUMN, kind="stable")
    references = references.assign(**{LABEL_COLUMN: references[names.TAG_REFERENCE].map(reference_label),
                                      RANK_COLUMN: pd.array([pd.NA] * len(references), dtype="Int64")})
    table = pd.concat([table, _label_order(references, objectives)]) if len(references) else table
    columns = [LABEL_COLUMN, RANK_COLUMN, names.TAG_VARIANT_ID, names.TAG_FAMILY, *objectives,
               *SUMMARY_COLUMNS, LMBDA_COLUMN, "run_id"]
    if table[names.TAG_REFERENCE].notna().any():
        columns.append(names.TAG_REFERENCE)
    if include_stopped and table[names.TAG_STOPPED_EARLY].notna().any():
        columns.append(names.TAG_STOPPED_EARLY)
    columns = [c for c in dict.fromkeys(columns) if c in table]
    table = table[columns].reset_index(drop=True)
    return FrontierResult(table, ranked, objectives, volume, notes, used, every_lambda, references)


def _replicated_variants(frame: pd.DataFrame) -> int:
    """How many variants have more than one (non-reference) run among those ranked."""
    sweep_runs = frame[~is_reference(frame)] if len(frame) else frame
    if names.TAG_VARIANT_ID not in sweep_runs or not len(sweep_runs):
        return 0
    return int((sweep_runs.groupby(names.TAG_VARIANT_ID).size() > 1).sum())


def frontier_table(experiment: str, x: str = DEFAULT_X, y: str = DEFAULT_Y, z: str | None = None, *,
                   family: str | None = None, lmbda: float | None = None, tracking_uri: str | None = None,
                   all_runs: bool = False, include_stopped: bool = False, with_references: bool = False) -> pd.DataFrame:
    """The frontier table as a DataFrame (what `rdc frontier` prints), e.g.
    `frontier_table("demo", z="decode_ms_cpu-amd-epyc-7b13-1t", tracking_uri="sqlite:///runs/mlflow.db")`.
    `table.attrs` holds the objectives, the hypervolume (and how it was normalised) and notes.
    """
    result = query_frontier(experiment, x, y, z, family=family, lmbda=lmbda, tracking_uri=tracking_uri,
                            all_runs=all_runs, include_stopped=include_stopped, with_references=with_references)
    result.table.attrs.update(objectives=result.objectives, hypervolume=result.hypervolume.value,
                              hypervolume_description=result.hypervolume.describe(), notes=result.notes)
    return result.table
