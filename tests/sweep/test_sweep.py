"""`rdc sweep` end to end on a real local Ray and a real sqlite MLflow store: a diverging
variant fails with its reason while the others finish; incremental re-runs skip what is
FINISHED; force=true retrains into one fresh run per variant; bad input is one line, exit 2,
and nothing written."""

from __future__ import annotations

import socket
from pathlib import Path

import subprocess
import sys

import numpy as np
import pytest
import torch
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from jobs.crops import RandomCrops
from jobs.data import load_images
from jobs.settings import TrainSettings
from jobs.train import Trainer, TrainingDiverged
from models import build
from rdc import names
from rdc.cli import main
from rdc.errors import UserError
from sweep.trainable import FAULT_ENV, TRAINER_FILE, NonFiniteFault, read_trainer_state
from tests.cluster.rig import REPO, make_root, sweep_args, write_space, variant_runs

STEPS, LOG_EVERY = 8, 2


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)


def sweep(root: Path, space: str, *extra: str) -> int:
    return main(sweep_args(root, space, steps=STEPS, log_every=LOG_EVERY, checkpoint_every=4, extra=extra))


def runs(root: Path, experiment: str, view=ViewType.ACTIVE_ONLY) -> list:
    client = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return variant_runs(client.search_runs([exp.experiment_id], run_view_type=view))


def by_width(found: list) -> dict[int, object]:
    return {int(r.data.params[names.SPEC_PARAM_PREFIX + "transform.N"]): r for r in found}


@pytest.mark.slow
def test_a_diverging_variant_fails_with_its_reason_and_the_others_finish(shared_ray, root, capsys, monkeypatch):
    write_space(root, "diverge", "diverge", [8, 16])
    from sweep.space import expand
    import yaml

    diverging = next(v for v in expand(yaml.safe_load((root / "conf/search_space/diverge.yaml").read_text()))
                     if v.spec["transform"]["N"] == 16)
    monkeypatch.setenv(FAULT_ENV, f"{diverging.variant_id[:8]}@3")
    assert sweep(root, "diverge") == 1
    out = capsys.readouterr().out
    assert "finished 1/2 variants" in out
    assert f"failed {diverging.variant_id}" in out and "loss became nan at step 3" in out

    found = by_width(runs(root, "diverge"))
    assert found[8].info.status == "FINISHED"
    assert names.TAG_FAILURE not in found[8].data.tags
    failed = found[16]
    assert failed.info.status == "FAILED"
    assert failed.data.tags[names.TAG_FAILURE] == "loss became nan at step 3"
    client = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}")
    # What it logged before diverging is kept; nothing after.
    assert [m.step for m in client.get_metric_history(failed.info.run_id, names.TRAIN_LOSS)] == [2]
    assert names.BPP not in failed.data.metrics


