"""Specs saved by earlier versions, read as the function they were trained as.

A model.pt holds the canonical spec of its day: every knob that existed then, spelled out. A knob
added later takes its default when such a spec is built, and where that default is a different
function (no weight tells the two apart) the saved model would silently decode with another
network. This module says what each old spec meant:

- conv hyper-transforms before the `activation` knob used ReLU in h_a and h_s (every layout);
- the scale-only hyperprior before it matched Balle 2018 fed y (not |y|) to h_a and left h_s's
  output unclamped: no spec can express that network any more, so such a model is refused.
"""

from __future__ import annotations

import copy

from models.errors import SpecError


def read_saved_spec(spec: dict) -> dict:
    """The spec an earlier version saved, as today's spec of the same function; SpecError when
    today's components cannot express it."""
    spec = copy.deepcopy(spec)
    hyper, entropy = spec.get("hyper") or {}, spec.get("entropy") or {}
    if hyper.get("type") == "conv" and "activation" not in hyper:
        if entropy.get("type") == "hyperprior" and entropy.get("mode") == "scale":
            raise SpecError("entropy.mode", "scale", allowed="a model saved since the scale-only hyperprior became "
                            "Balle 2018's (|y| into h_a, ReLU on the scales): retrain it")
        hyper["activation"] = "relu"
    return spec
