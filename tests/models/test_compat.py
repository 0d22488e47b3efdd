"""Our compressai-equivalent presets are compressai's models: loaded with compressai's state
dicts (identical random weights, no download), they write byte-identical y and z streams (our
header aside) and decode identical reconstructions of an odd-sized Kodak crop; parameter
counts are equal. Unknown classes are refused with the supported list."""

from __future__ import annotations

import pytest
import torch
from compressai.models import Cheng2020Attention, MeanScaleHyperprior, ScaleHyperprior
from compressai.models.sensetime import Elic2022Official

from models import bitstream, build
from models.compat import SUPPORTED, from_compressai, spec_of, to_compressai
from models.presets import preset
from models.spec import parse_spec
from rdc.errors import UserError
from tests.models.test_reference import params

# Untrained, g_a's latent is within about +-0.2: every y symbol would be 0. Scaling the last
# analysis layer (the same weights on both sides) gives symbols in the tens, some escaped.
GAIN = 30.0

CASES = [
    # (compressai class, its arguments, our preset)
    (ScaleHyperprior, (128, 192), "balle2018-hyperprior-128-192"),
    (ScaleHyperprior, (192, 320), "balle2018-hyperprior-192-320"),
    (MeanScaleHyperprior, (192, 320), "minnen2018-mean-scale-192-320"),
    (Elic2022Official, (192, 320), "elic2022-official"),
]


def _random_compressai(cls, args):
    torch.manual_seed(0)
    theirs = cls(*args).eval()
    last = [m for m in theirs.g_a.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)][-1]
    with torch.no_grad():
        last.weight.mul_(GAIN)
        last.bias.mul_(GAIN)
    theirs.update(force=True)
    return theirs


def _their_streams(theirs, x_padded):
    out = theirs.compress(x_padded)
    return out["strings"], out["shape"]


@pytest.mark.parametrize("cls, args, name", CASES, ids=[c[2] for c in CASES])
def test_same_weights_same_bytes_same_reconstruction(cls, args, name, odd_image):
    theirs = _random_compressai(cls, args)
    ours = from_compressai(theirs).eval()
    assert parse_spec(spec_of(theirs)) == parse_spec(preset(name))
    assert params(ours) == params(theirs)
    ours.update(force=True)
    height, width = odd_image.shape[-2:]
    with torch.no_grad():
        (data,) = ours.compress(odd_image)
        strings, shape = _their_streams(theirs, ours.pad(odd_image))
        theirs_x_hat = theirs.decompress(strings, shape)["x_hat"][..., :height, :width]
        ours_x_hat = ours.decompress(data)["x_hat"]
    _, _, streams = bitstream.unpack(data)
    assert streams == [s[0] for s in strings]  # every y stream (ELIC: 10), then z
    assert sum(len(s) for s in streams[:-1]) > 1000  # y carries real symbols, not zeros
    assert torch.equal(ours_x_hat, theirs_x_hat)


@pytest.mark.parametrize("cls, args, name", CASES[::2] + CASES[3:], ids=[c[2] for c in CASES[::2] + CASES[3:]])
def test_back_to_compressai_keeps_every_tensor(cls, args, name):
    torch.manual_seed(1)
    ours = build(preset(name))
    theirs = to_compressai(ours)
    assert type(theirs) is cls
    again = from_compressai(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), again.state_dict().values()))


def test_unknown_classes_are_refused_with_the_supported_list(make_spec):
    with pytest.raises(UserError) as err:
        from_compressai(Cheng2020Attention(N=8))
    assert "Cheng2020Attention" in str(err.value) and all(name in str(err.value) for name in SUPPORTED)
    with pytest.raises(UserError, match="no compressai class"):
        to_compressai(build(make_spec("conv", "charm", "conv")))
