"""`rdc frontier --table1`: the study's Table 1 for a sweep of 2 variants x 3 lambdas (6 MLflow
runs), its rate savings equal to the bjontegaard package called directly on the same points and
the shared anchors."""

from __future__ import annotations

import io
import json
import warnings

import bjontegaard
import numpy as np
import pandas as pd
import pytest

from analysis.anchors import read_anchor
from analysis.labels import savings_column
from rdc import names
from rdc.cli import main

from .conftest import CPU, GPU, RD6, RD6_LAMBDAS

BPG444 = "tensorflow_compression/PSNR_sRGB_RGB/bpg444.txt"
VTM = "compressai/vtm.json"


def _direct(anchor_bpp, anchor_psnr, variant: str) -> float:
    """Rate savings (-BD-rate, %) of a variant's logged points, by bjontegaard itself."""
    points = RD6[variant][3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return -bjontegaard.bd_rate(anchor_bpp, anchor_psnr, [b for b, _ in points], [p for _, p in points],
                                    method="pchip", require_matching_points=False)


def _table1(capsys, store, anchors_dir, *argv) -> tuple[int, str, str]:
    code = main(["frontier", "--experiment", "rd6", "--tracking-uri", store, "--table1",
                 "--anchor", str(anchors_dir / BPG444), "--anchor", str(anchors_dir / VTM), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("rule", ["common", "overlap"])
def test_rate_savings_equal_bjontegaard_directly(capsys, lambda_store, anchors_dir, rule):
    code, out, err = _table1(capsys, lambda_store, anchors_dir, "--format", "json", "--psnr-range", rule)
    assert code == 0, err
    payload = json.loads(out)
    rows = {row["label"]: row for row in payload["rows"]}
    assert [(r["label"], r["variant_id"]) for r in payload["rows"]] == [("A", "big"), ("B", "small")]
    bpg, vtm = read_anchor(anchors_dir / BPG444), read_anchor(anchors_dir / VTM)
    for label, variant in (("A", "big"), ("B", "small")):
        assert rows[label]["rd_points"] == 3
        assert rows[label][savings_column(bpg.name)] == pytest.approx(_direct(bpg.bpp, bpg.psnr, variant), rel=1e-9)
        assert rows[label][savings_column(vtm.name)] == pytest.approx(_direct(vtm.bpp, vtm.psnr, variant), rel=1e-9)
    # The frontier at one lambda (named), the curves from all three.
    table1 = payload["table1"]
    assert payload["lmbda"] == RD6_LAMBDAS[0] and table1["lambdas"] == list(RD6_LAMBDAS)
    assert table1["rule"] == rule and table1["references"] == [bpg.name, vtm.name]
    if rule == "common":
        assert table1["psnr_range"] == [29.0, 34.0]
        assert "over 29.00-34.00 dB (the PSNR range every row's curve and every anchor cover)" in table1["description"]
    else:
        assert table1["psnr_range"] is None and "each over its pair's own PSNR overlap" in table1["description"]
        assert {(r["psnr_low"], r["psnr_high"]) for r in table1["ranges"]} == {(29.0, 34.0)}
    assert table1["description"].startswith("frontier at train.lmbda=0.0035; RD curves from each architecture's "
                                            "runs at every lambda (0.0035, 0.0067, 0.013)")


def test_the_study_columns_and_savings_vs_a_chosen_row(capsys, lambda_store, anchors_dir):
    code, out, _ = _table1(capsys, lambda_store, anchors_dir, "--format", "csv", "--versus", "B")
    assert code == 0
    table = pd.read_csv(io.StringIO(out)).set_index("label")
    assert table.loc["A", "params_m"] == 38.0 and table.loc["B", names.DECODE_KFLOPS_PER_PX] == 150.0
    for device, per_kflop in ((CPU, 1000.0), (GPU, 20000.0)):
        column = names.runtime_metric(names.DECODE_NETWORKS, names.MPS, device)
        assert table.loc["A", column] == pytest.approx(per_kflop / 900.0)
    # Against row B's own curve: B saves nothing, A as bjontegaard says from the same points.
    small = np.array(RD6["small"][3])
    assert table.loc["B", savings_column("B")] == pytest.approx(0.0, abs=1e-9)
    assert table.loc["A", savings_column("B")] == pytest.approx(_direct(small[:, 0], small[:, 1], "big"), rel=1e-9)


def test_table_for_people_has_labels_with_units(capsys, lambda_store, anchors_dir):
    code, out, _ = _table1(capsys, lambda_store, anchors_dir)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Table 1 of 'rd6': 2 of 2 ranked runs")
    assert "frontier at train.lmbda=0.0035" in lines[1]
    for words in ("parameters (M)", "decode complexity (kFLOPs/px)", f"decode (networks only) throughput on {GPU} (MP/s)",
                  "rate savings vs BPG (4:4:4) (%)", "rate savings vs VTM (%)", "architecture"):
        assert words in out
    assert "run_id" not in out and "None" not in out and "<NA>" not in out and " -0 " not in out + " "


def test_rows_without_a_curve_are_named(capsys, lambda_store, anchors_dir):
    code, out, _ = main(["frontier", "--experiment", "mixed", "--tracking-uri", lambda_store, "--table1",
                         "--anchor", str(anchors_dir / BPG444), "--format", "json", "--psnr-range", "overlap"]), *capsys.readouterr()
    assert code == 0
    payload = json.loads(out)
    rows = {row["label"]: row for row in payload["rows"]}
    assert rows["B"]["variant_id"] == "v3" and rows["B"][savings_column("BPG (4:4:4)")] is None
    assert any(n.startswith("B (v3): 1 RD point(s), pchip BD-rate needs 2: no rate savings") for n in payload["notes"])
    # The toy curves (12-21 dB) and BPG (from 23.8 dB) share no PSNR: said, not a number.
    assert any(n.startswith("A vs BPG (4:4:4):") and "share no PSNR range" in n for n in payload["notes"])


@pytest.mark.parametrize("argv, line", [
    (["--versus", "Z"], "--versus='Z': not a row of this Table 1: allowed: A, B"),
    (["--psnr-range", "40:30"], "--psnr-range='40:30': not a PSNR range"),
    (["--psnr-range", "28:35"], None),  # outside the curves (29-34 dB): every value a note, exit 0
])
def test_bad_table1_input(capsys, lambda_store, anchors_dir, argv, line):
    code, out, err = _table1(capsys, lambda_store, anchors_dir, *argv, "--format", "json")
    if line is None:
        payload = json.loads(out)
        assert code == 0 and all(row[savings_column("VTM")] is None for row in payload["rows"])
        assert any("is not inside the overlap" in n for n in payload["notes"])
        return
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and line in err, err


def test_table1_options_need_table1(capsys, lambda_store):
    assert main(["frontier", "--experiment", "rd6", "--tracking-uri", lambda_store, "--versus", "A"]) == 2
    assert "--versus='A': only with --table1" in capsys.readouterr().err
