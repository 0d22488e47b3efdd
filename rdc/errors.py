"""The one error type users see: a short line naming the key, the value and what is allowed."""


class UserError(Exception):
    """Bad input from a user (YAML, override, folder, checkpoint, experiment name).

    The CLI prints `str(error)` on one line and exits with `exit_code`; tracebacks are for bugs.
    """

    exit_code = 2

    def __init__(self, key: str, value=None, allowed: str | None = None, reason: str | None = None):
        self.key, self.value, self.allowed, self.reason = key, value, allowed, reason
        super().__init__(self._line())

    def _line(self) -> str:
        parts = [f"{self.key}"]
        if self.value is not None:
            parts[0] += f"={self.value!r}"
        if self.reason:
            parts.append(self.reason)
        if self.allowed:
            parts.append(f"allowed: {self.allowed}")
        return ": ".join(parts)
