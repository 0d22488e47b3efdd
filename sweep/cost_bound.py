"""The cost bound (issue 12): what one training step of a variant holds in memory, estimated
without allocating it, and the refusal, at plan time, of variants above the trial's memory.

The estimate, at the training crop and batch (train.crop, train.batch_size), in bytes:
  - state: 4 float32 copies of every parameter (the weights, their gradients and Adam's two
    moments; the entropy bottleneck's auxiliary quantiles have an Adam of their own, with the
    same 4 copies), plus the buffers;
  - activations: what autograd saves for backward in one training forward (model.train(),
    quantisation noise, the rate and distortion terms of jobs.loss), counted with
    torch.autograd.graph.saved_tensors_hooks, one count per storage, parameters left out.
What the backward pass and Adam allocate on top (the gradient of one activation at a time,
foreach temporaries) and the allocator's slack are not in it: the estimate is what a step
holds at least; the activations are within 0.5 % of what a real CPU forward saves (and, on a
Conv model, of what the CPU allocator holds after it), the state byte for byte
(tests/sweep/test_cost_bound.py).

Nothing is allocated. A part is built on the meta device (or under torch's FakeTensorMode where
a constructor computes with CPU tensors: GDN; or reads values: ELIC's channel ramps), and its
training forward runs on meta tensors of the real shapes (on fake ones if meta cannot run it).
Three torch modes make that work for every component:
  - `_SmallValuesOnCPU` (forward on meta) and `_SmallValuesReal` (under FakeTensorMode): a call
    with no meta or fake tensor among its arguments whose result has at most SMALL_NUMEL
    elements (predicted on meta) runs for real, so code that reads values works (compressai's
    EntropyBottleneck permutes by a tensor of dims; sequential_channel_ramp calls .tolist());
    everything else stays shapes only;
  - `CreationGuard`: every tensor a build creates is counted before it exists (from its size,
    or from the result's shape on meta for ops on real CPU tensors), a real one above
    REAL_TENSOR_BYTES is made on meta instead, and the build stops with `PartTooLarge` past
    what torch can represent: a width of 10^9 is refused in milliseconds, before any overflow
    or allocation. sweep.costs builds its parts under the same guard.
As in sweep.costs, a model is two parts, the transforms (transform, M) and the latent codec
(entropy, hyper, M), each measured once per distinct part (paper: 122 parts for 592 variants);
a variant's figure is the sum of its parts' (the tensor between the parts, y, is counted once,
by the latent part).

The bound (`memory_limit`): cluster.trial_memory_gb when set; otherwise the trial's device:
with cluster.trial_gpus > 0 the smallest CUDA device this process sees, times trial_gpus when
a fraction packs several trials onto one GPU (no CUDA device visible here, as on a CPU-only
head node: no memory bound, only MAX_PARAMS); with trial_gpus = 0, this machine's physical
memory (trials that share it are not divided into it).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import astuple, dataclass
from typing import Iterable

import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map_only

from rdc.errors import UserError
from sweep.build_guard import (GIB, SHAPES_ONLY_LIMIT, CreationGuard, PartTooLarge, _is_fake,
                               _is_meta_device, _tensors, _tree_on_meta, physical_memory)

VALUE_BYTES = 4  # float32 training
STATE_COPIES = 4  # weights, gradients, Adam's exp_avg and exp_avg_sq
# The bound when the trial's device cannot be seen: 10^10 parameters are 149 GiB of training
# state; published learned codecs have about 10^7-10^8.
MAX_PARAMS = 10**10
SMALL_NUMEL = 64  # results this small (index lists, channel ramps) are computed for real
TRAIN_MEMORY_COLUMN = "train_memory_gib"  # the plan's column (not an MLflow name)
KEY = "cluster.trial_memory_gb"


# -- the bound --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryLimit:
    bytes: int | None  # None: no memory bound (the trial's device cannot be seen here)
    source: str  # where the figure comes from, for the refusal
    max_params: int | None = None  # the sanity bound on parameters, when there is no memory bound

    def describe(self) -> str:
        if self.bytes is None:
            return f"{self.max_params:.0e} params ({self.source})"
        return f"{self.bytes / GIB:.3g} GiB ({self.source})"


def memory_limit(cluster: dict) -> MemoryLimit:
    """The bound a variant's training memory is checked against (see the module's docstring)."""
    value = cluster.get("trial_memory_gb")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UserError(KEY, value, allowed="a positive number of GiB, or null (what fits the trial's device)")
        return MemoryLimit(int(value * GIB), f"{KEY}={value:g}")
    gpus = cluster.get("trial_gpus") or 0
    if gpus > 0:
        smallest = smallest_gpu_memory()
        if smallest is None:
            return MemoryLimit(None, f"no CUDA device visible here to bound the memory; set {KEY}",
                               max_params=MAX_PARAMS)
        share = min(1.0, float(gpus))
        packed = f" x cluster.trial_gpus={gpus:g}" if share < 1 else ""
        return MemoryLimit(int(smallest * share), f"the smallest GPU here, {smallest / GIB:.1f} GiB{packed}; {KEY}=null")
    memory = physical_memory()
    return MemoryLimit(memory, f"this machine's memory; {KEY}=null")


def smallest_gpu_memory() -> int | None:
    """Bytes of the smallest CUDA device torch sees, or None when it sees none."""

    try:
        count = torch.cuda.device_count()
        return min((torch.cuda.get_device_properties(i).total_memory for i in range(count)), default=None)
    except (RuntimeError, AssertionError):  # a driver that fails to answer: no device seen
        return None


# -- the estimate -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PartMemory:
    params: int = 0
    buffer_bytes: int = 0
    activation_bytes: int = 0

    def __add__(self, other: "PartMemory") -> "PartMemory":
        return PartMemory(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other))))


@dataclass(frozen=True)
class TrainingMemory:
    """What one training step of a variant holds, at a crop and batch."""

    params: int
    state_bytes: int  # weights, gradients, Adam's two moments, buffers
    activation_bytes: int  # saved for backward

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes

    @property
    def gib(self) -> float:
        return self.total_bytes / GIB

    @classmethod
    def of(cls, part: PartMemory) -> "TrainingMemory":
        return cls(part.params, STATE_COPIES * VALUE_BYTES * part.params + part.buffer_bytes, part.activation_bytes)


class MemoryModel:
    """Training memory of variants at one crop and batch, each distinct part measured once."""

    def __init__(self, crop: int, batch: int):
        self.crop, self.batch = crop, batch
        self._parts: dict[tuple, PartMemory | PartTooLarge] = {}
        self._fake = None
        self.forwards = {"meta": 0, "fake": 0}  # parts whose training forward ran each way

    @property
    def parts_measured(self) -> int:
        return len(self._parts)

    def estimate(self, spec) -> TrainingMemory:
        """The variant's training memory; PartTooLarge when a part is stopped while built."""
        from models import parse_spec

        spec = parse_spec(spec)
        return TrainingMemory.of(self.part("transform", spec) + self.part("latent", spec))

    def prepare(self, specs: Iterable, *, workers: int = 1, progress: bool = False) -> None:
        """Measure every distinct part of `specs` now, in `workers` processes when more than one."""
        from sweep.costs import distinct_parts, in_processes

        todo = distinct_parts(specs, self._parts)
        if workers <= 1 or len(todo) < 2 * workers:
            for kind, spec in todo.values():
                try:
                    self.part(kind, spec)
                except PartTooLarge:
                    pass  # remembered; estimate() raises it for every variant with this part
            return
        setup = (self.crop, self.batch)
        for key, found in in_processes(_measure_part_in_worker, setup, list(todo.values()), workers, progress,
                                       "measuring training memory"):
            self._parts[key] = found

    def part(self, kind: str, spec) -> PartMemory:
        from models import parse_spec
        from sweep.costs import part_key

        spec = parse_spec(spec)
        key = part_key(kind, spec)
        if key not in self._parts:
            try:
                self._parts[key] = self._measure(kind, spec)
            except PartTooLarge as err:  # remembered: every variant with this part is refused fast
                self._parts[key] = err
        found = self._parts[key]
        if isinstance(found, PartTooLarge):
            raise found
        return found

    def _measure(self, kind: str, spec) -> PartMemory:
        modules, how = self._build(kind, spec)
        params = sum(p.numel() for m in modules for p in m.parameters())
        buffers = sum(b.numel() * b.element_size() for m in modules for b in m.buffers())
        return PartMemory(params, buffers, self._activations(kind, spec, modules, how))

    def _activations(self, kind: str, spec, modules: tuple, how: str) -> int:
        """Saved bytes of a training forward: on meta (fast), else on fake tensors."""
        try:
            saved = self.meta_activations(kind, spec, modules if how == "meta" else tuple(_on_meta(m) for m in modules))
            self.forwards["meta"] += 1
            return saved
        except Exception:  # noqa: BLE001 - a forward that needs more than meta gives: fake it
            pass
        self.forwards["fake"] += 1
        return self.fake_activations(kind, spec)  # rebuilt: the modules above may be on meta by now

    def meta_activations(self, kind: str, spec, modules: tuple) -> int:
        with _SmallValuesOnCPU(), torch.enable_grad():
            return _saved_bytes(modules, lambda: _forward(kind, spec, modules, self.batch, self.crop, "meta"))

    def fake_activations(self, kind: str, spec) -> int:
        fake = self._fake_mode()
        modules, how = self._build(kind, spec)
        if how == "meta":  # fake tensors of the same shapes (initialisers such as trunc_normal_ read values)
            with fake:
                modules = tuple(m.to_empty(device="cpu") for m in modules)
        with fake, _SmallValuesReal(), torch.enable_grad():
            return _saved_bytes(modules, lambda: _forward(kind, spec, modules, self.batch, self.crop, "cpu"), fake)

    def _build(self, kind: str, spec) -> tuple[tuple, str]:
        """The part's modules and how they were built: on meta, or under FakeTensorMode where a
        constructor computes with CPU tensors (GDN) or reads values (channel ramps)."""
        try:
            with torch.device("meta"), CreationGuard(kind, SHAPES_ONLY_LIMIT, shapes_only=True):
                return tuple(m.train() for m in _builder(kind)(spec)), "meta"
        except PartTooLarge:
            raise
        except Exception:  # noqa: BLE001 - a constructor that computes with CPU tensors: fake it
            pass
        return self._build_fake(kind, spec), "fake"

    def _build_fake(self, kind: str, spec) -> tuple:
        with self._fake_mode(), _SmallValuesReal(), CreationGuard(kind, SHAPES_ONLY_LIMIT):
            return tuple(m.train() for m in _builder(kind)(spec))

    def _fake_mode(self):
        if self._fake is None:
            # allow_non_fake_inputs: the small real tensors of _SmallValuesReal meet fake ones
            self._fake = FakeTensorMode(allow_non_fake_inputs=True)
        return self._fake


