"""Reference specs: the published models the study builds on, and the study's model B.

Each preset is a plain spec (what a YAML space or `parse_spec` takes). tests/models checks
their parameter counts and decode FLOPs against ../shared/REFERENCE.md.

Same function as compressai (same weights in, the same bytes and reconstructions out; tests/
models/test_compat.py): `balle2018-hyperprior-*` is ScaleHyperprior(N, M), `minnen2018-mean-
scale-192-320` is MeanScaleHyperprior(192, 320) and `elic2022-official` is Elic2022Official
(192, 320), ELIC's own space-channel context model included. models.compat moves weights
between them.

`elic2022-transforms` pairs the published ELIC transforms with the study's mean-scale
hyperprior: the study trained with TensorFlow, whose hyperprior layers use ReLU, so its hyper
activation is pinned to relu (compressai's MeanScaleHyperprior uses LeakyReLU).
"""

from __future__ import annotations

import copy

from models.errors import SpecError


def _balle2018(N: int, M: int) -> dict:
    return {
        "M": M,
        "transform": {"type": "conv", "N": N},
        "entropy": {"type": "hyperprior", "mode": "scale"},
        "hyper": {"type": "conv", "N": N, "layout": "balle2018"},
    }


PRESETS: dict[str, dict] = {
    # Balle et al. 2018, scale hyperprior (compressai ScaleHyperprior; its zoo's low / high rates).
    "balle2018-hyperprior-128-192": _balle2018(128, 192),
    "balle2018-hyperprior-192-320": _balle2018(192, 320),
    # Minnen et al. 2018, mean-scale hyperprior (compressai MeanScaleHyperprior).
    "minnen2018-mean-scale-192-320": {
        "M": 320,
        "transform": {"type": "conv", "N": 192},
        "entropy": {"type": "hyperprior", "mode": "mean_scale"},
        "hyper": {"type": "conv", "N": 192, "layout": "minnen2018"},
    },
    # He et al. 2022 ELIC transforms (n = 3, 192 channels) with a mean-scale hyperprior.
    "elic2022-transforms": {
        "M": 320,
        "transform": {"type": "elic", "channels": [192, 192, 192], "num_res_blocks": 3},
        "entropy": {"type": "hyperprior", "mode": "mean_scale"},
        "hyper": {"type": "conv", "N": 192, "layout": "minnen2018", "activation": "relu"},
    },
    # He et al. 2022 ELIC as published (compressai Elic2022Official): its transforms, its
    # space-channel context model (groups 16, 16, 32, 64, 192) and its hyper layout.
    "elic2022-official": {
        "M": 320,
        "transform": {"type": "elic", "channels": [192, 192, 192], "num_res_blocks": 3},
        "entropy": {"type": "elic", "groups": [16, 16, 32, 64], "hyper_channels": 384},
        "hyper": {"type": "conv", "N": 192, "layout": "elic2022"},
    },
    # Minnen & Singh 2020 (tensorflow/compression models/ms2020.py).
    "ms2020-charm": {
        "M": 320,
        "transform": {"type": "conv", "N": 192},
        "entropy": {
            "type": "charm", "num_slices": 10, "max_support_slices": 5, "slice_widths": [224, 128],
            "slice_kernel": 5, "slice_taper": False, "lrp": True, "lrp_merge": "add", "hyper_heads": "shared",
        },
        "hyper": {"type": "conv", "N": 192, "layout": "ms2020"},
    },
    # Zhu et al. 2022 SwinT-ChARM (App. A.2; slice transforms of App. A.1, Fig. 12: no LRP,
    # h_s output sliced per slice, tapered 3x3 slice transforms conditioned on all slices).
    "zhu2022-swint-charm": {
        "M": 320,
        "transform": {"type": "swint", "dims": [128, 192, 256], "depths": [2, 2, 6, 2], "head_dim": 32, "window": 8},
        "entropy": {
            "type": "charm", "num_slices": 10, "max_support_slices": -1, "slice_widths": [64, 32],
            "slice_kernel": 3, "slice_taper": True, "lrp": False, "hyper_heads": "sliced",
        },
        "hyper": {"type": "swint", "dims": [192, 192], "depths": [5, 1], "head_dim": 32, "window": 4},
    },
    # Minnen & Johnston 2023, model B (Sec. 5, Table 1): ELIC transforms with 2 residual blocks
    # and channels (128, 256, 256); CHARM with SwinT hyper-transforms, LRP merged by concat +
    # 1x1 conv and one conv head per slice on h_s's output; 10 slices and support 5 "following"
    # ms2020 and SwinT-ChARM. The paper gives no slice-transform widths: SwinT-ChARM's tapered
    # 3x3 ones are used. This lands at 32.8M parameters (Table 1: 31.6M) and 551 kFLOP/px
    # (Table 1: 631; g_s alone matches the 479 hand count). No CHARM config matches both
    # figures (entropy-parameter convs at H/16 cost 1 MAC/px per 256 parameters), so the
    # parameter count was preferred.
    "study-model-b": {
        "M": 320,
        "transform": {"type": "elic", "channels": [128, 256, 256], "num_res_blocks": 2},
        "entropy": {
            "type": "charm", "num_slices": 10, "max_support_slices": 5, "slice_widths": [64, 32],
            "slice_kernel": 3, "slice_taper": True, "lrp": True, "lrp_merge": "concat", "hyper_heads": "per_slice",
        },
        "hyper": {"type": "swint", "dims": [192, 192], "depths": [5, 1], "head_dim": 32, "window": 4},
    },
}


def preset(name: str) -> dict:
    """A fresh copy of a reference spec; SpecError naming the presets when unknown."""
    if name not in PRESETS:
        raise SpecError("preset", name, ", ".join(sorted(PRESETS)))
    return copy.deepcopy(PRESETS[name])
