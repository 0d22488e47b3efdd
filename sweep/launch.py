"""Ray: start (or join) the cluster and run one Tune trial per variant."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sweep.variant import Variant

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_ray(cluster: dict) -> None:
    if cluster["mode"] == "local":
        # Keep every Ray process on 127.0.0.1: a laptop's sweep opens no port to its network.
        # Ray reads this when it is imported, so nothing may import ray before this point.
        if "ray" in sys.modules and os.environ.get(LOOPBACK_ENV) != "0":
            raise RuntimeError("ray was imported before the local instance was configured for loopback")
        os.environ[LOOPBACK_ENV] = "0"
    import ray

    if ray.is_initialized():
        return
    if cluster["mode"] == "local":
        ray.init(
            address="local",
            num_cpus=cluster["num_cpus"],
            num_gpus=cluster["num_gpus"],
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level="WARNING",
        )
    else:
        ray.init(address=cluster["address"] or "auto", log_to_driver=False, logging_level="WARNING")


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def run_trials(variants: list[Variant], settings: dict):
    """Fit one trial per variant; returns Tune's ResultGrid."""
    from ray import tune

    from sweep.progress import ProgressPrinter
    from sweep.trainable import run_variant

    cluster = settings["cluster"]
    trainable = tune.with_resources(run_variant, {"cpu": cluster["trial_cpus"], "gpu": cluster["trial_gpus"]})
    storage = Path(settings["runs_dir"], "ray").resolve()
    name = settings["sweep_name"]
    param_space = {
        "variant": tune.grid_search([_variant_config(v) for v in variants]),
        "settings": settings,
    }
    run_config = tune.RunConfig(
        name=name,
        storage_path=str(storage),
        verbose=0,
        callbacks=[ProgressPrinter(len(variants), settings["train"]["steps"])],
        failure_config=tune.FailureConfig(max_failures=2),
    )
    tune_config = tune.TuneConfig(
        max_concurrent_trials=cluster["max_concurrent_trials"] or None,
        trial_name_creator=lambda trial: trial.config["variant"]["variant_id"],
        trial_dirname_creator=lambda trial: trial.config["variant"]["variant_id"],
    )
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)
    return tuner.fit()


def _variant_config(variant: Variant) -> dict:
    return {
        "variant_id": variant.variant_id,
        "family": variant.family,
        "group": variant.group,
        "spec_json": variant.spec_json,
        "label": variant.label(),
    }
