"""rdc.atomic: a file is replaced whole or left as it was; no temporary file stays behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdc.atomic import atomic_writer, write_atomic


def test_replaces_content_and_keeps_permissions(tmp_path: Path):
    target = tmp_path / "state.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert target.stat().st_mode & 0o777 == 0o640
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_new_file_gets_the_umask_default(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644


def test_failure_mid_write_leaves_the_old_file(tmp_path: Path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as handle:
            handle.write("half of the new con")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_killed_writer_leaves_the_old_file(tmp_path: Path):
    """A real process killed mid-write (os._exit inside the block): the target is the old one."""
    target = tmp_path / "state.json"
    target.write_text("old")
    code = (
        "import os, sys\n"
        "from rdc.atomic import atomic_writer\n"
        "with atomic_writer(sys.argv[1]) as f:\n"
        "    f.write('x' * 100000); f.flush()\n"
        "    os._exit(9)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=repo, timeout=60)
    assert done.returncode == 9
    assert target.read_text() == "old"


def test_missing_folder_raises_and_creates_nothing(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "state.json", "x")
    assert list(tmp_path.iterdir()) == []


def test_binary_mode_only_whole_file_modes(tmp_path: Path):
    with pytest.raises(ValueError):
        with atomic_writer(tmp_path / "x", "a"):
            pass
