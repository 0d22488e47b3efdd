"""Every registered entropy model builds a LatentCodec whose y part is a YCodec (the Protocols
of models/entropy/protocol.py), with the same method signatures, and old checkpoints load."""

from __future__ import annotations

import inspect

import pytest
import torch

from models import build
from models.entropy.hyper_latent import HyperLatentCodec
from models.entropy.protocol import LatentCodec, YCodec
from models.registry import names
from models.tiny import tiny_spec


def _protocol_methods(protocol) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]


def _same_parameters(implementation, protocol, method: str) -> bool:
    ours = list(inspect.signature(getattr(implementation, method)).parameters)
    declared = list(inspect.signature(getattr(protocol, method)).parameters)[1:]  # without self
    return ours == declared


@pytest.mark.parametrize("entropy", names("entropy"))
def test_every_entropy_model_follows_the_protocols(entropy):
    latent = build(tiny_spec("conv", entropy, "conv")).latent
    assert isinstance(latent, LatentCodec) and isinstance(latent, HyperLatentCodec)
    assert isinstance(latent.y, YCodec)
    for protocol, codec in ((LatentCodec, latent), (YCodec, latent.y)):
        for method in _protocol_methods(protocol):
            assert _same_parameters(codec, protocol, method), (type(codec).__name__, method)
    assert len(latent.stream_names()) == len(set(latent.stream_names())) and latent.stream_names()[-1] == "z"


@pytest.mark.parametrize("entropy", ["hyperprior", "charm"])
def test_a_checkpoint_from_before_the_y_codec_module_loads(entropy):
    """model.pt files of earlier sweeps keep the y-codec's tensors directly under `latent.`, and
    were saved after update(): their CDF tables are sized, which compressai's loader resizes by
    module name before any load hook runs."""
    torch.manual_seed(0)
    model = build(tiny_spec("conv", entropy, "conv"))
    model.update(force=True)
    flat = {k.replace("latent.y.", "latent."): v for k, v in model.state_dict().items()}
    assert any(k.startswith("latent.gaussian_conditional._offset") for k in flat)
    fresh = build(tiny_spec("conv", entropy, "conv"))
    fresh.load_state_dict(flat)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
