"""ModelSpec: the plain, validated description of one architecture variant.

A spec is a mapping with the latent width `M` and one component per kind:

    {"M": 192,
     "transform": {"type": "conv", "N": 128},
     "entropy": {"type": "hyperprior"},
     "hyper": {"type": "conv", "N": 128}}

`parse_spec` fills in every default and checks every knob; `to_dict` gives the canonical form
(every knob spelled out), which is what variant ids hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import registry
from models.errors import SpecError

DEFAULT_M = 320
TOP_LEVEL_KEYS = ("M", "transform", "entropy", "hyper")


@dataclass(frozen=True)
class ModelSpec:
    M: int
    transform: Any
    entropy: Any
    hyper: Any

    @property
    def family(self) -> str:
        """The study's family label: `<transforms>/<entropy model>:<hyper-transforms>`."""
        t = registry.display_name("transform", self.transform.component_name)
        e = registry.display_name("entropy", self.entropy.component_name)
        h = registry.display_name("hyper", self.hyper.component_name)
        return f"{t}/{e}:{h}"

    def to_dict(self) -> dict:
        return {
            "M": self.M,
            "transform": registry.to_plain(self.transform),
            "entropy": registry.to_plain(self.entropy),
            "hyper": registry.to_plain(self.hyper),
        }


def parse_spec(raw: Any) -> ModelSpec:
    """Validate a plain mapping into a ModelSpec; raise SpecError naming the bad key."""
    if isinstance(raw, ModelSpec):
        return raw
    if not isinstance(raw, dict):
        raise SpecError("spec", raw, "a mapping with keys " + ", ".join(TOP_LEVEL_KEYS))
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(str(key), raw[key], "top-level keys " + ", ".join(TOP_LEVEL_KEYS))
    M = raw.get("M", DEFAULT_M)
    if not isinstance(M, int) or isinstance(M, bool) or M < 1:
        raise SpecError("M", M, "a positive integer")
    for kind in registry.KINDS:
        if kind not in raw:
            raise SpecError(f"{kind}.type", None, ", ".join(registry.names(kind)))
    spec = ModelSpec(
        M=M,
        transform=registry.parse_component("transform", raw["transform"]),
        entropy=registry.parse_component("entropy", raw["entropy"]),
        hyper=registry.parse_component("hyper", raw["hyper"]),
    )
    _check_compatible(spec)
    return spec


def _check_compatible(spec: ModelSpec) -> None:
    # Knobs that are fine alone but not together (M vs slices, dims vs heads, ...): each
    # component may define `check(M)` raising SpecError with its own knob name.
    for kind in registry.KINDS:
        component = getattr(spec, kind)
        check = getattr(component, "check", None)
        if check is not None:
            try:
                check(spec.M)
            except SpecError as err:
                # A component may blame the top-level M (e.g. too small for its layers).
                raise (err if err.key == "M" else err.under(kind)) from None
