"""How the analysis commands print a table for people: a headline, its notes, then the table,
as plain text or Markdown (csv and json are each command's own: they are for programs)."""

from __future__ import annotations

import pandas as pd

FORMATS = ("table", "csv", "json", "md")  # --format of every command that prints a table


def print_table(headline: str, notes: list[str], table: pd.DataFrame, fmt: str, *, digits: str = ".6g") -> None:
    """`fmt` "md": a bold headline, the notes as a list and a Markdown table; else plain text."""
    if fmt == "md":
        print(f"**{headline}**\n")
        for line in notes:
            print(f"- {line}")
        print()
        print(table.to_markdown(index=False, floatfmt=digits))
        return
    print(headline)
    for line in notes:
        print(f"  {line}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:{digits}}", na_rep="-"))
