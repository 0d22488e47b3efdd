"""rdc.paths: folders a command will write into are checked without creating anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdc.errors import UserError
from rdc.paths import check_writable_file, check_writable_folder, check_writable_location

AS_ROOT = os.geteuid() == 0


def listing(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*"))


def refused(call, tmp_path: Path) -> str:
    before = listing(tmp_path)
    with pytest.raises(UserError) as caught:
        call()
    assert listing(tmp_path) == before
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_existing_and_future_folders_pass_and_nothing_is_created(tmp_path: Path):
    assert check_writable_folder(tmp_path, key="runs_dir") == tmp_path
    assert check_writable_folder(tmp_path / "runs" / "deep", key="runs_dir") == tmp_path / "runs" / "deep"
    assert listing(tmp_path) == []


def test_a_file_where_the_folder_should_be(tmp_path: Path):
    (tmp_path / "runs").write_text("notes")
    text = refused(lambda: check_writable_folder(tmp_path / "runs", key="runs_dir"), tmp_path)
    assert text.startswith(f"runs_dir='{tmp_path / 'runs'}'") and "is a file, not a folder" in text


def test_a_path_through_a_file(tmp_path: Path):
    (tmp_path / "runs").write_text("notes")
    text = refused(lambda: check_writable_folder(tmp_path / "runs" / "ray", key="cluster.storage_path"), tmp_path)
    assert f"goes through {tmp_path / 'runs'}, which is a file" in text


def test_an_unwritable_place(tmp_path: Path):
    # /proc/1 refuses writes even to root: a real unwritable folder on any Linux.
    if not Path("/proc/1").is_dir():
        pytest.skip("no /proc on this system")
    text = refused(lambda: check_writable_folder("/proc/1/runs", key="runs_dir"), tmp_path)
    assert "not writable (/proc/1, where it would be created)" in text


@pytest.mark.skipif(AS_ROOT, reason="root may write into a folder whatever its mode")
def test_a_read_only_folder(tmp_path: Path):
    (tmp_path / "ro").mkdir(mode=0o500)
    refused(lambda: check_writable_folder(tmp_path / "ro" / "runs", key="runs_dir"), tmp_path)


def test_a_symlink_loop_on_the_way(tmp_path: Path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    text = refused(lambda: check_writable_folder(tmp_path / "loop" / "runs", key="runs_dir"), tmp_path)
    assert "symbolic link loop" in text


def test_artifact_locations(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    assert check_writable_location("s3://bucket/artifacts", key="tracking.artifact_root") == "s3://bucket/artifacts"
    assert check_writable_location(None, key="tracking.artifact_root") is None
    assert check_writable_location(str(tmp_path / "art"), key="k") == str(tmp_path / "art")
    refused(lambda: check_writable_location((tmp_path / "file").as_uri(), key="tracking.artifact_root"), tmp_path)
    refused(lambda: check_writable_location(str(tmp_path / "file" / "a"), key="tracking.artifact_root"), tmp_path)


def test_output_files(tmp_path: Path):
    assert check_writable_file(tmp_path / "out" / "table.csv", key="--out") == tmp_path / "out" / "table.csv"
    (tmp_path / "folder").mkdir()
    refused(lambda: check_writable_file(tmp_path / "folder", key="--out"), tmp_path)
    refused(lambda: check_writable_file("/proc/1/table.csv", key="--out"), tmp_path)
