"""Conv transforms: Balle, Laparra, Simoncelli / Balle et al. 2018, "Variational image
compression with a scale hyperprior" (ICLR). Four stride-2 5x5 convolutions with GDN.

    g_a: conv(5,2,N) GDN  conv(5,2,N) GDN  conv(5,2,N) GDN  conv(5,2,M)
    g_s: deconv(5,2,N) IGDN  deconv(5,2,N) IGDN  deconv(5,2,N) IGDN  deconv(5,2,3)
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

from models.component import knob, register


@register("transform", "conv", display="Conv")
@dataclass(frozen=True)
class ConvTransform:
    N: int = knob(192, min=1, doc="channels of the three hidden layers of g_a and g_s (g_a's last layer gives y its M)")

    TINY = {"N": 16}

    def build(self, M: int) -> tuple[nn.Module, nn.Module]:
        N = self.N
        g_a = nn.Sequential(
            conv(3, N), GDN(N),
            conv(N, N), GDN(N),
            conv(N, N), GDN(N),
            conv(N, M),
        )
        g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, 3),
        )
        return g_a, g_s
