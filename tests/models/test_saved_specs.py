"""A spec saved before a knob existed builds the function it was trained as, or is refused."""

from __future__ import annotations

import pytest
from torch import nn

from models import build, parse_spec
from models.errors import SpecError
from models.saved_specs import read_saved_spec


def saved(mode: str = "mean_scale") -> dict:
    """A canonical spec as an earlier version wrote it: the conv hyper-transform has no activation."""
    spec = parse_spec({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior", "mode": mode},
                       "hyper": {"type": "conv", "N": 8}}).to_dict()
    del spec["hyper"]["activation"]
    return spec


def test_a_conv_hyper_saved_before_the_activation_knob_is_relu():
    model = build(read_saved_spec(saved()))
    kinds = {type(m) for m in model.latent.h_a.modules()} | {type(m) for m in model.latent.h_s.modules()}
    assert nn.ReLU in kinds and nn.LeakyReLU not in kinds
    assert nn.LeakyReLU in {type(m) for m in build(saved()).latent.h_a.modules()}  # today's default differs


def test_a_scale_only_hyperprior_saved_before_balle_2018_is_refused():
    with pytest.raises(SpecError) as err:
        read_saved_spec(saved("scale"))
    assert err.value.key == "entropy.mode"


def test_todays_specs_pass_unchanged():
    spec = parse_spec({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
                       "hyper": {"type": "conv", "N": 8, "activation": "leaky_relu"}}).to_dict()
    assert read_saved_spec(spec) == spec
