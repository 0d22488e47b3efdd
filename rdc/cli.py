"""`rdc <command> ...`: dispatch to each room's `main(argv)`, imported lazily.

Every command is a `main(argv) -> exit code` that tests call directly. Bad input surfaces as
one line on stderr and exit code 2; tracebacks are left for bugs.
"""

from __future__ import annotations

import importlib
import sys

from rdc.quiet import silence_compressai_jit_warning

silence_compressai_jit_warning()  # a command may import compressai before models/

COMMANDS = {
    "sweep": ("sweep.commands", "main", "train one trial per variant of a search space (Ray Tune -> MLflow)"),
    "plan": ("sweep.plan", "main", "expand a search space and cost every variant without training"),
    "frontier": ("analysis.cli", "frontier_main", "the Pareto frontier table of an experiment, from MLflow"),
    "report": ("analysis.cli", "report_main", "the study's figures and an HTML report of an experiment"),
    "import": ("sweep.importer", "main", "put a model trained elsewhere into an experiment as a reference run"),
    "replay": ("analysis.replay", "main", "what each early-stopping policy would have stopped in a finished sweep"),
    "profile": ("sweep.remeasure", "profile_main", "add this device's decode runtimes to every finished run"),
    "eval": ("sweep.remeasure", "eval_main", "evaluate one trained run on a folder of images"),
    "knobs": ("models.knobs", "main", "every component's knobs: type, default, allowed values, meaning"),
}


def usage() -> str:
    lines = ["usage: rdc <command> [args]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "rdc <command> --help for a command's arguments"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rdc: error: command={name!r}: allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[name]
    try:
        return int(getattr(importlib.import_module(module), function)(rest) or 0)
    except Exception as err:  # noqa: BLE001 - only user errors are turned into one line
        if not _is_user_error(err):
            raise
        print(f"rdc {name}: error: {err}", file=sys.stderr)
        return 2


def _is_user_error(err: Exception) -> bool:
    from rdc.errors import UserError

    if isinstance(err, UserError):
        return True
    spec_errors = sys.modules.get("models.errors")  # only loaded if a model spec was parsed
    return spec_errors is not None and isinstance(err, spec_errors.SpecError)


if __name__ == "__main__":
    sys.exit(main())
