"""Seed replicates: each variant's metrics over its seeds, the frontier of the means, and how sure
that frontier is.

A sweep with several training seeds logs one MLflow run per (variant, seed): tag `variant_id` is
the architecture's, so replicates share it, and tag `seed` tells them apart. Runs group by
variant_id and, where runs carry one, train.lmbda (one architecture trained at two lambdas is two
rate-distortion points, not two replicates). Two finished runs of the same (variant, seed) count
once: the later one.

Over seeds, per variant and metric: n (the runs that logged the metric), mean, sd (n - 1 in the
denominator) and the two-sided Student-t confidence interval of the mean,
mean +- t_{(1 + c) / 2, n - 1} * sd / sqrt(n), at confidence c (0.95 by default). With n = 1 there
is no sd and no interval (NaN): one run says nothing about its own noise.

The frontier of the means is analysis.frontier's, ranked on the variants' mean objectives.

p_frontier, the probability that a variant is on the frontier, is the share of bootstrap draws in
which its mean lies on the frontier of the means. One draw resamples
  - the seeds: for each variant independently, its n runs drawn n times with replacement;
  - the evaluation images: for all runs jointly, the I images every run was evaluated on drawn
    I times with replacement. Jointly, because every variant saw the same images: an image that
    is hard for all of them moves them together and is not mistaken for a difference between
    architectures.
Per-image metrics (from each run's eval_images.csv) are averaged over the drawn images, RD loss is
recomputed from them as the run logged it (lambda * 255^2 * mean(mse) + mean(bpp), jobs/loss), then
averaged over the drawn seeds. Objectives with no per-image value (FLOPs, parameters, runtimes)
vary with the seeds only. Without every run's table the images are not resampled (said in a note).
Draws are seeded: the same runs give the same probabilities, whatever their order in the frame.
Ties on the means put both variants on the frontier, as analysis.frontier does.

The sweep's noise: the pooled within-variant sd of RD loss (`noise_estimate`), the yardstick the
frontier early-stopping scheduler scales its margins by.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.frontier import RANK_COLUMN, domination_matrix, minimisation_matrix, rank_runs
from analysis.query import (DEFAULT_X, DEFAULT_Y, LABEL_COLUMN, check_metrics, label_frontier, needs_one_lambda,
                            objectives_from, select_lambda)
from analysis.runs import LMBDA_COLUMN, is_reference, metric_columns, runs
from analysis.store import tracking_uri as resolve_uri
from rdc import names
from rdc.errors import UserError

SEED_COLUMN = names.TAG_SEED
DRAWS_KEY = "--draws"
CONFIDENCE = 0.95
DEFAULT_DRAWS = 1000
DEFAULT_BOOTSTRAP_SEED = 0
DISTORTION_SCALE = 255.0**2  # RD loss = lambda * 255^2 * mse + bpp, as jobs/loss.py defines it
# Columns of the per-image evaluation table (jobs/evaluate.ImageResult) logged under the same
# metric name; a run's metric is their mean over images.
PER_IMAGE_METRICS = (names.BPP, names.BPP_EST, names.MSE, names.PSNR, names.MS_SSIM, names.MS_SSIM_DB)
IMAGE_NAME_COLUMN = "name"
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
TABLE_TOLERANCE = 1e-6  # relative: a table whose mean disagrees more with the logged metric is noted

N_SEEDS = "n_seeds"
SEEDS = "seeds"
RUN_IDS = "run_ids"
P_FRONTIER = "p_frontier"
STATS = ("mean", "sd", "ci_low", "ci_high")
UNKNOWN_SEED = "?"  # a run logged without a seed tag (a sweep from before replicates)
SEEDS_AND_IMAGES = "seeds and evaluation images"
SEEDS_ONLY = "seeds"


def stat_column(metric: str, stat: str) -> str:
    """`rd_loss_mean`, `rd_loss_sd`, `rd_loss_ci_low`, `rd_loss_ci_high`."""
    return f"{metric}_{stat}"


# -- reading and grouping ---------------------------------------------------------------------

def replicate_runs(experiment: str, tracking_uri: str | None = None, *, family: str | None = None) -> pd.DataFrame:
    """The finished sweep runs of `experiment` (analysis.runs.runs, reference runs left out: a
    model trained elsewhere has no seeds of this sweep) with a `seed` column (Int64, <NA> for
    runs logged without the tag)."""
    frame = runs(experiment, tracking_uri, family=family)
    frame = frame[~is_reference(frame)].reset_index(drop=True)
    return with_seed_column(frame)


def with_seed_column(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with `seed` as Int64 (<NA> where unknown or not an integer), added if absent."""
    out = frame.copy()
    values = out[SEED_COLUMN] if SEED_COLUMN in out else pd.Series(pd.NA, index=out.index, dtype=object)
    out[SEED_COLUMN] = pd.to_numeric(values, errors="coerce").astype("Int64")
    return out


