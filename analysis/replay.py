"""`rdc replay`: what each early-stopping policy would have done to a finished sweep.

A sweep's held-out learning curves (eval/rd_loss by step, MLflow metric histories) are fed,
report by report, through a policy of rdc/stopping.py or analysis/stopping.py, the same
objects the sweep's Ray Tune schedulers drive. For each policy: which trials it stops and at which step, the
training steps it spends, and the hypervolume of the final (rd_loss, decode kFLOPs) frontier
of the variants it let finish, relative to the exhaustive sweep's (every trial finished).

Report order decides what a trial is compared with. Three orders:
- "observed": the order the sweep logged its evaluations in (metric timestamps): what a
  scheduler on that sweep saw, so a policy replayed on a sweep it ran in stops the same trials;
- "parallel": every trial starts at once and trains at the same speed (a cluster that holds
  the whole sweep);
- `concurrency=c`: c trials at a time in plan order, a stopped trial's slot goes to the next
  (each step of any trial takes the same time).
"""

from __future__ import annotations

import heapq
import math
import sys
from pathlib import Path
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.frontier import Hypervolume, frontier, hypervolume, normalised
from analysis.stopping import AshaRule, FinishChosen, MoAshaRule, ScaledParetoRule
from rdc import names
from rdc.errors import UserError
from rdc.stopping import DEFAULT_CURVE_MULTIPLE, DEFAULT_RUNGS, DEFAULT_WINDOW, Decision, FrontierRule, Margin, Report

OBJECTIVES = {names.RD_LOSS: "min", names.DECODE_KFLOPS_PER_PX: "min"}
# The plan's decode kFLOPs/px of a run's variant (known before training), as the sweep would log
# it when it creates the run: the one FLOPs figure a stopped run has. Not yet in rdc.names.
PLAN_KFLOPS_PARAM = "plan." + names.DECODE_KFLOPS_PER_PX
ORDERS = ("observed", "parallel")


@dataclass(frozen=True)
class Curve:
    """One trial's held-out learning curve and what it ended at."""

    trial_id: str
    variant_id: str
    kflops: float | None
    steps: tuple[int, ...]  # evaluation steps, increasing
    rd_loss: tuple[float, ...]  # eval/rd_loss at each step
    final_rd_loss: float | None  # the metric the frontier uses once the trial finished
    times: tuple[int, ...] = ()  # when each evaluation was logged (ms), for the observed order
    seed: int | None = None


@dataclass
class Outcome:
    """One policy replayed over one sweep."""

    policy: str
    setting: str
    steps: dict[str, int]  # trial -> steps trained
    stops: dict[str, Decision]  # trial -> the decision that stopped it
    finished: list[str]  # trials trained to the end
    total_steps: int = 0
    exhaustive_steps: int = 0
    hypervolume: float | None = None  # of the finished variants' frontier (exhaustive bounds)
    hypervolume_kept: float | None = None  # / the exhaustive hypervolume
    lost: list[str] = field(default_factory=list)  # exhaustive-frontier variants not finished
    finished_variants: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def steps_fraction(self) -> float:
        return self.total_steps / self.exhaustive_steps if self.exhaustive_steps else math.nan

    def row(self) -> dict:
        return {"policy": self.policy, "setting": self.setting, "steps_fraction": self.steps_fraction,
                "hypervolume_kept": self.hypervolume_kept, "stopped": len(self.stops),
                "finished_variants": len(self.finished_variants), "lost_frontier_variants": ", ".join(self.lost)}


# --- Curves in -------------------------------------------------------------------------------


def curves_from_table(table: pd.DataFrame, *, max_steps: int | None = None) -> tuple[list[Curve], int]:
    """Curves from a learning-curve table (variant_id, seed, step, eval_rd_loss,
    decode_kflops_per_px; one row per evaluation), and the full training length.

    The final loss of a trial is its held-out loss at `max_steps` (default: the largest step in
    the table); a trial that never got there has none.
    """
    needed = ["variant_id", "step", "eval_rd_loss", names.DECODE_KFLOPS_PER_PX]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"learning-curve table lacks columns {missing}")
    table = table.copy()
    if "seed" not in table:
        table["seed"] = 0
    max_steps = int(max_steps or table["step"].max())
    curves = []
    for (variant, seed), rows in table.sort_values("step").groupby(["variant_id", "seed"], sort=True):
        kflops = rows[names.DECODE_KFLOPS_PER_PX].dropna()
        steps = tuple(int(s) for s in rows["step"])
        losses = tuple(float(v) for v in rows["eval_rd_loss"])
        final = losses[-1] if steps and steps[-1] >= max_steps else None
        curves.append(Curve(f"{variant}/seed{seed}", str(variant), float(kflops.iloc[0]) if len(kflops) else None,
                            steps, losses, final, seed=int(seed)))
    return curves, max_steps


