"""The search-space language: YAML families of component choices with per-knob grids.

    name: my_space                # becomes the sweep's MLflow experiment: letters, digits, _ . -
    description: what and why
    shared:                       # merged under every family (a family's own keys win)
      M: 320
      hyper: {type: conv, N: 192}
    families:
      - name: conv-hp             # unique label (the `group` tag of each run)
        transform: {type: conv, N: [128, 192]}        # a list is a grid axis
        entropy: hyperprior                           # shorthand for {type: hyperprior}
        M: {from: 192, to: 320, step: 64}             # inclusive integer range
        constraints: [{max: {key: params, value: 20e6}}]   # this family only
      - name: charm
        transform: {type: elic, num_res_blocks: [2, 3]}
        entropy: charm
        one_of:                   # a union of grids: knobs that only make sense together
          - {entropy: {slice_widths: [224, 128], slice_kernel: 5}, hyper: {layout: ms2020}}
          - {entropy: {slice_widths: [64, 32], slice_kernel: 3, slice_taper: true}}
    constraints:                  # declarative filters over every family
      - divisible: [M, entropy.num_slices]
      - max: {key: decode_kflops_per_px, value: 1200}
      - min: {key: transform.N, value: 64}

A knob whose value is itself a list (ELIC `channels`, SwinT `depths`) takes a list of lists as
its grid. Nothing in a space is evaluated or instantiated: values are data, component types
are looked up in the registry, and unknown keys (`_target_` included) are refused with their
path. `parse_space` turns the YAML into the dataclasses below (the language's schema: a
Family per family or `one_of` alternative, an Axis per swept knob, Constraints; Hydra
types `search_space` as Any and leaves its validation here); `expand` turns those into
de-duplicated `Variant`s. `rdc plan` and `rdc sweep` both call `expand`, so they always agree.
docs/search_space.md is the user's guide.
"""

from __future__ import annotations

import itertools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from models import registry
from models.errors import SpecError
from models.spec import DEFAULT_M, TOP_LEVEL_KEYS, parse_spec
from rdc.errors import UserError
from sweep.costs import COST_COLUMNS
from sweep.variant import Variant, canonical_json

SPACE_KEYS = ("name", "description", "shared", "families", "constraints")
FAMILY_KEYS = ("name",) + TOP_LEVEL_KEYS + ("constraints", "one_of")
CONSTRAINT_KINDS = ("divisible", "max", "min")
COST_KEYS = COST_COLUMNS  # what a budget constraint may bound (sweep.costs)
RANGE_KEYS = ("from", "to", "step")
MAX_VARIANTS = 100_000  # a grid beyond this is almost surely a typo (e.g. a huge range)
# The name becomes an MLflow experiment and a folder under runs/: keep it plain.
SPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

CostFn = Callable[[dict], dict[str, float]]


# -- the schema ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One knob's values: `path` is ("M",) or (kind, knob); `where` is its YAML key path."""

    path: tuple[str, ...]
    values: tuple
    where: str


@dataclass(frozen=True)
class Constraint:
    """`divisible: [key, by]`, `max: {key, value}` or `min: {key, value}`.

    `key` is a knob path (`M`, `transform.N`) or a cost (COST_KEYS); `bound` is a number, or for
    `divisible` a number or another knob path. A knob absent from a family (another component
    type) leaves that family alone; a list-valued knob must hold for every element.
    """

    kind: str
    key: str
    bound: Any
    where: str

    @property
    def is_cost(self) -> bool:
        return self.key in COST_KEYS

    def allows(self, values: dict) -> bool:
        """`values`: a full spec (every default spelled out) or, for a cost constraint, its costs."""
        value = _lookup(values, self.key)
        if value is _MISSING:
            return True
        if self.kind == "divisible":
            divisor = _lookup(values, self.bound) if isinstance(self.bound, str) else self.bound
            if divisor is _MISSING:
                return True
            return bool(divisor) and all(item % divisor == 0 for item in _items(value))
        if self.kind == "max":
            return all(item <= self.bound for item in _items(value))
        return all(item >= self.bound for item in _items(value))

    def describe(self) -> dict:
        if self.kind == "divisible":
            return {"divisible": [self.key, self.bound]}
        return {self.kind: {"key": self.key, "value": self.bound}}


