"""FLOPs vs runtime on MLflow runs timed on two devices: correlations, ranks, Kendall tau."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.runs import runs
from analysis.runtime import ALL_FAMILIES, device_rankings, flops_runtime_correlation, kendall_tau_between_devices
from rdc import names


def test_rankings_per_device(known_store, devices):
    cpu, gpu = devices["cpu"], devices["gpu"]
    table = device_rankings(runs("known", known_store)).set_index("variant_id")
    assert table[f"rank_{cpu}"].to_dict() == {"h": 1, "a": 2, "f": 3, "b": 4, "c": 5, "d": 6, "e": 7, "k": 8, "g": 9}
    gpu_ranks = table[f"rank_{gpu}"].dropna().astype(int).to_dict()
    assert gpu_ranks == {"a": 1, "f": 2, "c": 3, "b": 4, "e": 5, "d": 6, "k": 7, "g": 8}


def test_kendall_tau_between_devices(known_store, devices):
    pairs = kendall_tau_between_devices(runs("known", known_store))
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert {row["device_a"], row["device_b"]} == {devices["cpu"], devices["gpu"]}
    # 8 runs timed on both; the orders differ by two adjacent swaps (b/c, d/e): (28 - 2*2) / 28.
    assert row["n"] == 8 and row["kendall_tau"] == pytest.approx(24 / 28, rel=1e-12)


def test_flops_runtime_correlation_per_family(known_store, devices):
    frame = runs("known", known_store)
    table = flops_runtime_correlation(frame)
    cpu = table[table["device"] == devices["cpu"]].set_index("family")
    charm = frame[frame["family"] == "ELIC/CHARM:SwinT"]
    x, y = charm[names.DECODE_KFLOPS_PER_PX].to_numpy(), charm[names.decode_ms(devices["cpu"])].to_numpy()
    assert cpu.loc["ELIC/CHARM:SwinT", "n"] == 4
    assert cpu.loc["ELIC/CHARM:SwinT", "pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12)
    assert cpu.loc["ELIC/CHARM:SwinT", "ms_per_kflop_px"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    # In the test data time is 10x FLOPs give or take 1 ms: ranks agree except the tie at 400 kFLOPs.
    assert cpu.loc["ELIC/CHARM:SwinT", "spearman_rho"] == pytest.approx(np.corrcoef([1, 2.5, 4, 2.5], [1, 2, 4, 3])[0, 1])
    # Two runs: no correlation claimed. The run lacking a GPU time is left out on the GPU only.
    assert np.isnan(cpu.loc["ELIC/Hyperprior:Conv", "pearson_r"])
    assert np.isnan(cpu.loc["ELIC/Hyperprior:Conv", "ms_per_kflop_px"])  # two runs: no slope claimed either
    assert cpu.loc[ALL_FAMILIES, "n"] == 9
    assert table[(table["device"] == devices["gpu"]) & (table["family"] == ALL_FAMILIES)]["n"].item() == 8


def test_no_slope_from_two_runs_a_slope_from_three():
    import pandas as pd

    device = "cpu-test-1t"
    frame = pd.DataFrame({names.TAG_FAMILY: ["A", "A", "B", "B", "B"],
                          names.DECODE_KFLOPS_PER_PX: [1.0, 2.0, 1.0, 2.0, 3.0],
                          names.decode_ms(device): [10.0, 30.0, 5.0, 7.0, 9.0]})
    table = flops_runtime_correlation(frame).set_index("family")
    assert np.isnan(table.loc["A", "ms_per_kflop_px"])  # two points always fit a line
    assert table.loc["B", "ms_per_kflop_px"] == pytest.approx(2.0)
