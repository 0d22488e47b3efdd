"""Every tag and metric rdc/names.py defines is documented in README.md's MLflow contract table:
users' queries and dashboards are written against those names, from the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rdc import names

REPO = Path(__file__).resolve().parent.parent
SECTION = "## What MLflow holds (the contract)"
# String constants of rdc/names.py that are not whole metric names: parts of a name pattern, param
# and artifact names, a run status. Each must still appear inside some name in the table.
NOT_METRICS = {"SHARED_SUFFIX", "STOPPED_STATUS", "SPEC_JSON_PARAM", "MODEL_ARTIFACT", "EVAL_TABLE",
               "EVAL_TABLE_DIR", "DECODE", "DECODE_NETWORKS", "ENCODE", "MS", "MPS", "CV"}


def _constants() -> dict[str, str]:
    """Module-level string constants of rdc/names.py, by name, in the order written."""
    tree = ast.parse(Path(names.__file__).read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _table() -> list[tuple[str, list[str], str]]:
    """(kind, the backticked names, the whole row) of every row of the contract table."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0] in ("tag", "metric", "param", "artifact"):
            rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1]), line))
    return rows


CONSTANTS = _constants()
TAGS = {k: v for k, v in CONSTANTS.items() if k.startswith("TAG_")}
PREFIXES = {k: v for k, v in CONSTANTS.items() if k.endswith("_PREFIX")}
METRICS = {k: v for k, v in CONSTANTS.items() if k not in TAGS and k not in PREFIXES and k not in NOT_METRICS}


def _documented(kind: str) -> set[str]:
    return {name for row_kind, found, _ in _table() if row_kind == kind for name in found}


def test_the_table_is_found_and_the_constants_read():
    assert len(_table()) >= 20
    assert TAGS["TAG_VARIANT_ID"] == names.TAG_VARIANT_ID and METRICS["RD_LOSS"] == names.RD_LOSS


@pytest.mark.parametrize("constant", sorted(TAGS))
def test_every_tag_is_a_tag_row_of_the_table(constant):
    assert TAGS[constant] in _documented("tag"), f"names.{constant} = {TAGS[constant]!r} is not in README's table"


@pytest.mark.parametrize("constant", sorted(METRICS))
def test_every_metric_is_a_metric_row_of_the_table(constant):
    assert METRICS[constant] in _documented("metric"), f"names.{constant} = {METRICS[constant]!r} is not in README's table"


@pytest.mark.parametrize("constant", sorted(PREFIXES) + sorted(NOT_METRICS & set(CONSTANTS)))
def test_every_name_pattern_part_appears_in_a_documented_name(constant):
    value = CONSTANTS[constant]
    everything = [name for _, _, row in _table() for name in re.findall(r"`([^`]+)`", row)]  # meanings too
    if constant in PREFIXES:  # a pattern: some documented name starts with it
        assert any(name.startswith(value) for name in everything), f"names.{constant} = {value!r}"
    else:
        assert any(value in name for name in everything), f"names.{constant} = {value!r}"
