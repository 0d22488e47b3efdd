"""Every MLflow tracking URI is checked here before anything opens it.

MLflow and SQLAlchemy open whatever they are given: a mistyped sqlite path becomes a new empty
database, another program's sqlite file receives MLflow's whole schema, a folder or an
unreachable server is retried for minutes. So each command asks `check_tracking_uri` first; it
only ever reads (sqlite files are opened with `mode=ro`), never creates anything, and gives up on
a server within a few seconds. What it refuses is one UserError line: the key, the URI (without
its password) and what is allowed.

This module sits in rdc/, the bottom layer: sweep/ and analysis/ both call it, so it imports
nothing of theirs, and MLflow/SQLAlchemy only inside the functions that need them.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rdc.errors import UserError

# The store every command uses when given none: tracking.uri's default, where `make sweep` writes.
DEFAULT_TRACKING_URI = "sqlite:///runs/mlflow.db"
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's DATABASE_ENGINES
SERVER_SCHEMES = ("http", "https")
OTHER_SCHEMES = ("file", "databricks", "databricks-uc", "uc")  # opened by MlflowClient as they are
KNOWN_SCHEMES = SQL_SCHEMES + SERVER_SCHEMES + OTHER_SCHEMES
DEFAULT_TIMEOUT_S = 5.0  # a server or database that has not answered by then is not going to
ALLOWED_URIS = "sqlite:///PATH/mlflow.db, http(s)://HOST:PORT (an MLflow server), postgresql://..., mysql://..."

# Tables every MLflow SQL store has had since MLflow 1.x: enough to tell it from other databases.
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs", "metrics", "params", "tags"})

# Python module -> what to `pip install` for it, where the two names differ.
_PIP_NAMES = {"psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient", "psycopg": "psycopg[binary]"}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


@dataclass(frozen=True)
class Store:
    """A tracking URI that passed the checks: what kind of store, and for sqlite its file."""

    uri: str
    scheme: str  # the URI's scheme without a driver: sqlite, postgresql, http, ...
    path: Path | None = None  # sqlite only: the database file (absolute)
    exists: bool = True  # False: a sqlite file `rdc sweep` will create


def given_or_default_uri(uri: str | None) -> str:
    """The store a command was given, else $MLFLOW_TRACKING_URI, else DEFAULT_TRACKING_URI."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking_uri(uri: str, *, key: str = "--tracking-uri", may_create: bool = False,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
    """The checked store at `uri`, or UserError naming `key`, the URI and what is allowed.

    `may_create`: a sqlite file that does not exist yet is accepted when the folder it would be
    written in is writable (`rdc sweep` creates its store; every other command only reads one).
    """
    if not isinstance(uri, str) or "://" not in uri or not uri.split("://", 1)[0]:
        raise UserError(key, uri, reason="not a tracking URI (SCHEME://...)", allowed=ALLOWED_URIS)
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in KNOWN_SCHEMES:
        raise UserError(key, display_uri(uri), reason=f"unknown scheme {scheme!r}", allowed=ALLOWED_URIS)
    if scheme == "sqlite":
        return _check_sqlite(uri, key, may_create, timeout_s)
    if scheme in SQL_SCHEMES:
        _check_driver(uri, key)
        _check_reachable(uri, key, scheme, timeout_s)
        return Store(uri, scheme)
    if scheme in SERVER_SCHEMES:
        _check_server(uri, key, timeout_s)
        return Store(uri, scheme)
    if scheme == "file":
        return _check_file_store(uri, key, may_create)
    return Store(uri, scheme)  # databricks: its credentials are the workspace's to check


