"""A finished run evaluated on other images than the sweep names is evaluated on them again,
without retraining (issue 16): a re-run of a sweep with another `data.eval_dir` used to print
"0 to train" and leave every run's metrics on the old images, unsaid.

The run keeps both: each set's summary metrics under its own name (`evalset/<set>/<metric>`,
e.g. `evalset/kodak/psnr`), and the main metrics (`bpp`, `psnr`, `rd_loss`, ...) for the set the
sweep names now; its per-image table for each set is the artifact `eval/<set>.csv`, and
`eval_images.csv` is the current set's. Runtimes stay those timed on the images the trial
evaluated on (the tag `runtime_protocol.<device>` says which); `rdc profile --images` times
others.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from jobs.data import BUILTIN, DEFAULT_MAX_PIXELS, load_images
from jobs.evaluate import evaluate
from rdc import names
from sweep.tracking import FinishedRun, with_retries

EVAL_SET_PREFIX = names.EVAL_SET_PREFIX
# What an evaluation set changes: the summary of jobs.evaluate (costs and runtimes do not).
EVALUATED = (names.BPP, names.BPP_EST, names.MSE, names.PSNR, names.MS_SSIM, names.MS_SSIM_DB, names.RD_LOSS,
             names.ESCAPE_SHARE, names.BPP_TABLE, names.BPP_OVER_EST)


def eval_set_label(data: dict) -> str:
    """The tag value of the set a sweep evaluates on: its folder, or "builtin"."""
    return data.get("eval_dir") or BUILTIN


def set_name(label: str) -> str:
    """A short name for an evaluation set in metric and artifact names: the folder's name."""
    name = BUILTIN if label == BUILTIN else Path(label).name
    return names.name_part(name)


def set_metric(label: str, metric: str) -> str:
    return f"{EVAL_SET_PREFIX}{set_name(label)}/{metric}"


def evaluated_elsewhere(tags: dict, data: dict) -> str | None:
    """The set a finished run was evaluated on, when it is not the one `data` names; else None."""
    was = tags.get(names.TAG_EVAL_IMAGES)
    return was if was and was != eval_set_label(data) else None


def evaluate_again(mlflow, run, settings: dict, lmbda: float, was: str) -> dict[str, float]:
    """Evaluate the FINISHED `run`'s final model on the sweep's evaluation set; its new summary.
    Writes go through FinishedRun: a run retrained meanwhile is left alone."""
    from mlflow.entities import Metric, RunTag

    from sweep.remeasure import load_run_model

    data = settings["data"]
    label = eval_set_label(data)
    images = load_images(data.get("eval_dir"), split="eval", key="data.eval_dir",
                         max_pixels=data.get("max_pixels", DEFAULT_MAX_PIXELS))
    model = load_run_model(mlflow, run.info.run_id, run.info.run_name)
    evaluation = evaluate(model, images, lmbda)
    target = FinishedRun(mlflow, run)
    present = target.check_unchanged().data.metrics
    step = int(present.get(names.TRAIN_STEPS, 0))
    earlier = {set_metric(was, k): present[k] for k in EVALUATED if k in present and set_metric(was, k) not in present}
    now = {set_metric(label, k): v for k, v in evaluation.summary.items()}
    with tempfile.TemporaryDirectory() as folder:
        # The earlier set's per-image table stays, under its set's name.
        earlier_table = Path(folder) / f"{set_name(was)}.csv"
        try:
            Path(mlflow.download_artifacts(run.info.run_id, names.EVAL_TABLE, folder)).rename(earlier_table)
            target.log_artifact(earlier_table, names.EVAL_TABLE_DIR)
        except Exception:  # noqa: BLE001 - a run without its table keeps its summary metrics only
            pass
        table = Path(folder) / f"{set_name(label)}.csv"
        evaluation.table().to_csv(table, index=False)
        target.log_artifact(table, names.EVAL_TABLE_DIR)
        current = Path(folder) / names.EVAL_TABLE
        evaluation.table().to_csv(current, index=False)
        target.log_artifact(current)
    stamp = int(time.time() * 1000)
    items = [Metric(k, float(v), stamp, step) for k, v in {**earlier, **now, **evaluation.summary}.items()]
    with_retries(lambda: mlflow.log_batch(run.info.run_id, metrics=items), what="logging the new evaluation")
    with_retries(lambda: mlflow.log_batch(run.info.run_id, tags=[RunTag(names.TAG_EVAL_IMAGES, label)]),
                 what="tagging the evaluation set")
    return dict(evaluation.summary)
