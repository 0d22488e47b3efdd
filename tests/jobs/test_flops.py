"""FLOPs conventions (REFERENCE.md): convs and matmuls only, FLOPs = 2 x MACs, transposed convs at
input resolution, attention matmuls counted on every backend, the hand counts of the published
models within 1 %, and the fast counting paths equal to counting the real codec on Kodak."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.utils import deconv

from jobs.profile import REFERENCE_HEIGHT, REFERENCE_WIDTH, count_flops, count_params, decode_flops, encode_flops, on_meta
from models import build
from rdc import names

H, W = REFERENCE_HEIGHT, REFERENCE_WIDTH


def conv_hyperprior(N: int, M: int, hyper_N: int) -> dict:
    return {"M": M, "transform": {"type": "conv", "N": N}, "entropy": {"type": "hyperprior"},
            "hyper": {"type": "conv", "N": hyper_N}}


def test_stride2_transposed_conv_is_counted_at_input_resolution():
    layer = deconv(8, 4, kernel_size=5, stride=2)  # compressai's: 5x5, stride 2, output 2x input
    x = torch.zeros(1, 8, 16, 24)
    assert layer(x).shape[-2:] == (32, 48)
    macs_input_resolution = 16 * 24 * 5 * 5 * 8 * 4
    assert count_flops(layer, x) == 2 * macs_input_resolution  # not 4x that (output resolution)


def test_grouped_and_plain_convs_and_linear_layers():
    assert count_flops(torch.nn.Conv2d(8, 6, 3, padding=1), torch.zeros(1, 8, 10, 10)) == 2 * 100 * 9 * 8 * 6
    assert count_flops(torch.nn.Conv2d(8, 6, 3, padding=1, groups=2), torch.zeros(1, 8, 10, 10)) == 2 * 100 * 9 * 4 * 6
    # A Swin MLP on channels-last tokens: every token x C_in x C_out.
    assert count_flops(torch.nn.Linear(32, 128), torch.zeros(1, 8, 8, 32)) == 2 * 64 * 32 * 128


def test_elementwise_work_counts_zero():
    x = torch.rand(1, 4, 16, 16)
    assert count_flops(lambda: torch.sigmoid(x) * x + F.gelu(x) + F.layer_norm(x, (16,)) + x.softmax(-1)) == 0


@pytest.mark.parametrize("with_mask", [False, True])
def test_scaled_dot_product_attention_counts_qk_and_av_on_cpu_as_on_meta(with_mask):
    batch, heads, tokens, dim = 2, 4, 64, 32  # 8x8 windows, head dim 32 (SwinT)
    q = torch.randn(batch, heads, tokens, dim)
    mask = torch.randn(1, heads, tokens, tokens) if with_mask else None  # relative position bias

    def attend(device):
        qd = q.to(device)
        return count_flops(F.scaled_dot_product_attention, qd, qd, qd,
                           attn_mask=None if mask is None else mask.to(device))

    by_hand = 2 * batch * heads * tokens * tokens * dim * 2  # QK^T and AV
    assert attend("cpu") == by_hand  # torch alone counts 0 here: its CPU kernel has no formula
    assert attend("meta") == by_hand


def test_multi_head_attention_inference_kernel_is_counted():
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x, memory = torch.zeros(1, 10, 32), torch.zeros(1, 7, 32)
    projections = 2 * 32 * 32 * (10 + 7 + 7 + 10)
    attention = 2 * 2 * 10 * 7 * 32
    assert count_flops(lambda: mha(x, memory, memory, need_weights=False)) == projections + attention
    meta = on_meta(mha)
    assert count_flops(lambda: meta(x.to("meta"), memory.to("meta"), memory.to("meta"), need_weights=False)) == projections + attention


def test_meta_copy_leaves_the_model_alone_and_holds_no_weights():
    model = build(conv_hyperprior(16, 24, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = on_meta(model)
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert count_params(meta) == count_params(model)


def _compressai_decode_kmacs(model, M: int, N: int) -> float:
    """g_s + h_s of a compressai hyperprior model at the reference size (its decoder networks)."""
    meta = on_meta(model)
    y = torch.zeros(1, M, H // 16, W // 16, device="meta")
    z = torch.zeros(1, N, H // 64, W // 64, device="meta")
    return (count_flops(meta.g_s, y) + count_flops(meta.h_s, z)) / 2 / (H * W) / 1e3


@pytest.mark.parametrize("build_model, M, N, kmacs, params_m", [
    (lambda: ScaleHyperprior(128, 192), 192, 128, 43.5, 5.07),  # Balle 2018, low rates
    (lambda: ScaleHyperprior(192, 320), 320, 192, 97.0, 11.8),  # Balle 2018, high rates
    (lambda: MeanScaleHyperprior(192, 320), 320, 192, 108.6, 17.6),  # Minnen 2018 mean-scale
], ids=["balle-128-192", "balle-192-320", "minnen-meanscale-192-320"])
def test_compressai_reference_models_match_the_hand_counts(build_model, M, N, kmacs, params_m):
    model = build_model()
    assert _compressai_decode_kmacs(model, M, N) == pytest.approx(kmacs, rel=0.01)
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.01)


def test_elic_official_synthesis_matches_the_hand_count():
    from compressai.models.sensetime import Elic2022Official

    model = on_meta(Elic2022Official())  # N=192, M=320: residual bottlenecks and attention blocks
    flops = count_flops(model.g_s, torch.zeros(1, 320, H // 16, W // 16, device="meta"))
    assert flops / 2 / (H * W) / 1e3 == pytest.approx(255, rel=0.01)
    assert count_params(model.g_s) / 1e6 == pytest.approx(7.34, rel=0.01)


# REFERENCE.md's hand counts (decode kMAC/px at input resolution) of the zoo's presets.
REFERENCE_DECODE_KMACS = {
    "balle2018-hyperprior-128-192": 43.5,
    "balle2018-hyperprior-192-320": 97.0,
    "minnen2018-mean-scale-192-320": 108.6,
    "ms2020-charm": 481,  # 10 slices, support 5, LRP
    "zhu2022-swint-charm": 295,  # Swin window attention: QK^T and AV included
}


@pytest.mark.parametrize("name", sorted(REFERENCE_DECODE_KMACS))
def test_reference_presets_decode_kmacs_within_1_percent_of_the_hand_counts(name):
    from models.presets import preset

    decode = decode_flops(build(preset(name)))
    assert decode["kmacs_per_px"] == pytest.approx(REFERENCE_DECODE_KMACS[name], rel=0.01)
    assert decode["kflops_per_px"] == 2 * decode["kmacs_per_px"]


def test_elic_preset_synthesis_matches_the_hand_count():
    from models.presets import preset

    # ELIC's 306 kMAC/px total uses ELIC's own entropy model, which is not one of the study's;
    # its synthesis (255) is what the zoo's ELIC transforms must match.
    model = on_meta(build(preset("elic2022-transforms")))
    flops = count_flops(model.g_s, torch.zeros(1, 320, H // 16, W // 16, device="meta"))
    assert flops / 2 / (H * W) / 1e3 == pytest.approx(255, rel=0.01)


def test_our_conv_hyperprior_matches_minnen_meanscale_decode_and_encode():
    model = build(conv_hyperprior(192, 320, 192))
    decode = decode_flops(model)
    assert decode["kmacs_per_px"] == pytest.approx(108.6, rel=0.01)
    assert decode["kflops_per_px"] == 2 * decode["kmacs_per_px"]
    # Encode by hand: g_a 93,696 (convs + GDN) + h_a 3,285 + h_s 14,925 MACs per pixel.
    assert encode_flops(model)["kmacs_per_px"] == pytest.approx((93_696 + 3_285 + 14_925) / 1e3, rel=1e-9)
    assert count_params(model) / 1e6 == pytest.approx(17.6, rel=0.01)


# -- the fast path (meta device, latent shapes) equals counting the real codec on a real image ----
def _real_counts(model, image: torch.Tensor) -> tuple[int, int]:
    """(decode, encode) FLOPs of the real model compressing and decoding a real image; the rANS
    coder runs too but does no convolution or matrix product, so it adds nothing."""
    data = model.compress(image)[0]
    return count_flops(model.decompress, data), count_flops(model.compress, image)


@pytest.fixture(scope="module")
def kodim(kodak_dir):
    from jobs.data import read_image

    image = read_image(kodak_dir / "kodim01.png", key="kodak")
    assert image.pixels.shape[:2] == (H, W)  # the reference size
    return image


# Tiny members covering every component: each transform, entropy model and hyper-transform.
TINY = {
    "conv-hyperprior-conv": {"M": 24, "transform": {"type": "conv", "N": 16}, "entropy": {"type": "hyperprior"},
                             "hyper": {"type": "conv", "N": 16}},
    "elic-charm-swint": {
        "M": 24, "transform": {"type": "elic", "channels": [8, 16, 16], "num_res_blocks": 1},
        "entropy": {"type": "charm", "num_slices": 4, "max_support_slices": 2, "slice_widths": [16, 8], "slice_kernel": 3},
        "hyper": {"type": "swint", "dims": [16, 16], "depths": [2, 1], "head_dim": 8, "window": 2}},
    "swint-charm-conv": {
        "M": 24, "transform": {"type": "swint", "dims": [8, 16, 16], "depths": [1, 2, 1, 2], "head_dim": 8, "window": 4},
        "entropy": {"type": "charm", "num_slices": 4, "max_support_slices": -1, "slice_widths": [16, 8],
                    "slice_kernel": 3, "lrp": True, "lrp_merge": "concat", "hyper_heads": "per_slice"},
        "hyper": {"type": "conv", "N": 16}},
    "swint-hyperprior-swint": {
        "M": 24, "transform": {"type": "swint", "dims": [8, 16, 16], "depths": [1, 2, 1, 2], "head_dim": 8, "window": 4},
        "entropy": {"type": "hyperprior", "mode": "scale"},
        "hyper": {"type": "swint", "dims": [16, 16], "depths": [2, 1], "head_dim": 8, "window": 2}},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_fast_counts_equal_the_real_model_on_a_real_image_of_the_reference_size(kodim, name):
    """Both fast paths: jobs.profile's (a weightless meta copy) and the plan's (sweep.plan, parts
    built under FakeTensorMode), against the real codec compressing and decoding Kodak."""
    from sweep.plan import reference_costs

    model = build(TINY[name]).eval()
    model.update(force=True)
    real_decode, real_encode = _real_counts(model, kodim.tensor())
    assert real_decode > 0 and real_encode > real_decode
    decode_kflops, encode_kflops = real_decode / (H * W) / 1e3, real_encode / (H * W) / 1e3
    assert decode_flops(model)["kflops_per_px"] == pytest.approx(decode_kflops, rel=1e-12)
    assert encode_flops(model)["kflops_per_px"] == pytest.approx(encode_kflops, rel=1e-12)

    planned = reference_costs(TINY[name])
    assert planned[names.PARAMS] == count_params(model)
    assert planned[names.DECODE_KFLOPS_PER_PX] == pytest.approx(decode_kflops, rel=1e-12)
    assert planned[names.DECODE_KMACS_PER_PX] == pytest.approx(decode_kflops / 2, rel=1e-12)
    assert planned[names.ENCODE_KFLOPS_PER_PX] == pytest.approx(encode_kflops, rel=1e-12)


def test_fast_count_equals_real_model_on_a_size_that_needs_padding(kodim):
    model = build(TINY["conv-hyperprior-conv"]).eval()
    model.update(force=True)
    height, width = 500, 700  # padded to 512 x 704 inside the codec
    real_decode, real_encode = _real_counts(model, kodim.tensor()[..., :height, :width])
    assert decode_flops(model, height, width)["kflops_per_px"] == pytest.approx(real_decode / (height * width) / 1e3, rel=1e-12)
    assert encode_flops(model, height, width)["kflops_per_px"] == pytest.approx(real_encode / (height * width) / 1e3, rel=1e-12)
