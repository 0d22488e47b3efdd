"""The rate-distortion objective of the study: lambda * 255^2 * MSE + bpp, images in [0, 1].

This equals the Google convention bpp + lambda * MSE on 0..255; lambda = 0.0125 is the study's.
"""

from __future__ import annotations

import math

import torch

DISTORTION_SCALE = 255.0**2


def rd_loss(mse: float | torch.Tensor, bpp: float | torch.Tensor, lmbda: float):
    return lmbda * DISTORTION_SCALE * mse + bpp


def likelihood_bits(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """Total bits the likelihoods promise (sum of -log2 over every latent element)."""
    return sum(torch.log(lik).sum() for lik in likelihoods.values()) / -math.log(2)