def curves_from_mlflow(experiment: str, tracking_uri: str | None = None, *, lmbda: float | None = None,
                       metric: str = names.EVAL_RD_LOSS, plan_kflops: dict[str, float] | None = None
                       ) -> tuple[list[Curve], int, list[str]]:
    """Every variant run's `metric` history (MlflowClient.get_metric_history, with the time each
    value was logged), its decode FLOPs and final RD loss; the training length; notes.

    `metric`: the curve a scheduler ranked by (the held-out eval/rd_loss by default). Decode
    FLOPs, first found: `plan_kflops` {variant_id: kFLOPs/px}, the run's PLAN_KFLOPS_PARAM, its
    decode_kflops_per_px metric (finished runs), the kflops of its stop_decision tag, another run
    of the same variant. A run with none is never stopped by the frontier rule."""
    from mlflow.tracking import MlflowClient

    from analysis.query import select_lambda
    from analysis.runs import tidy
    from analysis.store import EXPERIMENT_KEY, read_experiment, tracking_uri as resolve

    raw = read_experiment(experiment, tracking_uri)
    frame = tidy(raw)
    if frame.empty:
        raise UserError(EXPERIMENT_KEY, experiment, reason="has no runs yet")
    # The tags replay needs, read here whatever columns tidy() keeps.
    wanted = raw.tags[raw.tags["key"].isin([names.TAG_SEED, names.TAG_STOP_DECISION, names.TAG_SWEEP_RUN])]
    tags = wanted.pivot(index="run_id", columns="key", values="value") if len(wanted) else pd.DataFrame()
    for tag in (names.TAG_SEED, names.TAG_STOP_DECISION, names.TAG_SWEEP_RUN):
        frame[tag] = frame["run_id"].map(tags[tag]) if tag in tags else None
    notes = []
    frame = frame[(frame[names.TAG_SWEEP_RUN].astype(str) != "true") & frame[names.TAG_VARIANT_ID].notna()]
    frame, _, note = select_lambda(frame, lmbda)
    notes += [note] if note else []
    client = MlflowClient(tracking_uri=resolve(tracking_uri))
    steps_param = names.TRAIN_PARAM_PREFIX + "steps"
    curves, lengths = [], []
    for row in frame.to_dict("records"):
        history = sorted(client.get_metric_history(row["run_id"], metric), key=lambda m: (m.step, m.timestamp))
        if not history:
            continue
        seed = _seed(row)
        kflops = _kflops(row, plan_kflops or {})
        final = row.get(names.RD_LOSS) if row["status"] == "FINISHED" else None
        lengths.append(row.get(steps_param))
        curves.append(Curve(row["run_id"], str(row[names.TAG_VARIANT_ID]),
                            float(kflops) if kflops is not None and not pd.isna(kflops) else None,
                            tuple(int(m.step) for m in history), tuple(float(m.value) for m in history),
                            float(final) if final is not None and not pd.isna(final) else None,
                            tuple(int(m.timestamp) for m in history), seed))
    if not curves:
        raise UserError(EXPERIMENT_KEY, experiment, reason=f"no run has a {metric} history to replay",
                        allowed="a sweep trained with held-out evaluation (train.eval_every)")
    known = {c.variant_id: c.kflops for c in curves if c.kflops is not None}
    curves = [c if c.kflops is not None else replace(c, kflops=known.get(c.variant_id)) for c in curves]
    if any(c.kflops is None for c in curves):
        notes.append(f"{sum(c.kflops is None for c in curves)} run(s) without known decode FLOPs: never stopped by "
                     "the frontier rule")
    known = [int(v) for v in lengths if v is not None and not pd.isna(v)]
    max_steps = max(known) if known else max(c.steps[-1] for c in curves)
    return curves, max_steps, notes


