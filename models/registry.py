"""The component registry: short names -> config dataclasses that also build the modules.

A component is a frozen dataclass whose fields are its knobs (with defaults that reproduce the
published model) and whose `build(...)` returns torch modules. Registering it makes it usable
from YAML with no other change:

    @register("transform", "conv", display="Conv")      # from models.component
    @dataclass(frozen=True)
    class ConvTransform:
        N: int = knob(192, min=1, doc="channels of the hidden layers")  # rdc knobs prints doc
        def build(self, M): ...

Kinds: "transform" (g_a and g_s), "entropy" (the latent codec around y and z) and "hyper"
(h_a and h_s). Components import `register`/`knob` from models/component.py, not from here:
this module imports the catalog of components, so the imports point one way.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from models import component
from models.errors import SpecError

# Re-exported: callers spell registry.KINDS; components themselves import models.component.
KINDS = component.KINDS
_COMPONENTS = component.COMPONENTS
_DISPLAY = component.DISPLAY


def names(kind: str) -> list[str]:
    _load_catalog()
    return sorted(_COMPONENTS[kind])


def component_class(kind: str, name: str) -> type:
    _load_catalog()
    try:
        return _COMPONENTS[kind][name]
    except KeyError:
        raise SpecError(f"{kind}.type", name, ", ".join(names(kind))) from None


def display_name(kind: str, name: str) -> str:
    _load_catalog()
    return _DISPLAY[(kind, name)]


def knobs(kind: str, name: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(component_class(kind, name))}


def knob_type(kind: str, name: str, knob: str):
    """The type a knob's values have (int, float, bool, str or tuple[int, ...])."""
    return _hints(component_class(kind, name))[knob]


def parse_component(kind: str, raw: Any):
    """A component instance from a plain mapping {"type": name, knob: value, ...}."""
    if not isinstance(raw, dict):
        raise SpecError(kind, raw, f"a mapping with 'type' (one of {', '.join(names(kind))})")
    if "type" not in raw:
        raise SpecError(f"{kind}.type", None, ", ".join(names(kind)))
    cls = component_class(kind, raw["type"])
    fields = knobs(kind, raw["type"])
    values = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key not in fields:
            raise SpecError(f"{kind}.{key}", value, f"knobs of {kind} {raw['type']!r}: {', '.join(fields) or 'none'}")
        values[key] = coerce_knob(cls, fields[key], value, f"{kind}.{key}")
    try:
        return cls(**values)
    except SpecError as err:
        raise err.under(kind) from None


def coerce_knob(cls: type, field: dataclasses.Field, value: Any, key: str):
    """Check `value` against the knob's type and bounds; return it in canonical form."""
    hint = _hints(cls)[field.name]
    meta = field.metadata
    checked = _coerce_type(hint, value, key)
    items = checked if isinstance(checked, tuple) else (checked,)
    if meta.get("min") is not None:
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and item < meta["min"]:
                raise SpecError(key, value, f"numbers >= {meta['min']}")
    if meta.get("choices") is not None and checked not in meta["choices"]:
        raise SpecError(key, value, ", ".join(map(str, meta["choices"])))
    return checked


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce_type(hint, value, key):
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise SpecError(key, value, "true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SpecError(key, value, "an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise SpecError(key, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SpecError(key, value, "a string")
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
        raise SpecError(key, value, "a non-empty list of integers")
    raise TypeError(f"unsupported knob type {hint!r}")


def to_plain(component) -> dict:
    """The canonical mapping of a component: type first, every knob spelled out."""
    out = {"type": component.component_name}
    for f in dataclasses.fields(component):
        value = getattr(component, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


_CATALOG_LOADED = False


def _load_catalog() -> None:
    # Importing the catalog runs every component's @register; done on first use so that
    # `import models.registry` stays cheap (no torch).
    global _CATALOG_LOADED
    if not _CATALOG_LOADED:
        _CATALOG_LOADED = True
        import models.catalog  # noqa: F401