@dataclass(frozen=True)
class Family:
    """One YAML family: a fixed component type per kind and a grid axis per knob."""

    name: str
    where: str
    types: tuple[tuple[str, str], ...]  # (kind, type) for every kind
    axes: tuple[Axis, ...]
    constraints: tuple[Constraint, ...]

    @property
    def size(self) -> int:
        return math.prod(len(axis.values) for axis in self.axes)

    def template(self) -> dict:
        """A spec with this family's types and every knob at its default: the keys constraints may name."""
        spec: dict = {"M": DEFAULT_M}
        for kind, ctype in self.types:
            spec[kind] = {"type": ctype}
            for knob_name, knob_field in registry.knobs(kind, ctype).items():
                spec[kind][knob_name] = _plain(knob_field.default)
        return spec

    def points(self) -> Iterator[dict]:
        """Every grid point as a full spec (defaults spelled out, not yet checked for compatibility)."""
        template = self.template()
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            point = {key: dict(value) if isinstance(value, dict) else value for key, value in template.items()}
            for axis, value in zip(self.axes, combo):
                if len(axis.path) == 1:
                    point[axis.path[0]] = value
                else:
                    point[axis.path[0]][axis.path[1]] = _plain(value)
            yield point


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    families: tuple[Family, ...]
    constraints: tuple[Constraint, ...]
    root: str = "search_space"

    @property
    def size(self) -> int:
        """Grid points before constraints and de-duplication."""
        return sum(family.size for family in self.families)


@dataclass
class Expansion:
    """The variants of a space, and what happened to the other grid points."""

    space: SearchSpace
    variants: list[Variant]
    points: int  # grid points
    removed_by_constraints: int
    duplicates: int  # points whose canonical spec an earlier point already had
    removed_by_budget: int
    costs: dict[str, dict[str, float]] = field(default_factory=dict)  # variant_id -> costs, if computed


# -- expansion ------------------------------------------------------------------------------
def expand(space: Any, *, costs: CostFn | None = None, root: str = "search_space") -> list[Variant]:
    """Every distinct variant of `space`, in a stable order; UserError on any malformed key."""
    return expand_space(space, costs=costs, root=root).variants


def expand_space(space: Any, *, costs: CostFn | None = None, root: str = "search_space") -> Expansion:
    parsed = space if isinstance(space, SearchSpace) else parse_space(space, root)
    by_id: dict[str, tuple[Variant, Family]] = {}
    removed = duplicates = 0
    for name, parts in _by_name(parsed.families).items():
        kept = 0
        for family in parts:
            rules = [rule for rule in parsed.constraints + family.constraints if not rule.is_cost]
            for point in family.points():
                if not all(rule.allows(point) for rule in rules):
                    removed += 1
                    continue
                kept += 1
                variant = _variant(point, family)
                if variant.variant_id in by_id:
                    duplicates += 1
                else:
                    by_id[variant.variant_id] = (variant, family)
        if kept == 0:
            rules = [rule for rule in parsed.constraints + parts[0].constraints if not rule.is_cost]
            raise _no_point_left(parts[0], rules, [point for family in parts for point in family.points()])

    variants = [variant for variant, _ in by_id.values()]
    computed: dict[str, dict[str, float]] = {}
    budgets = {family.name: [rule for rule in parsed.constraints + family.constraints if rule.is_cost]
               for family in parsed.families}
    over_budget = 0
    if any(budgets.values()):
        cost_of = costs or _default_costs
        prepare = getattr(cost_of, "prepare", None)
        if prepare is not None:  # a CostModel costs the distinct parts of all variants at once
            prepare([variant.spec for variant in variants])
        for variant in variants:
            computed[variant.variant_id] = cost_of(variant.spec)
        kept_variants = [v for v in variants if all(rule.allows(computed[v.variant_id]) for rule in budgets[v.group])]
        over_budget = len(variants) - len(kept_variants)
        for name, parts in _by_name(parsed.families).items():
            mine = [computed[v.variant_id] for v in variants if v.group == name]
            if mine and not any(v.group == name for v in kept_variants):
                raise _no_point_left(parts[0], budgets[name], mine)
        variants = kept_variants
    return Expansion(parsed, variants, parsed.size, removed, duplicates, over_budget, computed)


