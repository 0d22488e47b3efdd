"""One MLflow run per variant through retries: run identity by tags, exact metric history,
fencing of stale attempts, failure reasons. A real sqlite MLflow store, no Ray."""

from __future__ import annotations

import hashlib
import json
import itertools
import socket

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient

from rdc import names
from rdc.errors import UserError
from sweep import tracking
from sweep.tracking import StaleAttempt, SweepRecord, VariantRun
from sweep.variant import Variant, canonical_json

TRAIN = {"steps": 20, "lr": 1e-4, "seed": 0}
_names = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # An explicit artifact root: MLflow's default (./mlruns) would write into the working folder.
    tracking.ensure_experiment(uri, "exp", str(folder / "artifacts"))
    return uri


@pytest.fixture
def sweep() -> str:
    """A fresh sweep name per test, so tests share one store without seeing each other's runs."""
    return f"sweep{next(_names)}"


SPEC = {"M": 8, "entropy": {"type": "hyperprior"}, "hyper": {"N": 8, "type": "conv"}, "transform": {"N": 8, "type": "conv"}}


def variant(variant_id: str = "v0") -> Variant:
    return Variant(variant_id, "Conv/Hyperprior:Conv", "g", canonical_json(SPEC))


def record(store: str, sweep: str, train: dict = TRAIN) -> SweepRecord:
    return SweepRecord(store, "exp", sweep, tracking.train_config_id(train))


def open_run(store: str, sweep: str, variant_id: str = "v0") -> VariantRun:
    return VariantRun(record(store, sweep), variant(variant_id), TRAIN).open()


def outcomes(store: str, sweep: str) -> dict[str, tuple[str, str]]:
    return {v: (state.status, state.failure) for v, state in tracking.run_states(record(store, sweep)).items()}


def runs_of(store: str, sweep: str) -> list:
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("exp")
    return client.search_runs([exp.experiment_id], filter_string=f"tags.{names.TAG_SWEEP} = '{sweep}'")


def history(store: str, run_id: str, key: str = names.TRAIN_LOSS) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(store).get_metric_history(run_id, key))


def rows(steps, value=lambda s: float(s)) -> list[tuple[int, dict]]:
    return [(s, {names.TRAIN_LOSS: value(s), names.TRAIN_BPP: value(s) / 10}) for s in steps]


def test_a_reopened_variant_finds_its_one_run(store, sweep):
    first = open_run(store, sweep)
    second = open_run(store, sweep)
    assert first.run_id == second.run_id
    other = open_run(store, sweep, "v1")
    assert other.run_id != first.run_id
    found = runs_of(store, sweep)
    assert len(found) == 2
    run = next(r for r in found if r.info.run_id == first.run_id)
    assert run.data.tags[names.TAG_VARIANT_ID] == "v0"
    assert run.data.params[names.SPEC_PARAM_PREFIX + "transform.N"] == "8"
    assert run.data.params[names.TRAIN_PARAM_PREFIX + "steps"] == "20"


def test_a_create_race_leaves_the_oldest_run(store, sweep):
    first = open_run(store, sweep)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("exp")
    # What a second creator racing the first leaves behind: a younger run with the same identity.
    client.create_run(exp.experiment_id, tags={names.TAG_SWEEP: sweep, names.TAG_VARIANT_ID: "v0",
                                               names.TAG_TRAIN_CONFIG: tracking.train_config_id(TRAIN)})
    assert len(runs_of(store, sweep)) == 2
    again = open_run(store, sweep)
    assert again.run_id == first.run_id
    assert [r.info.run_id for r in runs_of(store, sweep)] == [first.run_id]


def test_steps_logged_before_a_crash_are_not_logged_twice(store, sweep):
    run = open_run(store, sweep)
    run.log_rows(rows(range(1, 11)))
    # The retried attempt resumes from a checkpoint at step 5 and trains 6..15 again.
    retry = open_run(store, sweep)
    logged = retry.last_step(names.TRAIN_LOSS)
    assert logged == 10
    retry.log_rows(rows(range(6, 16)), skip_through=logged)
    assert history(store, run.run_id) == [(s, float(s)) for s in range(1, 16)]
    assert [s for s, _ in history(store, run.run_id, names.TRAIN_BPP)] == list(range(1, 16))


