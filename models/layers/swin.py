"""Swin Transformer stages: Liu et al. 2021, "Swin Transformer: Hierarchical vision transformer
using shifted windows" (ICCV), as used for transform coding by Zhu, Yang, Cohen 2022,
"Transformer-based transform coding" (ICLR).

A block is x + W-MSA(LN(x)) followed by x + MLP(LN(x)) (ratio 4, GELU). Attention runs inside
non-overlapping windows with a learned relative position bias; odd blocks shift the windows by
half a window so that information crosses window borders. Tensors are channels-last
(B, H, W, C) inside a stage.

Feature maps of any size (small training crops, odd image sizes):
- a side shorter than the window: the window is clamped to that side and the shift along it is
  dropped, as the reference Swin does when its window exceeds the resolution (the whole side
  fits in one window, so shifting would only roll it). A clamped window reads the centre of the
  relative-position table, so one set of weights serves every size.
- a side that is not a multiple of the window: padded at the bottom/right as the reference Swin
  does for detection, and padded positions are masked out of every attention, so they never
  change a real position's output.
Everything depends on shapes only (no data-dependent control flow), so stages run on the meta
device for FLOP counting; attention is written as two matmuls so FLOP counters see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.errors import SpecError


@dataclass(frozen=True)
class WindowLayout:
    """How one feature map is cut into windows; shared by every block of a stage."""

    size: tuple[int, int]  # (height, width) of a window, clamped to the feature map
    shift: tuple[int, int]  # cyclic shift of the odd blocks, 0 along a side that fits one window
    padded: tuple[int, int]  # feature map size rounded up to whole windows
    bias_index: Tensor  # (N, N) rows of the relative-position table, N = window area
    mask: Tensor | None  # (num_windows, N, N) additive mask of the unshifted blocks
    shifted_mask: Tensor | None  # the same for the shifted blocks

    @classmethod
    def of(cls, height: int, width: int, window: int, device) -> "WindowLayout":
        wh, ww = min(window, height), min(window, width)
        sh = window // 2 if height > window else 0
        sw = window // 2 if width > window else 0
        hp, wp = -(-height // wh) * wh, -(-width // ww) * ww
        padded = (hp, wp) != (height, width)
        mask = _attention_mask(height, width, hp, wp, wh, ww, 0, 0, device) if padded else None
        shifted = _attention_mask(height, width, hp, wp, wh, ww, sh, sw, device) if (sh or sw) else mask
        return cls((wh, ww), (sh, sw), (hp, wp), _relative_position_index(wh, ww, window, device), mask, shifted)


def _relative_position_index(wh: int, ww: int, window: int, device) -> Tensor:
    """Row of the (2w-1)^2 bias table for every pair of positions of a wh x ww window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device), indexing="ij")
    ).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return relative[0] * (2 * window - 1) + relative[1]


def _attention_mask(height, width, hp, wp, wh, ww, sh, sw, device) -> Tensor:
    """-inf between positions that must not attend to each other: positions that a cyclic shift
    brought together from opposite borders, and padding."""
    # Region ids in the unshifted frame: rows/columns before the shift wrap around to the far
    # border, so they are not neighbours of what they meet there; padding is its own region.
    rows = torch.arange(hp, device=device)[:, None]
    cols = torch.arange(wp, device=device)[None, :]
    ids = (rows < sh).long() * 2 + (cols < sw).long()
    ids = torch.where((rows >= height) | (cols >= width), torch.full_like(ids, 4), ids)
    if sh or sw:
        ids = torch.roll(ids, shifts=(-sh, -sw), dims=(0, 1))
    ids = window_partition(ids[None, :, :, None], wh, ww).squeeze(-1)  # (num_windows, N)
    same = ids[:, :, None] == ids[:, None, :]
    return torch.zeros(same.shape, device=device).masked_fill(~same, float("-inf"))


def window_partition(x: Tensor, wh: int, ww: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, wh * ww, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_merge(windows: Tensor, b: int, h: int, w: int, wh: int, ww: int) -> Tensor:
    """Inverse of window_partition."""
    c = windows.shape[-1]
    x = windows.reshape(b, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a relative position bias per head."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, windows: Tensor, bias_index: Tensor, mask: Tensor | None) -> Tensor:
        bn, n, c = windows.shape
        q, k, v = self.qkv(windows).view(bn, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[bias_index.reshape(-1)].view(n, n, self.heads)
        attn = attn + bias.permute(2, 0, 1)
        if mask is not None:
            num_windows = mask.shape[0]
            attn = attn.view(bn // num_windows, num_windows, self.heads, n, n) + mask[None, :, None].to(attn.dtype)
            attn = attn.view(bn, self.heads, n, n)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bn, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shifted: bool, mlp_ratio: float = 4.0):
        super().__init__()
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, layout: WindowLayout) -> Tensor:
        b, h, w, _ = x.shape
        (wh, ww), (hp, wp) = layout.size, layout.padded
        sh, sw = layout.shift if self.shifted else (0, 0)
        mask = layout.shifted_mask if self.shifted else layout.mask
        shortcut = x
        x = self.norm1(x)
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        x = window_merge(self.attn(window_partition(x, wh, ww), layout.bias_index, mask), b, hp, wp, wh, ww)
        if sh or sw:
            x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
        x = shortcut + x[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """`depth` Swin blocks at one resolution, every odd block with shifted windows."""

    def __init__(self, dim: int, depth: int, head_dim: int, window: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(
            SwinBlock(dim, dim // head_dim, window, shifted=i % 2 == 1, mlp_ratio=mlp_ratio) for i in range(depth)
        )
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        if len(self.blocks) == 0:
            return x
        layout = WindowLayout.of(x.shape[1], x.shape[2], self.window, x.device)
        for block in self.blocks:
            x = block(x, layout)
        return x


def _init_weights(module: nn.Module) -> None:
    # The Swin reference initialisation: truncated normal linear weights, zero biases.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def check_head_dim(head_dim: int, widths: tuple[int, ...], what: str) -> None:
    """Spec check: every attention width must split into whole heads."""
    bad = [w for w in widths if w % head_dim]
    if bad:
        raise SpecError("head_dim", head_dim, f"a divisor of every stage width ({what}: {list(widths)}; {bad} are not multiples)")
