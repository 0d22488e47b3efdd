"""Real sqlite MLflow stores, logged with MlflowClient the way a sweep logs its runs.

`known_store` holds small experiments whose frontier, ranks and hypervolume are worked out by
hand in the tests (ties, a run missing a metric, failed and unfinished runs).
`study_store` holds runs trained at several lambdas whose RD points are published curves, so
BD-rates through MLflow can be checked against the anchors.
`lambda_store` holds a sweep of 2 variants x 3 lambdas (6 runs, `rd6`) for Table 1, and a toy
sweep (`mixed`, 12-21 dB as a few hundred training steps give) with a run stopped early, a
reference run, a variant at one lambda, one timed run and a failed run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from rdc import names

CPU = "cpu-amd-epyc-7b13-1t"  # real-length device names: tables must still fit the page
GPU = "cuda-h100-80gb-hbm3"


@pytest.fixture(scope="session")
def devices() -> dict[str, str]:
    """The device names the stores below carry runtimes for."""
    return {"cpu": CPU, "gpu": GPU}


class RunLogger:
    """Logs runs into a real MLflow store with MlflowClient, with the tags, params and metrics a
    sweep writes (names from rdc.names)."""

    def __init__(self, uri: str):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)

    def experiment(self, name: str) -> str:
        return self.client.create_experiment(name)

    def run(self, experiment_id: str, name: str, *, metrics: dict, family: str = "Conv/Hyperprior:Conv",
            variant_id: str | None = None, lmbda: float | None = 0.0125, status: str = "FINISHED",
            spec: dict | None = None, failure: str = "diverged", tags: dict | None = None) -> str:
        from mlflow.entities import Metric, Param, RunTag

        spec = spec or {"M": 192, "transform": {"type": "conv", "N": 128}, "entropy": {"type": "hyperprior"},
                        "hyper": {"type": "conv", "N": 128}}
        tags = {names.TAG_VARIANT_ID: variant_id or name, names.TAG_FAMILY: family, names.TAG_SWEEP: "test",
                names.TAG_TRAIN_CONFIG: f"cfg-{lmbda}", **(tags or {})}
        params = {names.SPEC_JSON_PARAM: json.dumps(spec, sort_keys=True), names.TRAIN_PARAM_PREFIX + "steps": 100}
        if lmbda is not None:  # None: a run from elsewhere, without the param
            params[names.TRAIN_PARAM_PREFIX + "lmbda"] = lmbda
        params.update(pd.json_normalize(spec, sep=".").add_prefix(names.SPEC_PARAM_PREFIX).iloc[0].to_dict())
        run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                              params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag(k, str(v)) for k, v in tags.items()])
        if status == "FAILED":
            self.client.set_tag(run_id, names.TAG_FAILURE, failure)
        if status != "RUNNING":
            self.client.set_terminated(run_id, status=status)
        return run_id


# name: (decode kFLOPs/px, rd_loss, family, decode ms on CPU, decode ms on GPU)
KNOWN_2D = {
    "a": (100.0, 1.0, "Conv/Hyperprior:Conv", 10.0, 1.0),
    "b": (200.0, 0.8, "ELIC/Hyperprior:Conv", 20.0, 3.0),
    "c": (200.0, 0.8, "ELIC/Hyperprior:Conv", 22.0, 2.0),  # identical to b on both objectives
    "d": (300.0, 0.8, "ELIC/CHARM:SwinT", 30.0, 5.0),
    "e": (400.0, 0.5, "ELIC/CHARM:SwinT", 40.0, 4.0),
    "f": (150.0, 1.2, "Conv/Hyperprior:Conv", 15.0, 1.5),
    "g": (500.0, 0.9, "ELIC/CHARM:SwinT", 50.0, 7.0),
    "k": (400.0, 0.6, "ELIC/CHARM:SwinT", 41.0, 6.0),
}
# name: (decode kFLOPs/px, psnr (maximised), decode ms)
KNOWN_3D = {
    "p": (0.0, 40.0, 2.0),
    "q": (2.0, 38.0, 0.0),
    "r": (1.0, 39.0, 1.0),
    "t": (1.0, 39.0, 1.0),  # identical to r
    "s": (2.0, 36.0, 2.0),
}


@pytest.fixture(scope="session")
def known_store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('known') / 'mlflow.db'}"
    log = RunLogger(uri)
    exp = log.experiment("known")
    for name, (kflops, loss, family, cpu_ms, gpu_ms) in KNOWN_2D.items():
        log.run(exp, name, family=family, metrics={
            names.DECODE_KFLOPS_PER_PX: kflops, names.RD_LOSS: loss, names.BPP: 0.4 + loss / 10,
            names.PSNR: 30 + 1 / loss, names.PARAMS: 1e6 + kflops,
            names.decode_ms(CPU): cpu_ms, names.decode_ms(GPU): gpu_ms})
    # Missing rd_loss: never ranked. Failed and unfinished runs beat everything: never counted.
    log.run(exp, "h", metrics={names.DECODE_KFLOPS_PER_PX: 100.0, names.decode_ms(CPU): 9.0})
    log.run(exp, "failed", status="FAILED", metrics={names.DECODE_KFLOPS_PER_PX: 1.0, names.RD_LOSS: 0.01})
    log.run(exp, "unfinished", status="RUNNING", metrics={names.DECODE_KFLOPS_PER_PX: 1.0, names.RD_LOSS: 0.01})

    exp3 = log.experiment("known3d")
    for name, (kflops, psnr, ms) in KNOWN_3D.items():
        log.run(exp3, name, metrics={names.DECODE_KFLOPS_PER_PX: kflops, names.PSNR: psnr,
                                     names.decode_ms(CPU): ms, names.RD_LOSS: 1.0})

    bad = log.experiment("all-failed")
    log.run(bad, "x1", status="FAILED", metrics={names.RD_LOSS: 1.0})
    log.run(bad, "x2", status="FAILED", metrics={names.RD_LOSS: 1.0})
    log.run(bad, "x3", status="RUNNING", metrics={names.RD_LOSS: 1.0})
    log.experiment("empty")
    gone = log.experiment("deleted")
    log.client.delete_experiment(gone)
    return uri


# Published Kodak RD points (bpp, RGB PSNR) from ../shared/data/rd_anchors/compressai, logged as
# if each curve were one variant trained at one lambda per point.
ELIC_PAPER = "paper-elic2022_mse.json"
BALLE_PAPER = "paper-bmshj2018-hyperprior.json"
KODAK_PIXELS = 768 * 512
STUDY_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.18)


def load_compressai_points(anchors_dir: Path, name: str) -> tuple[list[float], list[float]]:
    results = json.loads((anchors_dir / "compressai" / name).read_text())["results"]
    return results["bpp"], results["psnr-rgb"]


@pytest.fixture(scope="session")
def study_store(tmp_path_factory, anchors_dir) -> str:
    """Two variants (ELIC, Balle) at several lambdas with published RD points, runtimes on two
    devices (with and without entropy coding) and one shared device."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('study') / 'mlflow.db'}"
    log = RunLogger(uri)
    exp = log.experiment("study")
    curves = {
        ("elic", "ELIC/Hyperprior:Conv", 612.0): load_compressai_points(anchors_dir, ELIC_PAPER),
        ("balle", "Conv/Hyperprior:Conv", 194.0): load_compressai_points(anchors_dir, BALLE_PAPER),
    }
    for (variant, family, kflops), (bpps, psnrs) in curves.items():
        for i, (bpp, psnr) in enumerate(zip(bpps, psnrs)):
            lmbda = STUDY_LAMBDAS[i]
            mse = 10 ** (-psnr / 10)
            networks = {CPU: kflops / 20 + i, GPU: 20 - i if variant == "elic" else 4 + i}
            metrics = {
                names.BPP: bpp, names.PSNR: psnr, names.MSE: mse, names.RD_LOSS: lmbda * 255**2 * mse + bpp,
                names.DECODE_KFLOPS_PER_PX: kflops + i, names.PARAMS: 1e7 + kflops,
                names.decode_ms(CPU): kflops / 10 + i, names.decode_ms(GPU): 30 - i if variant == "elic" else 5 + i,
                # Timed while trials shared the CPU: never compared with clean times.
                names.runtime_metric(names.DECODE_NETWORKS, names.MS, CPU + names.SHARED_SUFFIX): 1.0 + i,
            }
            for device, ms in networks.items():
                metrics[names.runtime_metric(names.DECODE_NETWORKS, names.MS, device)] = ms
                metrics[names.runtime_metric(names.DECODE_NETWORKS, names.MPS, device)] = KODAK_PIXELS / 1e6 / (ms / 1e3)
            log.run(exp, f"{variant}-{i}", variant_id=variant, family=family, lmbda=lmbda, metrics=metrics)
    return uri


