"""`rdc profile` and `rdc eval` on a real sqlite MLflow store holding runs laid out as a sweep leaves
them (tags, params, the final model as the artifact model.pt), plus runs a user can break."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image as PILImage

from models import build
from rdc import names
from rdc.cli import main

EXPERIMENT = "remeasure"


def spec(N: int, M: int) -> dict:
    return {"M": M, "transform": {"type": "conv", "N": N}, "entropy": {"type": "hyperprior"},
            "hyper": {"type": "conv", "N": 8}}


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Two small photographs (crops of scikit-image's evaluation pictures), one not a multiple of 64."""
    from jobs.data import load_images

    folder = tmp_path_factory.mktemp("images")
    coffee, chelsea = load_images(None, split="eval", key="test")
    PILImage.fromarray(coffee.pixels[:64, :96]).save(folder / "coffee.png")
    PILImage.fromarray(chelsea.pixels[:70, :50]).save(folder / "chelsea.png")
    return folder


class Store:
    """A sqlite MLflow store in tmp_path and the runs a test puts in it."""

    def __init__(self, root: Path):
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
        self.root = root

    def run(self, name: str, model_spec: dict | None, *, checkpoint: bytes | dict | None = None,
            status: str = "FINISHED") -> str:
        """A run like a trial's: tags, spec params, and model.pt = {"spec", "model"} unless told otherwise."""
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={names.TAG_VARIANT_ID: name, names.TAG_SWEEP: EXPERIMENT})
        run_id = run.info.run_id
        if model_spec is not None:
            self.client.log_param(run_id, names.SPEC_JSON_PARAM, json.dumps(model_spec))
            self.client.log_param(run_id, names.TRAIN_PARAM_PREFIX + "lmbda", "0.0125")
        path = self.root / f"{name}-model.pt"
        if checkpoint is None and model_spec is not None:
            torch.manual_seed(0)
            torch.save({"spec": model_spec, "model": build(model_spec).state_dict()}, path)
        elif isinstance(checkpoint, bytes):
            path.write_bytes(checkpoint)
        elif isinstance(checkpoint, dict):
            torch.save(checkpoint, path)
        if path.exists():
            final = path.with_name(names.MODEL_ARTIFACT)
            path.replace(final)
            self.client.log_artifact(run_id, str(final))
            final.unlink()
        if status == "FINISHED":
            self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def history(self, run_id: str, metric: str) -> list[float]:
        return [m.value for m in self.client.get_metric_history(run_id, metric)]

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        return sorted(a.path for a in self.client.list_artifacts(run_id, path))


def profile(store: Store, images: Path, *extra: str) -> int:
    return main(["profile", "--experiment", EXPERIMENT, "--tracking-uri", store.uri, "--images", str(images),
                 "--threads", "1", "--warmup", "0", "--repeats", "2", *extra])


def device_of(store: Store, run_id: str) -> str:
    tags = [t for t in store.client.get_run(run_id).data.tags if t.startswith(names.RUNTIME_PROTOCOL_TAG_PREFIX)]
    assert len(tags) == 1, tags
    return tags[0][len(names.RUNTIME_PROTOCOL_TAG_PREFIX):]


def test_profile_twice_leaves_exactly_one_value_per_metric_per_run(tmp_path, images, capsys):
    store = Store(tmp_path)
    runs = [store.run("narrow", spec(8, 16)), store.run("wide", spec(16, 24))]

    assert profile(store, images) == 0
    first = {run_id: store.client.get_run(run_id).data.metrics for run_id in runs}
    device = device_of(store, runs[0])
    assert device.endswith("-1t")
    expected = names.runtime_metrics(device) + [names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX,
                                                names.ENCODE_KFLOPS_PER_PX, names.ENCODE_KMACS_PER_PX]
    for run_id in runs:
        assert set(expected) <= set(first[run_id])
        assert names.runtime_table(device) in store.artifacts(run_id)
        assert "images=" in store.client.get_run(run_id).data.tags[names.runtime_protocol_tag(device)]
    assert "2 profiled, 0 already profiled, 0 failed" in capsys.readouterr().out

    assert profile(store, images) == 0
    assert "0 profiled, 2 already profiled, 0 failed" in capsys.readouterr().out
    for run_id in runs:
        metrics = store.client.get_run(run_id).data.metrics
        for name in expected:
            assert store.history(run_id, name) == [first[run_id][name]], name
            assert metrics[name] == first[run_id][name]
    # The wider model costs more FLOPs; the table holds every repeat of every stage and image.
    assert first[runs[1]][names.DECODE_KFLOPS_PER_PX] > first[runs[0]][names.DECODE_KFLOPS_PER_PX]
    table = pd.read_csv(store.client.download_artifacts(runs[0], names.runtime_table(device), str(tmp_path)))
    assert len(table) == 2 * len(names.RUNTIME_STAGES) and set(table["image"]) == {"coffee", "chelsea"}