def _kflops(row: dict, plan: dict[str, float]) -> float | None:
    import json

    candidates = [plan.get(str(row[names.TAG_VARIANT_ID])), row.get(PLAN_KFLOPS_PARAM), row.get(names.DECODE_KFLOPS_PER_PX)]
    decision = row.get(names.TAG_STOP_DECISION)
    if isinstance(decision, str):
        try:
            candidates.append(json.loads(decision).get("kflops"))
        except (ValueError, AttributeError):
            pass
    for value in candidates:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return None


def _seed(row: dict) -> int | None:
    for column in (names.TAG_SEED, names.TRAIN_PARAM_PREFIX + "seed"):
        try:
            return int(float(row[column]))
        except (KeyError, TypeError, ValueError):
            continue
    return None


# --- The replay ------------------------------------------------------------------------------


def _report(curve: Curve, index: int) -> Report:
    return Report(curve.trial_id, curve.variant_id, curve.steps[index], curve.rd_loss[index], curve.kflops)


def replay(curves: list[Curve], policy, max_steps: int, *, order: str = "parallel",
           concurrency: int | None = None, setting: str | None = None) -> Outcome:
    """Feed every curve's reports through `policy` in the given order; what it stopped and kept."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r}, allowed: {', '.join(ORDERS)}")
    steps, stops = {}, {}
    if order == "observed":
        events = sorted(((c.times[i] if c.times else c.steps[i], n, i) for n, c in enumerate(curves)
                         for i in range(len(c.steps))))
        for _, n, i in events:
            curve = curves[n]
            if curve.trial_id in stops:
                continue
            decision = policy.on_report(_report(curve, i))
            steps[curve.trial_id] = curve.steps[i]
            if decision.stop:
                stops[curve.trial_id] = decision
    else:
        slots = len(curves) if concurrency is None else max(1, int(concurrency))
        queue = list(range(len(curves)))[::-1]
        heap: list[tuple[int, int, int, int]] = []  # (time, trial index, point index, start time)

        def start(now: int) -> None:
            while queue and len(heap) < slots:
                n = queue.pop()
                if curves[n].steps:
                    heapq.heappush(heap, (now + curves[n].steps[0], n, 0, now))
                else:
                    steps[curves[n].trial_id] = 0

        start(0)
        while heap:
            now, n, i, began = heapq.heappop(heap)
            curve = curves[n]
            decision = policy.on_report(_report(curve, i))
            steps[curve.trial_id] = curve.steps[i]
            if decision.stop:
                stops[curve.trial_id] = decision
            elif i + 1 < len(curve.steps):
                heapq.heappush(heap, (began + curve.steps[i + 1], n, i + 1, began))
            start(now)
    return _outcome(curves, max_steps, policy.name, setting or policy.describe(), steps, stops)


def _outcome(curves: list[Curve], max_steps: int, name: str, setting: str, steps: dict, stops: dict) -> Outcome:
    finished = [c.trial_id for c in curves if c.trial_id not in stops and c.steps and c.steps[-1] >= max_steps]
    outcome = Outcome(name, setting, steps, stops, finished, total_steps=int(sum(steps.values())),
                      exhaustive_steps=max_steps * len(curves))
    score(outcome, curves, max_steps)
    return outcome


def finals(curves: list[Curve]) -> pd.DataFrame:
    """One row per variant: the mean final RD loss over its finished seeds."""
    rows = [{"variant_id": c.variant_id, names.RD_LOSS: c.final_rd_loss, names.DECODE_KFLOPS_PER_PX: c.kflops}
            for c in curves if c.final_rd_loss is not None]
    frame = pd.DataFrame(rows, columns=["variant_id", names.RD_LOSS, names.DECODE_KFLOPS_PER_PX])
    return frame.groupby("variant_id", as_index=False).mean()


def exhaustive_hypervolume(curves: list[Curve], every: pd.DataFrame | None = None) -> tuple[Hypervolume, pd.DataFrame]:
    """Hypervolume and frontier of every variant finished (`every`: finals(curves), if already built)."""
    every = finals(curves) if every is None else every
    return hypervolume(every, OBJECTIVES), frontier(every, OBJECTIVES)


def kept_finals(every: pd.DataFrame, finished_variants: list[str]) -> pd.DataFrame:
    """The variants a policy finished, each at its mean over every seed (`every`: finals()):
    with replicates, a policy that finished only a variant's luckiest seed must not be credited
    with that seed's value (its frontier would beat the exhaustive one)."""
    return every[every["variant_id"].isin(finished_variants)]


