"""build(spec) -> ImageCodec: the one way a spec becomes a model."""

from __future__ import annotations

from typing import Any

from models.codec import ImageCodec
from models.spec import ModelSpec, parse_spec


def build(spec: Any) -> ImageCodec:
    """Build the model a spec (mapping or ModelSpec) describes, with fresh weights."""
    spec = parse_spec(spec)
    g_a, g_s = spec.transform.build(spec.M)
    z_channels = spec.hyper.z_channels(spec.M)
    h_a, h_s = spec.hyper.build(spec.M, spec.entropy.hyper_out_channels(spec.M))
    latent = spec.entropy.build(spec.M, h_a, h_s, z_channels)
    return ImageCodec(spec, g_a, g_s, latent)