def replicate_key(frame: pd.DataFrame) -> list[str]:
    """The columns runs of one variant share: variant_id, and train.lmbda where runs carry it."""
    key = [names.TAG_VARIANT_ID]
    if LMBDA_COLUMN in frame and frame[LMBDA_COLUMN].notna().any():
        key.append(LMBDA_COLUMN)
    return key


def distinct_replicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One run per (variant, seed), sorted by variant, seed and run id; the later run of a
    duplicated seed is kept. Runs without a seed tag are each their own replicate."""
    frame = with_seed_column(frame)
    key = replicate_key(frame)
    order = [*key, SEED_COLUMN, "start_time", "run_id"] if "start_time" in frame else [*key, SEED_COLUMN, "run_id"]
    frame = frame.sort_values(order, kind="stable", na_position="last")
    seeded = frame[SEED_COLUMN].notna()
    duplicate = seeded & frame.duplicated([*key, SEED_COLUMN], keep="last")
    notes = []
    if duplicate.any():
        which = ", ".join(f"{v} seed {s}" for v, s in frame.loc[duplicate, [names.TAG_VARIANT_ID, SEED_COLUMN]]
                          .drop_duplicates().itertuples(index=False))
        notes.append(f"{int(duplicate.sum())} earlier run(s) of a (variant, seed) already run left out ({which})")
    out = frame[~duplicate].sort_values([*key, SEED_COLUMN, "run_id"], kind="stable", na_position="last")
    return out.reset_index(drop=True), notes


def _first(group: pd.DataFrame, column: str):
    """The first value of `column` in a variant's runs (None if absent): tags replicates share."""
    if column not in group or group[column].isna().all():
        return None
    return group[column].dropna().iloc[0]


