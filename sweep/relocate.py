"""A sqlite store moved with its runs_dir (to a bigger disk, say) keeps working.

MLflow records every experiment's artifact location and every run's artifact URI as absolute
paths. After `mv runs /big/runs`, the store opens at its new path, but a resumed trial would
write its model where the folder used to be: recreating the old folder, or failing. When the
experiment's recorded artifact folder no longer exists, the recorded paths are rewritten to the
configured artifact root's folder of the experiment, in the sqlite file itself
(MLflow has no call to change an experiment's artifact location). A store whose old folder
still exists is left alone: a copy is not a move.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from sweep.tracking import client, with_retries


def _local_path(location: str) -> Path | None:
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def relocate_moved_artifacts(uri: str, experiment: str, artifact_root: str | None) -> str | None:
    """Point a moved sqlite store's artifact paths at `artifact_root`/<experiment>; a line saying
    so, or None when nothing moved."""
    if not uri.startswith("sqlite:///") or not artifact_root or "://" in artifact_root:
        return None
    database = Path(uri[len("sqlite:///"):])
    if not database.exists():
        return None
    found = with_retries(lambda: client(uri).get_experiment_by_name(experiment), what="finding the experiment")
    if found is None:
        return None
    old = found.artifact_location
    old_path = _local_path(old)
    new_path = Path(artifact_root, experiment).resolve()
    # The folder may not exist at the new place yet (no artifact logged before the move).
    if old_path is None or old_path.exists() or old_path == new_path:
        return None
    new = new_path.as_uri() if old.startswith("file:") else str(new_path)
    with sqlite3.connect(database, timeout=30) as connection:
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                           (new, int(found.experiment_id)))
        connection.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                           "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                           (new, len(old) + 1, int(found.experiment_id), len(old), old))
    return f"the store moved: artifacts of experiment {experiment!r} are now read and written under {new_path} (were {old_path})"
