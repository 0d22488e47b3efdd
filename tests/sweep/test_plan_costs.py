"""The plan's fast costs equal the slow way exactly: build the whole model with real weights and
count it with jobs.profile (params, decode and encode FLOPs), on every family."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pytest
import yaml

from models.errors import SpecError
from sweep.plan import CostModel, PartError, measured_costs, part_key, verification_sample
from sweep.space import expand
from tests.conftest import TEST_SCALE

PRESETS = Path(__file__).resolve().parents[2] / "conf" / "search_space"

# Tiny versions of the component options; the 12 specs below are the 3 x 2 x 2 families, each
# option of each component appearing in at least one of them, costed both ways in seconds.
TRANSFORMS = [
    {"type": "conv", "N": 8},
    {"type": "elic", "channels": [8, 16, 8], "num_res_blocks": 1},
    {"type": "swint", "dims": [8, 8, 16], "depths": [1, 2, 1, 1], "head_dim": 8, "window": 4},
]
ENTROPIES = [
    {"type": "hyperprior"},
    {"type": "hyperprior", "mode": "scale"},
    {"type": "charm", "num_slices": 2, "slice_widths": [8, 8]},
    {"type": "charm", "num_slices": 4, "max_support_slices": 2, "slice_widths": [8, 4], "slice_kernel": 3,
     "slice_taper": True, "lrp_merge": "concat", "hyper_heads": "per_slice"},
    {"type": "charm", "num_slices": 4, "slice_widths": [8], "lrp": False, "hyper_heads": "sliced"},
]
HYPERS = [
    {"type": "conv", "N": 8},
    {"type": "conv", "N": 8, "layout": "ms2020"},
    {"type": "swint", "dims": [8, 16], "depths": [2, 1], "head_dim": 8, "window": 4},
]

def _families() -> list[dict]:
    def options(choices: list[dict], type_: str) -> itertools.cycle:
        return itertools.cycle([c for c in choices if c["type"] == type_])

    entropy = {t: options(ENTROPIES, t) for t in ("hyperprior", "charm")}
    hyper = {t: options(HYPERS, t) for t in ("conv", "swint")}
    return [{"M": 16, "transform": t, "entropy": next(entropy[e]), "hyper": next(hyper[h])}
            for t in TRANSFORMS for e in entropy for h in hyper]


TINY_SPECS = _families()


def spec_id(spec: dict) -> str:
    return "/".join(spec[k]["type"] for k in ("transform", "entropy", "hyper"))


@pytest.fixture(scope="module")
def fast():
    return CostModel()


@pytest.mark.parametrize("spec", TINY_SPECS, ids=[spec_id(s) for s in TINY_SPECS])
def test_fast_costs_equal_the_real_model_counted_by_jobs_profile(spec, fast):
    assert fast(spec) == measured_costs(spec)


@pytest.mark.parametrize("height, width", [(250, 370), (64, 96)])
def test_fast_costs_equal_the_real_model_at_sizes_that_need_padding_or_clamped_windows(height, width):
    fast = CostModel(height, width)
    for spec in TINY_SPECS[::2]:
        assert fast(spec) == measured_costs(spec, height, width), spec_id(spec)


def test_every_way_of_building_a_part_counts_the_same():
    ways = [CostModel(), CostModel(strategies=("fake", "real")), CostModel(strategies=("real",))]
    for spec in TINY_SPECS[::2]:
        first, *others = (way(spec) for way in ways)
        assert all(other == first for other in others), spec_id(spec)
    assert ways[0].built_by["meta"] and ways[0].built_by["fake"]  # GDN needs FakeTensorMode
    assert ways[2].built_by == {"meta": 0, "fake": 0, "real": ways[2].parts_built}


def test_each_distinct_part_is_built_once_and_shared_by_the_variants_that_use_it(fast):
    model = CostModel()
    for spec in TINY_SPECS:
        model(spec)
    keys = {part_key(kind, spec) for spec in TINY_SPECS for kind in ("transform", "latent")}
    latents = {(str(s["entropy"]), str(s["hyper"])) for s in TINY_SPECS}
    assert model.parts_built == len(keys) == len(TRANSFORMS) + len(latents) < 2 * len(TINY_SPECS)


def test_costing_parts_in_worker_processes_gives_the_same_numbers():
    parallel, serial = CostModel(workers=2), CostModel()
    parallel.prepare(TINY_SPECS[:8])
    built = parallel.parts_built
    assert built == len({part_key(k, s) for s in TINY_SPECS[:8] for k in ("transform", "latent")})
    for spec in TINY_SPECS[:8]:
        assert parallel(spec) == serial(spec)
    assert parallel.parts_built == built  # nothing was costed again in this process


def test_a_part_that_refuses_to_build_crosses_processes_with_its_spec():
    error = PartError.of("transform", TINY_SPECS[0], SpecError("N", 0, "numbers >= 1"))
    again = pickle.loads(pickle.dumps(error))
    assert (again.kind, again.spec, again.key, again.value, again.allowed) == (
        "transform", TINY_SPECS[0], "N", 0, "numbers >= 1")
    assert str(again) == "transform: N=0: allowed: numbers >= 1"


@pytest.mark.slow
def test_fast_costs_equal_the_real_models_on_a_sample_of_every_paper_family(fast):
    variants = expand(yaml.safe_load((PRESETS / "paper.yaml").read_text()))
    families = {v.family for v in variants}
    sample = verification_sample(variants, max(len(families), int(len(families) * TEST_SCALE)))
    assert {v.family for v in sample} == families
    for variant in sample:
        assert fast(variant.spec) == measured_costs(variant.spec), (variant.family, variant.label())
