"""Variant: one point of a search space, a plain hashable spec with a stable id.

The id is a hash of the canonical spec (every knob spelled out, keys sorted, compact JSON), so
it does not depend on key order, YAML formatting, or whether defaults were written out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

ID_LENGTH = 16  # hex digits: 64 bits, no realistic collision in any sweep


def canonical_json(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def variant_id(canonical_spec: dict) -> str:
    return hashlib.sha256(canonical_json(canonical_spec).encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True, order=True)
class Variant:
    variant_id: str
    family: str  # the study's label, e.g. "ELIC/CHARM:SwinT"
    group: str  # the name of the YAML family that produced it
    spec_json: str  # canonical spec

    @property
    def spec(self) -> dict:
        return json.loads(self.spec_json)

    @classmethod
    def from_canonical(cls, canonical_spec: dict, family: str, group: str) -> "Variant":
        return cls(variant_id(canonical_spec), family, group, canonical_json(canonical_spec))

    def label(self) -> str:
        """A short human label: the knobs that usually differ within a family."""
        spec = self.spec
        parts = [f"M={spec['M']}"]
        for kind in ("transform", "entropy", "hyper"):
            for key, value in spec[kind].items():
                if key != "type":
                    parts.append(f"{kind[0]}.{key}={value}")
        return " ".join(parts)
