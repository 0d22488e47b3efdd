"""The runtime protocol: warm-up untimed, one timing per repeat, median and CV, batch 1 per image,
three stages, threads pinned and named, the device refused when it is not there."""

from __future__ import annotations

import math
import platform
import re
import statistics
import time

import numpy as np
import pytest
import torch

from jobs.data import Image
from jobs.device import device_name, pinned_threads, resolve_device
from jobs.profile import RuntimeProtocol, Timing, profile_runtime, time_call, time_interleaved
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
    profile = profile_runtime(model, images, CPU, RuntimeProtocol(warmup=1, repeats=3, threads=1, remeasure=0))
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
        cvs = [1.4826 * statistics.median(abs(s - statistics.median(t.samples_ms)) for s in t.samples_ms)
               / statistics.median(t.samples_ms) for t in (im.timings[stage] for im in profile.images)]
        assert metrics[names.runtime_metric(stage, names.CV, profile.device)] == pytest.approx(statistics.fmean(cvs))
        # CPU time read around the same calls: one torch thread, so the calling thread's, never above wall
        for im in profile.images:
            t = im.timings[stage]
            assert len(t.cpu_ms) == 3 and all(0 < c <= w + 0.05 for c, w in zip(t.cpu_ms, t.samples_ms))

    table = profile.table()
    assert len(table) == len(images) * len(names.RUNTIME_STAGES)
    assert set(table["stage"]) == set(names.RUNTIME_STAGES)
    assert (table["height"].tolist()[::3], table["width"].tolist()[::3]) == ([64, 70], [96, 50])
    assert all(len(s.split()) == 3 for s in table["samples_ms"])
    assert all(len(s.split()) == 3 for s in table["cpu_samples_ms"])
    assert profile.cpu_clock == "thread_time" and "cpu_clock=thread_time interleaved=abba" in profile.describe("x")
    assert "repeats=3" in profile.describe("builtin") and "images=builtin:2" in profile.describe("builtin")


def test_timing_conditions_are_restored_and_recorded():
    from jobs.device import flushed_denormals, steady_allocator

    with flushed_denormals():
        assert torch.tensor([1e-40]).item() == 0.0  # subnormal float32 flushed to zero
    assert torch.tensor([1e-40]).item() != 0.0  # torch's default again
    with steady_allocator() as applied:
        # glibc's mallopt takes the setting; elsewhere there is none to take, recorded as the default
        assert applied == (platform.libc_ver()[0] == "glibc")
    model = build({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
                   "hyper": {"type": "conv", "N": 8}}).eval()
    model.update(force=True)
    profile = profile_runtime(model, _images()[:1], CPU, RuntimeProtocol(warmup=0, repeats=2, remeasure=0))
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


# -- runtime on a shared machine: CPU time, one interleaved window, re-measuring, suspicion ------
def test_stages_are_interleaved_abba_in_one_window():
    calls = []
    timings = time_interleaved({s: (lambda s=s: calls.append(s)) for s in "ABC"}, CPU, warmup=1, repeats=4)
    assert "".join(calls) == "ABC" + "ABC" + "CBA" + "ABC" + "CBA"  # warm-up round, then alternating order
    assert all(len(t.samples_ms) == 4 and len(t.cpu_ms) == 4 for t in timings.values())


def test_wall_time_the_cpu_did_not_spend_on_the_call_is_interference():
    protocol = RuntimeProtocol(max_cv=0.05, max_wall_over_cpu=1.05)
    assert Timing((10.0, 10.2, 10.1), (10.0, 10.1, 10.0)).interference(protocol) is None
    assert Timing((20.0, 21.0, 20.5), (10.0, 10.1, 10.0)).interference(protocol) == "wall 20.5 ms vs CPU 10 ms"
    assert Timing((10.0, 14.0, 12.0), (10.0, 14.0, 12.0)).interference(protocol) == "cv 24.7%"  # 1.4826 x MAD 2 / median 12
    # on a GPU no host clock sees the kernels: only the cv counts
    assert Timing((20.0, 20.0, 20.0), (1.0, 1.0, 1.0)).interference(protocol, check_cpu=False) is None
    # a call that waits (as a preempted one does) shows it on the real clocks
    slept = time_call(lambda: time.sleep(0.01), CPU, warmup=0, repeats=3)
    assert slept.median_ms >= 10 and slept.cpu_median_ms < 5
    assert slept.interference(protocol).startswith("wall ")


class SlowDecodeNetworks(torch.nn.Module):
    """A real codec whose decode networks also wait 5 ms: what a neighbour stealing the CPU looks
    like to the clocks, on demand."""

    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def compress(self, x):
        return self.codec.compress(x)

    def decompress(self, data):
        return self.codec.decompress(data)

    def decode_networks(self, y_hat, z_hat):
        time.sleep(0.005)
        return self.codec.decode_networks(y_hat, z_hat)


def test_a_disturbed_stage_is_remeasured_a_bounded_number_of_times_then_reported():
    model = build({"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
                   "hyper": {"type": "conv", "N": 8}}).eval()
    model.update(force=True)
    protocol = RuntimeProtocol(warmup=0, repeats=2, threads=1, remeasure=2, max_cv=10.0)
    profile = profile_runtime(SlowDecodeNetworks(model), _images()[:1], CPU, protocol)
    image = profile.images[0]
    assert image.windows == 3  # the first window and two re-measurements, then it gives up
    assert names.DECODE_NETWORKS in image.suspect and image.suspect[names.DECODE_NETWORKS].startswith("wall ")
    suspects = profile.suspects()
    assert names.DECODE_NETWORKS in suspects and "1/1 images disturbed" in suspects[names.DECODE_NETWORKS]
    tag = profile.suspect_tag("cpu-x-1t")
    assert f"cpu-x-1t:{names.DECODE_NETWORKS}: " in tag
    ms = profile.summary(names.DECODE_NETWORKS)[names.MS]
    assert tag.split(f"{names.DECODE_NETWORKS}: ")[1].startswith(f"{ms:.4g} ms (CPU ")
    table = profile.table()
    row = table[table["stage"] == names.DECODE_NETWORKS].iloc[0]
    assert row["windows"] == 3 and row["suspect"].startswith("wall ")


def test_more_torch_threads_read_the_process_cpu_clock():
    from jobs.profile import cpu_clock

    with pinned_threads(1):
        assert cpu_clock() is time.thread_time
    with pinned_threads(2):
        assert cpu_clock() is time.process_time
