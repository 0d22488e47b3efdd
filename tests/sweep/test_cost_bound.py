"""The cost bound (issue 12): the training-memory estimate equals what torch really holds, and a
variant above the bound (cluster.trial_memory_gb, default the trial's device) is refused by
`rdc plan` and `rdc sweep` in seconds, with one line naming it and its figure, before anything is
allocated or written."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
import torch

from jobs.loss import likelihood_bits, rd_loss
from models import build, parse_spec
from rdc.cli import main
from rdc.errors import UserError
from sweep.config import load_config
from sweep.cost_bound import (GIB, MAX_PARAMS, MemoryModel, PartTooLarge, _on_meta, check_cost_bound, memory_limit,
                              physical_memory, smallest_gpu_memory)
from sweep.costs import CostModel
from sweep.space import expand
from sweep.variant import variant_id
from tests.sweep.test_refused_before_start import refuse, sweep_args, work  # noqa: F401 - fixture

CROP, BATCH = 64, 2
# Tiny models of the three kinds of part the estimate builds differently: GDN (built under
# FakeTensorMode), Swin stages (meta) and ELIC's channel groups (a ramp that reads values).
SPECS = {
    "conv-gdn": {"M": 48, "transform": {"type": "conv", "N": 32}, "entropy": {"type": "hyperprior"},
                 "hyper": {"type": "conv", "N": 32}},
    "swint-charm": {"M": 64, "transform": {"type": "swint", "dims": [16, 32, 32], "depths": [1, 2, 1, 2], "head_dim": 8,
                                           "window": 4},
                    "entropy": {"type": "charm", "num_slices": 8},
                    "hyper": {"type": "swint", "dims": [16, 16], "depths": [2, 1], "head_dim": 8, "window": 2}},
    "elic-groups": {"M": 96, "transform": {"type": "elic", "channels": [16, 32, 32], "num_res_blocks": 1},
                    "entropy": {"type": "elic", "groups": [8, 8, 16, 32], "context_widths": [56, 32], "hyper_channels": 64,
                                "context_kernel": 3},
                    "hyper": {"type": "conv", "N": 32, "layout": "elic2022"}},
}
HUGE = """name: huge
shared:
  entropy: {type: hyperprior}
  hyper: {type: conv, N: 32}
families:
  - name: wide
    transform: {type: conv, N: [32, 1000000000]}
    M: [48]
"""
HUGE_WITH_BUDGET = HUGE + "constraints:\n  - max: {key: decode_kflops_per_px, value: 1000000}\n"


def training_loss(model, x):
    """One training step's loss, as jobs.train.Trainer computes it."""
    out = model(x)
    bpp = likelihood_bits(out["likelihoods"]) / (x.shape[0] * x.shape[2] * x.shape[3])
    return rd_loss(torch.mean((out["x_hat"] - x) ** 2), bpp, 0.0125)


def saved_by_real_forward(model, x) -> int:
    """Bytes autograd saves in a real training forward, one count per storage, weights left out."""
    weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved, alive = {}, []

    def pack(tensor):
        alive.append(tensor)
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        training_loss(model, x)
    return sum(saved.values())


@pytest.fixture(scope="module")
def memory() -> MemoryModel:
    return MemoryModel(CROP, BATCH)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_saved_activations_are_what_a_real_training_forward_saves(name, memory):
    torch.manual_seed(0)
    model = build(SPECS[name]).train()
    real = saved_by_real_forward(model, torch.rand(BATCH, 3, CROP, CROP))
    estimate = memory.estimate(SPECS[name])
    assert estimate.params == sum(p.numel() for p in model.parameters())
    # Measured on meta tensors, part by part: within 0.5 % of the real whole model (the tensor
    # between the parts is counted once; meta's matmul keeps a few tiny copies CPU's does not).
    assert estimate.activation_bytes == pytest.approx(real, rel=5e-3)


