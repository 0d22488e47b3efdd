"""argparse for rdc's commands: a bad argument is the error line plus one usage line.

argparse prints its whole usage (a dozen wrapped lines for `rdc frontier`) before the error, so
the one line that matters scrolls away. This parser prints the usage squeezed onto one line,
then `prog: error: ...`, and exits 2 as argparse does.
"""

from __future__ import annotations

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse's hook
        usage = " ".join(self.format_usage().split())
        self.exit(2, f"{usage}\n{self.prog}: error: {' '.join(message.split())}\n")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
