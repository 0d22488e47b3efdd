"""Interruptions with real processes: the tracking server killed and restarted mid-trial (no
metric lost), and Ctrl-C (resumable, not failed), then the sweep resumed after its runs_dir moved
to another disk, with pickles planted where Tune's restore would read them (never run)."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import pytest

from rdc import names
from tests.cluster.rig import REPO, client, kill_group, start_driver, sweep_runs, trial_results, wait_for, write_space
from tests.sweep.resume_rig import (CHECKPOINT_EVERY, TIMEOUT_S, args, assert_one_complete_run_per_variant, mid_training,
                                    uri_of)
from tests.sweep.resume_rig import root  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(root, port: int, log_name: str) -> subprocess.Popen:
    log = open(root / log_name, "w")
    return subprocess.Popen([sys.executable, "-m", "sweep.tracking_server", "--runs", str(root / "server"),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)


def test_a_tracking_server_restart_loses_no_metric(root):
    from sweep.tracking_server import wait_until_up

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(root, port, "server1.log")
    driver = None
    try:
        wait_until_up(url, process=server)
        write_space(root, "two", "restart", [8, 16])
        log = root / "driver.log"
        driver = start_driver(args(root, "two", "tracking=server", f"tracking.uri={url}"), log)
        wait_for(lambda: any(mid_training(r) for r in trial_results(root / "runs", "restart").values()),
                 "a trial past its first checkpoint", TIMEOUT_S, driver, log)
        kill_group(server)  # mid-trial: the trials' next checkpoints find no server
        time.sleep(5)
        server = _start_server(root, port, "server2.log")
        wait_until_up(url, process=server)
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
        runs = assert_one_complete_run_per_variant(url, "restart", 2)
        for run in runs.values():
            assert names.MODEL_ARTIFACT in {a.path for a in client(url).list_artifacts(run.info.run_id)}
    finally:
        if driver is not None:
            kill_group(driver)
        kill_group(server)


class _Plant:
    """Unpickled, it touches `marker`: planted where Tune's restore would unpickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_ctrl_c_stops_the_sweep_resumable_then_it_resumes_moved_to_another_disk(root):
    write_space(root, "two", "ctrlc", [8, 16])
    log = root / "driver.log"
    driver = start_driver(args(root, "two"), log)
    try:
        wait_for(lambda: any(mid_training(r) for r in trial_results(root / "runs", "ctrlc").values()),
                 "a trial past its first checkpoint", TIMEOUT_S, driver, log)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=120) == 130, log.read_text()[-4000:]
    finally:
        kill_group(driver)
    assert "continue it with the same overrides and resume=true" in log.read_text()
    # Nothing is marked failed: the unfinished runs wait for the resume.
    statuses = {r.info.status for r in sweep_runs(uri_of(root), "ctrlc")}
    assert "FAILED" not in statuses and "RUNNING" in statuses
    checkpointed = {v for v, results in trial_results(root / "runs", "ctrlc").items()
                    if any(r.get("step", 0) >= CHECKPOINT_EVERY for r in results) and not results[-1].get("done")}

    # runs_dir moves to a bigger disk, and someone plants pickles where Tune's restore reads them.
    moved = root / "bigger" / "runs"
    moved.parent.mkdir()
    os.replace(root / "runs", moved)
    marker = root / "code-ran"
    for name in ("tuner.pkl", "trainable.pkl"):
        (moved / "ray" / "ctrlc" / name).write_bytes(pickle.dumps(_Plant(marker)))
    log = root / "resume.log"
    driver = start_driver(args(root, "two", "resume=true", runs=moved), log)
    try:
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
    finally:
        kill_group(driver)
    out = log.read_text()
    assert not marker.exists(), "the resume unpickled a planted file"
    assert "resuming" in out and "finished 2/2 variants" in out and "the store moved" in out, out[-3000:]
    uri = f"sqlite:///{moved / 'mlflow.db'}"
    runs = assert_one_complete_run_per_variant(uri, "ctrlc", 2)
    for variant_id in checkpointed:  # from its checkpoint, not from scratch
        assert int(runs[variant_id].data.tags[names.TAG_RESUMED_FROM_STEP]) >= CHECKPOINT_EVERY
    for run in runs.values():  # artifacts where the store now is; nothing recreated where it was
        assert names.MODEL_ARTIFACT in {a.path for a in client(uri).list_artifacts(run.info.run_id)}
        assert str(moved) in run.info.artifact_uri
    assert not (root / "runs").exists()
    assert not list((moved / "ray").glob("ctrlc.interrupted-*")), "the set-aside launch is cleared once done"
