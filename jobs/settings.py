"""Training settings: the schema of conf/train/*.yaml (plain types, no torch import).

Every key that changes the trained weights is part of the training config's identity
(sweep.tracking.train_config_id says which are not), so changing one starts a new incremental
sweep rather than mixing old runs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional


@dataclass
class TrainSettings:
    steps: int = 300
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-4
    aux_lr: float = 1e-3
    lmbda: float = 0.0125  # the study's lambda (about 0.46 bpp on Kodak after full training)
    clip_grad: float = 1.0
    lr_drop_at: float = 0.8  # fraction of `steps` after which the learning rate drops x0.1
    warmup_steps: int = 0  # the learning rate ramps up linearly over the first warmup_steps
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    eval_every: int = 50  # held-out curve (jobs.heldout) every eval_every steps and at the end; 0: none
    eval_crop: int = 256  # side of the fixed centre crop of each evaluation image in that curve; 0: whole
    # The sweep's axes (sweep.trials): one trial per seed and per lambda, each training with
    # `seed`/`lmbda` set to its own; null: the one `seed`, the one `lmbda`.
    seeds: Optional[List[int]] = None
    lmbdas: Optional[List[float]] = None