def _by_name(families: tuple[Family, ...]) -> dict[str, list[Family]]:
    """The Families of each YAML family (one per `one_of` alternative), in order."""
    out: dict[str, list[Family]] = {}
    for family in families:
        out.setdefault(family.name, []).append(family)
    return out


def _variant(point: dict, family: Family) -> Variant:
    try:
        spec = parse_spec(point)
    except SpecError as err:
        raise UserError(f"{family.where}.{err.key}", err.value, allowed=err.allowed,
                        reason=f"in variant {_describe(point, family)}; a constraint can skip such points") from None
    return Variant.from_canonical(spec.to_dict(), spec.family, family.name)


def _no_point_left(family: Family, rules: list[Constraint], points: list[dict]) -> UserError:
    """Name the constraint that leaves a family empty, with the range its key takes there."""
    for rule in rules:
        if not any(rule.allows(point) for point in points):
            seen = sorted({item for p in points if (v := _lookup(p, rule.key)) is not _MISSING for item in _items(v)})
            span = f"{rule.key} takes {_span(seen)} in this family" if seen else f"{rule.key} is absent"
            return UserError(rule.where, rule.describe(), reason=f"removes every variant of family {family.name!r}",
                             allowed=f"a constraint some variant meets ({span})")
    return UserError(f"{family.where.split('.one_of[')[0]}.name", family.name,
                     reason="the constraints together remove every variant",
                     allowed="constraints that leave at least one variant: " +
                     "; ".join(canonical_json(rule.describe()) for rule in rules))


def _span(values: list) -> str:
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _default_costs(spec: dict) -> dict[str, float]:
    from sweep.costs import reference_costs  # lazily: costing imports torch and the models

    return reference_costs(spec)


# -- parsing: YAML -> schema -----------------------------------------------------------------
def parse_space(raw: Any, root: str = "search_space") -> SearchSpace:
    space = _mapping(raw, root, "a mapping with keys " + ", ".join(SPACE_KEYS))
    _check_keys(space, SPACE_KEYS, root)
    name = space.get("name")
    if not isinstance(name, str) or not SPACE_NAME.fullmatch(name):
        raise UserError(f"{root}.name", name, allowed="1-100 letters, digits, '_', '.', '-' (it names the MLflow "
                        "experiment and a folder)")
    description = space.get("description") or ""
    if not isinstance(description, str):
        raise UserError(f"{root}.description", description, allowed="a string")
    shared = _mapping(space.get("shared") or {}, f"{root}.shared", "a mapping with keys " + ", ".join(TOP_LEVEL_KEYS))
    _check_keys(shared, TOP_LEVEL_KEYS, f"{root}.shared")
    raw_families = space.get("families")
    if not isinstance(raw_families, list) or not raw_families:
        raise UserError(f"{root}.families", raw_families, allowed="a non-empty list of families")

    families: list[Family] = []
    for index, raw_family in enumerate(raw_families):
        where = f"{root}.families[{index}]"
        parts = _parse_family(raw_family, (shared, f"{root}.shared"), where)
        if any(other.name == parts[0].name for other in families):
            raise UserError(f"{where}.name", parts[0].name, reason="duplicate family name",
                            allowed="a name not used by another family")
        families.extend(parts)
    total = sum(f.size for f in families)
    if total > MAX_VARIANTS:
        raise UserError(f"{root}.families", f"{total} grid points", allowed=f"at most {MAX_VARIANTS} grid points")

    constraints = _parse_constraints(space.get("constraints"), f"{root}.constraints")
    for rule in constraints:
        _check_constraint_applies(rule, families)
    for family in families:
        for rule in family.constraints:
            _check_constraint_applies(rule, [family])
    return SearchSpace(name, description, tuple(families), tuple(constraints), root)


