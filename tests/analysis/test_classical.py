"""JPEG/WebP/AVIF curves computed with Pillow on Kodak: real encodes, checked independently."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from analysis.anchors import read_anchor
from analysis.bdrate import bd_rate
from analysis.classical import CODECS, codec_curve, codecs_from, load_images, write_compressai_json
from rdc.errors import UserError

from tests.conftest import TEST_SCALE  # noqa: E402  (the shared test scale)


@pytest.fixture(scope="module")
def two_kodak(kodak_dir):
    return [image for image in load_images(kodak_dir) if image[0] in ("kodim01", "kodim04")]  # landscape, portrait


@pytest.mark.parametrize("key", ["jpeg", "webp", "avif"])
def test_curve_points_are_real_encodes(two_kodak, key):
    codec = codecs_from([key])[0]
    qualities = (20, 60, 90)
    curve = codec_curve(codec, two_kodak, qualities)
    assert curve.source == f"pillow:{key}" and curve.name.startswith(codec.label)
    assert np.all(np.diff(curve.bpp) > 0) and np.all(np.diff(curve.psnr) > 0)  # more quality: more bits, less error
    # Recompute one point independently: bytes from Pillow directly, PSNR with scikit-image.
    bpps, psnrs = [], []
    for _, image in two_kodak:
        buffer = io.BytesIO()
        image.save(buffer, format=codec.pillow_format, quality=60, **codec.options)
        width, height = image.size
        bpps.append(buffer.tell() * 8 / (width * height))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        psnrs.append(peak_signal_noise_ratio(np.asarray(image), decoded, data_range=255))
    assert curve.bpp[1] == pytest.approx(np.mean(bpps), rel=1e-12)
    assert curve.psnr[1] == pytest.approx(np.mean(psnrs), rel=1e-9)


def test_threads_give_the_same_curve_as_one_thread(two_kodak):
    qualities = (10, 30, 50, 70, 90)
    assert np.array_equal(codec_curve(CODECS["webp"], two_kodak, qualities, workers=4).psnr,
                          codec_curve(CODECS["webp"], two_kodak, qualities, workers=1).psnr)


def test_saved_curve_reads_back_as_an_anchor(two_kodak, tmp_path):
    curve = codec_curve(CODECS["jpeg"], two_kodak, (30, 70))
    path = tmp_path / "jpeg.json"
    write_compressai_json(curve, path, images="kodak (2 images)", qualities=(30, 70))
    again = read_anchor(path)
    assert again.name == curve.name and np.array_equal(again.bpp, curve.bpp) and np.array_equal(again.psnr, curve.psnr)
    assert json.loads(path.read_text())["meta"]["qualities"] == [30, 70]


def test_bad_codecs_and_image_folders(tmp_path, kodak_dir):
    with pytest.raises(UserError, match=r"--codecs='heic': unknown codec: allowed: jpeg, webp, avif"):
        codecs_from(["heic"])
    with pytest.raises(UserError, match=r"--images='.*nowhere': not a folder"):
        load_images(tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"--images='.*': no images in this folder"):
        load_images(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"broken.png': not a readable image"):
        load_images(tmp_path)


@pytest.mark.slow
def test_pillow_curves_on_kodak_match_the_published_jpeg_and_webp_anchors(kodak_dir, anchors_dir):
    """Our JPEG/WebP on all 24 Kodak images against compressai's published Pillow-era curves."""
    images = load_images(kodak_dir)[: max(6, int(24 * min(TEST_SCALE, 1.0)))]
    for key, anchor in (("jpeg", "compressai/jpeg.json"), ("webp", "compressai/webp.json")):
        ours = codec_curve(CODECS[key], images)
        assert abs(bd_rate(read_anchor(anchors_dir / anchor), ours).percent) < 6.0, key
