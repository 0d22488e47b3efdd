"""rdc.diskfull: a full disk is recognised however it arrives, from real failures: /dev/full,
sqlite at its page limit (SQLITE_FULL, the same code a full disk gives), through SQLAlchemy and
through MLflow's sqlite store."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import pytest

from rdc.diskfull import DiskFull, disk_full_error, is_disk_full
from rdc.errors import UserError


def _full_sqlite(path: Path) -> sqlite3.Connection:
    """A sqlite database that cannot grow by another page: writes fail with SQLITE_FULL."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.commit()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    return conn


def test_enospc_from_dev_full():
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is absent on this system")
    with pytest.raises(OSError) as caught:
        with open("/dev/full", "wb", buffering=0) as handle:
            handle.write(b"x" * 4096)
    assert caught.value.errno == errno.ENOSPC
    assert is_disk_full(caught.value)
    error = disk_full_error(caught.value, "runs_dir=/data/runs")
    assert isinstance(error, DiskFull) and isinstance(error, UserError)
    assert "the disk is full (No space left on device)" in str(error) and "runs_dir=/data/runs" in str(error)
    assert "\n" not in str(error)


def test_sqlite_full(tmp_path: Path):
    conn = _full_sqlite(tmp_path / "full.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    assert "database or disk is full" in str(caught.value)
    assert is_disk_full(caught.value)


def test_sqlite_full_through_sqlalchemy(tmp_path: Path):
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError

    _full_sqlite(tmp_path / "full.db").close()
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA max_page_count = 2"))
    with pytest.raises(OperationalError) as caught:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": b"x" * 100_000})
    engine.dispose()
    assert is_disk_full(caught.value)


def test_a_real_full_disk_under_an_mlflow_store(small_tmpfs, mlflow_store_file: Path):
    """The store on a tmpfs barely larger than it: MLflow's writes fail as a full disk does."""
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    folder = small_tmpfs(mlflow_store_file.stat().st_size + 64 * 1024)
    shutil.copy(mlflow_store_file, folder / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    run_id = client.create_run(client.get_experiment_by_name("sweep-a").experiment_id).info.run_id
    try:
        with pytest.raises(MlflowException) as caught:
            for chunk in range(200):
                client.log_batch(run_id, metrics=[Metric(f"m{i}", 1.0, 0, chunk) for i in range(1000)])
    finally:
        client._tracking_client.store.engine.dispose()
    assert is_disk_full(caught.value), caught.value.message
    with pytest.raises(OSError) as plain:  # and a plain file write on the same disk
        (folder / "more").write_bytes(b"x" * (1 << 20))
    assert plain.value.errno == errno.ENOSPC and is_disk_full(plain.value)


@pytest.fixture
def store_at_its_limit(tmp_path: Path, mlflow_store_file: Path):
    """A real MLflow sqlite store whose every connection may not grow the file."""
    from mlflow.tracking import MlflowClient
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    shutil.copy(mlflow_store_file, tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.get_experiment_by_name("sweep-a").experiment_id)

    def cap(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(Engine, "connect", cap)
    client._tracking_client.store.engine.dispose()  # pooled connections reconnect, with the cap
    yield client, run.info.run_id
    event.remove(Engine, "connect", cap)
    client._tracking_client.store.engine.dispose()


def test_sqlite_full_through_mlflow(store_at_its_limit):
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    client, run_id = store_at_its_limit
    with pytest.raises(MlflowException) as caught:
        for chunk in range(50):  # each batch adds rows until a page has to be added
            client.log_batch(run_id, metrics=[Metric(f"m{i}", 1.0, 0, chunk) for i in range(1000)])
    # MLflow calls it TEMPORARILY_UNAVAILABLE: retrying on that code alone would retry a full disk.
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert is_disk_full(caught.value)


def test_other_errors_are_not_a_full_disk(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as missing:
        open(tmp_path / "absent")
    assert not is_disk_full(missing.value)
    first = sqlite3.connect(tmp_path / "locked.db", timeout=0)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN EXCLUSIVE")
    second = sqlite3.connect(tmp_path / "locked.db", timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        second.execute("SELECT * FROM t")
    assert "locked" in str(locked.value) and not is_disk_full(locked.value)
    assert disk_full_error(locked.value, "x") is None
    assert not is_disk_full(None)


def test_full_disk_found_in_the_chain():
    try:
        try:
            with open("/dev/full", "wb", buffering=0) as handle:
                handle.write(b"x")
        except OSError as err:
            raise RuntimeError("checkpoint could not be saved") from err
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    # A cycle of contexts does not loop forever.
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not is_disk_full(a)


def test_a_server_message_saying_the_disk_is_full():
    assert is_disk_full(RuntimeError("INTERNAL_ERROR: (sqlite3.OperationalError) database or disk is full"))
    assert is_disk_full(RuntimeError("[Errno 28] No space left on device: '/mlartifacts/1'"))
