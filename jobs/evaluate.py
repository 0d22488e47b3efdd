"""Evaluation with real bitstreams: compress every image with compressai's rANS coder, decode
it back, and measure what a user would get.

Per image: bpp from the packed bitstream's bytes (every stream and the header), bpp_est from
the model's likelihoods, MSE and PSNR on the 8-bit RGB reconstruction. Averages are per image,
as compressai reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from jobs.data import Image
from jobs.loss import likelihood_bits, rd_loss
from rdc import names


@dataclass
class ImageResult:
    name: str
    height: int
    width: int
    num_bytes: int
    bpp: float
    bpp_est: float
    mse: float
    psnr: float


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round()


@torch.no_grad()
def evaluate_image(model, image: Image) -> ImageResult:
    x = image.tensor()
    num_pixels = image.num_pixels
    data = model.compress(x)[0]
    x_hat = model.decompress(data)["x_hat"]
    err = (to_8bit(x_hat) - to_8bit(x)).pow(2).mean().item()  # on the 0..255 scale
    likelihoods = model(x)["likelihoods"]
    return ImageResult(
        name=image.name,
        height=x.shape[2],
        width=x.shape[3],
        num_bytes=len(data),
        bpp=len(data) * 8 / num_pixels,
        bpp_est=float(likelihood_bits(likelihoods)) / num_pixels,
        mse=err / 255.0**2,
        psnr=10 * math.log10(255.0**2 / err) if err > 0 else float("inf"),
    )


def evaluate(model, images: list[Image], lmbda: float) -> tuple[dict[str, float], list[ImageResult]]:
    """Summary metrics (names from rdc.names) and the per-image results."""
    model.eval()
    model.update(force=True)
    per_image = [evaluate_image(model, im) for im in images]
    n = len(per_image)
    mean = lambda field: sum(getattr(r, field) for r in per_image) / n  # noqa: E731
    summary = {
        names.BPP: mean("bpp"),
        names.BPP_EST: mean("bpp_est"),
        names.MSE: mean("mse"),
        names.PSNR: mean("psnr"),
    }
    summary[names.RD_LOSS] = rd_loss(summary[names.MSE], summary[names.BPP], lmbda)
    return summary, per_image