def score(outcome: Outcome, curves: list[Curve], max_steps: int) -> None:
    """Hypervolume kept and frontier variants lost, when every curve reached the end (exhaustive)."""
    outcome.finished_variants = sorted({c.variant_id for c in curves if c.trial_id in set(outcome.finished)})
    incomplete = [c for c in curves if not c.steps or c.steps[-1] < max_steps or c.final_rd_loss is None]
    if incomplete:
        outcome.notes.append(f"{len(incomplete)} trial(s) never reached step {max_steps} in this sweep (stopped or "
                             "failed): the exhaustive frontier is unknown, so no hypervolume is compared")
        return
    every = finals(curves)
    reference, front = exhaustive_hypervolume(curves, every)
    kept = kept_finals(every, outcome.finished_variants)
    value = hypervolume(kept, OBJECTIVES, bounds=reference.bounds).value if len(kept) else 0.0
    outcome.hypervolume = value
    outcome.hypervolume_kept = value / reference.value if reference.value > 0 else math.nan
    outcome.lost = sorted(set(front["variant_id"]) - set(kept["variant_id"]))


def fewest_keeping(every: pd.DataFrame, keep: float) -> list[str] | None:
    """The fewest variants of `every` (finals()) whose frontier keeps `keep` of the hypervolume of
    them all, or None when that hypervolume is 0: the hindsight floor of any stopping policy.

    Only frontier variants need trying (a dominated variant is dominated by a frontier one, which
    keeps at least as much). In two objectives a chosen set's hypervolume is a sum over consecutive
    chosen points (sorted by decode cost), so the best set of each size is a dynamic programme
    over the frontier: O(k n^2), exact, for a 571-variant sweep's frontier as for 12."""
    reference = hypervolume(every, OBJECTIVES)
    if not reference.value > 0:
        return None
    front = frontier(every, OBJECTIVES).drop_duplicates(list(OBJECTIVES))
    y, x = normalised(front, OBJECTIVES, reference.bounds).T  # hypervolume()'s axes: RD loss, decode cost
    inside = (x < reference.reference) & (y < reference.reference)
    order = np.argsort(x[inside], kind="stable")
    ids = front["variant_id"].to_numpy()[inside][order]
    x, y, r = x[inside][order], y[inside][order], reference.reference
    n = len(ids)
    # best[c][i]: the most hypervolume of c chosen points whose cheapest is i; then[c][i]: the next one.
    best = [[0.0] * n, [(r - x[i]) * (r - y[i]) for i in range(n)]]
    then: list[list[int | None]] = [[None] * n, [None] * n]
    goal = keep * reference.value
    for size in range(1, n + 1):
        if size > 1:
            row, nxt = [-math.inf] * n, [None] * n
            for i in range(n):
                for j in range(i + 1, n):
                    value = (x[j] - x[i]) * (r - y[i]) + best[size - 1][j]
                    if value > row[i]:
                        row[i], nxt[i] = value, j
            best.append(row)
            then.append(nxt)
        first = int(np.argmax(best[size]))
        if best[size][first] >= goal * (1 - 1e-12):
            chosen, at, left = [], first, size
            while at is not None:
                chosen.append(str(ids[at]))
                at, left = then[left][at], left - 1
            return chosen
    return [str(v) for v in ids]


def hindsight_floor(curves: list[Curve], max_steps: int, *, keep: float, stop_fraction: float,
                    order: str = "parallel", concurrency: int | None = None, setting: str | None = None) -> Outcome | None:
    """Finish the fewest variants that keep `keep` of the exhaustive hypervolume, stop every other
    at `stop_fraction`: no policy whose earliest stop is there spends fewer steps for `keep`.
    None when the exhaustive frontier is unknown (a trial did not finish) or has no hypervolume."""
    if any(not c.steps or c.steps[-1] < max_steps or c.final_rd_loss is None for c in curves):
        return None
    chosen = fewest_keeping(finals(curves), keep)
    if chosen is None:
        return None
    policy = FinishChosen(set(chosen), first_rung_step(max_steps, stop_fraction), name="oracle")
    return replay(curves, policy, max_steps, order=order, concurrency=concurrency,
                  setting=setting or f"in hindsight: finish the {len(chosen)} variants that keep {keep:g} of the "
                                     f"hypervolume with the fewest, stop the rest at {stop_fraction:g} (no policy "
                                     "stopping there spends less)")


# --- Baselines that choose instead of stopping -----------------------------------------------


