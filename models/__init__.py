"""Compression models built from a spec through a registry of components.

This package imports only torch and compressai. `build(spec)` is the entry point; `parse_spec`
validates a spec without building it; `models.presets.preset(name)` gives the published
reference specs (Balle, Minnen, ELIC, ms2020 CHARM, SwinT-ChARM, the study's model B). Attributes load lazily so that importing a light module
(e.g. `models.errors`) does not import torch.
"""

from rdc.quiet import silence_compressai_jit_warning

silence_compressai_jit_warning()

__all__ = ["build", "parse_spec", "ModelSpec", "SpecError"]


def __getattr__(name):
    if name == "build":
        from models.factory import build

        return build
    if name in ("parse_spec", "ModelSpec"):
        import models.spec

        return getattr(models.spec, name)
    if name == "SpecError":
        from models.errors import SpecError

        return SpecError
    raise AttributeError(name)
