"""HyperLatentCodec: the one hyper-latent codec every entropy model composes with.

It owns h_a, h_s, the EntropyBottleneck (z's factorized prior) and z's coding, and hands
h_s(z_hat) to a swappable y-codec (models/entropy/protocol.py: YCodec), the way compressai's
HyperpriorLatentCodec joins a HyperLatentCodec and a y latent codec. Streams: the y-codec's,
then z's.

Knobs the entropy models set (each is part of its published training recipe):
- `h_s_input`: what h_s sees in training. "noisy" z (Balle 2018 / Minnen 2018, compressai's
  hyperprior models) or straight-through "rounded" z (ms2020, ELIC); both are z_hat at eval.
- `h_a_input`: "y", or "abs" for |y| (Balle 2018's scale hyperprior: h_a models scales only).
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import Tensor, nn

from models.entropy.coding import SymbolStats, encode_hyperlatent, hyperlatent_stats, quantize_hyperlatent

H_S_INPUTS = ("noisy", "rounded")
H_A_INPUTS = ("y", "abs")
HYPER_CHILDREN = ("h_a", "h_s", "entropy_bottleneck", "y")


class HyperLatentCodec(nn.Module):
    def __init__(
        self,
        h_a: nn.Module,
        h_s: nn.Module,
        entropy_bottleneck: EntropyBottleneck,
        y_codec: nn.Module,
        *,
        h_s_input: str = "noisy",
        h_a_input: str = "y",
    ):
        super().__init__()
        if h_s_input not in H_S_INPUTS or h_a_input not in H_A_INPUTS:
            raise ValueError(f"h_s_input {h_s_input!r} / h_a_input {h_a_input!r}")
        self.h_a, self.h_s = h_a, h_s
        self.entropy_bottleneck = entropy_bottleneck
        self.y = y_codec
        self.z_channels = entropy_bottleneck.channels
        self.h_s_input, self.h_a_input = h_s_input, h_a_input
        self._register_load_state_dict_pre_hook(nest_y_codec_keys)

    def _analysis(self, y: Tensor) -> Tensor:
        return self.h_a(torch.abs(y) if self.h_a_input == "abs" else y)

    # -- the latent-codec interface (models/entropy/protocol.py) -----------------------------
    def forward(self, y: Tensor) -> dict:
        z = self._analysis(y)
        z_tilde, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = quantize_hyperlatent(self.entropy_bottleneck, z)
        out = self.y(y, self.h_s(z_tilde if self.h_s_input == "noisy" else z_hat))
        likelihoods = {**out["likelihoods"], "z": z_likelihoods}
        return {"y_hat": out["y_hat"], "z_hat": z_hat, "g_s_input": out["g_s_input"], "likelihoods": likelihoods}

    def compress(self, y: Tensor) -> dict:
        z_streams, z_hat = encode_hyperlatent(self.entropy_bottleneck, self._analysis(y))
        out = self.y.compress(y, self.h_s(z_hat))
        return {"streams": [*out["streams"], z_streams], "y_hat": out["y_hat"], "z_hat": z_hat, "g_s_input": out["g_s_input"]}

    def decompress(self, streams: list[list[bytes]], y_hw, z_hw) -> dict:
        *y_streams, z_streams = streams
        z_hat = self.entropy_bottleneck.decompress(z_streams, tuple(z_hw))
        out = self.y.decompress(y_streams, self.h_s(z_hat), tuple(y_hw))
        return {"y_hat": out["y_hat"], "z_hat": z_hat, "g_s_input": out["g_s_input"]}

    def encode_networks(self, y: Tensor) -> dict:
        z_hat = quantize_hyperlatent(self.entropy_bottleneck, self._analysis(y))
        return {"y_hat": self.y.quantize(y, self.h_s(z_hat)), "z_hat": z_hat}

    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        return self.y.synthesis_input(y_hat, self.h_s(z_hat))

    def stream_names(self) -> list[str]:
        return [*self.y.stream_names(), "z"]

    def coding_stats(self, y: Tensor) -> dict[str, SymbolStats]:
        z = self._analysis(y)
        z_hat = quantize_hyperlatent(self.entropy_bottleneck, z)
        return {**self.y.coding_stats(y, self.h_s(z_hat)), "z": hyperlatent_stats(self.entropy_bottleneck, z)}


def nest_y_codec_keys(state_dict, prefix, *_args) -> None:
    """Checkpoints written before the y-codec had its own module hold its tensors directly under
    the latent codec (latent.gaussian_conditional..., latent.mean_transforms...): moved under
    latent.y. A load pre-hook, and called by ImageCodec.load_state_dict before compressai's
    loader sizes the CDF tables by module name (a hook would run after that)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        child = key[len(prefix):].split(".", 1)[0]
        if child not in HYPER_CHILDREN:
            state_dict[f"{prefix}y.{key[len(prefix):]}"] = state_dict.pop(key)
