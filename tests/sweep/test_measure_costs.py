"""The plan's fast cost path (sweep.plan.reference_costs) gives exactly the FLOPs of counting the
real model compressing and decoding a real image of the reference size (Kodak, 512 x 768)."""

from __future__ import annotations

import pytest

from jobs.data import read_image
from jobs.profile import REFERENCE_HEIGHT, REFERENCE_WIDTH, count_flops, count_params
from models import build
from rdc import names

SPECS = {
    "conv-hyperprior-tiny": {"M": 48, "transform": {"type": "conv", "N": 32}, "entropy": {"type": "hyperprior"},
                             "hyper": {"type": "conv", "N": 24}},
    "conv-hyperprior-wide-hyper": {"M": 64, "transform": {"type": "conv", "N": 24}, "entropy": {"type": "hyperprior"},
                                   "hyper": {"type": "conv", "N": 48}},
}


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_plan_costs_equal_counting_the_real_model_on_a_real_kodak_image(spec, kodak_dir):
    from sweep.plan import reference_costs

    image = read_image(kodak_dir / "kodim01.png", key="kodak")
    assert image.pixels.shape[:2] == (REFERENCE_HEIGHT, REFERENCE_WIDTH)
    model = build(spec).eval()
    model.update(force=True)
    x = image.tensor()
    data = model.compress(x)[0]
    real_decode, real_encode = count_flops(model.decompress, data), count_flops(model.compress, x)
    pixels = REFERENCE_HEIGHT * REFERENCE_WIDTH

    planned = reference_costs(spec)
    assert planned[names.PARAMS] == count_params(model)
    assert planned[names.DECODE_KFLOPS_PER_PX] == pytest.approx(real_decode / pixels / 1e3, rel=1e-12)
    assert planned[names.DECODE_KMACS_PER_PX] == pytest.approx(real_decode / 2 / pixels / 1e3, rel=1e-12)
    assert planned[names.ENCODE_KFLOPS_PER_PX] == pytest.approx(real_encode / pixels / 1e3, rel=1e-12)
