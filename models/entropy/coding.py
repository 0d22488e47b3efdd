"""Entropy coding with compressai's rANS coder, shared by the entropy components.

`GaussianEncoder`/`GaussianDecoder` code any number of tensors (a hyperprior's y, or the
slices of a channel-wise model one after the other) with one GaussianConditional into ONE
stream per image, converting the CDF tables to Python lists once instead of once per tensor.
The reconstruction is computed from the symbols exactly as the decoder computes it
(symbols + means), so the encoder never has to decode its own stream to know y_hat.
"""

from __future__ import annotations

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.ops import quantize_ste
from torch import Tensor


def _check_tables(gaussian: GaussianConditional) -> None:
    if gaussian.quantized_cdf.numel() == 0:
        raise RuntimeError("entropy coding tables are empty: call model.update(force=True) before compress/decompress")


def _tables(gaussian: GaussianConditional) -> tuple[list, list, list]:
    return (
        gaussian.quantized_cdf.tolist(),
        gaussian.cdf_length.reshape(-1).int().tolist(),
        gaussian.offset.reshape(-1).int().tolist(),
    )


class GaussianEncoder:
    """Accumulates Gaussian-coded tensors for a batch; `finish()` gives one stream per image."""

    def __init__(self, gaussian: GaussianConditional, batch: int):
        _check_tables(gaussian)
        self.gaussian = gaussian
        self.tables = _tables(gaussian)
        self.encoders = [BufferedRansEncoder() for _ in range(batch)]

    def encode(self, y: Tensor, scales: Tensor, means: Tensor | None) -> Tensor:
        """Code y given its scales (and means); return y_hat as the decoder will see it."""
        symbols = self.gaussian.quantize(y, "symbols", means)
        indexes = self.gaussian.build_indexes(scales)
        for b, encoder in enumerate(self.encoders):
            encoder.encode_with_indexes(symbols[b].reshape(-1).tolist(), indexes[b].reshape(-1).tolist(), *self.tables)
        return self.gaussian.dequantize(symbols, means, y.dtype)

    def finish(self) -> list[bytes]:
        return [encoder.flush() for encoder in self.encoders]


class GaussianDecoder:
    """Reads tensors back from one stream per image, in the order they were encoded."""

    def __init__(self, gaussian: GaussianConditional, streams: list[bytes]):
        _check_tables(gaussian)
        self.gaussian = gaussian
        self.tables = _tables(gaussian)
        self.decoders = []
        for stream in streams:
            decoder = RansDecoder()
            decoder.set_stream(stream)
            self.decoders.append(decoder)

    def decode(self, scales: Tensor, means: Tensor | None) -> Tensor:
        indexes = self.gaussian.build_indexes(scales)
        symbols = torch.empty(indexes.shape, dtype=torch.int32)
        for b, decoder in enumerate(self.decoders):
            values = decoder.decode_stream(indexes[b].reshape(-1).tolist(), *self.tables)
            symbols[b] = torch.tensor(values, dtype=torch.int32).reshape(symbols[b].shape)
        symbols = symbols.to(scales.device)
        if means is None:
            return symbols.to(scales.dtype)
        return self.gaussian.dequantize(symbols, means)


def encode_hyperlatent(bottleneck: EntropyBottleneck, z: Tensor) -> tuple[list[bytes], Tensor]:
    """z's streams (one per image) and z_hat, computed as the decoder will compute it."""
    streams = bottleneck.compress(z)
    return streams, quantize_hyperlatent(bottleneck, z)


def quantize_hyperlatent(bottleneck: EntropyBottleneck, z: Tensor) -> Tensor:
    """round(z - median) + median: what EntropyBottleneck.decompress returns, with the gradient of
    the identity for training. compressai's quantize_ste computes (round(x) - x) + x, which
    equals round(x) exactly in floating point, so training, coding and decoding agree."""
    medians = bottleneck._get_medians()
    return quantize_ste(z - medians) + medians



def quantize_latent(y: Tensor, means: Tensor | None) -> Tensor:
    """Straight-through round(y - mu) + mu: bit-identical to what the decoder reconstructs
    (symbols + mu), with the gradient of the identity for training."""
    return quantize_ste(y) if means is None else quantize_ste(y - means) + means
