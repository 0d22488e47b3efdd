"""ELIC's space-channel context model (SCCTX): He, Yang, Peng, Ma, Qin, Wang 2022, "ELIC:
Efficient learned image compression with unevenly grouped space-channel contextual adaptive
coding" (CVPR); module for module compressai's Elic2022Official latent codec.

y is cut into uneven channel groups (16, 16, 32, 64, M - 128 by default). Group k is coded in
two checkerboard passes (He et al. 2021, "Checkerboard context model", CVPR): first the
anchors, then the other half with a spatial context from the decoded anchors. The Gaussian
parameters of each pass come from the parameter aggregation network (1x1 convs) over
[spatial context, channel context, hyper params], where the channel context is a conv net
over every group decoded before k (none for the first group) and the hyper params are h_s's
output (`hyper_channels` wide; ELIC: 2N = 384).

    g_ch^(k):  conv(5,1,224) ReLU  conv(5,1,128) ReLU  conv(5,1,2 g_k)      on groups < k
    g_sp^(k):  checkerboard-masked conv(5,1,2 g_k)                           on anchors of k
    aggregation^(k): 1x1 convs ramping linearly from the input width to 2 g_k (at least
               hyper_channels wide inside), ReLU between                    (compressai's ramp)

The modules are compressai's (ChannelGroupsLatentCodec of CheckerboardLatentCodecs of
GaussianConditionalLatentCodecs), so weights move between the two unchanged. The coding loop
is ours, written the way compressai's compress/decompress run (the same tensors in the same
order, so the same bytes), for one reason: training, coding, decoding and FLOP counting on
the meta device share it, so what is counted is what runs. The first pass's spatial context
is zero by construction and is not computed (compressai computes and then zeroes it): decode
work is the channel context once per group, the spatial context once per group, and the
aggregation on each half of the positions (once over all of them). Each pass is its own
stream, as in compressai: streams y0_anchor, y0_rest, y1_anchor, ...

Training (as compressai's Elic2022Official): h_s gets straight-through rounded z; each pass's
rate from noisy y (the likelihood), and its y_hat straight-through rounded around its mean,
which is what the next pass and the next groups see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.latent_codecs import ChannelGroupsLatentCodec, CheckerboardLatentCodec, GaussianConditionalLatentCodec
from compressai.layers import CheckerboardMaskedConv2d, sequential_channel_ramp
from torch import Tensor, nn

from models.component import knob, register
from models.entropy.coding import SymbolStats, gaussian_stats, quantize_latent
from models.entropy.hyper_latent import HyperLatentCodec
from models.layers.conv_stack import conv_stack
from models.errors import SpecError

PASSES = ("anchor", "rest")
AGGREGATION_LAYERS = 3


@register("entropy", "elic", display="ELIC")
@dataclass(frozen=True)
class Elic:
    groups: tuple[int, ...] = knob(
        (16, 16, 32, 64), min=1, allowed="sum < M",
        doc="channels of each of y's uneven groups but the last, which takes the remaining M - sum (ELIC: 16, 16, "
        "32, 64, M - 128); the groups are decoded one after another, each in two checkerboard passes",
    )
    hyper_channels: int = knob(
        384, min=1, doc="width of h_s's output, the side information every group's entropy parameters see (ELIC: 2N = 384)"
    )
    context_widths: tuple[int, ...] = knob(
        (224, 128), min=1, doc="hidden widths of each group's channel-context net, which predicts it from the groups decoded before it"
    )
    context_kernel: int = knob(5, min=1, allowed="odd", doc="kernel size of the channel-context convs")
    spatial_kernel: int = knob(
        5, min=3, allowed="odd",
        doc="kernel size of the checkerboard-masked conv that gives a group's second pass its context from the first pass's values",
    )

    TINY = {"groups": [4, 4, 8], "hyper_channels": 16, "context_widths": [16, 8], "context_kernel": 3, "spatial_kernel": 3}

    def check(self, M: int) -> None:
        if sum(self.groups) >= M:
            raise SpecError("groups", list(self.groups), f"widths summing to less than M={M} (the last group takes the rest)")
        for key in ("context_kernel", "spatial_kernel"):
            if getattr(self, key) % 2 == 0:
                raise SpecError(key, getattr(self, key), "an odd kernel size (the latent keeps its size)")

    def group_widths(self, M: int) -> list[int]:
        return [*self.groups, M - sum(self.groups)]

    def hyper_out_channels(self, M: int) -> int:
        return self.hyper_channels

    def build(self, M: int, h_a: nn.Module, h_s: nn.Module, z_channels: int) -> HyperLatentCodec:
        entropy_bottleneck = EntropyBottleneck(z_channels)
        return HyperLatentCodec(h_a, h_s, entropy_bottleneck, ElicYCodec(self, M), h_s_input="rounded")


# A pass coder turns (group, pass, y of the pass's positions or None, its Gaussian params) into
# y_hat of those positions: rANS encoding or decoding, straight-through rounding in training,
# or the given y_hat when only the networks run.
PassCoder = Callable[[int, int, Tensor, Tensor], Tensor]


class ElicYCodec(nn.Module):
    def __init__(self, config: Elic, M: int):
        super().__init__()
        groups = config.group_widths(M)
        hyper = config.hyper_channels
        self.groups = groups
        channel_context = {
            f"y{k}": conv_stack(sum(groups[:k]), config.context_widths, 2 * groups[k], config.context_kernel, config.context_kernel)
            for k in range(1, len(groups))
        }
        spatial_context = [
            CheckerboardMaskedConv2d(g, 2 * g, kernel_size=config.spatial_kernel, stride=1, padding=config.spatial_kernel // 2)
            for g in groups
        ]
        aggregation = [
            sequential_channel_ramp(
                2 * g + (k > 0) * 2 * g + hyper, 2 * g, min_ch=hyper, num_layers=AGGREGATION_LAYERS, interp="linear",
                make_layer=nn.Conv2d, make_act=lambda: nn.ReLU(inplace=True), kernel_size=1, stride=1, padding=0,
            )
            for k, g in enumerate(groups)
        ]
        scctx = {
            f"y{k}": CheckerboardLatentCodec(
                latent_codec={"y": GaussianConditionalLatentCodec(quantizer="ste")},
                context_prediction=spatial_context[k],
                entropy_parameters=aggregation[k],
            )
            for k in range(len(groups))
        }
        # compressai's tree, so that state dicts map one to one (models/compat.py).
        self.channel_groups = ChannelGroupsLatentCodec(groups=groups, channel_context=channel_context, latent_codec=scctx)

    # -- the loop shared by training, coding, decoding and FLOP counting ---------------------
    def _groups(self, params: Tensor, code: PassCoder, shape) -> Tensor:
        """Every group in order, each in its two passes; returns y_hat. The tensors are
        compressai's (ChannelGroupsLatentCodec.compress around CheckerboardLatentCodec.compress),
        built without in-place writes so that training can differentiate through them."""
        n, _, h, w = shape
        decoded: list[Tensor] = []
        for k, g in enumerate(self.groups):
            checkerboard = self.channel_groups.latent_codec[f"y{k}"]
            side = params
            if k > 0:
                channel_context = self.channel_groups.channel_context[f"y{k}"](torch.cat(decoded, dim=1))
                side = torch.cat([channel_context, params], dim=1)
            side_halves = checkerboard.unembed(side)
            # Pass 1, anchors: no spatial context yet (zeros, as compressai's masked one).
            no_context = params.new_zeros((n, 2 * g, h, w // 2))
            anchors = code(k, 0, checkerboard.entropy_parameters(torch.cat([no_context, side_halves[0]], dim=1)))
            # Pass 2, the rest: spatial context from the decoded anchors.
            only_anchors = checkerboard.embed(torch.stack([anchors, torch.zeros_like(anchors)]))
            context = checkerboard.unembed(checkerboard.context_prediction(only_anchors))[1]
            rest = code(k, 1, checkerboard.entropy_parameters(torch.cat([context, side_halves[1]], dim=1)))
            decoded.append(checkerboard.embed(torch.stack([anchors, rest])))
        return torch.cat(decoded, dim=1)

    def _leaf(self, k: int) -> GaussianConditionalLatentCodec:
        return self.channel_groups.latent_codec[f"y{k}"].latent_codec["y"]

    def _passes_of(self, y: Tensor) -> list[Tensor]:
        """y's channels per group, each as (anchor half, rest half), flattened in coding order."""
        checkerboard = self.channel_groups.latent_codec["y0"]
        return [checkerboard.unembed(part) for part in y.split(self.groups, dim=1)]

    def _check_width(self, shape) -> None:
        if shape[-1] % 2:
            raise ValueError(f"the checkerboard needs an even latent width, got {shape[-1]}")

    # -- the y-codec interface (models/entropy/protocol.py) -----------------------------------
    def forward(self, y: Tensor, params: Tensor) -> dict:
        self._check_width(y.shape)
        parts = self._passes_of(y)
        likelihoods: list[list[Tensor]] = [[] for _ in self.groups]

        def code(k: int, i: int, pass_params: Tensor) -> Tensor:
            out = self._leaf(k)(parts[k][i], pass_params)
            likelihoods[k].append(out["likelihoods"]["y"])
            return out["y_hat"]

        y_hat = self._groups(params, code, y.shape)
        checkerboard = self.channel_groups.latent_codec["y0"]
        y_likelihoods = torch.cat([checkerboard.embed(torch.stack(lk)) for lk in likelihoods], dim=1)
        return {"y_hat": y_hat, "g_s_input": y_hat, "likelihoods": {"y": y_likelihoods}}

    def compress(self, y: Tensor, params: Tensor) -> dict:
        self._check_width(y.shape)
        parts = self._passes_of(y)
        streams: list[list[bytes]] = []

        def code(k: int, i: int, pass_params: Tensor) -> Tensor:
            out = self._leaf(k).compress(parts[k][i], pass_params)
            streams.extend(out["strings"])
            return out["y_hat"]

        y_hat = self._groups(params, code, y.shape)
        return {"streams": streams, "y_hat": y_hat, "g_s_input": y_hat}

    def decompress(self, streams: list[list[bytes]], params: Tensor, y_hw) -> dict:
        h, w = y_hw
        self._check_width((h, w))
        order = iter(streams)

        def code(k: int, i: int, pass_params: Tensor) -> Tensor:
            return self._leaf(k).decompress([next(order)], (h, w // 2), pass_params)["y_hat"]

        y_hat = self._groups(params, code, (params.shape[0], None, h, w))
        return {"y_hat": y_hat, "g_s_input": y_hat}

    def quantize(self, y: Tensor, params: Tensor) -> Tensor:
        parts = self._passes_of(y)

        def code(k: int, i: int, pass_params: Tensor) -> Tensor:
            _, means = self._leaf(k)._chunk(pass_params)
            return quantize_latent(parts[k][i], means)

        return self._groups(params, code, y.shape)

    def synthesis_input(self, y_hat: Tensor, params: Tensor) -> Tensor:
        parts = self._passes_of(y_hat)
        return self._groups(params, lambda k, i, pass_params: parts[k][i], y_hat.shape)

    def stream_names(self) -> list[str]:
        return [f"y{k}_{step}" for k in range(len(self.groups)) for step in PASSES]

    def coding_stats(self, y: Tensor, params: Tensor) -> dict[str, SymbolStats]:
        parts = self._passes_of(y)
        stats: dict[str, SymbolStats] = {}

        def code(k: int, i: int, pass_params: Tensor) -> Tensor:
            leaf = self._leaf(k)
            scales, means = leaf._chunk(pass_params)
            stats[f"y{k}_{PASSES[i]}"] = gaussian_stats(leaf.gaussian_conditional, parts[k][i], scales, means)
            return quantize_latent(parts[k][i], means)

        self._groups(params, code, y.shape)
        return stats