def _builder(kind: str):
    from sweep.costs import _build_latent, _build_transform

    return _build_transform if kind == "transform" else _build_latent


def _forward(kind: str, spec, modules: tuple, batch: int, crop: int, device: str):
    """One training forward of a part with its share of the loss (jobs.loss), as models.codec
    and jobs.train run it: the transforms see the padded image and give x_hat for the MSE; the
    latent codec sees y and gives the likelihoods for the rate."""
    from jobs.loss import likelihood_bits
    from models.codec import ImageCodec
    from sweep.costs import _NoLatent
    from torch import nn

    if kind == "transform":
        g_a, g_s = modules
        codec = ImageCodec(spec, g_a, g_s, _NoLatent())
        x = torch.empty(batch, 3, crop, crop, device=device)
        y = g_a(codec.pad(x))
        # g_s's input comes from the latent codec (it depends on the weights there): a leaf here
        x_hat = g_s(torch.empty(y.shape, device=device, requires_grad=True))[..., :crop, :crop]
        return torch.mean((x_hat - x) ** 2)
    (latent,) = modules
    codec = ImageCodec(spec, nn.Identity(), nn.Identity(), latent)
    y_shape, _ = codec.latent_shapes(crop, crop, batch)
    return likelihood_bits(latent(torch.empty(y_shape, device=device, requires_grad=True))["likelihoods"])


