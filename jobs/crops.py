"""Training batches: random crops of the training images, a pure function of (seed, step).

A sweep may train on thousands of large photographs (CLIC, DIV2K), far more than fit in memory
once per trial. So the training set is scanned from file headers only; an image is decoded when
a crop needs it, and the most recently used few stay decoded. Worker processes can prepare the
next batches ahead (`data.workers`), still in step order: a run resumed at step k sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import UnidentifiedImageError

from jobs.data import (ALLOWED, BUILTIN, DEFAULT_MAX_PIXELS, Image, image_files, load_images, open_image,
                       read_image, unreadable_reason)
from rdc.errors import UserError

DEFAULT_CACHE = 16  # decoded images kept per process; 16 CLIC images are about 130 MB


@dataclass(frozen=True)
class TrainingImage:
    name: str
    height: int
    width: int
    path: Path | None = None  # decoded on demand ...
    pixels: np.ndarray | None = None  # ... or held in memory (the built-in photographs)


class TrainingSet:
    """The training images: sizes known up front, pixels decoded on demand (LRU cache)."""

    def __init__(self, images: Sequence[TrainingImage], *, cache_size: int = DEFAULT_CACHE, key: str = "data.train_dir",
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.images, self.cache_size, self.key = list(images), max(1, cache_size), key
        self.max_pixels = max_pixels
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    @classmethod
    def scan(cls, source: str | None, *, key: str = "data.train_dir", cache_size: int = DEFAULT_CACHE,
             verify: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> "TrainingSet":
        """The built-in photographs (None), or every image of a folder read from its header;
        `verify` also reads each file's structure (once, when a sweep starts: not in every trial).
        An image whose header claims more than `max_pixels` pixels is refused by name."""
        if source in (None, "", BUILTIN):
            return cls.from_images(load_images(None, split="train", key=key), key=key)
        entries = [_header(path, key, verify, max_pixels) for path in image_files(Path(source), key=key)]
        return cls(entries, cache_size=cache_size, key=key, max_pixels=max_pixels)

    @classmethod
    def from_images(cls, images: Sequence[Image], *, key: str = "data.train_dir") -> "TrainingSet":
        entries = [TrainingImage(im.name, im.pixels.shape[0], im.pixels.shape[1], pixels=im.pixels) for im in images]
        return cls(entries, cache_size=len(entries) or 1, key=key)

    def __len__(self) -> int:
        return len(self.images)

    def decoded(self, index: int) -> torch.Tensor:
        """(3, H, W) uint8 pixels of one image."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        entry = self.images[index]
        pixels = entry.pixels if entry.pixels is not None else read_image(entry.path, key=self.key, max_pixels=self.max_pixels).pixels
        if pixels.shape[:2] != (entry.height, entry.width):
            raise UserError(self.key, str(entry.path), reason="the image changed since the sweep started",
                            allowed="training images that stay as they are during a sweep")
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)
        self._cache[index] = tensor
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return tensor

    def __getstate__(self) -> dict:
        # Worker processes start with an empty cache of their own.
        return {**self.__dict__, "_cache": OrderedDict()}


def _header(path: Path, key: str, verify: bool, max_pixels: int) -> TrainingImage:
    try:
        with open_image(path, key=key, max_pixels=max_pixels) as img:
            width, height = img.size
            if verify:
                img.verify()  # the file's structure, without decoding: catches a truncated PNG
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(key, str(path), reason=unreadable_reason(err), allowed=ALLOWED) from None
    return TrainingImage(path.name, height, width, path=path)


class RandomCrops:
    """Batches of random crops (with random horizontal flips) of the images at least `crop` wide
    and high; `batch(step)` depends only on (seed, step)."""

    def __init__(self, images: TrainingSet | Sequence[Image], crop: int, batch_size: int, seed: int, *,
                 workers: int = 0, key: str = "data.train_dir"):
        self.images = images if isinstance(images, TrainingSet) else TrainingSet.from_images(images, key=key)
        self.usable = [i for i, im in enumerate(self.images.images) if min(im.height, im.width) >= crop]
        if not self.usable:
            largest = max((min(im.height, im.width) for im in self.images.images), default=0)
            raise UserError("train.crop", crop, reason="larger than every training image", allowed=f"at most {largest}")
        self.crop, self.batch_size, self.seed, self.workers = crop, batch_size, seed, workers

    def batch(self, step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, step])
        crops = []
        for _ in range(self.batch_size):
            index = self.usable[rng.integers(len(self.usable))]
            entry = self.images.images[index]
            top = rng.integers(entry.height - self.crop + 1)
            left = rng.integers(entry.width - self.crop + 1)
            flip = rng.random() < 0.5
            patch = self.images.decoded(index)[:, top : top + self.crop, left : left + self.crop]
            crops.append(patch.flip(-1) if flip else patch)
        return torch.stack(crops).float().div(255.0)

    def stream(self, start: int, stop: int) -> Iterator[torch.Tensor]:
        """The batches of steps start, start+1, ..., stop-1, in order; prepared ahead by
        `workers` processes when there are any."""
        if self.workers <= 0:
            return (self.batch(step) for step in range(start, stop))
        loader = torch.utils.data.DataLoader(
            _Steps(self, start, stop), batch_size=None, shuffle=False, num_workers=self.workers,
            prefetch_factor=4, persistent_workers=False,
            generator=torch.Generator().manual_seed(self.seed),  # never draws from the global generator
        )
        return iter(loader)


class _Steps(torch.utils.data.Dataset):
    """Step indices as a dataset, so a DataLoader's workers can build batches ahead in order."""

    def __init__(self, crops: RandomCrops, start: int, stop: int):
        self.crops, self.start, self.stop = crops, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.crops.batch(self.start + index)
