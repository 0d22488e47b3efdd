"""Conv hyper-transforms: Minnen, Balle, Toderici 2018, "Joint autoregressive and
hierarchical priors for learned image compression" (NeurIPS), mean-scale variant.

    h_a: conv(3,1,N) ReLU  conv(5,2,N) ReLU  conv(5,2,N)            (z has N channels)
    h_s: deconv(5,2,M) ReLU  deconv(5,2,3M/2) ReLU  conv(3,1,out)   (out = 2M: means, scales)
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.models.utils import conv, deconv
from torch import nn

from models.registry import knob, register


@register("hyper", "conv", display="Conv")
@dataclass(frozen=True)
class ConvHyper:
    N: int = knob(192, min=1, doc="channels of h_a and of the hyper-latent z")

    def z_channels(self, M: int) -> int:
        return self.N

    def build(self, M: int, out_channels: int) -> tuple[nn.Module, nn.Module]:
        N = self.N
        h_a = nn.Sequential(
            conv(M, N, kernel_size=3, stride=1), nn.ReLU(inplace=True),
            conv(N, N), nn.ReLU(inplace=True),
            conv(N, N),
        )
        h_s = nn.Sequential(
            deconv(N, M), nn.ReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.ReLU(inplace=True),
            conv(M * 3 // 2, out_channels, kernel_size=3, stride=1),
        )
        return h_a, h_s
