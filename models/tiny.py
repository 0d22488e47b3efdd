"""Tiny specs of every registered component combination, from each component's `TINY` knobs.

CPU-sized widths that still exercise every code path (shifted and clamped windows, padding,
several slices with limited support, several channel groups). Tests of any room draw their
models from here, so a newly registered component is tested everywhere by declaring `TINY`:

    for transform, entropy, hyper in tiny_families(): build(tiny_spec(transform, entropy, hyper))
"""

from __future__ import annotations

import copy
import itertools

from models import registry

TINY_M = 24  # divisible by the tiny slice count (4), the tiny groups' sum and the head dim (8)


def tiny_component(kind: str, name: str, **knobs) -> dict:
    cls = registry.component_class(kind, name)
    if not hasattr(cls, "TINY"):
        raise TypeError(f"{kind} component {name!r} declares no TINY knobs (see models/component.py)")
    return {"type": name, **copy.deepcopy(cls.TINY), **knobs}


def tiny_spec(transform: str, entropy: str, hyper: str, **entropy_knobs) -> dict:
    return {
        "M": TINY_M,
        "transform": tiny_component("transform", transform),
        "entropy": tiny_component("entropy", entropy, **entropy_knobs),
        "hyper": tiny_component("hyper", hyper),
    }


def tiny_families() -> list[tuple[str, str, str]]:
    """Every (transform, entropy, hyper) combination the registry holds."""
    return list(itertools.product(*(registry.names(kind) for kind in ("transform", "entropy", "hyper"))))


def tiny_specs() -> dict[tuple[str, str, str], dict]:
    return {family: tiny_spec(*family) for family in tiny_families()}
