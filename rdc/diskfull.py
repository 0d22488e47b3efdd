"""A full disk is fatal: no amount of retrying frees space, and every retry writes another
traceback onto the same full disk.

`is_disk_full(err)` recognises it however it arrives: an OSError with ENOSPC (or EDQUOT, a full
quota), sqlite's "database or disk is full" (SQLITE_FULL) as sqlite3 raises it, as SQLAlchemy
wraps it, or as MLflow wraps that again (MLflow marks it TEMPORARILY_UNAVAILABLE, which is why
callers that retry on MLflow's transient codes must ask here first), and a tracking server's
error message that carries the same words. `DiskFull` is the one line a user then sees.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from rdc.errors import UserError

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13  # sqlite's result code for "database or disk is full"
_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")
_MAX_CHAIN = 32  # causes followed before giving up (a cycle of __context__ is possible)
LOW_SPACE_BYTES = 1 << 20  # less free than this under a folder a command writes: it is full


class DiskFull(UserError):
    """The disk under `where` is full: the command stops here instead of retrying."""

    def __init__(self, where: str, detail: str):
        super().__init__(where, None, reason=f"the disk is full ({detail})",
                         allowed="free some space (or move runs_dir to a bigger disk), then run again with resume=true")


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or any error it was raised from or wraps, says the disk is full."""
    return disk_full_detail(err) is not None


def disk_full_error(err: BaseException, where: str) -> DiskFull | None:
    """A DiskFull naming `where` if `err` is a full disk, else None (the caller re-raises `err`)."""
    detail = disk_full_detail(err)
    return None if detail is None else DiskFull(where, detail)


def out_of_space(paths) -> str | None:
    """Why one of `paths` (folders a command writes under) is on a full disk, or None. For an
    error that only follows from a full disk (Tune reading back an error file it could not
    write, cut off at 0 bytes), the disk itself is the witness."""
    for path in paths:
        folder = Path(path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            stats = os.statvfs(folder)
        except OSError:
            continue
        free = stats.f_bavail * stats.f_frsize
        if stats.f_blocks and free < LOW_SPACE_BYTES:  # f_blocks 0: a pseudo file system (/proc)
            return f"{free // 1024} KiB left under {path}"
    return None


def disk_full_detail(err: BaseException | None) -> str | None:
    """What says the disk is full in `err` or any error it was raised from or wraps; None if nothing does."""
    seen: set[int] = set()
    pending = [err]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        detail = _own_detail(current)
        if detail is not None:
            return detail
        # SQLAlchemy keeps the driver's error in .orig; Python chains in __cause__/__context__.
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return None


def _own_detail(err: BaseException) -> str | None:
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return err.strerror or errno.errorcode.get(err.errno, str(err.errno))
    if isinstance(err, sqlite3.Error) and getattr(err, "sqlite_errorcode", None) == SQLITE_FULL:
        return "database or disk is full"
    text = str(getattr(err, "message", None) or err).lower()
    for phrase in _FULL_TEXTS:
        if phrase in text:
            return phrase
    return None
