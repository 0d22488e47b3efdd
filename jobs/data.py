"""Images for training and evaluation: a folder of PNG/JPEG files, or the photographs that ship
inside the scikit-image wheel (so the demo needs nothing from the user).

Images are RGB uint8 arrays (H, W, 3). Grey images are repeated to three channels, alpha is
dropped and 16-bit images keep their top 8 bits, so any photograph a user points at works.
Files with other suffixes (checksums, READMEs) and hidden files are ignored; a file with an image
suffix that does not decode is refused with one line naming it, and so is one that is a symbolic
link loop, a dangling link or unreadable. An image's size is read from its header and checked
against a pixel limit (`max_pixels`) before a byte of it is decoded: a 40-byte PNG may claim
40000x40000 pixels (4.8 GB once decoded).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image as PILImage, UnidentifiedImageError

from rdc.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
ALLOWED = "a folder of PNG/JPEG (or BMP, PPM, TIFF, WebP) images"

# Real photographs inside scikit-image (no download). The two stereo halves of the motorcycle
# scene would leak into each other, so only the left one is used.
BUILTIN_TRAIN = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "motorcycle_left")
BUILTIN_EVAL = ("coffee", "chelsea")
BUILTIN = "builtin"

# 2**26 = 67 megapixels: an 8K frame (33 MP) twice over, 200 MB decoded as RGB. Larger images are
# refused by their header; a caller with a reason for larger ones passes its own max_pixels.
DEFAULT_MAX_PIXELS = 1 << 26


@dataclass(frozen=True)
class Image:
    name: str
    pixels: np.ndarray  # (H, W, 3) uint8

    @property
    def num_pixels(self) -> int:
        return self.pixels.shape[0] * self.pixels.shape[1]

    def tensor(self) -> torch.Tensor:
        """(1, 3, H, W) float in [0, 1]."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1).unsqueeze(0).float().div(255.0)


def load_images(source: str | None, *, split: str, key: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image]:
    """Images from `source`: a folder, or None/"builtin" for scikit-image's photographs.

    `split` picks the built-in train or eval photographs; `key` names the config key in errors;
    an image with more than `max_pixels` pixels is refused from its header.
    """
    if source in (None, "", BUILTIN):
        return _builtin(BUILTIN_TRAIN if split == "train" else BUILTIN_EVAL)
    return load_folder(Path(source), key=key, max_pixels=max_pixels)


def image_files(folder: Path, *, key: str) -> list[Path]:
    """The image files of `folder` (sorted by file name), or the one image file `folder` names.

    An entry with an image suffix that cannot be read (a symbolic link loop, a dangling link, a
    file this user may not read) is refused by name rather than silently left out."""
    folder = Path(folder).expanduser()
    mode = _stat_mode(folder, key, what="folder")
    if mode is None:
        raise UserError(key, str(folder), reason="no such folder", allowed=ALLOWED)
    if stat.S_ISREG(mode):
        if folder.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(key, str(folder), reason="not an image file", allowed=ALLOWED)
        _check_readable(folder, key)
        return [folder]
    if not stat.S_ISDIR(mode):
        raise UserError(key, str(folder), reason="neither a folder nor an image file", allowed=ALLOWED)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise UserError(key, str(folder), reason=f"cannot list the folder ({err.strerror or err})", allowed=ALLOWED) from None
    files = []
    for entry in entries:
        if entry.name.startswith(".") or Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        path = folder / entry.name
        mode = _stat_mode(path, key, what="image")
        if mode is None:
            raise UserError(key, str(path), reason=f"a dangling symbolic link (to {os.readlink(path)})", allowed=ALLOWED)
        if stat.S_ISREG(mode):
            _check_readable(path, key)
            files.append(path)
    if not files:
        raise UserError(key, str(folder), reason="no images in this folder", allowed=ALLOWED)
    return files


