"""The held-out curve: fixed crops, the final evaluation's conventions, deterministic, and
invisible to training; the smoothing rule and the learning-rate schedule, by known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jobs.crops import RandomCrops
from jobs.data import Image, load_images
from jobs.evaluate import evaluate
from jobs.heldout import HeldOutSet, centre_crop, eval_due, smoothed_rd_loss
from jobs.loss import rd_loss
from jobs.settings import TrainSettings
from jobs.train import Trainer
from models import build
from rdc import names

TINY = {"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}}


@pytest.fixture(scope="module")
def train_images() -> list[Image]:
    return load_images(None, split="train", key="data.train_dir")


def held_out_images() -> list[Image]:
    rng = np.random.default_rng(1)
    return [Image("wide", rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)),
            Image("small", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)),
            Image("square", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))]


def make_trainer(train_images, eval_at=(), **overrides) -> Trainer:
    torch.manual_seed(0)
    settings = TrainSettings(**{"steps": 6, "batch_size": 2, "crop": 32, "lr": 1e-3, "eval_every": 2, **overrides})
    return Trainer(build(TINY), settings, RandomCrops(train_images, settings.crop, settings.batch_size, settings.seed),
                   eval_at=eval_at)


def test_centre_crops_are_grouped_by_size_into_batches():
    images = held_out_images()
    assert torch.equal(centre_crop(images[0], 64), images[0].tensor()[0, :, 8:72, 28:92])
    held_out = HeldOutSet.from_images(images, 64)
    # wide and square give 64 x 64 crops (one batch), small stays whole (40 x 56)
    assert [tuple(b.shape) for b in held_out.batches] == [(1, 3, 40, 56), (2, 3, 64, 64)]
    assert held_out.names == ("small", "wide", "square") and held_out.num_images == 3
    assert [tuple(b.shape) for b in HeldOutSet.from_images(images[:1], 0).batches] == [(1, 3, 80, 120)]


def test_held_out_metrics_follow_the_final_evaluation():
    torch.manual_seed(0)
    model = build(TINY)
    images = held_out_images()
    point = HeldOutSet.from_images(images, 0).evaluate(model, 0.0125)
    final = evaluate(model, images, 0.0125).summary
    # the likelihood estimate is the final evaluation's bpp_est; the reconstruction is the bitstream's
    assert point[names.EVAL_BPP] == pytest.approx(final[names.BPP_EST], rel=1e-4)
    assert point[names.EVAL_PSNR] == pytest.approx(final[names.PSNR], abs=0.05)
    assert point[names.EVAL_RD_LOSS] == pytest.approx(rd_loss(final[names.MSE], point[names.EVAL_BPP], 0.0125), rel=1e-3)


def test_held_out_evaluation_is_deterministic_and_invisible_to_training(train_images):
    held_out = HeldOutSet.from_images(held_out_images(), 48)
    plain, curved = make_trainer(train_images), make_trainer(train_images)
    points = []
    while plain.step < 6:
        plain.train_step()
        curved.train_step()
        if curved.eval_due():
            points.append(curved.evaluate_held_out(held_out))
            assert curved.model.training  # its mode is given back
            assert curved.evaluate_held_out(held_out) == points[-1]  # the same weights, the same point
    assert len(points) == 3
    assert all(set(p) == set(names.EVAL_CURVE) and all(math.isfinite(v) for v in p.values()) for p in points)
    for (name, a), (_, b) in zip(plain.model.state_dict().items(), curved.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_eval_is_due_every_eval_every_steps_and_at_the_end():
    assert [s for s in range(1, 11) if eval_due(s, 4, 10)] == [4, 8, 10]
    assert not any(eval_due(s, 0, 10) for s in range(1, 11))
    assert [s for s in range(1, 11) if eval_due(s, 4, 10, also={3, 8})] == [3, 4, 8, 10]  # a scheduler's rungs
    assert not any(eval_due(s, 0, 10, also={3}) for s in range(1, 11))


def test_a_trainer_takes_held_out_points_at_the_rungs_it_is_given_too(train_images):
    held_out = HeldOutSet.from_images(held_out_images(), 48)
    plain, rungs = make_trainer(train_images, eval_every=4), make_trainer(train_images, eval_at=[1, 3], eval_every=4)
    for trainer in (plain, rungs):
        while trainer.step < 6:
            trainer.train_step()
            if trainer.eval_due():
                trainer.evaluate_held_out(held_out)
    assert [s for s, _ in plain.curve] == [4, 6] and [s for s, _ in rungs.curve] == [1, 3, 4, 6]
    assert dict(rungs.curve)[4] == dict(plain.curve)[4]  # the extra points train nothing
    assert rungs.rd_loss_smoothed() == plain.rd_loss_smoothed()  # nor move the smoothed final figure


def test_smoothing_is_the_mean_of_the_last_points():
    assert smoothed_rd_loss([5.0, 4.0, 3.0, 2.0, 1.0]) == 2.0
    assert smoothed_rd_loss([5.0, 4.0, 3.0, 2.0, 1.0], window=2) == 1.5
    assert smoothed_rd_loss([3.0, 1.0]) == 2.0  # a shorter curve: all of it
    assert math.isnan(smoothed_rd_loss([]))
    with pytest.raises(ValueError):
        smoothed_rd_loss([1.0], window=0)


def test_learning_rate_warms_up_then_drops_late(train_images):
    trainer = make_trainer(train_images, steps=100, lr=1e-3, warmup_steps=4, lr_drop_at=0.8)
    rates = [trainer.learning_rate(step) for step in range(100)]
    assert rates[:5] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert rates[79] == pytest.approx(1e-3) and rates[80] == pytest.approx(1e-4) and rates[99] == pytest.approx(1e-4)


def test_the_curve_resumes_with_its_checkpoint_and_smooths_the_same(train_images, tmp_path):
    from jobs.train import load_checkpoint

    held_out = HeldOutSet.from_images(held_out_images(), 48)
    straight = make_trainer(train_images)
    while straight.step < 6:
        straight.train_step()
        if straight.eval_due():
            straight.evaluate_held_out(held_out)

    first = make_trainer(train_images)
    while first.step < 4:
        first.train_step()
        if first.eval_due():
            first.evaluate_held_out(held_out)
    first.save(tmp_path / "trainer.pt")
    resumed = make_trainer(train_images)
    resumed.load_state_dict(load_checkpoint(tmp_path / "trainer.pt"))
    while resumed.step < 6:
        resumed.train_step()
        if resumed.eval_due():
            resumed.evaluate_held_out(held_out)

    assert [s for s, _ in straight.curve] == [2, 4, 6]
    assert resumed.curve == straight.curve
    assert resumed.rd_loss_smoothed() == straight.rd_loss_smoothed() == pytest.approx(
        sum(v for _, v in straight.curve) / 3)
