"""An MLflow experiment as a tidy DataFrame: one row per run, one column per metric/knob."""

from __future__ import annotations

import os

import pandas as pd

from rdc import names
from rdc.errors import UserError

DEFAULT_TRACKING_URI = "sqlite:///runs/mlflow.db"


def tracking_uri(uri: str | None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def runs(experiment: str, uri: str | None = None, *, finished_only: bool = True) -> pd.DataFrame:
    """Runs of `experiment` with columns run_id, status, variant_id, family, sweep, every metric
    (by its bare name) and every spec knob (`spec.<path>`)."""
    import mlflow

    uri = tracking_uri(uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        known = [e.name for e in client.search_experiments()]
        raise UserError("--experiment", experiment, reason=f"no such experiment in {uri}",
                        allowed=", ".join(known) or "none (run a sweep first)")
    mlflow.set_tracking_uri(uri)
    raw = mlflow.search_runs(experiment_ids=[exp.experiment_id], output_format="pandas")
    if raw.empty:
        raise UserError("--experiment", experiment, reason="has no runs")
    frame = _tidy(raw)
    if finished_only:
        frame = frame[frame["status"] == "FINISHED"].reset_index(drop=True)
        if frame.empty:
            raise UserError("--experiment", experiment, reason="has no FINISHED runs")
    return frame


def _tidy(raw: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"run_id": raw["run_id"], "status": raw["status"]})
    for tag in (names.TAG_VARIANT_ID, names.TAG_FAMILY, names.TAG_SWEEP, names.TAG_DEVICE, names.TAG_FAILURE):
        column = f"tags.{tag}"
        out[tag] = raw[column] if column in raw else None
    metrics = {c[len("metrics."):]: raw[c] for c in raw.columns if c.startswith("metrics.")}
    specs = {c[len("params."):]: raw[c] for c in raw.columns if c.startswith("params." + names.SPEC_PARAM_PREFIX)}
    return pd.concat([out, pd.DataFrame(metrics), pd.DataFrame(specs)], axis=1)
