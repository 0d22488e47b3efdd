"""ImageCodec: analysis/synthesis transforms around a latent codec, with real bitstreams.

The latent codec (built by an entropy component) owns h_a, h_s and every entropy model. It
implements this small interface, which every entropy component follows:

    forward(y)                  -> {"y_hat", "z_hat", "likelihoods": {name: tensor}}
    compress(y)                 -> {"streams": [[bytes per image], ...], "y_hat", "z_hat"}
    decompress(streams, y_hw, z_hw) -> {"y_hat", "z_hat"}
    decode_networks(y_hat, z_hat)   -> the latent fed to g_s, running every network a decoder
                                       runs (h_s, entropy-parameter nets) but no entropy coding
    z_channels                  (int attribute)

Images of any size are padded (replicating the border) to a multiple of `pad_multiple`
before the analysis and cropped after the synthesis; bitstreams carry the true size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import Tensor, nn

from models import bitstream

# y is at H/16 and z at H/64: padding to 64 makes every stride-2 stage exact.
PAD_MULTIPLE = 64
Y_STRIDE = 16
Z_STRIDE = 64


class ImageCodec(CompressionModel):
    def __init__(self, spec, g_a: nn.Module, g_s: nn.Module, latent: nn.Module, pad_multiple: int = PAD_MULTIPLE):
        super().__init__()
        self.spec = spec
        self.g_a = g_a
        self.g_s = g_s
        self.latent = latent
        self.pad_multiple = pad_multiple

    # -- training / estimation -------------------------------------------------------
    def forward(self, x: Tensor) -> dict:
        height, width = x.shape[-2:]
        y = self.g_a(self.pad(x))
        out = self.latent(y)
        x_hat = self.g_s(out["y_hat"])[..., :height, :width]
        return {"x_hat": x_hat, "likelihoods": out["likelihoods"], "y_hat": out["y_hat"], "z_hat": out["z_hat"]}

    # -- real bitstreams ----------------------------------------------------------------
    def encode(self, x: Tensor) -> dict:
        """Entropy-code a batch; keeps the quantised latents for checking against forward()."""
        y = self.g_a(self.pad(x))
        out = self.latent.compress(y)
        return {**out, "size": tuple(x.shape[-2:])}

    @torch.no_grad()
    def compress(self, x: Tensor) -> list[bytes]:
        """One self-contained bitstream per image of the batch (header included)."""
        out = self.encode(x)
        height, width = out["size"]
        return [bitstream.pack(height, width, [s[i] for s in out["streams"]]) for i in range(x.shape[0])]

    @torch.no_grad()
    def decompress(self, data: bytes) -> dict:
        height, width, streams = bitstream.unpack(data)
        y_shape, z_shape = self.latent_shapes(height, width)
        out = self.latent.decompress([[s] for s in streams], y_shape[-2:], z_shape[-2:])
        x_hat = self.g_s(out["y_hat"])[..., :height, :width].clamp(0, 1)
        return {"x_hat": x_hat, "y_hat": out["y_hat"], "z_hat": out["z_hat"]}

    # -- decode networks alone (FLOPs, runtime without entropy coding) --------------------
    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        return self.g_s(self.latent.decode_networks(y_hat, z_hat))

    def latent_shapes(self, height: int, width: int, batch: int = 1) -> tuple[tuple, tuple]:
        ph, pw = _padded(height, self.pad_multiple), _padded(width, self.pad_multiple)
        y_shape = (batch, self.spec.M, ph // Y_STRIDE, pw // Y_STRIDE)
        z_shape = (batch, self.latent.z_channels, ph // Z_STRIDE, pw // Z_STRIDE)
        return y_shape, z_shape

    def pad(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        ph, pw = _padded(height, self.pad_multiple), _padded(width, self.pad_multiple)
        if (ph, pw) == (height, width):
            return x
        return F.pad(x, (0, pw - width, 0, ph - height), mode="replicate")


def _padded(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple
