"""The Ray Tune trainable: glue between one trial and the plain jobs (train, evaluate, profile).

Everything a trial needs arrives in its config as plain data (the variant and the resolved
settings); the MLflow run is found by tags, checkpoints go through Tune, so a retried or
restored trial continues where the last checkpoint left it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from ray import tune

from jobs.data import RandomCrops, load_images
from jobs.settings import TrainSettings
from jobs.train import Trainer, TrainingDiverged
from models import build
from rdc import names
from sweep.measure import measure
from sweep.tracking import VariantRun

TRAINER_FILE = "trainer.pt"


def run_variant(config: dict) -> None:
    variant, settings = config["variant"], config["settings"]
    train = TrainSettings(**settings["train"])
    threads = max(1, int(settings["cluster"]["trial_cpus"]))
    torch.set_num_threads(threads)

    run = VariantRun(settings["tracking"]["uri"], settings["experiment"], settings["sweep_name"], variant,
                     settings["train"]).open()
    model = build(json.loads(variant["spec_json"]))
    crops = RandomCrops(load_images(settings["data"]["train_dir"], split="train", key="data.train_dir"),
                        train.crop, train.batch_size, train.seed)
    trainer = Trainer(model, train, crops)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(torch.load(Path(folder) / TRAINER_FILE, map_location="cpu", weights_only=True))
    resumed_from = trainer.step
    logged_through = run.last_step(names.TRAIN_LOSS)

    pending: list[tuple[int, dict]] = []
    started = time.perf_counter()
    try:
        while trainer.step < train.steps:
            metrics = trainer.train_step()
            step = trainer.step
            if step % train.log_every == 0 or step == train.steps:
                pending.append((step, metrics))
            if step % train.checkpoint_every == 0 and step < train.steps:
                run.log_metrics(pending, skip_through=logged_through)
                pending.clear()
                with tempfile.TemporaryDirectory() as folder:
                    trainer.save(Path(folder) / TRAINER_FILE)
                    tune.report({"step": step, **_short(metrics)}, checkpoint=tune.Checkpoint.from_directory(folder))
    except TrainingDiverged as err:
        run.log_metrics(pending, skip_through=logged_through)
        run.fail(str(err))
        tune.report({"step": trainer.step, "failed": str(err)})
        return
    run.log_metrics(pending, skip_through=logged_through)
    train_seconds = time.perf_counter() - started

    measured = measure(model, settings, train.lmbda)
    final = dict(measured.metrics)
    final[names.TRAIN_STEPS] = trainer.step
    final[names.TRAIN_SECONDS] = train_seconds
    run.log_metrics([(trainer.step, final)])
    run.set_tags({**measured.tags, "resumed_from_step": resumed_from})
    with tempfile.TemporaryDirectory() as folder:
        for name, table in measured.tables.items():
            table.to_csv(Path(folder) / name, index=False)
            run.log_artifact(Path(folder) / name)
        path = Path(folder) / "model.pt"
        torch.save({"spec": json.loads(variant["spec_json"]), "model": model.state_dict()}, path)
        run.log_artifact(path)
    run.finish()
    tune.report({"step": trainer.step, "done": True, **final})


def _short(metrics: dict) -> dict:
    return {key.replace("/", "_"): value for key, value in metrics.items()}
