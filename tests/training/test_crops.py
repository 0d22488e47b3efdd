"""Training crops: decoded on demand from a folder, the same batches as from memory, bounded
memory, and worker processes that prepare the same batches ahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from jobs.crops import RandomCrops, TrainingSet
from jobs.data import load_folder
from jobs.settings import TrainSettings
from jobs.train import Trainer
from models import build
from rdc.errors import UserError

TINY = {"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six real photographs of different sizes, written as PNG and JPEG files."""
    from jobs.data import load_images

    root = tmp_path_factory.mktemp("train")
    for i, image in enumerate(load_images(None, split="train", key="x")):
        pixels = image.pixels[: 300 + 20 * i, : 280 + 30 * i]
        PILImage.fromarray(pixels).save(root / f"{i:02d}-{image.name}.{'png' if i % 2 else 'jpg'}", quality=95)
    (root / "README.txt").write_text("not an image: ignored")
    return root


def test_lazy_folder_gives_the_batches_of_the_decoded_images(folder):
    lazy = RandomCrops(TrainingSet.scan(str(folder), cache_size=2), 96, 4, seed=3)
    eager = RandomCrops(load_folder(folder, key="data.train_dir"), 96, 4, seed=3)
    for step in (0, 1, 7, 1000):
        assert torch.equal(lazy.batch(step), eager.batch(step))


def test_at_most_cache_size_images_stay_decoded(folder):
    images = TrainingSet.scan(str(folder), cache_size=2)
    assert len(images) == 6 and all(entry.pixels is None for entry in images.images)
    crops = RandomCrops(images, 64, 8, seed=0)
    for step in range(10):
        crops.batch(step)
    assert 1 <= len(images._cache) <= 2


def test_worker_processes_prepare_the_same_batches_in_order(folder):
    crops = RandomCrops(TrainingSet.scan(str(folder)), 64, 3, seed=5, workers=2)
    streamed = list(crops.stream(4, 12))
    assert len(streamed) == 8
    for offset, batch in enumerate(streamed):
        assert torch.equal(batch, crops.batch(4 + offset))


def test_prefetching_trainer_resumes_exactly(folder, tmp_path):
    def trainer():
        torch.manual_seed(0)
        settings = TrainSettings(steps=8, batch_size=2, crop=64, lr=1e-3)
        return Trainer(build(TINY), settings, RandomCrops(TrainingSet.scan(str(folder)), 64, 2, 0, workers=1))

    straight = trainer()
    for _ in range(6):
        last_straight = straight.train_step()
    first = trainer()
    for _ in range(3):
        first.train_step()
    first.save(tmp_path / "t.pt")
    resumed = trainer()
    resumed.load_state_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    for _ in range(3):
        last_resumed = resumed.train_step()
    assert last_resumed == last_straight


def test_a_file_that_is_not_an_image_is_named(folder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    PILImage.fromarray(np.zeros((200, 200, 3), np.uint8)).save(bad / "ok.png")
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="broken.png.*not a readable image"):
        TrainingSet.scan(str(bad))


def test_images_smaller_than_the_crop_are_refused_with_the_largest_allowed(folder):
    with pytest.raises(UserError, match=r"train.crop=5000: larger than every training image: allowed: at most \d+"):
        RandomCrops(TrainingSet.scan(str(folder)), 5000, 2, seed=0)


def _photo_bytes(fmt: str) -> bytes:
    import io

    import skimage.data

    out = io.BytesIO()
    PILImage.fromarray(skimage.data.coffee()[:200, :200]).save(out, fmt, quality=90)
    return out.getvalue()


def test_a_truncated_png_is_refused_when_the_sweep_checks_the_folder(tmp_path):
    data = _photo_bytes("PNG")
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    TrainingSet.scan(str(tmp_path))  # the header alone is intact: a trial's quick scan passes
    with pytest.raises(UserError, match=r"data.train_dir='.*cut.png': not a readable image"):
        TrainingSet.scan(str(tmp_path), verify=True)


def test_a_jpeg_damaged_past_its_header_fails_when_decoded_naming_the_file(tmp_path):
    data = _photo_bytes("JPEG")
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    crops = RandomCrops(TrainingSet.scan(str(tmp_path), verify=True), 64, 2, seed=0)
    with pytest.raises(UserError, match=r"data.train_dir='.*cut.jpg': not a readable image"):
        crops.batch(0)


def test_the_prefetching_workers_end_with_the_last_step(folder):
    settings = TrainSettings(steps=3, batch_size=2, crop=64, lr=1e-3)
    trainer = Trainer(build(TINY), settings, RandomCrops(TrainingSet.scan(str(folder)), 64, 2, 0, workers=1))
    trainer.train_step()
    assert trainer._batches is not None
    trainer.train_step()
    trainer.train_step()
    assert trainer._batches is None  # workers released before the trial measures its runtimes
