"""Hyperprior entropy model: Balle, Minnen, Singh, Hwang, Johnston 2018, "Variational image
compression with a scale hyperprior" (ICLR), and its mean-scale form from Minnen, Balle,
Toderici 2018, "Joint autoregressive and hierarchical priors for learned image compression"
(NeurIPS). The `mode` knob picks one: mean_scale (h_s gives scales and means, 2M channels) or
scale (h_s gives scales only, M channels; y is coded around zero). The scale mode is Balle 2018
exactly (compressai ScaleHyperprior): h_a sees |y|, and h_s's output goes through a ReLU (the
last layer of its h_s) so that the scales are non-negative.

z = h_a(y) is coded with a factorized prior (compressai's EntropyBottleneck); y with a
Gaussian conditional on h_s(z_hat) (GaussianConditional). Training: the rate uses additive
noise; the synthesis gets straight-through rounded y_hat = round(y - mu) + mu, which equals
what the decoder reconstructs.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.entropy_models import EntropyBottleneck, GaussianConditional
import torch.nn.functional as F
from torch import Tensor, nn

from models.component import knob, register
from models.entropy.coding import GaussianDecoder, GaussianEncoder, SymbolStats, gaussian_stats, quantize_latent
from models.entropy.hyper_latent import HyperLatentCodec

MODES = ("mean_scale", "scale")


@register("entropy", "hyperprior", display="Hyperprior")
@dataclass(frozen=True)
class Hyperprior:
    mode: str = knob(
        "mean_scale", choices=MODES,
        doc="mean_scale: h_s predicts a mean and a scale for every value of y (Minnen 2018); "
        "scale: only a scale, y coded around zero (Balle 2018)",
    )

    TINY = {}

    def hyper_out_channels(self, M: int) -> int:
        return 2 * M if self.mode == "mean_scale" else M

    def build(self, M: int, h_a: nn.Module, h_s: nn.Module, z_channels: int) -> HyperLatentCodec:
        entropy_bottleneck = EntropyBottleneck(z_channels)  # first: construction order fixes seeded weights
        mean_scale = self.mode == "mean_scale"
        y_codec = GaussianYCodec(with_means=mean_scale)
        return HyperLatentCodec(h_a, h_s, entropy_bottleneck, y_codec, h_s_input="noisy", h_a_input="y" if mean_scale else "abs")


class GaussianYCodec(nn.Module):
    """y with a Gaussian whose scales (and means) are h_s's output: one stream per image."""

    def __init__(self, with_means: bool):
        super().__init__()
        self.with_means = with_means
        self.gaussian_conditional = GaussianConditional(None)

    def _gaussian_params(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        if not self.with_means:
            return F.relu(params), None  # Balle 2018's h_s ends in a ReLU
        scales, means = params.chunk(2, 1)  # compressai's MeanScaleHyperprior order
        return scales, means

    def forward(self, y: Tensor, params: Tensor) -> dict:
        scales, means = self._gaussian_params(params)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = quantize_latent(y, means)
        return {"y_hat": y_hat, "g_s_input": y_hat, "likelihoods": {"y": y_likelihoods}}

    def compress(self, y: Tensor, params: Tensor) -> dict:
        scales, means = self._gaussian_params(params)
        encoder = GaussianEncoder(self.gaussian_conditional, y.shape[0])
        y_hat = encoder.encode(y, scales, means)
        return {"streams": [encoder.finish()], "y_hat": y_hat, "g_s_input": y_hat}

    def decompress(self, streams: list[list[bytes]], params: Tensor, y_hw) -> dict:
        (y_streams,) = streams
        scales, means = self._gaussian_params(params)
        y_hat = GaussianDecoder(self.gaussian_conditional, y_streams).decode(scales, means)
        return {"y_hat": y_hat, "g_s_input": y_hat}

    def quantize(self, y: Tensor, params: Tensor) -> Tensor:
        return quantize_latent(y, self._gaussian_params(params)[1])

    def synthesis_input(self, y_hat: Tensor, params: Tensor) -> Tensor:
        return y_hat  # the decoder's only network is h_s (already run)

    def stream_names(self) -> list[str]:
        return ["y"]

    def coding_stats(self, y: Tensor, params: Tensor) -> dict[str, SymbolStats]:
        scales, means = self._gaussian_params(params)
        return {"y": gaussian_stats(self.gaussian_conditional, y, scales, means)}
