"""An MLflow experiment as a tidy DataFrame: one row per run, one column per tag, component,
knob, training setting and metric.

Columns, in order:
  run_id, run_name, status, start_time, end_time
  variant_id, family, sweep, train_config_id, device, shared_device, failure_reason, flops_size,
  runtime_protocol.<device>                                                           (tags)
  transform, entropy, hyper     (the family label `<transforms>/<entropy model>:<hyper>` split)
  every metric by its bare name (rdc.names), e.g. rd_loss, bpp, decode_ms_<device>,
  decode_networks_mps_<device>
  spec.<knob path> and train.<setting> params (numbers where every value is a number), spec_json
A metric a run never logged is NaN; runtimes on several devices are several columns.
"""

from __future__ import annotations

import pandas as pd

from analysis.store import EXPERIMENT_KEY, RawRuns, read_experiment
from rdc import names
from rdc.errors import UserError

RUN_COLUMNS = ["run_id", "run_name", "status", "start_time", "end_time"]
TAG_COLUMNS = [names.TAG_VARIANT_ID, names.TAG_FAMILY, names.TAG_SWEEP, names.TAG_TRAIN_CONFIG,
               names.TAG_DEVICE, names.TAG_SHARED_DEVICE, names.TAG_FAILURE, names.TAG_FLOPS_SIZE]
COMPONENT_COLUMNS = ["transform", "entropy", "hyper"]
LMBDA_COLUMN = names.TRAIN_PARAM_PREFIX + "lmbda"
FINISHED = "FINISHED"
FAMILY_KEY = "--family"


def runs(experiment: str, tracking_uri: str | None = None, *, finished_only: bool = True,
         family: str | None = None) -> pd.DataFrame:
    """The runs of `experiment` (FINISHED ones unless `finished_only=False`), optionally of one family.

    Raises UserError (one line: key, value, what is allowed) when the experiment does not
    exist, has no runs, has no finished runs, or has no run of `family`.
    """
    frame = tidy(read_experiment(experiment, tracking_uri))
    if frame.empty:
        raise UserError(EXPERIMENT_KEY, experiment, reason="has no runs yet")
    if finished_only:
        finished = frame[frame["status"] == FINISHED]
        if finished.empty:
            counts = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().sort_index().items())
            raise UserError(EXPERIMENT_KEY, experiment, reason=f"has no FINISHED runs ({counts})")
        frame = finished
    if family is not None:
        families = sorted(frame[names.TAG_FAMILY].dropna().unique())
        if family not in families:
            raise UserError(FAMILY_KEY, family, reason=f"no {'finished ' if finished_only else ''}run of this family",
                            allowed=", ".join(families) or "none (runs carry no family tag)")
        frame = frame[frame[names.TAG_FAMILY] == family]
    return frame.reset_index(drop=True)


def tidy(raw: RawRuns) -> pd.DataFrame:
    """One row per run from MLflow's long tables (see the module docstring for the columns)."""
    out = raw.runs.sort_values(["start_time", "run_id"]).reset_index(drop=True)
    for column in ("start_time", "end_time"):
        out[column] = pd.to_datetime(out[column], unit="ms", utc=True)
    out = out.set_index("run_id")

    tags = _wide(raw.tags, out.index)
    protocols = sorted(c for c in tags.columns if c.startswith(names.RUNTIME_PROTOCOL_TAG_PREFIX))
    for tag in TAG_COLUMNS + protocols:
        out[tag] = tags[tag] if tag in tags else None
    parts = out[names.TAG_FAMILY].astype("string").str.extract(r"^(?P<transform>[^/]+)/(?P<entropy>[^:]+):(?P<hyper>.+)$")
    for column in COMPONENT_COLUMNS:
        out[column] = parts[column].astype(object).where(parts[column].notna(), None)

    metrics = _wide(raw.metrics, out.index).astype(float)
    params = _wide(raw.params, out.index)
    knobs = sorted(c for c in params.columns if c.startswith((names.SPEC_PARAM_PREFIX, names.TRAIN_PARAM_PREFIX)))
    knob_frame = pd.DataFrame({c: _numeric_if_possible(params[c]) for c in knobs}, index=out.index)
    spec_json = params[names.SPEC_JSON_PARAM] if names.SPEC_JSON_PARAM in params else pd.Series(None, index=out.index)
    out = pd.concat([out, metrics[sorted(metrics.columns)], knob_frame], axis=1)
    out[names.SPEC_JSON_PARAM] = spec_json
    return out.reset_index()


def _wide(long: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame(index=index)
    return long.pivot(index="run_id", columns="key", values="value").reindex(index).rename_axis(columns=None)


def _numeric_if_possible(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().sum() == values.notna().sum() else values


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a tidy frame (everything that is not a run field, tag, component or param)."""
    fixed = set(RUN_COLUMNS + TAG_COLUMNS + COMPONENT_COLUMNS + [names.SPEC_JSON_PARAM])
    prefixes = (names.SPEC_PARAM_PREFIX, names.TRAIN_PARAM_PREFIX, names.RUNTIME_PROTOCOL_TAG_PREFIX)
    return [c for c in frame.columns if c not in fixed and not c.startswith(prefixes)]


def runtime_columns(frame: pd.DataFrame, stage: str = names.DECODE, stat: str = names.MS, *,
                    include_shared: bool = False) -> dict[str, str]:
    """{device: column} of one runtime statistic (names.runtime_metric) that some run has.

    Times taken while trials shared a device (device name ending in names.SHARED_SUFFIX) are
    not clean measurements and are left out unless asked for.
    """
    out = {}
    for column in metric_columns(frame):
        parsed = names.parse_runtime_metric(column)
        if parsed is None or parsed[:2] != (stage, stat) or frame[column].isna().all():
            continue
        device = parsed[2]
        if include_shared or not device.endswith(names.SHARED_SUFFIX):
            out[device] = column
    return out
