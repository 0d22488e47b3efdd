"""Warnings about neither our code nor the user's input, silenced once for every entry point.

compressai scripts functions with torch.jit.script, deprecated in torch 2.14: the warning would
greet every command and put two lines before a command's one error line. Both `models` (for
library users) and rdc's command line (which may import compressai before `models`) call this.
"""

from __future__ import annotations

import warnings


def silence_compressai_jit_warning() -> None:
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)
