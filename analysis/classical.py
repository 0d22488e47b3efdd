"""JPEG, WebP and AVIF RD curves computed here with Pillow, on the runs' own evaluation images.

Published anchor curves were measured on someone else's copy of the images with someone else's
encoder build; these are measured on the images a user points at (e.g. Kodak), the way the
runs are evaluated: per image, bpp = file bytes * 8 / (H * W) and RGB PSNR on the 8-bit decoded
image (MSE over all three channels), then averaged over images per quality setting.

Settings (part of each curve's name): JPEG 4:2:0 (libjpeg's usual setting and tensorflow_
compression's jpeg420 anchor), WebP lossy (always 4:2:0 in libwebp), AVIF 4:4:4 at encoder
speed 6 (the study's anchors BPG and VTM are 4:4:4).
"""

from __future__ import annotations

import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.curves import RDCurve
from rdc.errors import UserError

IMAGES_KEY = "--images"
CODECS_KEY = "--codecs"
PILLOW_SOURCE = "pillow:"  # RDCurve.source of these curves: "pillow:<codec>"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class PillowCodec:
    key: str  # what --codecs names
    label: str
    pillow_format: str
    feature: str  # PIL.features name that says this Pillow can encode it
    library: tuple[str, str]  # (PIL.features name, display name) of the encoder library, for the curve's name
    qualities: tuple[int, ...]
    options: dict = field(default_factory=dict)

    def available(self) -> bool:
        from PIL import features

        return bool(features.check(self.feature))

    def name(self) -> str:
        """e.g. "JPEG 4:2:0 (Pillow 13.0.0, libjpeg-turbo 3.2.0)": results depend on the encoder build."""
        import PIL
        from PIL import features

        feature, library = self.library
        version = features.version(feature)
        return f"{self.label} (Pillow {PIL.__version__}{f', {library} {version}' if version else ''})"

    def encode(self, image, quality: int) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=self.pillow_format, quality=quality, **self.options)
        return buffer.getvalue()


CODECS = {
    "jpeg": PillowCodec("jpeg", "JPEG 4:2:0", "JPEG", "jpg", ("libjpeg_turbo", "libjpeg-turbo"), (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                        {"subsampling": "4:2:0"}),
    "webp": PillowCodec("webp", "WebP", "WEBP", "webp", ("webp", "libwebp"), (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), {"method": 4}),
    "avif": PillowCodec("avif", "AVIF 4:4:4", "AVIF", "avif", ("avif", "libavif"), (10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
                        {"subsampling": "4:4:4", "speed": 6}),
}


def codecs_from(keys: list[str]) -> list[PillowCodec]:
    """The codecs named by --codecs; UserError for unknown ones or ones this Pillow cannot encode."""
    out = []
    for key in keys:
        codec = CODECS.get(key.lower())
        if codec is None:
            raise UserError(CODECS_KEY, key, reason="unknown codec", allowed=", ".join(CODECS))
        if not codec.available():
            usable = [k for k, c in CODECS.items() if c.available()]
            raise UserError(CODECS_KEY, key, reason=f"this Pillow cannot encode {codec.label} (no {codec.feature} support)",
                            allowed=", ".join(usable))
        out.append(codec)
    return out


def load_images(folder: str | Path, key: str = IMAGES_KEY) -> list[tuple[str, "object"]]:
    """(name, RGB PIL image) for every image file in `folder`, sorted by name."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(key, str(folder), reason="not a folder", allowed="a folder of PNG/JPEG images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(key, str(folder), reason="no images in this folder", allowed=", ".join(IMAGE_SUFFIXES))
    images = []
    for path in files:
        try:
            with Image.open(path) as opened:
                images.append((path.stem, opened.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(key, str(path), reason=f"not a readable image ({type(err).__name__})",
                            allowed=", ".join(IMAGE_SUFFIXES)) from None
    return images


def measure(codec: PillowCodec, image, quality: int) -> tuple[float, float]:
    """(bpp, RGB PSNR in dB) of one image at one quality."""
    from PIL import Image

    data = codec.encode(image, quality)
    with Image.open(io.BytesIO(data)) as decoded:
        restored = np.asarray(decoded.convert("RGB"), dtype=np.float64)
    original = np.asarray(image, dtype=np.float64)
    mse = float(np.mean((original - restored) ** 2))
    width, height = image.size
    psnr = 10 * math.log10(255.0**2 / mse) if mse > 0 else math.inf
    return len(data) * 8 / (width * height), psnr


def codec_curve(codec: PillowCodec, images: list, qualities: tuple[int, ...] | None = None,
                workers: int | None = None) -> RDCurve:
    """The codec's RD curve: one point per quality, bpp and PSNR averaged over the images."""
    qualities = tuple(qualities or codec.qualities)
    workers = workers or min(4, os.cpu_count() or 1)

    def one_image(image) -> list[tuple[float, float]]:
        # One thread per image: Image.save keeps its settings on the image object, so two
        # threads saving the same image at different qualities would mix them up.
        return [measure(codec, image, quality) for quality in qualities]

    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow's encoders release the GIL
        results = list(pool.map(one_image, [image for _, image in images]))
    per_image = np.array(results, dtype=float)  # (images, qualities, 2)
    bpp, psnr = per_image[:, :, 0].mean(axis=0), per_image[:, :, 1].mean(axis=0)
    return RDCurve(codec.name(), bpp, psnr, f"{PILLOW_SOURCE}{codec.key}")


def write_compressai_json(curve: RDCurve, path: Path, *, images: str, qualities: tuple[int, ...]) -> None:
    """Save a curve in compressai's results format, so it can be passed back as an --anchor."""
    payload = {
        "name": curve.name,
        "description": f"computed by rdc report with Pillow on {images}",
        "meta": {"source": curve.source, "qualities": list(qualities), "images": images},
        "results": {"bpp": [float(b) for b in curve.bpp], "psnr-rgb": [float(p) for p in curve.psnr]},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
