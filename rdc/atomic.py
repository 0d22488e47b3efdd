"""Files written whole or not at all: a state file cut off mid-write (Ctrl-C, a full disk, a
killed process) must never be what the next run reads.

The new content goes to a temporary file in the same folder (so the final rename stays on one
filesystem), is flushed to the disk, and then replaces the target in one `os.replace`; the
folder is synced so the rename itself survives a crash. On any failure the temporary file is
removed and the old target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """`with atomic_writer(path) as f: f.write(...)`: `path` holds the new content only if the
    block finishes; mode "w" (text) or "wb" (bytes)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode {mode!r}: atomic_writer writes whole files ('w' or 'wb')")
    target = Path(path)
    folder = target.parent
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        _keep_mode(descriptor, target)
        with os.fdopen(descriptor, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def write_atomic(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Replace `path` with `data` (text or bytes) in one step."""
    with atomic_writer(path, "wb" if isinstance(data, bytes) else "w", encoding=encoding) as handle:
        handle.write(data)


def _keep_mode(descriptor: int, target: Path) -> None:
    # mkstemp makes 0600 files: keep the target's permissions, or the umask's default for a new file.
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.fchmod(descriptor, mode)


def _sync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not let a folder be opened; the rename has happened anyway
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
