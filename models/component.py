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


def knob(default, *, min: float | None = None, choices: tuple | None = None, doc: str = ""):
    """A dataclass field with the bounds the registry checks when a spec is parsed."""
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={"min": min, "choices": choices, "doc": doc})


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
