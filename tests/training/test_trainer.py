"""Training: the loss goes down, and a resumed run is bit-for-bit the uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jobs.crops import RandomCrops
from jobs.data import Image
from jobs.settings import TrainSettings
from jobs.train import Trainer, TrainingDiverged, load_checkpoint
from models import build
from rdc.errors import UserError

TINY = {"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}}


@pytest.fixture(scope="module")
def images() -> list[Image]:
    from jobs.data import load_images

    return load_images(None, split="train", key="data.train_dir")


def make_trainer(images, **overrides) -> Trainer:
    torch.manual_seed(0)
    settings = TrainSettings(**{"steps": 40, "batch_size": 2, "crop": 64, "lr": 1e-3, **overrides})
    return Trainer(build(TINY), settings, RandomCrops(images, settings.crop, settings.batch_size, settings.seed))


def test_loss_goes_down(images):
    trainer = make_trainer(images)
    losses = [trainer.train_step()["train/loss"] for _ in range(40)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


def test_resumed_training_equals_uninterrupted(images, tmp_path):
    straight = make_trainer(images)
    for _ in range(6):
        last_straight = straight.train_step()

    first = make_trainer(images)
    for _ in range(3):
        first.train_step()
    first.save(tmp_path / "trainer.pt")

    resumed = make_trainer(images)
    resumed.load_state_dict(load_checkpoint(tmp_path / "trainer.pt"))
    assert resumed.step == 3
    for _ in range(3):
        last_resumed = resumed.train_step()

    assert last_resumed == last_straight
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_crops_are_a_function_of_seed_and_step(images):
    crops = RandomCrops(images, 32, 3, seed=7)
    assert torch.equal(crops.batch(5), RandomCrops(images, 32, 3, seed=7).batch(5))
    assert not torch.equal(crops.batch(5), crops.batch(6))


def test_crop_larger_than_every_image_is_refused(images):
    with pytest.raises(UserError, match="train.crop"):
        RandomCrops(images, 100_000, 2, seed=0)


def test_nan_loss_stops_training(images):
    trainer = make_trainer(images)
    with torch.no_grad():
        for p in trainer.model.g_s.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 0"):
        trainer.train_step()


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(corrupt)


def test_a_trial_after_another_in_the_same_process_trains_the_same_weights(images):
    """Ray reuses a worker process for trial after trial (reuse_actors): what one trial leaves
    behind (a FLOP count, held-out points, a real-bitstream evaluation, another seed and width)
    must not change the next. A trains, B runs everything a trial runs, A trains again: bit for bit."""
    from jobs.evaluate import evaluate
    from jobs.heldout import HeldOutSet
    from jobs.profile import decode_flops

    held_out = HeldOutSet.from_images(images[:1], 64)

    def trial(spec: dict, seed: int) -> dict:
        torch.manual_seed(seed)
        model = build(spec)
        decode_flops(model)
        settings = TrainSettings(steps=8, batch_size=2, crop=64, lr=1e-3, eval_every=4, seed=seed, warmup_steps=2)
        trainer = Trainer(model, settings, RandomCrops(images, settings.crop, settings.batch_size, seed))
        while trainer.step < settings.steps:
            trainer.train_step()
            if trainer.eval_due():
                trainer.evaluate_held_out(held_out)
        evaluate(model, images[:1], settings.lmbda)
        return {name: value.clone() for name, value in model.state_dict().items()}

    first = trial(TINY, 0)
    trial({**TINY, "M": 24, "transform": {"type": "conv", "N": 12}}, 1)
    again = trial(TINY, 0)
    assert first.keys() == again.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), name
