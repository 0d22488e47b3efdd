"""End to end: a real tiny sweep (Hydra -> local Ray -> sqlite MLflow), then `rdc profile` twice
and `rdc eval` on its run. The trial shared its CPU with Ray, so its runtimes carry the
`-shared` device name; `rdc profile` adds the clean ones, once."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from rdc import names
from rdc.cli import main
from tests.conftest import TEST_SCALE
from tests.cluster.rig import make_root, variant_runs

SPACE = """
name: remeasure-e2e
families:
  - name: tiny
    transform: {type: conv, N: 8}
    entropy: {type: hyperprior}
    hyper: {type: conv, N: 8}
    M: 16
"""
STEPS = max(4, int(10 * TEST_SCALE))


@pytest.fixture(scope="module")
def swept(shared_ray, tmp_path_factory):
    # One small evaluation photograph and FLOPs on 64x64: what is timed here is rdc profile's
    # bookkeeping, not the size of the images.
    root = make_root(tmp_path_factory.mktemp("e2e"))
    (root / "conf" / "search_space" / "remeasure-e2e.yaml").write_text(SPACE)
    runs = root / "runs"
    code = main(["sweep", "--config-dir", str(root / "conf"), "search_space=remeasure-e2e", f"runs_dir={runs}",
                 f"train.steps={STEPS}", "train.checkpoint_every=1000", "train.log_every=2", "train.crop=64",
                 "train.batch_size=2", "train.eval_every=0", f"data.eval_dir={root / 'eval'}", "profile.repeats=2",
                 "profile.warmup=0", "profile.flops_height=64", "profile.flops_width=64", "cluster.num_cpus=2",
                 "tracking.sweep_report=false"])
    assert code == 0
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    (run,) = variant_runs(client.search_runs([client.get_experiment_by_name("remeasure-e2e").experiment_id]))
    return uri, client, run.info.run_id


@pytest.mark.slow
def test_profile_after_a_real_sweep_adds_clean_runtimes_once(swept, capsys):
    uri, client, run_id = swept
    trial_metrics = client.get_run(run_id).data.metrics
    shared = {m for m in trial_metrics if (p := names.parse_runtime_metric(m)) and p[2].endswith(names.SHARED_SUFFIX)}
    assert len(shared) == len(names.RUNTIME_STAGES) * len(names.RUNTIME_STATS)

    args = ["profile", "--experiment", "remeasure-e2e", "--tracking-uri", uri, "--threads", "1",
            "--warmup", "0", "--repeats", "2"]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 profiled, 0 already profiled" in out and "0 profiled, 1 already profiled" in out

    metrics = client.get_run(run_id).data.metrics
    clean = [m for m in metrics if (p := names.parse_runtime_metric(m)) and not p[2].endswith(names.SHARED_SUFFIX)]
    assert len(clean) == len(names.RUNTIME_STAGES) * len(names.RUNTIME_STATS)
    for metric in clean + sorted(shared) + [names.DECODE_KFLOPS_PER_PX, names.ENCODE_KFLOPS_PER_PX, names.BPP]:
        assert len(client.get_metric_history(run_id, metric)) == 1, metric


@pytest.mark.slow
def test_eval_of_the_swept_run_on_kodak_images(swept, kodak_dir, tmp_path, capsys):
    uri, client, run_id = swept
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("kodim01.png", "kodim04.png"):  # a landscape and a portrait
        (folder / name).write_bytes((kodak_dir / name).read_bytes())
    assert main(["eval", "--run", run_id, "--images", str(folder), "--tracking-uri", uri]) == 0
    assert "(2 images, averaged per image)" in capsys.readouterr().out
    assert [a.path for a in client.list_artifacts(run_id, names.EVAL_TABLE_DIR)] == [f"{names.EVAL_TABLE_DIR}/two.csv"]