def _parse_family(raw: Any, shared: tuple[dict, str], where: str) -> list[Family]:
    """One YAML family: a Family per `one_of` alternative (or just one), all under its name."""
    family = _mapping(raw, where, "a mapping with keys " + ", ".join(FAMILY_KEYS))
    _check_keys(family, FAMILY_KEYS, where)
    name = family.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise UserError(f"{where}.name", name, allowed="a non-empty one-line string")
    constraints = tuple(_parse_constraints(family.get("constraints"), f"{where}.constraints"))
    base = [shared, ({k: v for k, v in family.items() if k in TOP_LEVEL_KEYS}, where)]
    if "one_of" not in family:
        return [_parse_grid(name, where, base, constraints)]
    alternatives = family["one_of"]
    if not isinstance(alternatives, list) or not alternatives:
        raise UserError(f"{where}.one_of", alternatives, allowed="a non-empty list of partial families "
                        "({M: ..., transform: {...}, ...})")
    parts = []
    for index, alternative in enumerate(alternatives):
        at = f"{where}.one_of[{index}]"
        alternative = _mapping(alternative, at, "a mapping with keys " + ", ".join(TOP_LEVEL_KEYS))
        _check_keys(alternative, TOP_LEVEL_KEYS, at)
        parts.append(_parse_grid(name, at, base + [(alternative, at)], constraints))
    return parts


def _parse_grid(name: str, where: str, layers: list[tuple[dict, str]], constraints: tuple) -> Family:
    """A Family from layered mappings (shared, family, alternative), later layers winning."""
    axes: list[Axis] = []
    m_layers = [(mapping["M"], at) for mapping, at in layers if "M" in mapping]
    if m_layers:
        m_raw, at = m_layers[-1]
        axes.append(Axis(("M",), tuple(_grid(m_raw, f"{at}.M", _positive_int)), f"{at}.M"))
    types = []
    for kind in registry.KINDS:
        component_layers = [(_component_mapping(mapping[kind], f"{at}.{kind}", kind), f"{at}.{kind}")
                            for mapping, at in layers if mapping.get(kind) is not None]
        ctype, knob_axes = _parse_component(kind, component_layers, where)
        types.append((kind, ctype))
        axes.extend(knob_axes)
    for axis in axes:
        if len(axis.values) > MAX_VARIANTS:
            raise UserError(axis.where, f"{len(axis.values)} values", allowed=f"at most {MAX_VARIANTS} values")
    result = Family(name, where, tuple(types), tuple(axes), constraints)
    if result.size > MAX_VARIANTS:
        raise UserError(where, name, reason=f"its grid has {result.size} points", allowed=f"at most {MAX_VARIANTS}")
    return result


def _parse_component(kind: str, given: list[tuple[dict, str]], where: str):
    """(type, axes) of one kind from its layered mappings: knobs merge, another type replaces."""
    allowed_types = ", ".join(registry.names(kind))
    if not given:
        raise UserError(f"{where}.{kind}", None, reason="missing", allowed=f"{{type: <{allowed_types}>, knob: value...}}")
    layers: list[tuple[dict, str]] = []
    for mapping, at in given:
        if layers and "type" in mapping and mapping["type"] != _current_type(layers):
            layers = []  # another component type replaces the lower layers and their knobs
        layers.append((mapping, at))
    ctype, type_where = None, None
    for mapping, at in layers:
        if "type" in mapping:
            ctype, type_where = mapping["type"], at
    if ctype is None:
        raise UserError(f"{where}.{kind}.type", None, reason="missing", allowed=allowed_types)
    if not isinstance(ctype, str) or ctype not in registry.names(kind):
        raise UserError(f"{type_where}.type", ctype, allowed=allowed_types)

    fields = registry.knobs(kind, ctype)
    cls = registry.component_class(kind, ctype)
    chosen: dict[str, tuple[Any, str]] = {}
    for mapping, at in layers:
        for knob_name, value in mapping.items():
            if knob_name == "type":
                continue
            if knob_name not in fields:
                reason = "spaces cannot name Python objects" if knob_name == "_target_" else "unknown knob"
                raise UserError(f"{at}.{knob_name}", value, reason=reason,
                                allowed=f"knobs of {kind} {ctype!r}: {', '.join(fields) or 'none'}")
            chosen[knob_name] = (value, f"{at}.{knob_name}")
    axes = []
    for knob_name in fields:  # field order, not YAML order: the same space enumerates the same way
        if knob_name in chosen:
            value, at = chosen[knob_name]
            check = _knob_checker(cls, fields[knob_name])
            axes.append(Axis((kind, knob_name), tuple(_grid(value, at, check, is_list=_is_list_knob(cls, knob_name))), at))
    return ctype, axes


