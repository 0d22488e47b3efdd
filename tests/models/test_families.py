"""Every family of the study (3 transforms x 2 entropy models x 2 hyper-transforms) at tiny
widths: output shapes, a few training steps that lower the loss, and real bitstreams whose
decoding reproduces the eval-mode forward path bit for bit on an odd-sized photograph."""

from __future__ import annotations

import copy

import pytest
import torch

from jobs.loss import likelihood_bits, rd_loss
from models import build
from models.registry import display_name

LAMBDA = 0.0125  # the study's
STEPS = 12


@pytest.fixture(scope="module")
def trained(family, make_spec, training_batch):
    """A tiny model of the family after STEPS Adam steps on real crops, and its losses."""
    torch.manual_seed(0)
    model = build(make_spec(*family))
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=1e-3), torch.optim.Adam(aux, lr=1e-2)
    x = training_batch
    losses = []
    for _ in range(STEPS):
        out = model(x)
        bpp = likelihood_bits(out["likelihoods"]) / (x.shape[0] * x.shape[2] * x.shape[3])
        loss = rd_loss(torch.mean((out["x_hat"] - x) ** 2), bpp, LAMBDA)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        aux_optimizer.zero_grad()
        model.aux_loss().backward()
        aux_optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_shapes_and_family_label(family, make_spec, odd_image):
    model = build(make_spec(*family))
    out = model(odd_image)
    y_shape, z_shape = model.latent_shapes(*odd_image.shape[-2:])
    assert out["x_hat"].shape == odd_image.shape
    assert tuple(out["y_hat"].shape) == y_shape and tuple(out["z_hat"].shape) == z_shape
    assert tuple(out["likelihoods"]["y"].shape) == y_shape
    assert tuple(out["likelihoods"]["z"].shape) == z_shape
    transform, entropy, hyper = family
    expected = f"{display_name('transform', transform)}/{display_name('entropy', entropy)}:{display_name('hyper', hyper)}"
    assert model.spec.family == expected


def test_training_lowers_the_loss(trained):
    _, losses = trained
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def test_bitstream_reproduces_forward_bit_exactly(trained, odd_image, bit_exact):
    model, _ = trained
    data, reference = bit_exact(model, odd_image)
    # The bytes are a real code of what the likelihoods promise. Fixed costs (header, rANS
    # flushes: about 300 bits for two streams, 40 more for each further stream, e.g. ELIC's
    # ten y streams) add to it; rare symbols cost less than promised (escape codes instead of
    # the likelihood floor's 30 bits), so a barely trained model can beat it.
    promised = float(likelihood_bits(reference["likelihoods"]))
    fixed = 300 + 40 * (len(model.latent.stream_names()) - 2)
    assert 0.7 * promised < len(data) * 8 < 1.1 * promised + fixed


def test_encode_and_decode_networks_are_the_coding_path(trained, odd_image):
    """What FLOP counting and runtime measurement call runs the same computation as coding."""
    model, _ = trained
    model.eval()
    model.update(force=True)
    height, width = odd_image.shape[-2:]
    with torch.no_grad():
        encoded = model.encode_networks(odd_image)
        decoded = model.decompress(model.compress(odd_image)[0])
        synthesis = model.decode_networks(decoded["y_hat"], decoded["z_hat"])
    assert torch.equal(encoded["y_hat"], decoded["y_hat"])
    assert torch.equal(encoded["z_hat"], decoded["z_hat"])
    assert torch.equal(synthesis[..., :height, :width].clamp(0, 1), decoded["x_hat"])


def test_networks_run_on_the_meta_device(family, make_spec):
    """jobs/profile counts FLOPs on a weightless meta copy: every network must run there."""
    model = copy.deepcopy(build(make_spec(*family))).to("meta").eval()
    y_shape, z_shape = model.latent_shapes(512, 768)
    with torch.no_grad():
        x_hat = model.decode_networks(torch.zeros(y_shape, device="meta"), torch.zeros(z_shape, device="meta"))
        encoded = model.encode_networks(torch.zeros(1, 3, 512, 768, device="meta"))
    assert x_hat.shape == (1, 3, 512, 768)
    assert tuple(encoded["y_hat"].shape) == y_shape and tuple(encoded["z_hat"].shape) == z_shape


def test_portrait_kodak_image_pads_and_crops(portrait_image, make_spec):
    """A full 512 x 768 portrait photograph (768 rows) through the study's family."""
    x = portrait_image
    model = build(make_spec("elic", "charm", "swint")).eval()
    model.update(force=True)
    with torch.no_grad():
        reference = model(x)
        (data,) = model.compress(x)
        decoded = model.decompress(data)
    assert x.shape == (1, 3, 768, 512)
    assert reference["x_hat"].shape == x.shape and decoded["x_hat"].shape == x.shape
    assert tuple(decoded["y_hat"].shape) == (1, 24, 48, 32)
    assert torch.equal(decoded["y_hat"], reference["y_hat"])
