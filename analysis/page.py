"""One self-contained HTML page: escaped text, tables from DataFrames, PNG figures embedded as
base64 data URIs (their SVG embedded too, as a download link), inline styles; no scripts and
nothing fetched from elsewhere, so the file can be mailed, archived or opened offline as it is.
Tables wrap their cells rather than grow wider than the page (1280 px windows included)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.tbl { border-collapse: collapse; font-size: 12px; margin: .5em 0 1em; max-width: 100%; }
table.tbl th, table.tbl td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; overflow-wrap: break-word; }
table.tbl th { font-weight: 600; vertical-align: bottom; }
table.tbl th { background: #f3f3f3; } table.tbl td:nth-child(-n+3) { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: min(100%, 900px); border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; } .meta { color: #555; } .scroll { overflow-x: auto; }
figcaption a { color: #246; margin-left: .5em; }
"""


@dataclass
class Section:
    title: str
    body: list[str] = field(default_factory=list)  # HTML fragments, already escaped

    def text(self, words: str) -> "Section":
        self.body.append(f"<p>{escape(words)}</p>")
        return self

    def table(self, frame: pd.DataFrame, table_id: str, header: dict[str, str] | None = None) -> "Section":
        """`header` {column: shown name}: e.g. labels with units (analysis.labels.headers)."""
        if header:
            frame = frame.rename(columns=header)
        html_table = frame.to_html(index=False, border=0, classes="tbl", table_id=table_id, na_rep="-",
                                   float_format=lambda v: f"{v:.6g}", escape=True)
        self.body.append(f'<div class="scroll">{html_table}</div>')  # wide tables scroll, never clip
        return self

    def figure(self, png: Path, caption: str, svg: Path | None = None) -> "Section":
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        link = ""
        if svg is not None:
            vector = base64.b64encode(Path(svg).read_bytes()).decode("ascii")
            link = (f'<a href="data:image/svg+xml;base64,{vector}" download="{escape(Path(svg).name)}" '
                    f'data-file="{escape(Path(svg).name)}">SVG</a>')
        self.body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}" '
                         f'data-file="{escape(Path(png).name)}"><figcaption>{escape(caption)}{link}</figcaption></figure>')
        return self

    def items(self, lines: list[str]) -> "Section":
        if lines:
            self.body.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")
        return self


def escape(text) -> str:
    return html.escape(str(text))


def render(title: str, meta: str, sections: list[Section]) -> str:
    body = "".join(f"<section><h2>{escape(s.title)}</h2>{''.join(s.body)}</section>" for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{escape(title)}</h1><p class="meta">{escape(meta)}</p>'
            f"{body}</body></html>\n")