def first_rung_step(max_steps: int, rung: float) -> int:
    return max(1, math.ceil(rung * max_steps))


def random_finish(curves: list[Curve], max_steps: int, k: int, *, stop_fraction: float, draws: int = 200,
                  seed: int = 0, order: str = "parallel", concurrency: int | None = None) -> list[Outcome]:
    """Finish k variants drawn at random, stop the rest at their first report past `stop_fraction`."""
    rng = np.random.default_rng(seed)
    variants = sorted({c.variant_id for c in curves})
    k = int(min(max(k, 0), len(variants)))
    out = []
    for _ in range(draws):
        chosen = set(rng.choice(variants, size=k, replace=False)) if k else set()
        policy = FinishChosen(chosen, first_rung_step(max_steps, stop_fraction), name="random")
        out.append(replay(curves, policy, max_steps, order=order, concurrency=concurrency,
                          setting=f"finish {k} random variants"))
    return out


def tpe_finish(curves: list[Curve], max_steps: int, k: int, *, seed: int = 0) -> Outcome:
    """Optuna's multi-objective TPE picks, one at a time, which variants to train fully (all seeds),
    told each one's final (RD loss, decode kFLOPs); k variants in all, nothing stopped early.
    A proposal of an already trained variant is told its known values again at no cost; after
    10 k proposals the rest is drawn at random from the untried variants."""
    import optuna

    every = finals(curves).set_index("variant_id")
    variants = sorted(every.index)
    k = int(min(max(k, 0), len(variants)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=seed))
    trained: list[str] = []
    for _ in range(10 * max(k, 1)):
        if len(trained) >= k:
            break
        trial = study.ask()
        variant = trial.suggest_categorical("variant_id", variants)
        if variant not in trained:
            trained.append(variant)
        study.tell(trial, [float(every.loc[variant, names.RD_LOSS]), float(every.loc[variant, names.DECODE_KFLOPS_PER_PX])])
    untried = [v for v in variants if v not in trained]
    rng = np.random.default_rng(seed)  # TPE kept proposing known variants: fill up at random
    trained += list(rng.choice(untried, size=k - len(trained), replace=False)) if len(trained) < k else []
    chosen = set(trained)
    trials = [c for c in curves if c.variant_id in chosen]
    steps = {c.trial_id: (max_steps if c.variant_id in chosen else 0) for c in curves}
    outcome = Outcome("optuna-tpe", f"TPE trains {k} variants fully", steps, {}, [c.trial_id for c in trials],
                      total_steps=int(sum(steps.values())), exhaustive_steps=max_steps * len(curves))
    score(outcome, curves, max_steps)
    return outcome


def mean_outcome(outcomes: list[Outcome]) -> dict:
    """One table row for repeated draws: means, and how often each frontier variant was lost."""
    lost: dict[str, int] = {}
    for o in outcomes:
        for v in o.lost:
            lost[v] = lost.get(v, 0) + 1
    kept = [o.hypervolume_kept for o in outcomes if o.hypervolume_kept is not None]
    return {"policy": outcomes[0].policy, "setting": f"{outcomes[0].setting} ({len(outcomes)} draws)",
            "steps_fraction": float(np.mean([o.steps_fraction for o in outcomes])),
            "hypervolume_kept": float(np.mean(kept)) if kept else None,
            "hypervolume_kept_sd": float(np.std(kept)) if kept else None,
            "stopped": float(np.mean([len(o.stops) for o in outcomes])),
            "finished_variants": float(np.mean([len(o.finished_variants) for o in outcomes])),
            "lost_frontier_variants": ", ".join(f"{v} ({100 * n / len(outcomes):.0f} %)" for v, n in sorted(lost.items()))}


# --- The policies a user compares ------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """The settings `rdc replay` and the bench replay."""

    rungs: tuple[float, ...] = (0.1, 0.25, 0.5)
    relative_margins: tuple[float, ...] = (0.0, 0.02, 0.05)
    noise_multiples: tuple[float, ...] = (1.0, 2.0)
    curve_multiples: tuple[float, ...] = (2.0,)
    grace_fraction: float = 0.1
    asha_factors: tuple[float, ...] = (2.0, 3.0, 4.0)
    ax_factors: tuple[float, ...] = (0.5,)
    min_curves: int = 5
    draws: int = 200
    oracle_keep: float = 0.95  # the hindsight floor's share of the hypervolume (issue 15's goal)


