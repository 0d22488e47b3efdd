"""measure(): what a trial logs at its end, and where its runtimes go when it shared its device."""

from __future__ import annotations

import pytest
import torch

from models import build
from rdc import names
from jobs.measure import measure

SPEC = {"M": 16, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"},
        "hyper": {"type": "conv", "N": 8}}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a trial's thread count (cluster.trial_cpus); the cores are shared here
    yield
    torch.set_num_threads(before)


def settings(eval_dir=None) -> dict:
    return {
        "data": {"eval_dir": eval_dir},
        "profile": {"flops_height": 512, "flops_width": 768, "repeats": 2, "warmup": 0},
    }


def test_measure_logs_evaluation_costs_and_runtimes_of_this_device(tmp_path):
    model = build(SPEC)
    measured = measure(model, settings(), lmbda=0.0125, shared_device=False)
    device = measured.tags[names.TAG_DEVICE]
    assert device.startswith("cpu-") and device.endswith("-1t")
    for key in (names.BPP, names.BPP_EST, names.PSNR, names.MSE, names.MS_SSIM, names.MS_SSIM_DB, names.RD_LOSS,
                names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX,
                names.ENCODE_KFLOPS_PER_PX, names.ENCODE_KMACS_PER_PX, *names.runtime_metrics(device)):
        assert key in measured.metrics, key
    assert measured.tags[names.TAG_SHARED_DEVICE] == "false"
    assert measured.tags[names.TAG_FLOPS_SIZE] == "512x768"
    assert "repeats=2" in measured.tags[names.runtime_protocol_tag(device)]
    eval_table = measured.tables[names.EVAL_TABLE]
    assert list(eval_table["name"]) == ["coffee", "chelsea"]  # the built-in evaluation photographs
    assert eval_table["psnr"].mean() == pytest.approx(measured.metrics[names.PSNR])
    runtime_table = measured.tables[names.runtime_table(device)]
    assert len(runtime_table) == 2 * len(names.RUNTIME_STAGES)


def test_a_shared_device_times_under_its_own_name_leaving_the_clean_names_free():
    measured = measure(build(SPEC), settings(), lmbda=0.0125, shared_device=True)
    device = measured.tags[names.TAG_DEVICE]
    label = device + names.SHARED_SUFFIX
    assert measured.tags[names.TAG_SHARED_DEVICE] == "true"
    assert set(names.runtime_metrics(label)) <= set(measured.metrics)
    assert not set(names.runtime_metrics(device)) & set(measured.metrics)
    assert names.parse_runtime_metric(names.decode_ms(label)) == (names.DECODE, names.MS, label)
    assert names.runtime_table(label) in measured.tables
