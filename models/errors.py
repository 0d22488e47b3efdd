"""Errors for specs that cannot build: they name the knob, the value and what is allowed."""


class SpecError(ValueError):
    """A model spec that cannot be built. `key` is a dotted path inside the spec."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: allowed: {allowed}")

    def under(self, prefix: str) -> "SpecError":
        """The same error with its key placed under `prefix` (a path in a YAML file)."""
        return SpecError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.allowed)
