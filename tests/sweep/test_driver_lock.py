"""sweep.driver_lock: a second driver of the same sweep is refused, whatever its TMPDIR; real
processes hold the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdc.errors import UserError
from sweep.driver_lock import driver_lock, lock_path

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from pathlib import Path
from sweep.driver_lock import driver_lock
with driver_lock(Path(sys.argv[1]), "paper"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def start_holder(sweep_folder: Path, tmpdir: Path) -> subprocess.Popen:
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(sweep_folder)], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_driver_with_another_tmpdir_is_refused(tmp_path: Path, monkeypatch):
    sweep_folder = tmp_path / "runs" / "ray" / "paper"
    holder = start_holder(sweep_folder, tmp_path / "tmp-a")
    try:
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp-b"))
        with pytest.raises(UserError) as caught:
            with driver_lock(sweep_folder, "paper"):
                pass
        text = str(caught.value)
        assert "another rdc sweep is running this sweep" in text and f"pid {holder.pid}" in text
        assert "\n" not in text
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with driver_lock(sweep_folder, "paper") as path:  # released once the holder ended
        assert path == lock_path(sweep_folder) and f"pid {os.getpid()}" in path.read_text()


def test_a_killed_holder_releases_the_lock(tmp_path: Path):
    sweep_folder = tmp_path / "runs" / "ray" / "paper"
    holder = start_holder(sweep_folder, tmp_path / "tmp")
    holder.kill()
    holder.wait(timeout=30)
    holder.stdin.close()
    holder.stdout.close()
    started = time.monotonic()
    with driver_lock(sweep_folder, "paper"):
        assert time.monotonic() - started < 1


def test_same_process_twice_is_refused(tmp_path: Path):
    with driver_lock(tmp_path / "paper", "paper"):
        with pytest.raises(UserError):
            with driver_lock(tmp_path / "paper", "paper"):
                pass
    with driver_lock(tmp_path / "paper", "paper"):
        pass


def test_other_sweeps_are_not_held(tmp_path: Path):
    with driver_lock(tmp_path / "paper", "paper"), driver_lock(tmp_path / "paper.v2", "paper.v2"):
        assert lock_path(tmp_path / "paper") != lock_path(tmp_path / "paper.v2")


def test_release_leaves_nothing_behind(tmp_path: Path):
    sweep_folder = tmp_path / "runs" / "ray" / "paper"
    with pytest.raises(UserError):
        with driver_lock(sweep_folder, "paper"):
            assert lock_path(sweep_folder).exists()
            raise UserError("cluster.trial_cpus", 99)  # a refusal after the lock was taken
    assert list(tmp_path.iterdir()) == []  # no lock file, no folders made for it
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mine.txt").write_text("x")
    with driver_lock(sweep_folder, "paper"):
        (sweep_folder).mkdir()  # the sweep wrote into its folder: kept
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mine.txt", "ray"]
    assert not lock_path(sweep_folder).exists()