def _stat_mode(path: Path, key: str, *, what: str) -> int | None:
    """The mode of what `path` leads to; None if nothing is there; UserError for a link loop."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UserError(key, str(path), reason=f"the {what} is a symbolic link loop", allowed=ALLOWED) from None
        raise UserError(key, str(path), reason=f"cannot reach the {what} ({err.strerror or err})", allowed=ALLOWED) from None


def _check_readable(path: Path, key: str) -> None:
    if not os.access(path, os.R_OK):
        raise UserError(key, str(path), reason="this user may not read the file (permission denied)", allowed=ALLOWED)


def load_folder(folder: Path, *, key: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image]:
    """Every image of `folder` (sorted by file name), or the one image `folder` names, decoded."""
    files = image_files(folder, key=key)
    stems = [p.stem for p in files]
    images = []
    for path in files:
        image = read_image(path, key=key, max_pixels=max_pixels)
        if stems.count(path.stem) > 1:  # a.png and a.jpg: keep names (and reconstruction files) apart
            image = Image(path.name, image.pixels)
        images.append(image)
    return images


class UnsupportedPixels(ValueError):
    """A readable file whose pixels have no meaning as 8-bit RGB."""


# PIL's own bomb check (a warning past 89 MP, an error past 179 MP, raised inside open() with no
# file name) is switched off while a header is read, so that ours, with the file, its size and
# the caller's limit, decides. It is a module global of PIL: the lock keeps other threads of this
# module from seeing it off; it is back on before any pixel is decoded.
_PIL_LIMIT = threading.Lock()


@contextlib.contextmanager
def open_image(path: Path, *, key: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator["PILImage.Image"]:
    """The PIL image of `path` with only its header read, once its size is within `max_pixels`."""
    with _PIL_LIMIT:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            img = PILImage.open(path)
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    with img:
        check_pixels(path, img.size, key=key, max_pixels=max_pixels)
        yield img


def check_pixels(path: Path, size: tuple[int, int], *, key: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    width, height = size
    if width * height > max_pixels:
        raise UserError(key, str(path), reason=f"its header says {width}x{height} = {width * height:,} pixels",
                        allowed=f"images of at most {max_pixels:,} pixels")


def unreadable_reason(err: Exception) -> str:
    """Why PIL could not read a file, in a few words (the OS's reason when there is one)."""
    if isinstance(err, OSError) and err.strerror:
        return f"cannot be read ({err.strerror})"
    return f"not a readable image ({type(err).__name__})"


def read_image(path: Path, *, key: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    try:
        with open_image(path, key=key, max_pixels=max_pixels) as img:
            img.load()
            pixels = _pixels(img)
    except UnsupportedPixels as err:
        raise UserError(key, str(path), reason=str(err), allowed=ALLOWED) from None
    except PILImage.DecompressionBombError as err:  # a frame larger than its header said (GIF, ICO)
        raise UserError(key, str(path), reason=" ".join(str(err).split()), allowed=f"images of at most {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(key, str(path), reason=unreadable_reason(err), allowed=ALLOWED) from None
    if min(pixels.shape[:2]) < 1:
        raise UserError(key, str(path), reason="the image has no pixels", allowed=ALLOWED)
    return Image(path.stem, pixels)


def _pixels(img) -> np.ndarray:
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grey (PIL opens some 16-bit files as 32-bit "I"): convert("RGB") would clip at
        # 255; keep the 8 most significant bits. An "I" image within 0..255 is 8-bit data as is.
        wide = np.asarray(img, dtype=np.int64)
        if img.mode == "I" and wide.min(initial=0) >= 0 and wide.max(initial=0) <= 255:
            return _to_rgb(wide.astype(np.uint8))
        if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
            raise UnsupportedPixels(f"{img.mode} pixels outside 0..65535")
        return _to_rgb((wide >> 8).astype(np.uint8))
    if img.mode == "F":
        raise UnsupportedPixels("floating-point pixels (mode F): their range is unknown")
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy: torch.from_numpy shares it


def _builtin(names: tuple[str, ...]) -> list[Image]:
    import skimage.data

    images = []
    for name in names:
        if name == "motorcycle_left":
            pixels = skimage.data.stereo_motorcycle()[0]
        else:
            pixels = getattr(skimage.data, name)()
        images.append(Image(name, _to_rgb(np.asarray(pixels))))
    return images


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3]).astype(np.uint8)
