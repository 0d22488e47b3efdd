"""Which runs a frontier compares: one lambda whenever rate and distortion are not both
objectives, runs without a lambda left out with a note, throughput maximised by default."""

from __future__ import annotations

import pytest

from analysis.anchors import unique_names
from analysis.curves import RDCurve
from analysis.query import parse_objective, query_frontier
from rdc import names
from rdc.errors import UserError
from tests.analysis.conftest import RunLogger

CPU = "cpu-test-1t"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """Three runs at lambda 0.01, two at 0.05 (higher rate, higher PSNR), two without a lambda."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('lambdas') / 'mlflow.db'}"
    log = RunLogger(uri)
    exp = log.experiment("lambdas")
    rows = {  # name: (lambda, kFLOPs/px, rd_loss, bpp, psnr)
        "low-a": (0.01, 100.0, 1.0, 0.3, 30.0), "low-b": (0.01, 200.0, 0.9, 0.3, 30.5),
        "low-c": (0.01, 300.0, 0.95, 0.3, 30.2),
        "high-a": (0.05, 100.0, 2.0, 0.9, 35.0), "high-b": (0.05, 300.0, 1.9, 0.9, 35.5),
        "none-a": (None, 50.0, 0.1, 0.1, 40.0), "none-b": (None, 60.0, 0.2, 0.1, 41.0),
    }
    for name, (lmbda, kflops, loss, bpp, psnr) in rows.items():
        metrics = {names.DECODE_KFLOPS_PER_PX: kflops, names.RD_LOSS: loss, names.BPP: bpp, names.PSNR: psnr}
        if name.startswith("high"):  # only the 0.05 runs were timed on this device
            metrics[names.decode_ms(CPU)] = kflops / 10
        log.run(exp, name, lmbda=lmbda, metrics=metrics)
    return uri


def _names(result) -> set[str]:
    return set(result.table[names.TAG_VARIANT_ID])


def test_throughput_is_maximised_and_time_minimised_by_default():
    assert parse_objective(names.runtime_metric(names.DECODE, names.MPS, CPU), "--z")[1] == "max"
    assert parse_objective(names.runtime_metric(names.DECODE_NETWORKS, names.MPS, CPU), "--z")[1] == "max"
    assert parse_objective(names.decode_ms(CPU), "--z")[1] == "min"
    assert parse_objective(names.runtime_metric(names.DECODE, names.MPS, CPU) + ":min", "--z")[1] == "min"


def test_rd_loss_leaves_out_runs_without_a_lambda_and_says_so(store):
    result = query_frontier("lambdas", tracking_uri=store)
    assert _names(result) == {"low-a", "low-b"}  # none-a and none-b would win at an unknown lambda
    (note,) = result.notes
    assert "train.lmbda=0.01 (3 runs; also 0.05" in note and "left out 2 run(s) without a train.lmbda param" in note


def test_quality_without_rate_compares_at_one_lambda(store):
    result = query_frontier("lambdas", y="psnr", tracking_uri=store)
    assert _names(result) == {"low-a", "low-b"}  # not the 0.05 runs, which bought PSNR with bits
    assert result.notes[0].startswith("quality without rate (or rate without quality) compares runs at one lambda")


def test_rate_and_quality_together_compare_every_lambda(store):
    result = query_frontier("lambdas", x="bpp", y="psnr", tracking_uri=store)
    assert _names(result) == {"none-b"} and result.notes == []


def test_a_metric_only_at_another_lambda_is_one_line_naming_the_option_and_lambda(store):
    with pytest.raises(UserError) as info:
        query_frontier("lambdas", z=names.decode_ms(CPU), tracking_uri=store)
    assert str(info.value).startswith(f"--z={names.decode_ms(CPU)!r}: no finished run at train.lmbda=0.01 has this metric")
    assert len(query_frontier("lambdas", z=names.decode_ms(CPU), lmbda=0.05, tracking_uri=store).table) == 2


def test_curves_get_names_of_their_own_and_none_taken_by_a_codec():
    same_stem = [RDCurve("WebP", [0.5], [30.0], "compressai/webp.json"),
                 RDCurve("WebP", [0.6], [31.0], "tfc/PSNR_sRGB_RGB/webp.txt")]
    assert [c.name for c in unique_names(same_stem)] == ["WebP (compressai/webp)", "WebP (PSNR_sRGB_RGB/webp)"]
    twice = [RDCurve("VTM", [0.5], [30.0], "a/vtm.json")] * 2
    assert [c.name for c in unique_names(twice)] == ["VTM (a/vtm)", "VTM (a/vtm) #2"]
    passed_back = [RDCurve("JPEG", [0.5], [30.0], "out/classical_jpeg.json")]
    assert [c.name for c in unique_names(passed_back, reserved={"JPEG"})] == ["JPEG (classical_jpeg)"]
