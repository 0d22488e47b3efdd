"""Resolution changes around Swin stages (Zhu, Yang, Cohen 2022, "Transformer-based transform
coding", ICLR, Sec. 3.1 and Fig. 13).

    PatchEmbed      2x2 stride-2 convolution, channels-first in, channels-last out
    PatchMerging    2x2 neighbours concatenated -> LayerNorm -> Linear       (H/2, W/2)
    PatchSplitting  Linear -> LayerNorm -> depth-to-space                     (2H, 2W)
    PatchUnpack     Linear (with bias) -> depth-to-space, channels-first out  (2H, 2W)

Merging and splitting use the same 2x2 channel order, so a synthesis mirrors an analysis.
Layout changes return contiguous tensors: an encoder and a decoder must feed every network
tensors of the same memory layout, because a convolution or LayerNorm over a permuted view
may round differently, and one ulp in an entropy parameter breaks the bitstream.
"""

from __future__ import annotations

from torch import Tensor, nn


def space_to_depth(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, H/2, W/2, 4C)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)


def depth_to_space(x: Tensor) -> Tensor:
    """(B, H, W, 4C) -> (B, 2H, 2W, C)."""
    b, h, w, c4 = x.shape
    c = c4 // 4
    return x.reshape(b, h, w, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1).contiguous()


class PatchMerging(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.reduction(self.norm(space_to_depth(x)))


class PatchSplitting(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.expansion = nn.Linear(in_channels, 4 * out_channels, bias=False)
        self.norm = nn.LayerNorm(4 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.norm(self.expansion(x)))


class PatchUnpack(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.expansion = nn.Linear(in_channels, 4 * out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.expansion(x)).permute(0, 3, 1, 2).contiguous()


class ChannelsLast(nn.Module):
    """(B, C, H, W) -> (B, H, W, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1).contiguous()


class ChannelsFirst(nn.Module):
    """(B, H, W, C) -> (B, C, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2).contiguous()