def _on_meta(module):
    """`module` (ours, built under FakeTensorMode) with its parameters and buffers replaced by
    meta tensors of the same shapes."""
    for sub in module.modules():
        for name, tensor in list(sub._parameters.items()):
            if tensor is not None:
                sub._parameters[name] = torch.nn.Parameter(_meta_like(tensor), tensor.requires_grad)
        for name, tensor in list(sub._buffers.items()):
            if tensor is not None:
                sub._buffers[name] = _meta_like(tensor)
    return module


def _meta_like(tensor):
    return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")


def _saved_bytes(modules: tuple, forward, fake=None) -> int:
    """Bytes of the tensors autograd saves while `forward()` runs: one count per storage,
    parameters and buffers left out (they are the state)."""
    # Storages are told apart by address, so every one looked at stays alive until the count
    # is done: a weight that a forward replaces (compressai's masked convolutions assign
    # weight.data) must not leave its address to an activation.
    alive = []

    def storage_id(tensor) -> int:
        storage = tensor.untyped_storage()
        alive.append(storage)
        return storage._cdata

    held = set()
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            held.add(storage_id(tensor))
            if fake is not None and not _is_fake(tensor):  # a small real one takes part as its fake copy
                held.add(storage_id(fake.from_tensor(tensor)))
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = storage_id(tensor)
        if storage not in held:
            saved[storage] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(saved.values())


