"""A real two-node Ray cluster on this machine (`make cluster-up`: network namespaces joined by
veth pairs, token authentication, the tracking server on a host of its own). A sweep runs
across both nodes; then a worker host's link is cut mid-trial and its trial is retried on the
other node; `make cluster-down` leaves no namespace and no process behind."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rdc import names
from tests.cluster import testcluster
from tests.cluster.rig import (REPO, kill_group, make_root, start_driver, steps_of, sweep_args, sweep_runs,
                               trial_results, wait_for, write_space)
from tests.conftest import TEST_SCALE

STEPS = max(60, int(120 * TEST_SCALE))
LOG_EVERY, CHECKPOINT_EVERY = 10, 20
TIMEOUT_S = 420
HEAD, WORKER = testcluster.HEAD_IP, f"{testcluster.SUBNET}.3"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("make"),
                       reason="the test cluster needs root, iproute2 and make"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("cluster"))
    env = {**os.environ, testcluster.NAME_ENV: "rt" + secrets.token_hex(2), testcluster.DIR_ENV: str(root / "state")}
    # -o: never reinstall the project from inside a test, even if pyproject.toml is newer.
    make = ["make", "-C", str(REPO), "-o", ".venv/.installed"]
    up = subprocess.run([*make, "cluster-up"], env=env, capture_output=True, text=True, timeout=600)
    info = {"root": root, "env": env, "name": env[testcluster.NAME_ENV], "state": root / "state",
            "uri": f"sqlite:///{root / 'state' / 'mlflow' / 'mlflow.db'}"}
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "(2 nodes)" in up.stdout
        info["pids"] = {pid for ns in testcluster.namespaces(info["name"]) for pid in testcluster._pids_in(ns)}
        yield info
    finally:
        down = subprocess.run([*make, "cluster-down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert testcluster.namespaces(info["name"]) == []
        survivors = [pid for pid in info.get("pids", ()) if testcluster._alive(pid)]
        assert survivors == [], f"cluster-down left processes {survivors}"
        assert not any(p.name.startswith(info["name"] + "-") for p in Path("/tmp").iterdir())


def run_sweep(cluster, space: str, log_name: str, *extra: str):
    args = sweep_args(cluster["root"], space, steps=STEPS, log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                      extra=("cluster=testcluster", "tracking=testcluster", *extra))
    prefix = [sys.executable, "-m", "tests.cluster.testcluster", "--name", cluster["name"], "--state", str(cluster["state"]),
              "exec", "--"]
    log = cluster["root"] / log_name
    return start_driver(args, log, prefix=prefix, env=cluster["env"]), log


def assert_complete(cluster, experiment: str) -> dict:
    found = sweep_runs(cluster["uri"], experiment)
    by_variant = {r.data.tags[names.TAG_VARIANT_ID]: r for r in found}
    assert len(found) == len(by_variant) == 4
    for run in found:
        assert run.info.status == "FINISHED"
        assert steps_of(cluster["uri"], run.info.run_id) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
        # Uploaded through the tracking server into its artifact store, not written by the worker.
        assert list(cluster["state"].glob(f"mlflow/mlartifacts/*/{run.info.run_id}/artifacts/{names.MODEL_ARTIFACT}"))
    return by_variant


def test_a_sweep_runs_on_both_nodes_and_logs_through_the_tracking_server(cluster):
    write_space(cluster["root"], "both", "both", [8, 16], [8, 12])
    driver, log = run_sweep(cluster, "both", "both.log")
    try:
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
    finally:
        kill_group(driver)
    assert_complete(cluster, "both")
    nodes = {r[-1]["node_ip"] for r in trial_results(cluster["root"] / "runs", "both").values()}
    assert nodes == {HEAD, WORKER}


def test_a_cut_off_worker_host_has_its_trial_retried_on_the_other_node(cluster):
    write_space(cluster["root"], "cut", "cut", [8, 16], [8, 12])
    # The variants of sweep "both", in the same store: force=true trains them instead of reusing them.
    driver, log = run_sweep(cluster, "cut", "cut.log", "force=true")
    try:
        def trial_on_worker():
            for variant_id, results in trial_results(cluster["root"] / "runs", "cut").items():
                last = results[-1] if results else {}
                if (last.get("node_ip") == WORKER and not last.get("done")
                        and CHECKPOINT_EVERY <= last.get("step", 0) <= STEPS - 2 * CHECKPOINT_EVERY):
                    return variant_id, last
        variant_id, last = wait_for(trial_on_worker, "a trial past a checkpoint on the worker host", TIMEOUT_S,
                                    driver, log)
        testcluster.main(["--name", cluster["name"], "--state", str(cluster["state"]), "cut", "w1"])
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
    finally:
        kill_group(driver)
        testcluster.main(["--name", cluster["name"], "--state", str(cluster["state"]), "mend", "w1"])
    runs = assert_complete(cluster, "cut")
    moved = trial_results(cluster["root"] / "runs", "cut")[variant_id]
    assert moved[-1]["node_ip"] == HEAD and moved[-1].get("done")
    assert int(runs[variant_id].data.tags[names.TAG_RESUMED_FROM_STEP]) >= last["step"]
