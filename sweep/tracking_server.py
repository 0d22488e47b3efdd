"""`python -m sweep.tracking_server --runs runs`: the MLflow tracking server for `tracking=server`.

One `mlflow server` process with a SQLAlchemy backend (default: sqlite in the runs folder, the
same file local sweeps write, so the UI shows both) that also stores and serves artifacts:
workers upload models through the server and need no path or credential of the driver's.
It listens on 127.0.0.1 unless told otherwise (`--host`): a tracking server accepts writes from
anyone who reaches it. One worker process: sqlite has one writer at a time anyway, and a single
writer never sees "database is locked".
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rdc.arguments import ArgumentParser
from rdc.errors import UserError

DEFAULT_PORT = 5000
START_TIMEOUT_S = 120.0


def server_command(runs: Path, host: str, port: int, backend: str | None, workers: int) -> list[str]:
    backend = backend or f"sqlite:///{runs / 'mlflow.db'}"
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", str(runs / "mlartifacts"),
        "--serve-artifacts",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]


def wait_until_up(url: str, timeout_s: float = START_TIMEOUT_S, process: subprocess.Popen | None = None) -> None:
    """Return once `url`/health answers; RuntimeError if the server exits or never answers."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the tracking server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} within {timeout_s:.0f}s")


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise UserError("--port", port, reason=f"cannot listen on {host}:{port} ({err.strerror})",
                            allowed="a free port on an address of this host") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m sweep.tracking_server",
                                     description="Run the MLflow tracking server sweeps log to with tracking=server.")
    parser.add_argument("--runs", default="runs", help="folder of the sqlite store and the artifacts (default: runs)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; a cluster needs one its nodes can reach)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--backend-store-uri", help="a SQLAlchemy URL instead of sqlite in --runs, e.g. postgresql://...")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1: one sqlite writer)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    runs = Path(args.runs).expanduser().resolve()
    if runs.exists() and not runs.is_dir():
        raise UserError("--runs", args.runs, reason="not a folder", allowed="a folder (created if absent)")
    if not 0 < args.port < 65536:
        raise UserError("--port", args.port, allowed="1..65535")
    if args.workers < 1:
        raise UserError("--workers", args.workers, allowed="a positive integer")
    if args.backend_store_uri and "://" not in args.backend_store_uri:
        raise UserError("--backend-store-uri", args.backend_store_uri,
                        allowed="a SQLAlchemy URL such as sqlite:///path/mlflow.db or postgresql://user@host/db")
    _check_port_free(args.host, args.port)
    runs.mkdir(parents=True, exist_ok=True)
    command = server_command(runs, args.host, args.port, args.backend_store_uri, args.workers)
    url = f"http://{args.host}:{args.port}"
    # MLflow's job runner (8 more processes) serves GenAI evaluation jobs, not tracking.
    process = subprocess.Popen(command, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    # Forward a stop to the server (and its workers, which it stops) instead of orphaning it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: process.send_signal(number))
    try:
        wait_until_up(url, process=process)
        print(f"tracking server: {url} (store {args.backend_store_uri or runs / 'mlflow.db'}, "
              f"artifacts {runs / 'mlartifacts'}); sweep with tracking=server tracking.uri={url}", flush=True)
    except RuntimeError as err:
        print(f"tracking server: {err}", file=sys.stderr, flush=True)
        if process.poll() is None:
            process.terminate()
        process.wait()
        return 1
    return process.wait()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"python -m sweep.tracking_server: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
