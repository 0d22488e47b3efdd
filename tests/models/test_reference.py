"""Parameter counts and decode FLOPs of the reference configurations against REFERENCE.md
(hand counts, MACs at input resolution), and layer-for-layer parity with compressai's own
models where one exists."""

from __future__ import annotations

import copy

import pytest
import torch
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.sensetime import Elic2022Official
from torch.utils.flop_counter import FlopCounterMode

from models import build, parse_spec
from models.presets import PRESETS, preset
from models.errors import SpecError

KODAK_H, KODAK_W = 512, 768
TOLERANCE = 0.02

# REFERENCE.md, "Numbers to check an implementation against": (params, decode kMAC/px).
REFERENCE = {
    "balle2018-hyperprior-128-192": (5.07e6, 43.5),
    "balle2018-hyperprior-192-320": (11.8e6, 97.0),
    "minnen2018-mean-scale-192-320": (17.6e6, 108.6),
    "ms2020-charm": (116e6, 481),
    "zhu2022-swint-charm": (32.6e6, 295),
    "elic2022-official": (32.1e6, 306),
}


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def kmacs_per_px(fn, *shapes) -> float:
    """MACs per Kodak pixel of fn(*zeros(shape)) counted on the meta device."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn(*(torch.zeros(s, device="meta") for s in shapes))
    return counter.get_total_flops() / 2 / (KODAK_H * KODAK_W) / 1e3


def decode_kmacs(model) -> float:
    meta = copy.deepcopy(model).to("meta").eval()
    return kmacs_per_px(meta.decode_networks, *meta.latent_shapes(KODAK_H, KODAK_W))


def synthesis_kmacs(g_s: torch.nn.Module, M: int = 320) -> float:
    return kmacs_per_px(copy.deepcopy(g_s).to("meta"), (1, M, KODAK_H // 16, KODAK_W // 16))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_params_and_decode_flops(name):
    expected_params, expected_kmacs = REFERENCE[name]
    model = build(preset(name))
    assert params(model) == pytest.approx(expected_params, rel=TOLERANCE)
    assert decode_kmacs(model) == pytest.approx(expected_kmacs, rel=TOLERANCE)


@pytest.mark.parametrize("N, M", [(128, 192), (192, 320), (64, 96)])
def test_conv_hyperpriors_have_compressai_parameter_counts(N, M):
    mean_scale = build({"M": M, "transform": {"type": "conv", "N": N}, "entropy": {"type": "hyperprior"},
                        "hyper": {"type": "conv", "N": N}})
    assert params(mean_scale) == params(MeanScaleHyperprior(N, M))
    scale = build(_balle(N, M))
    assert params(scale) == params(ScaleHyperprior(N, M))


def _balle(N: int, M: int) -> dict:
    spec = preset("balle2018-hyperprior-128-192")
    spec["M"], spec["transform"]["N"], spec["hyper"]["N"] = M, N, N
    return spec


def _layers(module: torch.nn.Module) -> list[tuple[str, tuple]]:
    return [(name.split(".", 1)[-1], tuple(p.shape)) for name, p in module.named_parameters()]


def test_elic_transforms_are_compressai_elic2022official():
    ours = build(preset("elic2022-transforms"))
    official = Elic2022Official(N=192, M=320)
    assert [s for _, s in _layers(ours.g_a)] == [s for _, s in _layers(official.g_a)]
    assert [s for _, s in _layers(ours.g_s)] == [s for _, s in _layers(official.g_s)]
    assert params(ours.g_s) == pytest.approx(7.34e6, rel=TOLERANCE)
    assert synthesis_kmacs(ours.g_s) == pytest.approx(255, rel=TOLERANCE)
    assert synthesis_kmacs(ours.g_s) == pytest.approx(synthesis_kmacs(official.g_s), rel=1e-9)
    # REFERENCE's ELIC total is the official model with ELIC's own entropy model (preset
    # elic2022-official); check that the reference figure is compressai's model.
    assert params(official) == pytest.approx(32.1e6, rel=TOLERANCE)


@pytest.mark.parametrize("channels, blocks, kflops", [
    ((192, 192, 192), 2, 431),  # REFERENCE: n = 2, published widths
    ((128, 256, 256), 2, 479),  # REFERENCE: model B's synthesis, (256, 256, 128) from the latent side
])
def test_elic_synthesis_flops_match_hand_counts(channels, blocks, kflops):
    model = build({"M": 320, "transform": {"type": "elic", "channels": list(channels), "num_res_blocks": blocks},
                   "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv"}})
    assert 2 * synthesis_kmacs(model.g_s) == pytest.approx(kflops, rel=TOLERANCE)


def test_study_model_b_has_the_papers_changes():
    spec = preset("study-model-b")
    model = build(spec)
    assert model.spec.family == "ELIC/CHARM:SwinT"
    latent = model.latent.y  # the CHARM y-codec inside the hyper-latent codec
    assert len(latent.heads) == 10 and len(latent.lrp_merges) == 10  # per-slice heads, concat LRP
    assert all(m.kernel_size == (1, 1) and m.in_channels == 64 for m in latent.lrp_merges)
    assert sum(isinstance(m, torch.nn.Module) and type(m).__name__ == "ResidualBottleneckBlock"
               for m in model.g_s.modules()) == 6  # two per stage
    # Table 1: 31.6M parameters (the slice-transform widths are not published; see presets.py).
    assert params(model) == pytest.approx(31.6e6, rel=0.05)


def test_every_preset_parses_to_its_canonical_form():
    for name in PRESETS:
        spec = parse_spec(preset(name))
        assert parse_spec(spec.to_dict()) == spec


def test_unknown_preset_is_one_line():
    with pytest.raises(SpecError) as err:
        preset("balle2019")
    assert err.value.key == "preset" and "\n" not in str(err.value)
    assert "ms2020-charm" in str(err.value)


def test_swint_charm_slice_widths_are_zhu_2022s():
    """SwinT-ChARM's tapered slice transforms (Zhu et al. 2022, from the authors' training
    logs as published in the SwinT-ChARM reimplementation): conv0 / conv1 widths per slice."""
    charm = parse_spec(preset("zhu2022-swint-charm")).entropy
    conv0 = [64, 64, 85, 106, 128, 149, 170, 192, 213, 234]
    conv1 = [32, 32, 42, 53, 64, 74, 85, 96, 106, 117]
    assert [charm.hidden_widths(i) for i in range(10)] == list(zip(conv0, conv1))
