"""`rdc plan`: the table it writes, the summary it prints, its refusals, and a user's own space
(the docs' example, used as written) planned and expanded for a sweep with no code change."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rdc import names
from rdc.cli import main
from sweep.config import load_config
from sweep.plan import COST_COLUMNS, CostModel
from sweep.space import expand

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "search_space.md"


def plan(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["plan", "--workers", "1", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_writes_one_row_per_variant_with_its_costs_and_knobs(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    code, printed, _ = plan(["--out", str(out)], capsys)
    assert code == 0

    table = pd.read_csv(out)
    variants = expand(load_config([])["search_space"])
    assert list(table["variant_id"]) == [v.variant_id for v in variants]
    costs = CostModel()
    for variant, row in zip(variants, table.to_dict("records")):
        assert {k: row[k] for k in COST_COLUMNS} == pytest.approx(costs(variant.spec), rel=1e-12)
        assert row["spec.transform.N"] == variant.spec["transform"]["N"]
        assert row[names.SPEC_JSON_PARAM] == variant.spec_json
        assert (row["family"], row["group"], row["label"]) == (variant.family, variant.group, variant.label())
    assert "Conv/Hyperprior:Conv" in printed and f"{len(variants)} variants" in printed
    assert f"wrote {out}" in printed


def test_parquet_holds_the_same_table_as_csv(tmp_path, capsys):
    assert plan(["--out", str(tmp_path / "p.csv")], capsys)[0] == 0
    assert plan(["--out", str(tmp_path / "p.parquet")], capsys)[0] == 0
    csv, parquet = pd.read_csv(tmp_path / "p.csv"), pd.read_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)


@pytest.mark.parametrize("out, allowed", [
    ("plan.txt", "ending in .csv or .parquet"),
    ("missing/plan.csv", "a file in an existing folder"),
    (".", "ending in .csv"),
])
def test_a_bad_out_is_refused_before_any_work_and_nothing_is_written(out, allowed, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, printed, err = plan(["--out", out], capsys)
    assert code == 2 and printed == ""
    assert err.startswith(f"rdc plan: error: --out='{out}'") and allowed in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_numbers_of_workers_or_checks_are_refused(capsys):
    for args, key in ((["--workers", "0"], "--workers=0"), (["--verify", "-1"], "--verify=-1")):
        code, _, err = plan(args, capsys)
        assert code == 2 and err.startswith(f"rdc plan: error: {key}"), err


def test_a_budget_override_removes_exactly_the_variants_over_it(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    code, printed, _ = plan(["--out", str(out), "+search_space.constraints=[{max:{key:decode_kflops_per_px,value:16}}]"], capsys)
    assert code == 0
    table = pd.read_csv(out)
    assert (table[names.DECODE_KFLOPS_PER_PX] <= 16).all() and 0 < len(table) < 4
    assert f"{4 - len(table)} over budget" in printed


def test_verify_rebuilds_sampled_variants_with_real_weights_and_finds_them_equal(capsys):
    code, printed, _ = plan(["--verify", "2"], capsys)
    assert code == 0 and "verified 2/2 sampled variants: fast costs equal" in printed


def test_the_docs_example_space_works_as_written_for_plan_and_sweep(tmp_path, capsys):
    text = DOCS.read_text()
    example = re.search(r"## Define a new search space.*?```yaml\n(.*?)```", text, re.S).group(1)
    promised = re.search(r"# (\d+) variants: (\d+) conv \+ (\d+) ELIC \((\d+) over budget\)", text)
    conf = tmp_path / "conf"
    (conf / "search_space").mkdir(parents=True)
    (conf / "search_space" / "my_space.yaml").write_text(example)

    out = tmp_path / "my.csv"
    code, printed, _ = plan(["--config-dir", str(conf), "search_space=my_space", "--out", str(out)], capsys)
    assert code == 0
    table = pd.read_csv(out)
    total, conv, elic, over = map(int, promised.groups())
    assert (len(table), (table["group"] == "conv").sum(), (table["group"] == "elic").sum()) == (total, conv, elic)
    assert f"{over} over budget" in printed

    # `rdc sweep search_space=my_space --config-dir ...` composes and expands it the same way
    swept = expand(load_config(["search_space=my_space"], str(conf))["search_space"])
    assert [v.variant_id for v in swept] == list(table["variant_id"])


@pytest.mark.slow
def test_the_paper_plan_lists_every_variant_with_its_costs(tmp_path, capsys):
    out = tmp_path / "paper.csv"
    code = main(["plan", "search_space=paper", "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    table = pd.read_csv(out)
    assert len(table) >= 571 and table["variant_id"].is_unique
    assert table[list(COST_COLUMNS)].notna().all().all() and (table[list(COST_COLUMNS)] > 0).all().all()
    assert table["family"].nunique() == 7
