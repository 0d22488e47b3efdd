"""SwinT transforms: Zhu, Yang, Cohen 2022, "Transformer-based transform coding" (ICLR).

Four Swin stages (models/layers/swin.py); the last analysis stage runs at the latent width M.

    g_a: PatchEmbed(3->d0)  Swin(d0)xn0  Merge(d0->d1)  Swin(d1)xn1  Merge(d1->d2)  Swin(d2)xn2
         Merge(d2->M)  Swin(M)xn3                                               (y at H/16)
    g_s: Swin(M)xn3  Split(M->d2)  Swin(d2)xn2  Split(d2->d1)  Swin(d1)xn1  Split(d1->d0)
         Swin(d0)xn0  Unpack(d0->3)

Published (SwinT-Hyperprior / SwinT-ChARM): dims (128, 192, 256), M = 320, depths
(2, 2, 6, 2), head dim 32, window 8. Windows larger than a feature map are clamped (see
models/layers/swin.py), so small crops and small images work.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from models.errors import SpecError
from models.layers.patches import ChannelsFirst, ChannelsLast, PatchEmbed, PatchMerging, PatchSplitting, PatchUnpack
from models.layers.swin import SwinStage, check_head_dim
from models.component import knob, register

STAGES = 4  # four stride-2 steps: y at H/16


@register("transform", "swint", display="SwinT")
@dataclass(frozen=True)
class SwinTransform:
    dims: tuple[int, ...] = knob(
        (128, 192, 256), min=1, allowed="3 widths",
        doc="widths of the first three Swin stages of g_a (the fourth runs at M, y's width); g_s mirrors them",
    )
    depths: tuple[int, ...] = knob(
        (2, 2, 6, 2), min=0, allowed="4 counts", doc="Swin blocks in each of the four g_a stages; g_s runs them in reverse order"
    )
    head_dim: int = knob(
        32, min=1, allowed="divides dims and M", doc="channels per attention head: a stage of width w has w / head_dim heads"
    )
    window: int = knob(8, min=1, doc="side of the square windows attention runs in (smaller on feature maps narrower than it)")
    mlp_ratio: float = knob(4.0, min=0.25, doc="hidden width of each Swin block's MLP, as a multiple of the block's width")

    TINY = {"dims": [8, 16, 16], "depths": [1, 2, 1, 2], "head_dim": 8, "window": 4}

    def check(self, M: int) -> None:
        if len(self.dims) != STAGES - 1:
            raise SpecError("dims", list(self.dims), f"{STAGES - 1} widths (the last stage runs at M)")
        if len(self.depths) != STAGES:
            raise SpecError("depths", list(self.depths), f"{STAGES} block counts, one per stage")
        check_head_dim(self.head_dim, (*self.dims, M), "dims and M")

    def build(self, M: int) -> tuple[nn.Module, nn.Module]:
        widths = (*self.dims, M)
        stage = lambda width, depth: SwinStage(width, depth, self.head_dim, self.window, self.mlp_ratio)  # noqa: E731
        analysis: list[nn.Module] = [PatchEmbed(3, widths[0])]
        for i in range(STAGES):
            if i > 0:
                analysis.append(PatchMerging(widths[i - 1], widths[i]))
            analysis.append(stage(widths[i], self.depths[i]))
        analysis.append(ChannelsFirst())

        synthesis: list[nn.Module] = [ChannelsLast()]
        for i in reversed(range(STAGES)):
            synthesis.append(stage(widths[i], self.depths[i]))
            synthesis.append(PatchSplitting(widths[i], widths[i - 1]) if i > 0 else PatchUnpack(widths[0], 3))
        return nn.Sequential(*analysis), nn.Sequential(*synthesis)

