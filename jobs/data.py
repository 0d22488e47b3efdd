"""Images for training and evaluation: a folder of PNG/JPEG files, or the photographs that ship
inside the scikit-image wheel (so the demo needs nothing from the user).

Images are RGB uint8 arrays (H, W, 3). Grey images are repeated to three channels, alpha is
dropped and 16-bit images keep their top 8 bits, so any photograph a user points at works.
Files with other suffixes (checksums, READMEs) and hidden files are ignored; a file with an image
suffix that does not decode is refused with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def load_images(source: str | None, *, split: str, key: str) -> list[Image]:
    """Images from `source`: a folder, or None/"builtin" for scikit-image's photographs.

    `split` picks the built-in train or eval photographs; `key` names the config key in errors.
    """
    if source in (None, "", BUILTIN):
        return _builtin(BUILTIN_TRAIN if split == "train" else BUILTIN_EVAL)
    return load_folder(Path(source), key=key)


def image_files(folder: Path, *, key: str) -> list[Path]:
    """The image files of `folder` (sorted by file name), or the one image file `folder` names."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        if folder.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(key, str(folder), reason="not an image file", allowed=ALLOWED)
        return [folder]
    if not folder.is_dir():
        raise UserError(key, str(folder), reason="no such folder", allowed=ALLOWED)
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise UserError(key, str(folder), reason="no images in this folder", allowed=ALLOWED)
    return files


def load_folder(folder: Path, *, key: str) -> list[Image]:
    """Every image of `folder` (sorted by file name), or the one image `folder` names, decoded."""
    files = image_files(folder, key=key)
    stems = [p.stem for p in files]
    images = []
    for path in files:
        image = read_image(path, key=key)
        if stems.count(path.stem) > 1:  # a.png and a.jpg: keep names (and reconstruction files) apart
            image = Image(path.name, image.pixels)
        images.append(image)
    return images


class UnsupportedPixels(ValueError):
    """A readable file whose pixels have no meaning as 8-bit RGB."""


def read_image(path: Path, *, key: str) -> Image:
    try:
        with PILImage.open(path) as img:
            img.load()
            pixels = _pixels(img)
    except UnsupportedPixels as err:
        raise UserError(key, str(path), reason=str(err), allowed=ALLOWED) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserError(key, str(path), reason=f"not a readable image ({type(err).__name__})", allowed=ALLOWED) from None
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
