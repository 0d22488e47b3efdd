"""`python -m sweep.tracking_server`: a real MLflow server on 127.0.0.1 that stores runs and
artifacts for every worker, stops with its wrapper, and refuses bad options in one line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import psutil
import pytest
from mlflow.tracking import MlflowClient

from sweep import tracking_server
from tests.cluster.rig import REPO


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_server_listens_on_loopback_stores_artifacts_and_stops_with_its_wrapper(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    wrapper = subprocess.Popen([sys.executable, "-m", "sweep.tracking_server", "--runs", str(tmp_path / "runs"),
                                "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        tracking_server.wait_until_up(url, process=wrapper)
        tree = [wrapper.pid] + [p.pid for p in psutil.Process(wrapper.pid).children(recursive=True)]
        listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in tree}
        assert listening == {"127.0.0.1"}

        client = MlflowClient(url)
        run = client.create_run(client.create_experiment("probe"))
        (tmp_path / "model.pt").write_bytes(b"weights")
        client.log_artifact(run.info.run_id, str(tmp_path / "model.pt"))  # uploaded through the server
        stored = list((tmp_path / "runs" / "mlartifacts").rglob("model.pt"))
        assert [p.read_bytes() for p in stored] == [b"weights"]
        assert (tmp_path / "runs" / "mlflow.db").exists()

        children = [psutil.Process(pid) for pid in tree[1:]]
        wrapper.send_signal(signal.SIGTERM)
        wrapper.wait(timeout=60)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []  # the server and its workers stop with the wrapper
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        wrapper.wait()


@pytest.mark.parametrize("args, key", [
    (["--runs", "{file}"], "--runs"),
    (["--port", "0"], "--port"),
    (["--workers", "0"], "--workers"),
    (["--backend-store-uri", "mlflow.db"], "--backend-store-uri"),
    (["--port", "{busy}"], "--port"),
])
def test_bad_options_are_one_user_error(tmp_path, args, key):
    from rdc.errors import UserError

    (tmp_path / "a-file").write_text("")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [a.format(file=tmp_path / "a-file", busy=busy.getsockname()[1]) for a in args]
        with pytest.raises(UserError) as err:
            tracking_server.main(["--runs", str(tmp_path / "runs"), *args] if "--runs" not in args else args)
    assert err.value.key == key
    assert not (tmp_path / "runs").exists()
