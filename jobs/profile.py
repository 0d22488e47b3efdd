"""Cost of a model without training: parameters, decode FLOPs per pixel, decode time.

FLOPs follow the study's convention: decode-only (g_s, h_s and every entropy-parameter
network; entropy coding excluded), FLOPs = 2 x MACs, transposed convolutions at input
resolution (torch's FlopCounterMode counts them so), per pixel of a reference image size.
Counting runs on a copy of the model moved to the meta device, so no arithmetic is done.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

# Kodak's size: the study reports per-pixel costs on Kodak.
REFERENCE_HEIGHT, REFERENCE_WIDTH = 512, 768


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def decode_flops(model, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """Decode FLOPs and MACs per pixel of a height x width image."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    y_shape, z_shape = meta_model.latent_shapes(height, width)
    y_hat = torch.zeros(y_shape, device="meta")
    z_hat = torch.zeros(z_shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta_model.decode_networks(y_hat, z_hat)
    flops = counter.get_total_flops()
    pixels = height * width
    return {"kflops_per_px": flops / pixels / 1e3, "kmacs_per_px": flops / 2 / pixels / 1e3}


def _median_ms(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def decode_ms(model, image: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds to decode one image's real bitstream (entropy decoding included)."""
    model.eval()
    data = model.compress(image)[0]
    return _median_ms(lambda: model.decompress(data), repeats, warmup)