def _current_type(layers: list[tuple[dict, str]]):
    types = [mapping["type"] for mapping, _ in layers if "type" in mapping]
    return types[-1] if types else None


def _component_mapping(raw: Any, where: str, kind: str) -> dict:
    if isinstance(raw, str):
        return {"type": raw}  # `entropy: hyperprior`
    return _mapping(raw, where, f"a component type ({', '.join(registry.names(kind))}) or a mapping with 'type'")


def _knob_checker(cls: type, knob_field) -> Callable[[Any, str], Any]:
    def check(value: Any, key: str) -> Any:
        try:
            return registry.coerce_knob(cls, knob_field, value, key)
        except SpecError as err:
            raise UserError(key, value, allowed=err.allowed) from None

    return check


def _is_list_knob(cls: type, knob_name: str) -> bool:
    return typing.get_origin(typing.get_type_hints(cls)[knob_name]) is tuple


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(key, value, allowed="a positive integer")
    return value


# -- grids -----------------------------------------------------------------------------------
def _grid(raw: Any, key: str, check: Callable[[Any, str], Any], *, is_list: bool = False) -> list:
    """The checked values one knob takes: a single value, a list, {values: [...]} or {from, to, step}."""
    if isinstance(raw, dict):
        if "values" in raw:
            _check_keys(raw, ("values",), key)
            values = raw["values"]
            if not isinstance(values, list):
                raise UserError(f"{key}.values", values, allowed="a list")
            if is_list and not all(isinstance(v, list) for v in values):
                raise UserError(f"{key}.values", values, allowed="a list of lists (each value of this knob is a list)")
            return _checked(values, f"{key}.values", check)
        if set(raw) & set(RANGE_KEYS):
            if is_list:
                raise UserError(key, raw, allowed="a list of integers, or a list of such lists (no ranges: each "
                                "value of this knob is a list)")
            return _checked(_range(raw, key), key, check)
        raise UserError(key, raw, allowed="a value, a list of values, {values: [...]} or {from: a, to: b, step: s}")
    if isinstance(raw, list):
        if is_list:
            if raw and all(isinstance(v, list) for v in raw):
                return _checked(raw, key, check)
            if any(isinstance(v, (list, dict)) for v in raw):
                raise UserError(key, raw, allowed="a list of integers (one value) or a list of such lists (a grid)")
            return [check(raw, key)]
        if any(isinstance(v, (list, dict)) for v in raw):
            raise UserError(key, raw, allowed="a list of plain values (this knob's values are not lists)")
        return _checked(raw, key, check)
    return [check(raw, key)]


def _checked(values: list, key: str, check) -> list:
    if not values:
        raise UserError(key, values, reason="empty grid", allowed="at least one value")
    return [check(value, key) for value in values]


def _range(raw: dict, key: str) -> list[int]:
    _check_keys(raw, RANGE_KEYS, key)
    for part in ("from", "to"):
        if part not in raw:
            raise UserError(f"{key}.{part}", None, reason="missing", allowed="an integer")
    start, stop, step = raw["from"], raw["to"], raw.get("step", 1)
    for part, number in (("from", start), ("to", stop), ("step", step)):
        if not isinstance(number, int) or isinstance(number, bool):
            raise UserError(f"{key}.{part}", number, allowed="an integer")
    if step <= 0:
        raise UserError(f"{key}.step", step, allowed="a positive integer")
    if stop < start:
        raise UserError(f"{key}.to", stop, allowed=f"an integer >= from ({start})")
    if (stop - start) // step + 1 > MAX_VARIANTS:
        raise UserError(key, raw, reason="range too long", allowed=f"at most {MAX_VARIANTS} values")
    return list(range(start, stop + 1, step))


