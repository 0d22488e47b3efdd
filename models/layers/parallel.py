"""Parallel branches on one input, outputs concatenated along channels."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Parallel(nn.ModuleList):
    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self], dim=1)
