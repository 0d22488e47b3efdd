"""Compression models built from a spec through a registry of components.

This package imports only torch and compressai. `build(spec)` is the entry point; `parse_spec`
validates a spec without building it. Attributes load lazily so that importing a light module
(e.g. `models.errors`) does not import torch.
"""

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
