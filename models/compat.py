"""compressai models <-> ours, with the same weights: `from_compressai(module)` and
`to_compressai(model)`.

Supported: ScaleHyperprior (Balle 2018), MeanScaleHyperprior (Minnen 2018) and
Elic2022Official (He 2022), the models of compressai's zoo that the presets reproduce
(models/presets.py); the two sides are the same function (tests/models/test_compat.py: same
bytes, same reconstructions). Any other class is refused with this list.

Our state dict is compressai's with the latent codec under `latent.`: h_a, h_s and the
entropy bottleneck directly, the y-codec under `latent.y.` (ELIC's compressai tree under
`latent.y.channel_groups.`).
"""

from __future__ import annotations

from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.sensetime import Elic2022Official
from torch import nn

from models.factory import build
from models.spec import parse_spec
from rdc.errors import UserError

SUPPORTED = ("ScaleHyperprior", "MeanScaleHyperprior", "Elic2022Official")


def _hyperprior_spec(N: int, M: int, mode: str, layout: str) -> dict:
    return {
        "M": M,
        "transform": {"type": "conv", "N": N},
        "entropy": {"type": "hyperprior", "mode": mode},
        "hyper": {"type": "conv", "N": N, "layout": layout},
    }


def _elic_spec(N: int, M: int, groups: list[int]) -> dict:
    return {
        "M": M,
        "transform": {"type": "elic", "channels": [N, N, N], "num_res_blocks": 3},
        "entropy": {"type": "elic", "groups": list(groups[:-1]), "hyper_channels": 2 * N},
        "hyper": {"type": "conv", "N": N, "layout": "elic2022"},
    }


def _class_name(module: nn.Module) -> str:
    name = type(module).__name__
    if name not in SUPPORTED or type(module).__module__.split(".")[0] != "compressai":
        raise UserError("compressai model", name, allowed=", ".join(SUPPORTED))
    return name


def spec_of(module: nn.Module) -> dict:
    """Our spec of a compressai model instance."""
    name = _class_name(module)
    if name == "Elic2022Official":
        return _elic_spec(module.g_a[0].out_channels, module.g_a[-2].out_channels, module.groups)
    mode, layout = ("scale", "balle2018") if name == "ScaleHyperprior" else ("mean_scale", "minnen2018")
    return _hyperprior_spec(module.N, module.M, mode, layout)


def _ours(key: str, name: str) -> str:
    if name == "Elic2022Official":
        for theirs, mine in (("latent_codec.hyper.", "latent."), ("latent_codec.y.", "latent.y.channel_groups.")):
            if key.startswith(theirs):
                return mine + key[len(theirs):]
        return key
    head = key.split(".", 1)[0]
    if head in ("h_a", "h_s", "entropy_bottleneck"):
        return "latent." + key
    if head == "gaussian_conditional":
        return "latent.y." + key
    return key


def from_compressai(module: nn.Module):
    """Our model with the weights (and entropy tables) of a compressai model instance."""
    name = _class_name(module)
    model = build(spec_of(module))
    model.load_state_dict({_ours(k, name): v for k, v in module.state_dict().items()})
    return model


def to_compressai(model) -> nn.Module:
    """The compressai model with our model's weights; refused for a spec compressai has no
    class for."""
    spec = model.spec.to_dict()
    classes = {"ScaleHyperprior": ScaleHyperprior, "MeanScaleHyperprior": MeanScaleHyperprior, "Elic2022Official": Elic2022Official}
    N, M = spec["hyper"]["N"], spec["M"]
    candidates = {
        "ScaleHyperprior": (_hyperprior_spec(N, M, "scale", "balle2018"), (N, M)),
        "MeanScaleHyperprior": (_hyperprior_spec(N, M, "mean_scale", "minnen2018"), (N, M)),
    }
    if spec["entropy"]["type"] == "elic":
        groups = [*spec["entropy"]["groups"], M - sum(spec["entropy"]["groups"])]
        candidates["Elic2022Official"] = (_elic_spec(N, M, groups), (N, M, groups))
    for name, (candidate, args) in candidates.items():
        if _same_function(candidate, spec):
            theirs = classes[name](*args)
            mine = model.state_dict()
            theirs.load_state_dict({k: mine[_ours(k, name)] for k in theirs.state_dict()})
            return theirs
    raise UserError("model", model.spec.family, reason="no compressai class has this function", allowed=", ".join(SUPPORTED))


def _same_function(a: dict, b: dict) -> bool:
    """Two specs of one function (their canonical forms agree)."""
    return parse_spec(a).to_dict() == parse_spec(b).to_dict()
