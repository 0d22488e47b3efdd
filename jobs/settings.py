"""Training settings: the schema of conf/train/*.yaml (plain types, no torch import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainSettings:
    steps: int = 300
    batch_size: int = 4
    crop: int = 128
    lr: float = 1e-4
    aux_lr: float = 1e-3
    lmbda: float = 0.0125  # the study's lambda (about 0.46 bpp on Kodak after full training)
    clip_grad: float = 1.0
    lr_drop_at: float = 0.9  # fraction of `steps` after which the learning rate drops x0.1
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
