"""ELIC transforms: He, Yang, Peng, Ma, Qin, Wang 2022, "ELIC: Efficient learned image
compression with unevenly grouped space-channel contextual adaptive coding" (CVPR), with the
simplified attention of Cheng, Sun, Takeuchi, Katto 2020 (CVPR). ReLU everywhere, no GDN;
the blocks are compressai's (the same modules as its Elic2022Official).

    g_a: conv(5,2,c0) RBBxn  conv(5,2,c1) RBBxn Attn  conv(5,2,c2) RBBxn  conv(5,2,M) Attn
    g_s: Attn deconv(5,2,c2) RBBxn  deconv(5,2,c1) Attn RBBxn  deconv(5,2,c0) RBBxn  deconv(5,2,3)

RBB = residual bottleneck (1x1 C->C/2, 3x3, 1x1 ->C, + x); Attn = x + a(x) * sigmoid(b(x)).
The synthesis mirrors the analysis: its widths from the latent side are (c2, c1, c0).
Published ELIC: n = 3, channels (192, 192, 192), M = 320. The study's model B: n = 2,
channels (128, 256, 256).
"""

from __future__ import annotations

from dataclasses import dataclass

from compressai.layers import AttentionBlock
from compressai.models.sensetime import ResidualBottleneckBlock
from compressai.models.utils import conv, deconv
from torch import nn

from models.errors import SpecError
from models.component import knob, register

STAGES = 3  # hidden widths; a fourth stride-2 convolution goes to M


@register("transform", "elic", display="ELIC")
@dataclass(frozen=True)
class ElicTransform:
    channels: tuple[int, ...] = knob(
        (192, 192, 192), min=2, allowed="3 widths",
        doc="widths of g_a after each of its first three stride-2 convs (the fourth gives y its M); g_s mirrors them",
    )
    num_res_blocks: int = knob(
        3, min=0, doc="residual bottleneck blocks after each of those convs, in g_a and in g_s (ELIC: 3; the study's model B: 2)"
    )

    TINY = {"channels": [8, 16, 16], "num_res_blocks": 1}

    def check(self, M: int) -> None:
        if len(self.channels) != STAGES:
            raise SpecError("channels", list(self.channels), f"{STAGES} widths, one per stage before the latent")
        if M < 2:
            raise SpecError("M", M, "at least 2 with ELIC transforms (its attention halves the width)")

    def build(self, M: int) -> tuple[nn.Module, nn.Module]:
        c0, c1, c2 = self.channels
        blocks = lambda c: [ResidualBottleneckBlock(c, c) for _ in range(self.num_res_blocks)]  # noqa: E731
        g_a = nn.Sequential(
            conv(3, c0), *blocks(c0),
            conv(c0, c1), *blocks(c1), AttentionBlock(c1),
            conv(c1, c2), *blocks(c2),
            conv(c2, M), AttentionBlock(M),
        )
        g_s = nn.Sequential(
            AttentionBlock(M),
            deconv(M, c2), *blocks(c2),
            deconv(c2, c1), AttentionBlock(c1), *blocks(c1),
            deconv(c1, c0), *blocks(c0),
            deconv(c0, 3),
        )
        return g_a, g_s
