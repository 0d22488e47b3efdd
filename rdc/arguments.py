"""argparse for every rdc command: a bad argument is rdc's one error line, naming the option.

argparse prints its whole usage (a dozen wrapped lines for `rdc profile`) before the error, so
the one line that matters scrolls away. Here argparse's refusal becomes the UserError every
other bad input is (`rdc frontier: error: --format: invalid choice: 'xml' (choose from ...)`),
which the command's entry point prints on one line with exit status 2. `--help` is unchanged.
"""

from __future__ import annotations

import argparse
import re
import sys

from rdc.errors import UserError

_REQUIRED = "the following arguments are required: "
_UNRECOGNIZED = "unrecognized arguments: "
_ONE_OF = re.compile(r"one of the arguments (.+) is required")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse's hook
        message = " ".join(message.split())
        if message.startswith(_REQUIRED):
            missing = message[len(_REQUIRED):].split(", ")
            raise UserError(missing[0], reason="required" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""))
        if message.startswith(_UNRECOGNIZED):
            unknown = message[len(_UNRECOGNIZED):].split()
            raise UserError(unknown[0], reason=f"not an argument of {self.prog}", allowed=self._allowed())
        one_of = _ONE_OF.fullmatch(message)
        if one_of:
            raise UserError(" | ".join(one_of.group(1).split()), reason="one of these is required")
        if message.startswith("argument "):
            key, _, reason = message[len("argument "):].partition(": ")
            raise UserError(key.split("/")[0], reason=reason)
        raise UserError("arguments", reason=message, allowed=self._allowed())

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        # An empty value (`--tracking-uri "$URI"` with URI unset) would read as "not given" and
        # quietly take the default store, folder or name: refused like any other bad value.
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            values = value if isinstance(value, list) else [value]
            blank = next((v for v in values if isinstance(v, str) and not v.strip()), None)
            if blank is not None:
                key = action.option_strings[-1] if action.option_strings else str(action.metavar or action.dest).upper()
                optional = action.option_strings and not action.required
                raise UserError(key, blank, reason="empty",
                                allowed="a value" + (", or leave the argument out for its default" if optional else ""))
        return parsed, rest

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)

    def _allowed(self) -> str:
        options = sorted({s for action in self._actions for s in action.option_strings if s.startswith("--")})
        positional = [action.metavar or action.dest for action in self._actions if not action.option_strings]
        return ", ".join(options + [str(p).upper() for p in positional])
