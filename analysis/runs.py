"""An MLflow experiment as a tidy DataFrame: one row per run, one column per tag, component,
knob, training setting and metric.

Columns, in order:
  run_id, run_name, status, start_time, end_time
  variant_id, family, sweep, train_config_id, device, shared_device, failure_reason, flops_size,
  seed, stopped_early, reference, eval_images, runtime_protocol.<device>              (tags)
  transform, entropy, hyper     (the family label `<transforms>/<entropy model>:<hyper>` split)
  every metric by its bare name (rdc.names), e.g. rd_loss, bpp, decode_ms_<device>,
  decode_networks_mps_<device>
  spec.<knob path> and train.<setting> params (numbers where every value is a number), spec_json
A metric a run never logged is NaN; runtimes on several devices are several columns.
The sweep-level run (tag sweep_run, the parent of a sweep's variant runs) is not a variant and
is never a row.

`run_set(...)` splits runs the way every comparison needs them: the sweep's finished runs; runs
a scheduler stopped early (left out unless asked, and counted); runs of models trained
elsewhere (tag reference: shown apart unless asked to be ranked with the sweep).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.store import EXPERIMENT_KEY, RawRuns, read_experiment
from rdc import names
from rdc.errors import UserError

RUN_COLUMNS = ["run_id", "run_name", "status", "start_time", "end_time"]
TAG_COLUMNS = [names.TAG_VARIANT_ID, names.TAG_FAMILY, names.TAG_SWEEP, names.TAG_TRAIN_CONFIG,
               names.TAG_DEVICE, names.TAG_SHARED_DEVICE, names.TAG_FAILURE, names.TAG_FLOPS_SIZE,
               names.TAG_SEED, names.TAG_STOPPED_EARLY, names.TAG_REFERENCE, names.TAG_EVAL_IMAGES]
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
        frame = _finished(frame, experiment, frame["status"] == FINISHED)
    return _of_family(frame, family, "finished " if finished_only else "")


def _finished(frame: pd.DataFrame, experiment: str, keep: pd.Series) -> pd.DataFrame:
    if not keep.any():
        counts = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().sort_index().items())
        raise UserError(EXPERIMENT_KEY, experiment, reason=f"has no FINISHED runs ({counts})")
    return frame[keep]


def _of_family(frame: pd.DataFrame, family: str | None, which: str) -> pd.DataFrame:
    if family is not None:
        families = sorted(frame[names.TAG_FAMILY].dropna().unique())
        if family not in families:
            raise UserError(FAMILY_KEY, family, reason=f"no {which}run of this family",
                            allowed=", ".join(families) or "none (runs carry no family tag)")
        frame = frame[frame[names.TAG_FAMILY] == family]
    return frame.reset_index(drop=True)


def is_stopped(frame: pd.DataFrame) -> pd.Series:
    """Runs a scheduler stopped early: status KILLED and the stopped_early tag (the step)."""
    return (frame["status"] == names.STOPPED_STATUS) & frame[names.TAG_STOPPED_EARLY].notna()


def is_reference(frame: pd.DataFrame) -> pd.Series:
    """Runs of models trained elsewhere (`rdc import`): the reference tag holds their source."""
    return frame[names.TAG_REFERENCE].notna() & (frame[names.TAG_REFERENCE].astype(str) != "")


@dataclass
class RunSet:
    """The runs a comparison uses, and what it left out."""

    sweep: pd.DataFrame  # ranked: FINISHED sweep runs (+ stopped ones, + references, when asked)
    references: pd.DataFrame  # reference runs shown apart, never ranked (empty when ranked with the sweep)
    notes: list[str] = field(default_factory=list)


def run_set(frame: pd.DataFrame, experiment: str = "", *, family: str | None = None, include_stopped: bool = False,
            with_references: bool = False) -> RunSet:
    """Split a tidy frame (any statuses) into the runs to rank and the reference runs to show
    apart, with a note for every kind of run left out. UserError when nothing is left."""
    stopped = is_stopped(frame)
    finished = frame["status"] == FINISHED
    notes = []
    others = frame[~finished & ~stopped]["status"].value_counts().sort_index()
    if len(others):
        notes.append("not counted: " + ", ".join(f"{n} {s}" for s, n in others.items()) + " run(s)")
    if stopped.any():
        if include_stopped:
            notes.append(f"including {int(stopped.sum())} run(s) stopped early by a scheduler "
                         f"(status {names.STOPPED_STATUS}, tag {names.TAG_STOPPED_EARLY}: their last evaluation)")
        else:
            notes.append(f"left out {int(stopped.sum())} run(s) stopped early by a scheduler: --include-stopped shows them")
    kept = _finished(frame, experiment, finished | (stopped & include_stopped))
    kept = _of_family(kept, family, "finished ")
    reference = is_reference(kept)
    if reference.any():
        if with_references:
            notes.append(f"{int(reference.sum())} reference run(s) (trained elsewhere) ranked with the sweep")
        else:
            notes.append(f"{int(reference.sum())} reference run(s) (trained elsewhere) shown apart, not ranked: "
                         "--with-references ranks them with the sweep")
    if with_references:
        return RunSet(kept, kept.iloc[:0], notes)
    sweep = kept[~reference].reset_index(drop=True)
    if sweep.empty:
        raise UserError(EXPERIMENT_KEY, experiment, reason="has only reference runs: pass --with-references to rank them")
    return RunSet(sweep, kept[reference].reset_index(drop=True), notes)


def tidy(raw: RawRuns) -> pd.DataFrame:
    """One row per run from MLflow's long tables (see the module docstring for the columns)."""
    sweep_level = raw.tags[(raw.tags["key"] == names.TAG_SWEEP_RUN) & (raw.tags["value"].astype(str).str.lower() == "true")]
    out = raw.runs[~raw.runs["run_id"].isin(sweep_level["run_id"])]
    out = out.sort_values(["start_time", "run_id"]).reset_index(drop=True)
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