def test_an_infinite_loss_is_caught_like_a_nan():
    spec = {"M": 8, "transform": {"type": "conv", "N": 8}, "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 8}}
    model = build(spec)
    trainer = Trainer(model, TrainSettings(steps=4, batch_size=1, crop=32),
                      RandomCrops(load_images(None, split="train", key="data.train_dir"), 32, 1, 0))
    trainer.train_step()
    NonFiniteFault.parse("ab@1:inf").poison(model)
    with pytest.raises(TrainingDiverged):
        trainer.train_step()
    assert NonFiniteFault.parse("ab@1:inf").applies("abcdef", 1)
    assert not NonFiniteFault.parse("ab@1").applies("abcdef", 2)
    assert np.isnan(NonFiniteFault.parse("ab@1").value)
    for bad in ("ab", "@3", "ab@x", "ab@3:zero"):
        with pytest.raises(UserError) as err:
            NonFiniteFault.parse(bad)
        assert err.value.key == FAULT_ENV


@pytest.mark.slow
def test_incremental_sweeps_train_only_what_is_not_finished(shared_ray, root, capsys):
    write_space(root, "one", "inc", [8])
    write_space(root, "two", "inc", [8, 16])
    assert sweep(root, "one") == 0
    first = by_width(runs(root, "inc"))[8]
    assert first.info.status == "FINISHED"
    capsys.readouterr()

    # The widened space: the finished variant is skipped, only the new one trains.
    assert sweep(root, "two") == 0
    assert "2 variants, 1 already finished, 1 to train" in capsys.readouterr().out
    found = by_width(runs(root, "inc"))
    assert sorted(found) == [8, 16]
    assert found[8].info.run_id == first.info.run_id and found[8].info.end_time == first.info.end_time
    assert all(r.info.status == "FINISHED" for r in found.values())

    # (Another training config is another identity: tests/sweep/test_tracking.py and, with real
    # trials at other seeds and lambdas, tests/sweep/test_trials.py.)

    # Another sweep of the same variant and training reuses the finished run: linked into its
    # own experiment with every metric's history and the model, not trained (no Ray started).
    assert sweep(root, "one", "sweep_name=other") == 0
    out = capsys.readouterr().out
    assert "1 trial(s) finished with the same training in other sweeps (inc) are reused" in out
    assert "1 variants, 1 already finished, 0 to train" in out and "start " not in out
    (linked,) = runs(root, "other")
    store = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}")
    assert linked.info.status == "FINISHED" and linked.data.tags[names.TAG_REUSED_FROM] == first.info.run_id
    assert linked.data.tags[names.TAG_SWEEP] == "other"
    assert linked.data.metrics == store.get_run(first.info.run_id).data.metrics
    for key in (names.TRAIN_LOSS, names.BPP):
        assert [(m.step, m.value) for m in store.get_metric_history(linked.info.run_id, key)] == \
            [(m.step, m.value) for m in store.get_metric_history(first.info.run_id, key)]
    assert names.MODEL_ARTIFACT in {a.path for a in store.list_artifacts(linked.info.run_id)}

    # force=true: trained again into one fresh run; the old one is soft-deleted, not duplicated.
    assert sweep(root, "one", "force=true") == 0
    assert "0 already finished, 1 to train" in capsys.readouterr().out
    found = runs(root, "inc")
    same_training = [r for r in found if r.data.tags[names.TAG_TRAIN_CONFIG] == first.data.tags[names.TAG_TRAIN_CONFIG]]
    assert len(same_training) == 2  # N=8 (retrained) and N=16 (untouched)
    retrained = by_width(same_training)[8]
    assert retrained.info.run_id != first.info.run_id and retrained.info.status == "FINISHED"
    deleted = runs(root, "inc", ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [first.info.run_id]
    history = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}").get_metric_history(
        retrained.info.run_id, names.TRAIN_LOSS)
    assert [m.step for m in history] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("extra, key", [
    (["resume=true"], "resume"),
    (["resume=true", "force=true"], "force"),
    (["search=optuna", "force=true"], "force"),
    (["search=optuna", "search.budget=0"], "search.budget"),
    (["cluster.trial_cpus=4"], "cluster.trial_cpus"),
    (["cluster.trial_gpus=1.5"], "cluster.trial_gpus"),
    (["cluster.trial_cpus=0"], "cluster.trial_cpus"),
    (["cluster.max_concurrent_trials=-1"], "cluster.max_concurrent_trials"),
    (["cluster.max_failures=-1"], "cluster.max_failures"),
    (["cluster.storage_path=s3://bucket/sweeps"], "cluster.storage_path"),
    (["cluster.address=10.0.0.1:6379"], "cluster.address"),
    (["cluster=ray", "cluster.address=not an address"], "cluster.address"),
    (["cluster=ray", "cluster.num_cpus=2"], "cluster.num_cpus"),
    (["sweep_name=../elsewhere"], "sweep_name"),
    (["sweep_name=.hidden"], "sweep_name"),
    (["tracking=server", "tracking.uri=http://127.0.0.1:{port}"], "tracking.uri"),
])
def test_bad_input_is_one_line_and_leaves_nothing(root, capsys, extra, key):
    write_space(root, "bad", "bad", [8])
    extra = [item.format(port=_closed_port()) for item in extra]
    assert sweep(root, "bad", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rdc sweep: error: {key}"), err
    assert not (root / "runs" / "mlflow.db").exists()
    assert not (root / "runs").exists()


def test_an_unreachable_cluster_is_one_line_at_once(root):
    # A fresh interpreter: a cluster driver configures Ray differently from this test process.
    write_space(root, "bad", "bad", [8])
    address = f"127.0.0.1:{_closed_port()}"
    proc = subprocess.run([sys.executable, "-m", "rdc.cli", *sweep_args(
        root, "bad", steps=STEPS, log_every=LOG_EVERY, checkpoint_every=4,
        extra=("cluster=ray", f"cluster.address={address}"))], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"rdc sweep: error: cluster.address={address!r}: nothing answers there (Connection refused): "
        "allowed: the address of a running Ray head (ray start --head; docs/cluster.md)"]
    assert not (root / "runs").exists()


def test_a_second_driver_of_the_same_sweep_is_refused(root, capsys):
    from sweep import launch

    write_space(root, "one", "locked", [8])
    settings = {"cluster": {}, "runs_dir": str(root / "runs"), "sweep_name": "locked"}
    with launch.sweep_lock(settings):  # what a running `rdc sweep` of this sweep holds
        assert sweep(root, "one") == 2
    err = capsys.readouterr().err
    assert err.startswith("rdc sweep: error: sweep_name='locked': another rdc sweep is running this sweep")
    assert not (root / "runs").exists()


def test_a_bad_fault_injection_setting_is_refused(root, capsys, monkeypatch):
    write_space(root, "bad", "bad", [8])
    monkeypatch.setenv(FAULT_ENV, "every@variant")
    assert sweep(root, "bad") == 2
    assert capsys.readouterr().err.startswith(f"rdc sweep: error: {FAULT_ENV}='every@variant'")
    assert not (root / "runs" / "mlflow.db").exists()


def test_checkpoints_load_weights_only(tmp_path):
    # A checkpoint that would run code when unpickled is refused, and a real one loads.
    class Payload:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('ran').touch()",))

    torch.save({"step": 1, "model": Payload()}, tmp_path / TRAINER_FILE)
    with pytest.raises(RuntimeError, match="not readable"):
        read_trainer_state(tmp_path)
    assert not Path("ran").exists()
    torch.save({"step": 3, "model": {"w": torch.ones(2)}}, tmp_path / TRAINER_FILE)
    assert read_trainer_state(tmp_path)["step"] == 3


@pytest.mark.slow
def test_a_training_image_damaged_past_its_header_fails_its_variants_once_with_the_file_named(shared_ray, root, capsys):
    import io

    import skimage.data
    from PIL import Image

    train = root / "train"
    train.mkdir()
    encoded = io.BytesIO()
    Image.fromarray(skimage.data.coffee()[:96, :96]).save(encoded, "JPEG", quality=90)
    (train / "cut.jpg").write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    write_space(root, "damaged", "damaged", [8])
    assert sweep(root, "damaged", f"data.train_dir={train}") == 1
    out = capsys.readouterr().out
    assert "finished 0/1 variants" in out and "cut.jpg" in out

    (failed,) = runs(root, "damaged")
    assert failed.info.status == "FAILED"
    assert "cut.jpg': not a readable image" in failed.data.tags[names.TAG_FAILURE]
    # Failed from its first step, not retried from checkpoints: nothing trained, nothing logged.
    client = MlflowClient(f"sqlite:///{root / 'runs' / 'mlflow.db'}")
    assert client.get_metric_history(failed.info.run_id, names.TRAIN_LOSS) == []


def test_sweep_names_that_differ_after_a_dot_keep_their_own_resume_record(tmp_path):
    from sweep.launch import _fingerprint_path

    def record(name: str):
        return _fingerprint_path({"cluster": {}, "runs_dir": str(tmp_path), "sweep_name": name})

    assert record("paper.v2") != record("paper.v3")
    assert record("demo").name == "demo.sweep.json"  # the name earlier versions wrote
