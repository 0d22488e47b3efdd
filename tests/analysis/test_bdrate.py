"""BD-rate on the shared anchors: the same numbers as `bjontegaard` run directly, REFERENCE.md's
cross-checks, and the same through runs logged in MLflow."""

from __future__ import annotations

import json
import warnings

import bjontegaard
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from analysis.anchors import read_anchor, unique_names
from analysis.bdrate import CurveError, bd_rate, overlap_range, savings_vs_bitrate
from analysis.curves import RDCurve, curve_from_runs, curves_from_runs
from analysis.runs import runs
from rdc.errors import UserError

VTM = "compressai/vtm.json"
ELIC = "compressai/paper-elic2022_mse.json"
CHARM = "compressai/paper-minnen2020-cc10_mse.json"
BPG444 = "tensorflow_compression/PSNR_sRGB_RGB/bpg444.txt"


def _raw(anchors_dir, relative):
    """The file's points, read here independently of analysis.anchors."""
    path = anchors_dir / relative
    if path.suffix == ".json":
        results = json.loads(path.read_text())["results"]
        return np.array(results["bpp"]), np.array(results["psnr-rgb"])
    data = np.loadtxt(path, delimiter=",", comments="#")
    return data[:, 0], data[:, 1]


def test_reads_compressai_json_and_tensorflow_compression_text(anchors_dir):
    vtm = read_anchor(anchors_dir / VTM)
    assert vtm.name == "VTM" and len(vtm) == 8
    assert np.array_equal(vtm.bpp, _raw(anchors_dir, VTM)[0]) and np.array_equal(vtm.psnr, _raw(anchors_dir, VTM)[1])
    bpg = read_anchor(anchors_dir / BPG444)
    assert bpg.name == "BPG (4:4:4)" and len(bpg) == 52
    assert bpg.bpp[0] == 0.023857 and bpg.psnr[0] == 23.787652
    vtm18 = read_anchor(anchors_dir / "vtm18" / "kodak-vtm18.0.json")  # {"bpp", "psnr"}, descending rates
    assert len(vtm18) == 36 and np.all(np.diff(vtm18.bpp) > 0)
    cheng = read_anchor(anchors_dir / "cheng2020" / "data_Kodak_Proposed_optimized_by_MSE_PSNR.dat")
    assert cheng.psnr[0] == pytest.approx(27.98974522)
    j2k = read_anchor(anchors_dir / "compressai" / "jpeg2000.json")  # stored in descending bpp order
    assert np.all(np.diff(j2k.bpp) > 0)


@pytest.mark.parametrize("relative, reason", [
    ("tensorflow_compression/MS-SSIM_sRGB_RGB/bpg444.txt", "holds MS-SSIM/sRGB/R'G'B', not RGB PSNR"),
    ("tensorflow_compression/PSNR_sRGB_Y/bpg444.txt", "holds PSNR/sRGB/Y', not RGB PSNR"),
    ("compressai/paper-elic2022_ms-ssim.json", "no RGB PSNR in this curve (it has ms-ssim-db-rgb)"),
    ("cheng2020/data_Kodak_Proposed_optimized_by_MSE_MSSSIM.dat", "an MS-SSIM curve (by its name)"),
    ("SOURCE.md", "not 'bpp, psnr'"),
    ("missing.json", "no such file"),
])
def test_wrong_anchor_files_are_one_clear_error(anchors_dir, relative, reason):
    with pytest.raises(UserError) as caught:
        read_anchor(anchors_dir / relative)
    assert str(caught.value).startswith("--anchor=") and reason in str(caught.value)


