"""The sweep-level MLflow run, as MLflow users expect of a tuning job: one per sweep, the parent
of every variant run (MLflow's `mlflow.parentRunId`, so the UI nests them), holding what the
sweep is as artifacts, refreshed at the end of every `rdc sweep`:
  config.yaml   the composed config the sweep ran with;
  plan.csv      every variant of the space with its params and FLOPs (what `rdc plan --out` writes);
  report/       `rdc report`'s output for the experiment: report.html, frontier.csv (the frontier
                table), replicates.csv and noise.json when variants have several seeds, and the
                figures in PNG and SVG.
It is found again by its tags (sweep, and names.TAG_SWEEP_RUN "true"), never by id, and the
analysis leaves it out of every table. The report is made by the `rdc report` command in a
process of its own: the sweep room does not import the analysis room.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from rdc import names
from sweep.tracking import SweepRecord, client, search_all, with_retries

REPORT_TIMEOUT_S = 600.0
REPORT_DIR = "report"


def sweep_run_filter(sweep: str) -> str:
    return f"tags.{names.TAG_SWEEP} = '{sweep}' and tags.{names.TAG_SWEEP_RUN} = 'true'"


def open_sweep_run(record: SweepRecord) -> str:
    """The sweep's run (created the first time), RUNNING while a driver works; its id."""
    mlflow = client(record.uri)

    def find():
        experiment = mlflow.get_experiment_by_name(record.experiment)
        runs = search_all(mlflow, experiment.experiment_id, sweep_run_filter(record.sweep))
        return experiment.experiment_id, sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    experiment_id, runs = with_retries(find, what="finding the sweep's run")
    if not runs:
        tags = {names.TAG_SWEEP: record.sweep, names.TAG_SWEEP_RUN: "true"}
        with_retries(lambda: mlflow.create_run(experiment_id, tags=tags, run_name=f"sweep {record.sweep}"),
                     what="creating the sweep's run")
        _, runs = with_retries(find, what="finding the sweep's run")
    run_id = runs[0].info.run_id  # two racing drivers agree on the oldest (the lock keeps them apart)
    with_retries(lambda: mlflow.update_run(run_id, status="RUNNING"), what="opening the sweep's run")
    return run_id


def end_sweep_run(run_id: str, record: SweepRecord, status: str) -> None:
    with_retries(lambda: client(record.uri).set_terminated(run_id, status=status), what="ending the sweep's run")


def publish(run_id: str, record: SweepRecord, cfg: dict, variants: list, *, report: bool = True,
            status: str = "FINISHED") -> list[str]:
    """Refresh the sweep run's artifacts and end it with `status`; lines saying what could not
    be made (nothing made here stops a sweep whose trials are in MLflow)."""
    import yaml

    mlflow = client(record.uri)
    problems = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        with_retries(lambda: mlflow.log_artifact(run_id, str(folder / "config.yaml")), what="uploading the config")
        try:
            _write_plan(variants, folder / "plan.csv")
            with_retries(lambda: mlflow.log_artifact(run_id, str(folder / "plan.csv")), what="uploading the plan")
        except Exception as err:  # noqa: BLE001 - a plan that cannot be costed is said, not fatal here
            problems.append(f"plan.csv not made ({type(err).__name__}: {err})")
        if report:
            made = _report(record, folder / REPORT_DIR)
            if made:
                problems.append(made)
            if (folder / REPORT_DIR).is_dir() and any((folder / REPORT_DIR).iterdir()):
                with_retries(lambda: mlflow.log_artifacts(run_id, str(folder / REPORT_DIR), REPORT_DIR),
                             what="uploading the report")
    end_sweep_run(run_id, record, status)
    return problems


def _write_plan(variants: list, out: Path) -> None:
    from sweep.costs import reference_costs
    from sweep.plan import plan_rows, write_table

    write_table(plan_rows(variants, reference_costs), out)


def _report(record: SweepRecord, out: Path) -> str:
    """Run `rdc report` for the experiment into `out`; "" if it worked, else why not (one line)."""
    command = [sys.executable, "-m", "rdc.cli", "report", "--experiment", record.experiment,
               "--tracking-uri", record.uri, "--out", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"report not made: rdc report took more than {REPORT_TIMEOUT_S:.0f}s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
        return f"report not made: {last[:300]}"
    return ""


def parent_tag(run_id: str | None) -> dict[str, str]:
    """The tag that makes a variant run a child of the sweep's run."""
    return {names.TAG_PARENT_RUN: run_id} if run_id else {}
