"""Trials: a variant trained at one training point, a (seed, lambda) of the sweep's axes.

`train.seeds: [0, 1, 2]` trains every variant once per seed (replicates, to tell architecture
from noise); `train.lmbdas: [...]` once per lambda (an RD curve per architecture). Each pair is
one Ray Tune trial and one MLflow run, tagged `seed` and `lmbda`; variant_id stays the
architecture's, so the analysis groups a variant's runs.

A run is identified as before, by (sweep, variant_id, train_config_id), where the id is that of
the training config the trial really trains with: train.seed and train.lmbda set to its point,
the axes themselves left out. So the run of (variant, seed 0) in a sweep with `train.seeds:
[0, 1, 2]` is the run of the same sweep without the axis: widening a sweep to more seeds or
lambdas trains only the points it lacks, and narrowing it keeps what was trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

from rdc import names
from rdc.errors import UserError
from sweep.tracking import TRAIN_AXES as AXES, RunState, SweepRecord, run_states, train_config_id
from sweep.variant import Variant


@dataclass(frozen=True, order=True)
class TrainPoint:
    """Where on the sweep's axes a trial trains: its seed and its lambda."""

    lmbda: float
    seed: int

    def as_config(self) -> dict:
        return {"seed": self.seed, "lmbda": self.lmbda}

    def tags(self) -> dict[str, str]:
        return {names.TAG_SEED: str(self.seed), names.TAG_LMBDA: f"{self.lmbda:g}"}


def check_axes(train: dict) -> None:
    """UserError for a train.seeds or train.lmbdas the sweep cannot train (at load time)."""
    seeds, lmbdas = train.get("seeds"), train.get("lmbdas")
    if seeds is not None:
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise UserError("train.seeds", seeds, allowed="null, or a non-empty list of integers >= 0, e.g. [0, 1, 2]")
        if len(set(seeds)) != len(seeds):
            raise UserError("train.seeds", seeds, reason="a seed is listed twice", allowed="distinct seeds")
    if lmbdas is not None:
        if not lmbdas or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0
                             for x in lmbdas):
            raise UserError("train.lmbdas", lmbdas,
                            allowed="null, or a non-empty list of positive numbers, e.g. [0.0035, 0.0067, 0.0125]")
        if len({float(x) for x in lmbdas}) != len(lmbdas):
            raise UserError("train.lmbdas", lmbdas, reason="a lambda is listed twice", allowed="distinct lambdas")


def train_points(train: dict) -> list[TrainPoint]:
    """The sweep's points, lambda-major: train.seeds x train.lmbdas, each defaulting to the one
    train.seed / train.lmbda."""
    seeds = train.get("seeds") or [train["seed"]]
    lmbdas = train.get("lmbdas") or [train["lmbda"]]
    return [TrainPoint(float(lmbda), int(seed)) for lmbda in lmbdas for seed in seeds]


def point_train(train: dict, point: TrainPoint) -> dict:
    """The training config of one point: the sweep's, with its seed and lambda, without the axes."""
    out = {key: value for key, value in train.items() if key not in AXES}
    out["seed"], out["lmbda"] = point.seed, point.lmbda
    return out


@dataclass(frozen=True)
class Trial:
    """One variant at one point: a Tune trial, and the MLflow run found by `record`."""

    variant: Variant
    point: TrainPoint
    record: SweepRecord  # the sweep's, with this point's training-config id
    key: str  # the trial's name: the variant id, suffixed with the point when the sweep has several
    train: dict  # the training config it trains with (point_train)

    def as_config(self) -> dict:
        """Plain data for the trial's config (sweep.launch): rebuilt by trial_of."""
        return {"variant": self.variant.as_config(), "point": self.point.as_config(), "key": self.key,
                "record": self.record.as_config(), "train": self.train}

    def describe(self) -> str:
        return f"{self.variant.family} {self.variant.label()}" + (f" {self.point_label}" if self.point_label else "")

    @property
    def point_label(self) -> str:
        return self.key[len(self.variant.variant_id) + 1:] if self.key != self.variant.variant_id else ""


def trial_of(config: dict) -> Trial | None:
    """The Trial of a Tune trial's config; None for a config from before trials travelled."""
    entry = config.get("trial")
    if entry is None:
        return None
    point = TrainPoint(float(entry["point"]["lmbda"]), int(entry["point"]["seed"]))
    return Trial(Variant.from_config(entry["variant"]), point, SweepRecord(**entry["record"]), entry["key"],
                 dict(entry["train"]))


