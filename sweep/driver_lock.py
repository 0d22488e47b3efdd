"""One driver per sweep, wherever it runs: the lock lives with the sweep, not in TMPDIR.

A lock file in the temporary folder only stops a second driver that has the same TMPDIR on the
same host; one started with another TMPDIR, or on another host that mounts the same runs_dir,
ran the same sweep at once (trials crashed, a checkpoint was pruned under the other driver).
So the lock is a POSIX record lock (fcntl) on `<sweep folder>.lock`, next to the sweep's Tune
folder: the kernel releases it when the holder exits however it exits, and NFS carries such
locks between hosts. The file stays after release (it is a few bytes naming the last holder):
removing it would let a driver lock a fresh file while another still holds the old one.
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rdc.errors import UserError

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
        raise UserError("sweep_name", sweep_name, reason=f"this process is already running this sweep (lock {path})",
                        allowed="wait for it to finish, or another sweep_name")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES, as POSIX allows either
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip() or "an unknown process"
            raise UserError("sweep_name", sweep_name, reason=f"another rdc sweep is running this sweep ({holder}; "
                                                             f"lock {path})",
                            allowed="wait for it to finish, or another sweep_name") from None
        holder = f"pid {os.getpid()} on {socket.gethostname()}".encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder, 0)
        _HELD.add(str(path))
        try:
            yield path
        finally:
            _HELD.discard(str(path))
    finally:
        os.close(descriptor)  # releases the lock
