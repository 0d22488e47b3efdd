"""A real 2-variant sweep: Hydra -> a local Ray instance -> a sqlite MLflow store -> frontier.

Everything is real: Ray trains both variants, MLflow holds the runs, the final model is
downloaded from MLflow and its bitstreams are recomputed to check the logged bpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from jobs.data import load_images
from jobs.profile import count_params
from models import build
from rdc import names
from rdc.cli import main
from tests.cluster.rig import variant_runs

SPACE = """
name: it2
families:
  - name: tiny-conv
    transform: {type: conv, N: [8, 16]}
    entropy: {type: hyperprior}
    hyper: {type: conv, N: 8}
    M: 16
"""
STEPS = 20


@pytest.fixture(scope="module")
def sweep(shared_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "conf" / "search_space").mkdir(parents=True)
    (root / "conf" / "search_space" / "it2.yaml").write_text(SPACE)
    runs = root / "runs"
    code = main([
        "sweep", "--config-dir", str(root / "conf"), "search_space=it2", f"runs_dir={runs}",
        f"train.steps={STEPS}", "train.checkpoint_every=10", "train.log_every=5", "train.crop=64",
        "train.batch_size=2", "profile.repeats=2", "cluster.num_cpus=2", "tracking.sweep_report=false",
    ])
    return {"code": code, "runs": runs, "uri": f"sqlite:///{runs / 'mlflow.db'}"}


def finished_runs(uri: str):
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("it2")
    return client, variant_runs(client.search_runs([exp.experiment_id]))


def test_sweep_exits_cleanly(sweep):
    assert sweep["code"] == 0


def test_one_finished_run_per_variant_with_every_metric(sweep):
    client, runs = finished_runs(sweep["uri"])
    assert len(runs) == 2
    assert len({r.data.tags[names.TAG_VARIANT_ID] for r in runs}) == 2
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags[names.TAG_FAMILY] == "Conv/Hyperprior:Conv"
        assert run.data.tags[names.TAG_SWEEP] == "it2"
        metrics = run.data.metrics
        for key in (names.RD_LOSS, names.BPP, names.BPP_EST, names.PSNR, names.MSE, names.PARAMS,
                    names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX):
            assert key in metrics, key
        assert any(k.startswith(names.DECODE_MS_PREFIX) for k in metrics)
        assert metrics[names.DECODE_KFLOPS_PER_PX] == pytest.approx(2 * metrics[names.DECODE_KMACS_PER_PX])
        history = client.get_metric_history(run.info.run_id, names.TRAIN_LOSS)
        assert sorted(m.step for m in history) == list(range(5, STEPS + 1, 5))


def test_logged_bpp_is_the_real_bitstream_of_the_logged_model(sweep, tmp_path):
    client, runs = finished_runs(sweep["uri"])
    eval_images = load_images(None, split="eval", key="data.eval_dir")
    for run in runs:
        path = client.download_artifacts(run.info.run_id, "model.pt", str(tmp_path))
        state = torch.load(path, weights_only=True)
        model = build(state["spec"])
        model.load_state_dict(state["model"])
        model.eval()
        assert json.loads(run.data.params[names.SPEC_JSON_PARAM]) == state["spec"]
        assert run.data.metrics[names.PARAMS] == count_params(model)
        bpps = []
        for image in eval_images:
            data = model.compress(image.tensor())[0]
            assert model.decompress(data)["x_hat"].shape == image.tensor().shape
            bpps.append(len(data) * 8 / image.num_pixels)
        assert run.data.metrics[names.BPP] == pytest.approx(sum(bpps) / len(bpps), rel=1e-12)


def test_frontier_is_the_non_dominated_set(sweep, capsys):
    _, runs = finished_runs(sweep["uri"])
    points = {r.data.tags[names.TAG_VARIANT_ID]: (r.data.metrics[names.DECODE_KFLOPS_PER_PX], r.data.metrics[names.RD_LOSS]) for r in runs}
    expected = {
        vid for vid, (x, y) in points.items()
        if not any(x2 <= x and y2 <= y and (x2, y2) != (x, y) for x2, y2 in points.values())
    }
    capsys.readouterr()
    assert main(["frontier", "--experiment", "it2", "--tracking-uri", sweep["uri"], "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {row[names.TAG_VARIANT_ID] for row in rows} == expected
    assert all(row["pareto_rank"] == 1 for row in rows)


def test_rerun_skips_finished_variants(sweep, capsys):
    root = Path(sweep["runs"]).parent
    code = main([
        "sweep", "--config-dir", str(root / "conf"), "search_space=it2", f"runs_dir={sweep['runs']}",
        f"train.steps={STEPS}", "train.checkpoint_every=10", "train.log_every=5", "train.crop=64",
        "train.batch_size=2", "profile.repeats=2",
    ])
    assert code == 0
    assert "2 already finished, 0 to train" in capsys.readouterr().out
    _, runs = finished_runs(sweep["uri"])
    assert len(runs) == 2


def test_a_rerun_on_other_images_evaluates_the_finished_runs_there_without_retraining(sweep, capsys, tmp_path):
    import skimage.data
    from PIL import Image

    root = Path(sweep["runs"]).parent
    folder = tmp_path / "astronaut"
    folder.mkdir()
    Image.fromarray(skimage.data.astronaut()[:96, :128]).save(folder / "crop.png")
    client, before = finished_runs(sweep["uri"])
    histories = {r.info.run_id: client.get_metric_history(r.info.run_id, names.TRAIN_LOSS) for r in before}
    code = main([
        "sweep", "--config-dir", str(root / "conf"), "search_space=it2", f"runs_dir={sweep['runs']}",
        f"train.steps={STEPS}", "train.checkpoint_every=10", "train.log_every=5", "train.crop=64",
        "train.batch_size=2", "profile.repeats=2", f"data.eval_dir={folder}", "tracking.sweep_report=false",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 already finished, 0 to train" in out
    assert f"2 finished trial(s) were evaluated on other images (builtin) than {folder}" in out
    assert out.count("evaluated again on this sweep's images, not trained again") == 2
    _, after = finished_runs(sweep["uri"])
    old = {r.info.run_id: r for r in before}
    for run in after:
        earlier, metrics = old[run.info.run_id], run.data.metrics
        assert run.info.status == "FINISHED" and run.info.end_time == earlier.info.end_time
        assert client.get_metric_history(run.info.run_id, names.TRAIN_LOSS) == histories[run.info.run_id]
        assert run.data.tags[names.TAG_EVAL_IMAGES] == str(folder)
        # Both sets' metrics, each under its own name; the main ones for the set the sweep names.
        assert metrics[f"evalset/builtin/{names.PSNR}"] == earlier.data.metrics[names.PSNR]
        assert metrics[f"evalset/astronaut/{names.PSNR}"] == metrics[names.PSNR] != earlier.data.metrics[names.PSNR]
        assert metrics[names.DECODE_KFLOPS_PER_PX] == earlier.data.metrics[names.DECODE_KFLOPS_PER_PX]
        tables = {a.path for a in client.list_artifacts(run.info.run_id, names.EVAL_TABLE_DIR)}
        assert tables == {f"{names.EVAL_TABLE_DIR}/builtin.csv", f"{names.EVAL_TABLE_DIR}/astronaut.csv"}
