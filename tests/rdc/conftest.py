"""Fixtures of the rdc/ tests: one real MLflow sqlite store (made once: it takes seconds), and a
small real tmpfs that a test can fill (root only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlflow_store_file(tmp_path_factory) -> Path:
    """A real MLflow sqlite store with one experiment; tests copy it, never change it."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}")
    client.create_experiment("sweep-a")
    client._tracking_client.store.engine.dispose()  # no connection left open on the file
    return path


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """mount(size) -> a folder on a fresh tmpfs of `size` bytes, unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)