# rd6: variant: (family, decode kFLOPs/px, params, [(lambda, bpp, psnr)]) - both curves span 29-34 dB,
# inside BPG's and VTM's, so every BD-rate is over the same range whichever rule picks it.
RD6_LAMBDAS = (0.0035, 0.0067, 0.013)
RD6 = {
    "big": ("ELIC/CHARM:SwinT", 900.0, 38.0e6, [(0.20, 29.0), (0.35, 31.5), (0.60, 34.0)]),
    "small": ("Conv/Hyperprior:Conv", 150.0, 12.8e6, [(0.25, 29.0), (0.45, 31.5), (0.80, 34.0)]),
}
# mixed: toy models far below the anchors (12-21 dB), as short training gives.
MIXED = {
    "v1": ("Conv/Hyperprior:Conv", 100.0, [(0.10, 12.0), (0.18, 15.0), (0.30, 18.0)]),
    "v2": ("ELIC/Hyperprior:Conv", 600.0, [(0.12, 14.0), (0.20, 17.5), (0.33, 21.0)]),
    "v3": ("SwinT/Hyperprior:Conv", 300.0, [(0.15, 13.0)]),  # one lambda: no curve
}
REFERENCE_SOURCE = "compressai:bmshj2018-hyperprior:quality=3"
STOPPED_STEP = "500"


