"""Crashes mid-sweep, with real processes: a trial's worker SIGKILLed, the driver SIGKILLed and
the sweep resumed, the tracking server killed and restarted. Each time: the sweep completes,
MLflow holds exactly one run per variant, and every training step is in its history once."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import pytest

from rdc import names
from rdc.cli import main
from tests.cluster.rig import (REPO, client, history, kill_group, make_root, rd_metrics, start_driver, steps_of, sweep_args,
                               sweep_runs, trial_results, wait_for, write_space)
from tests.conftest import TEST_SCALE

# 60 steps at CI's scale: a trial checkpoints 6 times, enough to be caught between two of them.
STEPS = max(60, int(60 * TEST_SCALE))
LOG_EVERY, CHECKPOINT_EVERY = 5, 10
LOGGED = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
TIMEOUT_S = 420

pytestmark = pytest.mark.slow


def args(root, space, *extra, runs=None):
    return sweep_args(root, space, steps=STEPS, log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                      extra=extra, runs=runs)


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path)


def uri_of(root) -> str:
    return f"sqlite:///{root / 'runs' / 'mlflow.db'}"


def mid_training(results: list[dict]) -> dict | None:
    """The trial's latest result if it has checkpointed and has more than a checkpoint to go."""
    if not results or results[-1].get("done") or results[-1].get("failed"):
        return None
    last = results[-1]
    return last if CHECKPOINT_EVERY <= last["step"] <= STEPS - 2 * CHECKPOINT_EVERY else None


def assert_one_complete_run_per_variant(uri: str, experiment: str, count: int) -> dict:
    found = sweep_runs(uri, experiment)
    by_variant = {r.data.tags[names.TAG_VARIANT_ID]: r for r in found}
    assert len(found) == len(by_variant) == count, [r.data.tags for r in found]
    for run in found:
        assert run.info.status == "FINISHED", (run.data.tags, run.info.status)
        assert steps_of(uri, run.info.run_id) == LOGGED  # every step once: none lost, none twice
        assert steps_of(uri, run.info.run_id, names.BPP) == [STEPS]
    return by_variant


def test_a_killed_worker_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(shared_ray, root):
    write_space(root, "four", "killw", [8, 16], [8, 12])
    log = root / "driver.log"
    driver = start_driver(args(root, "four"), log)
    try:
        def victim():
            for variant_id, results in trial_results(root / "runs", "killw").items():
                last = mid_training(results)
                if last:
                    return variant_id, last
        variant_id, last = wait_for(victim, "a trial past its first checkpoint", TIMEOUT_S, driver, log)
        os.kill(last["pid"], signal.SIGKILL)
        assert driver.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-4000:]
    finally:
        kill_group(driver)

    uri = uri_of(root)
    runs = assert_one_complete_run_per_variant(uri, "killw", 4)
    killed = runs[variant_id]
    # It resumed from a checkpoint at or after the step we saw, not from 0.
    assert int(killed.data.tags[names.TAG_RESUMED_FROM_STEP]) >= last["step"] > 0
    assert "retry  " + variant_id[:8] in log.read_text()
    steps_after_kill = [r["step"] for r in trial_results(root / "runs", "killw")[variant_id]
                        if r["pid"] != last["pid"]]
    assert steps_after_kill and min(steps_after_kill) > last["step"]

    # The same variant, never interrupted, in another sweep: identical training and evaluation.
    spec = json.loads(killed.data.params[names.SPEC_JSON_PARAM])
    write_space(root, "alone", "alone", [spec["transform"]["N"]], spec["M"])
    assert main(args(root, "alone", "force=true")) == 0  # trained, not reused from "killw"
    (baseline,) = sweep_runs(uri, "alone")
    assert baseline.data.tags[names.TAG_VARIANT_ID] == variant_id
    assert baseline.data.tags[names.TAG_RESUMED_FROM_STEP] == "0"
    assert rd_metrics(killed) == rd_metrics(baseline)
    assert history(uri, killed.info.run_id) == history(uri, baseline.info.run_id)


def test_a_killed_driver_resumes_without_retraining_finished_variants(shared_ray, root, capsys):
    write_space(root, "four", "killd", [8, 16], [8, 12])
    uri = uri_of(root)
    log = root / "driver.log"
    driver = start_driver(args(root, "four"), log)
    try:
        def one_finished_one_training():
            # Trials start after the driver has created the store: only then is it safe to read.
            training = [v for v, results in trial_results(root / "runs", "killd").items() if mid_training(results)]
            return training and [r for r in sweep_runs(uri, "killd") if r.info.status == "FINISHED"]
        wait_for(one_finished_one_training, "a finished variant and one mid-training", TIMEOUT_S, driver, log)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_group(driver)  # what the dead driver's Ray instance left behind
    before = {r.data.tags[names.TAG_VARIANT_ID]: r for r in sweep_runs(uri, "killd") if r.info.status == "FINISHED"}
    assert 1 <= len(before) < 4
    histories = {v: history(uri, r.info.run_id) for v, r in before.items()}

    # Starting it afresh would bury the interrupted sweep: refused, one line.
    capsys.readouterr()
    assert main(args(root, "four")) == 2
    assert "resume=true to continue it" in capsys.readouterr().err
    # Resuming with other training settings would mix two trainings in one run: refused.
    assert main(args(root, "four", "resume=true", "train.seed=1")) == 2
    assert "the interrupted sweep ran with another train_config_id" in capsys.readouterr().err

    assert main(args(root, "four", "resume=true")) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "finished 4/4 variants" in out
    after = assert_one_complete_run_per_variant(uri, "killd", 4)
    for variant_id, run in before.items():
        again = after[variant_id]
        assert again.info.run_id == run.info.run_id
        assert again.info.end_time == run.info.end_time  # not trained, measured or ended again
        assert again.data.tags[names.TAG_ATTEMPT] == run.data.tags[names.TAG_ATTEMPT]
        assert history(uri, run.info.run_id) == histories[variant_id]


def test_a_killed_driver_resumes_a_search_round_then_spends_the_rest_of_the_budget(shared_ray, root, capsys):
    write_space(root, "four", "killsearch", [8, 16], [8, 12])
    uri = uri_of(root)
    log = root / "driver.log"
    search = ("search=optuna", "search.budget=4", "search.batch=2")
    driver = start_driver(args(root, "four", *search), log)
    try:
        def second_round_training():
            # Round 1's two variants FINISHED, and a trial of round 2 (the Tune folder holds only
            # the current round) mid-training.
            done = [r for r in sweep_runs(uri, "killsearch") if r.info.status == "FINISHED"]
            training = [v for v, results in trial_results(root / "runs", "killsearch").items() if mid_training(results)]
            return len(done) >= 2 and training
        wait_for(second_round_training, "round 2 mid-training", TIMEOUT_S, driver, log)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_group(driver)
    before = {r.data.tags[names.TAG_VARIANT_ID]: r for r in sweep_runs(uri, "killsearch") if r.info.status == "FINISHED"}
    assert 2 <= len(before) < 4

    capsys.readouterr()
    assert main(args(root, "four", *search)) == 2  # the interrupted round is not buried
    assert "resume=true to continue it" in capsys.readouterr().err
    assert main(args(root, "four", *search, "resume=true")) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "4 tried, 0 to train" in out
    after = assert_one_complete_run_per_variant(uri, "killsearch", 4)
    for variant_id, run in before.items():
        assert after[variant_id].info.end_time == run.info.end_time  # not trained again


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
