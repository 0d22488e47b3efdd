"""`rdc frontier` through rdc.cli.main: every format, and one clear line with exit 2 on bad input."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from rdc import names
from rdc.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["frontier", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table(capsys, known_store):
    code, out, err = _run(capsys, "--experiment", "known", "--tracking-uri", known_store)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == ("frontier of 'known': 4 of 8 ranked runs (minimise decode_kflops_per_px, minimise rd_loss)")
    assert "hypervolume 0.8171" in out and "1 run(s) lack rd_loss" in out
    rows = [line.split() for line in lines if line.split()[:1] in (["A"], ["B"], ["C"], ["D"])]
    # One order everywhere: A (most complex) first, as the study's Table 1 and the report.
    assert [(r[0], r[2]) for r in rows] == [("A", "e"), ("B", "b"), ("C", "c"), ("D", "a")]
    assert "not counted: 1 FAILED, 1 RUNNING run(s)" in out


def test_csv_is_the_table_and_notes_go_to_stderr(capsys, known_store):
    code, out, err = _run(capsys, "--experiment", "known", "--tracking-uri", known_store, "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    assert list(table["variant_id"]) == ["e", "b", "c", "a"]
    assert list(table[names.RD_LOSS]) == [0.5, 0.8, 0.8, 1.0]
    assert "hypervolume" in err


def test_json_carries_the_hypervolume_and_its_normalisation(capsys, known_store):
    code, out, _ = _run(capsys, "--experiment", "known", "--tracking-uri", known_store, "--format", "json")
    assert code == 0
    payload = json.loads(out)
    assert payload["objectives"] == {names.DECODE_KFLOPS_PER_PX: "min", names.RD_LOSS: "min"}
    assert payload["hypervolume"]["value"] == pytest.approx(5.72 / 7, rel=1e-12)
    assert payload["hypervolume"]["reference_point"] == 1.1
    assert payload["hypervolume"]["normalised_bounds"][names.RD_LOSS] == {"best": 0.5, "worst": 1.2}
    assert [row["variant_id"] for row in payload["rows"]] == ["e", "b", "c", "a"]
    assert payload["runs_considered"] == 9


def test_markdown(capsys, known_store):
    code, out, _ = _run(capsys, "--experiment", "known", "--tracking-uri", known_store, "--format", "md")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].replace(" ", "").startswith("|label|pareto_rank|variant_id|family|decode_kflops_per_px|rd_loss|")
    assert len(table) == 2 + 4


def test_all_runs_with_ranks_and_a_family(capsys, known_store):
    code, out, _ = _run(capsys, "--experiment", "known", "--tracking-uri", known_store, "--format", "csv",
                        "--all", "--family", "ELIC/CHARM:SwinT")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    # Within the family alone: d (300, .8) and e (400, .5) lead; e beats k (400, .6), k beats g (500, .9).
    assert dict(zip(table["variant_id"], table["pareto_rank"])) == {"d": 1, "e": 1, "k": 2, "g": 3}


def test_three_objectives(capsys, known_store, devices):
    code, out, _ = _run(capsys, "--experiment", "known3d", "--tracking-uri", known_store, "--format", "json",
                        "--x", names.DECODE_KFLOPS_PER_PX, "--y", names.PSNR, "--z", names.decode_ms(devices["cpu"]))
    assert code == 0
    payload = json.loads(out)
    assert payload["objectives"][names.PSNR] == "max"
    assert sorted(row["variant_id"] for row in payload["rows"]) == ["p", "q", "r", "t"]
    assert payload["hypervolume"]["value"] == pytest.approx(0.406, rel=1e-12)


@pytest.mark.parametrize("argv, line", [
    (["--experiment", "nope"], "rdc frontier: error: --experiment='nope': no such experiment in sqlite:///"),
    (["--experiment", "all-failed"], "rdc frontier: error: --experiment='all-failed': has no FINISHED runs (2 FAILED, 1 RUNNING)"),
    (["--experiment", "empty"], "rdc frontier: error: --experiment='empty': has no runs yet"),
    (["--experiment", "known", "--z", "decode_ms_tpu-v4"],
     "rdc frontier: error: --z='decode_ms_tpu-v4': no finished run has this metric: allowed: "),
    (["--experiment", "known", "--y", "psnr:up"],
     "rdc frontier: error: --y='psnr:up': not an objective: allowed: METRIC, METRIC:min or METRIC:max"),
    (["--experiment", "known", "--format", "xml"], "rdc frontier: error: --format: invalid choice: 'xml'"),
    (["--experiment", "known", "--family", "Nope/X:Y"], "rdc frontier: error: --family='Nope/X:Y': no finished run of this family"),
    (["--experiment", "known", "--lmbda", "0.5"], "rdc frontier: error: --lmbda=0.5: no finished run at this lambda: allowed: 0.0125"),
    (["--experiment", "known", "--hv-bounds", "rd_loss=zero:1"], "rdc frontier: error: --hv-bounds='rd_loss=zero:1': not METRIC=BEST:WORST"),
    (["--experiment", "known", "--hv-bounds", "rd_loss=2:1"], "rdc frontier: error: --hv-bounds="),
    ([], "rdc frontier: error: --experiment: required"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, known_store, argv, line):
    code, out, err = _run(capsys, "--tracking-uri", known_store, *argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(line), err


def test_missing_store_file(capsys, tmp_path):
    code, out, err = _run(capsys, "--experiment", "demo", "--tracking-uri", f"sqlite:///{tmp_path}/none.db")
    assert code == 2 and out == "" and "no such sqlite file" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "none.db").exists()


def test_rd_loss_compares_runs_at_one_lambda(capsys, study_store):
    code, out, _ = _run(capsys, "--experiment", "study", "--tracking-uri", study_store, "--format", "json")
    assert code == 0
    payload = json.loads(out)
    assert payload["notes"][0].startswith("RD loss compares runs at one lambda: using train.lmbda=0.0018 (2 runs; also")
    assert {row["train.lmbda"] for row in payload["rows"]} == {0.0018}
    code, out, _ = _run(capsys, "--experiment", "study", "--tracking-uri", study_store, "--format", "json",
                        "--lmbda", "0.013")
    payload = json.loads(out)
    assert payload["notes"] == [] and {row["train.lmbda"] for row in payload["rows"]} == {0.013}
    assert payload["runs_considered"] == 2
