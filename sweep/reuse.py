"""Reuse across sweeps: a trial of this sweep whose variant already finished, with the same
training (variant_id and training-config id) and on the same evaluation images, in another
sweep of the same store is linked, not trained again (unless force=true).

Linking copies the finished run into this sweep's experiment as a run of its own: its tags
(this sweep's name, and names.TAG_REUSED_FROM naming the source run), params, every metric's
whole history (the learning curves the analysis and `rdc replay` read) and its artifacts (the
model, the per-image tables). So every query of this sweep sees a complete run, and the source
stays as it was.
"""

from __future__ import annotations

import tempfile
from typing import Mapping

from rdc import names
from sweep.tracking import MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, RunState, client, search_all, store_exists, with_retries

NOT_COPIED = (names.TAG_SWEEP, names.TAG_ATTEMPT, names.TAG_PARENT_RUN, names.TAG_TRAIN_CONFIG)


def reusable(trials: list, states: Mapping[str, RunState], eval_label: str) -> dict[str, object]:
    """Trial key -> a FINISHED run of another sweep it can reuse, for the trials with no run here."""
    todo = [t for t in trials if t.key not in states]
    if not todo or not store_exists(todo[0].record.uri):
        return {}
    mlflow = client(todo[0].record.uri)
    experiments = [e.experiment_id for e in with_retries(mlflow.search_experiments, what="listing the experiments")]
    found: dict[tuple[str, str], object] = {}
    for config in sorted({t.record.train_config_id for t in todo}):
        wanted = f"tags.{names.TAG_TRAIN_CONFIG} = '{config}' and attributes.status = 'FINISHED'"
        runs = with_retries(lambda: search_all(mlflow, experiments, wanted), what="looking for runs to reuse")
        for run in sorted(runs, key=lambda r: r.info.start_time):
            tags = run.data.tags
            if (tags.get(names.TAG_SWEEP) == todo[0].record.sweep or tags.get(names.TAG_REFERENCE)
                    or tags.get(names.TAG_SWEEP_RUN) == "true" or tags.get(names.TAG_EVAL_IMAGES) != eval_label):
                continue
            found.setdefault((config, tags.get(names.TAG_VARIANT_ID, "")), run)
    return {t.key: found[(t.record.train_config_id, t.variant.variant_id)] for t in todo
            if (t.record.train_config_id, t.variant.variant_id) in found}


def link(trial, source) -> str:
    """Copy `source` into the trial's sweep as its FINISHED run; the new run's id."""
    from mlflow.entities import Metric, Param

    mlflow = client(trial.record.uri)
    experiment = with_retries(lambda: mlflow.get_experiment_by_name(trial.record.experiment), what="finding the experiment")
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.") and k not in NOT_COPIED}
    tags.update({names.TAG_SWEEP: trial.record.sweep, names.TAG_TRAIN_CONFIG: trial.record.train_config_id,
                 names.TAG_REUSED_FROM: source.info.run_id})
    if trial.record.parent_run:
        tags[names.TAG_PARENT_RUN] = trial.record.parent_run
    run = with_retries(lambda: mlflow.create_run(experiment.experiment_id, tags=tags, run_name=source.info.run_name),
                       what="creating the reused run")
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in source.data.params.items()]
    for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
        with_retries(lambda: mlflow.log_batch(run_id, params=params[start:start + MAX_PARAMS_PER_BATCH]),
                     what="copying params")
    metrics = []
    for key in source.data.metrics:
        history = with_retries(lambda: mlflow.get_metric_history(source.info.run_id, key), what="reading a history")
        metrics += [Metric(key, m.value, m.timestamp, m.step) for m in history]
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        with_retries(lambda: mlflow.log_batch(run_id, metrics=metrics[start:start + MAX_METRICS_PER_BATCH]),
                     what="copying metrics")
    with tempfile.TemporaryDirectory() as folder:
        local = with_retries(lambda: mlflow.download_artifacts(source.info.run_id, "", folder),
                             what="reading the artifacts")
        with_retries(lambda: mlflow.log_artifacts(run_id, local), what="copying the artifacts")
    with_retries(lambda: mlflow.set_terminated(run_id, status="FINISHED"), what="ending the reused run")
    return run_id