def test_a_batch_resent_after_a_lost_answer_is_not_duplicated(store, sweep):
    # A server that committed a batch but died before answering gets the same batch again.
    run = open_run(store, sweep)
    batch = [Metric(names.TRAIN_LOSS, 1.5, 1_700_000_000_000, 7), Metric(names.TRAIN_BPP, 0.5, 1_700_000_000_000, 7)]
    client = MlflowClient(store)
    client.log_batch(run.run_id, metrics=batch)
    client.log_batch(run.run_id, metrics=batch)
    assert history(store, run.run_id) == [(7, 1.5)]


def test_batches_never_split_a_step():
    batch_rows = [(s, {f"m{k}": 1.0 for k in range(3)}) for s in range(700)]
    batches = tracking._whole_step_batches(batch_rows)
    assert [row for batch in batches for row in batch] == batch_rows
    assert all(sum(len(v) for _, v in batch) <= tracking.MAX_METRICS_PER_BATCH for batch in batches)
    assert len(batches) == 3  # 333 whole steps (999 metrics) fit one call


def test_long_histories_go_out_whole(store, sweep):
    run = open_run(store, sweep)
    run.log_rows(rows(range(1, 801)))  # 1600 metrics: two log_batch calls
    assert [s for s, _ in history(store, run.run_id)] == list(range(1, 801))


def test_a_stale_attempt_cannot_write(store, sweep, tmp_path):
    old = open_run(store, sweep)
    new = open_run(store, sweep)  # e.g. the retry of a trial whose host was cut off, not killed
    with pytest.raises(StaleAttempt):
        old.log_rows(rows([1, 2]))
    with pytest.raises(StaleAttempt):
        old.finish()
    with pytest.raises(StaleAttempt):
        old.set_tags({"device": "stale"})
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"weights of the stale attempt")
    with pytest.raises(StaleAttempt):
        old.log_artifact(artifact)
    assert "device" not in MlflowClient(store).get_run(new.run_id).data.tags
    assert MlflowClient(store).list_artifacts(new.run_id) == []
    new.log_rows(rows([1]))
    assert history(store, new.run_id) == [(1, 1.0)]
    assert MlflowClient(store).get_run(new.run_id).info.status == "RUNNING"


def test_a_failure_ends_the_run_with_its_reason_and_a_relaunch_clears_it(store, sweep):
    run = open_run(store, sweep)
    run.fail("loss became nan at step 3")
    ended = MlflowClient(store).get_run(run.run_id)
    assert ended.info.status == "FAILED"
    assert ended.data.tags[names.TAG_FAILURE] == "loss became nan at step 3"
    assert outcomes(store, sweep) == {"v0": ("FAILED", "loss became nan at step 3")}
    again = open_run(store, sweep)
    reopened = MlflowClient(store).get_run(again.run_id)
    assert again.run_id == run.run_id
    assert reopened.info.status == "RUNNING"
    assert names.TAG_FAILURE not in reopened.data.tags


def test_a_finished_run_is_left_alone(store, sweep):
    run = open_run(store, sweep)
    run.log_final(20, {names.BPP: 0.5, names.PSNR: 30.0})
    run.finish()
    again = open_run(store, sweep)
    assert again.finished and again.run_id == run.run_id
    stored = MlflowClient(store).get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.tags[names.TAG_ATTEMPT] == run.attempt
    assert tracking.settled_variant_ids(record(store, sweep)) == {"v0"}
    # Other training settings are another identity: not finished.
    assert tracking.settled_variant_ids(record(store, sweep, {**TRAIN, "steps": 30})) == set()


def test_final_metrics_are_logged_once(store, sweep):
    run = open_run(store, sweep)
    run.log_final(20, {names.BPP: 0.5, names.PSNR: 30.0})
    retry = open_run(store, sweep)  # crashed after logging, before ending the run
    retry.log_final(20, {names.BPP: 0.5, names.PSNR: 30.0, names.decode_ms("cpu-x-1t"): 3.0})
    for key in (names.BPP, names.PSNR, names.decode_ms("cpu-x-1t")):
        assert len(MlflowClient(store).get_metric_history(run.run_id, key)) == 1, key


def test_force_discards_runs_and_mark_failed_ends_only_open_ones(store, sweep):
    done = open_run(store, sweep, "v0")
    done.finish()
    open_run(store, sweep, "v1")
    assert not tracking.mark_failed(record(store, sweep), "v0", "trial error: x")
    assert tracking.mark_failed(record(store, sweep), "v1", "trial error: worker died")
    assert outcomes(store, sweep) == {"v0": ("FINISHED", ""), "v1": ("FAILED", "trial error: worker died")}
    assert tracking.discard_runs(record(store, sweep), {"v0"}) == 1
    assert set(outcomes(store, sweep)) == {"v1"}
    assert open_run(store, sweep, "v0").run_id != done.run_id


