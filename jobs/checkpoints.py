"""Reading a trial's checkpoints: the newest one that is intact, never pickled code.

A trial keeps its latest checkpoints (sweep.launch.CHECKPOINTS_KEPT) precisely so that one cut
off or damaged on disk does not cost the run: the loader tries them newest first and says which
it skipped. Files are read with torch's weights_only loader (tensors and plain data); when one
is refused, the message says the file is damaged or not a checkpoint, and never passes on
torch's advice to load it with weights_only=False (that would run whatever code it holds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

CHECKPOINT_FOLDER = re.compile(r"checkpoint_(\d+)")  # Tune's folder names: checkpoint_000003


class DamagedCheckpoint(RuntimeError):
    """No checkpoint of the trial could be read: one line naming each file and why."""


@dataclass(frozen=True)
class Restored:
    state: dict
    folder: Path
    skipped: tuple[str, ...]  # one line per newer checkpoint that could not be used


def read_state(path: Path) -> dict:
    """The checkpoint's state (tensors and plain data); DamagedCheckpoint if it is not one."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DamagedCheckpoint(f"checkpoint {path} is missing") from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        raise DamagedCheckpoint(f"checkpoint {path} is not readable: damaged, or not a checkpoint ({_why(err)})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"checkpoint {path} holds a {type(state).__name__}, not a trainer state")
    return state


def _why(err: Exception) -> str:
    """torch's reason in a few words, without its advice about weights_only."""
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    if "weights_only" in first.lower() or "weights only" in first.lower():
        return f"{type(err).__name__}: it holds objects other than tensors and plain data"
    return f"{type(err).__name__}: {first[:160]}" if first else type(err).__name__


def checkpoint_folders(latest: Path) -> list[Path]:
    """`latest` and the older checkpoint folders beside it (Tune's checkpoint_NNNNNN), newest first."""
    latest = Path(latest)
    match = CHECKPOINT_FOLDER.fullmatch(latest.name)
    if match is None:
        return [latest]
    try:
        siblings = [p for p in latest.parent.iterdir() if CHECKPOINT_FOLDER.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return [latest]
    older = [p for p in siblings if int(CHECKPOINT_FOLDER.fullmatch(p.name).group(1)) < int(match.group(1))]
    return [latest] + sorted(older, key=lambda p: int(CHECKPOINT_FOLDER.fullmatch(p.name).group(1)), reverse=True)


def checkpoints_in(trial_folder: Path) -> list[Path]:
    """The checkpoint folders (Tune's checkpoint_NNNNNN) of one trial's folder, newest first;
    [] when it has none or cannot be read."""
    try:
        found = [p for p in Path(trial_folder).iterdir() if CHECKPOINT_FOLDER.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(CHECKPOINT_FOLDER.fullmatch(p.name).group(1)), reverse=True)


def restore_newest(folders: Sequence[Path], filename: str, apply: Callable[[dict], None]) -> Restored:
    """Apply the state in `filename` of the first of `folders` (newest first) that reads and
    applies; DamagedCheckpoint naming every one tried if none does."""
    skipped: list[str] = []
    for folder in folders:
        try:
            state = read_state(Path(folder) / filename)
            apply(state)
        except DamagedCheckpoint as err:
            skipped.append(str(err))
            continue
        except (KeyError, ValueError, RuntimeError) as err:  # read, but not this trainer's state
            skipped.append(f"checkpoint {Path(folder) / filename} does not fit this trainer ({_why(err)})")
            continue
        return Restored(state, Path(folder), tuple(skipped))
    raise DamagedCheckpoint("; ".join(skipped) or "no checkpoint to restore")
