"""A disk that fills mid-sweep, with real processes (issue 12): runs_dir on a small tmpfs, filled
while a trial trains. The driver stops within seconds with one line naming the full disk (not
minutes of retries with a traceback every 10 s), and the sweep then continues on a bigger disk
(runs_dir moved there) with one complete run per variant and every step logged once. One
variant: what is tested is the disk, not the scheduling."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rdc import names
from rdc.cli import main
from tests.cluster.rig import kill_group, make_root, start_driver, steps_of, sweep_args, sweep_runs, trial_results, \
    wait_for, write_space

STEPS, LOG_EVERY, CHECKPOINT_EVERY = 40, 5, 10
TIMEOUT_S = 420
STOPS_WITHIN_S = 45  # disk full to driver exit: 16 s alone here (the first trial to find it ends the launch; Tune retrying took 104 s)

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 48 MiB tmpfs (root only: skipped elsewhere), unmounted afterwards."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'not root'})")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Write until the disk is full."""
    with open(folder / "filler", "wb") as out:
        block = b"\0" * (1 << 20)
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError:
            pass


def args(root: Path, runs: Path, *extra: str) -> list[str]:
    return sweep_args(root, "two", steps=STEPS, log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                      extra=extra, runs=runs)


def test_a_disk_filling_mid_sweep_stops_it_in_one_line_then_it_continues_on_a_bigger_disk(shared_ray, tmp_path,
                                                                                          small_disk, capsys):
    root = make_root(tmp_path)
    write_space(root, "two", "full", [8])
    runs = small_disk / "runs"
    log = root / "driver.log"
    driver = start_driver(args(root, runs), log)
    try:
        wait_for(lambda: any(results and not results[-1].get("done") and results[-1].get("step", 0) >= CHECKPOINT_EVERY
                             for results in trial_results(runs, "full").values()),
                 "a trial past its first checkpoint", TIMEOUT_S, driver, log)
        fill(small_disk)
        filled = time.monotonic()
        code = driver.wait(timeout=TIMEOUT_S)
        stopped_after = time.monotonic() - filled
    finally:
        kill_group(driver)
    text = log.read_text()
    with capsys.disabled():  # the figure, for a run with -s
        print(f"\nthe driver exited {stopped_after:.1f} s after the disk filled; its last lines:",
              *text.splitlines()[-4:], sep="\n")
    assert code == 2, text[-4000:]
    assert stopped_after < STOPS_WITHIN_S, (stopped_after, text[-4000:])
    last = [line for line in text.splitlines() if line.strip()][-1]
    assert "disk" in last.lower() and "full" in last.lower() and "runs_dir" in last, last
    assert "Traceback" not in text, text[-4000:]
    assert text.count("retrying in") <= 3, "a full disk is not waited out"
    assert "retry " not in text and "gave up" not in text, "a trial that found the disk full is not retried"

    # The same sweep, moved to a bigger disk, continues: one run per variant, every step once.
    bigger = tmp_path / "bigger" / "runs"
    shutil.copytree(runs, bigger, ignore=shutil.ignore_patterns("filler"))
    subprocess.run(["umount", "-l", str(small_disk)], capture_output=True)
    capsys.readouterr()
    assert main(args(root, bigger, "resume=true")) == 0, capsys.readouterr()
    uri = f"sqlite:///{bigger / 'mlflow.db'}"
    found = sweep_runs(uri, "full")
    assert len(found) == len({r.data.tags[names.TAG_VARIANT_ID] for r in found}) == 1
    for run in found:
        assert run.info.status == "FINISHED"
        assert steps_of(uri, run.info.run_id) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
        assert str(bigger) in run.info.artifact_uri
