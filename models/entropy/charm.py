"""CHARM, the channel-wise autoregressive entropy model: Minnen & Singh 2020, "Channel-wise
autoregressive entropy models for learned image compression" (ICIP); layer for layer
tensorflow/compression models/ms2020.py. Options cover SwinT-ChARM (Zhu, Yang, Cohen 2022,
"Transformer-based transform coding", ICLR, App. A.1) and the study's model B (Minnen &
Johnston 2023, Sec. 5).

y (M channels) is cut into `num_slices` slices coded one after another. Slice i is coded with a
Gaussian whose mean and scale come from slice transforms of [hyper support, support slices],
where the support slices are the first min(i, max_support_slices) decoded slices. After
coding, latent residual prediction (LRP) refines the slice from [mean support, y_hat_i]:
    add:    y_i <- y_hat_i + 0.5 tanh(LRP)                   (ms2020)
    concat: y_i <- conv1x1([y_hat_i, 0.5 tanh(LRP)])         (model B; starts as `add`)
Refined slices are the support of later slices and the input of g_s. z has a factorized prior.

Hyper support (`hyper_heads`): h_s gives 2M channels (means half, scales half), then
    shared:    every slice sees all of them                               (ms2020)
    sliced:    slice i sees its own d = M / num_slices channels of each   (SwinT-ChARM)
    per_slice: slice i sees its own conv head's 2d channels               (model B)
Slice transforms: conv(k) ReLU ... conv(3) with hidden widths `slice_widths` (224, 128 and
k = 5 in ms2020); `slice_taper` grows them with the slice's support as SwinT-ChARM does.

Training: rate from noisy y; the LRP and the synthesis get straight-through rounded
y_hat = round(y - mu) + mu; h_s gets straight-through rounded z (as ms2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.utils import conv
from torch import Tensor, nn

from models.component import knob, register
from models.entropy.coding import GaussianDecoder, GaussianEncoder, SymbolStats, gaussian_stats, quantize_latent
from models.entropy.hyper_latent import HyperLatentCodec
from models.layers.conv_stack import conv_stack
from models.errors import SpecError

LRP_MERGES = ("add", "concat")
HYPER_HEADS = ("shared", "sliced", "per_slice")
HEAD_KERNEL = 1  # per-slice heads: 1x1 convs from h_s's output, one per slice (they run in parallel)


@register("entropy", "charm", display="CHARM")
@dataclass(frozen=True)
class Charm:
    num_slices: int = knob(
        10, min=1, allowed="divides M",
        doc="equal channel slices y is cut into, decoded one after another, each predicted from those before it "
        "(more slices: finer prediction, more sequential steps at decode)",
    )
    max_support_slices: int = knob(
        5, min=-1,
        doc="how many decoded slices (the first ones) each slice's prediction looks at; -1: all before it "
        "(values from num_slices - 1 up are stored as -1)",
    )
    slice_widths: tuple[int, ...] = knob(
        (224, 128), min=1,
        doc="hidden widths of the slice transforms: the small conv nets, three per slice, that predict the "
        "slice's mean, its scale and its LRP correction",
    )
    slice_kernel: int = knob(5, min=1, allowed="odd", doc="kernel size of the slice transforms' hidden convs (their output conv is 3x3)")
    slice_taper: bool = knob(
        False,
        doc="true: a slice transform that looks at s decoded slices is wider, slice_widths x (max(s, 1) + 2) / 3, "
        "so later slices get wider nets (SwinT-ChARM); false: all use slice_widths",
    )
    lrp: bool = knob(
        True,
        doc="latent residual prediction: once a slice is decoded, a slice transform predicts its rounding error "
        "from what is already known and corrects it by up to 0.5 before g_s and later slices see it",
    )
    lrp_merge: str = knob(
        "add", choices=LRP_MERGES,
        doc="how the LRP correction joins the decoded slice: add (ms2020) or concatenate and mix with a 1x1 conv "
        "(the study's model B); stored as add without lrp",
    )
    hyper_heads: str = knob(
        "shared", choices=HYPER_HEADS,
        doc="what each slice's nets get from h_s's output (2M channels): shared: all of it (ms2020); sliced: the "
        "slice's own share of channels (SwinT-ChARM); per_slice: its own 1x1 conv head over all of it (model B)",
    )

    TINY = {"num_slices": 4, "max_support_slices": 2, "slice_widths": [16, 8], "slice_kernel": 3}

    def __post_init__(self):
        # One architecture, one canonical spec (variant ids hash it): "all previous slices"
        # has one spelling, and lrp_merge means nothing without LRP.
        if self.max_support_slices >= self.num_slices - 1:
            object.__setattr__(self, "max_support_slices", -1)
        if not self.lrp:
            object.__setattr__(self, "lrp_merge", "add")

    def check(self, M: int) -> None:
        if M % self.num_slices:
            raise SpecError("num_slices", self.num_slices, f"a divisor of M={M} (slices have equal widths)")
        if self.slice_kernel % 2 == 0:
            raise SpecError("slice_kernel", self.slice_kernel, "an odd kernel size (the slice keeps its size)")

    def hyper_out_channels(self, M: int) -> int:
        return 2 * M  # means and scales

    def support(self, index: int) -> int:
        """How many decoded slices slice `index` is conditioned on."""
        return index if self.max_support_slices < 0 else min(index, self.max_support_slices)

    def hidden_widths(self, index: int) -> tuple[int, ...]:
        if not self.slice_taper:
            return tuple(self.slice_widths)
        grow = max(self.support(index), 1) + 2
        return tuple(width * grow // 3 for width in self.slice_widths)

    def build(self, M: int, h_a: nn.Module, h_s: nn.Module, z_channels: int) -> HyperLatentCodec:
        entropy_bottleneck = EntropyBottleneck(z_channels)  # first: construction order fixes seeded weights
        return HyperLatentCodec(h_a, h_s, entropy_bottleneck, CharmYCodec(self, M), h_s_input="rounded")


def slice_transform(in_channels: int, hidden: tuple[int, ...], out_channels: int, kernel: int) -> nn.Sequential:
    return conv_stack(in_channels, hidden, out_channels, kernel, last_kernel=3)


def _additive_merge(depth: int) -> nn.Conv2d:
    """1x1 conv over [y_hat_i, lrp_i], initialised to y_hat_i + lrp_i (the `add` merge)."""
    merge = nn.Conv2d(2 * depth, depth, kernel_size=1)
    with torch.no_grad():
        eye = torch.eye(depth)[:, :, None, None]
        merge.weight.copy_(torch.cat([eye, eye], dim=1))
        merge.bias.zero_()
    return merge


# A slice coder turns (slice index, mu, sigma) into the quantised slice: straight-through
# rounding in training, rANS encoding or decoding, or the given y_hat when only timing networks.
SliceCoder = Callable[[int, Tensor, Tensor], Tensor]


class CharmYCodec(nn.Module):
    """y in channel slices, each coded with a Gaussian from its slice transforms; every slice
    in ONE stream per image (the slices are decoded in order anyway)."""

    def __init__(self, config: Charm, M: int):
        super().__init__()
        n = config.num_slices
        depth = M // n
        self.config, self.num_slices = config, n
        self.gaussian_conditional = GaussianConditional(None)

        hyper = M if config.hyper_heads == "shared" else depth  # hyper channels per slice, per half
        self.heads = None
        if config.hyper_heads == "per_slice":
            self.heads = nn.ModuleList(conv(2 * M, 2 * depth, kernel_size=HEAD_KERNEL, stride=1) for _ in range(n))
        support = [hyper + depth * config.support(i) for i in range(n)]
        make = lambda i, extra: slice_transform(support[i] + extra, config.hidden_widths(i), depth, config.slice_kernel)  # noqa: E731
        self.mean_transforms = nn.ModuleList(make(i, 0) for i in range(n))
        self.scale_transforms = nn.ModuleList(make(i, 0) for i in range(n))
        self.lrp_transforms = nn.ModuleList(make(i, depth) for i in range(n)) if config.lrp else None
        self.lrp_merges = None
        if config.lrp and config.lrp_merge == "concat":
            self.lrp_merges = nn.ModuleList(_additive_merge(depth) for _ in range(n))

    # -- the slice loop shared by training, coding, decoding and timing ----------------------
    def _hyper_support(self, params: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(means, scales) support from h_s's output for each slice."""
        n = self.num_slices
        if self.heads is not None:
            return [tuple(head(params).chunk(2, 1)) for head in self.heads]
        means, scales = params.chunk(2, 1)
        if self.config.hyper_heads == "sliced":
            return list(zip(means.chunk(n, 1), scales.chunk(n, 1)))
        return [(means, scales)] * n

    def _slices(self, params: Tensor, code: SliceCoder) -> tuple[Tensor, Tensor]:
        """Run every slice in order; return (quantised y_hat, refined latent for g_s)."""
        quantised: list[Tensor] = []
        refined: list[Tensor] = []
        for i, (hyper_means, hyper_scales) in enumerate(self._hyper_support(params)):
            support = refined[: self.config.support(i)]
            mean_support = torch.cat([hyper_means, *support], dim=1)
            mu = self.mean_transforms[i](mean_support)
            sigma = self.scale_transforms[i](torch.cat([hyper_scales, *support], dim=1))
            y_hat = code(i, mu, sigma)
            quantised.append(y_hat)
            refined.append(self._refine(i, mean_support, y_hat))
        return torch.cat(quantised, dim=1), torch.cat(refined, dim=1)

    def _refine(self, i: int, mean_support: Tensor, y_hat: Tensor) -> Tensor:
        if self.lrp_transforms is None:
            return y_hat
        residual = 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([mean_support, y_hat], dim=1)))
        if self.lrp_merges is None:
            return y_hat + residual
        return self.lrp_merges[i](torch.cat([y_hat, residual], dim=1))

    # -- the y-codec interface (models/entropy/protocol.py) -----------------------------------
    def forward(self, y: Tensor, params: Tensor) -> dict:
        y_slices = y.chunk(self.num_slices, dim=1)
        likelihoods: list[Tensor] = []

        def code(i: int, mu: Tensor, sigma: Tensor) -> Tensor:
            _, slice_likelihoods = self.gaussian_conditional(y_slices[i], sigma, means=mu)
            likelihoods.append(slice_likelihoods)
            return quantize_latent(y_slices[i], mu)

        y_hat, refined = self._slices(params, code)
        return {"y_hat": y_hat, "g_s_input": refined, "likelihoods": {"y": torch.cat(likelihoods, dim=1)}}

    def compress(self, y: Tensor, params: Tensor) -> dict:
        y_slices = y.chunk(self.num_slices, dim=1)
        encoder = GaussianEncoder(self.gaussian_conditional, y.shape[0])
        y_hat, refined = self._slices(params, lambda i, mu, sigma: encoder.encode(y_slices[i], sigma, mu))
        return {"streams": [encoder.finish()], "y_hat": y_hat, "g_s_input": refined}

    def decompress(self, streams: list[list[bytes]], params: Tensor, y_hw) -> dict:
        (y_streams,) = streams
        decoder = GaussianDecoder(self.gaussian_conditional, y_streams)
        y_hat, refined = self._slices(params, lambda i, mu, sigma: decoder.decode(sigma, mu))
        return {"y_hat": y_hat, "g_s_input": refined}

    def quantize(self, y: Tensor, params: Tensor) -> Tensor:
        y_slices = y.chunk(self.num_slices, dim=1)
        y_hat, _ = self._slices(params, lambda i, mu, sigma: quantize_latent(y_slices[i], mu))
        return y_hat

    def synthesis_input(self, y_hat: Tensor, params: Tensor) -> Tensor:
        y_slices = y_hat.chunk(self.num_slices, dim=1)
        _, refined = self._slices(params, lambda i, mu, sigma: y_slices[i])
        return refined

    def stream_names(self) -> list[str]:
        return ["y"]

    def coding_stats(self, y: Tensor, params: Tensor) -> dict[str, SymbolStats]:
        y_slices = y.chunk(self.num_slices, dim=1)
        total = SymbolStats()

        def code(i: int, mu: Tensor, sigma: Tensor) -> Tensor:
            nonlocal total
            total = total + gaussian_stats(self.gaussian_conditional, y_slices[i], sigma, mu)
            return quantize_latent(y_slices[i], mu)

        self._slices(params, code)
        return {"y": total}
