"""The runtime protocol: warm-up untimed, one timing per repeat, median and CV, batch 1 per image,
three stages, threads pinned and named, the device refused when it is not there."""

from __future__ import annotations

import math
import re
import statistics
import time

import numpy as np
import pytest
import torch

from jobs.data import Image
from jobs.device import device_name, pinned_threads, resolve_device
from jobs.profile import RuntimeProtocol, Timing, profile_runtime, time_call
from models import build
from rdc import names
from rdc.errors import UserError

CPU = torch.device("cpu")


def test_timing_statistics():
    timing = Timing((10.0, 12.0, 11.0, 30.0))
    assert timing.median_ms == 11.5  # robust to the one slow repeat
    # |x - 11.5| = 1.5, 0.5, 0.5, 18.5: MAD 1.0; the slow repeat does not dominate the robust cv
    assert timing.cv == pytest.approx(1.4826 * 1.0 / 11.5)
    assert timing.cv_classic == pytest.approx(statistics.stdev([10, 12, 11, 30]) / 15.75)
    assert timing.cv < timing.cv_classic / 4
    assert math.isnan(Timing((5.0,)).cv) and math.isnan(Timing((5.0,)).cv_classic)


def test_robust_cv_estimates_stdev_over_mean_for_normal_timings():
    import random

    rng = random.Random(0)
    samples = tuple(100 + rng.gauss(0, 2) for _ in range(4000))
    assert Timing(samples).cv == pytest.approx(Timing(samples).cv_classic, rel=0.05)


def test_warmup_calls_are_not_timed_and_each_repeat_is():
    calls = []

    def work():
        calls.append(time.perf_counter())
        time.sleep(0.002 if len(calls) > 2 else 0.05)  # the two warm-up calls are slow

    timing = time_call(work, CPU, warmup=2, repeats=4)
    assert len(calls) == 6
    assert len(timing.samples_ms) == 4
    assert all(2.0 <= s < 40.0 for s in timing.samples_ms), timing.samples_ms


def test_device_names_are_short_stable_and_metric_safe():
    with pinned_threads(1):
        name = device_name("cpu")
    assert re.fullmatch(r"cpu-[a-z0-9-]+-1t", name), name
    assert "_" not in name  # "_" separates a runtime metric's parts
    assert names.parse_runtime_metric(names.runtime_metric(names.DECODE_NETWORKS, names.CV, name)) == (
        names.DECODE_NETWORKS, names.CV, name)
    assert names.parse_runtime_metric(names.decode_ms(name)) == (names.DECODE, names.MS, name)


def test_pinned_threads_restores_the_previous_count():
    before = torch.get_num_threads()
    with pinned_threads(1) as threads:
        assert threads == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(UserError, match="threads=0"):
        with pinned_threads(0):
            pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_is_refused_in_one_line_where_there_is_none():
    with pytest.raises(UserError) as err:
        resolve_device("cuda")
    assert str(err.value) == "--device='cuda': torch sees no CUDA device here: allowed: cpu"


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x"])
def test_unknown_devices_are_refused(bad):
    with pytest.raises(UserError, match="--device"):
        resolve_device(bad)


def _images() -> list[Image]:
    rng = np.random.default_rng(0)
    return [Image("a", rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)),
            Image("b", rng.integers(0, 256, (70, 50, 3), dtype=np.uint8))]  # not a multiple of 64


def test_profile_runtime_times_every_stage_of_every_image():
    model = build({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
                   "hyper": {"type": "conv", "N": 8}}).eval()
    model.update(force=True)
    images = _images()
    before = torch.get_num_threads()
    profile = profile_runtime(model, images, CPU, RuntimeProtocol(warmup=1, repeats=3, threads=1))
    assert torch.get_num_threads() == before
    assert profile.device.endswith("-1t")

    metrics = profile.metrics()
    assert set(metrics) == set(names.runtime_metrics(profile.device))
    for stage in names.RUNTIME_STAGES:
        medians = [im.timings[stage].median_ms for im in profile.images]
        assert all(len(im.timings[stage].samples_ms) == 3 for im in profile.images)
        assert metrics[names.runtime_metric(stage, names.MS, profile.device)] == pytest.approx(statistics.fmean(medians))
        pixels = 64 * 96 + 70 * 50
        assert metrics[names.runtime_metric(stage, names.MPS, profile.device)] == pytest.approx(pixels / sum(medians) / 1e3)
        assert metrics[names.runtime_metric(stage, names.CV, profile.device)] >= 0

    table = profile.table()
    assert len(table) == len(images) * len(names.RUNTIME_STAGES)
    assert set(table["stage"]) == set(names.RUNTIME_STAGES)
    assert (table["height"].tolist()[::3], table["width"].tolist()[::3]) == ([64, 70], [96, 50])
    assert all(len(s.split()) == 3 for s in table["samples_ms"])
    assert "repeats=3" in profile.describe("builtin") and "images=builtin:2" in profile.describe("builtin")


def test_timing_conditions_are_restored_and_recorded():
    from jobs.device import flushed_denormals, steady_allocator

    with flushed_denormals():
        assert torch.tensor([1e-40]).item() == 0.0  # subnormal float32 flushed to zero
    assert torch.tensor([1e-40]).item() != 0.0  # torch's default again
    with steady_allocator() as applied:
        assert applied in (True, False)  # False off glibc: then recorded as the default allocator
    model = build({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
                   "hyper": {"type": "conv", "N": 8}}).eval()
    model.update(force=True)
    profile = profile_runtime(model, _images()[:1], CPU, RuntimeProtocol(warmup=0, repeats=2))
    assert f"allocator={'steady' if applied else 'default'}" in profile.describe("x")
    assert "flush_denormals=True" in profile.describe("x")


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n"
     "processor\t: 1\nmodel name\t: AMD EPYC\n", "amd-epyc-f25m17"),
    ("cpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\n", "amd-epyc-7b13"),
    ("cpu family\t: 6\nmodel\t\t: 79\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n", "intel-xeon-f6m79"),
    ("cpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.80GHz\n", "intel-xeon-f6m85"),
    ("processor\t: 0\nBogoMIPS\t: 243.75\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n", "arm-0x41-0xd0c"),
])
def test_cpu_names_tell_generations_apart(cpuinfo, expected):
    from jobs.device import model_from_cpuinfo

    assert model_from_cpuinfo(cpuinfo) == expected


def test_full_fp32_turns_tf32_off_and_restores_it():
    from jobs.device import full_fp32

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
    try:
        with full_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_a_mig_slice_is_named_apart_from_its_gpu():
    from jobs.device import cuda_name

    assert cuda_name("NVIDIA H100 80GB HBM3", 85 * 2**30, "0") == "cuda-h100-80gb-hbm3"
    assert cuda_name("NVIDIA H100 80GB HBM3", 10 * 2**30, "MIG-5c89a1e2-0000") == "cuda-h100-80gb-hbm3-mig-10gb"
