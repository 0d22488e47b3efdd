"""`search=optuna`: train a budget of a space's variants, chosen by Optuna, instead of all of them.

The study grids every variant; a space too large for that (the paper space at the study's 2M
steps) can be searched instead. Optuna proposes variants that push the rate-distortion-
computation frontier (rd_loss and decode kFLOPs/px, both minimised), in rounds: each round's
variants train exactly like a grid sweep's (one Ray Tune trial and one MLflow run each).

Optuna's state is never kept: before each round the study is rebuilt from every run of this
sweep in MLflow (FINISHED runs with their metrics, FAILED ones as failed trials). So a re-run of
the same command, a resumed driver or a widened space continues the search from what MLflow
holds, and the proposals are a pure function of it (the sampler is seeded by `search.seed` and
the number of variants tried).

Optuna samples only the variants the space expanded to: its parameters are each YAML family
(`family`) and, within it, every spec knob that varies among that family's variants, with the
values it takes there. A combination the space does not hold (removed by a constraint or a
budget) is told to Optuna as failed and another is asked for.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from dataclasses import dataclass

from rdc import names
from sweep.variant import Variant, canonical_json, flatten_spec

OBJECTIVES = (names.RD_LOSS, names.DECODE_KFLOPS_PER_PX)  # both minimised
FAMILY_PARAM = "family"
ASKS_PER_PICK = 20  # proposals Optuna may make per variant wanted before the rest are drawn at random


@dataclass(frozen=True)
class Coordinates:
    """The variants as Optuna parameters: family -> knobs that vary in it -> their values (JSON)."""

    families: tuple[str, ...]
    knobs: dict[str, dict[str, tuple[str, ...]]]
    variant_at: dict[tuple[str, tuple[str, ...]], Variant]
    params_of: dict[str, dict[str, str]]  # variant_id -> Optuna params

    @classmethod
    def of(cls, variants: list[Variant]) -> "Coordinates":
        by_family: dict[str, list[Variant]] = {}
        for variant in variants:
            by_family.setdefault(variant.group, []).append(variant)
        knobs, variant_at, params_of = {}, {}, {}
        for family, members in by_family.items():
            flat = [flatten_spec(v.spec) for v in members]
            keys = sorted(set().union(*flat))
            values = {key: {canonical_json(f.get(key)) for f in flat} for key in keys}
            varying = {key: tuple(sorted(texts, key=_order)) for key, texts in values.items() if len(texts) > 1}
            knobs[family] = varying
            for variant, spec in zip(members, flat):
                point = tuple(canonical_json(spec.get(key)) for key in varying)
                variant_at[(family, point)] = variant
                params_of[variant.variant_id] = {FAMILY_PARAM: family,
                                                 **{_param(family, key): text for key, text in zip(varying, point)}}
        return cls(tuple(by_family), knobs, variant_at, params_of)

    def distributions(self, params: dict[str, str]) -> dict:
        from optuna.distributions import CategoricalDistribution

        family = params[FAMILY_PARAM]
        out = {FAMILY_PARAM: CategoricalDistribution(self.families)}
        out.update({_param(family, key): CategoricalDistribution(choices) for key, choices in self.knobs[family].items()})
        return out

    def suggest(self, trial) -> Variant | None:
        """The variant an Optuna trial lands on; None where the space holds no such variant."""
        family = trial.suggest_categorical(FAMILY_PARAM, self.families)
        point = tuple(trial.suggest_categorical(_param(family, key), choices) for key, choices in self.knobs[family].items())
        return self.variant_at.get((family, point))


def _order(text: str):
    value = json.loads(text)
    return (0, value, text) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, text)


def _param(family: str, key: str) -> str:
    return f"{family}:{key}"


def sampler_for(name: str, seed: int, batch: int):
    import optuna

    if name == "tpe":
        # constant_liar: variants of one round are proposed before any of them has a result.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, 2 * batch))
    return optuna.samplers.RandomSampler(seed=seed)


def outcomes(runs: dict[str, tuple[str, dict[str, float]]]) -> dict[str, tuple[float, float] | None]:
    """variant_id -> its objectives (a FINISHED run with both), or None (failed, or no result)."""
    out = {}
    for variant_id, (status, metrics) in runs.items():
        values = tuple(metrics.get(key) for key in OBJECTIVES)
        finished = status == "FINISHED" and all(v is not None and math.isfinite(v) for v in values)
        out[variant_id] = values if finished else None
    return out


def study_of(coordinates: Coordinates, results: dict[str, tuple[float, float] | None], sampler):
    """A fresh Optuna study holding every result of a variant of this space, in a stable order."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)
    for variant_id in sorted(results):
        params = coordinates.params_of.get(variant_id)
        if params is None:  # a variant of an earlier version of the space
            continue
        values = results[variant_id]
        study.add_trial(create_trial(params=params, distributions=coordinates.distributions(params),
                                     values=list(values) if values else None,
                                     state=TrialState.COMPLETE if values else TrialState.FAIL))
    return study


def propose(variants: list[Variant], runs: dict[str, tuple[str, dict[str, float]]], count: int, *,
            sampler: str = "tpe", seed: int = 0) -> list[Variant]:
    """Up to `count` variants not tried yet, chosen by Optuna from the results in `runs`
    (variant_id -> (status, metrics)). Deterministic for the same runs, sampler and seed."""
    from optuna.trial import TrialState

    coordinates = Coordinates.of(variants)
    tried = set(runs)
    untried = [v for v in variants if v.variant_id not in tried]
    count = min(count, len(untried))
    if count <= 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for multi-objective TPE options
        study = study_of(coordinates, outcomes(runs), sampler_for(sampler, seed + len(tried), count))
        picks: list[Variant] = []
        for _ in range(ASKS_PER_PICK * count):
            if len(picks) == count:
                break
            trial = study.ask()
            variant = coordinates.suggest(trial)
            if variant is None or variant.variant_id in tried:
                # Not in the space, or known: failed for Optuna, which then samples elsewhere.
                study.tell(trial, state=TrialState.FAIL)
                continue
            picks.append(variant)  # left running: constant_liar keeps the next asks away from it
            tried.add(variant.variant_id)
    # Optuna kept landing on known variants (a nearly exhausted space): draw the rest at random.
    rest = [v for v in untried if v.variant_id not in tried]
    picks += random.Random(seed + len(runs)).sample(rest, count - len(picks))
    return picks


def round_size(search: dict, slots: int) -> int:
    """Variants per round: search.batch, else as many as the cluster runs at once."""
    return search["batch"] or max(1, slots)
