"""Conv hyper-transforms, in the four published layouts (`layout` knob), each with its published
activation (`activation` knob; "published" picks the layout's own, named below with its source).

- balle2018: Balle, Minnen, Singh, Hwang, Johnston 2018, "Variational image compression with a
  scale hyperprior" (ICLR); compressai ScaleHyperprior. Activation: ReLU (the paper's Fig. 4;
  compressai ScaleHyperprior).
      h_a: conv(3,1,N) act  conv(5,2,N) act  conv(5,2,N)
      h_s: deconv(5,2,N) act  deconv(5,2,N) act  conv(3,1,out)
- minnen2018: Minnen, Balle, Toderici 2018, "Joint autoregressive and hierarchical priors for
  learned image compression" (NeurIPS), mean-scale; compressai MeanScaleHyperprior. Activation:
  LeakyReLU (slope 0.01; compressai MeanScaleHyperprior and JointAutoregressiveHierarchicalPriors).
      h_a: as balle2018
      h_s: deconv(5,2,M) act  deconv(5,2,3M/2) act  conv(3,1,out)
- ms2020: Minnen & Singh 2020, "Channel-wise autoregressive entropy models for learned image
  compression" (ICIP); tensorflow/compression models/ms2020.py. Means and scales get separate
  hyper-syntheses. Activation: ReLU (ms2020.py's tf.nn.relu).
      h_a: conv(3,1,M) act  conv(5,2,(M+N)/2) act  conv(5,2,N)
      h_s: twice [deconv(5,2,N) act  deconv(5,2,(M+N)/2) act  conv(3,1,out/2)], concatenated
- elic2022: He et al. 2022, "ELIC" (CVPR); compressai Elic2022Official. Activation: ReLU.
      h_a: as balle2018
      h_s: deconv(5,2,N) act  deconv(5,2,3N/2) act  deconv(3,1,out)

z has N channels in every layout; `out` is what the entropy model asks for.

The study (Minnen & Johnston 2023) trained with TensorFlow; tensorflow/compression's hyperprior
models (bmshj2018.py, ms2020.py) use ReLU in h_a and h_s, so `activation: relu` is the study's
side where compressai's mean-scale model uses LeakyReLU.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.models.utils import conv, deconv
from torch import nn

from models.component import knob, register
from models.layers.parallel import Parallel

LAYOUTS = ("minnen2018", "balle2018", "ms2020", "elic2022")
ACTIVATIONS = ("published", "relu", "leaky_relu")
PUBLISHED_ACTIVATION = {"balle2018": "relu", "minnen2018": "leaky_relu", "ms2020": "relu", "elic2022": "relu"}


@register("hyper", "conv", display="Conv")
@dataclass(frozen=True)
class ConvHyper:
    N: int = knob(192, min=1, doc="channels of h_a's layers and of the hyper-latent z (the side information coded first)")
    layout: str = knob(
        "minnen2018", choices=LAYOUTS,
        doc="which paper's h_a/h_s layer widths: minnen2018 (mean-scale), balle2018 (scale only), "
        "ms2020 (separate h_s for means and scales), elic2022 (ELIC's)",
    )
    activation: str = knob(
        "published", choices=ACTIVATIONS,
        doc="nonlinearity between the layers of h_a and h_s; published: the layout's own "
        "(leaky_relu for minnen2018, relu for the others), stored as that name",
    )

    TINY = {"N": 16}

    def __post_init__(self):
        # One function, one canonical spec: "published" is spelled as what it means.
        if self.activation == "published":
            object.__setattr__(self, "activation", PUBLISHED_ACTIVATION[self.layout])

    def z_channels(self, M: int) -> int:
        return self.N

    def build(self, M: int, out_channels: int) -> tuple[nn.Module, nn.Module]:
        N, act = self.N, self.activation
        if self.layout == "ms2020":
            mid = (M + N) // 2
            h_a = _analysis(M, (M, mid, N), act)
            halves = (out_channels // 2, out_channels - out_channels // 2)
            h_s = Parallel([_synthesis(N, (N, mid), half, act) for half in halves])
            return h_a, h_s
        h_a = _analysis(M, (N, N, N), act)
        hidden = {"minnen2018": (M, M * 3 // 2), "balle2018": (N, N), "elic2022": (N, N * 3 // 2)}[self.layout]
        return h_a, _synthesis(N, hidden, out_channels, act, last_deconv=self.layout == "elic2022")


def _activation(name: str) -> nn.Module:
    return nn.LeakyReLU(inplace=True) if name == "leaky_relu" else nn.ReLU(inplace=True)


def _analysis(M: int, widths: tuple[int, int, int], act: str) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(
        conv(M, a, kernel_size=3, stride=1), _activation(act),
        conv(a, b), _activation(act),
        conv(b, c),
    )


def _synthesis(N: int, hidden: tuple[int, int], out_channels: int, act: str, last_deconv: bool = False) -> nn.Sequential:
    a, b = hidden
    last = deconv if last_deconv else conv
    return nn.Sequential(
        deconv(N, a), _activation(act),
        deconv(a, b), _activation(act),
        last(b, out_channels, kernel_size=3, stride=1),
    )