class _SmallValuesReal(TorchFunctionMode):
    """Under FakeTensorMode: a call that has no fake or meta tensor among its arguments and a
    result of at most SMALL_NUMEL elements (predicted on meta) runs for real."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = _tensors(args, kwargs)
        if all(not _is_fake(t) and t.device.type != "meta" for t in tensors):
            with unset_fake_temporarily():
                if _small(func, args, kwargs, tensors):
                    return func(*args, **kwargs)
        return func(*args, **kwargs)


class _SmallValuesOnCPU(TorchFunctionMode):
    """On the meta device: a call that has no meta tensor among its arguments and a result of
    at most SMALL_NUMEL elements (predicted on meta) runs for real on the CPU, so code that
    reads values works; any other call runs on meta, CPU tensors moved there (but 0-dim ones:
    torch takes a CPU scalar with any device, and a dim read from one must stay readable)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = _tensors(args, kwargs)
        if all(t.device.type != "meta" for t in tensors):
            if _small(func, args, kwargs, tensors):
                on_cpu = {**kwargs, "device": "cpu"} if _is_meta_device(kwargs.get("device")) else kwargs
                return func(*args, **on_cpu)
            if not tensors:  # a factory makes it on meta; anything else (no device argument) runs as it is
                try:
                    return func(*args, **{**kwargs, "device": "meta"})
                except TypeError:
                    return func(*args, **kwargs)
        to_meta = lambda t: t.to("meta") if t.dim() and t.device.type != "meta" else t  # noqa: E731
        args, kwargs = tree_map_only(torch.Tensor, to_meta, (args, kwargs))
        return func(*args, **kwargs)


def _small(func, args, kwargs, tensors) -> bool:
    if any(t.numel() > SMALL_NUMEL for t in tensors):
        return False
    try:  # the result's size, predicted on meta
        out = func(*_tree_on_meta(args), **(_tree_on_meta(kwargs) if tensors else {**kwargs, "device": "meta"}))
    except Exception:  # noqa: BLE001 - a value read (.tolist(), int()) of small real tensors
        return bool(tensors)
    return sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)) <= SMALL_NUMEL


def _measure_part_in_worker(setup: tuple, kind: str, spec: dict) -> tuple[tuple, PartMemory | PartTooLarge]:
    from sweep.costs import part_key

    model = memory_model(*setup)
    try:
        return part_key(kind, spec), model.part(kind, spec)
    except PartTooLarge as err:
        return part_key(kind, spec), err


@functools.lru_cache(maxsize=None)
def memory_model(crop: int, batch: int) -> MemoryModel:
    """The process's shared MemoryModel for a crop, batch and bound: the plan and the sweep's
    check measure each part once."""
    return MemoryModel(crop, batch)


# -- the check --------------------------------------------------------------------------------
def default_workers() -> int:
    """Processes that measure parts when the caller does not say (as `rdc plan --workers`)."""
    return min(os.cpu_count() or 1, 8)


def training_memory(variants: Iterable, cfg: dict, workers: int | None = None) -> dict[str, TrainingMemory | PartTooLarge]:
    """variant_id -> its training memory at train.crop x train.batch_size (or the PartTooLarge
    that stopped one of its parts)."""
    variants = list(variants)
    model = memory_model(cfg["train"]["crop"], cfg["train"]["batch_size"])
    model.prepare([v.spec for v in variants], workers=default_workers() if workers is None else workers)
    out: dict[str, TrainingMemory | PartTooLarge] = {}
    for variant in variants:
        try:
            out[variant.variant_id] = model.estimate(variant.spec)
        except PartTooLarge as err:
            out[variant.variant_id] = err
    return out


