"""Entropy coding with compressai's rANS coder, shared by the entropy components.

`GaussianEncoder`/`GaussianDecoder` code any number of tensors (a hyperprior's y, or the
slices of a channel-wise model one after the other) with one GaussianConditional into ONE
stream per image, converting the CDF tables to Python lists once instead of once per tensor.
The reconstruction is computed from the symbols exactly as the decoder computes it
(symbols + means), so the encoder never has to decode its own stream to know y_hat.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# -- coding diagnostics: what the rANS coder does with each symbol ---------------------------
# compressai's coder (rans_interface.cpp) codes a symbol v - offset in [0, cdf_length - 2) with
# its CDF; anything outside is escaped: the sentinel cdf_length - 2, then the raw value
# (2|v| - 1 below, 2(v - max) above) in 4-bit chunks after their count (4-bit chunks of at most
# 15 each). BYPASS_BITS is that chunk.
BYPASS_BITS = 4
MAX_BYPASS = (1 << BYPASS_BITS) - 1


@dataclass
class SymbolStats:
    """Symbols of one stream: how many, how many escaped, and the bits the coder spends on them
    (exact from its quantised CDF tables and escape code, flushes and the header excluded)."""

    symbols: int = 0
    escaped: int = 0
    bits: float = 0.0

    def __add__(self, other: "SymbolStats") -> "SymbolStats":
        return SymbolStats(self.symbols + other.symbols, self.escaped + other.escaped, self.bits + other.bits)


def table_stats(entropy_model, symbols: Tensor, indexes: Tensor) -> SymbolStats:
    """What the coder spends on `symbols` coded with CDF `indexes` of a GaussianConditional or
    EntropyBottleneck (its _quantized_cdf, _offset, _cdf_length tables)."""
    cdf = entropy_model._quantized_cdf.to(torch.int64)
    indexes = indexes.reshape(-1).long().to(cdf.device)
    symbols = symbols.reshape(-1).long().to(cdf.device)
    max_value = entropy_model._cdf_length.reshape(-1).long()[indexes] - 2
    value = symbols - entropy_model._offset.reshape(-1).long()[indexes]
    below, above = value < 0, value >= max_value
    escaped = below | above
    coded = torch.where(escaped, max_value, value)
    frequency = cdf[indexes, coded + 1] - cdf[indexes, coded]
    bits = (entropy_model.entropy_coder_precision - torch.log2(frequency.double())).sum()
    raw = torch.where(below, -2 * value - 1, torch.where(above, 2 * (value - max_value), torch.zeros_like(value)))[escaped]
    if raw.numel():
        chunks = torch.where(raw > 0, torch.floor(torch.log2(raw.double().clamp(min=1))).long() // BYPASS_BITS + 1, 0)
        bits = bits + (BYPASS_BITS * (chunks // MAX_BYPASS + 1 + chunks)).sum()
    return SymbolStats(int(symbols.numel()), int(escaped.sum()), float(bits))


def gaussian_stats(gaussian: GaussianConditional, y: Tensor, scales: Tensor, means: Tensor | None) -> SymbolStats:
    return table_stats(gaussian, gaussian.quantize(y, "symbols", means), gaussian.build_indexes(scales))


def hyperlatent_stats(bottleneck: EntropyBottleneck, z: Tensor) -> SymbolStats:
    symbols = bottleneck.quantize(z, "symbols", bottleneck._get_medians())
    indexes = bottleneck._build_indexes(z.size())
    return table_stats(bottleneck, symbols, indexes)
