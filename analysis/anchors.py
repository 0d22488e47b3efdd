"""Anchor RD curves from files: the published curves rate savings are measured against.

Formats (see ../shared/data/rd_anchors/SOURCE.md for where each comes from):
- compressai JSON: {"name", "results": {"bpp": [...], "psnr-rgb": [...], ...}} (results/image/kodak/).
- plain JSON: {"bpp": [...], "psnr": [...]} (e.g. VTM 18.0 curves from lossy-vae).
- text: one "bpp, psnr" (comma or whitespace) per line, '#' comments: tensorflow_compression's
  results/image_compression/kodak/PSNR_sRGB_RGB/*.txt and Cheng 2020's RDdata/*.dat.
Only RGB PSNR is accepted: runs report RGB PSNR, and a curve on Y' or in MS-SSIM would give a
confident, wrong BD-rate.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Collection

from analysis.curves import RDCurve
from rdc.errors import UserError

ANCHOR_KEY = "--anchor"
FORMATS = "compressai JSON (results.bpp, results.psnr-rgb), JSON {bpp, psnr}, or text lines 'bpp, psnr' (RGB PSNR)"
_TFC_NAME = re.compile(r'rate-distortion data for "(?P<name>[^"]+)"')
_TFC_METRIC = re.compile(r"second column contains (?P<metric>\S+) values", re.IGNORECASE)


def read_anchor(path: str | Path, key: str = ANCHOR_KEY) -> RDCurve:
    """One anchor curve, sorted by rate; UserError naming the file if it is not an RGB-PSNR curve."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(key, str(path), reason="no such file", allowed=FORMATS)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(key, str(path), reason=f"not readable as text ({type(err).__name__})", allowed=FORMATS) from None
    if path.suffix.lower() == ".json":
        name, bpp, psnr = _json(text, path, key)
    else:
        name, bpp, psnr = _text(text, path, key)
    if len(bpp) != len(psnr) or len(bpp) < 2:
        raise UserError(key, str(path), reason=f"{len(bpp)} rates and {len(psnr)} PSNRs; a curve needs 2+ pairs", allowed=FORMATS)
    bad = [b for b, p in zip(bpp, psnr) if not (isinstance(b, (int, float)) and isinstance(p, (int, float))
                                               and math.isfinite(b) and math.isfinite(p) and b > 0)]
    if bad:
        raise UserError(key, str(path), reason=f"not a positive rate with a finite PSNR: {bad[0]!r}", allowed=FORMATS)
    order = sorted(range(len(bpp)), key=lambda i: bpp[i])
    return RDCurve(name, [bpp[i] for i in order], [psnr[i] for i in order], str(path))


def _json(text: str, path: Path, key: str) -> tuple[str, list, list]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(key, str(path), reason=f"not JSON (line {err.lineno})", allowed=FORMATS) from None
    if not isinstance(data, dict):
        raise UserError(key, str(path), reason="JSON that is not an object", allowed=FORMATS)
    results = data.get("results", data)
    if not isinstance(results, dict) or "bpp" not in results:
        raise UserError(key, str(path), reason="JSON without results.bpp", allowed=FORMATS)
    for field in ("psnr-rgb", "psnr"):
        if field in results:
            for column in ("bpp", field):
                if not isinstance(results[column], list):  # a number, a string or an object is no curve
                    raise UserError(key, str(path), reason=f"results.{column} is a {type(results[column]).__name__}, "
                                                           "not a list of numbers", allowed=FORMATS)
            return str(data.get("name") or path.stem), list(results["bpp"]), list(results[field])
    present = ", ".join(sorted(k for k in results if k != "bpp"))
    raise UserError(key, str(path), reason=f"no RGB PSNR in this curve (it has {present})", allowed=FORMATS)


def _text(text: str, path: Path, key: str) -> tuple[str, list, list]:
    header = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    metric = _TFC_METRIC.search(header)
    if metric and not (metric["metric"].upper().startswith("PSNR") and "R'G'B'" in metric["metric"]):
        raise UserError(key, str(path), reason=f"holds {metric['metric']}, not RGB PSNR",
                        allowed="the PSNR_sRGB_RGB curves of tensorflow_compression")
    if not metric and re.search(r"ms-?ssim(?!.*psnr)", path.name, re.IGNORECASE):
        raise UserError(key, str(path), reason="an MS-SSIM curve (by its name), not RGB PSNR", allowed=FORMATS)
    bpp, psnr = [], []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[,\s]+", line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise UserError(key, f"{path}:{number}", reason=f"not 'bpp, psnr': {line[:40]!r}", allowed=FORMATS) from None
        if len(values) != 2:
            raise UserError(key, f"{path}:{number}", reason=f"{len(values)} numbers, not 'bpp, psnr'", allowed=FORMATS)
        bpp.append(values[0])
        psnr.append(values[1])
    name = _TFC_NAME.search(header)
    return (name["name"] if name else path.stem), bpp, psnr


def unique_names(curves: list[RDCurve], reserved: Collection[str] = ()) -> list[RDCurve]:
    """Every curve under a name of its own, none of them in `reserved` (e.g. the codecs computed
    here), so a reference can be picked by name and tables keyed by it: a repeated name gets its
    file's stem appended, then its folder too, then a number (the same file given twice)."""
    taken = set(reserved)
    labels = [c.name for c in curves]
    for describe in (lambda c: f"{c.name} ({Path(c.source).stem})",
                     lambda c: f"{c.name} ({Path(c.source).parent.name}/{Path(c.source).stem})"):
        counts = Counter(labels)
        labels = [describe(c) if counts[label] > 1 or label in taken else label for c, label in zip(curves, labels)]
    seen: Counter = Counter()
    unique = []
    for label in labels:
        seen[label] += 1
        unique.append(label if seen[label] == 1 and label not in taken else f"{label} #{seen[label]}")
    return [c if label == c.name else RDCurve(label, c.bpp, c.psnr, c.source, c.dropped) for c, label in zip(curves, unique)]