def shipped_rule(max_steps: int) -> FrontierRule:
    """What `scheduler=frontier` does with its defaults: the first row of every replay."""
    return FrontierRule(max_steps, DEFAULT_RUNGS, Margin(curve_multiple=DEFAULT_CURVE_MULTIPLE), window=DEFAULT_WINDOW,
                        label="scheduler=frontier's defaults")


def frontier_policies(max_steps: int, suite: Suite, noise_sd: float | None) -> list[FrontierRule]:
    """scheduler=frontier's defaults first (random and TPE get its steps), then the suite's margins."""
    out = [shipped_rule(max_steps)]
    out += [FrontierRule(max_steps, suite.rungs, Margin(relative=m)) for m in suite.relative_margins]
    if noise_sd is not None and math.isfinite(noise_sd):
        out += [FrontierRule(max_steps, suite.rungs, Margin(noise_multiple=k, noise_sd=noise_sd)) for k in suite.noise_multiples]
    return out + [FrontierRule(max_steps, suite.rungs, Margin(curve_multiple=k)) for k in suite.curve_multiples]


def baseline_policies(curves: list[Curve], max_steps: int, suite: Suite) -> list:
    grace = first_rung_step(max_steps, suite.grace_fraction)
    kflops = [c.kflops for c in curves if c.kflops is not None and math.isfinite(c.kflops)]
    kflops_ref = max(kflops) + 0.1 * (max(kflops) - min(kflops)) if kflops else None
    out = [AshaRule(max_steps, grace, rf) for rf in suite.asha_factors]
    out += [MoAshaRule(max_steps, grace, rf) for rf in suite.asha_factors]
    out += [ScaledParetoRule(max_steps, grace, suite.min_curves, f, kflops_reference=kflops_ref) for f in suite.ax_factors]
    return out


def equal_steps_k(curves: list[Curve], max_steps: int, budget: int, stop_fraction: float | None) -> int:
    """How many variants (all seeds) fit `budget` steps when the rest stop at `stop_fraction` (or never start)."""
    per_variant = {}
    for c in curves:
        per_variant[c.variant_id] = per_variant.get(c.variant_id, 0) + 1
    seeds = float(np.mean(list(per_variant.values())))
    n = len(per_variant)
    low = 0 if stop_fraction is None else first_rung_step(max_steps, stop_fraction)
    k = (budget / seeds - n * low) / (max_steps - low)
    return int(min(max(round(k), 1), n))


