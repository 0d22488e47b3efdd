"""The plan: what every variant of a space costs, before any training.

`variant_costs(spec)` gives params and decode FLOPs of one variant.
"""

from __future__ import annotations

from jobs.profile import count_params, decode_flops
from models import build
from rdc import names


def variant_costs(spec: dict) -> dict[str, float]:
    model = build(spec)
    flops = decode_flops(model)
    return {
        names.PARAMS: count_params(model),
        names.DECODE_KFLOPS_PER_PX: flops["kflops_per_px"],
        names.DECODE_KMACS_PER_PX: flops["kmacs_per_px"],
    }
