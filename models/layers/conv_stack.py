"""Stride-1 convolutions with ReLU between them: CHARM's slice transforms, ELIC's channel context."""

from __future__ import annotations

from compressai.models.utils import conv
from torch import nn


def conv_stack(in_channels: int, hidden: tuple[int, ...], out_channels: int, kernel: int, last_kernel: int) -> nn.Sequential:
    """conv(kernel) ReLU for each hidden width, then conv(last_kernel) to out_channels."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [conv(in_channels, width, kernel_size=kernel, stride=1), nn.ReLU(inplace=True)]
        in_channels = width
    layers.append(conv(in_channels, out_channels, kernel_size=last_kernel, stride=1))
    return nn.Sequential(*layers)
