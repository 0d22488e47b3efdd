"""The analysis commands refuse bad input in one line, in seconds, and write nothing: a store
nobody answers for, a file that is not an MLflow store, an anchor of the wrong shape, an --out
that cannot be a folder."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest

from analysis.anchors import read_anchor
from analysis.cli import frontier_main, report_main
from rdc.errors import UserError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_frontier_gives_up_on_a_silent_server_within_seconds():
    started = time.monotonic()
    with pytest.raises(UserError) as err:
        frontier_main(["--experiment", "demo", "--tracking-uri", "http://127.0.0.1:9"])
    assert err.value.key == "--tracking-uri" and time.monotonic() - started < 10


@pytest.mark.parametrize("kind", ["empty", "foreign"])
def test_frontier_never_writes_into_a_file_that_is_not_an_mlflow_store(tmp_path, kind):
    path = tmp_path / "other.db"
    if kind == "empty":
        path.write_bytes(b"")
    else:  # another program's sqlite database
        with sqlite3.connect(path) as db:
            db.execute("create table contacts (name text)")
    before = digest(path)
    with pytest.raises(UserError) as err:
        frontier_main(["--experiment", "demo", "--tracking-uri", f"sqlite:///{path}"])
    assert err.value.key == "--tracking-uri"
    assert digest(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


@pytest.mark.parametrize("results", [{"bpp": 0.5, "psnr": 30.0}, {"bpp": "0.1,0.2", "psnr": [30, 31]},
                                     {"bpp": [0.1, 0.2], "psnr": {"a": 30}}])
def test_an_anchor_json_of_the_wrong_shape_is_one_line(tmp_path, results):
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps({"name": "X", "results": results}))
    with pytest.raises(UserError) as err:
        read_anchor(path)
    assert err.value.key == "--anchor" and "not a list of numbers" in err.value.reason


def test_report_out_under_a_file_is_refused_before_the_store_is_read(tmp_path, known_store):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    with pytest.raises(UserError) as err:
        report_main(["--experiment", "frontier", "--tracking-uri", known_store, "--out", str(blocker / "report")])
    assert err.value.key == "--out" and blocker.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