def test_a_stopped_run_ends_killed_with_its_step_and_is_settled_not_failed(store, sweep):
    open_run(store, sweep, "v0").finish()
    stopped = open_run(store, sweep, "v1")
    assert tracking.mark_stopped(record(store, sweep), "v1", 40, "asha", {names.TAG_STOP_DECISION: '{"rung": 0.1}'})
    assert not tracking.mark_stopped(record(store, sweep), "v0", 40, "asha")  # it ended by itself
    ended = MlflowClient(store).get_run(stopped.run_id)
    assert ended.info.status == names.STOPPED_STATUS == "KILLED"
    assert (ended.data.tags[names.TAG_STOPPED_EARLY], ended.data.tags[names.TAG_STOPPED_BY]) == ("40", "asha")
    assert ended.data.tags[names.TAG_STOP_DECISION] == '{"rung": 0.1}'  # the scheduler's own tags
    states = tracking.run_states(record(store, sweep))
    assert states["v1"].stopped and states["v1"].stopped_at == 40 and not states["v1"].finished
    assert not states["v0"].stopped
    assert tracking.settled_variant_ids(record(store, sweep)) == {"v0", "v1"}
    # A run killed by hand (no scheduler's tag) is not settled: a re-run trains it.
    by_hand = open_run(store, sweep, "v2")
    MlflowClient(store).set_terminated(by_hand.run_id, status="KILLED")
    assert not tracking.run_states(record(store, sweep))["v2"].stopped


def test_training_identity_covers_the_training_images():
    plain = tracking.train_config_id(TRAIN)
    # The builtin photographs keep the ids runs already carry.
    assert plain == tracking.train_config_id(TRAIN, None)
    assert plain == hashlib.sha256(
        json.dumps(TRAIN, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert tracking.train_config_id(TRAIN, "/data/clic") != plain
    assert tracking.train_config_id({**TRAIN, "seed": 1}) != plain


def test_an_unreachable_tracking_server_is_one_user_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(UserError) as err:
        tracking.check_store(uri, timeout_s=2)
    assert err.value.key == "tracking.uri" and err.value.value == uri
    assert "no MLflow server answers" in str(err.value)


def test_transient_store_errors_are_retried_and_permanent_ones_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("connection refused")
        return "ok"

    assert tracking.with_retries(flaky, what="test", deadline_s=10) == "ok"
    assert len(calls) == 3

    def bad():
        calls.append(1)
        raise MlflowException("bad key", error_code=INVALID_PARAMETER_VALUE)

    calls.clear()
    with pytest.raises(MlflowException):
        tracking.with_retries(bad, what="test", deadline_s=10)
    assert len(calls) == 1


def test_a_measurement_lands_only_on_the_run_it_measured(store, sweep, tmp_path):
    run = open_run(store, sweep)
    run.finish()
    read = MlflowClient(store).get_run(run.run_id)
    target = tracking.FinishedRun(tracking.client(store), read)
    assert target.log_new_metrics({names.decode_ms("cpu-x-1t"): 2.0}, 0) == 1
    assert target.log_new_metrics({names.decode_ms("cpu-x-1t"): 9.0}, 0) == 0  # once per run
    (tmp_path / "table.csv").write_text("a\n1\n")
    target.log_artifact(tmp_path / "table.csv")
    # A force=true relaunch reopens the run under a new attempt while it is being measured.
    MlflowClient(store).set_tag(run.run_id, names.TAG_ATTEMPT, "a-newer-attempt")
    with pytest.raises(StaleAttempt):
        target.log_new_metrics({names.decode_ms("cpu-y-1t"): 3.0}, 0)
    with pytest.raises(StaleAttempt):
        target.set_tags({"x": "y"})
    assert names.decode_ms("cpu-y-1t") not in MlflowClient(store).get_run(run.run_id).data.metrics
    assert MlflowClient(store).get_metric_history(run.run_id, names.decode_ms("cpu-x-1t"))[0].value == 2.0


def test_the_record_of_a_sweep_is_built_from_its_settings():
    settings = {"tracking": {"uri": "sqlite:////x/mlflow.db"}, "experiment": "e", "sweep_name": "s",
                "train": TRAIN, "data": {"train_dir": None}}
    record = SweepRecord.of(settings)
    assert record == SweepRecord("sqlite:////x/mlflow.db", "e", "s", tracking.train_config_id(TRAIN))
    assert SweepRecord(**record.as_config()) == record
