"""Folders a command will write into, checked before anything starts: nothing is created here.

A sweep writes under runs_dir, the artifact root and Ray's storage path; `rdc eval --out` writes
a table. Each must be a folder this user may write, or a path whose nearest existing folder is
one (the command creates the rest later). A path through a file, a file where a folder should
be, or a read-only place is one UserError naming the key, the path and why.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from urllib.parse import urlsplit

from rdc.errors import UserError

ALLOWED = "a folder this user may write (or a path inside one)"


def check_writable_folder(path: str | os.PathLike, *, key: str) -> Path:
    """The absolute folder `path`, once it is (or could be made as) a writable folder."""
    folder = Path(path).expanduser().absolute()
    existing = folder
    while True:
        try:
            mode_is_dir = existing.is_dir() if existing.exists() else None
        except OSError as err:  # exists() does not swallow every error (e.g. a name too long)
            raise UserError(key, str(path), reason=f"cannot reach {existing} ({err.strerror or err})", allowed=ALLOWED) from None
        if mode_is_dir is not None or existing == existing.parent:
            break
        _refuse_loop(existing, key, path)
        existing = existing.parent
    if mode_is_dir is False:
        what = "is a file" if existing == folder else f"goes through {existing}, which is a file"
        raise UserError(key, str(path), reason=f"{what}, not a folder", allowed=ALLOWED)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" ({existing}, where it would be created)"
        raise UserError(key, str(path), reason=f"the folder is not writable{where}", allowed=ALLOWED)
    return folder


def check_writable_location(location: str | None, *, key: str) -> str | None:
    """An artifact location: a local path or file:// URI is checked as a folder; other schemes
    (s3://, gs://, mlflow-artifacts:/) belong to their servers and are passed on as they are."""
    if not location:
        return location
    if "://" not in location:
        return str(check_writable_folder(location, key=key))
    parts = urlsplit(location)
    if parts.scheme == "file":
        check_writable_folder(parts.path, key=key)
    return location


def check_writable_file(path: str | os.PathLike, *, key: str) -> Path:
    """A file the command will (over)write: not a folder, in a writable folder."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise UserError(key, str(path), reason="is a folder, not a file", allowed="a file path in a writable folder")
    if target.exists() and not os.access(target, os.W_OK):
        raise UserError(key, str(path), reason="the file is not writable", allowed="a file path in a writable folder")
    check_writable_folder(target.parent, key=key)
    return target


def _refuse_loop(path: Path, key: str, original) -> None:
    # exists() is False for a symbolic link loop: say so, rather than "would be created".
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UserError(key, str(original), reason=f"{path} is a symbolic link loop", allowed=ALLOWED) from None
            raise UserError(key, str(original), reason=f"{path} is a dangling symbolic link", allowed=ALLOWED) from None
