"""Training one variant: Adam on random crops, the EntropyBottleneck's auxiliary loss, gradient
clipping, a linear learning-rate warm-up, a x0.1 drop late in training, the held-out curve
(jobs.heldout) every eval_every steps, and checkpoints that resume bit-for-bit.

Everything random in a step (the crops, the quantisation noise) is seeded from (seed, step),
so a run resumed from a checkpoint at step k continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import torch

from jobs.crops import RandomCrops
from jobs.heldout import HeldOutSet, eval_due, smoothed_rd_loss
from jobs.loss import likelihood_bits, rd_loss
from jobs.settings import TrainSettings
from rdc import names
from rdc.errors import UserError


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the trial stops with this reason."""

    def __init__(self, step: int, value: float):
        self.step, self.value = step, value
        super().__init__(f"loss became {value} at step {step}")


def _is_aux(name: str) -> bool:
    return name.endswith(".quantiles")


class Trainer:
    def __init__(self, model: torch.nn.Module, settings: TrainSettings, crops: RandomCrops,
                 eval_at: Iterable[int] = ()):
        self.model, self.settings, self.crops = model, settings, crops
        # Held-out points at these steps too, besides every eval_every: a trial scheduler's rungs,
        # so it judges a trial at its rung instead of training it on to the next regular point.
        self.eval_at = frozenset(int(step) for step in eval_at)
        self.device = next(model.parameters()).device  # batches follow the model (CPU or its GPU)
        self._batches, self._batches_at = None, -1  # batches prepared ahead, and the step of the next
        self.main_params = [p for n, p in model.named_parameters() if not _is_aux(n)]
        self.aux_params = [p for n, p in model.named_parameters() if _is_aux(n)]
        self.optimizer = torch.optim.Adam(self.main_params, lr=settings.lr)
        self.aux_optimizer = torch.optim.Adam(self.aux_params, lr=settings.aux_lr)
        self.step = 0
        self.curve: list[tuple[int, float]] = []  # (step, eval/rd_loss) of the held-out curve so far

    def learning_rate(self, step: int) -> float:
        """The main optimiser's rate at (0-based) `step`: a pure function of the step, so a
        resumed run follows the same schedule."""
        s = self.settings
        scale = 0.1 if step >= math.ceil(s.lr_drop_at * s.steps) else 1.0
        if step < s.warmup_steps:
            scale *= (step + 1) / s.warmup_steps
        return s.lr * scale

    def eval_due(self) -> bool:
        """Whether the step just trained gets a point on the held-out curve."""
        return eval_due(self.step, self.settings.eval_every, self.settings.steps, self.eval_at)

    def evaluate_held_out(self, held_out: HeldOutSet) -> dict[str, float]:
        """eval/rd_loss, eval/bpp, eval/psnr of the model now, on the fixed held-out set; it
        leaves every random generator and the training itself untouched. The point joins
        `curve` (kept in checkpoints), which rd_loss_smoothed() reads."""
        point = held_out.evaluate(self.model, self.settings.lmbda)
        self.curve = [(s, v) for s, v in self.curve if s < self.step] + [(self.step, point[names.EVAL_RD_LOSS])]
        return point

    def rd_loss_smoothed(self) -> float:
        """names.RD_LOSS_SMOOTHED of the curve so far (jobs.heldout.smoothed_rd_loss), over its
        regular points only: a scheduler's rung points would pull early losses into it when
        eval_every is long, and the same weights must smooth the same under any scheduler."""
        s = self.settings
        return smoothed_rd_loss([value for step, value in self.curve if eval_due(step, s.eval_every, s.steps)])

    def train_step(self) -> dict[str, float]:
        s = self.settings
        self.model.train()
        x = self._next_batch().to(self.device)
        # Quantisation noise, seeded per step, after the batch: starting a prefetching stream
        # draws from torch's global generator, and must not shift the noise of a resumed run.
        torch.manual_seed(s.seed * 1_000_003 + self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)

        self.optimizer.zero_grad(set_to_none=True)
        out = self.model(x)
        num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
        bpp = likelihood_bits(out["likelihoods"]) / num_pixels
        mse = torch.mean((out["x_hat"] - x) ** 2)
        loss = rd_loss(mse, bpp, s.lmbda)
        if not torch.isfinite(loss):
            raise TrainingDiverged(self.step, float(loss.detach()))
        loss.backward()
        if s.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.main_params, s.clip_grad)
        self.optimizer.step()

        self.aux_optimizer.zero_grad(set_to_none=True)
        aux_loss = self.model.aux_loss()
        aux_loss.backward()
        self.aux_optimizer.step()
        # No gradient outlives its step: a run resumed from a checkpoint (which holds none)
        # must continue exactly as the uninterrupted one.
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)

        self.step += 1
        return {
            names.TRAIN_LOSS: loss.item(),
            names.TRAIN_BPP: bpp.item(),
            names.TRAIN_MSE: mse.item(),
            names.TRAIN_AUX_LOSS: aux_loss.item(),
        }

    def _next_batch(self) -> torch.Tensor:
        """The batch of the current step: from the prefetching stream while it is in step (a
        restored checkpoint moves the step, so the stream restarts there), else computed here."""
        if self.crops.workers <= 0 or self.step >= self.settings.steps:
            return self.crops.batch(self.step)
        if self._batches is None or self._batches_at != self.step:
            self._batches, self._batches_at = self.crops.stream(self.step, self.settings.steps), self.step
        self._batches_at += 1
        batch = next(self._batches)
        if self._batches_at >= self.settings.steps:
            self._batches = None  # the last batch: let the worker processes go before measuring
        return batch

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "settings": asdict(self.settings),
            "curve": [[step, value] for step, value in self.curve],
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        self.step = int(state["step"])
        # .get: checkpoints from before the held-out curve existed resume with an empty one
        self.curve = [(int(step), float(value)) for step, value in state.get("curve", [])]

    def save(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: Path, *, key: str = "checkpoint") -> dict:
    """A checkpoint's state, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise UserError(key, str(path), reason="no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise UserError(key, str(path), reason=f"not a readable checkpoint ({type(err).__name__})") from None
