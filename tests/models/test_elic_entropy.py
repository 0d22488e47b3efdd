"""ELIC's space-channel context model: decode work against a hand count, what each pass sees,
its knobs. (Bit-exact coding and training of every transform x hyper combination with it run
in test_families.py, which covers every registered entropy model.)"""

from __future__ import annotations

import pytest
import torch

from models import build, parse_spec
from models.errors import SpecError
from models.presets import preset
from tests.models.test_reference import decode_kmacs, params

# Hand count of Elic2022Official's decode (N = 192, M = 320), MACs per input pixel, biases
# and activations not counted; y at 1/256 of the pixels, z at 1/4096.
RBB = 3.25  # residual bottleneck: 1x1 C->C/2, 3x3 C/2->C/2, 1x1 C/2->C = 3.25 C^2
ATTN = 20.5  # Cheng 2020 attention: 6 residual units of 3.25 C^2, and a 1x1 C->C
C, M = 192, 320
G_S = (
    ATTN * M * M / 256 + 25 * M * C / 256  # Attn(320), deconv 320->192 (input resolution)
    + 3 * RBB * C * C / 64 + 25 * C * C / 64  # 3 RBB at H/8, deconv
    + ATTN * C * C / 16 + 3 * RBB * C * C / 16 + 25 * C * C / 16  # Attn, 3 RBB at H/4, deconv
    + 3 * RBB * C * C / 4 + 25 * C * 3 / 4  # 3 RBB at H/2, deconv 192->3
)  # 254 968: REFERENCE's g_s 255
H_S = 192 * 192 * 25 / 4096 + 192 * 288 * 25 / 1024 + 288 * 384 * 9 / 256  # elic2022 layout: 5 463
GROUPS = (16, 16, 32, 64, 192)
CHANNEL_CONTEXT = sum(  # g_ch of groups 1..4 on every earlier group: 24 050
    25 * (sum(GROUPS[:k]) * 224 + 224 * 128 + 128 * 2 * GROUPS[k]) for k in range(1, 5)) / 256
SPATIAL_CONTEXT = sum(25 * g * 2 * g for g in GROUPS) / 256  # once per group (pass 2): 8 300
# Parameter aggregation: 1x1 ramps (in -> 2g, inner widths >= 384), half the positions in
# each pass, so once over all of them: 416-384-384-32, 448-384-384-32, 512-384-384-64,
# 640-469-384-128, 1152-896-640-384.
AGGREGATION = (416 * 384 + 384 * 384 + 384 * 32 + 448 * 384 + 384 * 384 + 384 * 32
               + 512 * 384 + 384 * 384 + 384 * 64 + 640 * 469 + 469 * 384 + 384 * 128
               + 1152 * 896 + 896 * 640 + 640 * 384) / 256  # 13 284
HAND_COUNT = (G_S + H_S + CHANNEL_CONTEXT + SPATIAL_CONTEXT + AGGREGATION) / 1e3  # 306.07 kMAC/px
# REFERENCE.md quotes 306 (g_s 255): the same within rounding. Counting the first pass's
# spatial context too (compressai computes it and zeroes it; its output is known to be zero)
# would add 8.3 (314.4).


def test_elic2022_official_decode_work_is_the_hand_count():
    model = build(preset("elic2022-official"))
    assert HAND_COUNT == pytest.approx(306, rel=0.001)
    assert decode_kmacs(model) == pytest.approx(HAND_COUNT, rel=0.01)
    assert params(model) == pytest.approx(32.1e6, rel=0.005)  # REFERENCE: 32.1M total


def test_group_widths_knob_and_its_refusals():
    spec = {"M": 24, "transform": {"type": "conv", "N": 8}, "hyper": {"type": "conv", "N": 8},
            "entropy": {"type": "elic", "groups": [4, 4, 8], "hyper_channels": 16}}
    assert parse_spec(spec).entropy.group_widths(24) == [4, 4, 8, 8]
    assert build(spec).latent.stream_names() == [f"y{k}_{p}" for k in range(4) for p in ("anchor", "rest")] + ["z"]
    for knobs, key in [({"groups": [8, 16]}, "entropy.groups"), ({"spatial_kernel": 4}, "entropy.spatial_kernel")]:
        with pytest.raises(SpecError) as err:
            parse_spec({**spec, "entropy": {**spec["entropy"], **knobs}})
        assert err.value.key == key


def test_anchors_do_not_depend_on_the_rest_and_groups_not_on_later_groups(make_spec):
    """Changing y at non-anchor positions of the last group changes no anchor's parameters
    and nothing of earlier groups: y_hat there is unchanged (the decoder's order holds)."""
    torch.manual_seed(0)
    latent = build(make_spec("conv", "elic", "conv")).eval().latent
    y = torch.randn(1, 24, 4, 8) * 3
    changed = y.clone()
    changed[:, 16:, 0::2, 1::2] += 5.0  # non-anchors (anchor parity even) of the last group
    changed[:, 16:, 1::2, 0::2] += 5.0
    with torch.no_grad():
        before, after = latent.encode_networks(y)["y_hat"], latent.encode_networks(changed)["y_hat"]
    assert torch.equal(before[:, :16], after[:, :16])
    assert torch.equal(before[:, 16:, 0::2, 0::2], after[:, 16:, 0::2, 0::2])
    assert not torch.equal(before[:, 16:, 0::2, 1::2], after[:, 16:, 0::2, 1::2])


def test_networks_path_quantises_as_the_coder(make_spec, odd_image):
    torch.manual_seed(0)
    model = build(make_spec("elic", "elic", "swint")).eval()
    model.update(force=True)
    with torch.no_grad():
        coded = model.encode(odd_image)
        networks = model.encode_networks(odd_image)
    assert torch.equal(coded["y_hat"], networks["y_hat"]) and torch.equal(coded["z_hat"], networks["z_hat"])