# -- statistics over seeds --------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _t_quantile(confidence: float, dof: int) -> float:
    """t_{(1 + c) / 2, dof}: a variant table asks for the same few again and again."""
    from scipy import stats

    return float(stats.t.ppf((1 + confidence) / 2, dof))


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[int, float, float, float, float]:
    """(n, mean, sd, low, high) of the finite values: the Student-t interval of the mean."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return 1, mean, math.nan, math.nan, math.nan
    sd = float(values.std(ddof=1))
    half = _t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return n, mean, sd, mean - half, mean + half


def summarise_replicates(frame: pd.DataFrame, metrics: list[str] | None = None, *,
                         confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every metric of every variant over its seeds, one row per (variant, metric).

    Columns: variant_id[, train.lmbda], family, metric, n, mean, sd, ci_low, ci_high (n counts
    the runs that logged the metric; the interval is Student-t at `confidence`).
    """
    frame, _ = distinct_replicates(frame)
    key = replicate_key(frame)
    if metrics is None:
        metrics = [m for m in metric_columns(frame) if m != SEED_COLUMN and frame[m].notna().any()]
    rows = []
    for values, group in frame.groupby(key, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        family = _first(group, names.TAG_FAMILY)
        for metric in metrics:
            n, mean, sd, low, high = t_interval(group[metric].to_numpy(dtype=float), confidence)
            rows.append({**dict(zip(key, values)), names.TAG_FAMILY: family, "metric": metric, "n": n,
                         "mean": mean, "sd": sd, "ci_low": low, "ci_high": high})
    columns = [*key, names.TAG_FAMILY, "metric", "n", *STATS]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["confidence"] = confidence
    return out


@dataclass(frozen=True)
class NoiseEstimate:
    """How much a metric moves between seeds of one variant, against how much it moves between variants."""

    metric: str
    within_sd: float  # pooled within-variant sd; NaN when no variant has two runs
    dof: int  # its degrees of freedom: the sum over variants of (runs - 1)
    n_variants: int  # variants with at least two runs (those that inform within_sd)
    n_runs: int  # the runs of those variants
    between_sd: float  # sd of the variant means (every variant with the metric; NaN below two)

    def describe(self) -> str:
        if math.isnan(self.within_sd):
            return f"noise of {self.metric}: unknown (no variant has two seeds)"
        return (f"noise of {self.metric}: pooled within-variant sd {self.within_sd:.4g} ({self.n_variants} variants,"
                f" {self.n_runs} runs, {self.dof} degrees of freedom); sd between variant means {self.between_sd:.4g}")


def noise_estimate(frame: pd.DataFrame, metric: str = names.RD_LOSS) -> NoiseEstimate:
    """The sweep's noise: the pooled within-variant sd of `metric`,
    sqrt(sum_v sum_s (x_vs - mean_v)^2 / sum_v (n_v - 1)) over variants v with n_v >= 2 seeds s,
    the estimate of one run's seed-to-seed sd assuming every variant is equally noisy. Variants with
    one run add nothing to it; runs without the metric are left out."""
    frame, _ = distinct_replicates(frame)
    key = replicate_key(frame)
    complete = frame[frame[metric].notna()] if metric in frame else frame.iloc[0:0]
    squares, dof, variants, counted = 0.0, 0, 0, 0
    means = []
    for _, group in complete.groupby(key, sort=True, dropna=False):
        values = group[metric].to_numpy(dtype=float)
        means.append(values.mean())
        if len(values) >= 2:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += len(values) - 1
            variants += 1
            counted += len(values)
    within = math.sqrt(squares / dof) if dof else math.nan
    between = float(np.std(means, ddof=1)) if len(means) >= 2 else math.nan
    return NoiseEstimate(metric, within, dof, variants, counted, between)


# -- bootstrap membership ---------------------------------------------------------------------

def load_eval_tables(run_ids, tracking_uri: str | None = None, table: str = names.EVAL_TABLE) -> dict[str, pd.DataFrame]:
    """{run_id: per-image table} of the runs that have the artifact `table` (others are absent)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_uri(tracking_uri))
    out = {}
    before = os.environ.get(_PROGRESS_BAR)
    os.environ[_PROGRESS_BAR] = "false"  # one bar per run would bury the table a command prints
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run_id in run_ids:
                target = Path(folder, run_id)
                target.mkdir()
                try:
                    path = client.download_artifacts(run_id, table, str(target))
                except (MlflowException, OSError):
                    continue
                out[run_id] = pd.read_csv(path)
    finally:
        if before is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = before
    return out


def _per_image(runs_: pd.DataFrame, objectives: dict[str, str], tables: dict[str, pd.DataFrame] | None):
    """({objective: (runs, images) array} for the objectives with per-image values, notes), or
    (None, notes) when the images cannot be resampled for every run."""
    wanted = [m for m in objectives if m == names.RD_LOSS or m in PER_IMAGE_METRICS]
    if not wanted or not len(runs_):
        return None, []
    if tables is None:
        return None, ["bootstrap over seeds only: per-image tables not read"]
    columns = sorted({c for m in wanted for c in ((names.MSE, names.BPP) if m == names.RD_LOSS else (m,))})
    missing = [r for r in runs_["run_id"] if r not in tables]
    if missing:
        return None, [f"bootstrap over seeds only: {len(missing)} of {len(runs_)} runs have no {names.EVAL_TABLE}"]
    for run_id in runs_["run_id"]:
        lacking = [c for c in [IMAGE_NAME_COLUMN, *columns] if c not in tables[run_id]]
        if lacking:
            return None, [f"bootstrap over seeds only: the {names.EVAL_TABLE} of run {run_id} lacks {', '.join(lacking)}"]
    order = range(len(runs_))
    long = pd.concat([tables[r][[IMAGE_NAME_COLUMN, *columns]] for r in runs_["run_id"]], keys=order,
                     names=["run", "row"]).reset_index(level="row", drop=True).reset_index()
    if long.duplicated(["run", IMAGE_NAME_COLUMN]).any():
        return None, [f"bootstrap over seeds only: an image appears twice in a run's {names.EVAL_TABLE}"]
    present = long.assign(present=1.0).pivot(index="run", columns=IMAGE_NAME_COLUMN, values="present")
    if present.isna().to_numpy().any():
        return None, ["bootstrap over seeds only: the runs were not all evaluated on the same images"]
    wide = long.pivot(index="run", columns=IMAGE_NAME_COLUMN, values=columns).reindex(order)
    per_column = {c: wide[c].to_numpy(dtype=float) for c in columns}  # (runs, images), images in one order
    if not all(np.isfinite(a).all() for a in per_column.values()):
        return None, ["bootstrap over seeds only: a per-image value is missing or infinite"]
    out = {}
    for metric in wanted:
        if metric == names.RD_LOSS:
            if LMBDA_COLUMN not in runs_ or runs_[LMBDA_COLUMN].isna().any():
                return None, [f"bootstrap over seeds only: RD loss needs every run's {LMBDA_COLUMN}"]
            lmbda = runs_[LMBDA_COLUMN].to_numpy(dtype=float)[:, None]
            out[metric] = lmbda * DISTORTION_SCALE * per_column[names.MSE] + per_column[names.BPP]
        else:
            out[metric] = per_column[metric]
    notes = []
    for metric, matrix in out.items():
        logged = runs_[metric].to_numpy(dtype=float)
        off = np.abs(matrix.mean(axis=1) - logged) > TABLE_TOLERANCE * np.maximum(1.0, np.abs(logged))
        if off.any():
            notes.append(f"{metric}: the per-image tables of {int(off.sum())} run(s) do not average to the logged"
                         f" metric (resampled as the tables say)")
    return out, notes


def _multinomial_weights(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    """(draws, n): how often each of n items is drawn in n draws with replacement, divided by n."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws) / n


def _dominated_in_every_draw(worst: np.ndarray, best: np.ndarray) -> np.ndarray:
    """For each variant, whether some variant's worst value over the draws is at least as good as its
    best one on every objective and better on one (all minimised; (variants, objectives) arrays)."""
    out = np.zeros(len(best), dtype=bool)
    for start in range(0, len(worst), 1024):
        block = worst[start : start + 1024, None, :]
        dominates = np.all(block <= best[None, :, :], axis=2) & np.any(block < best[None, :, :], axis=2)
        out |= dominates.any(axis=0)
    return out


def frontier_probability(frame: pd.DataFrame, objectives: dict[str, str], *,
                         eval_tables: dict[str, pd.DataFrame] | None = None, draws: int = DEFAULT_DRAWS,
                         bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED) -> tuple[pd.DataFrame, str, list[str]]:
    """(variant key columns + p_frontier, what was resampled, notes) by the bootstrap in the
    module docstring. `frame`: one run per (variant, seed) with every objective (distinct_replicates
    and complete rows); `eval_tables`: {run_id: per-image table} or None (seeds only)."""
    if draws < 1:
        raise ValueError(f"draws: {draws}, at least 1")
    runs_, _ = distinct_replicates(frame)
    key = replicate_key(runs_)
    group_of = runs_.groupby(key, sort=True, dropna=False).ngroup().to_numpy()
    n_runs = len(runs_)
    n_groups = int(group_of.max()) + 1 if n_runs else 0
    per_image, notes = _per_image(runs_, objectives, eval_tables)
    rng = np.random.default_rng(bootstrap_seed)

    values = {m: np.broadcast_to(runs_[m].to_numpy(dtype=float), (draws, n_runs)) for m in objectives}
    scope = SEEDS_ONLY
    if per_image is not None:
        scope = SEEDS_AND_IMAGES
        image_weights = _multinomial_weights(rng, next(iter(per_image.values())).shape[1], draws)
        for metric, matrix in per_image.items():
            values[metric] = image_weights @ matrix.T
    seed_weights = np.zeros((draws, n_runs))
    for group in range(n_groups):
        members = np.flatnonzero(group_of == group)
        seed_weights[:, members] = _multinomial_weights(rng, len(members), draws)
    membership = np.zeros((n_runs, n_groups))
    membership[np.arange(n_runs), group_of] = 1.0
    # (draws, variants, objectives), every objective turned into one to minimise
    means = np.stack([(seed_weights * values[m]) @ membership * (1.0 if d == "min" else -1.0)
                      for m, d in objectives.items()], axis=2)
    on_front = np.zeros(n_groups)
    # A variant dominated in every draw by one same variant is never on the frontier, and leaving it
    # out changes no other variant's answer (whom it dominates, its dominator dominates too).
    candidates = np.flatnonzero(~_dominated_in_every_draw(means.max(axis=0), means.min(axis=0)))
    for draw in means[:, candidates]:
        on_front[candidates] += ~domination_matrix(draw).any(axis=0)
    out = runs_.groupby(key, sort=True, dropna=False).size().reset_index()[key]
    out[P_FRONTIER] = on_front / draws
    return out, scope, notes


# -- the replicate frontier -------------------------------------------------------------------

def _complete(frame: pd.DataFrame, objectives: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    complete = ~np.isnan(minimisation_matrix(frame, objectives)).any(axis=1)
    notes = [] if complete.all() else [f"left out {int((~complete).sum())} run(s) missing an objective"]
    return frame[complete].reset_index(drop=True), notes


def replicate_frontier(frame: pd.DataFrame, objectives: dict[str, str], *,
                       eval_tables: dict[str, pd.DataFrame] | None = None, draws: int = DEFAULT_DRAWS,
                       bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every variant with its statistics over seeds, its rank on the frontier of the means and p_frontier.

    Columns: label (A, B, ... on the frontier of the means), pareto_rank, variant_id, family,
    n_seeds, seeds ("0,1,2"; "?" for a run without a seed tag), for each objective m:
    m_mean, m_sd, m_ci_low, m_ci_high; p_frontier, train.lmbda (when runs carry it), run_ids.
    Sorted by rank, then by the first objective's mean. attrs: objectives, confidence, draws,
    bootstrap_seed, bootstrap (what was resampled), notes.
    """
    frame, notes = distinct_replicates(frame)
    frame, dropped = _complete(frame, objectives)
    notes += dropped
    key = replicate_key(frame)
    rows = []
    for values, group in frame.groupby(key, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(key, values))
        row[names.TAG_FAMILY] = _first(group, names.TAG_FAMILY)
        row[N_SEEDS] = len(group)
        row[SEEDS] = ",".join(UNKNOWN_SEED if pd.isna(s) else str(int(s)) for s in group[SEED_COLUMN])
        row[RUN_IDS] = ",".join(group["run_id"])
        for metric in objectives:
            _, mean, sd, low, high = t_interval(group[metric].to_numpy(dtype=float), confidence)
            row[metric] = mean  # ranked under the metric's own name, renamed below
            row.update({stat_column(metric, "sd"): sd, stat_column(metric, "ci_low"): low,
                        stat_column(metric, "ci_high"): high})
        rows.append(row)
    means = pd.DataFrame(rows, columns=[*key, names.TAG_FAMILY, N_SEEDS, SEEDS, RUN_IDS, *objectives,
                                        *[stat_column(m, s) for m in objectives for s in STATS[1:]]])
    probability, scope, said = frontier_probability(frame, objectives, eval_tables=eval_tables, draws=draws,
                                                    bootstrap_seed=bootstrap_seed)
    notes += said
    means = means.merge(probability, on=key, how="left")
    ranked = label_frontier(rank_runs(means, objectives).assign(run_id=means[RUN_IDS]), objectives).drop(columns="run_id")
    first = next(iter(objectives))
    ranked = ranked.sort_values([RANK_COLUMN, first, names.TAG_VARIANT_ID],
                                ascending=[True, objectives[first] == "min", True], kind="stable")
    ranked = ranked.rename(columns={m: stat_column(m, "mean") for m in objectives})
    columns = [LABEL_COLUMN, RANK_COLUMN, names.TAG_VARIANT_ID, names.TAG_FAMILY, N_SEEDS, SEEDS,
               *[stat_column(m, s) for m in objectives for s in STATS], P_FRONTIER, LMBDA_COLUMN, RUN_IDS]
    out = ranked[[c for c in columns if c in ranked]].reset_index(drop=True)
    out.attrs.update(objectives=dict(objectives), confidence=confidence, draws=draws, bootstrap_seed=bootstrap_seed,
                     bootstrap=scope, notes=notes)
    return out


@dataclass
class ReplicateResult:
    table: pd.DataFrame  # replicate_frontier's columns; the rows asked for
    ranked: pd.DataFrame  # every variant considered
    runs: pd.DataFrame  # the runs compared (one lambda where needed, one per (variant, seed)): seed_fronts' input
    objectives: dict[str, str]
    noise: NoiseEstimate
    confidence: float
    draws: int
    bootstrap: str  # what one draw resampled: SEEDS_AND_IMAGES or SEEDS_ONLY
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """How to read the columns, in one line."""
        return (f"over seeds: mean, sd and {self.confidence:.0%} Student-t interval of the mean; p_frontier:"
                f" share of {self.draws} bootstrap draws (resampling {self.bootstrap}) with the variant's mean"
                f" on the frontier of the means")


def query_replicates(experiment: str, x: str = DEFAULT_X, y: str = DEFAULT_Y, z: str | None = None, *,
                     family: str | None = None, lmbda: float | None = None, tracking_uri: str | None = None,
                     draws: int = DEFAULT_DRAWS, bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED,
                     confidence: float = CONFIDENCE, images: bool = True, all_variants: bool = False,
                     frame: pd.DataFrame | None = None,
                     eval_tables: dict[str, pd.DataFrame] | None = None) -> ReplicateResult:
    """`rdc frontier --replicates`: the frontier of the variants' means over seeds.

    Runs at one lambda when the objectives need it (as query_frontier). Rows: the variants on the
    frontier of the means and every variant with p_frontier > 0 (all ranked variants with
    `all_variants`). `images=False` resamples seeds only and reads no artifacts; `frame` and
    `eval_tables` reuse what was read already.
    """
    if not isinstance(draws, int) or draws < 1:
        raise UserError(DRAWS_KEY, draws, reason="not a number of bootstrap draws", allowed="an integer >= 1, e.g. 1000")
    if not 0 < confidence < 1:
        raise UserError("confidence", confidence, reason="not a confidence level", allowed="between 0 and 1, e.g. 0.95")
    objectives = objectives_from(x, y, z)
    keys = {m: k for m, k in zip(objectives, ("--x", "--y", "--z"))}
    frame = replicate_runs(experiment, tracking_uri, family=family) if frame is None else with_seed_column(frame)
    check_metrics(frame, objectives, keys)
    notes = []
    if needs_one_lambda(objectives) or lmbda is not None:
        frame, used, chosen = select_lambda(frame, lmbda)
        if chosen:
            notes.append(f"compared at one lambda: using {chosen}")
        if used is not None:
            check_metrics(frame, objectives, keys, where=f" at {LMBDA_COLUMN}={used:g}")
    per_image = any(m == names.RD_LOSS or m in PER_IMAGE_METRICS for m in objectives)
    if images and per_image and eval_tables is None:
        eval_tables = load_eval_tables(frame["run_id"], tracking_uri)
    ranked = replicate_frontier(frame, objectives, eval_tables=eval_tables if images else None, draws=draws,
                                bootstrap_seed=bootstrap_seed, confidence=confidence)
    notes += ranked.attrs["notes"]
    if all_variants:
        table = ranked
    else:
        table = ranked[(ranked[RANK_COLUMN] == 1) | (ranked[P_FRONTIER] > 0)].reset_index(drop=True)
    table.attrs.update(ranked.attrs)
    compared, _ = distinct_replicates(frame)
    return ReplicateResult(table, ranked, compared, objectives, noise_estimate(frame), confidence, draws,
                           ranked.attrs["bootstrap"], notes)


# -- what `rdc frontier --replicates` prints ------------------------------------------------

WIDE_COLUMNS = (RUN_IDS,)  # left out of the table and md formats (csv and json keep them)


def render_replicates(result: ReplicateResult, experiment: str, fmt: str = "table") -> tuple[str, list[str]]:
    """(stdout, lines for stderr) of `rdc frontier --replicates --format fmt`, fmt one of table,
    csv, json, md, laid out as `rdc frontier` lays out its own formats."""
    ranked = result.ranked
    on_front = int((ranked[RANK_COLUMN] == 1).sum())
    goals = ", ".join(f"{'minimise' if d == 'min' else 'maximise'} mean {m}" for m, d in result.objectives.items())
    headline = (f"frontier of {experiment!r} over seeds: {on_front} of {len(ranked)} variants"
                f" ({int(ranked[N_SEEDS].sum())} runs) on the frontier of the means ({goals})")
    lines = [result.describe(), result.noise.describe(), *result.notes]
    narrow = result.table.drop(columns=[c for c in WIDE_COLUMNS if c in result.table])
    if fmt == "json":
        import json

        payload = {"experiment": experiment, "objectives": result.objectives, "confidence": result.confidence,
                   "draws": result.draws, "bootstrap": result.bootstrap,
                   "bootstrap_seed": ranked.attrs.get("bootstrap_seed"), "variants_ranked": len(ranked),
                   "noise": {"metric": result.noise.metric, "within_sd": _json_number(result.noise.within_sd),
                             "dof": result.noise.dof, "variants": result.noise.n_variants,
                             "between_sd": _json_number(result.noise.between_sd)},
                   "notes": result.notes, "rows": json.loads(result.table.to_json(orient="records"))}
        return json.dumps(payload, indent=2) + "\n", []
    if fmt == "csv":
        return result.table.to_csv(index=False), [headline, *lines]
    if fmt == "md":
        text = "\n".join([f"**{headline}**", "", *[f"- {line}" for line in lines], "",
                          narrow.to_markdown(index=False, floatfmt=".6g")])
        return text + "\n", []
    if fmt != "table":
        raise ValueError(f"format: {fmt!r}, allowed: table, csv, json, md")
    if LABEL_COLUMN in narrow:  # to_string prints None as "None"
        narrow = narrow.assign(**{LABEL_COLUMN: narrow[LABEL_COLUMN].fillna("-")})
    text = "\n".join([headline, *[f"  {line}" for line in lines],
                      narrow.to_string(index=False, float_format=lambda v: f"{v:.6g}", na_rep="-")])
    return text + "\n", []


def _json_number(value: float):
    return None if math.isnan(value) else value
