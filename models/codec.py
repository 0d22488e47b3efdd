"""ImageCodec: analysis/synthesis transforms around a latent codec, with real bitstreams.

The latent codec (built by an entropy component) owns h_a, h_s and every entropy model; its
interface is the `LatentCodec` Protocol of models/entropy/protocol.py (a hyper-latent codec
around a swappable y-codec). y_hat is the quantised latent the bitstream carries; g_s_input is
what the synthesis gets (y_hat itself, or y_hat refined by latent residual prediction).

Images of any size are padded (replicating the border) to a multiple of `pad_multiple`
before the analysis and cropped after the synthesis; bitstreams carry the true size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import Tensor, nn

from models import bitstream
from models.entropy.protocol import LatentCodec

# y is at H/16 and z at H/64: padding to 64 makes every stride-2 stage exact.
PAD_MULTIPLE = 64
Y_STRIDE = 16
Z_STRIDE = 64


class ImageCodec(CompressionModel):
    def __init__(self, spec, g_a: nn.Module, g_s: nn.Module, latent: LatentCodec, pad_multiple: int = PAD_MULTIPLE):
        super().__init__()
        self.spec = spec
        self.g_a = g_a
        self.g_s = g_s
        self.latent = latent
        self.pad_multiple = pad_multiple

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        # Earlier checkpoints' key names first: compressai's loader resizes the entropy models'
        # tables by module name before torch's load hooks run.
        from models.entropy.hyper_latent import HyperLatentCodec, nest_y_codec_keys

        if isinstance(self.latent, HyperLatentCodec):
            state_dict = dict(state_dict)
            nest_y_codec_keys(state_dict, "latent.")
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    # -- training / estimation -------------------------------------------------------
    def forward(self, x: Tensor) -> dict:
        height, width = x.shape[-2:]
        y = self.g_a(self.pad(x))
        out = self.latent(y)
        x_hat = self.g_s(out["g_s_input"])[..., :height, :width]
        return {"x_hat": x_hat, "likelihoods": out["likelihoods"], "y_hat": out["y_hat"], "z_hat": out["z_hat"]}

    # -- real bitstreams ----------------------------------------------------------------
    def encode(self, x: Tensor) -> dict:
        """Entropy-code one image (batch of 1); keeps the quantised latents for checking."""
        y = self.g_a(self.pad(x))
        out = self.latent.compress(y)
        return {**out, "size": tuple(x.shape[-2:])}

    @torch.no_grad()
    def compress(self, x: Tensor) -> list[bytes]:
        """One self-contained bitstream per image of the batch (header included).

        Images are coded one at a time: the decoder runs h_s and the slice transforms on a
        batch of one, and the encoder must compute bit-identical entropy parameters (a
        convolution over a batch of 8 may round differently from one over a batch of 1).
        """
        out = []
        for image in x.split(1):
            encoded = self.encode(image)
            height, width = encoded["size"]
            out.append(bitstream.pack(height, width, [s[0] for s in encoded["streams"]]))
        return out

    @torch.no_grad()
    def decompress(self, data: bytes) -> dict:
        height, width, streams = bitstream.unpack(data)
        y_shape, z_shape = self.latent_shapes(height, width)
        out = self.latent.decompress([[s] for s in streams], y_shape[-2:], z_shape[-2:])
        x_hat = self.g_s(out["g_s_input"])[..., :height, :width].clamp(0, 1)
        return {"x_hat": x_hat, "y_hat": out["y_hat"], "z_hat": out["z_hat"]}

    # -- the networks alone (FLOPs, runtime without entropy coding) -----------------------
    def encode_networks(self, x: Tensor) -> dict:
        """g_a, h_a, h_s and the entropy-parameter networks; no entropy coding."""
        return self.latent.encode_networks(self.g_a(self.pad(x)))

    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        """g_s, h_s and the entropy-parameter networks; no entropy coding."""
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
