"""Variant: one point of a search space, a plain hashable spec with a stable id.

A Variant is what travels between rooms (space -> plan -> search -> launch -> trial -> MLflow):
frozen, hashable and picklable, with its spec parsed once. Two words name its two groupings,
as the MLflow tags do: `family` is the study's label of the architecture (models.ModelSpec.family,
e.g. "ELIC/CHARM:SwinT", tag `family`); `group` is the name of the YAML family of the search space
that produced it (search_space.families[].name, tag `group`).

The id is a hash of the canonical spec: `models.parse_spec(...).to_dict()` (every knob spelled
out, tuples as lists, numbers in their knob's type), serialised as compact JSON with sorted keys.
So it does not depend on key order, YAML formatting, or whether defaults were written out; it
does change when a component gains a knob, because the architecture's description changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

ID_LENGTH = 16  # hex digits: 64 bits; P(any collision) < 1e-9 below 190,000 variants
KIND_ABBREVIATIONS = {"transform": "t", "entropy": "e", "hyper": "h"}


def canonical_json(value) -> str:
    """A spec (or any JSON value) as compact JSON with sorted keys: equal values, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def variant_id(canonical_spec: dict) -> str:
    return hashlib.sha256(canonical_json(canonical_spec).encode()).hexdigest()[:ID_LENGTH]


def flatten_spec(spec: dict, prefix: str = "") -> dict:
    """`{"transform": {"N": 128}}` -> `{"transform.N": 128}` (lists stay lists)."""
    out = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_spec(value, path + "."))
        else:
            out[path] = value
    return out


@dataclass(frozen=True, order=True)
class Variant:
    variant_id: str
    family: str  # the study's label, e.g. "ELIC/CHARM:SwinT" (tag `family`)
    group: str  # the name of the YAML family that produced it (tag `group`)
    spec_json: str  # canonical spec

    @cached_property
    def spec(self) -> dict:
        """The canonical spec, parsed once per Variant (read it, do not mutate it)."""
        return json.loads(self.spec_json)

    @classmethod
    def from_canonical(cls, canonical_spec: dict, family: str, group: str) -> "Variant":
        return cls(variant_id(canonical_spec), family, group, canonical_json(canonical_spec))

    def as_config(self) -> dict:
        """The Variant as plain data for a Ray Tune trial's config: Tune keeps objects of other
        types out of the config it shows the driver (placeholders), so the Variant travels as
        its fields and is rebuilt once on each side (variant_of)."""
        return {"variant_id": self.variant_id, "family": self.family, "group": self.group,
                "spec_json": self.spec_json, "label": self.label()}

    @classmethod
    def from_config(cls, config: dict) -> "Variant":
        return cls(config["variant_id"], config["family"], config["group"], config["spec_json"])

    def label(self) -> str:
        """A short human label: M and the knobs off their defaults, e.g. `M=192 t.N=128 h.N=128`."""
        return self._label

    @cached_property
    def _label(self) -> str:
        from models import registry

        spec = self.spec
        parts = [f"M={spec['M']}"]
        for kind, short in KIND_ABBREVIATIONS.items():
            component = spec[kind]
            defaults = registry.to_plain(registry.component_class(kind, component["type"])())
            for key, value in component.items():
                if key != "type" and value != defaults.get(key):
                    text = ",".join(map(str, value)) if isinstance(value, list) else value
                    parts.append(f"{short}.{key}={text}")
        return " ".join(parts)


def variant_of(config: dict) -> Variant:
    """The Variant of a trial's config (`trial.config`, in the driver or the trial): under
    "trial" (sweep.trials), or "variant" in a sweep launched before trials travelled."""
    return Variant.from_config(config["trial"]["variant"] if "trial" in config else config["variant"])
