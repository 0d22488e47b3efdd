"""Ending a launch at the first trial that finds the disk full.

Tune would retry that trial (cluster.max_failures times), each retry rebuilding it and failing
again on the same disk; meanwhile every other trial fails too. Instead the trial reports the full
disk (sweep.trainable) and this callback interrupts the launch the way Ctrl-C does: Tune's
SIGUSR1 handler ends the tuning loop and leaves the unfinished trials unfinished in its state
(a stop through the controller would mark them TERMINATED, and resume=true would then skip
them). The driver then raises the full disk as an OSError (ENOSPC), which `rdc sweep` turns
into its one line.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

from ray.tune import Callback

from sweep.schedulers.base import FULL_DISK, FULL_DISK_DETAIL, OUTCOME


class FullDiskStop(Callback):
    def __init__(self):
        self.detail: str | None = None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(OUTCOME) != FULL_DISK or self.detail is not None:
            return
        self.detail = str(result.get(FULL_DISK_DETAIL) or "no space left on device")
        if _tune_catches_sigusr1():
            os.kill(os.getpid(), signal.SIGUSR1)
        # Otherwise (Tune running off the main thread installs no handler, and SIGUSR1 would kill
        # the process) the trial gives up waiting and Tune retries it as before.

    def raise_if_full(self) -> None:
        """After Tuner.fit: the full disk a trial reported, as the error a full disk raises."""
        if self.detail is not None:
            raise OSError(errno.ENOSPC, f"a trial found the disk full: {self.detail}")


def _tune_catches_sigusr1() -> bool:
    if not hasattr(signal, "SIGUSR1") or threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
