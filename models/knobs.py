"""`rdc knobs [component]`: every registered component's knobs, read from the registry itself.

Each knob declares its default, meaning and range once, next to itself (`knob(...)` in
models/component.py). This module only reads them, for the terminal and for the knob table of
docs/models.md (between the BEGIN and END markers; tests/models/test_knobs.py fails when the two
differ). Regenerate the docs' table with

    python -m models.knobs --write docs/models.md
"""

from __future__ import annotations

import sys
import textwrap
import typing
from pathlib import Path
from typing import NamedTuple

from models import registry
from models.spec import DEFAULT_M
from rdc.arguments import ArgumentParser
from rdc.atomic import atomic_writer
from rdc.errors import UserError

BEGIN, END = "<!-- knobs:begin -->", "<!-- knobs:end -->"
WIDTH = 100  # a terminal's columns the plain listing fits in
# M is the spec's own (models/spec.py), listed after the components' knobs; parse_spec enforces >= 1.
M_ROW_KIND = "spec"
M_MEANING = "channels of the latent y, the values the entropy model codes (every spec has it)"


class KnobRow(NamedTuple):
    kind: str
    component: str
    knob: str
    type: str
    default: str
    allowed: str
    meaning: str


def knob_rows(kind: str | None = None, name: str | None = None) -> list[KnobRow]:
    """One row per knob of every registered component, or of those of `kind` and/or type `name`."""
    _check_selection(kind, name)
    rows = []
    for k in registry.KINDS:
        if kind is not None and k != kind:
            continue
        for n in registry.names(k):
            if name is not None and n != name:
                continue
            for knob, field in registry.knobs(k, n).items():
                hint, meta = registry.knob_type(k, n, knob), field.metadata
                rows.append(KnobRow(k, n, knob, _type_name(hint), _value(field.default), _allowed(hint, meta), meta["doc"]))
    return rows


def select(component: str | None) -> tuple[str | None, str | None]:
    """`transform`, `swint` or `hyper.swint` -> (kind, type); UserError listing what is allowed."""
    if component is None:
        return None, None
    kind, dot, name = component.partition(".")
    if dot:
        selection = (kind, name)
    elif component in registry.KINDS:
        selection = (component, None)
    else:
        selection = (None, component)
    try:
        _check_selection(*selection)
    except UserError:
        raise UserError("component", component, allowed=_allowed_selections()) from None
    return selection


def markdown_table(kind: str | None = None, name: str | None = None) -> str:
    """The knob table of docs/models.md (without the markers); unfiltered, M's row last."""
    lines = ["| component | knob | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for row in knob_rows(kind, name):
        cells = [f"`{row.kind}.{row.component}`", f"`{row.knob}`", row.type, f"`{row.default}`", row.allowed, row.meaning]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if kind is None and name is None:
        lines.append(f"| `{M_ROW_KIND}` | `M` | int | `{DEFAULT_M}` | >= 1 | {M_MEANING} |")
    return "\n".join(lines)


def plain_listing(kind: str | None = None, name: str | None = None) -> str:
    """The terminal listing: a block per component, the meaning wrapped under each knob;
    unfiltered, M's block last."""
    rows = knob_rows(kind, name) + ([_m_row()] if kind is None and name is None else [])
    header = KnobRow("", "", "knob", "type", "default", "allowed", "")
    widths = [max(len(getattr(row, column)) for row in [header, *rows]) for column in ("knob", "type", "default")]

    def columns(row: KnobRow) -> str:
        cells = (row.knob, row.type, row.default)
        return "  " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + "  " + row.allowed

    lines = [columns(header).rstrip()]
    wrap = textwrap.TextWrapper(width=WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6)
    current = None
    for row in rows:
        if (row.kind, row.component) != current:
            current = (row.kind, row.component)
            lines += ["", _block_title(row)]
        lines.append(columns(row))
        lines += wrap.wrap(row.meaning)
    return "\n".join(lines)


def docs_section(text: str, where: str = "docs") -> str:
    """What lies between the markers of a document (stripped); UserError without them."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise UserError(where, reason=f"needs one {BEGIN} line and, after it, one {END} line")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def write_docs(path: Path) -> bool:
    """Put markdown_table() between the markers of `path`; True when the file changed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError("--write", str(path), reason=err.strerror or "unreadable") from None
    old = docs_section(text, str(path))
    new = markdown_table()
    if old == new:
        return False
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    try:
        with atomic_writer(path) as handle:
            handle.write(f"{before}{BEGIN}\n{new}\n{END}{after}")
    except OSError as err:
        raise UserError("--write", str(path), reason=err.strerror or "not writable") from None
    return True


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="rdc knobs",
        description="Every component's knobs: type, default, allowed values and what each one changes.",
    )
    parser.add_argument("component", nargs="?", help="a kind (transform, entropy, hyper), a type (e.g. charm) or kind.type (e.g. hyper.swint)")
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table of docs/models.md")
    parser.add_argument("--write", metavar="FILE", type=Path,
                        help="put the Markdown table between the knobs markers of FILE (docs/models.md) instead of printing it")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.write is not None:
        if args.component is not None:
            raise UserError("component", args.component, reason="--write puts the whole table in FILE", allowed="no component with --write")
        changed = write_docs(args.write)
        print(f"{args.write}: knob table {'updated' if changed else 'already current'}")
        return 0
    kind, name = select(args.component)
    print(markdown_table(kind, name) if args.markdown else plain_listing(kind, name))
    return 0


def _check_selection(kind: str | None, name: str | None) -> None:
    if kind is not None and kind not in registry.KINDS:
        raise UserError("kind", kind, allowed=", ".join(registry.KINDS))
    if name is not None and not any(name in registry.names(k) for k in ([kind] if kind else registry.KINDS)):
        raise UserError("type", name, allowed=", ".join(_types(kind)))


def _types(kind: str | None) -> list[str]:
    return sorted({n for k in registry.KINDS if kind in (None, k) for n in registry.names(k)})


def _allowed_selections() -> str:
    pairs = [f"{k}.{n}" for k in registry.KINDS for n in registry.names(k)]
    return f"a kind ({', '.join(registry.KINDS)}), a type ({', '.join(_types(None))}) or kind.type ({', '.join(pairs)})"


def _type_name(hint) -> str:
    return "list[int]" if typing.get_origin(hint) is tuple else hint.__name__


def _value(value) -> str:
    """A value as a YAML space spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_value, value)) + "]"
    return str(value)


def _allowed(hint, meta) -> str:
    """The range registry.coerce_knob enforces, then what the component's own check adds."""
    parts = []
    if meta.get("choices") is not None:
        parts.append(", ".join(map(str, meta["choices"])))
    elif hint is bool:
        parts.append("true, false")
    elif meta.get("min") is not None:
        parts.append(("each " if typing.get_origin(hint) is tuple else "") + f">= {meta['min']}")
    if meta.get("allowed"):
        parts.append(meta["allowed"])
    return "; ".join(parts) or "any"


def _m_row() -> KnobRow:
    return KnobRow(M_ROW_KIND, "", "M", "int", str(DEFAULT_M), ">= 1", M_MEANING)


def _block_title(row: KnobRow) -> str:
    if row.kind == M_ROW_KIND:
        return f"{M_ROW_KIND}  (every model)"
    return f"{row.kind}.{row.component}  ({registry.display_name(row.kind, row.component)})"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:  # the one line rdc.cli prints too
        print(f"python -m models.knobs: error: {err}", file=sys.stderr)
        sys.exit(2)
