"""`rdc knobs`: every registered knob says what it means, the range it states is the range a
spec is held to, and docs/models.md's knob table is the registry's own text.

The tests walk the registry, so a new component or knob is covered (and a knob without a
meaning, or with a stated range nobody enforces, fails) without editing this file."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml

from models import parse_spec
from models import knobs as knob_listing
from models import registry
from models.component import knob
from models.errors import SpecError
from models.tiny import TINY_M, tiny_families, tiny_spec
from rdc.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
COMPONENTS = [(kind, name) for kind in registry.KINDS for name in registry.names(kind)]
ROWS = knob_listing.knob_rows()
ROW_IDS = [f"{row.kind}.{row.component}.{row.knob}" for row in ROWS]


def base_spec(kind: str, name: str) -> dict:
    """A valid tiny spec holding component `name` as its `kind`."""
    position = registry.KINDS.index(kind)
    transform, entropy, hyper = next(family for family in tiny_families() if family[position] == name)
    return tiny_spec(transform, entropy, hyper)


def assert_refused(kind: str, name: str, knob_name: str, value) -> None:
    raw = base_spec(kind, name)
    raw[kind][knob_name] = value
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    assert err.value.key == f"{kind}.{knob_name}", f"{value!r} was refused for another reason: {err.value}"


def accepted_by_the_knob(kind: str, name: str, knob_name: str, value) -> None:
    cls = registry.component_class(kind, name)
    registry.coerce_knob(cls, registry.knobs(kind, name)[knob_name], value, f"{kind}.{knob_name}")


def test_rows_cover_every_knob_of_every_registered_component():
    assert {(row.kind, row.component) for row in ROWS} == set(COMPONENTS)
    for kind, name in COMPONENTS:
        assert [row.knob for row in knob_listing.knob_rows(kind, name)] == list(registry.knobs(kind, name))


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=[f"{k}.{n}" for k, n in COMPONENTS])
def test_stated_defaults_are_the_defaults(kind, name):
    # The default column, read back as a YAML space would, builds the component's default.
    stated = {row.knob: yaml.safe_load(row.default) for row in knob_listing.knob_rows(kind, name)}
    assert registry.parse_component(kind, {"type": name, **stated}) == registry.component_class(kind, name)()


def test_every_knob_says_what_it_means():
    for kind, name in COMPONENTS:
        for knob_name, field in registry.knobs(kind, name).items():
            meaning = field.metadata.get("doc", "")
            assert len(meaning.split()) >= 4, f"{kind}.{name}.{knob_name} needs a line of meaning (knob(..., doc=...))"
    with pytest.raises(ValueError, match="doc"):
        knob(1, doc=" ")


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_the_stated_range_is_the_one_enforced(row):
    """Each part of the `allowed` text, read as a user reads it: a value just inside is taken,
    a value just outside is refused by parse_spec naming this knob."""
    kind, name, knob_name = row.kind, row.component, row.knob
    tiny = base_spec(kind, name)[kind]
    current = tiny.get(knob_name, dataclasses.asdict(registry.component_class(kind, name)())[knob_name])
    is_list = row.type == "list[int]"
    for part in row.allowed.split("; "):
        if bound := re.fullmatch(r"(each )?>= (-?[0-9.]+)", part):
            assert bool(bound.group(1)) == is_list
            low = float(bound.group(2)) if row.type == "float" else int(bound.group(2))
            below = math.nextafter(low, -math.inf) if row.type == "float" else low - 1
            inside, outside = ([low, *current[1:]], [below, *current[1:]]) if is_list else (low, below)
            accepted_by_the_knob(kind, name, knob_name, inside)
            assert_refused(kind, name, knob_name, outside)
        elif count := re.fullmatch(r"(\d+) (widths|counts)", part):
            n = int(count.group(1))
            assert len(current) == n
            assert_refused(kind, name, knob_name, [*current, current[-1]])
            assert_refused(kind, name, knob_name, current[:-1])
        elif part == "odd":
            assert_refused(kind, name, knob_name, current + 1 if current % 2 else current)
        elif divides := re.fullmatch(r"divides (.+)", part):
            widths = [TINY_M, *(tiny.get("dims", []) if "dims" in divides.group(1) else [])]
            non_divisor = next(v for v in range(2, TINY_M) if all(w % v for w in widths))
            assert_refused(kind, name, knob_name, non_divisor)
        elif part == "sum < M":
            assert_refused(kind, name, knob_name, [TINY_M])
        elif "," in part:  # choices (true, false for a bool)
            choices = [yaml.safe_load(choice) for choice in part.split(", ")]
            for choice in choices:
                accepted_by_the_knob(kind, name, knob_name, choice)
            assert_refused(kind, name, knob_name, "none-of-" + "-".join(map(str, choices)))
        else:
            pytest.fail(f"{kind}.{name}.{knob_name}: no test knows how to break {part!r}; teach this test")


def test_M_is_refused_below_its_stated_bound():
    raw = base_spec("transform", "conv")
    raw["M"] = 0
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    assert err.value.key == "M"


def test_docs_table_is_the_registrys():
    section = knob_listing.docs_section(DOCS.read_text(encoding="utf-8"))
    assert section == knob_listing.markdown_table(), (
        "docs/models.md's knob table is stale: python -m models.knobs --write docs/models.md"
    )


def test_rdc_knobs_lists_everything_in_100_columns(capsys):
    assert main(["knobs"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= knob_listing.WIDTH
    for kind, name in COMPONENTS:
        assert f"\n{kind}.{name}  (" in out
    assert "\nspec  (every model)\n" in out


def test_rdc_knobs_of_a_kind(capsys):
    assert main(["knobs", "transform"]) == 0
    out = capsys.readouterr().out
    titles = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert titles == [f"transform.{name}" for name in registry.names("transform")]


def test_rdc_knobs_of_a_type_spans_kinds(capsys):
    assert main(["knobs", "swint"]) == 0
    out = capsys.readouterr().out
    titles = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert titles == ["transform.swint", "hyper.swint"]


def test_rdc_knobs_of_kind_dot_type_shows_each_knob(capsys):
    assert main(["knobs", "hyper.swint"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line and not line.startswith(" ")] == ["hyper.swint  (SwinT)"]
    for row in knob_listing.knob_rows("hyper", "swint"):
        line = next(line for line in lines if line.split()[:1] == [row.knob])
        assert line.split()[1:3] == [row.type, row.default.split()[0]] and line.endswith(row.allowed)
        assert row.meaning.split()[0] in lines[lines.index(line) + 1]
    assert any(line.split()[:3] == ["depths", "list[int]", "[5,"] for line in lines)  # the published SwinT h_a/h_s


def test_rdc_knobs_markdown_is_the_docs_table(capsys):
    assert main(["knobs", "--markdown"]) == 0
    assert capsys.readouterr().out == knob_listing.markdown_table() + "\n"


@pytest.mark.parametrize("bad", ["hyper.charm", "transformer", "entropy.", "transforms"])
def test_unknown_component_is_one_line_exit_2_listing_what_is_allowed(capsys, bad):
    assert main(["knobs", bad]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err and err.startswith(f"rdc knobs: error: component={bad!r}: allowed: ")
    assert all(f"{kind}.{name}" in err for kind, name in COMPONENTS) and "transform, entropy, hyper" in err


def test_write_regenerates_the_docs_section_only(tmp_path, capsys):
    doc = tmp_path / "models.md"
    doc.write_text(f"# Title\n\nabove\n\n{knob_listing.BEGIN}\nstale\n{knob_listing.END}\n\nbelow\n", encoding="utf-8")
    assert main(["knobs", "--markdown", "--write", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nabove\n\n") and text.endswith("\n\nbelow\n")
    assert knob_listing.docs_section(text) == knob_listing.markdown_table()
    assert main(["knobs", "--markdown", "--write", str(doc)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("already current")


def test_write_without_markers_is_refused_and_writes_nothing(tmp_path, capsys):
    doc = tmp_path / "models.md"
    doc.write_text("# no markers\n", encoding="utf-8")
    assert main(["knobs", "--markdown", "--write", str(doc)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and knob_listing.BEGIN in err
    assert doc.read_text(encoding="utf-8") == "# no markers\n"