def replay_all(curves: list[Curve], max_steps: int, *, noise_sd: float | None = None, suite: Suite = Suite(),
               order: str = "parallel", concurrency: int | None = None, match: Outcome | None = None,
               seed: int = 0) -> tuple[pd.DataFrame, list[Outcome]]:
    """Every policy of the suite over the curves: one row each (random: mean over draws).

    Random and TPE get the step budget of `match` (default: scheduler=frontier's defaults, the first row)."""
    outcomes = []
    for policy in frontier_policies(max_steps, suite, noise_sd) + baseline_policies(curves, max_steps, suite):
        outcomes.append(replay(curves, policy, max_steps, order=order, concurrency=concurrency))
    reference = match or outcomes[0]
    rows = [o.row() for o in outcomes]
    k_random = equal_steps_k(curves, max_steps, reference.total_steps, suite.rungs[0])
    draws = random_finish(curves, max_steps, k_random, stop_fraction=suite.rungs[0], draws=suite.draws, seed=seed,
                          order=order, concurrency=concurrency)
    rows.append(mean_outcome(draws))
    if _has_optuna():
        k_tpe = equal_steps_k(curves, max_steps, reference.total_steps, None)
        tpe = [tpe_finish(curves, max_steps, k_tpe, seed=seed + s) for s in range(max(1, suite.draws // 20))]
        rows.append(mean_outcome(tpe))
        outcomes += tpe
    floor = hindsight_floor(curves, max_steps, keep=suite.oracle_keep, stop_fraction=suite.rungs[0], order=order,
                            concurrency=concurrency)
    if floor is not None:
        rows.append(floor.row())
    exhaustive = {"policy": "exhaustive", "setting": "every trial trained to the end", "steps_fraction": 1.0,
                  "hypervolume_kept": 1.0 if outcomes[0].hypervolume_kept is not None else None, "stopped": 0,
                  "finished_variants": len({c.variant_id for c in curves}), "lost_frontier_variants": ""}
    return pd.DataFrame([exhaustive] + rows), outcomes + draws


def _has_optuna() -> bool:
    import importlib.util

    return importlib.util.find_spec("optuna") is not None


# --- rdc replay ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from analysis.printing import FORMATS
    from analysis.store import display_uri, tracking_uri
    from rdc.arguments import ArgumentParser

    parser = ArgumentParser(prog="rdc replay", description="What each early-stopping policy would have stopped in a finished "
                     "sweep, the training steps it saves and the frontier hypervolume it keeps.")
    parser.add_argument("--experiment", required=True, help="MLflow experiment (the sweep's name)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow URI (default: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db)")
    parser.add_argument("--order", choices=ORDERS, default="observed",
                        help="report order: as the sweep logged them (default), or every trial in parallel")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="with --order parallel: at most this many trials at a time, in plan order")
    parser.add_argument("--noise-sd", type=float, default=None,
                        help="RD-loss noise (pooled within-variant sd) for noise-scaled margins "
                             "(default: measured from the experiment's seed replicates, if any)")
    parser.add_argument("--lmbda", type=float, default=None, help="only runs trained at this lambda")
    parser.add_argument("--metric", default=names.EVAL_RD_LOSS,
                        help=f"the curve policies rank by (default {names.EVAL_RD_LOSS}, the held-out RD loss)")
    parser.add_argument("--draws", type=int, default=Suite.draws,
                        help=f"random draws for the random baseline (default {Suite.draws}; TPE gets 1 per 20)")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="also draw hypervolume kept vs training steps for every policy (PATH.png and PATH.svg)")
    args = parser.parse_args(argv)
    for key, value in (("--concurrency", args.concurrency), ("--draws", args.draws)):
        if value is not None and value < 1:
            raise UserError(key, value, allowed="an integer >= 1")
    if args.noise_sd is not None and not (math.isfinite(args.noise_sd) and args.noise_sd >= 0):
        raise UserError("--noise-sd", args.noise_sd, allowed="a finite number >= 0 (the pooled within-variant sd of rd_loss)")
    if args.plot:
        from rdc.paths import check_writable_folder

        check_writable_folder(str(Path(args.plot).resolve().parent), key="--plot")

    curves, max_steps, notes = curves_from_mlflow(args.experiment, args.tracking_uri, lmbda=args.lmbda,
                                                  metric=args.metric)
    noise = args.noise_sd if args.noise_sd is not None else pooled_noise_sd(curves)
    if noise is None:
        notes.append("no seed replicates and no --noise-sd: noise-scaled margins are not replayed")
    suite = Suite(draws=args.draws)
    table, outcomes = replay_all(curves, max_steps, noise_sd=noise, suite=suite, order=args.order,
                                 concurrency=args.concurrency)
    for outcome in outcomes[:1]:
        notes += outcome.notes
    from analysis.curve_agreement import curve_agreement

    notes.append(curve_agreement(curves, max_steps, suite.rungs).describe())
    headline = (f"replay of {args.experiment!r} ({display_uri(tracking_uri(args.tracking_uri))}): {len(curves)} trials, "
                f"{len({c.variant_id for c in curves})} variants, {max_steps} steps each, order {args.order}")
    if args.format == "json":
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
    elif args.format == "csv":
        for line in [headline, *notes]:
            print(line, file=sys.stderr)
        sys.stdout.write(table.to_csv(index=False))
    else:
        from analysis.printing import print_table

        print_table(headline, notes, table, args.format, digits=".3f")
    if args.plot:
        from analysis.figures import hypervolume_vs_steps

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)  # checked writable before replaying
        drawn = hypervolume_vs_steps(table, Path(args.plot), title=headline)
        print(f"rdc replay: wrote {drawn.png} and {drawn.svg}", file=sys.stderr)
    return 0


def pooled_noise_sd(curves: list[Curve]) -> float | None:
    """The sweep's noise (analysis.replicates.noise_estimate: pooled within-variant sd of the final
    RD loss over seed replicates); None when no variant has two finished seeds."""
    from analysis.replicates import noise_estimate

    frame = pd.DataFrame([{"run_id": c.trial_id, names.TAG_VARIANT_ID: c.variant_id, names.TAG_SEED: c.seed,
                           names.RD_LOSS: c.final_rd_loss} for c in curves if c.final_rd_loss is not None])
    if frame.empty:
        return None
    noise = noise_estimate(frame).within_sd
    return None if math.isnan(noise) else float(noise)
