"""Read one MLflow experiment's runs as plain long tables, from any tracking URI.

MLflow's `search_runs` builds an ORM object for every metric, param and tag and then expires
them all: about 1.3 s for 1,000 runs of a sweep here, nearly all of it SQLAlchemy bookkeeping.
For SQL-backed stores (sqlite, postgresql, mysql, mssql) we read the same four tables (runs,
latest_metrics, params, tags) with plain SELECTs instead, read-only, in a few tens of ms.
Any other URI (a tracking server over http(s), databricks, a legacy file store) goes through
MlflowClient, and so does a SQL store whose schema we do not recognise. tests/analysis checks
that both roads give the same tables.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rdc.errors import UserError
from rdc.stores import SQL_SCHEMES, check_tracking_uri, display_uri, given_or_default_uri  # noqa: F401 - display_uri: analysis's callers import it here

URI_KEY = "--tracking-uri"
EXPERIMENT_KEY = "--experiment"
MAX_RESULTS_PER_PAGE = 1000  # MLflow's search_runs page limit


@dataclass
class RawRuns:
    """Runs of one experiment as MLflow stores them: one frame of runs, three long tables."""

    experiment: str
    uri: str
    runs: pd.DataFrame  # run_id, run_name, status, start_time, end_time (ms since epoch)
    metrics: pd.DataFrame  # run_id, key, value (latest value of each metric; NaN kept)
    params: pd.DataFrame  # run_id, key, value (strings)
    tags: pd.DataFrame  # run_id, key, value (strings)


def tracking_uri(uri: str | None) -> str:
    """The URI to read: the argument, else $MLFLOW_TRACKING_URI, else the sweep's default store."""
    return given_or_default_uri(uri)


def read_experiment(experiment: str, uri: str | None = None) -> RawRuns:
    """All active (not deleted) runs of `experiment`; UserError if the store or experiment is absent."""
    uri = tracking_uri(uri)
    # Before anything opens it: no hang on a silent server, no schema written into a file that
    # is not an MLflow store, one line for a missing driver (rdc.stores only ever reads).
    check_tracking_uri(uri, key=URI_KEY)
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in SQL_SCHEMES:
        return _read_with_client(experiment, uri)
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    try:
        return _read_with_sql(experiment, uri)
    except _AmbiguousName:
        return _read_with_client(experiment, uri)
    except (NoSuchTableError, SQLAlchemyError) as err:
        if "no such table" in str(err).lower() and scheme == "sqlite":
            raise UserError(URI_KEY, uri, reason="this sqlite file is not an MLflow store",
                            allowed="the sqlite file an rdc sweep or `mlflow server` wrote") from None
        warnings.warn(f"reading {uri} with SQL failed ({type(err).__name__}); using MlflowClient (slower)",
                      stacklevel=2)
        return _read_with_client(experiment, uri)


class _AmbiguousName(Exception):
    """The store has several MLflow workspaces: let MlflowClient pick the active one."""


def _several_workspaces(conn) -> bool:
    """Whether the store holds experiments of more than one MLflow workspace: which one is active
    is MlflowClient's to say (MLFLOW_WORKSPACE), so such stores are read through it."""
    from sqlalchemy import inspect, text

    if "workspace" not in {c["name"] for c in inspect(conn).get_columns("experiments")}:
        return False
    return conn.execute(text("SELECT COUNT(DISTINCT workspace) FROM experiments")).scalar() > 1


def _engine(uri: str):
    import sqlite3

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database).resolve()
        # Read-only: a reader must never take a write lock on a store a sweep is writing.
        return create_engine("sqlite://", creator=lambda: sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30))
    return create_engine(url)


def _read_with_sql(experiment: str, uri: str) -> RawRuns:
    from sqlalchemy import text

    engine = _engine(uri)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = :name"),
                                 {"name": experiment}).fetchall()
            if len(found) > 1 or _several_workspaces(conn):
                raise _AmbiguousName(experiment)
            if not found or found[0][1] != "active":
                names = [r[0] for r in conn.execute(text(
                    "SELECT name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY name"))]
                _raise_unknown(experiment, uri, names, deleted=bool(found))
            where = {"experiment_id": found[0][0]}
            active = "r.experiment_id = :experiment_id AND r.lifecycle_stage = 'active'"
            runs = _frame(conn.execute(text(
                f"SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time FROM runs r WHERE {active}"), where),
                ["run_id", "run_name", "status", "start_time", "end_time"])
            metrics = _frame(conn.execute(text(
                "SELECT m.run_uuid, m.key, m.value, m.is_nan FROM latest_metrics m"
                f" JOIN runs r ON m.run_uuid = r.run_uuid WHERE {active}"), where),
                ["run_id", "key", "value", "is_nan"])
            long = {}
            for table in ("params", "tags"):
                long[table] = _frame(conn.execute(text(
                    f"SELECT t.run_uuid, t.key, t.value FROM {table} t"
                    f" JOIN runs r ON t.run_uuid = r.run_uuid WHERE {active}"), where),
                    ["run_id", "key", "value"])
    finally:
        engine.dispose()
    # MLflow stores NaN as value 0 with is_nan set.
    metrics["value"] = metrics["value"].astype(float).where(~metrics.pop("is_nan").astype(bool))
    return RawRuns(experiment, uri, runs, metrics, long["params"], long["tags"])


def _frame(result, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(result.fetchall(), columns=columns)


def _read_with_client(experiment: str, uri: str) -> RawRuns:
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
    except MlflowException as err:  # e.g. a store with several workspaces, read without workspace support
        raise UserError(URI_KEY, uri, reason=" ".join(err.message.split())) from None
    if found is None or found.lifecycle_stage != "active":
        names = sorted(e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
        _raise_unknown(experiment, uri, names, deleted=found is not None)
    runs, metrics, params, tags = [], [], [], []
    token = None
    while True:
        page = client.search_runs([found.experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=MAX_RESULTS_PER_PAGE, page_token=token)
        for run in page:
            info, data = run.info, run.data
            runs.append((info.run_id, info.run_name, info.status, info.start_time, info.end_time))
            metrics += [(info.run_id, k, v) for k, v in data.metrics.items()]
            params += [(info.run_id, k, v) for k, v in data.params.items()]
            tags += [(info.run_id, k, v) for k, v in data.tags.items()]
        token = page.token
        if not token:
            break
    long = ["run_id", "key", "value"]
    metrics_frame = pd.DataFrame.from_records(metrics, columns=long)
    metrics_frame["value"] = metrics_frame["value"].astype(float)
    return RawRuns(experiment, uri,
                   pd.DataFrame.from_records(runs, columns=["run_id", "run_name", "status", "start_time", "end_time"]),
                   metrics_frame, pd.DataFrame.from_records(params, columns=long),
                   pd.DataFrame.from_records(tags, columns=long))


def _raise_unknown(experiment: str, uri: str, known: list[str], *, deleted: bool) -> None:
    reason = f"was deleted from {display_uri(uri)}" if deleted else f"no such experiment in {display_uri(uri)}"
    raise UserError(EXPERIMENT_KEY, experiment, reason=reason,
                    allowed=", ".join(known) if known else "none yet (run `rdc sweep` first)")