def test_broken_checkpoints_get_one_line_each_and_the_other_runs_are_profiled(tmp_path, images, capsys):
    store = Store(tmp_path)
    good = store.run("good", spec(8, 16))
    corrupt = store.run("corrupt", spec(8, 16), checkpoint=b"\x00not a torch file" * 10)
    missing = store.run("missing", None)
    foreign = store.run("foreign", spec(8, 16), checkpoint={"spec": spec(8, 16), "model": build(spec(16, 24)).state_dict()})
    running = store.run("running", spec(8, 16), status="RUNNING")
    capsys.readouterr()

    assert profile(store, images) == 2
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3, errors
    by_run = {run_id: [line for line in errors if run_id in line] for run_id in (corrupt, missing, foreign)}
    assert all(len(lines) == 1 for lines in by_run.values()), errors
    assert "checkpoint='model.pt': not a readable torch checkpoint (pickle.UnpicklingError)" in by_run[corrupt][0]
    assert "model.pt" in by_run[missing][0] and "missing from the run's artifacts" in by_run[missing][0]
    assert "weights do not fit its spec" in by_run[foreign][0]
    assert all(line.startswith("rdc profile: error: run ") for line in errors)
    assert "Traceback" not in captured.err
    assert "1 profiled, 0 already profiled, 3 failed, 1 not finished (skipped)" in captured.out

    device = device_of(store, good)
    assert set(names.runtime_metrics(device)) <= set(store.client.get_run(good).data.metrics)
    for run_id in (corrupt, missing, foreign, running):
        assert not any(names.parse_runtime_metric(m) for m in store.client.get_run(run_id).data.metrics)


@pytest.fixture
def shared_core():
    """This process and one busy process on the same CPU core: every timed call gets about half
    of it, so wall time is about twice CPU time, as with a noisy neighbour (real, not mocked)."""
    import os
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs sched_setaffinity (Linux)")
    core = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    busy = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        busy.kill()
        busy.wait()


def test_a_runtime_a_neighbour_spoiled_is_tagged_suspect_and_said_at_the_end(tmp_path, images, capsys, shared_core):
    store = Store(tmp_path)
    run_id = store.run("crowded", spec(8, 16))
    assert profile(store, images, "--repeats", "3") == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if run_id in line]
    assert "; SUSPECT: decode" in line  # the stages
    assert out.strip().splitlines()[-1].startswith("rdc profile: 1 of 1 runs still looked disturbed after re-measuring")
    tags = store.client.get_run(run_id).data.tags
    device = device_of(store, run_id)
    why = tags[names.TAG_RUNTIME_SUSPECT]
    assert why.startswith(device + ":") and "wall" in why and "vs CPU" in why, why  # the figure, and why
    # The figures are still written (with the tag beside them), not thrown away.
    assert set(names.runtime_metrics(device)) <= set(store.client.get_run(run_id).data.metrics)


def test_profile_times_each_run_on_its_own_evaluation_images_by_default(tmp_path, images, capsys):
    store = Store(tmp_path)
    own = store.run("own", spec(8, 16))
    store.client.set_tag(own, names.TAG_EVAL_IMAGES, str(images))
    store.client.set_tag(own, names.TAG_FLOPS_SIZE, "70x50")  # padded: not the default per pixel
    gone = store.run("gone", spec(8, 16))
    store.client.set_tag(gone, names.TAG_EVAL_IMAGES, str(tmp_path / "not-on-this-machine"))
    capsys.readouterr()

    assert main(["profile", "--experiment", EXPERIMENT, "--tracking-uri", store.uri, "--threads", "1",
                 "--warmup", "0", "--repeats", "2"]) == 2
    captured = capsys.readouterr()
    (error,) = captured.err.strip().splitlines()
    assert error.startswith(f"rdc profile: error: run {gone}: eval_images=") and "--images DIR" in error
    assert "1 profiled, 0 already profiled, 1 failed" in captured.out

    device = device_of(store, own)
    table = pd.read_csv(store.client.download_artifacts(own, names.runtime_table(device), str(tmp_path)))
    assert set(table["image"]) == {"coffee", "chelsea"} and set(table["height"]) == {64, 70}  # the folder's crops
    assert f"images={images.resolve()}:2" in store.client.get_run(own).data.tags[names.runtime_protocol_tag(device)]
    # Cost metrics the run lacked are counted at the size its flops_size tag names.
    from jobs.profile import flops_metrics

    logged = store.client.get_run(own).data.metrics
    model = build(spec(8, 16))
    assert logged[names.DECODE_KFLOPS_PER_PX] == pytest.approx(flops_metrics(model, 70, 50)[names.DECODE_KFLOPS_PER_PX])
    assert logged[names.DECODE_KFLOPS_PER_PX] != pytest.approx(flops_metrics(model)[names.DECODE_KFLOPS_PER_PX])


