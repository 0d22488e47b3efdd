"""jobs.checkpoints: a damaged latest checkpoint falls back to the previous one; no message ever
suggests weights_only=False. Real torch files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jobs.checkpoints import DamagedCheckpoint, checkpoint_folders, read_state, restore_newest

FILE = "trainer.pt"


class NotPlainData:
    """An object torch's weights_only loader refuses (its advice: load with weights_only=False)."""

    def __init__(self):
        self.x = 1


def save(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    torch.save({"step": step, "weights": torch.full((4,), float(step))}, folder / FILE)
    return folder


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    for step in (100, 200, 300):
        save(tmp_path / f"checkpoint_{step // 100:06d}", step)
    (tmp_path / "result.json").write_text("{}")
    return tmp_path


def test_folders_newest_first(trial: Path):
    assert [p.name for p in checkpoint_folders(trial / "checkpoint_000003")] == \
        ["checkpoint_000003", "checkpoint_000002", "checkpoint_000001"]
    assert [p.name for p in checkpoint_folders(trial / "checkpoint_000002")] == ["checkpoint_000002", "checkpoint_000001"]
    assert checkpoint_folders(trial / "elsewhere") == [trial / "elsewhere"]


def test_intact_latest_is_used(trial: Path):
    applied = []
    restored = restore_newest(checkpoint_folders(trial / "checkpoint_000003"), FILE, applied.append)
    assert restored.folder.name == "checkpoint_000003" and restored.skipped == ()
    assert applied[0]["step"] == 300


def test_truncated_latest_falls_back_to_the_previous(trial: Path):
    latest = trial / "checkpoint_000003" / FILE
    latest.write_bytes(latest.read_bytes()[:200])  # cut off mid-write
    applied = []
    restored = restore_newest(checkpoint_folders(trial / "checkpoint_000003"), FILE, applied.append)
    assert restored.folder.name == "checkpoint_000002" and [s["step"] for s in applied] == [200]
    assert torch.equal(restored.state["weights"], torch.full((4,), 200.0))
    assert len(restored.skipped) == 1 and "checkpoint_000003" in restored.skipped[0]
    assert "damaged" in restored.skipped[0]


def test_a_state_that_does_not_fit_falls_back(trial: Path):
    def apply(state):
        if state["step"] == 300:
            raise KeyError("g_a.0.weight")
    restored = restore_newest(checkpoint_folders(trial / "checkpoint_000003"), FILE, apply)
    assert restored.folder.name == "checkpoint_000002" and "does not fit" in restored.skipped[0]


def test_no_message_suggests_weights_only_false(tmp_path: Path):
    folder = tmp_path / "checkpoint_000001"
    folder.mkdir()
    torch.save({"step": 1, "extra": NotPlainData()}, folder / FILE)
    with pytest.raises(Exception) as torch_says:  # what torch itself would tell the user
        torch.load(folder / FILE, weights_only=True)
    assert "weights_only" in str(torch_says.value)
    with pytest.raises(DamagedCheckpoint) as caught:
        read_state(folder / FILE)
    text = str(caught.value)
    assert "weights_only" not in text and "weights only" not in text.lower()
    assert str(folder / FILE) in text and "\n" not in text


def test_every_checkpoint_damaged_names_them_all(trial: Path):
    for folder in checkpoint_folders(trial / "checkpoint_000003"):
        (folder / FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedCheckpoint) as caught:
        restore_newest(checkpoint_folders(trial / "checkpoint_000003"), FILE, lambda state: None)
    text = str(caught.value)
    assert all(f"checkpoint_00000{i}" in text for i in (1, 2, 3)) and "\n" not in text


def test_missing_file(tmp_path: Path):
    with pytest.raises(DamagedCheckpoint) as caught:
        read_state(tmp_path / FILE)
    assert "missing" in str(caught.value)
