"""SwinT hyper-transforms: Zhu, Yang, Cohen 2022, "Transformer-based transform coding" (ICLR),
the hyper-analysis and hyper-synthesis of SwinT-Hyperprior / SwinT-ChARM.

    h_a: PatchEmbed(M->c0)  Swin(c0)xn0  Merge(c0->c1)  Swin(c1)xn1        (z: c1 channels, H/64)
    h_s: Swin(c1)xn1  Split(c1->c0)  Swin(c0)xn0  Unpack(c0->out)          (out at H/16)

Published: dims (c0, c1) = (192, 192), depths (5, 1), window 4, head dim 32; `out` is what the
entropy model asks for (2M: means and scales).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from models.errors import SpecError
from models.layers.patches import ChannelsFirst, ChannelsLast, PatchEmbed, PatchMerging, PatchSplitting, PatchUnpack
from models.layers.swin import SwinStage, check_head_dim
from models.component import knob, register

STAGES = 2  # two stride-2 steps: z at H/64 from y at H/16


@register("hyper", "swint", display="SwinT")
@dataclass(frozen=True)
class SwinHyper:
    dims: tuple[int, ...] = knob(
        (192, 192), min=1, allowed="2 widths",
        doc="widths of the two Swin stages of h_a (the hyper-latent z has the last one's channels); h_s mirrors them",
    )
    depths: tuple[int, ...] = knob(
        (5, 1), min=0, allowed="2 counts", doc="Swin blocks in each of the two h_a stages; h_s runs them in reverse order"
    )
    head_dim: int = knob(
        32, min=1, allowed="divides dims", doc="channels per attention head: a stage of width w has w / head_dim heads"
    )
    window: int = knob(4, min=1, doc="side of the square windows attention runs in (smaller on feature maps narrower than it)")
    mlp_ratio: float = knob(4.0, min=0.25, doc="hidden width of each Swin block's MLP, as a multiple of the block's width")

    TINY = {"dims": [16, 16], "depths": [2, 1], "head_dim": 8, "window": 2}

    def check(self, M: int) -> None:
        if len(self.dims) != STAGES:
            raise SpecError("dims", list(self.dims), f"{STAGES} widths, one per stage")
        if len(self.depths) != STAGES:
            raise SpecError("depths", list(self.depths), f"{STAGES} block counts, one per stage")
        check_head_dim(self.head_dim, tuple(self.dims), "dims")

    def z_channels(self, M: int) -> int:
        return self.dims[-1]

    def build(self, M: int, out_channels: int) -> tuple[nn.Module, nn.Module]:
        (c0, c1), (n0, n1) = self.dims, self.depths
        stage = lambda width, depth: SwinStage(width, depth, self.head_dim, self.window, self.mlp_ratio)  # noqa: E731
        h_a = nn.Sequential(
            PatchEmbed(M, c0), stage(c0, n0),
            PatchMerging(c0, c1), stage(c1, n1),
            ChannelsFirst(),
        )
        h_s = nn.Sequential(
            ChannelsLast(),
            stage(c1, n1), PatchSplitting(c1, c0),
            stage(c0, n0), PatchUnpack(c0, out_channels),
        )
        return h_a, h_s
