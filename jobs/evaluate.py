"""Evaluation with real bitstreams: compress every image with compressai's rANS coder, decode it
back from the bytes alone, and measure what a user would get.

Per image: bpp from the bitstream's bytes (every stream and the header; `header_bytes` says how
many of them are header), bpp_est from the model's likelihoods, and on the 8-bit RGB
reconstruction MSE, PSNR and MS-SSIM (linear and in dB). Images of any size: the codec pads to
its multiple and crops back; bpp divides by the true pixel count. Summary metrics are averages
over images (compressai's convention), so every image weighs the same whatever its size.
MS-SSIM needs both sides > 160 px (five scales of an 11-tap window); smaller images get NaN in
the table and the summary omits MS-SSIM unless every image has it.

Coding diagnostics (where the estimate and the bytes part ways), per image and averaged:
- escape_share: the share of latent symbols (y and z) outside the coder's CDF tables, coded by
  its escape path (a sentinel, then the raw value in 4-bit chunks);
- bpp_stream_<name>: bits per pixel of each stream (z, y, or ELIC's y<k>_anchor/y<k>_rest),
  from its bytes;
- bpp_over_est: bpp / bpp_est (of the averages);
- bpp_table: what the coder spends by its own tables (the same scale table, CDF precision and
  escape code as the bytes), header and rANS flushes excluded. bytes - bpp_table is fixed cost
  (header, about 4 bytes of flush per stream); bpp_table - bpp_est is the price of coding with
  tables: scales rounded up to the 64-level scale table, 16-bit CDFs, and escapes, which the
  likelihood charges at its 1e-9 floor (about 30 bits) while the coder charges 2-4 x 4 bits
  plus the sentinel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from jobs.data import Image
from jobs.device import full_fp32
from jobs.loss import likelihood_bits, rd_loss
from models import bitstream
from rdc import names

MS_SSIM_MIN_SIDE = 161  # pytorch_msssim: smaller side > (win_size - 1) * 2^4 = 160


@dataclass
class ImageResult:
    name: str
    height: int
    width: int
    num_bytes: int  # the whole bitstream
    header_bytes: int  # of which the header (size and stream lengths)
    bpp: float
    bpp_est: float
    mse: float  # on [0, 1] values of the 8-bit images
    psnr: float
    ms_ssim: float
    ms_ssim_db: float
    escape_share: float  # latent symbols (y and z) coded by the escape path
    bpp_table: float  # the coder's bits by its own tables, header and flushes excluded
    stream_bpp: dict[str, float]  # bits per pixel of each stream, from its bytes


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats of shape (1, 3, H, W) -> the 0..255 integers a PNG of them would hold."""
    return x.clamp(0, 1).mul(255).round()


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, as saved and as measured."""
    return to_8bit(x)[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> tuple[float, float]:
    """(mse on [0, 1], PSNR in dB) of two uint8 images, in float64."""
    err = np.mean((original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2)
    value = 10 * math.log10(255.0**2 / err) if err > 0 else float("inf")
    return float(err / 255.0**2), value


def ms_ssim(original: np.ndarray, reconstruction: np.ndarray) -> tuple[float, float]:
    """(MS-SSIM linear, in dB) of two uint8 images; NaN when a side is too short for 5 scales."""
    if min(original.shape[:2]) < MS_SSIM_MIN_SIDE:
        return float("nan"), float("nan")
    from pytorch_msssim import ms_ssim as _ms_ssim

    def tensor(a):
        return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).double()

    value = float(_ms_ssim(tensor(original), tensor(reconstruction), data_range=255.0, size_average=True))
    db = -10 * math.log10(1 - value) if value < 1 else float("inf")
    return value, db


@torch.no_grad()
def evaluate_image(model, image: Image) -> tuple[ImageResult, np.ndarray]:
    """The image's result and its 8-bit reconstruction, decoded from the bytes alone."""
    device = next(model.parameters()).device
    x = image.tensor().to(device)
    data = model.compress(x)[0]
    height, width, streams = bitstream.unpack(data)
    x_hat = model.decompress(data)["x_hat"]
    reconstruction = to_uint8_image(x_hat)
    mse, psnr_db = psnr(image.pixels, reconstruction)
    ssim, ssim_db = ms_ssim(image.pixels, reconstruction)
    bits_est = float(likelihood_bits(model(x)["likelihoods"]))
    stats = model.latent.coding_stats(model.g_a(model.pad(x)))
    symbols = sum(st.symbols for st in stats.values())
    result = ImageResult(
        name=image.name,
        height=height,
        width=width,
        num_bytes=len(data),
        header_bytes=len(data) - sum(len(s) for s in streams),
        bpp=len(data) * 8 / image.num_pixels,
        bpp_est=bits_est / image.num_pixels,
        mse=mse,
        psnr=psnr_db,
        ms_ssim=ssim,
        ms_ssim_db=ssim_db,
        escape_share=sum(st.escaped for st in stats.values()) / symbols,
        bpp_table=sum(st.bits for st in stats.values()) / image.num_pixels,
        stream_bpp={name: len(s) * 8 / image.num_pixels for name, s in zip(model.latent.stream_names(), streams)},
    )
    return result, reconstruction


def summarise(per_image: list[ImageResult], lmbda: float) -> dict[str, float]:
    """Averages over images under rdc.names metric names, and the RD loss of the averages."""
    def mean(field: str) -> float:
        return float(np.mean([getattr(r, field) for r in per_image]))

    summary = {names.BPP: mean("bpp"), names.BPP_EST: mean("bpp_est"), names.MSE: mean("mse"), names.PSNR: mean("psnr")}
    if all(not math.isnan(r.ms_ssim) for r in per_image):
        summary[names.MS_SSIM] = mean("ms_ssim")
        summary[names.MS_SSIM_DB] = mean("ms_ssim_db")
    summary[names.RD_LOSS] = rd_loss(summary[names.MSE], summary[names.BPP], lmbda)
    summary[names.ESCAPE_SHARE] = mean("escape_share")
    summary[names.BPP_TABLE] = mean("bpp_table")
    summary[names.BPP_OVER_EST] = summary[names.BPP] / summary[names.BPP_EST]
    for stream in per_image[0].stream_bpp:
        summary[names.bpp_stream(stream)] = float(np.mean([r.stream_bpp[stream] for r in per_image]))
    return summary


@dataclass
class Evaluation:
    summary: dict[str, float]  # rdc.names metric -> average over images
    per_image: list[ImageResult]
    reconstructions: list[np.ndarray] | None = None  # (H, W, 3) uint8, when kept

    def table(self):
        """One row per image (a CSV artifact of the run)."""
        import pandas as pd

        rows = []
        for r in self.per_image:
            row = asdict(r)
            row.update({names.bpp_stream(k): v for k, v in row.pop("stream_bpp").items()})
            rows.append(row)
        return pd.DataFrame(rows)


def evaluate(model, images: list[Image], lmbda: float, *, keep_reconstructions: bool = False) -> Evaluation:
    """`model` on `images`: summary metrics, per-image results and (if asked) reconstructions.

    Builds the entropy coder's tables first (`update(force=True)`), as compress() needs them.
    """
    if not images:
        raise ValueError("no images to evaluate")
    model.eval()
    model.update(force=True)
    per_image, reconstructions = [], []
    with full_fp32():  # the same float math as the runtime measurement (and on any GPU)
        for image in images:
            result, reconstruction = evaluate_image(model, image)
            per_image.append(result)
            if keep_reconstructions:
                reconstructions.append(reconstruction)
    return Evaluation(summarise(per_image, lmbda), per_image, reconstructions if keep_reconstructions else None)
