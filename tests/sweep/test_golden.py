"""Golden files: the variant_ids every shipped space expands to, and the costs `rdc plan
search_space=paper` gives each variant. Refactors must not change either; a deliberate change
(a component gains a knob, so ids change) rewrites them with RDC_REGEN_GOLDEN=1 and the diff
goes into the commit for review.

    RDC_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/sweep/test_golden.py -q

The whole paper plan takes about a minute on two cores; by default a fixed sample of it (at
least one variant per family) is costed and compared, and RDC_GOLDEN_FULL=1 compares all of it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from rdc import names
from sweep.space import expand

REPO = Path(__file__).resolve().parents[2]
SPACES = REPO / "conf" / "search_space"
GOLDEN = Path(__file__).resolve().parent / "golden"
PLAN_GOLDEN = GOLDEN / "plan_paper.csv"
PLAN_COLUMNS = (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.ENCODE_KFLOPS_PER_PX)
REGENERATE = os.environ.get("RDC_REGEN_GOLDEN") == "1"
FULL = REGENERATE or os.environ.get("RDC_GOLDEN_FULL") == "1"
SAMPLE = 8  # variants of the paper plan costed by default (one per family first)

SHIPPED = sorted(p.stem for p in SPACES.glob("*.yaml"))


def _ids_path(space: str) -> Path:
    return GOLDEN / f"{space}.txt"


def _expanded_ids(space: str) -> list[str]:
    return sorted(v.variant_id for v in expand(yaml.safe_load((SPACES / f"{space}.yaml").read_text())))


@pytest.mark.parametrize("space", SHIPPED)
def test_every_shipped_space_expands_to_its_golden_ids(space):
    ids = _expanded_ids(space)
    path = _ids_path(space)
    if REGENERATE:
        path.write_text("".join(f"{i}\n" for i in ids))
    assert path.exists(), f"no golden ids for {space}: run with RDC_REGEN_GOLDEN=1 and commit {path.name}"
    golden = path.read_text().split()
    assert len(ids) == len(golden)
    assert ids == golden, (f"{space}: {len(set(ids) - set(golden))} new ids, {len(set(golden) - set(ids))} gone "
                           "(RDC_REGEN_GOLDEN=1 rewrites the golden file when the change is deliberate)")


def test_no_golden_file_outlives_its_space():
    stale = sorted(p.stem for p in GOLDEN.glob("*.txt") if p.stem not in SHIPPED)
    if REGENERATE:
        for space in stale:
            _ids_path(space).unlink()
        stale = []
    assert stale == []


def _read_plan_golden() -> dict[str, dict[str, float]]:
    with PLAN_GOLDEN.open() as handle:
        return {row[names.TAG_VARIANT_ID]: {k: float(row[k]) for k in PLAN_COLUMNS} for row in csv.DictReader(handle)}


def _write_plan_golden(rows: list[dict]) -> None:
    with PLAN_GOLDEN.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((names.TAG_VARIANT_ID, *PLAN_COLUMNS))
        for row in sorted(rows, key=lambda r: r[names.TAG_VARIANT_ID]):
            writer.writerow((row[names.TAG_VARIANT_ID], *(_number(row[k]) for k in PLAN_COLUMNS)))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def test_rdc_plan_paper_gives_the_golden_costs(tmp_path, capsys):
    if FULL:
        from rdc.cli import main

        out = tmp_path / "plan.csv"
        assert main(["plan", "search_space=paper", "--workers", str(min(os.cpu_count() or 1, 8)), "--out", str(out)]) == 0
        capsys.readouterr()
        with out.open() as handle:
            rows = [{names.TAG_VARIANT_ID: r[names.TAG_VARIANT_ID], **{k: float(r[k]) for k in PLAN_COLUMNS}}
                    for r in csv.DictReader(handle)]
        if REGENERATE:
            _write_plan_golden(rows)
        measured = {r[names.TAG_VARIANT_ID]: {k: r[k] for k in PLAN_COLUMNS} for r in rows}
        golden = _read_plan_golden()
        assert sorted(measured) == sorted(golden)
    else:
        from sweep.config import load_config
        from sweep.plan import cost_model, verification_sample

        cfg = load_config(["search_space=paper"])
        variants = expand(cfg["search_space"])
        sample = verification_sample(variants, SAMPLE)
        costs = cost_model(cfg["profile"]["flops_height"], cfg["profile"]["flops_width"])
        golden = _read_plan_golden()
        assert sorted(golden) == sorted(v.variant_id for v in variants)
        measured = {v.variant_id: {k: costs(v.spec)[k] for k in PLAN_COLUMNS} for v in sample}
    differ = {i: (measured[i], golden[i]) for i in measured if measured[i] != golden[i]}
    assert differ == {}, f"{len(differ)} variants cost differently from the golden plan, e.g. {next(iter(differ.items()))}"
