"""The search-space language: YAML families of component choices with per-knob grids.

    name: my_space
    shared:                       # merged under every family (a family's own keys win)
      M: 320
      hyper: {type: conv, N: 192}
    families:
      - name: conv-hp             # unique label
        transform: {type: conv, N: [128, 192]}         # a list of values is a grid axis
        entropy: {type: hyperprior}
        M: {from: 192, to: 320, step: 64}             # inclusive range
    constraints:                  # declarative filters over the grid
      - divisible: [M, entropy.num_slices]
      - max: {key: decode_kflops_per_px, value: 1200}
      - min: {key: transform.N, value: 64}

A knob whose value is itself a list (ELIC `channels`, SwinT `depths`) takes a list of lists as
its grid. Nothing in a space is evaluated or instantiated: values are data, component types
are looked up in the registry, and unknown keys are refused with their path.
"""

from __future__ import annotations

import copy
import itertools
import typing
from typing import Any, Callable, Iterable

from models import registry
from models.errors import SpecError
from models.spec import DEFAULT_M, TOP_LEVEL_KEYS, parse_spec
from rdc import names
from rdc.errors import UserError
from sweep.variant import Variant

SPACE_KEYS = ("name", "description", "shared", "families", "constraints")
FAMILY_KEYS = ("name",) + TOP_LEVEL_KEYS
CONSTRAINT_KINDS = ("divisible", "max", "min")
COST_KEYS = (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX)
RANGE_KEYS = {"from", "to", "step"}
MAX_VARIANTS = 100_000  # a grid beyond this is almost surely a typo (e.g. a huge range)

CostFn = Callable[[dict], dict[str, float]]


def expand(space: Any, *, costs: CostFn | None = None, root: str = "search_space") -> list[Variant]:
    """Every distinct variant of `space`, in a stable order; UserError on any malformed key."""
    space = _mapping(space, root)
    _check_keys(space, SPACE_KEYS, root)
    if not isinstance(space.get("name"), str) or not space["name"]:
        raise UserError(f"{root}.name", space.get("name"), allowed="a non-empty string")
    shared = _mapping(space.get("shared") or {}, f"{root}.shared")
    _check_keys(shared, TOP_LEVEL_KEYS, f"{root}.shared")
    families = space.get("families")
    if not isinstance(families, list) or not families:
        raise UserError(f"{root}.families", families, allowed="a non-empty list of families")
    constraints = _parse_constraints(space.get("constraints") or [], f"{root}.constraints")

    seen_names: set[str] = set()
    variants: dict[str, Variant] = {}
    raw_points: list[tuple[str, dict, str]] = []
    for index, family in enumerate(families):
        where = f"{root}.families[{index}]"
        family = _mapping(family, where)
        _check_keys(family, FAMILY_KEYS, where)
        group = family.get("name")
        if not isinstance(group, str) or not group:
            raise UserError(f"{where}.name", group, allowed="a non-empty string")
        if group in seen_names:
            raise UserError(f"{where}.name", group, reason="duplicate family name", allowed="unique names")
        seen_names.add(group)
        merged = _merge(shared, family)
        for point in _grid(merged, where):
            raw_points.append((group, point, where))
        if len(raw_points) > MAX_VARIANTS:
            raise UserError(f"{where}", group, reason=f"the grid has more than {MAX_VARIANTS} points",
                            allowed="smaller grids")

    _check_constraint_keys(constraints, [p for _, p, _ in raw_points])
    for group, point, where in raw_points:
        if not all(c.allows_spec(point) for c in constraints):
            continue
        try:
            spec = parse_spec(point)
        except SpecError as err:
            raise UserError(f"{where}.{err.key}", err.value, allowed=err.allowed,
                            reason=f"in variant {_describe(point)}") from None
        canonical = spec.to_dict()
        variant = Variant.from_canonical(canonical, spec.family, group)
        variants.setdefault(variant.variant_id, variant)

    result = list(variants.values())
    cost_constraints = [c for c in constraints if c.key in COST_KEYS]
    if cost_constraints:
        cost_fn = costs or _default_costs
        result = [v for v in result if all(c.allows_cost(cost_fn(v.spec)) for c in cost_constraints)]
    if not result:
        raise UserError(f"{root}.constraints", None, reason="no variant satisfies every constraint",
                        allowed="constraints that leave at least one variant")
    return result


