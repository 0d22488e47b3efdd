"""Specs: incompatible knobs fail at parse/build time with one line naming the knob, specs
have one canonical form, and every knob has a type the search-space expander understands."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from models import build, parse_spec
from models.errors import SpecError
from models.registry import KINDS, component_class, names


def spec(transform=None, entropy=None, hyper=None, M=32) -> dict:
    return {
        "M": M,
        "transform": transform or {"type": "conv", "N": 8},
        "entropy": entropy or {"type": "hyperprior"},
        "hyper": hyper or {"type": "conv", "N": 8},
    }


BAD_SPECS = [
    # (spec, key named in the error, text the line must contain)
    (spec(entropy={"type": "charm", "num_slices": 5}), "entropy.num_slices", "M=32"),
    (spec(entropy={"type": "charm", "num_slices": 4, "slice_kernel": 4}), "entropy.slice_kernel", "odd"),
    (spec(entropy={"type": "charm", "lrp_merge": "multiply"}), "entropy.lrp_merge", "add, concat"),
    (spec(entropy={"type": "charm", "hyper_heads": "two"}), "entropy.hyper_heads", "per_slice"),
    (spec(entropy={"type": "charm", "max_support_slices": -2}), "entropy.max_support_slices", ">= -1"),
    (spec(entropy={"type": "hyperprior", "mode": "mean"}), "entropy.mode", "mean_scale, scale"),
    (spec(transform={"type": "swint", "dims": [16, 24, 32], "head_dim": 16}), "transform.head_dim", "[24]"),
    (spec(transform={"type": "swint", "dims": [16, 16, 16], "head_dim": 16}, M=40), "transform.head_dim", "40"),
    (spec(transform={"type": "swint", "dims": [16, 16]}), "transform.dims", "3 widths"),
    (spec(transform={"type": "swint", "dims": [8, 8, 8], "head_dim": 8, "depths": [2, 2, 2]}), "transform.depths", "4 block counts"),
    (spec(transform={"type": "elic", "channels": [8, 8]}), "transform.channels", "3 widths"),
    (spec(transform={"type": "elic", "channels": [8, 8, 8]}, M=1), "M", "at least 2"),
    (spec(transform={"type": "elic", "num_res_blocks": -1}), "transform.num_res_blocks", ">= 0"),
    (spec(hyper={"type": "swint", "dims": [24, 32], "head_dim": 16}), "hyper.head_dim", "[24]"),
    (spec(hyper={"type": "swint", "dims": [16]}), "hyper.dims", "2 widths"),
    (spec(hyper={"type": "conv", "layout": "cheng2020"}), "hyper.layout", "minnen2018, balle2018, ms2020, elic2022"),
    (spec(transform={"type": "swint", "window": 0}), "transform.window", ">= 1"),
    (spec(transform={"type": "transformer"}), "transform.type", "conv, elic, swint"),
]


@pytest.mark.parametrize("raw, key, text", BAD_SPECS, ids=[k for _, k, _ in BAD_SPECS])
def test_incompatible_knobs_fail_in_one_line_naming_the_knob(raw, key, text):
    for attempt in (parse_spec, build):  # build refuses before constructing anything
        with pytest.raises(SpecError) as err:
            attempt(raw)
        assert err.value.key == key
        line = str(err.value)
        assert "\n" not in line and line.startswith(f"{key}=") and text in line


def test_charm_spec_is_canonical():
    """Two spellings of one architecture are one spec (variant ids hash the canonical form)."""
    all_slices = parse_spec(spec(entropy={"type": "charm", "num_slices": 4, "max_support_slices": 3}))
    minus_one = parse_spec(spec(entropy={"type": "charm", "num_slices": 4, "max_support_slices": -1}))
    assert all_slices == minus_one and all_slices.entropy.max_support_slices == -1
    no_lrp = parse_spec(spec(entropy={"type": "charm", "num_slices": 4, "lrp": False, "lrp_merge": "concat"}))
    assert no_lrp.to_dict()["entropy"]["lrp_merge"] == "add"
    limited = parse_spec(spec(entropy={"type": "charm", "num_slices": 4, "max_support_slices": 2}))
    assert limited.entropy.max_support_slices == 2


def test_to_dict_spells_out_every_knob_and_round_trips():
    parsed = parse_spec(spec(transform={"type": "elic"}, entropy={"type": "charm"}, hyper={"type": "swint"}, M=320))
    canonical = parsed.to_dict()
    assert canonical["transform"] == {"type": "elic", "channels": [192, 192, 192], "num_res_blocks": 3}
    assert set(canonical["entropy"]) == {"type", "num_slices", "max_support_slices", "slice_widths", "slice_kernel",
                                         "slice_taper", "lrp", "lrp_merge", "hyper_heads"}
    assert parse_spec(canonical) == parsed
    assert parsed.family == "ELIC/CHARM:SwinT"


def test_every_knob_has_a_type_the_space_expander_reads():
    """sweep/space.py tells a grid from a list-valued knob by typing.get_type_hints."""
    supported = {int, float, bool, str, tuple[int, ...]}
    for kind in KINDS:
        for name in names(kind):
            cls = component_class(kind, name)
            hints = typing.get_type_hints(cls)
            for field in dataclasses.fields(cls):
                assert hints[field.name] in supported, (kind, name, field.name)


def test_all_components_are_registered():
    assert names("transform") == ["conv", "elic", "swint"]
    assert names("entropy") == ["charm", "elic", "hyperprior"]
    assert names("hyper") == ["conv", "swint"]


def test_conv_hyper_activation_defaults_to_each_layouts_published_one():
    """`published` is spelled as what it means, so one function has one canonical spec."""
    expected = {"balle2018": "relu", "minnen2018": "leaky_relu", "ms2020": "relu", "elic2022": "relu"}
    for layout, activation in expected.items():
        implicit = parse_spec(spec(hyper={"type": "conv", "N": 8, "layout": layout}))
        explicit = parse_spec(spec(hyper={"type": "conv", "N": 8, "layout": layout, "activation": "published"}))
        assert implicit == explicit and implicit.hyper.activation == activation
    leaky = build(spec(hyper={"type": "conv", "N": 8, "layout": "balle2018", "activation": "leaky_relu"}))
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in leaky.latent.modules()) == 4