@pytest.mark.parametrize("args, expected", [
    (["--experiment", "nope"], "rdc profile: error: --experiment='nope': no such experiment in"),
    (["--experiment", EXPERIMENT, "--repeats", "1"], "rdc profile: error: --repeats=1: the coefficient of variation"),
    (["--experiment", EXPERIMENT, "--threads", "0"], "rdc profile: error: --threads=0: allowed: an integer >= 1"),
    (["--experiment", EXPERIMENT, "--device", "tpu"], "rdc profile: error: --device='tpu': allowed: cpu, cuda"),
])
def test_profile_refuses_bad_input_in_one_line(tmp_path, images, capsys, args, expected):
    store = Store(tmp_path)
    store.run("good", spec(8, 16))
    capsys.readouterr()
    assert main(["profile", "--tracking-uri", store.uri, "--images", str(images), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected) and "\n" not in err, err


def test_profile_refuses_a_missing_store_without_creating_one(tmp_path, capsys):
    db = tmp_path / "absent" / "mlflow.db"
    assert main(["profile", "--experiment", "x", "--tracking-uri", f"sqlite:///{db}"]) == 2
    assert "no such sqlite file" in capsys.readouterr().err
    assert not db.parent.exists()


def test_profile_refuses_an_empty_image_folder_before_touching_any_run(tmp_path, capsys):
    store = Store(tmp_path)
    run_id = store.run("good", spec(8, 16))
    (tmp_path / "empty").mkdir()
    assert profile(store, tmp_path / "empty") == 2
    assert "--images=" in capsys.readouterr().err
    assert not any(names.parse_runtime_metric(m) for m in store.client.get_run(run_id).data.metrics)


# -- rdc eval ------------------------------------------------------------------------------------
def test_eval_one_run_on_a_folder_keeps_its_table_and_reconstructions(tmp_path, images, capsys):
    store = Store(tmp_path)
    run_id = store.run("good", spec(8, 16))
    out = tmp_path / "reconstructions"
    csv = tmp_path / "table.csv"
    assert main(["eval", "--run", run_id, "--images", str(images), "--tracking-uri", store.uri,
                 "--reconstructions", str(out), "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    assert f"run {run_id} on" in printed and "(2 images, averaged per image)" in printed

    table = pd.read_csv(csv)
    kept = pd.read_csv(store.client.download_artifacts(run_id, f"{names.EVAL_TABLE_DIR}/{images.name}.csv", str(tmp_path)))
    pd.testing.assert_frame_equal(table, kept)
    for row in table.itertuples():
        original = np.asarray(PILImage.open(images / f"{row.name}.png").convert("RGB")).astype(np.float64)
        decoded = np.asarray(PILImage.open(out / f"{row.name}.png").convert("RGB")).astype(np.float64)
        assert decoded.shape == original.shape == (row.height, row.width, 3)
        assert row.psnr == pytest.approx(10 * np.log10(255**2 / np.mean((original - decoded) ** 2)), rel=1e-12)
        assert row.bpp == pytest.approx(row.num_bytes * 8 / (row.height * row.width), rel=1e-12)  # CSV digits
    # Metrics are the trial's (measured on its evaluation images): eval adds an artifact only.
    assert not store.client.get_run(run_id).data.metrics


def test_eval_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, images, capsys):
    store = Store(tmp_path)
    run_id = store.run("good", spec(8, 16))
    corrupt = store.run("corrupt", spec(8, 16), checkpoint=b"garbage")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no images here")
    capsys.readouterr()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "photo.png").write_bytes(b"not a png")
    out = tmp_path / "reconstructions"
    cases = [
        (["--run", "0123abcd", "--images", str(images)], "--run='0123abcd': no such run"),
        (["--run", run_id, "--images", str(empty)], f"--images='{empty}': no images in this folder"),
        (["--run", run_id, "--images", str(broken)], f"--images='{broken / 'photo.png'}': not a readable image"),
        (["--run", corrupt, "--images", str(images)], f"run {corrupt} (corrupt): checkpoint='model.pt': not a readable"),
    ]
    for args, expected in cases:
        assert main(["eval", "--tracking-uri", store.uri, "--reconstructions", str(out), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"rdc eval: error: {expected}") and "\n" not in err, err
    assert not out.exists()
    assert store.artifacts(run_id, names.EVAL_TABLE_DIR) == []


def test_profile_defaults_come_from_the_profile_config_group():
    from omegaconf import OmegaConf

    from sweep.remeasure import PROFILE_CONF_DIR, profile_defaults

    for kind in ("cpu", "cuda"):
        conf = OmegaConf.load(PROFILE_CONF_DIR / f"{kind}.yaml")
        assert profile_defaults(kind) == {"warmup": conf.warmup, "repeats": conf.repeats}
    assert profile_defaults("cuda")["warmup"] > profile_defaults("cpu")["warmup"]
