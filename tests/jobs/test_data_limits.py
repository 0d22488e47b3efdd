"""jobs.data / jobs.crops: hostile image folders are refused by name before anything decodes.

Real files in tmp_path: a 70-byte PNG whose header claims 40000x40000 pixels, symbolic link
loops, dangling links, a FIFO with an image suffix (opening it would block forever)."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from jobs.crops import RandomCrops, TrainingSet
from jobs.data import DEFAULT_MAX_PIXELS, image_files, load_images, read_image
from rdc.errors import UserError

AS_ROOT = os.geteuid() == 0


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header for width x height RGB pixels, followed by a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def real_png(path: Path, height: int = 48, width: int = 64) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path)
    return path


@pytest.fixture
def bomb_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    real_png(folder / "a.png")
    (folder / "bomb.png").write_bytes(png_claiming(40000, 40000))
    return folder


def one_line(error: UserError) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def assert_bomb_refused(error: UserError, folder: Path) -> None:
    text = one_line(error)
    assert str(folder / "bomb.png") in text
    assert "40000x40000 = 1,600,000,000 pixels" in text
    assert f"at most {DEFAULT_MAX_PIXELS:,} pixels" in text
    assert "DecompressionBomb" not in text


def test_pixel_bomb_refused_by_read_image(bomb_folder: Path):
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        read_image(bomb_folder / "bomb.png", key="data.eval_dir")
    assert time.monotonic() - started < 1
    assert_bomb_refused(caught.value, bomb_folder)
    assert PILImage.MAX_IMAGE_PIXELS is not None  # PIL's own check is back on


def test_pixel_bomb_refused_by_load_images(bomb_folder: Path):
    with pytest.raises(UserError) as caught:
        load_images(str(bomb_folder), split="eval", key="data.eval_dir")
    assert caught.value.key == "data.eval_dir"
    assert_bomb_refused(caught.value, bomb_folder)


@pytest.mark.parametrize("verify", [False, True])
def test_pixel_bomb_refused_by_the_training_scan(bomb_folder: Path, verify: bool):
    with pytest.raises(UserError) as caught:
        TrainingSet.scan(str(bomb_folder), verify=verify)
    assert_bomb_refused(caught.value, bomb_folder)


def test_the_limit_is_the_callers(tmp_path: Path):
    image = real_png(tmp_path / "small.png", 48, 64)
    with pytest.raises(UserError) as caught:
        read_image(image, key="k", max_pixels=1000)
    assert "64x48 = 3,072 pixels" in one_line(caught.value) and "at most 1,000 pixels" in str(caught.value)
    assert read_image(image, key="k", max_pixels=3072).pixels.shape == (48, 64, 3)
    images = TrainingSet.scan(str(tmp_path), max_pixels=3072)
    assert images.max_pixels == 3072 and images.decoded(0).shape == (3, 48, 64)


def test_a_limit_above_pils_own_reads_the_header_without_pils_error(tmp_path: Path):
    # 200 MP is past PIL's DecompressionBombError threshold (179 MP): the caller's limit decides.
    (tmp_path / "wide.png").write_bytes(png_claiming(20000, 10000))
    scanned = TrainingSet.scan(str(tmp_path), max_pixels=10**9)
    assert (scanned.images[0].width, scanned.images[0].height) == (20000, 10000)


def test_training_crops_decode_with_the_same_limit(tmp_path: Path):
    real_png(tmp_path / "a.png", 96, 96)
    crops = RandomCrops(TrainingSet.scan(str(tmp_path), max_pixels=96 * 96), 32, 2, seed=0)
    assert crops.batch(0).shape == (2, 3, 32, 32)


def test_data_folder_that_is_a_symlink_loop(tmp_path: Path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(UserError) as caught:
        load_images(str(tmp_path / "loop"), split="train", key="data.train_dir")
    assert "symbolic link loop" in one_line(caught.value) and str(tmp_path / "loop") in str(caught.value)
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(UserError) as caught:
        TrainingSet.scan(str(tmp_path / "a" / "images"))  # a loop in a folder on the way
    assert "symbolic link loop" in one_line(caught.value)


def test_image_entry_that_is_a_symlink_loop_is_named(tmp_path: Path):
    real_png(tmp_path / "a.png")
    os.symlink(tmp_path / "b.png", tmp_path / "b.png")
    with pytest.raises(UserError) as caught:
        image_files(tmp_path, key="data.train_dir")
    assert str(tmp_path / "b.png") in one_line(caught.value) and "symbolic link loop" in str(caught.value)


def test_dangling_link_is_named_with_its_target(tmp_path: Path):
    real_png(tmp_path / "a.png")
    os.symlink(tmp_path / "moved" / "c.png", tmp_path / "c.png")
    with pytest.raises(UserError) as caught:
        load_images(str(tmp_path), split="eval", key="data.eval_dir")
    text = one_line(caught.value)
    assert str(tmp_path / "c.png") in text and "dangling symbolic link" in text and "moved" in text


def test_fifo_with_an_image_suffix_does_not_block(tmp_path: Path):
    real_png(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would wait for a writer forever
    (tmp_path / "folder.png").mkdir()
    started = time.monotonic()
    assert [p.name for p in image_files(tmp_path, key="k")] == ["a.png"]
    assert [im.name for im in load_images(str(tmp_path), split="eval", key="k")] == ["a"]
    assert time.monotonic() - started < 2


def test_links_to_real_images_still_work(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    real_png(store / "a.png")
    (tmp_path / "data").mkdir()
    os.symlink(store / "a.png", tmp_path / "data" / "a.png")
    os.symlink(store, tmp_path / "linked")
    assert [p.name for p in image_files(tmp_path / "data", key="k")] == ["a.png"]
    assert len(TrainingSet.scan(str(tmp_path / "linked"))) == 1


@pytest.mark.skipif(AS_ROOT, reason="root reads files whatever their mode: permissions cannot be tested as root")
def test_unreadable_image_is_named(tmp_path: Path):
    real_png(tmp_path / "a.png").chmod(0)
    with pytest.raises(UserError) as caught:
        image_files(tmp_path, key="data.train_dir")
    assert "permission denied" in one_line(caught.value) and "a.png" in str(caught.value)


@pytest.mark.skipif(AS_ROOT, reason="root lists folders whatever their mode: permissions cannot be tested as root")
def test_unlistable_folder_is_named(tmp_path: Path):
    folder = tmp_path / "closed"
    folder.mkdir()
    real_png(folder / "a.png")
    folder.chmod(0o300)
    try:
        with pytest.raises(UserError) as caught:
            image_files(folder, key="data.train_dir")
    finally:
        folder.chmod(0o700)
    assert "cannot list the folder" in one_line(caught.value)
