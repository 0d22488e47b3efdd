"""Conv hyper-transforms, in the three published layouts (`layout` knob):

- balle2018: Balle, Minnen, Singh, Hwang, Johnston 2018, "Variational image compression with a
  scale hyperprior" (ICLR); compressai ScaleHyperprior.
      h_a: conv(3,1,N) ReLU  conv(5,2,N) ReLU  conv(5,2,N)
      h_s: deconv(5,2,N) ReLU  deconv(5,2,N) ReLU  conv(3,1,out)
- minnen2018: Minnen, Balle, Toderici 2018, "Joint autoregressive and hierarchical priors for
  learned image compression" (NeurIPS), mean-scale; compressai MeanScaleHyperprior.
      h_a: as balle2018
      h_s: deconv(5,2,M) ReLU  deconv(5,2,3M/2) ReLU  conv(3,1,out)
- ms2020: Minnen & Singh 2020, "Channel-wise autoregressive entropy models for learned image
  compression" (ICIP); tensorflow/compression models/ms2020.py. Means and scales get separate
  hyper-syntheses.
      h_a: conv(3,1,M) ReLU  conv(5,2,(M+N)/2) ReLU  conv(5,2,N)
      h_s: twice [deconv(5,2,N) ReLU  deconv(5,2,(M+N)/2) ReLU  conv(3,1,out/2)], concatenated

z has N channels in every layout; `out` is what the entropy model asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.models.utils import conv, deconv
from torch import nn

from models.layers.parallel import Parallel
from models.component import knob, register

LAYOUTS = ("minnen2018", "balle2018", "ms2020")


@register("hyper", "conv", display="Conv")
@dataclass(frozen=True)
class ConvHyper:
    N: int = knob(192, min=1, doc="channels of h_a and of the hyper-latent z")
    layout: str = knob("minnen2018", choices=LAYOUTS, doc="published layer widths: " + ", ".join(LAYOUTS))

    TINY = {"N": 16}

    def z_channels(self, M: int) -> int:
        return self.N

    def build(self, M: int, out_channels: int) -> tuple[nn.Module, nn.Module]:
        N = self.N
        if self.layout == "ms2020":
            mid = (M + N) // 2
            h_a = _analysis(M, (M, mid, N))
            h_s = Parallel([_synthesis(N, (N, mid), half) for half in (out_channels // 2, out_channels - out_channels // 2)])
            return h_a, h_s
        h_a = _analysis(M, (N, N, N))
        hidden = (M, M * 3 // 2) if self.layout == "minnen2018" else (N, N)
        return h_a, _synthesis(N, hidden, out_channels)


def _analysis(M: int, widths: tuple[int, int, int]) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(
        conv(M, a, kernel_size=3, stride=1), nn.ReLU(inplace=True),
        conv(a, b), nn.ReLU(inplace=True),
        conv(b, c),
    )


def _synthesis(N: int, hidden: tuple[int, int], out_channels: int) -> nn.Sequential:
    a, b = hidden
    return nn.Sequential(
        deconv(N, a), nn.ReLU(inplace=True),
        deconv(a, b), nn.ReLU(inplace=True),
        conv(b, out_channels, kernel_size=3, stride=1),
    )