@pytest.mark.parametrize("name", ["conv-gdn", "elic-groups"])  # the parts built on fake tensors
def test_the_fake_tensor_forward_counts_what_the_meta_one_does(name):
    """The way taken when a forward cannot run on meta counts the same, within 0.5 % (fake
    tensors run CPU's matmul, without the few small copies of meta's)."""
    spec = parse_spec(SPECS[name])
    memory = MemoryModel(CROP, BATCH)
    on_meta = on_fake = 0
    for kind in ("transform", "latent"):
        modules, how = memory._build(kind, spec)
        on_meta += memory.meta_activations(kind, spec, modules if how == "meta" else tuple(_on_meta(m) for m in modules))
        on_fake += memory.fake_activations(kind, spec)
    assert on_fake == pytest.approx(on_meta, rel=5e-3)


def test_saved_activations_are_what_the_cpu_allocator_holds_after_a_training_forward(memory):
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build(SPECS["conv-gdn"]).train()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        x = torch.rand(BATCH, 3, CROP, CROP)  # in the window: the first convolution saves the batch
        loss = training_loss(model, x)  # noqa: F841 - the graph it holds is what is measured
    held = sum(event.self_cpu_memory_usage for event in prof.key_averages())  # allocated minus freed
    assert memory.estimate(SPECS["conv-gdn"]).activation_bytes == pytest.approx(held, rel=5e-3)


def test_the_state_is_weights_gradients_and_both_adam_moments(memory):
    """What jobs.train's two Adams hold after a step, with the gradients of that step."""
    torch.manual_seed(0)
    model = build(SPECS["conv-gdn"]).train()
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    optimizers = [torch.optim.Adam(main_params), torch.optim.Adam(aux)]
    training_loss(model, torch.rand(BATCH, 3, CROP, CROP)).backward()
    model.aux_loss().backward()
    for optimizer in optimizers:
        optimizer.step()
    tensors = [*model.parameters(), *model.buffers(), *(p.grad for p in model.parameters())]
    tensors += [value for optimizer in optimizers for state in optimizer.state.values()
                for key, value in state.items() if key != "step"]
    held = sum(t.numel() * t.element_size() for t in tensors)
    assert memory.estimate(SPECS["conv-gdn"]).state_bytes == held


def test_a_width_of_a_billion_is_stopped_before_anything_is_allocated():
    spec = {**SPECS["conv-gdn"], "transform": {"type": "conv", "N": 1_000_000_000}}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(PartTooLarge) as stopped:
        MemoryModel(CROP, BATCH).estimate(spec)
    assert stopped.value.shape[:2] == (1_000_000_000, 1_000_000_000) and stopped.value.kind == "transform"
    assert stopped.value.created_bytes > 1 << 62  # what torch can represent: stopped before that
    # sweep.costs (budget constraints cost variants while a space expands) stops it too
    with pytest.raises(PartTooLarge):
        CostModel().part("transform", spec)
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200 * 1024  # KiB: no 300 GB, not even 200 MB


def test_a_wide_entropy_bottleneck_is_measured_without_its_cpu_side_tensors():
    """compressai builds an EntropyBottleneck's quantiles and filters as CPU tensors, even on
    the meta device: 10^7 channels are 1.5 GB there, made on meta instead."""
    spec = {**SPECS["conv-gdn"], "hyper": {"type": "conv", "N": 10_000_000}}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    estimate = MemoryModel(CROP, BATCH).estimate(spec)
    assert estimate.params > 5 * 10**15 and estimate.gib > 7e7  # two 5x5 convolutions of 10^7 x 10^7
    assert CostModel().costs(spec)["params"] == estimate.params
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200 * 1024  # KiB


def write_space(work: Path, name: str, text: str) -> Path:
    conf = work / "conf"
    (conf / "search_space").mkdir(parents=True)
    (conf / "search_space" / f"{name}.yaml").write_text(text)
    return conf


