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

from typing import Callable

from rdc import names
from rdc.errors import UserError
from sweep.search.base import Runs, SearchStrategy
from sweep.variant import Variant, canonical_json, flatten_spec

OBJECTIVES = (names.RD_LOSS, names.DECODE_KFLOPS_PER_PX)  # both minimised
GROUP_PARAM = "family"  # the Optuna parameter choosing the YAML family (Variant.group); the name
# is kept from before Variants named their groupings, so seeded proposals stay the same
ASKS_PER_PICK = 20  # proposals Optuna may make per variant wanted before the rest are drawn at random


@dataclass(frozen=True)
class Coordinates:
    """The variants as Optuna parameters: YAML family (group) -> knobs that vary in it -> their values (JSON)."""

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
                params_of[variant.variant_id] = {GROUP_PARAM: family,
                                                 **{_param(family, key): text for key, text in zip(varying, point)}}
        return cls(tuple(by_family), knobs, variant_at, params_of)

    def distributions(self, params: dict[str, str]) -> dict:
        from optuna.distributions import CategoricalDistribution

        family = params[GROUP_PARAM]
        out = {GROUP_PARAM: CategoricalDistribution(self.families)}
        out.update({_param(family, key): CategoricalDistribution(choices) for key, choices in self.knobs[family].items()})
        return out

    def suggest(self, trial) -> Variant | None:
        """The variant an Optuna trial lands on; None where the space holds no such variant."""
        family = trial.suggest_categorical(GROUP_PARAM, self.families)
        point = tuple(trial.suggest_categorical(_param(family, key), choices) for key, choices in self.knobs[family].items())
        return self.variant_at.get((family, point))


def _order(text: str):
    value = json.loads(text)
    return (0, value, text) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, text)


def _param(family: str, key: str) -> str:
    return f"{family}:{key}"


def _tpe(seed: int, batch: int):
    import optuna

    # constant_liar: variants of one round are proposed before any of them has a result.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _nsga2(seed: int, batch: int):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, 2 * batch))


def _random(seed: int, batch: int):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


# search.sampler -> Optuna sampler for (seed, variants per round). A new sampler is one line.
SAMPLERS: dict[str, Callable] = {"tpe": _tpe, "nsga2": _nsga2, "random": _random}


def sampler_for(name: str, seed: int, batch: int):
    return SAMPLERS[name](seed, batch)


PRUNED = "pruned"  # outcomes(): a run a trial scheduler stopped; Optuna learns it as a pruned trial


def outcomes(runs: Runs) -> dict[str, tuple[float, float] | str | None]:
    """variant_id -> its objectives (a FINISHED run with both), PRUNED (stopped by a scheduler),
    or None (failed, or no result)."""
    out = {}
    for variant_id, state in runs.items():
        values = tuple(state.metrics.get(key) for key in OBJECTIVES)
        if state.finished and all(v is not None and math.isfinite(v) for v in values):
            out[variant_id] = values
        else:
            out[variant_id] = PRUNED if state.stopped else None
    return out


def study_of(coordinates: Coordinates, results: dict[str, tuple[float, float] | str | None], sampler):
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
        if values == PRUNED:
            state, values = TrialState.PRUNED, None
        else:
            state = TrialState.COMPLETE if values else TrialState.FAIL
        study.add_trial(create_trial(params=params, distributions=coordinates.distributions(params),
                                     values=list(values) if values else None, state=state))
    return study


def propose(variants: list[Variant], runs: Runs, count: int, *, sampler: str = "tpe", seed: int = 0) -> list[Variant]:
    """Up to `count` variants not tried yet, chosen by Optuna from the results in `runs`
    (variant_id -> RunState). Deterministic for the same runs, sampler and seed."""
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


class OptunaSearch(SearchStrategy):
    """`search=optuna`: `search.budget` variants, proposed by Optuna in rounds of `search.batch`."""

    name = "optuna"
    force_refusal = "search=optuna continues from every run of the sweep"

    @classmethod
    def check_config(cls, search: dict) -> None:
        if search["budget"] < 1:
            raise UserError("search.budget", search["budget"],
                            allowed="a positive integer: how many variants search=optuna trains")

    def __init__(self, search: dict, variants: list[Variant], *, force: bool = False):
        super().__init__(search, variants, force=force)
        if search["budget"] > len(self.variants):
            # Silently training the whole space would be a grid sweep the user did not ask for.
            raise UserError("search.budget", search["budget"],
                            reason=f"the space has only {len(self.variants)} variants",
                            allowed=f"at most {len(self.variants)} (search=grid trains every variant)")

    def tried(self, runs: Runs) -> int:
        return sum(v.variant_id in runs for v in self.variants)

    def incomplete(self, runs: Runs) -> list[Variant]:
        """Tried variants with seeds or lambdas (sweep.trials) still without a run: a widened
        sweep trains those before it proposes new variants."""
        return [v for v in self.variants if v.variant_id in runs and runs[v.variant_id].missing]

    def left(self, runs: Runs) -> int:
        """Variants the search may still train: its budget less those with a run, and the
        tried ones that lack points."""
        return max(0, self.search["budget"] - self.tried(runs)) + len(self.incomplete(runs))

    def describe(self, runs: Runs) -> str:
        return (f", optuna search ({self.search['sampler']}): {len(self.variants)} variants, budget "
                f"{self.search['budget']}, {self.tried(runs)} tried, {self.left(runs)} to train")

    def propose(self, runs: Runs, slots: int, launched: list[str]) -> list[Variant]:
        if self.incomplete(runs):
            return self.incomplete(runs)
        count = min(self.left(runs), round_size(self.search, slots))
        if count <= 0:
            return []
        return propose(self.variants, runs, count, sampler=self.search["sampler"], seed=self.search["seed"])

    def round_line(self, picks: list[Variant]) -> str:
        return f"search round: {len(picks)} variant(s) proposed by optuna ({self.search['sampler']})"
