"""The callback that ends a launch at a trial's full-disk report (the whole path, with real
processes and a real full disk, is tests/sweep/test_disk_full.py)."""

from __future__ import annotations

import errno
import signal
import threading

import pytest

from rdc.diskfull import is_disk_full
from sweep.full_disk_stop import FullDiskStop
from sweep.schedulers.base import FULL_DISK, FULL_DISK_DETAIL, OUTCOME

REPORT = {OUTCOME: FULL_DISK, FULL_DISK_DETAIL: "database or disk is full"}


@pytest.fixture
def caught():
    """SIGUSR1 handled as Tune's tuning loop handles it (it sets an event); the old handler back after."""
    event = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: event.set())
    yield event
    signal.signal(signal.SIGUSR1, previous)


def test_the_first_full_disk_report_interrupts_the_launch_and_is_raised_after_it(caught):
    stop = FullDiskStop()
    stop.on_trial_result(0, [], None, {"step": 5, "train_loss": 1.0})  # an ordinary report: nothing
    assert not caught.wait(0.2) and stop.detail is None
    stop.raise_if_full()  # nothing to raise
    stop.on_trial_result(0, [], None, REPORT)
    assert caught.wait(5), "the launch is interrupted as Ctrl-C would"
    caught.clear()
    stop.on_trial_result(0, [], None, {**REPORT, FULL_DISK_DETAIL: "another trial, later"})
    assert not caught.wait(0.2), "one interruption, however many trials find the disk full"
    with pytest.raises(OSError) as err:
        stop.raise_if_full()
    assert err.value.errno == errno.ENOSPC and is_disk_full(err.value) and "database or disk is full" in str(err.value)


def test_off_the_main_thread_no_signal_is_sent(caught):
    """Tune installs its handler only on the main thread; elsewhere SIGUSR1 would end the process."""
    stop = FullDiskStop()
    worker = threading.Thread(target=stop.on_trial_result, args=(0, [], None, REPORT))
    worker.start()
    worker.join()
    assert not caught.wait(0.3) and stop.detail == "database or disk is full"