@pytest.mark.parametrize("text", [HUGE, HUGE_WITH_BUDGET], ids=["space", "space-with-budget"])
def test_rdc_plan_refuses_an_absurd_width_with_its_id_and_figure(work: Path, capsys, text: str):
    conf = write_space(work, "huge", text)
    huge = variant_id(parse_spec({**SPECS["conv-gdn"], "transform": {"type": "conv", "N": 1_000_000_000}}).to_dict())
    line = refuse(work, capsys, ["plan", "--workers", "1", "--config-dir", str(conf), "search_space=huge"])
    assert line.startswith("search_space: 1 of 2 variants exceed the bound of"), line
    assert f"the first, {huge} Conv/Hyperprior:Conv M=48 t.N=1000000000 h.N=32, " in line, line
    assert "its transforms need more than 7.45e+09 GiB for their weights alone (at least 2e+18 params; " \
           "stopped at a tensor [1000000000, 1000000000]" in line, line


def test_a_budget_may_remove_a_variant_above_the_bound(work: Path, capsys):
    """The bound applies to what a space keeps: a budget that removes the wide variant wins."""
    text = HUGE.replace("1000000000", "100000") + "constraints:\n  - max: {key: params, value: 10000000}\n"
    conf = write_space(work, "wide", text)
    code = main(["plan", "--workers", "1", "--config-dir", str(conf), "search_space=wide"])
    printed = capsys.readouterr().out
    assert code == 0 and "1 variants from 2 grid points" in printed and "1 over budget" in printed, printed


@pytest.mark.parametrize("text", [HUGE, HUGE_WITH_BUDGET], ids=["space", "space-with-budget"])
def test_rdc_sweep_refuses_an_absurd_width_before_anything_starts(work: Path, capsys, text: str):
    conf = write_space(work, "huge", text)
    line = refuse(work, capsys, [*sweep_args(work), "--config-dir", str(conf), "search_space=huge"])
    assert line.startswith("search_space: 1 of 2 variants exceed the bound of"), line
    assert "t.N=1000000000" in line, line
    assert not (work / "runs").exists()


def test_the_demo_space_passes_and_a_tiny_bound_refuses_it_naming_the_figure():
    cfg = load_config([])
    variants = expand(cfg["search_space"])
    check_cost_bound(variants, cfg)  # the demo fits this machine
    tiny = load_config(["cluster.trial_memory_gb=0.001"])
    with pytest.raises(UserError) as refused:
        check_cost_bound(variants, tiny)
    line = str(refused.value)
    first = variants[0]
    assert f"{len(variants)} of {len(variants)} variants exceed the bound of 0.001 GiB (cluster.trial_memory_gb=0.001)" in line
    assert f"the first, {first.variant_id} {first.family} {first.label()}, needs " in line and " params: " in line
    assert "cluster.trial_memory_gb=1 where the trial's device has that much" in line


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bound_that_is_not_a_positive_number_is_refused(work: Path, capsys, value: str):
    line = refuse(work, capsys, ["plan", "--workers", "1", f"cluster.trial_memory_gb={value}"])
    assert line.startswith(f"cluster.trial_memory_gb={float(value)!r}"), line


def test_the_default_bound_is_the_trials_device():
    assert memory_limit({"trial_gpus": 0, "trial_memory_gb": None}).bytes == physical_memory()
    assert physical_memory() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_limit({"trial_gpus": 0, "trial_memory_gb": 1.5}).bytes == int(1.5 * GIB)
    gpu = memory_limit({"trial_gpus": 0.5, "trial_memory_gb": None})
    if torch.cuda.is_available():  # half of the smallest GPU: two trials share it
        assert gpu.bytes == int(smallest_gpu_memory() * 0.5)
    else:  # no device to bound the memory with: only the sanity bound on parameters
        assert gpu.bytes is None and gpu.max_params == MAX_PARAMS
        assert "no CUDA device visible" in gpu.describe()
