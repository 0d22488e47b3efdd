"""The held-out learning curve: a fixed set of crops of the evaluation images, evaluated during
training with the likelihood estimate (no entropy coding), and the rule that smooths its end.

The set is the centre crop (train.eval_crop square, or the whole image where it is smaller) of
every evaluation image, built once per trial; it never changes with the step, the seed or the
device, so two variants' curves compare at equal steps. Evaluation runs in eval mode (latents
rounded, not noised), under no_grad and full FP32, and draws no random numbers: a curve point is
a pure function of the weights, and evaluating never changes what training does next.

Metrics follow the final evaluation's conventions (jobs.evaluate): bpp and MSE are averaged over
images, MSE is measured on the 8-bit reconstruction, and eval/rd_loss is the RD loss of the
averages. Only bpp differs: it is the likelihoods' estimate, not a bitstream's bytes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Collection, Sequence

import torch

from jobs.data import Image
from jobs.device import full_fp32
from jobs.loss import rd_loss
from rdc import names

# rd_loss_smoothed: the mean of eval/rd_loss over the last SMOOTHING_WINDOW points of the curve.
SMOOTHING_WINDOW = 3


def centre_crop(image: Image, side: int) -> torch.Tensor:
    """(3, h, w) float in [0, 1]: the centre side x side crop of `image` (whole where smaller; 0: whole)."""
    x = image.tensor()[0]
    height, width = x.shape[-2:]
    h, w = (height, width) if side <= 0 else (min(side, height), min(side, width))
    top, left = (height - h) // 2, (width - w) // 2
    return x[:, top : top + h, left : left + w]


@dataclass(frozen=True)
class HeldOutSet:
    """The fixed crops, stacked into one batch per crop size (crops of one size share a batch)."""

    batches: tuple[torch.Tensor, ...]
    names: tuple[str, ...]  # image names, in batch order

    @classmethod
    def from_images(cls, images: Sequence[Image], crop: int) -> "HeldOutSet":
        if not images:
            raise ValueError("no held-out images")
        by_shape: dict[tuple[int, int], list[tuple[str, torch.Tensor]]] = defaultdict(list)
        for image in images:
            x = centre_crop(image, crop)
            by_shape[tuple(x.shape[-2:])].append((image.name, x))
        groups = [by_shape[shape] for shape in sorted(by_shape)]
        batches = tuple(torch.stack([x for _, x in group]) for group in groups)
        return cls(batches, tuple(name for group in groups for name, _ in group))

    @property
    def num_images(self) -> int:
        return len(self.names)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, lmbda: float) -> dict[str, float]:
        """eval/rd_loss, eval/bpp (likelihood estimate) and eval/psnr of `model` on the set;
        the model's train/eval mode is restored afterwards."""
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        bpp, mse = [], []
        try:
            with full_fp32():
                for batch in self.batches:
                    x = batch.to(device)
                    out = model(x)
                    pixels = x.shape[-2] * x.shape[-1]
                    bits = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / -math.log(2)
                    bpp.extend((bits / pixels).tolist())
                    # On the 8-bit reconstruction, as the final evaluation measures it.
                    x_hat = out["x_hat"].clamp(0, 1).mul(255).round().div(255)
                    mse.extend(((x_hat.double() - x.double()) ** 2).flatten(1).mean(1).tolist())
        finally:
            model.train(was_training)
        mean_bpp, mean_mse = sum(bpp) / len(bpp), sum(mse) / len(mse)
        mean_psnr = sum(10 * math.log10(1 / m) if m > 0 else float("inf") for m in mse) / len(mse)
        return {
            names.EVAL_RD_LOSS: float(rd_loss(mean_mse, mean_bpp, lmbda)),
            names.EVAL_BPP: mean_bpp,
            names.EVAL_PSNR: mean_psnr,
        }


def eval_due(step: int, eval_every: int, steps: int, also: Collection[int] = ()) -> bool:
    """Whether the curve has a point after training step `step` (1-based): every eval_every steps,
    at the steps in `also` (a trial scheduler's rungs) and at the last step; never when
    eval_every is 0."""
    return eval_every > 0 and (step % eval_every == 0 or step == steps or step in also)


def smoothed_rd_loss(curve: Sequence[float], window: int = SMOOTHING_WINDOW) -> float:
    """rd_loss_smoothed: the mean of the last `window` held-out RD losses (all of them when the
    curve is shorter); NaN for an empty curve. `curve` is eval/rd_loss in step order.

    A mean of the last few points, not an EMA: it has no state to resume and no decay constant
    tied to eval_every, and with the learning rate dropped late the last points sit on the
    plateau, so their mean is the plateau's level with less noise than its last point."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    tail = list(curve)[-window:]
    return float(sum(tail) / len(tail)) if tail else float("nan")

