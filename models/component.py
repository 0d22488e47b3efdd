"""How a component declares itself: `@register(kind, name)` on a frozen dataclass of `knob`s.

This module is the bottom of models/: component files import it, and models/registry.py reads
what it collected (after importing models/catalog.py), so no component imports the registry
that imports it.

A component may also carry `TINY`: the knobs of a CPU-sized instance (tests build every
registered combination from them; see models/tiny.py).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

KINDS = ("transform", "entropy", "hyper")
COMPONENTS: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}
DISPLAY: dict[tuple[str, str], str] = {}


def knob(default, *, doc: str, min: float | None = None, choices: tuple | None = None, allowed: str = ""):
    """A dataclass field: its default, its meaning and its range, declared once, here.

    `doc` says in plain words what the knob changes (`rdc knobs` and docs/models.md print it);
    `min` and `choices` are checked by the registry when a spec is parsed (for a list knob,
    `min` bounds every item); `allowed` states in words what the component's own `check(M)`
    adds (odd kernels, how many widths, a divisor of M), so that the stated range is the whole
    range. None of it enters a spec, so variant ids do not depend on it.
    """
    if not doc.strip():
        raise ValueError("every knob says what it means (doc=...)")
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={"min": min, "choices": choices, "doc": doc, "allowed": allowed})


def register(kind: str, name: str, *, display: str) -> Callable[[type], type]:
    """Class decorator: register a component dataclass under `kind`/`name`."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}")

    def decorate(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        if name in COMPONENTS[kind]:
            raise ValueError(f"{kind} component {name!r} registered twice")
        COMPONENTS[kind][name] = cls
        DISPLAY[(kind, name)] = display
        cls.component_kind, cls.component_name = kind, name
        return cls

    return decorate
