"""The search-space language: grids, merging, one_of, constraints, budgets, and the presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models import parse_spec
from models.presets import preset
from rdc import names
from rdc.errors import UserError
from sweep.plan import CostModel
from sweep.space import expand, expand_space, parse_space

PRESETS = Path(__file__).resolve().parents[2] / "conf" / "search_space"
TINY = {"transform": {"type": "conv", "N": 8}, "entropy": "hyperprior", "hyper": {"type": "conv", "N": 8}, "M": 8}


def space(text: str) -> dict:
    return yaml.safe_load(text)


def knob_values(variants, kind: str, knob: str) -> list:
    return [v.spec[kind][knob] for v in variants]


def test_a_list_a_values_mapping_and_a_range_spell_the_same_grid():
    ids = []
    for grid in ("[16, 24, 32]", "{values: [16, 24, 32]}", "{from: 16, to: 32, step: 8}"):
        variants = expand(space(f"""
            name: s
            families:
              - {{name: f, transform: {{type: conv, N: {grid}}}, entropy: hyperprior, hyper: {{type: conv, N: 8}}, M: 8}}
        """))
        assert knob_values(variants, "transform", "N") == [16, 24, 32]
        ids.append([v.variant_id for v in variants])
    assert ids[0] == ids[1] == ids[2]


def test_the_grid_is_the_product_of_every_axis_in_a_fixed_order():
    variants = expand(space("""
        name: s
        families:
          - {name: f, transform: {type: conv, N: [8, 16]}, entropy: hyperprior, hyper: {type: conv, N: [4, 8, 12]}, M: [8, 16]}
    """))
    assert len(variants) == 12
    # M first, then the kinds in registry order, knobs in their component's field order
    assert [(v.spec["M"], v.spec["transform"]["N"], v.spec["hyper"]["N"]) for v in variants[:4]] == [
        (8, 8, 4), (8, 8, 8), (8, 8, 12), (8, 16, 4)]


def test_shared_knobs_merge_under_each_family_and_the_family_wins():
    variants = expand(space("""
        name: s
        shared: {M: 8, hyper: {type: conv, N: 8, layout: balle2018}, entropy: hyperprior}
        families:
          - {name: a, transform: {type: conv, N: 8}}
          - {name: b, transform: {type: conv, N: 8}, hyper: {N: 16}, M: 16}
    """))
    a, b = variants
    assert a.spec["hyper"] == {**b.spec["hyper"], "N": 8} and b.spec["hyper"]["N"] == 16
    assert b.spec["hyper"]["layout"] == "balle2018"  # kept from shared: same component type
    assert (a.spec["M"], b.spec["M"]) == (8, 16)
    assert (a.group, b.group) == ("a", "b")


def test_another_component_type_replaces_the_shared_one_and_its_knobs():
    variants = expand(space("""
        name: s
        shared: {M: 32, entropy: hyperprior, hyper: {type: conv, N: 8, layout: balle2018}}
        families:
          - name: swin-hyper
            transform: {type: conv, N: 8}
            hyper: {type: swint, dims: [16, 16], depths: [1, 1], head_dim: 8}
    """))
    (variant,) = variants
    assert variant.spec["hyper"]["type"] == "swint" and "layout" not in variant.spec["hyper"]
    assert variant.family == "Conv/Hyperprior:SwinT"


def test_a_list_valued_knob_takes_a_list_as_one_value_and_a_list_of_lists_as_a_grid():
    one = expand(space("""
        name: s
        families: [{name: f, transform: {type: elic, channels: [8, 8, 8]}, entropy: hyperprior, hyper: {type: conv, N: 8}, M: 8}]
    """))
    grid = expand(space("""
        name: s
        families: [{name: f, transform: {type: elic, channels: [[8, 8, 8], [8, 16, 16]]}, entropy: hyperprior, hyper: {type: conv, N: 8}, M: 8}]
    """))
    assert knob_values(one, "transform", "channels") == [[8, 8, 8]]
    assert knob_values(grid, "transform", "channels") == [[8, 8, 8], [8, 16, 16]]


def test_one_of_is_a_union_of_alternatives_that_tie_knobs_together():
    variants = expand(space("""
        name: s
        families:
          - name: f
            transform: {type: conv, N: [8, 16]}
            entropy: {type: charm, num_slices: 2}
            hyper: {type: conv, N: 8}
            M: 8
            one_of:
              - entropy: {slice_widths: [8, 8], slice_kernel: 5}
                hyper: {layout: ms2020}
              - entropy: {slice_widths: [[4, 4], [8, 4]], slice_kernel: 3, slice_taper: true}
    """))
    assert len(variants) == 2 * (1 + 2)
    designs = {(v.spec["entropy"]["slice_kernel"], v.spec["hyper"]["layout"]) for v in variants}
    assert designs == {(5, "ms2020"), (3, "minnen2018")}  # no untied combination appears
    assert {v.group for v in variants} == {"f"}


def test_constraints_see_defaults_that_the_yaml_leaves_out():
    # num_slices is not written: its default (10) still decides which M survive
    variants = expand(space("""
        name: s
        families:
          - {name: f, transform: {type: conv, N: 8}, entropy: charm, hyper: {type: conv, N: 8}, M: [20, 25, 30]}
        constraints: [{divisible: [M, entropy.num_slices]}]
    """))
    assert [v.spec["M"] for v in variants] == [20, 30]


def test_a_constraint_on_a_knob_a_family_lacks_leaves_that_family_alone():
    expansion = expand_space(space("""
        name: s
        families:
          - {name: charm, transform: {type: conv, N: 8}, entropy: {type: charm, num_slices: 4}, hyper: {type: conv, N: 8}, M: [8, 10, 12]}
          - {name: hp, transform: {type: conv, N: 8}, entropy: hyperprior, hyper: {type: conv, N: 8}, M: [8, 10, 12]}
        constraints: [{divisible: [M, entropy.num_slices]}]
    """))
    assert [(v.group, v.spec["M"]) for v in expansion.variants] == [
        ("charm", 8), ("charm", 12), ("hp", 8), ("hp", 10), ("hp", 12)]
    assert expansion.removed_by_constraints == 1


def test_a_bound_on_a_list_valued_knob_holds_for_every_element_and_family_constraints_stay_local():
    variants = expand(space("""
        name: s
        shared: {M: 8, entropy: hyperprior, hyper: {type: conv, N: 8}}
        families:
          - name: elic
            transform: {type: elic, channels: [[8, 8, 8], [8, 16, 8], [16, 16, 16]]}
            constraints: [{max: {key: transform.channels, value: 8}}]
          - {name: conv, transform: {type: conv, N: [8, 16]}}
    """))
    assert [v.spec["transform"].get("channels", v.spec["transform"].get("N")) for v in variants] == [[8, 8, 8], 8, 16]


def test_a_budget_keeps_exactly_the_variants_whose_cost_is_within_it():
    raw = space("""
        name: s
        families:
          - {name: f, transform: {type: conv, N: [8, 16, 24, 32]}, entropy: hyperprior, hyper: {type: conv, N: 8}, M: 8}
    """)
    costs = CostModel()
    every = expand(raw)
    flops = {v.variant_id: costs(v.spec)[names.DECODE_KFLOPS_PER_PX] for v in every}
    bound = sorted(flops.values())[1]  # keeps the two cheapest (<= is inclusive)
    raw["constraints"] = [{"max": {"key": names.DECODE_KFLOPS_PER_PX, "value": bound}}]
    expansion = expand_space(raw, costs=costs)
    assert {v.variant_id for v in expansion.variants} == {i for i, f in flops.items() if f <= bound}
    assert len(expansion.variants) == 2 and expansion.removed_by_budget == 2
    assert expansion.costs[every[0].variant_id][names.DECODE_KFLOPS_PER_PX] == flops[every[0].variant_id]


def test_the_same_architecture_from_two_families_is_one_variant_of_the_first():
    expansion = expand_space(space("""
        name: s
        shared: {M: 8, entropy: hyperprior, hyper: {type: conv, N: 8}}
        families:
          - {name: first, transform: {type: conv, N: [8, 16]}}
          - {name: second, transform: {type: conv, N: [16, 32]}}
    """))
    assert [(v.group, v.spec["transform"]["N"]) for v in expansion.variants] == [
        ("first", 8), ("first", 16), ("second", 32)]
    assert expansion.duplicates == 1 and expansion.points == 4


def test_incompatible_knobs_name_the_family_and_suggest_a_constraint():
    with pytest.raises(UserError) as info:
        expand(space("""
            name: s
            families:
              - {name: f, transform: {type: conv, N: 8}, entropy: {type: charm, num_slices: [2, 3]}, hyper: {type: conv, N: 8}, M: 8}
        """))
    err = info.value
    assert err.key == "search_space.families[0].entropy.num_slices" and err.value == 3
    assert "constraint" in err.reason and "M=8" in err.allowed


def test_parse_space_gives_the_schema_objects():
    parsed = parse_space(space("""
        name: s
        shared: {M: [8, 16]}
        families:
          - {name: f, transform: {type: conv, N: [8, 16, 24]}, entropy: hyperprior, hyper: {type: conv, N: 8}}
    """))
    (family,) = parsed.families
    assert family.size == 6 and parsed.size == 6
    assert dict(family.types) == {"transform": "conv", "entropy": "hyperprior", "hyper": "conv"}
    assert [axis.where for axis in family.axes] == [
        "search_space.shared.M", "search_space.families[0].transform.N", "search_space.families[0].hyper.N"]


# -- presets ----------------------------------------------------------------------------------
def load(name: str) -> dict:
    return yaml.safe_load((PRESETS / f"{name}.yaml").read_text())


def test_demo_stays_small_enough_for_a_cpu():
    assert 4 <= len(expand(load("demo"))) <= 8


def test_paper_has_at_least_the_studys_571_variants_in_its_seven_families():
    variants = expand(load("paper"))
    assert len(variants) >= 571
    assert {v.family for v in variants} == {
        "Conv/Hyperprior:Conv", "Conv/CHARM:Conv", "ELIC/Hyperprior:Conv", "ELIC/CHARM:Conv",
        "SwinT/Hyperprior:Conv", "SwinT/CHARM:Conv", "ELIC/CHARM:SwinT"}
    header = (PRESETS / "paper.yaml").read_text().split("\nname:")[0]
    assert f"{len(variants)}" in header  # the header's count is the real one


def test_frontier_has_table_1s_letters_in_decreasing_decode_cost():
    variants = expand(load("frontier"))
    assert [v.group for v in variants] == list("ABCDEFG")
    assert [v.family for v in variants] == ["ELIC/CHARM:SwinT"] * 4 + [
        "SwinT/Hyperprior:Conv", "ELIC/Hyperprior:Conv", "Conv/Hyperprior:Conv"]
    costs = CostModel()
    flops = [costs(v.spec)[names.DECODE_KFLOPS_PER_PX] for v in variants]
    assert flops == sorted(flops, reverse=True)
    assert max(costs(v.spec)[names.PARAMS] for v in variants) < 2e6  # CPU-sized


def test_model_b_starts_with_the_study_model_b_preset_then_its_factorial_ablation():
    variants = expand(load("model_b"))
    assert len(variants) == 16
    assert variants[0].spec == parse_spec(preset("study-model-b")).to_dict()
