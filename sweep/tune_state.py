"""What an earlier launch left in Tune's experiment folder, read without unpickling anything.

Tune's own readers (ExperimentAnalysis, Tuner.restore) unpickle the blobs in the folder, so a
file planted in runs_dir (shared storage on a cluster) would run code in the driver. A plain
`rdc sweep` only needs each trial's status, and those are plain JSON: Tune writes
`experiment_state-<time>.json` with one JSON document per trial, in which everything that is
not JSON (results, resources, the config's objects) is a hex string of a pickle. We parse the
JSON and never decode those strings.

Tune writes that file with a plain open(..., "w"): a full disk or Ctrl-C can leave it cut off.
Such a state is reported as damaged (with the reason) instead of raising: the caller then
continues from what MLflow holds.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

STATE_PATTERN = "experiment_state-*.json"  # Tune's CKPT_FILE_TMPL; the newest name is the newest state
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")
MAX_STATE_BYTES = 256 << 20  # far above any sweep's state (a few kB per trial); a bigger file is not Tune's


@dataclass(frozen=True)
class TuneState:
    """Trial statuses of the newest state file, or why it could not be read (`damaged`)."""

    path: Path
    statuses: dict[str, str] = field(default_factory=dict)  # trial folder name (our variant_id) -> status
    damaged: str | None = None

    @property
    def unfinished(self) -> list[str]:
        return sorted(name for name, status in self.statuses.items() if status in UNFINISHED)


def state_file(experiment_dir: Path) -> Path | None:
    """The newest experiment_state file of the folder, as Tune picks it (greatest name)."""
    try:
        names = fnmatch.filter(os.listdir(experiment_dir), STATE_PATTERN)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Path(experiment_dir, max(names)) if names else None


def read_tune_state(experiment_dir: Path) -> TuneState | None:
    """The statuses Tune recorded under `experiment_dir`; None if it holds no Tune state."""
    path = state_file(Path(experiment_dir))
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            return TuneState(path, damaged=f"{path.name} is larger than {MAX_STATE_BYTES >> 20} MB")
        document = json.loads(path.read_bytes())
        statuses = {}
        for entry in document["trial_data"]:
            trial = json.loads(entry[0])  # Tune stores each trial as a JSON string in the list
            name = trial.get("custom_dirname") or trial.get("relative_logdir")
            status = trial["status"]
            if not isinstance(name, str) or not isinstance(status, str):
                raise ValueError("a trial without a folder name or status")
            statuses[name] = status
    except OSError as err:
        return TuneState(path, damaged=f"{path.name} cannot be read ({err.strerror or err})")
    except (ValueError, KeyError, TypeError, IndexError) as err:  # cut off, or not what Tune writes
        return TuneState(path, damaged=f"{path.name} is damaged ({type(err).__name__}: {str(err)[:120]})")
    return TuneState(path, statuses)