@dataclass(frozen=True)
class Offender:
    variant: object  # sweep.variant.Variant
    found: TrainingMemory | PartTooLarge

    def figure(self) -> str:
        found = self.found
        if isinstance(found, PartTooLarge):
            return (f"its {found.part_name} need more than {_gib(found.created_bytes)} for their weights alone "
                    f"(at least {_count(found.created_bytes // VALUE_BYTES)} params; stopped at a tensor {list(found.shape)})")
        return (f"needs {_gib(found.total_bytes)} to train ({_count(found.params)} params: {_gib(found.state_bytes)} of weights, "
                f"gradients and Adam state, {_gib(found.activation_bytes)} of activations)")


def _gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.3g} GiB"


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"{n:.3g}"


def offenders(variants: Iterable, cfg: dict, workers: int | None = None) -> list[Offender]:
    """The variants above the bound, in the space's order."""
    variants = list(variants)
    limit = memory_limit(cfg["cluster"])
    memory = training_memory(variants, cfg, workers)
    out = []
    for variant in variants:
        found = memory[variant.variant_id]
        if isinstance(found, PartTooLarge) or (limit.bytes is not None and found.total_bytes > limit.bytes) or \
                (limit.max_params is not None and found.params > limit.max_params):
            out.append(Offender(variant, found))
    return out


def check_cost_bound(variants: Iterable, cfg: dict, workers: int | None = None) -> None:
    """Refuse (UserError, one line) when a variant's training memory at train.crop x
    train.batch_size exceeds the bound: the first such variant, its figure, how many exceed."""
    variants = list(variants)
    limit = memory_limit(cfg["cluster"])
    over = offenders(variants, cfg, workers)
    if over:
        raise refusal(over, len(variants), limit, cfg["train"])


def refusal(over: list[Offender], total: int, limit: MemoryLimit, train: dict) -> UserError:
    first = over[0]
    variant = first.variant
    needed = [o.found.total_bytes for o in over if isinstance(o.found, TrainingMemory)]
    if limit.bytes is not None and len(needed) == len(over):
        more = f"{KEY}={math.ceil(max(needed) / GIB * 1.1)} where the trial's device has that much"
        allowed = f"variants within the bound (a smaller width, train.crop or train.batch_size), or {more}"
    else:
        allowed = "variants within the bound (a smaller width)"
    bound = f"the bound of {limit.describe()}" if limit.bytes is not None else f"the sanity bound of {limit.describe()}"
    at = f"batch {train['batch_size']} x 3 x {train['crop']} x {train['crop']} (train.batch_size, train.crop)"
    reason = (f"{len(over)} of {total} variants exceed {bound} at {at}; the first, {variant.variant_id} "
              f"{variant.family} {variant.label()}, {first.figure()}")
    return UserError("search_space", None, reason=reason, allowed=allowed)


class BoundedCosts:
    """A CostFn for sweep.space.expand that measures every variant's training memory before any
    is costed: a space with budget constraints costs its variants while it expands, and a part
    too large to build (an absurd width) is refused here, with the cost bound's line, rather
    than by sweep.costs. A variant with a finite figure above the bound is left to the budgets
    (they may remove it); check_cost_bound refuses what is left after them."""

    def __init__(self, cfg: dict, costs=None, workers: int | None = None):
        from sweep.costs import cost_model

        self.cfg, self.costs, self.workers = cfg, costs or cost_model(), workers

    def prepare(self, specs: Iterable, **kwargs) -> None:
        specs = list(specs)
        variants = [_variant_of(spec) for spec in specs]
        memory = training_memory(variants, self.cfg, self.workers)
        stopped = [Offender(v, memory[v.variant_id]) for v in variants if isinstance(memory[v.variant_id], PartTooLarge)]
        if stopped:
            raise refusal(stopped, len(variants), memory_limit(self.cfg["cluster"]), self.cfg["train"])
        self.costs.prepare(specs, **kwargs)

    def __call__(self, spec) -> dict:
        return self.costs(spec)


def _variant_of(spec: dict):
    """A Variant for a canonical spec (its family's YAML name is not known here)."""
    from models import parse_spec
    from sweep.variant import Variant

    parsed = parse_spec(spec)
    return Variant.from_canonical(parsed.to_dict(), parsed.family, "")
