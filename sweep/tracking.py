"""MLflow run identity and logging for one variant.

A variant's run is found again by its tags (sweep, variant_id, train_config_id) every time a
trial starts, never kept in driver memory: a retried or restored trial reopens the same run,
so MLflow holds exactly one run per variant per sweep. Metric steps already in the run's
history are not logged again after a retry.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from rdc import names

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
MAX_PARAMS_PER_BATCH = 100


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def train_config_id(train_settings: dict) -> str:
    """Same id <=> same training: the incremental-sweep key next to the variant id."""
    text = json.dumps(train_settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_experiment(uri: str, name: str, artifact_root: str | None) -> str:
    """The experiment's id, creating it (with an explicit artifact location) if needed."""
    client = _client(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root, name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another process created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _identity_filter(sweep: str, variant_id: str, config_id: str) -> str:
    return (
        f"tags.{names.TAG_SWEEP} = '{sweep}' and tags.{names.TAG_VARIANT_ID} = '{variant_id}'"
        f" and tags.{names.TAG_TRAIN_CONFIG} = '{config_id}'"
    )


def finished_variant_ids(uri: str, experiment: str, sweep: str, config_id: str) -> set[str]:
    """Variants of this sweep already FINISHED with this training config."""
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return set()
    runs = _search_all(
        client,
        exp.experiment_id,
        f"tags.{names.TAG_SWEEP} = '{sweep}' and tags.{names.TAG_TRAIN_CONFIG} = '{config_id}'"
        " and attributes.status = 'FINISHED'",
    )
    return {r.data.tags[names.TAG_VARIANT_ID] for r in runs}


def _search_all(client, experiment_id: str, filter_string: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


class VariantRun:
    """The one MLflow run of a variant within a sweep."""

    def __init__(self, uri: str, experiment: str, sweep: str, variant: dict, train_settings: dict):
        self.uri, self.experiment, self.sweep = uri, experiment, sweep
        self.variant, self.train_settings = variant, train_settings
        self.config_id = train_config_id(train_settings)
        self.client = _client(uri)
        self.run_id: str | None = None

    def open(self, *, replace_finished: bool = False) -> "VariantRun":
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            raise RuntimeError(f"experiment {self.experiment!r} does not exist; the driver creates it")
        runs = _search_all(self.client, exp.experiment_id,
                           _identity_filter(self.sweep, self.variant["variant_id"], self.config_id))
        runs.sort(key=lambda r: r.info.start_time)
        if replace_finished:
            for run in runs:
                self.client.delete_run(run.info.run_id)
            runs = []
        if runs:
            self.run_id = runs[0].info.run_id
            for extra in runs[1:]:  # should not happen; keep one run per variant regardless
                self.client.delete_run(extra.info.run_id)
            self.client.update_run(self.run_id, status="RUNNING")
            return self
        tags = {
            names.TAG_SWEEP: self.sweep,
            names.TAG_VARIANT_ID: self.variant["variant_id"],
            names.TAG_FAMILY: self.variant["family"],
            names.TAG_TRAIN_CONFIG: self.config_id,
            "group": self.variant["group"],
        }
        run = self.client.create_run(exp.experiment_id, tags=tags, run_name=self.variant["label"])
        self.run_id = run.info.run_id
        self._log_params()
        return self

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = {names.SPEC_JSON_PARAM: self.variant["spec_json"]}
        params.update({names.SPEC_PARAM_PREFIX + k: v for k, v in _flatten(json.loads(self.variant["spec_json"])).items()})
        params.update({names.TRAIN_PARAM_PREFIX + k: v for k, v in self.train_settings.items()})
        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    def last_step(self, metric: str) -> int:
        history = self.client.get_metric_history(self.run_id, metric)
        return max((m.step for m in history), default=-1)

    def log_metrics(self, rows: list[tuple[int, dict[str, float]]], *, skip_through: int = -1) -> None:
        """Log (step, metrics) rows; steps <= skip_through are already in the history."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for step, values in rows if step > skip_through for k, v in values.items()]
        for start in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=items[start : start + MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")

    def fail(self, reason: str) -> None:
        self.set_tags({names.TAG_FAILURE: reason[:5000]})
        self.client.set_terminated(self.run_id, status="FAILED")


def _flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
