"""runs(): an MLflow experiment as a tidy DataFrame, by SQL or through MlflowClient alike."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from analysis.runs import runs, runtime_columns, tidy
from analysis.store import _read_with_client, _read_with_sql, display_uri, read_experiment
from rdc import names
from rdc.errors import UserError


def test_tidy_columns(known_store, devices):
    frame = runs("known", known_store)
    row = frame.set_index("run_name").loc["b"]
    assert row[names.TAG_VARIANT_ID] == "b" and row[names.TAG_FAMILY] == "ELIC/Hyperprior:Conv"
    assert (row["transform"], row["entropy"], row["hyper"]) == ("ELIC", "Hyperprior", "Conv")
    assert row[names.DECODE_KFLOPS_PER_PX] == 200.0 and row[names.RD_LOSS] == 0.8
    assert row["spec.M"] == 192 and row["spec.transform.type"] == "conv"
    assert row[names.TRAIN_PARAM_PREFIX + "lmbda"] == 0.0125
    assert '"M": 192' in row[names.SPEC_JSON_PARAM]
    assert pd.api.types.is_numeric_dtype(frame["spec.M"]) and pd.api.types.is_float_dtype(frame[names.RD_LOSS])
    assert runtime_columns(frame) == {d: names.decode_ms(d) for d in (devices["cpu"], devices["gpu"])}
    h = frame.set_index("run_name").loc["h"]
    assert pd.isna(h[names.RD_LOSS]) and h[names.decode_ms(devices["cpu"])] == 9.0


def test_failed_and_unfinished_runs_only_on_request(known_store):
    everything = runs("known", known_store, finished_only=False).set_index("run_name")
    assert everything.loc["failed", "status"] == "FAILED"
    assert everything.loc["failed", names.TAG_FAILURE] == "diverged"
    assert everything.loc["unfinished", "status"] == "RUNNING"
    assert "failed" not in set(runs("known", known_store)["run_name"])


def test_family_filter(known_store):
    frame = runs("known", known_store, family="ELIC/CHARM:SwinT")
    assert sorted(frame["run_name"]) == ["d", "e", "g", "k"]
    with pytest.raises(UserError, match=r"--family='SwinT/CHARM:SwinT': no finished run of this family: allowed: Conv/Hyperprior:Conv, ELIC/CHARM:SwinT, ELIC/Hyperprior:Conv"):
        runs("known", known_store, family="SwinT/CHARM:SwinT")


@pytest.mark.parametrize("experiment", ["known", "known3d", "all-failed"])
def test_sql_and_mlflow_client_give_the_same_frame(known_store, experiment):
    by_sql = tidy(_read_with_sql(experiment, known_store))
    by_client = tidy(_read_with_client(experiment, known_store))
    pd.testing.assert_frame_equal(by_sql, by_client)


@pytest.mark.parametrize("experiment, message", [
    ("nope", r"--experiment='nope': no such experiment in sqlite:///.*: allowed: Default, all-failed, empty, known, known3d"),
    ("deleted", r"--experiment='deleted': was deleted from"),
    ("empty", r"--experiment='empty': has no runs yet"),
    ("all-failed", r"--experiment='all-failed': has no FINISHED runs \(2 FAILED, 1 RUNNING\)"),
])
def test_bad_experiments(known_store, experiment, message):
    with pytest.raises(UserError, match=message):
        runs(experiment, known_store)


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(UserError, match=r"--tracking-uri='sqlite:///.*typo.db': no such sqlite file"):
        runs("demo", f"sqlite:///{missing}")
    assert not missing.exists()


def test_a_sqlite_file_that_is_not_mlflow(tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x int)").connection.commit()
    with pytest.raises(UserError, match=r"not an MLflow store"):
        runs("demo", f"sqlite:///{other}")


def test_reading_does_not_write_the_store(known_store):
    path = Path(known_store.removeprefix("sqlite:///"))
    before = path.stat().st_mtime_ns, path.read_bytes()
    runs("known", known_store)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_passwords_never_shown():
    assert display_uri("postgresql://me:secret@db:5432/mlflow") == "postgresql://me:***@db:5432/mlflow"
    assert display_uri("sqlite:///runs/mlflow.db") == "sqlite:///runs/mlflow.db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_tracking_server_over_http_gives_the_same_frame(known_store, tmp_path):
    """What a laptop user does: query the cluster's `mlflow server` (goes through MlflowClient)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", known_store, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--default-artifact-root", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        over_http = tidy(read_experiment("known", url))
        pd.testing.assert_frame_equal(over_http, tidy(read_experiment("known", known_store)))
        with pytest.raises(UserError, match=r"--experiment='nope': no such experiment in http://127.0.0.1"):
            runs("nope", url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its workers can take longer to stop on a loaded box: not the point here
            server.kill()
            server.wait(timeout=30)


def test_a_store_with_several_workspaces_is_read_through_mlflow_not_sql(tmp_path):
    """The SQL shortcut cannot tell which workspace is active: MlflowClient decides. Without
    MLFLOW_ENABLE_WORKSPACES MLflow refuses such a store; `rdc frontier` says so in one line
    (a fresh process, as a user runs it: MLflow caches its store per process)."""
    import os
    import sqlite3
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    path = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").create_experiment("here")
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time, workspace) VALUES ('elsewhere', '', 'active', 0, 0, 'other')")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ENABLE_WORKSPACES"}
    done = subprocess.run([sys.executable, "-c", "import sys; from rdc.cli import main; sys.exit(main(sys.argv[1:]))",
                           "frontier", "--experiment", "elsewhere", "--tracking-uri", f"sqlite:///{path}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("rdc frontier: error:")]
    assert "MLFLOW_ENABLE_WORKSPACES" in line and "Traceback" not in done.stderr
