"""Benchmark: the frontier query over a sweep's runs in a sqlite MLflow store.

Target (issue 7): `frontier_table(...)` over 1,000 runs takes at most 1 s. The baseline, run in
the same process on the same store, is MLflow's own `MlflowClient.search_runs` (every page),
i.e. what reading the runs costs through MLflow's API before any analysis.

Each run looks like a sweep's: 5 tags, ~40 params (spec knobs, training settings, spec_json),
~33 final metrics (quality, FLOPs, 18 runtimes on 2 devices) and a 20-step training history.

    .venv/bin/python bench/bench_frontier_query.py            # 1,000 runs, 7 repeats
    .venv/bin/python bench/bench_frontier_query.py --quick    # 300 runs, 3 repeats
    .venv/bin/python bench/bench_frontier_query.py --store /tmp/bench.db   # keep / reuse the store
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rdc import names  # noqa: E402

EXPERIMENT = "bench"
TARGET_SECONDS = 1.0
DEVICES = ("cpu-bench-1t", "cuda-bench-gpu")
FAMILIES = ("Conv/Hyperprior:Conv", "ELIC/Hyperprior:Conv", "ELIC/CHARM:SwinT", "SwinT/CHARM:SwinT")


def _run_contents(i: int, rng: random.Random) -> tuple[dict, dict, dict, list]:
    family = FAMILIES[i % len(FAMILIES)]
    spec = {"M": rng.choice([192, 256, 320]),
            "transform": {"type": family.split("/")[0].lower(), "N": rng.choice([128, 192]),
                          "channels": [rng.choice([128, 192, 256]) for _ in range(3)], "blocks": rng.randint(1, 3)},
            "entropy": {"type": family.split("/")[1].split(":")[0].lower(), "slices": 10, "support": 5, "lrp": True},
            "hyper": {"type": family.split(":")[1].lower(), "N": 192, "depths": [5, 1], "window": 4}}
    lmbda = rng.choice([0.0035, 0.0067, 0.0125, 0.025])
    tags = {names.TAG_VARIANT_ID: f"v{i:05d}", names.TAG_FAMILY: family, names.TAG_SWEEP: EXPERIMENT,
            names.TAG_TRAIN_CONFIG: f"cfg{lmbda}", names.TAG_DEVICE: DEVICES[0]}
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            walk(value, f"{prefix}{key}.") if isinstance(value, dict) else flat.__setitem__(f"{prefix}{key}", value)

    walk(spec)
    params = {names.SPEC_JSON_PARAM: json.dumps(spec, sort_keys=True)}
    params.update({names.SPEC_PARAM_PREFIX + k: v for k, v in flat.items()})
    params.update({names.TRAIN_PARAM_PREFIX + k: v for k, v in {
        "lmbda": lmbda, "steps": 2_000_000, "batch_size": 16, "crop": 256, "lr": 1e-4, "aux_lr": 1e-3,
        "clip_grad": 1.0, "lr_drop_at": 0.9, "seed": 0, "log_every": 1000, "checkpoint_every": 10000}.items()})
    kflops = rng.uniform(80, 1100)
    bpp = rng.uniform(0.3, 0.6)
    psnr = 30 + 8 * bpp + rng.uniform(-1, 1) + kflops / 500
    mse = 10 ** (-psnr / 10)
    metrics = {names.RD_LOSS: lmbda * 255**2 * mse + bpp, names.BPP: bpp, names.BPP_EST: bpp * 0.98,
               names.PSNR: psnr, names.MSE: mse, names.MS_SSIM: 0.98, names.MS_SSIM_DB: 17.0,
               names.PARAMS: rng.uniform(5e6, 40e6), names.DECODE_KFLOPS_PER_PX: kflops,
               names.DECODE_KMACS_PER_PX: kflops / 2, names.ENCODE_KFLOPS_PER_PX: kflops * 1.3,
               names.ENCODE_KMACS_PER_PX: kflops * 0.65, names.TRAIN_STEPS: 2_000_000, names.TRAIN_SECONDS: 86400.0}
    for device in DEVICES:
        for metric in names.runtime_metrics(device):
            metrics[metric] = kflops / rng.uniform(5, 50)
    history = [(step, {names.TRAIN_LOSS: 1.0 / step, names.TRAIN_BPP: bpp, names.TRAIN_MSE: mse,
                       names.TRAIN_AUX_LOSS: 10.0 / step}) for step in range(100_000, 2_000_001, 100_000)]
    return tags, params, metrics, history


def create_store(uri: str, n_runs: int) -> float:
    """Log `n_runs` sweep-like runs with MlflowClient; returns the seconds it took."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(EXPERIMENT)
    rng = random.Random(0)
    started = time.perf_counter()
    for i in range(n_runs):
        tags, params, metrics, history = _run_contents(i, rng)
        run_id = client.create_run(experiment, run_name=tags[names.TAG_VARIANT_ID]).info.run_id
        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for step, values in history for k, v in values.items()]
        rows += [Metric(k, float(v), now, 2_000_000) for k, v in metrics.items()]
        items = [Param(k, str(v)) for k, v in params.items()]
        client.log_batch(run_id, metrics=rows, params=items[:100], tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(run_id, status="FAILED" if i % 50 == 49 else "FINISHED")
    return time.perf_counter() - started


def _median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 runs, 3 repeats")
    parser.add_argument("--runs", type=int, default=None, help="runs in the store (default 1000, --quick 300)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--store", default=None, help="sqlite file to create (or reuse if it has the runs)")
    args = parser.parse_args(argv)
    n_runs = args.runs or (300 if args.quick else 1000)
    repeats = args.repeats or (3 if args.quick else 7)

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.store) if args.store else Path(scratch) / "mlflow.db"
        uri = f"sqlite:///{path.resolve()}"
        if path.exists():
            print(f"reusing {path}")
        else:
            print(f"creating {n_runs} runs in {path} ...", flush=True)
            print(f"  created in {create_store(uri, n_runs):.1f} s")

        from mlflow.tracking import MlflowClient

        from analysis.query import frontier_table
        from analysis.runs import tidy
        from analysis.store import read_experiment

        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id

        def mlflow_search_runs():
            token, found = None, 0
            while True:
                page = client.search_runs([experiment_id], max_results=1000, page_token=token)
                found += len(page)
                token = page.token
                if not token:
                    return found

        frame = frontier_table(EXPERIMENT, tracking_uri=uri, lmbda=0.0125)  # warm-up, and a sanity check
        total = mlflow_search_runs()
        baseline = _median_seconds(mlflow_search_runs, repeats)
        read = _median_seconds(lambda: read_experiment(EXPERIMENT, uri), repeats)
        to_frame = _median_seconds(lambda: tidy(read_experiment(EXPERIMENT, uri)), repeats)
        query = _median_seconds(lambda: frontier_table(EXPERIMENT, tracking_uri=uri, lmbda=0.0125), repeats)
        query_3d = _median_seconds(lambda: frontier_table(
            EXPERIMENT, tracking_uri=uri, z=names.runtime_metric(names.DECODE_NETWORKS, names.MS, DEVICES[1]),
            lmbda=0.0125), repeats)
        started = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "rdc.cli", "frontier", "--experiment", EXPERIMENT,
                              "--tracking-uri", uri, "--format", "csv"], capture_output=True, text=True, cwd=REPO)
        cold_cli = time.perf_counter() - started
        assert cli.returncode == 0, cli.stderr

    print(f"\n{total} runs ({len(frame)} on the 2-objective frontier at lambda 0.0125); median of {repeats}:")
    rows = [
        ("baseline: MlflowClient.search_runs, every page", baseline),
        ("analysis.store.read_experiment (SQL, read-only)", read),
        ("  + tidy DataFrame (analysis.runs.tidy)", to_frame),
        ("frontier_table, 2 objectives (read, tidy, rank, hypervolume)", query),
        ("frontier_table, 3 objectives", query_3d),
        ("`rdc frontier` in a fresh interpreter (imports included), once", cold_cli),
    ]
    for label, seconds in rows:
        print(f"  {label:<66} {seconds:7.3f} s   {seconds / baseline:5.2f} x baseline")
    verdict = "met" if query <= TARGET_SECONDS else "NOT met"
    print(f"\ntarget: frontier query over {total} runs <= {TARGET_SECONDS:.1f} s: {verdict} ({query:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