# -- constraints -----------------------------------------------------------------------------
def _parse_constraints(raw: Any, where: str) -> list[Constraint]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UserError(where, raw, allowed="a list of constraints")
    shapes = "{divisible: [key, key or integer]}, {max: {key: k, value: v}}, {min: {key: k, value: v}}"
    out = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise UserError(at, item, allowed="one of " + shapes)
        (kind, body), = item.items()
        if kind not in CONSTRAINT_KINDS:
            reason = "spaces cannot name Python objects" if kind == "_target_" else "unknown constraint"
            raise UserError(f"{at}.{kind}", body, reason=reason, allowed=", ".join(CONSTRAINT_KINDS))
        if kind == "divisible":
            ok = isinstance(body, list) and len(body) == 2 and isinstance(body[0], str) and (
                isinstance(body[1], str) or (isinstance(body[1], int) and not isinstance(body[1], bool) and body[1] > 0))
            if not ok:
                raise UserError(f"{at}.divisible", body, allowed="[knob, knob or positive integer], e.g. [M, entropy.num_slices]")
            out.append(Constraint(kind, body[0], body[1], f"{at}.divisible"))
            continue
        if not isinstance(body, dict):
            raise UserError(f"{at}.{kind}", body, allowed="{key: <knob or cost>, value: <number>}")
        _check_keys(body, ("key", "value"), f"{at}.{kind}")
        if not isinstance(body.get("key"), str):
            raise UserError(f"{at}.{kind}.key", body.get("key"), allowed="a knob path or " + ", ".join(COST_KEYS))
        bound = body.get("value")
        if isinstance(bound, str):
            try:
                bound = float(bound)  # YAML 1.1 reads 40e6 (no dot) as a string
            except ValueError:
                pass
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
            raise UserError(f"{at}.{kind}.value", body.get("value"), allowed="a finite number")
        out.append(Constraint(kind, body["key"], bound, f"{at}.{kind}"))
    return out


def _check_constraint_applies(rule: Constraint, families: list[Family]) -> None:
    """A key that no family has is a typo, not a filter that happens to pass everything."""
    if rule.is_cost:
        if rule.kind == "divisible":
            raise UserError(rule.where, rule.describe(), reason="costs cannot be divisible",
                            allowed="max or min for " + ", ".join(COST_KEYS))
        return
    templates = [family.template() for family in families]
    for key, label in ((rule.key, "key"), (rule.bound, "divisor")):
        if not isinstance(key, str):
            continue
        found = [_lookup(t, key) for t in templates if _lookup(t, key) is not _MISSING]
        if not found:
            raise UserError(rule.where, rule.describe(), reason=f"no family has the {label} {key!r}",
                            allowed="a knob path such as M, transform.N, entropy.num_slices, or " + ", ".join(COST_KEYS))
        if any(not isinstance(v, (int, float, list)) or isinstance(v, bool) for v in found):
            raise UserError(rule.where, rule.describe(), reason=f"{key!r} is not a number", allowed="numeric knobs")
        if label == "divisor" and any(isinstance(v, list) for v in found):
            raise UserError(rule.where, rule.describe(), reason=f"{key!r} is a list", allowed="a single-number divisor")


# -- helpers ---------------------------------------------------------------------------------
_MISSING = object()


def _lookup(values: dict, path: str):
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _items(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _mapping(value: Any, key: str, allowed: str = "a mapping") -> dict:
    if not isinstance(value, dict):
        raise UserError(key, value, allowed=allowed)
    return value


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            reason = "spaces cannot name Python objects" if key == "_target_" else "unknown key"
            raise UserError(f"{where}.{key}", mapping[key], reason=reason, allowed=", ".join(allowed))


def _describe(point: dict, family: Family) -> str:
    """The knobs this family sweeps, at this point: `M=192, transform.N=128`."""
    return ", ".join(f"{'.'.join(axis.path)}={_lookup(point, '.'.join(axis.path))}" for axis in family.axes)