# -- grids -------------------------------------------------------------------------------
def _grid(family: dict, where: str) -> Iterable[dict]:
    """Cartesian product of every grid axis in a merged family."""
    axes: list[tuple[tuple[str, ...], list]] = []
    base: dict = {}
    axes.append((("M",), _axis(family.get("M", DEFAULT_M), int, f"{where}.M")))
    for kind in registry.KINDS:
        if kind not in family:
            raise UserError(f"{where}.{kind}.type", None, allowed=", ".join(registry.names(kind)))
        component = _mapping(family[kind], f"{where}.{kind}")
        ctype = component.get("type")
        if not isinstance(ctype, str) or ctype not in registry.names(kind):
            raise UserError(f"{where}.{kind}.type", ctype, allowed=", ".join(registry.names(kind)))
        cls = registry.component_class(kind, ctype)
        hints = typing.get_type_hints(cls)
        fields = registry.knobs(kind, ctype)
        base[kind] = {"type": ctype}
        for knob_name, value in component.items():
            if knob_name == "type":
                continue
            if knob_name not in fields:
                raise UserError(f"{where}.{kind}.{knob_name}", value,
                                allowed=f"knobs of {kind} {ctype!r}: {', '.join(fields) or 'none'}")
            axes.append(((kind, knob_name), _axis(value, hints[knob_name], f"{where}.{kind}.{knob_name}")))
    paths = [path for path, _ in axes]
    for combo in itertools.product(*(values for _, values in axes)):
        point = copy.deepcopy(base)
        for path, value in zip(paths, combo):
            target = point
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        yield point


def _axis(value: Any, hint: Any, key: str) -> list:
    """The values one knob takes: a grid (list or range) or a single value."""
    is_tuple_knob = typing.get_origin(hint) is tuple
    if isinstance(value, dict):
        return _range_or_values(value, key, is_tuple_knob)
    if isinstance(value, list):
        if not value:
            raise UserError(key, value, reason="empty grid", allowed="at least one value")
        if is_tuple_knob:
            if all(isinstance(v, list) for v in value):
                return value
            if any(isinstance(v, list) for v in value):
                raise UserError(key, value, allowed="a list of integers (one value) or a list of lists (a grid)")
            return [value]
        if any(isinstance(v, (list, dict)) for v in value):
            raise UserError(key, value, allowed="a list of plain values")
        return value
    return [value]


def _range_or_values(value: dict, key: str, is_tuple_knob: bool) -> list:
    if set(value) == {"values"}:
        values = value["values"]
        if not isinstance(values, list) or not values:
            raise UserError(f"{key}.values", values, reason="empty grid", allowed="a non-empty list")
        if is_tuple_knob and not all(isinstance(v, list) for v in values):
            raise UserError(f"{key}.values", values, allowed="a list of lists (this knob's values are lists)")
        return values
    if set(value) - {"step"} == {"from", "to"}:
        start, stop, step = value["from"], value["to"], value.get("step", 1)
        for part, number in (("from", start), ("to", stop), ("step", step)):
            if not isinstance(number, int) or isinstance(number, bool):
                raise UserError(f"{key}.{part}", number, allowed="an integer")
        if step <= 0:
            raise UserError(f"{key}.step", step, allowed="a positive integer")
        if stop < start:
            raise UserError(f"{key}.to", stop, allowed=f"an integer >= from ({start})")
        if (stop - start) // step + 1 > MAX_VARIANTS:
            raise UserError(key, value, reason="range too long", allowed=f"at most {MAX_VARIANTS} values")
        return list(range(start, stop + 1, step))
    raise UserError(key, value, allowed="a value, a list of values, {values: [...]} or {from: a, to: b, step: s}")


