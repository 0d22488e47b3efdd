"""Swin stages on feature maps of any size: clamped windows, masked padding, shifted-window
masks, and FLOPs that count attention."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.layers.swin import SwinBlock, SwinStage, WindowLayout


def block_pair(dim=16, heads=2, window=4, seed=0):
    """An unshifted and a shifted block with the same weights."""
    torch.manual_seed(seed)
    plain = SwinBlock(dim, heads, window, shifted=False)
    shifted = SwinBlock(dim, heads, window, shifted=True)
    shifted.load_state_dict(plain.state_dict())
    return plain.eval(), shifted.eval()


def run(block, x, window=4):
    return block(x, WindowLayout.of(x.shape[1], x.shape[2], window, x.device))


def test_window_larger_than_the_map_is_clamped_and_unshifted():
    plain, shifted = block_pair(window=8)
    x = torch.randn(2, 4, 6, 16)
    layout = WindowLayout.of(4, 6, 8, x.device)
    assert layout.size == (4, 6) and layout.shift == (0, 0) and layout.mask is None
    with torch.no_grad():
        assert torch.equal(run(shifted, x, 8), run(plain, x, 8))


def test_one_side_clamped_the_other_shifted():
    layout = WindowLayout.of(3, 16, 4, "cpu")
    assert layout.size == (3, 4) and layout.shift == (0, 2) and layout.padded == (3, 16)


def test_padding_never_changes_a_real_position():
    """6 x 6 in 4 x 4 windows pads to 8 x 8; each window's real positions must give what the
    same block gives on that window alone (a smaller, clamped window, no padding)."""
    plain, _ = block_pair()
    x = torch.randn(1, 6, 6, 16)
    with torch.no_grad():
        out = run(plain, x)
        for rows, cols in [(slice(0, 4), slice(0, 4)), (slice(4, 6), slice(0, 4)), (slice(4, 6), slice(4, 6))]:
            alone = run(plain, x[:, rows, cols].contiguous())
            torch.testing.assert_close(out[:, rows, cols], alone, rtol=1e-5, atol=1e-6)


def test_shifted_windows_only_mix_true_neighbours():
    """On 8 x 8 with window 4 and shift 2, position (0, 0) shares its shifted window with rows
    6, 7, 0, 1 and columns 6, 7, 0, 1, but the mask keeps it from the far border: its output
    may depend on rows 0-1, columns 0-1 only."""
    _, shifted = block_pair()
    x = torch.randn(1, 8, 8, 16, requires_grad=True)
    run(shifted, x)[0, 0, 0].sum().backward()
    touched = x.grad[0].abs().sum(-1) > 0
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(touched, expected)


def test_stage_flops_count_projections_mlp_and_attention():
    dim, depth, window, side = 32, 2, 4, 8
    stage = SwinStage(dim, depth, head_dim=8, window=window)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        stage(torch.zeros(1, side, side, dim))
    tokens = side * side
    # Per token and block: qkv 3C^2, projection C^2, MLP 8C^2; QK^T and AV 2 N C (N = w^2).
    macs = depth * tokens * (12 * dim * dim + 2 * window * window * dim)
    assert counter.get_total_flops() == 2 * macs


@pytest.mark.parametrize("height, width", [(1, 1), (5, 3), (9, 17)])
def test_stage_runs_on_any_size_and_on_meta(height, width):
    stage = SwinStage(16, 2, head_dim=8, window=4)
    out = stage(torch.randn(1, height, width, 16))
    assert out.shape == (1, height, width, 16) and torch.isfinite(out).all()
    meta = stage.to("meta")(torch.zeros(1, height, width, 16, device="meta"))
    assert meta.shape == (1, height, width, 16)


def test_zero_block_stage_is_the_identity():
    x = torch.randn(1, 4, 4, 16)
    assert torch.equal(SwinStage(16, 0, head_dim=8, window=4)(x), x)
