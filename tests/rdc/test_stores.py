"""rdc.stores: every tracking URI is checked before anything opens it, and looking never writes.

Each refusal is checked to leave every file as it was (size, mtime, content hash) and to create
nothing beside it. The accepted store is a real MLflow sqlite store made by MlflowClient.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from rdc.errors import UserError
from rdc.stores import Store, check_tracking_uri


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under `folder`: size, mtime (ns) and content hash."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path)] = (path.stat().st_size, path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[str(path)] = (0, path.stat().st_mtime_ns, "folder")
    return out


def refused(uri: str, folder: Path, **kwargs) -> UserError:
    before = snapshot(folder)
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_tracking_uri(uri, **kwargs)
    assert time.monotonic() - started < 10
    assert snapshot(folder) == before, "a refused store check changed or created files"
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


def test_empty_file_is_not_a_store(tmp_path: Path):
    (tmp_path / "empty.db").write_bytes(b"")
    error = refused(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    assert "empty file" in str(error) and error.key == "--tracking-uri"


def test_another_programs_sqlite_database_is_left_alone(tmp_path: Path):
    other = tmp_path / "contacts.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO people VALUES ('Ada', '123')")
    conn.commit()
    conn.close()
    error = refused(f"sqlite:///{other}", tmp_path)
    assert "not an MLflow store" in str(error) and "experiments" in str(error)
    # Also when the command may create a store: an existing file is never taken over.
    refused(f"sqlite:///{other}", tmp_path, may_create=True)


def test_a_file_that_is_not_sqlite(tmp_path: Path):
    (tmp_path / "notes.db").write_text("shopping list\n" * 100)
    error = refused(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path, may_create=True)
    assert "cannot be read as sqlite" in str(error)


def test_a_folder_is_refused_at_once(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    started = time.monotonic()
    error = refused(f"sqlite:///{tmp_path / 'runs'}", tmp_path, may_create=True)
    assert time.monotonic() - started < 1
    assert "is a folder" in str(error) and "mlflow.db" in str(error)


def test_a_path_through_a_file_is_refused(tmp_path: Path):
    (tmp_path / "plain").write_text("x")
    error = refused(f"sqlite:///{tmp_path / 'plain' / 'mlflow.db'}", tmp_path, may_create=True)
    assert "not a folder" in str(error)


def test_missing_file_is_refused_unless_the_command_creates_its_store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    error = refused(uri, tmp_path)
    assert "no such sqlite file" in str(error)
    store = check_tracking_uri(uri, may_create=True)
    assert store == Store(uri, "sqlite", tmp_path / "runs" / "mlflow.db", exists=False)
    assert list(tmp_path.iterdir()) == []  # accepting did not create it either


def test_relative_sqlite_path_is_made_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = check_tracking_uri("sqlite:///runs/mlflow.db", may_create=True)
    assert store.path == tmp_path / "runs" / "mlflow.db" and not store.exists


def test_in_memory_sqlite_is_refused(tmp_path: Path):
    refused("sqlite://", tmp_path, may_create=True)
    refused("sqlite:///:memory:", tmp_path, may_create=True)


@pytest.mark.skipif(any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")),
                    reason="a PostgreSQL driver is installed here")
def test_missing_driver_names_the_package(tmp_path: Path):
    # SQLAlchemy 2.1's default PostgreSQL driver is psycopg (3); 2.0's was psycopg2.
    error = refused("postgresql://sweeper:secret@db.example:5432/mlflow", tmp_path)
    message = str(error)
    assert "driver psycopg" in message and "pip install psycopg" in message
    assert "secret" not in message  # the password never reaches a message


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here")
def test_missing_psycopg2_names_its_pip_package(tmp_path: Path):
    error = refused("postgresql+psycopg2://sweeper@db.example/mlflow", tmp_path)
    assert "driver psycopg2 is not installed (pip install psycopg2-binary)" in str(error)


@pytest.mark.skipif(importlib.util.find_spec("pymysql") is not None, reason="pymysql is installed here")
def test_missing_driver_named_in_the_uri(tmp_path: Path):
    error = refused("mysql+pymysql://u@localhost/mlflow", tmp_path)
    assert "pymysql" in str(error)


def test_unknown_sqlalchemy_driver(tmp_path: Path):
    error = refused("postgresql+nosuchdriver://u@localhost/mlflow", tmp_path)
    assert "nosuchdriver" in str(error)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_listening_on_port_9(tmp_path: Path):
    started = time.monotonic()
    error = refused("http://127.0.0.1:9", tmp_path)
    assert time.monotonic() - started < 10
    assert "no MLflow server answers" in str(error)


def test_server_that_accepts_but_never_answers_is_given_up_within_the_timeout(tmp_path: Path):
    with socket.socket() as listener:  # a listening socket nobody serves: the request hangs
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        error = refused(f"http://127.0.0.1:{port}", tmp_path, timeout_s=1.0)
        assert time.monotonic() - started < 3
    assert "timed out" in str(error)


def test_a_web_server_that_is_not_mlflow(tmp_path: Path):
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        error = refused(f"http://127.0.0.1:{server.server_address[1]}", tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert "HTTP 404" in str(error)


def test_database_port_with_nothing_listening(tmp_path: Path):
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("psycopg2 is not installed: the driver check refuses first (tested above)")
    error = refused(f"postgresql+psycopg2://u@127.0.0.1:{_closed_port()}/mlflow", tmp_path)
    assert "no database answers" in str(error)


@pytest.mark.parametrize("uri", ["runs/mlflow.db", "mlflow.db", "", "://nothing", "localhost:5000"])
def test_not_a_uri(tmp_path: Path, uri: str):
    error = refused(uri, tmp_path)
    assert "not a tracking URI" in str(error) or "unknown scheme" in str(error)


def test_unknown_scheme(tmp_path: Path):
    error = refused("sqlit:///runs/mlflow.db", tmp_path)
    assert "unknown scheme 'sqlit'" in str(error)


def test_a_real_mlflow_store_is_accepted_and_left_unchanged(tmp_path: Path, mlflow_store_file: Path):
    store_file = tmp_path / "mlflow.db"
    shutil.copy2(mlflow_store_file, store_file)
    before = snapshot(tmp_path)
    for may_create in (False, True):
        store = check_tracking_uri(f"sqlite:///{store_file}", may_create=may_create)
        assert store.exists and store.path == store_file and store.scheme == "sqlite"
    assert snapshot(tmp_path) == before


def test_a_store_cut_off_while_being_created(tmp_path: Path, mlflow_store_file: Path):
    store_file = tmp_path / "mlflow.db"
    shutil.copy2(mlflow_store_file, store_file)
    conn = sqlite3.connect(store_file)
    conn.execute("DELETE FROM alembic_version")
    conn.commit()
    conn.close()
    error = refused(f"sqlite:///{store_file}", tmp_path)
    assert "no schema version" in str(error)


def test_file_store_folder_that_is_not_one(tmp_path: Path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    error = refused((tmp_path / "photos").as_uri(), tmp_path)
    assert "not an MLflow file store" in str(error)
