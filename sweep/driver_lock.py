"""One driver per sweep, wherever it runs: the lock lives with the sweep, not in TMPDIR.

A lock file in the temporary folder only stops a second driver that has the same TMPDIR on the
same host; one started with another TMPDIR, or on another host that mounts the same runs_dir,
ran the same sweep at once (trials crashed, a checkpoint was pruned under the other driver).
So the lock is a POSIX record lock (fcntl) on `<sweep folder>.lock`, beside the sweep's Tune
folder: the kernel releases it when the holder exits however it exits, and NFS carries such
locks between hosts.

A refused sweep leaves nothing behind, so the holder removes the file (and the folders it
created for it, when they are still empty) on release. It unlinks before unlocking, and a
driver that locked a file checks that the file is still the one at the path: one that locked a
file its holder had just removed tries again on the new one.
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rdc.errors import UserError

ALLOWED = "wait for it to finish, or another sweep_name"

# POSIX locks belong to a process: a second lock of the same file from this process would be
# granted. Drivers started in one process (tests call rdc.cli.main) are told apart here.
_HELD: set[str] = set()


def lock_path(sweep_folder: Path) -> Path:
    # Beside the folder, not in it: a fresh launch deletes and recreates the folder.
    return sweep_folder.with_name(sweep_folder.name + ".lock")


@contextmanager
def driver_lock(sweep_folder: Path, sweep_name: str) -> Iterator[Path]:
    """Hold the sweep's lock for the block; UserError naming the holder if another driver has it."""
    path = lock_path(Path(sweep_folder).absolute())
    if str(path) in _HELD:
        raise UserError("sweep_name", sweep_name, reason=f"another rdc sweep is running this sweep (in this process; "
                                                         f"lock {path})", allowed=ALLOWED)
    created = _make_folders(path.parent)
    try:
        descriptor = _lock(path, sweep_name)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        _HELD.add(str(path))
        yield path
    finally:
        _HELD.discard(str(path))
        path.unlink(missing_ok=True)  # before unlocking (see above)
        os.close(descriptor)  # releases the lock
        _remove_empty(created)


def _lock(path: Path, sweep_name: str) -> int:
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES, as POSIX allows either
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip() or "an unknown process"
            os.close(descriptor)
            raise UserError("sweep_name", sweep_name, reason=f"another rdc sweep is running this sweep ({holder}; "
                                                             f"lock {path})", allowed=ALLOWED) from None
        try:
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # its holder removed the file as we opened it: lock the new one


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue  # another driver made it at the same moment: not ours to remove
        created.append(folder)
    return created


def _remove_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:  # not empty: the sweep (or another driver) wrote there
            return
