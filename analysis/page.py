"""One self-contained HTML page: escaped text, tables from DataFrames, PNG figures embedded as
base64 data URIs, inline styles; no scripts and nothing fetched from elsewhere, so the file can
be mailed, archived or opened offline as it is."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table.tbl { border-collapse: collapse; font-size: 12px; margin: .5em 0 1em; }
table.tbl th, table.tbl td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.tbl th { background: #f3f3f3; } table.tbl td:nth-child(-n+3) { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; } .meta { color: #555; } .scroll { overflow-x: auto; }
"""


@dataclass
class Section:
    title: str
    body: list[str] = field(default_factory=list)  # HTML fragments, already escaped

    def text(self, words: str) -> "Section":
        self.body.append(f"<p>{escape(words)}</p>")
        return self

    def table(self, frame: pd.DataFrame, table_id: str) -> "Section":
        html_table = frame.to_html(index=False, border=0, classes="tbl", table_id=table_id, na_rep="-",
                                   float_format=lambda v: f"{v:.6g}", escape=True)
        self.body.append(f'<div class="scroll">{html_table}</div>')  # wide tables scroll, never clip
        return self

    def figure(self, path: Path, caption: str) -> "Section":
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        self.body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}" '
                         f'data-file="{escape(Path(path).name)}"><figcaption>{escape(caption)}</figcaption></figure>')
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
