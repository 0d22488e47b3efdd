"""Every preset's bitstream on one Kodak crop, byte for byte, against a committed golden file.

A refactor of models/ must not change what a preset codes: with the same seed, the same
weights (construction order), the same streams. The golden file holds, per preset, the sha256
of the y and z streams on a 97 x 131 crop of kodim01 (both sides odd), the parameter count
and the decode kMACs per Kodak pixel (768 x 512, meta device).

Untrained, g_a gives a latent within +-0.6 and h_a a hyper-latent near 0, so the image's y
and z streams are a few bytes of zeros. The entropy model is also checked where it has work to
do: the latent codec alone on that latent times GAIN, with h_a's output times GAIN too (a
forward hook), so that y and z symbols are in the tens and h_s sees a real z_hat; those
streams are hashed and their decode required exact.

A deliberate change of function (a new default, a fixed layer) regenerates it in the same
commit, with the reason in the message:

    RDC_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/models/test_golden_bitstreams.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from models import bitstream, build
from models.presets import PRESETS, preset
from tests.models.conftest import load_rgb
from tests.models.test_reference import decode_kmacs, params

GOLDEN = Path(__file__).parent / "golden" / "preset_bitstreams.json"
REGENERATE = os.environ.get("RDC_REGEN_GOLDEN") == "1"
CROP = (slice(211, 308), slice(333, 464))  # 97 x 131 of kodim01
SEED = 0
GAIN = 40.0


def measure(name: str, image: torch.Tensor) -> dict:
    torch.manual_seed(SEED)
    model = build(preset(name)).eval()
    counts = {"params": params(model), "decode_kmacs_per_px": round(decode_kmacs(model), 4)}
    # Coded in float64: float32 symbols of the amplified latent depend on the CPU's kernels (a
    # SwinT preset's hash differed between AVX2 and AVX-512 machines); float64 gives the same
    # streams with AVX-512, AVX2 and no SIMD at all (ATEN_CPU_CAPABILITY), checked when written.
    model = model.double()
    image = image.double()
    model.update(force=True)
    with torch.no_grad():
        (data,) = model.compress(image)
        y = model.g_a(model.pad(image)) * GAIN
        hook = model.latent.h_a.register_forward_hook(lambda module, args, z: z * GAIN)
        amplified = model.latent.compress(y)
        hook.remove()
        decoded = model.latent.decompress(amplified["streams"], y.shape[-2:], amplified["z_hat"].shape[-2:])
    assert torch.equal(decoded["y_hat"], amplified["y_hat"]) and torch.equal(decoded["g_s_input"], amplified["g_s_input"])
    _, _, streams = bitstream.unpack(data)
    stream_names = model.latent.stream_names()  # y (or its groups' passes), then z
    assert len(streams) == len(stream_names) == len(amplified["streams"])
    return {
        **{f"{s}_sha256": hashlib.sha256(b).hexdigest() for s, b in zip(stream_names, streams)},
        **{f"{s}_bytes": len(b) for s, b in zip(stream_names, streams)},
        **{f"amplified_{s}_sha256": hashlib.sha256(b[0]).hexdigest() for s, b in zip(stream_names, amplified["streams"])},
        **{f"amplified_{s}_bytes": len(b[0]) for s, b in zip(stream_names, amplified["streams"])},
        **counts,
    }


@pytest.fixture(scope="module")
def crop(kodak_dir) -> torch.Tensor:
    path = kodak_dir / "kodim01.png"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return load_rgb(path)[:, :, CROP[0], CROP[1]].contiguous()


@pytest.fixture(scope="module")
def golden() -> dict:
    if REGENERATE:
        return {}
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def regenerated():
    table: dict = {}
    yield table
    if REGENERATE and table:
        old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        GOLDEN.write_text(json.dumps({**old, **table}, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_bitstream_params_and_flops_are_golden(name, crop, golden, regenerated):
    measured = measure(name, crop)
    if REGENERATE:
        regenerated[name] = measured
        return
    assert name in golden, f"{name} has no golden entry: regenerate with RDC_REGEN_GOLDEN=1 (see the docstring)"
    assert measured == golden[name]


def test_golden_file_covers_exactly_the_presets():
    if REGENERATE:
        pytest.skip("regenerating")
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(PRESETS)


def test_the_golden_streams_do_not_depend_on_the_cpus_vector_kernels(kodak_dir, golden):
    """CI machines differ (AVX2, AVX-512): the SwinT preset, the one whose float32 streams moved
    with the kernels, measured with torch's plain (no-SIMD) kernels in a fresh process, as
    ATEN_CPU_CAPABILITY must be set before torch loads, gives the golden streams too."""
    import subprocess
    import sys

    if REGENERATE:
        pytest.skip("regenerating")
    name = "zhu2022-swint-charm"
    code = ("import json, sys; from pathlib import Path; "
            "from tests.models.test_golden_bitstreams import CROP, measure; from tests.models.conftest import load_rgb; "
            f"image = load_rgb(Path(sys.argv[1]))[:, :, CROP[0], CROP[1]].contiguous(); "
            f"print(json.dumps(measure({name!r}, image)))")
    proc = subprocess.run([sys.executable, "-c", code, str(kodak_dir / "kodim01.png")], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == golden[name]