class TrialGrid:
    """The sweep's points and the trials of its variants: what to train, and what MLflow holds
    about each trial (by its key) and about each variant (its points together)."""

    def __init__(self, settings: dict):
        train = settings["train"]
        self.points = train_points(train)
        self.several_seeds = len({p.seed for p in self.points}) > 1
        self.several_lmbdas = len({p.lmbda for p in self.points}) > 1
        base = SweepRecord.of(settings)
        self.name = base.sweep
        data = settings["data"]["train_dir"]
        self.trains = {p: point_train(train, p) for p in self.points}
        self.records = {p: dataclasses.replace(base, train_config_id=train_config_id(self.trains[p], data))
                        for p in self.points}

    def attach(self, parent_run: str) -> None:
        """Make every trial's run a child of the sweep-level run (sweep.sweep_run)."""
        self.records = {p: dataclasses.replace(r, parent_run=parent_run) for p, r in self.records.items()}

    def describe(self) -> str:
        """What the axes multiply each variant by, for the driver's lines ("" for one point)."""
        seeds = sorted({p.seed for p in self.points})
        lmbdas = sorted({p.lmbda for p in self.points})
        parts = ([f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"] if self.several_seeds else []) + \
                ([f"{len(lmbdas)} lambdas ({', '.join(f'{x:g}' for x in lmbdas)})"] if self.several_lmbdas else [])
        return f", each at {' x '.join(parts)}" if parts else ""

    def key(self, variant: Variant, point: TrainPoint) -> str:
        parts = ([f"s{point.seed}"] if self.several_seeds else []) + ([f"l{point.lmbda:g}"] if self.several_lmbdas else [])
        return "-".join([variant.variant_id, *parts])

    def trials(self, variants: list[Variant]) -> list[Trial]:
        return [Trial(v, p, self.records[p], self.key(v, p), self.trains[p]) for v in variants for p in self.points]

    def trial_states(self) -> dict[str, RunState]:
        """Trial key -> its run's state, for every run the sweep's points hold."""
        out = {}
        for point, record in self.records.items():
            for variant_id, state in run_states(record).items():
                out[self.key(_Id(variant_id), point)] = state
        return out

    def unsettled(self, trials: list[Trial], states: Mapping[str, RunState]) -> list[Trial]:
        """The trials with something left to train (no run, or one neither finished nor stopped)."""
        return [t for t in trials if not (t.key in states and states[t.key].settled)]

    def evaluated_elsewhere(self, trials: list[Trial], states: Mapping[str, RunState], data: dict) -> list[Trial]:
        """FINISHED trials whose final metrics are of another evaluation set than `data` names
        (sweep.reevaluate evaluates them again, without training)."""
        from sweep.reevaluate import eval_set_label

        label = eval_set_label(data)
        return [t for t in trials if t.key in states and states[t.key].finished
                and states[t.key].eval_images and states[t.key].eval_images != label]

    def variant_states(self, variants: list[Variant], states: Mapping[str, RunState]) -> dict[str, RunState]:
        """Variant id -> its points' runs as one state (what search strategies read): present once
        any point has a run; settled when every point is; its metrics the mean over its finished
        points (optuna optimises the mean over seeds)."""
        out = {}
        for variant in variants:
            mine = [states.get(self.key(variant, p)) for p in self.points]
            present = [s for s in mine if s is not None]
            if present:
                out[variant.variant_id] = combine(present, missing=len(mine) - len(present))
        return out


@dataclass(frozen=True)
class _Id:
    """Stands in for a Variant where only its id names a trial."""

    variant_id: str


def combine(states: list[RunState], *, missing: int = 0) -> RunState:
    """Several points' runs of one variant as one state. FINISHED when all finished; stopped
    (at the earliest step) when all settled and some were stopped; FAILED if any failed;
    RUNNING (not settled) while some point has no run or an open one."""
    if len(states) == 1 and not missing:
        return states[0]
    finished = [s for s in states if s.finished]
    keys = set.intersection(*(set(s.metrics) for s in finished)) if finished else set()
    metrics = {k: sum(s.metrics[k] for s in finished) / len(finished) for k in keys}
    failures = [s for s in states if not s.settled and s.status == "FAILED"]
    if failures:
        return RunState("FAILED", metrics, failures[0].failure, missing=missing)
    if missing or any(not s.settled for s in states):
        return RunState("RUNNING", metrics, missing=missing)
    stopped = [s for s in states if s.stopped]
    if stopped:
        first = min(stopped, key=lambda s: s.stopped_at)
        return RunState(names.STOPPED_STATUS, metrics, stopped_at=first.stopped_at, stopped_by=first.stopped_by)
    return RunState("FINISHED", metrics)
