"""Tiny specs of every family (models/tiny.py: every registered component combination, from
each component's TINY knobs) and real Kodak crops for the model tests. Tests of other rooms can
take the same specs from models.tiny."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models.tiny import tiny_families, tiny_spec

FAMILIES = tiny_families()


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    # Tiny models gain nothing from intra-op threads, and on a shared, loaded machine two
    # OpenMP threads spin-waiting on each other make a 20 ms training step take seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_generate_tests(metafunc):
    # A test taking `family` runs once per family of the study: (transform, entropy, hyper).
    if "family" in metafunc.fixturenames:
        metafunc.parametrize("family", FAMILIES, ids=["{}-{}-{}".format(*f) for f in FAMILIES], scope="module")


@pytest.fixture(scope="session")
def make_spec():
    """tiny_spec(transform, entropy, hyper, **entropy_knobs) -> a plain spec dict."""
    return tiny_spec


def load_rgb(path) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(scope="session")
def kodak_image(kodak_dir) -> torch.Tensor:
    return load_rgb(sorted(kodak_dir.glob("*.png"))[0])


@pytest.fixture(scope="session")
def odd_image(kodak_image) -> torch.Tensor:
    """An odd-sized crop of a real photograph (pads to 128 x 64, both sides odd)."""
    return kodak_image[:, :, 201:268, 301:346].contiguous()  # 67 x 45


@pytest.fixture(scope="session")
def training_batch(kodak_dir) -> torch.Tensor:
    """Two 64 x 64 crops of two real photographs."""
    paths = sorted(kodak_dir.glob("*.png"))[1:3]
    return torch.cat([load_rgb(p)[:, :, 100:164, 200:264] for p in paths]).contiguous()


@pytest.fixture(scope="session")
def portrait_image(kodak_dir) -> torch.Tensor:
    """A whole Kodak portrait photograph: 768 rows, 512 columns."""
    path = next(p for p in sorted(kodak_dir.glob("*.png")) if Image.open(p).size == (512, 768))
    return load_rgb(path)


def code_and_check(model, x: torch.Tensor) -> tuple[bytes, dict]:
    """Compress x (one image) for real, decode it, and require the decoder to reproduce the
    eval-mode forward path bit for bit. Returns the bitstream and the forward outputs."""
    model.eval()
    model.update(force=True)
    with torch.no_grad():
        reference = model(x)
        (data,) = model.compress(x)
        decoded = model.decompress(data)
    assert torch.equal(decoded["y_hat"], reference["y_hat"])
    assert torch.equal(decoded["z_hat"], reference["z_hat"])
    assert torch.equal(decoded["x_hat"], reference["x_hat"].clamp(0, 1))
    return data, reference


@pytest.fixture(scope="session")
def bit_exact():
    """code_and_check(model, x) -> (bitstream, forward outputs), asserting a bit-exact decode."""
    return code_and_check
