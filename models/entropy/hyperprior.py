"""Hyperprior entropy model: Balle, Minnen, Singh, Hwang, Johnston 2018, "Variational image
compression with a scale hyperprior" (ICLR), and its mean-scale form from Minnen, Balle,
Toderici 2018, "Joint autoregressive and hierarchical priors for learned image compression"
(NeurIPS). The `mode` knob picks one: mean_scale (h_s gives scales and means, 2M channels) or
scale (h_s gives scales only, M channels; y is coded around zero).

z = h_a(y) is coded with a factorized prior (compressai's EntropyBottleneck); y with a
Gaussian conditional on h_s(z_hat) (GaussianConditional). Training: the rate uses additive
noise; the synthesis gets straight-through rounded y_hat = round(y - mu) + mu, which equals
what the decoder reconstructs.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import Tensor, nn

from models.entropy.coding import (
    GaussianDecoder,
    GaussianEncoder,
    encode_hyperlatent,
    quantize_hyperlatent,
    quantize_latent,
)
from models.registry import knob, register

MODES = ("mean_scale", "scale")


@register("entropy", "hyperprior", display="Hyperprior")
@dataclass(frozen=True)
class Hyperprior:
    mode: str = knob("mean_scale", choices=MODES, doc="mean_scale (Minnen 2018) or scale only (Balle 2018)")

    def hyper_out_channels(self, M: int) -> int:
        return 2 * M if self.mode == "mean_scale" else M

    def build(self, M: int, h_a: nn.Module, h_s: nn.Module, z_channels: int) -> nn.Module:
        return HyperpriorCodec(h_a, h_s, z_channels, with_means=self.mode == "mean_scale")


class HyperpriorCodec(nn.Module):
    def __init__(self, h_a: nn.Module, h_s: nn.Module, z_channels: int, with_means: bool):
        super().__init__()
        self.h_a = h_a
        self.h_s = h_s
        self.z_channels = z_channels
        self.with_means = with_means
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    def _gaussian_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor | None]:
        params = self.h_s(z_hat)
        if not self.with_means:
            return params, None
        scales, means = params.chunk(2, 1)
        return scales, means

    def forward(self, y: Tensor) -> dict:
        z = self.h_a(y)
        # h_s sees the noisy z in training, as compressai's hyperprior models do.
        z_tilde, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._gaussian_params(z_tilde)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = quantize_latent(y, means)
        z_hat = quantize_hyperlatent(self.entropy_bottleneck, z)
        return {"y_hat": y_hat, "z_hat": z_hat, "g_s_input": y_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, y: Tensor) -> dict:
        z_streams, z_hat = encode_hyperlatent(self.entropy_bottleneck, self.h_a(y))
        scales, means = self._gaussian_params(z_hat)
        encoder = GaussianEncoder(self.gaussian_conditional, y.shape[0])
        y_hat = encoder.encode(y, scales, means)
        return {"streams": [encoder.finish(), z_streams], "y_hat": y_hat, "z_hat": z_hat, "g_s_input": y_hat}

    def decompress(self, streams: list[list[bytes]], y_hw, z_hw) -> dict:
        y_streams, z_streams = streams
        z_hat = self.entropy_bottleneck.decompress(z_streams, tuple(z_hw))
        scales, means = self._gaussian_params(z_hat)
        y_hat = GaussianDecoder(self.gaussian_conditional, y_streams).decode(scales, means)
        return {"y_hat": y_hat, "z_hat": z_hat, "g_s_input": y_hat}

    def encode_networks(self, y: Tensor) -> dict:
        z_hat = quantize_hyperlatent(self.entropy_bottleneck, self.h_a(y))
        _, means = self._gaussian_params(z_hat)
        return {"y_hat": quantize_latent(y, means), "z_hat": z_hat}

    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        self._gaussian_params(z_hat)  # the decoder needs scales (and means) to decode y
        return y_hat