def rd_metrics(lmbda: float, bpp: float, psnr: float, kflops: float, params: float = 1e7) -> dict:
    mse = 10 ** (-psnr / 10)
    return {names.BPP: bpp, names.PSNR: psnr, names.MSE: mse, names.RD_LOSS: lmbda * 255**2 * mse + bpp,
            names.DECODE_KFLOPS_PER_PX: kflops, names.PARAMS: params}


@pytest.fixture(scope="session")
def lambda_store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('lambdas') / 'mlflow.db'}"
    log = RunLogger(uri)
    exp = log.experiment("rd6")
    for variant, (family, kflops, params, points) in RD6.items():
        for lmbda, (bpp, psnr) in zip(RD6_LAMBDAS, points):
            metrics = rd_metrics(lmbda, bpp, psnr, kflops, params)
            metrics[names.runtime_metric(names.DECODE_NETWORKS, names.MPS, CPU)] = 1000.0 / kflops
            metrics[names.runtime_metric(names.DECODE_NETWORKS, names.MPS, GPU)] = 20000.0 / kflops
            log.run(exp, f"{variant}-{lmbda}", variant_id=variant, family=family, lmbda=lmbda, metrics=metrics)

    exp = log.experiment("mixed")
    for variant, (family, kflops, points) in MIXED.items():
        for i, (lmbda, (bpp, psnr)) in enumerate(zip(RD6_LAMBDAS, points)):
            metrics = rd_metrics(lmbda, bpp, psnr, kflops)
            if variant == "v1" and i == 0:  # the only timed run: Fig. 4 would be one point
                metrics[names.decode_ms(CPU)] = 5.0
            log.run(exp, f"{variant}-{lmbda}", variant_id=variant, family=family, lmbda=lmbda, metrics=metrics)
    # Stopped by a scheduler at step 500 with an evaluation that would lead the frontier.
    log.run(exp, "stopped", variant_id="v4", family="Conv/Hyperprior:Conv", lmbda=RD6_LAMBDAS[0], status="KILLED",
            metrics=rd_metrics(RD6_LAMBDAS[0], 0.05, 20.0, 50.0),
            tags={names.TAG_STOPPED_EARLY: STOPPED_STEP, names.TAG_STOPPED_BY: "asha"})
    # A model trained elsewhere, imported: better than the sweep on both objectives.
    log.run(exp, "imported", variant_id="bmshj2018-q3", family="Conv/Hyperprior:Conv", lmbda=None,
            metrics=rd_metrics(RD6_LAMBDAS[0], 0.20, 25.0, 87.0), tags={names.TAG_REFERENCE: REFERENCE_SOURCE})
    log.run(exp, "broken", status="FAILED", metrics={names.RD_LOSS: 0.01})
    sweep_level = log.run(exp, "sweep", lmbda=None, metrics={}, tags={names.TAG_SWEEP_RUN: "true"})
    assert sweep_level
    return uri