# -- constraints -------------------------------------------------------------------------
class Constraint:
    def __init__(self, kind: str, key: str, other: str | None, bound: float | None, where: str):
        self.kind, self.key, self.other, self.bound, self.where = kind, key, other, bound, where

    def allows_spec(self, point: dict) -> bool:
        if self.key in COST_KEYS:
            return True
        value = _lookup(point, self.key)
        if value is _MISSING:
            return True  # the knob does not exist in this family: the constraint does not apply
        if self.kind == "divisible":
            divisor = _lookup(point, self.other) if isinstance(self.other, str) else self.other
            if divisor is _MISSING:
                return True
            return _number(value) % _number(divisor) == 0 if _number(divisor) else False
        return self._within(value)

    def allows_cost(self, cost: dict) -> bool:
        return self._within(cost[self.key])

    def _within(self, value) -> bool:
        values = value if isinstance(value, (list, tuple)) else [value]
        if self.kind == "max":
            return all(v <= self.bound for v in values)
        return all(v >= self.bound for v in values)


_MISSING = object()


def _lookup(point: dict, path: str):
    node: Any = point
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _number(value):
    if isinstance(value, (list, tuple)):
        raise TypeError
    return value


def _parse_constraints(raw: Any, where: str) -> list[Constraint]:
    if not isinstance(raw, list):
        raise UserError(where, raw, allowed="a list of constraints")
    out = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise UserError(at, item, allowed="one of " + ", ".join(f"{{{k}: ...}}" for k in CONSTRAINT_KINDS))
        (kind, body), = item.items()
        if kind not in CONSTRAINT_KINDS:
            raise UserError(f"{at}.{kind}", body, allowed=", ".join(CONSTRAINT_KINDS))
        if kind == "divisible":
            if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], str)
                    and (isinstance(body[1], str) or (isinstance(body[1], int) and body[1] > 0))):
                raise UserError(f"{at}.divisible", body, allowed="[knob, knob or positive integer], e.g. [M, entropy.num_slices]")
            out.append(Constraint(kind, body[0], body[1], None, at))
            continue
        if not isinstance(body, dict) or set(body) != {"key", "value"}:
            raise UserError(f"{at}.{kind}", body, allowed="{key: <knob or cost>, value: <number>}")
        bound = body["value"]
        if isinstance(bound, str):
            try:
                bound = float(bound)  # YAML reads 40e6 as a string
            except ValueError:
                pass
        if not isinstance(bound, (int, float)) or isinstance(bound, bool):
            raise UserError(f"{at}.{kind}.value", body["value"], allowed="a number")
        if not isinstance(body["key"], str):
            raise UserError(f"{at}.{kind}.key", body["key"], allowed="a knob path or " + ", ".join(COST_KEYS))
        out.append(Constraint(kind, body["key"], None, bound, at))
    return out


def _check_constraint_keys(constraints: list[Constraint], points: list[dict]) -> None:
    for c in constraints:
        for key, label in ((c.key, "key"), (c.other, "divisor")):
            if not isinstance(key, str) or key in COST_KEYS:
                continue
            if not any(_lookup(p, key) is not _MISSING for p in points):
                raise UserError(f"{c.where}.{c.kind}", key, reason=f"no variant has this {label}",
                                allowed="a knob path such as M, transform.N, entropy.num_slices, or " + ", ".join(COST_KEYS))


def _default_costs(spec: dict) -> dict[str, float]:
    from sweep.plan import variant_costs

    return variant_costs(spec)


# -- helpers -----------------------------------------------------------------------------
def _mapping(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(key, value, allowed="a mapping")
    return value


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            if key == "_target_":
                raise UserError(f"{where}._target_", mapping[key], reason="spaces cannot name Python objects",
                                allowed=", ".join(allowed))
            raise UserError(f"{where}.{key}", mapping[key], allowed=", ".join(allowed))


def _merge(shared: dict, family: dict) -> dict:
    """A family's keys over the shared ones; a component of another type replaces the shared one."""
    merged = copy.deepcopy({k: v for k, v in shared.items()})
    for key, value in family.items():
        if key == "name":
            continue
        if key in registry.KINDS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            if "type" in value and value["type"] != merged[key].get("type"):
                merged[key] = copy.deepcopy(value)
            else:
                merged[key] = {**merged[key], **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _describe(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in _flatten(point).items())


def _flatten(node: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out
