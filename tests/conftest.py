"""Shared fixtures: the ../shared data (Kodak, RD anchors), temporary MLflow stores, test scale.

A user's clone has no ../shared: tests that need it skip and say so. CI has it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Local Ray instances in tests stay on loopback (Ray reads this when imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RDC_SHARED_DIR", REPO.parent / "shared"))

# Long end-to-end tests (marker `slow`) read their size from here; CI runs the default.
TEST_SCALE = float(os.environ.get("RDC_TEST_SCALE", "1"))


def pytest_collection_modifyitems(config, items):
    """Files with long end-to-end tests (marker `slow`) first, each file's tests in their order.
    Under make test, xdist then orders whole files by their number of tests (this order breaks
    its ties); keeping this order instead (--no-loadscope-reorder) started every Ray-heavy file
    at once and was slower (23 min 8 s against 19.5-22 min, measured 2026-12-01)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within stays


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared data beside the checkout (CI has it)")
    return path


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests run torch on one thread: on a loaded 2-core box, two threads spin-wait on each
    other (200 training steps took 145 s instead of 5 s). Ray trials pin their own threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return _shared_path("data", "kodak")


@pytest.fixture(scope="session")
def anchors_dir() -> Path:
    return _shared_path("data", "rd_anchors")


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A fresh, empty sqlite MLflow store in a temporary folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory):
    """One local Ray instance (2 CPUs, loopback) for a module's in-process sweeps, which use it
    and leave it running (sweep.launch.start_ray): starting and stopping one costs 5-10 s per
    sweep here. Ended with the module, so another module's sweep starts its own."""
    import ray

    from sweep import launch

    local = {"mode": "local", "num_cpus": 2, "num_gpus": 0, "address": None}
    launch.start_ray(local, log=tmp_path_factory.mktemp("ray") / "ray.log", shared=True)
    yield
    ray.shutdown()
