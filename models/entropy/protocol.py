"""The two interfaces of an entropy model, as typing Protocols (tests/models checks every
registered entropy model against them).

An entropy component's `build` returns a `LatentCodec`: what ImageCodec (models/codec.py) runs
between g_a and g_s. Every shipped one is models.entropy.hyper_latent.HyperLatentCodec: h_a,
h_s, the EntropyBottleneck and z's coding, around a swappable `YCodec` (a Gaussian, CHARM's
slices, ELIC's space-channel context), the way compressai's HyperpriorLatentCodec holds a
HyperLatentCodec and a y latent codec.

Streams are lists with one bytes object per image of the batch; a codec's list of streams is
what models/bitstream.py packs, in order (the y streams, then z).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class LatentCodec(Protocol):
    """y -> streams -> y_hat and the synthesis input; z is its own business."""

    z_channels: int

    def forward(self, y: Tensor) -> dict:
        """Training / estimation: {"y_hat", "z_hat", "g_s_input", "likelihoods": {name: tensor}}."""

    def compress(self, y: Tensor) -> dict:
        """{"streams": [[bytes per image], ...], "y_hat", "z_hat", "g_s_input"}; y_hat as the
        decoder will reconstruct it."""

    def decompress(self, streams: list[list[bytes]], y_hw, z_hw) -> dict:
        """{"y_hat", "z_hat", "g_s_input"} from the streams and the latent sizes alone."""

    def encode_networks(self, y: Tensor) -> dict:
        """{"y_hat", "z_hat"}: every network an encoder runs, quantisation but no entropy coding.
        Shapes only decide the work, so it runs on the meta device (FLOP counting)."""

    def decode_networks(self, y_hat: Tensor, z_hat: Tensor) -> Tensor:
        """The latent fed to g_s, running every network a decoder runs (h_s, entropy-parameter
        nets, context models, LRP) but no entropy coding; runs on the meta device."""

    def stream_names(self) -> list[str]:
        """One name per stream of `compress` (coding diagnostics: bits per stream)."""

    def coding_stats(self, y: Tensor) -> dict:
        """{stream name: SymbolStats}: symbols, escaped symbols and the coder's exact bits per
        stream (models/entropy/coding.py), computed without coding."""


@runtime_checkable
class YCodec(Protocol):
    """The swappable y part: codes y given `params`, the output of h_s(z_hat)."""

    def forward(self, y: Tensor, params: Tensor) -> dict:
        """{"y_hat", "g_s_input", "likelihoods": {"y": tensor}} for training / estimation."""

    def compress(self, y: Tensor, params: Tensor) -> dict:
        """{"streams": [[bytes per image], ...], "y_hat", "g_s_input"}."""

    def decompress(self, streams: list[list[bytes]], params: Tensor, y_hw) -> dict:
        """{"y_hat", "g_s_input"}."""

    def quantize(self, y: Tensor, params: Tensor) -> Tensor:
        """The encoder's networks: y_hat without entropy coding."""

    def synthesis_input(self, y_hat: Tensor, params: Tensor) -> Tensor:
        """The decoder's networks: g_s's input from y_hat without entropy coding."""

    def stream_names(self) -> list[str]:
        """One name per y stream."""

    def coding_stats(self, y: Tensor, params: Tensor) -> dict:
        """{y stream name: SymbolStats}."""
