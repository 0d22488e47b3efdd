"""Every option of the entropy models and hyper layouts codes real bitstreams that decode bit
for bit, and the bitstream is what bpp counts."""

from __future__ import annotations

import pytest
import torch

from models import bitstream, build

CHARM_OPTIONS = [
    {"lrp": False},
    {"lrp_merge": "concat"},
    {"hyper_heads": "sliced"},
    {"hyper_heads": "per_slice", "lrp_merge": "concat"},
    {"slice_taper": True, "max_support_slices": -1},
    {"max_support_slices": 0},
    {"num_slices": 1},
]


@pytest.mark.parametrize("options", CHARM_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_charm_options_code_bit_exactly(options, make_spec, odd_image, bit_exact):
    torch.manual_seed(0)
    bit_exact(build(make_spec("conv", "charm", "conv", **options)), odd_image)


def test_concat_merge_starts_as_addition(make_spec, odd_image):
    """concat + 1x1 conv is initialised to y_hat + LRP, so it starts where `add` starts."""
    torch.manual_seed(0)
    add = build(make_spec("conv", "charm", "conv", lrp_merge="add")).eval()
    concat = build(make_spec("conv", "charm", "conv", lrp_merge="concat")).eval()
    concat.load_state_dict(add.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(concat(odd_image)["x_hat"], add(odd_image)["x_hat"])


@pytest.mark.parametrize("layout", ["balle2018", "minnen2018", "ms2020"])
@pytest.mark.parametrize("mode", ["scale", "mean_scale"])
def test_hyperprior_modes_and_hyper_layouts(mode, layout, odd_image, bit_exact):
    torch.manual_seed(0)
    spec = {"M": 24, "transform": {"type": "conv", "N": 16}, "entropy": {"type": "hyperprior", "mode": mode},
            "hyper": {"type": "conv", "N": 16, "layout": layout}}
    bit_exact(build(spec), odd_image)


def test_bitstream_holds_the_size_and_every_stream(make_spec, odd_image, bit_exact):
    data, _ = bit_exact(build(make_spec("conv", "charm", "conv")), odd_image)
    height, width, streams = bitstream.unpack(data)
    assert (height, width) == tuple(odd_image.shape[-2:])
    assert len(streams) == 2  # all slices of y in one rANS stream, then z
    header = len(data) - sum(len(s) for s in streams)
    assert 0 < header <= 2 + 3 + 3 + 1 + 2 * 3  # magic, varint sizes, count, lengths
    assert bitstream.pack(height, width, streams) == data


def test_compress_batch_gives_one_stream_per_image(make_spec, training_batch):
    model = build(make_spec("conv", "hyperprior", "conv")).eval()
    model.update(force=True)
    with torch.no_grad():
        streams = model.compress(training_batch)
        for i, data in enumerate(streams):
            expected = model(training_batch[i : i + 1])["y_hat"]
            assert torch.equal(model.decompress(data)["y_hat"], expected)
    assert len(streams) == training_batch.shape[0]


def test_damaged_bitstreams_are_refused(make_spec, odd_image, bit_exact):
    model = build(make_spec("conv", "hyperprior", "conv"))
    data, _ = bit_exact(model, odd_image)
    for damaged, message in [(b"XX" + data[2:], "bad magic"), (data[:-3], "length"), (data[:4], "truncated")]:
        with pytest.raises(ValueError, match=message):
            model.decompress(damaged)


def test_compress_before_update_says_what_to_do(make_spec, odd_image):
    model = build(make_spec("conv", "charm", "conv")).eval()
    with pytest.raises((RuntimeError, ValueError), match="update"):
        model.compress(odd_image)
