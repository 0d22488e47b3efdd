"""`rdc import`: a compressai checkpoint (random weights, saved as compressai saves state dicts)
becomes a FINISHED reference run with every final metric a trained variant's run has, measured
on real images with real bitstreams; frontier and report show it apart from the sweep unless
asked, and a second import of the same source is refused without --replace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from rdc import names
from rdc.cli import main

FINAL_METRICS = (names.RD_LOSS, names.BPP, names.BPP_EST, names.PSNR, names.MSE, names.PARAMS,
                 names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX, names.ENCODE_KFLOPS_PER_PX,
                 names.ENCODE_KMACS_PER_PX, names.ESCAPE_SHARE, names.BPP_OVER_EST, names.BPP_TABLE)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("import")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):  # smooth images with texture: something to code
        y, x = np.mgrid[0:96, 0:128]
        base = 127 + 80 * np.sin(x / (9 + index)) * np.cos(y / 13)
        pixels = np.clip(base[..., None] + rng.normal(0, 8, (96, 128, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"img{index}.png")
    from compressai.models import MeanScaleHyperprior

    torch.manual_seed(0)
    module = MeanScaleHyperprior(N=16, M=24)
    torch.save(module.state_dict(), root / "msh.pth.tar")
    return root, f"sqlite:///{root / 'mlflow.db'}"


def import_args(root: Path, uri: str, *extra: str) -> list[str]:
    return ["import", "--experiment", "mine", "--checkpoint", str(root / "msh.pth.tar"), "--arch",
            "MeanScaleHyperprior", "--lmbda", "0.013", "--images", str(root / "images"), "--tracking-uri", uri, *extra]


def test_a_checkpoint_becomes_a_reference_run_with_every_final_metric(store, capsys):
    root, uri = store
    assert main(import_args(root, uri)) == 0
    assert "rdc import: file:msh.pth.tar:MeanScaleHyperprior" in capsys.readouterr().out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.TAG_REFERENCE].startswith("file:msh.pth.tar:MeanScaleHyperprior:sha256=")
    assert run.data.tags[names.TAG_FAMILY] == "Conv/Hyperprior:Conv" and run.data.tags[names.TAG_GROUP] == "reference"
    assert run.data.params["train.lmbda"] == "0.013"
    missing = [m for m in FINAL_METRICS if m not in run.data.metrics]
    assert missing == []
    device = run.data.tags[names.TAG_DEVICE]
    assert all(m in run.data.metrics for m in names.runtime_metrics(device))
    # The same architecture a sweep would train: the spec compat reads off compressai's module.
    spec = json.loads(run.data.params[names.SPEC_JSON_PARAM])
    assert (spec["M"], spec["transform"]["N"], spec["hyper"]["activation"]) == (24, 16, "leaky_relu")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {names.MODEL_ARTIFACT, names.EVAL_TABLE} <= artifacts

    assert main(import_args(root, uri)) == 2  # the same source again: refused, nothing written
    assert "--replace" in capsys.readouterr().err
    assert len(client.search_runs([client.get_experiment_by_name("mine").experiment_id])) == 1


def test_bad_sources_are_one_line(store, capsys, tmp_path):
    root, uri = store
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for args, key in ((import_args(root, uri)[:3] + ["--checkpoint", str(junk), "--arch", "ScaleHyperprior",
                                                     "--lmbda", "0.01", "--images", str(root / "images"),
                                                     "--tracking-uri", uri], "--checkpoint"),
                      (import_args(root, uri, "--quality", "3"), "--quality"),
                      ([a for a in import_args(root, uri) if a not in ("--lmbda", "0.013")], "--lmbda")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and key in err[0], err


def test_frontier_and_report_show_the_reference_apart(store, capsys, tmp_path):
    root, uri = store
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("mine").experiment_id
    for index, (loss, kflops) in enumerate(((2.0, 10.0), (1.5, 30.0))):  # two runs of a sweep beside it
        run = client.create_run(experiment, tags={names.TAG_VARIANT_ID: f"v{index}", names.TAG_SWEEP: "mine",
                                                  names.TAG_FAMILY: "Conv/Hyperprior:Conv"}, run_name=f"v{index}")
        client.log_param(run.info.run_id, "train.lmbda", "0.013")
        for key, value in {names.RD_LOSS: loss, names.DECODE_KFLOPS_PER_PX: kflops, names.BPP: 0.5 + index,
                           names.PSNR: 28.0 + index, names.PARAMS: 1e5}.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id, "FINISHED")

    assert main(["frontier", "--experiment", "mine", "--tracking-uri", uri, "--format", "json"]) == 0
    apart = json.loads(capsys.readouterr().out)
    assert all(not str(row.get(names.TAG_REFERENCE) or "") for row in apart["rows"] if row.get("pareto_rank"))
    assert any("reference run" in note for note in apart["notes"])
    assert main(["frontier", "--experiment", "mine", "--tracking-uri", uri, "--format", "json",
                 "--with-references", "--all"]) == 0
    ranked = json.loads(capsys.readouterr().out)["rows"]
    assert any(str(row.get(names.TAG_REFERENCE) or "").startswith("file:msh.pth.tar") for row in ranked)

    assert main(["report", "--experiment", "mine", "--tracking-uri", uri, "--out", str(tmp_path / "report")]) == 0
    assert "msh.pth.tar" in (tmp_path / "report" / "report.html").read_text()
