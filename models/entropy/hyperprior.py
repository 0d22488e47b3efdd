"""Hyperprior entropy model: Balle et al. 2018 (ICLR) with the mean-scale Gaussian
conditional of Minnen et al. 2018 (NeurIPS).

z = h_a(y) is coded with a factorized prior (compressai's EntropyBottleneck); y is coded with
a Gaussian conditional whose means and scales come from h_s(z_hat) (GaussianConditional).
Training: the rate uses additive noise; the synthesis gets straight-through rounded
y_hat = round(y - mu) + mu, which equals what the decoder reconstructs.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.ops import quantize_ste
from torch import Tensor, nn

from models.registry import register


@register("entropy", "hyperprior", display="Hyperprior")
@dataclass(frozen=True)
class Hyperprior:
    def hyper_out_channels(self, M: int) -> int:
        return 2 * M  # scales and means

    def build(self, M: int, h_a: nn.Module, h_s: nn.Module, z_channels: int) -> nn.Module:
        return MeanScaleHyperpriorCodec(h_a, h_s, z_channels)


class MeanScaleHyperpriorCodec(nn.Module):
    def __init__(self, h_a: nn.Module, h_s: nn.Module, z_channels: int):
        super().__init__()
        self.h_a = h_a
        self.h_s = h_s
        self.z_channels = z_channels
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    def _gaussian_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, 1)
        return scales, means

    def forward(self, y: Tensor) -> dict:
        z = self.h_a(y)
        z_tilde, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._gaussian_params(z_tilde)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        y_hat = quantize_ste(y - means) + means
        medians = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z - medians) + medians
        return {"y_hat": y_hat, "z_hat": z_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, y: Tensor) -> dict:
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        scales, means = self._gaussian_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y, indexes, means=means)
        y_hat = self.gaussian_conditional.decompress(y_strings, indexes, means=means)
        return {"streams": [y_strings, z_strings], "y_hat": y_hat, "z_hat": z_hat}

    def decompress(self, streams: list[list[bytes]], y_hw, z_hw) -> dict:
        y_strings, z_strings = streams
        z_hat = self.entropy_bottleneck.decompress(z_strings, tuple(z_hw))
        scales, means = self._gaussian_params(z_hat)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_hat = self.gaussian_conditional.decompress(y_strings, indexes, means=means)
        return {"y_hat": y_hat, "z_hat": z_hat}

    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        self._gaussian_params(z_hat)
        return y_hat
