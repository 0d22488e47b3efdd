"""Which runs `rdc frontier` ranks: runs stopped early by a scheduler and models trained elsewhere
are left out of the ranking by default, said so, and shown on request; one row order everywhere."""

from __future__ import annotations

import io
import json

import pandas as pd

from analysis.query import query_frontier
from rdc import names
from rdc.cli import main

from .conftest import REFERENCE_SOURCE, STOPPED_STEP


def _frontier(capsys, store, *argv) -> tuple[int, str, str]:
    code = main(["frontier", "--experiment", "mixed", "--tracking-uri", store, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_stopped_runs_are_left_out_with_a_note(capsys, lambda_store):
    code, out, _ = _frontier(capsys, lambda_store, "--format", "json")
    payload = json.loads(out)
    assert code == 0
    assert "left out 1 run(s) stopped early by a scheduler: --include-stopped shows them" in payload["notes"]
    assert "not counted: 1 FAILED run(s)" in payload["notes"]
    sweep_rows = [r for r in payload["rows"] if r["reference"] is None]
    # At lambda 0.0035: v2 (600 kFLOPs/px), v3 (300), v1 (100) all on the frontier, A most complex first.
    assert [(r["label"], r["variant_id"]) for r in sweep_rows] == [("A", "v2"), ("B", "v3"), ("C", "v1")]
    assert "v4" not in {r["variant_id"] for r in payload["rows"]}
    assert "sweep" not in {r["variant_id"] for r in payload["rows"]}  # the sweep-level run is no variant


def test_include_stopped_ranks_them_and_shows_the_step(capsys, lambda_store):
    code, out, _ = _frontier(capsys, lambda_store, "--format", "json", "--include-stopped")
    payload = json.loads(out)
    assert code == 0
    assert any(n.startswith("including 1 run(s) stopped early by a scheduler") for n in payload["notes"])
    ranked = [r for r in payload["rows"] if r["pareto_rank"] is not None]
    # v4's evaluation at step 500 (50 kFLOPs/px, the lowest RD loss) dominates every other run.
    assert [(r["label"], r["variant_id"], r[names.TAG_STOPPED_EARLY]) for r in ranked] == [("A", "v4", STOPPED_STEP)]


def test_reference_runs_are_labelled_points_not_ranked(capsys, lambda_store):
    code, out, err = _frontier(capsys, lambda_store, "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    assert code == 0
    reference = table[table[names.TAG_REFERENCE].notna()]
    assert reference[["label", names.TAG_REFERENCE]].values.tolist() == [
        ["ref: " + REFERENCE_SOURCE, REFERENCE_SOURCE]]
    assert reference["pareto_rank"].isna().all()
    # Better than every sweep run on both objectives, and still the sweep's own frontier is A, B, C.
    assert list(table["label"][:3]) == ["A", "B", "C"] and len(table) == 4
    assert "1 reference run(s) (trained elsewhere) shown apart, not ranked: --with-references ranks them" in err


def test_with_references_ranks_them_with_the_sweep(lambda_store):
    result = query_frontier("mixed", tracking_uri=lambda_store, with_references=True)
    assert result.table[["label", names.TAG_VARIANT_ID]].values.tolist() == [["A", "bmshj2018-q3"]]
    assert result.references.empty
    assert "1 reference run(s) (trained elsewhere) ranked with the sweep" in result.notes
    assert result.lmbda == 0.0035


def test_all_runs_print_a_dash_not_none(capsys, known_store):
    code, out, _ = main(["frontier", "--experiment", "known", "--tracking-uri", known_store, "--all"]), *capsys.readouterr()
    assert code == 0
    assert "None" not in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["label", "pareto_rank"])
    rows = [line.split() for line in lines[header + 1:]]
    assert [r[0] for r in rows[:4]] == ["A", "B", "C", "D"] and {r[0] for r in rows[4:]} == {"-"}