def test_unique_names_for_two_curves_of_the_same_codec(anchors_dir):
    first = read_anchor(anchors_dir / BPG444)
    second = read_anchor(anchors_dir / "tensorflow_compression/PSNR_sRGB_RGB/bpg420.txt")
    renamed = unique_names([first, RDCurve(first.name, second.bpp, second.psnr, "x/bpg444b.txt")])
    assert [c.name for c in renamed] == ["BPG (4:4:4) (bpg444)", "BPG (4:4:4) (bpg444b)"]


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
@pytest.mark.parametrize("anchor, test", [(VTM, ELIC), (BPG444, VTM), (BPG444, ELIC), (VTM, CHARM)])
def test_equals_bjontegaard_run_directly(anchors_dir, method, anchor, test):
    ours = bd_rate(read_anchor(anchors_dir / anchor), read_anchor(anchors_dir / test), method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = bjontegaard.bd_rate(*_raw(anchors_dir, anchor), *_raw(anchors_dir, test), method=method,
                                     require_matching_points=False)
    assert ours.percent == pytest.approx(direct, rel=1e-12)


def test_reference_cross_checks(anchors_dir):
    vtm, elic, bpg, charm = (read_anchor(anchors_dir / p) for p in (VTM, ELIC, BPG444, CHARM))
    elic_vs_vtm = bd_rate(vtm, elic)
    assert elic_vs_vtm.percent == pytest.approx(-7.0, abs=0.1)
    assert (elic_vs_vtm.psnr_low, elic_vs_vtm.psnr_high) == (29.113, 37.624)  # ELIC's own range lies inside VTM's
    assert elic_vs_vtm.overlap == pytest.approx((37.624 - 29.113) / (46.59176008512777 - 26.14484539430146))
    assert bd_rate(bpg, vtm, method="cubic").percent == pytest.approx(-17.3, abs=0.1)
    assert bd_rate(bpg, vtm, method="pchip").percent == pytest.approx(-17.3, abs=0.5)
    assert bd_rate(bpg, elic).percent == pytest.approx(-25.3, abs=0.1)
    assert bd_rate(vtm, charm).percent == pytest.approx(1.1, abs=0.1)
    assert elic_vs_vtm.rate_savings == -elic_vs_vtm.percent


def test_a_common_psnr_range(anchors_dir):
    vtm, elic = read_anchor(anchors_dir / VTM), read_anchor(anchors_dir / ELIC)
    full = bd_rate(vtm, elic)
    assert bd_rate(vtm, elic, psnr_range=(full.psnr_low, full.psnr_high)).percent == pytest.approx(full.percent, rel=1e-12)
    narrow = bd_rate(vtm, elic, psnr_range=(31.6, 36.0))
    # Independently: integrate pchip(log10 rate) over the range with scipy.
    f_vtm, f_elic = (PchipInterpolator(c.psnr, np.log10(c.bpp)) for c in (vtm, elic))
    mean = (f_elic.integrate(31.6, 36.0) - f_vtm.integrate(31.6, 36.0)) / 4.4
    assert narrow.percent == pytest.approx((10**mean - 1) * 100, rel=1e-12)
    assert (narrow.psnr_low, narrow.psnr_high) == (31.6, 36.0)
    with pytest.raises(CurveError, match="not inside the overlap"):
        bd_rate(vtm, elic, psnr_range=(28.0, 36.0))  # below ELIC's lowest point: no extrapolation


def test_savings_vs_bitrate_averages_to_the_bd_rate(anchors_dir):
    vtm, elic = read_anchor(anchors_dir / VTM), read_anchor(anchors_dir / ELIC)
    curve = savings_vs_bitrate(vtm, elic, samples=4001)
    assert curve["psnr"].iloc[0] == 29.113 and curve["psnr"].iloc[-1] == 37.624
    log_ratio = np.log10(1 - curve["rate_savings_percent"] / 100)
    assert (10 ** log_ratio.mean() - 1) * 100 == pytest.approx(bd_rate(vtm, elic).percent, abs=0.01)
    assert np.all(np.diff(curve["bpp"]) > 0)


def test_a_non_monotone_curve_uses_its_envelope():
    anchor = RDCurve("a", [0.1, 0.2, 0.4, 0.8], [28.0, 30.0, 33.0, 36.0], "test")
    noisy = RDCurve("t", [0.1, 0.15, 0.3, 0.6, 0.7], [28.5, 28.4, 32.0, 35.0, 34.0], "test")
    envelope = noisy.envelope()
    assert list(envelope.bpp) == [0.1, 0.3, 0.6] and envelope.dropped == 2
    assert bd_rate(anchor, noisy).percent == pytest.approx(bd_rate(anchor, envelope).percent)


def test_too_few_points_or_no_overlap():
    two = RDCurve("two", [0.1, 0.2], [30.0, 32.0], "test")
    far = RDCurve("far", [1.0, 2.0], [40.0, 44.0], "test")
    with pytest.raises(CurveError, match="cubic needs 4"):
        bd_rate(two, two, method="cubic")
    with pytest.raises(CurveError, match="share no PSNR range"):
        bd_rate(two, far)
    assert overlap_range(two, far) is None


def test_bd_rate_of_runs_logged_in_mlflow(study_store, anchors_dir):
    """ELIC's published points, logged as one variant at 6 lambdas: through MLflow, the same -7.0 %."""
    frame = runs("study", study_store)
    curves = {c.name: c for c in curves_from_runs(frame, by="variant_id")}
    assert sorted(curves) == ["balle", "elic"] and len(curves["elic"]) == 6
    vtm = read_anchor(anchors_dir / VTM)
    through_mlflow = bd_rate(vtm, curves["elic"])
    assert through_mlflow.percent == pytest.approx(bd_rate(vtm, read_anchor(anchors_dir / ELIC)).percent, rel=1e-12)
    assert through_mlflow.percent == pytest.approx(-7.0, abs=0.1)


def test_a_chosen_set_of_runs_is_one_curve(study_store, anchors_dir):
    """Any runs a user picks (here: ELIC's four lowest rates by run id) make one RD curve."""
    frame = runs("study", study_store)
    chosen = frame[frame["variant_id"] == "elic"].nsmallest(4, "bpp")
    curve = curve_from_runs(frame[frame["run_id"].isin(chosen["run_id"])], "my pick")
    assert curve.name == "my pick" and list(curve.bpp) == sorted(chosen["bpp"])
    bpps, psnrs = _raw(anchors_dir, ELIC)
    vtm = read_anchor(anchors_dir / VTM)
    assert bd_rate(vtm, curve).percent == pytest.approx(
        bd_rate(vtm, RDCurve("first four", bpps[:4], psnrs[:4], "file")).percent, rel=1e-12)