# -- sqlite ---------------------------------------------------------------------------------
def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (absolute), None for an in-memory database."""
    rest = uri.split("://", 1)[1]
    if not rest.startswith("/"):
        return None  # sqlite://HOST/... is not a local file (SQLAlchemy refuses it as well)
    database = rest[1:].split("?", 1)[0]
    if database in ("", ":memory:"):
        return None
    return Path(database).expanduser().absolute()


def _check_sqlite(uri: str, key: str, may_create: bool, timeout_s: float) -> Store:
    path = sqlite_path(uri)
    if path is None:
        raise UserError(key, uri, reason="not a sqlite file (an in-memory or remote database holds no sweep)",
                        allowed="sqlite:///PATH/mlflow.db")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not may_create:
            raise UserError(key, uri, reason=f"no such sqlite file: {path}",
                            allowed="an existing MLflow sqlite file, e.g. sqlite:///runs/mlflow.db") from None
        _check_can_create(path, key, uri)
        return Store(uri, "sqlite", path, exists=False)
    except NotADirectoryError:
        raise UserError(key, uri, reason=f"a part of {path.parent} is a file, not a folder",
                        allowed="sqlite:///PATH/mlflow.db in a folder") from None
    except OSError as err:  # a symlink loop, a folder we may not enter
        raise UserError(key, uri, reason=f"cannot read {path} ({err.strerror or err})") from None
    import stat

    if stat.S_ISDIR(mode):
        raise UserError(key, uri, reason=f"{path} is a folder, not a sqlite file",
                        allowed=f"a file in it, e.g. sqlite:///{path / 'mlflow.db'}")
    if not stat.S_ISREG(mode):
        raise UserError(key, uri, reason=f"{path} is not a regular file", allowed="sqlite:///PATH/mlflow.db")
    _check_mlflow_tables(path, key, uri, timeout_s)
    return Store(uri, "sqlite", path)


def _check_can_create(path: Path, key: str, uri: str) -> None:
    # The sweep creates the missing folders too: the nearest one that exists must let it.
    folder = path.parent
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(key, uri, reason=f"{folder} is a file, not a folder", allowed="sqlite:///PATH/mlflow.db in a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(key, uri, reason=f"the folder {folder} is not writable",
                        allowed="a sqlite path in a folder this user may write")


def _check_mlflow_tables(path: Path, key: str, uri: str, timeout_s: float) -> None:
    not_a_store = dict(allowed="the sqlite file an rdc sweep or `mlflow server` wrote")
    if path.stat().st_size == 0:
        raise UserError(key, uri, reason=f"{path} is an empty file, not an MLflow store", **not_a_store)
    try:
        # mode=ro: looking must never write (no schema, no journal), even into a file we may write.
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=timeout_s)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone() \
                if "alembic_version" in tables else None
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:  # "file is not a database", "database is locked", ...
        raise UserError(key, uri, reason=f"{path} cannot be read as sqlite ({err})", **not_a_store) from None
    missing = sorted(MLFLOW_TABLES - tables)
    if missing:
        what = "has no tables" if not tables else f"has no MLflow tables ({', '.join(missing)} missing)"
        raise UserError(key, uri, reason=f"{path} is a sqlite database that {what}: not an MLflow store", **not_a_store)
    if version is None:
        raise UserError(key, uri, reason=f"{path} has MLflow's tables but no schema version: a store whose "
                                         "creation was cut off", **not_a_store)


# -- other SQL databases --------------------------------------------------------------------
def _check_driver(uri: str, key: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise UserError(key, display_uri(uri), reason=f"not a database URL SQLAlchemy knows ({err})",
                        allowed=ALLOWED_URIS) from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        module = (err.name or str(err)).split(".")[0]
        raise UserError(key, display_uri(uri), reason=f"its database driver {module} is not installed "
                                                      f"(pip install {_PIP_NAMES.get(module, module)})",
                        allowed="an installed driver, or sqlite:///PATH/mlflow.db") from None


def _check_reachable(uri: str, key: str, scheme: str, timeout_s: float) -> None:
    # Drivers wait for their own connect timeout (minutes for some): a TCP connect says sooner
    # whether anything listens where the database should be.
    parts = urlsplit(uri)
    host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme)
    if not host or host.startswith("/") or port is None:
        return  # a local socket: nothing to time out on
    error = _bounded(lambda: socket.create_connection((host, port), timeout=timeout_s).close(), timeout_s)
    if error is not None:
        raise UserError(key, display_uri(uri), reason=f"no database answers at {host}:{port} ({error})",
                        allowed="a running database server, or sqlite:///PATH/mlflow.db")


# -- tracking servers -----------------------------------------------------------------------
def _check_server(uri: str, key: str, timeout_s: float) -> None:
    health = uri.rstrip("/") + "/health"
    answer: list[int] = []

    def ask() -> None:
        with urllib.request.urlopen(health, timeout=timeout_s) as response:
            answer.append(response.status)

    error = _bounded(ask, timeout_s)
    if error is None and answer == [200]:
        return
    if isinstance(error, urllib.error.HTTPError):
        reason = f"{health} answered HTTP {error.code}: not an MLflow server"
    elif error is not None:
        reason = f"no MLflow server answers there ({error})"
    else:
        reason = f"{health} answered HTTP {answer[0] if answer else '?'}"
    raise UserError(key, display_uri(uri), reason=reason,
                    allowed="a running MLflow server (make mlflow-server) or sqlite:///PATH/mlflow.db")


def _bounded(call, timeout_s: float) -> BaseException | str | None:
    """None if `call()` returned within `timeout_s`, else its error or "timed out".

    Socket timeouts do not cover name resolution, so the call runs in a daemon thread that we
    stop waiting for: an unreachable store costs `timeout_s`, never more.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True, name="rdc-store-check")
    thread.start()
    thread.join(timeout_s + 0.5)
    if not outcome:
        return f"timed out after {timeout_s:g} s"
    error = outcome[0]
    if isinstance(getattr(error, "reason", error), TimeoutError):
        return f"timed out after {timeout_s:g} s"
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return f"{getattr(error.reason, 'strerror', None) or error.reason}"
    if isinstance(error, OSError) and not isinstance(error, urllib.error.HTTPError):
        return error.strerror or type(error).__name__
    return error


# -- legacy file stores ---------------------------------------------------------------------
def _check_file_store(uri: str, key: str, may_create: bool) -> Store:
    path = Path(urlsplit(uri).path).expanduser()
    if path.is_file():
        raise UserError(key, uri, reason=f"{path} is a file; a file store is a folder", allowed=ALLOWED_URIS)
    if not path.exists():
        if not may_create:
            raise UserError(key, uri, reason=f"no such folder: {path}", allowed=ALLOWED_URIS)
        _check_can_create(path / "meta.yaml", key, uri)
        return Store(uri, "file", path, exists=False)
    if not (path / "0" / "meta.yaml").is_file() and not (path / ".trash").is_dir():
        raise UserError(key, uri, reason=f"{path} is a folder but not an MLflow file store", allowed=ALLOWED_URIS)
    return Store(uri, "file", path)


def display_uri(uri: str) -> str:
    """The URI without a password, for messages."""
    if not isinstance(uri, str) or "@" not in uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else uri
