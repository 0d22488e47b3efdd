"""What a variant costs without training it: params and decode/encode FLOPs per pixel, exact.

Building every model with real weights and counting it takes up to a second per variant here
(random init of millions of weights dominates), and compressai's GDN cannot be built on the meta
device. `CostModel` is the fast way, and it is exact:
  - a model is two parts: the transforms (g_a, g_s), which depend only on (transform, M), and
    the latent codec (h_a, h_s, entropy-parameter networks), which depends only on
    (entropy, hyper, M). Params and FLOPs of the model are the sums of its parts'. Families
    share parts, so a space has far fewer distinct parts than variants (paper: 122 for 592);
  - each part is built once without initialising weights: on the meta device, or under torch's
    FakeTensorMode where a constructor computes with CPU tensors (GDN); real weights only for
    a part neither can build;
  - jobs.profile.count_flops counts each part on inputs of the full reference size: the same
    operators on the same shapes as jobs.profile's count of the whole real model. Parts are
    costed in parallel worker processes (counting Swin stages dominates the time).
tests/sweep/test_plan_costs.py checks the fast numbers equal the slow ones on every family;
`rdc plan --verify N` repeats that check on N variants of any space (a new component, say).

The space's budget constraints (`max: {key: decode_kflops_per_px, ...}`) and `rdc plan` both
read costs from here (reference_costs at the reference size); this module imports nothing of
sweep.space or sweep.plan.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

from jobs.profile import REFERENCE_HEIGHT, REFERENCE_WIDTH
from rdc import names
from sweep.build_guard import SHAPES_ONLY_LIMIT, CreationGuard, PartTooLarge, physical_memory
from sweep.variant import canonical_json

# The cost keys, in the plan's column order: what budgets may bound and the plan reports.
COST_COLUMNS = (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX,
                names.ENCODE_KFLOPS_PER_PX, names.ENCODE_KMACS_PER_PX)


@dataclass(frozen=True)
class PartCost:
    params: int = 0
    decode_flops: int = 0
    encode_flops: int = 0

    def __add__(self, other: "PartCost") -> "PartCost":
        return PartCost(self.params + other.params, self.decode_flops + other.decode_flops,
                        self.encode_flops + other.encode_flops)


PARTS = ("transform", "latent")
STRATEGIES = ("meta", "fake", "real")
# What building a part may create (sweep.build_guard.CreationGuard): on meta or fake tensors,
# what torch can represent; with real weights, half this machine's memory.


class CostModel:
    """Params and FLOPs per pixel of variants, each distinct part built and counted once.

    A part is built the first way that works, in `strategies` order: on the meta device
    (fastest; most layers), under FakeTensorMode (GDN, whose constructor computes with CPU
    tensors), or with real weights counted as a meta copy (anything else). ("real",) is the
    slow way, for checking. `prepare(specs, workers)` costs the distinct parts of many specs
    in parallel processes; `costs(spec)` then only adds cached parts.
    """

    def __init__(self, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH, *,
                 strategies: tuple[str, ...] = STRATEGIES, workers: int = 1):
        if not strategies or set(strategies) - set(STRATEGIES):
            raise ValueError(f"strategies must be drawn from {STRATEGIES}")
        self.height, self.width, self.strategies = height, width, tuple(strategies)
        self.workers = workers  # processes prepare() uses by default
        self._parts: dict[tuple, PartCost] = {}
        self.built_by = {how: 0 for how in STRATEGIES}  # parts built each way
        self._preferred: dict[tuple, str] = {}  # the way that worked last for these component types
        self._fake = None

    @property
    def parts_built(self) -> int:
        return len(self._parts)

    def costs(self, spec) -> dict[str, float]:
        """The plan's cost columns for one spec (mapping or ModelSpec)."""
        from models import parse_spec

        spec = parse_spec(spec)
        total = self.part("transform", spec) + self.part("latent", spec)
        pixels = self.height * self.width
        return {
            names.PARAMS: total.params,
            names.DECODE_KFLOPS_PER_PX: total.decode_flops / pixels / 1e3,
            names.DECODE_KMACS_PER_PX: total.decode_flops / 2 / pixels / 1e3,
            names.ENCODE_KFLOPS_PER_PX: total.encode_flops / pixels / 1e3,
            names.ENCODE_KMACS_PER_PX: total.encode_flops / 2 / pixels / 1e3,
        }

    __call__ = costs  # a CostFn for sweep.space.expand

    def part(self, kind: str, spec) -> PartCost:
        from models import parse_spec
        from models.errors import SpecError

        spec = parse_spec(spec)
        key = part_key(kind, spec)
        if key not in self._parts:
            try:
                self._parts[key], how = self._first_that_works(kind, spec)
            except SpecError as err:  # a component that refuses to build: say which spec
                raise PartError.of(kind, _plain_spec(spec), err) from None
            self.built_by[how] += 1
        return self._parts[key]

    def prepare(self, specs: Iterable, *, workers: int | None = None, progress: bool = False) -> None:
        """Cost every distinct part of `specs` now, in `workers` processes when more than one."""
        workers = self.workers if workers is None else workers
        todo = distinct_parts(specs, self._parts)
        if not todo:
            return
        if workers <= 1 or len(todo) < 2 * workers:
            for kind, spec in with_progress(list(todo.values()), progress, "costing parts"):
                self.part(kind, spec)
            return
        setup = (self.height, self.width, self.strategies)
        for key, cost, how in in_processes(_cost_part_in_worker, setup, list(todo.values()), workers, progress,
                                           "costing parts"):
            self._parts[key] = cost
            self.built_by[how] += 1

    def _first_that_works(self, kind: str, spec) -> tuple[PartCost, str]:
        types = (kind,) + tuple(c["type"] for c in _components(kind, spec))
        order = sorted(self.strategies, key=lambda how: how != self._preferred.get(types))
        for how in order[:-1]:
            try:
                cost = self._measure(kind, spec, how)
            except PartTooLarge:  # no other way builds it smaller
                raise
            except Exception:  # noqa: BLE001 - this part cannot be built this way: try the next
                continue
            self._preferred[types] = how
            return cost, how
        return self._measure(kind, spec, order[-1]), order[-1]  # its errors are the user's

    def _measure(self, kind: str, spec, how: str) -> PartCost:
        import contextlib

        import torch
        from jobs.profile import on_meta

        build, count = (_build_transform, _count_transform) if kind == "transform" else (_build_latent, _count_latent)
        context = {"meta": lambda: torch.device("meta"), "fake": self._fake_mode,
                   "real": contextlib.nullcontext}[how]
        # Every tensor the constructor creates is counted before it exists: an absurd width
        # stops here (PartTooLarge), before an overflow on meta or an allocation for real.
        limit = physical_memory() // 2 if how == "real" else SHAPES_ONLY_LIMIT
        with context(), CreationGuard(kind, limit, shapes_only=how == "meta"):
            modules = build(spec)
            params = sum(p.numel() for module in modules for p in module.parameters())
            if how == "real":  # counted as weightless meta copies, as jobs.profile counts a model
                counted, device = [on_meta(module) for module in modules], "meta"
            elif how == "meta":  # a constructor's stray CPU tensors (compressai makes some) join them
                counted, device = [module.to("meta").eval() for module in modules], "meta"
            else:
                counted, device = [module.eval() for module in modules], "cpu"
        tensor = functools.partial(_zeros, device=device)
        with self._fake_mode() if how == "fake" else contextlib.nullcontext():
            decode, encode = count(spec, self.height, self.width, *counted, tensor=tensor)
        return PartCost(params, decode, encode)

    def _fake_mode(self):
        from torch._subclasses.fake_tensor import FakeTensorMode

        if self._fake is None:
            self._fake = FakeTensorMode()
        return self._fake


class PartError(Exception):
    """A part of `spec` refused to build (a SpecError); plain fields, so it crosses processes."""

    def __init__(self, kind: str, spec: dict, key: str, value, allowed: str):
        self.kind, self.spec, self.key, self.value, self.allowed = kind, spec, key, value, allowed
        super().__init__(kind, spec, key, value, allowed)

    @classmethod
    def of(cls, kind: str, spec: dict, error) -> "PartError":
        return cls(kind, spec, error.key, error.value, error.allowed)

    def __str__(self) -> str:
        return f"{self.kind}: {self.key}={self.value!r}: allowed: {self.allowed}"


def _plain_spec(spec) -> dict:
    from models import parse_spec

    return parse_spec(spec).to_dict()


def distinct_parts(specs: Iterable, known) -> dict[tuple, tuple[str, dict]]:
    """part_key -> (kind, canonical spec) of every part of `specs` whose key is not in `known`."""
    from models import parse_spec

    todo: dict[tuple, tuple[str, dict]] = {}
    for raw in specs:
        spec = parse_spec(raw)
        for kind in PARTS:
            key = part_key(kind, spec)
            if key not in known and key not in todo:
                todo[key] = (kind, spec.to_dict())
    return todo


def part_key(kind: str, spec) -> tuple:
    """What a part's cost depends on: (transform, M) or (entropy, hyper, M)."""
    from models import parse_spec

    spec = parse_spec(spec)
    return (kind, spec.M) + tuple(canonical_json(c) for c in _components(kind, spec))


def _components(kind: str, spec) -> tuple[dict, ...]:
    from models import parse_spec, registry

    spec = parse_spec(spec)
    parts = (spec.transform,) if kind == "transform" else (spec.entropy, spec.hyper)
    return tuple(registry.to_plain(c) for c in parts)


# The two parts mirror models.factory.build; the codec assembled around a part gives the latent
# shapes and the padding as the real model computes them, and jobs.profile.count_flops applies
# the project's FLOPs conventions. The exactness test guards the mirror.
def _build_transform(spec) -> tuple:
    return tuple(spec.transform.build(spec.M))


def _count_transform(spec, height: int, width: int, g_a, g_s, *, tensor) -> tuple[int, int]:
    from jobs.profile import count_flops
    from models.codec import ImageCodec

    codec = ImageCodec(spec, g_a, g_s, _NoLatent())
    y_shape, _ = codec.latent_shapes(height, width)
    decode = count_flops(g_s, tensor(y_shape))
    encode = count_flops(lambda x: g_a(codec.pad(x)), tensor((1, 3, height, width)))
    return decode, encode


def _build_latent(spec) -> tuple:
    z_channels = spec.hyper.z_channels(spec.M)
    h_a, h_s = spec.hyper.build(spec.M, spec.entropy.hyper_out_channels(spec.M))
    return (spec.entropy.build(spec.M, h_a, h_s, z_channels),)


def _count_latent(spec, height: int, width: int, latent, *, tensor) -> tuple[int, int]:
    from jobs.profile import count_flops
    from models.codec import ImageCodec
    from torch import nn

    codec = ImageCodec(spec, nn.Identity(), nn.Identity(), latent)
    y_shape, z_shape = codec.latent_shapes(height, width)
    decode = count_flops(latent.decode_networks, tensor(y_shape), tensor(z_shape))
    encode = count_flops(latent.encode_networks, tensor(y_shape))
    return decode, encode


def _zeros(shape, *, device: str):
    import torch

    return torch.zeros(shape, device=device)


class _NoLatent:
    """Stands in for the latent codec where a transform part only needs y's shape."""

    z_channels = 1


def in_processes(worker, setup: tuple, parts: list[tuple[str, dict]], workers: int, progress: bool, description: str):
    """`worker(setup, kind, spec)` of every (kind, spec) of `parts`, run by a pool of fresh
    processes, as they finish (sweep.cost_bound measures parts this way too)."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork starts workers with torch and the models already imported (a fresh interpreter takes
    # seconds to import them); torch resets its thread pools in forked children, as its
    # DataLoader relies on. A process with other threads alive (Ray, say) could fork a held
    # lock, so it gets a forkserver that imports this module once; no fork: spawn.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = [pool.submit(worker, setup, kind, spec) for kind, spec in parts]
        for future in with_progress(as_completed(futures), progress, description, total=len(futures)):
            yield future.result()


_WORKER_MODELS: dict[tuple, CostModel] = {}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # the pool is the parallelism


def _cost_part_in_worker(setup: tuple, kind: str, spec: dict) -> tuple[tuple, PartCost, str]:
    height, width, strategies = setup
    model = _WORKER_MODELS.setdefault(setup, CostModel(height, width, strategies=strategies))
    before = dict(model.built_by)
    cost = model.part(kind, spec)
    how = next(h for h in STRATEGIES if model.built_by[h] != before[h])
    return part_key(kind, spec), cost, how


@functools.lru_cache(maxsize=None)
def cost_model(height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> CostModel:
    """The process's shared CostModel for a size: the plan and budget constraints reuse its parts."""
    return CostModel(height, width)


def reference_costs(spec: dict) -> dict[str, float]:
    """Costs at the reference size: what `max: {key: decode_kflops_per_px, ...}` budgets compare."""
    return cost_model(REFERENCE_HEIGHT, REFERENCE_WIDTH).costs(spec)


def measured_costs(spec: dict, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """The slow way the fast one must equal: build the whole model with real weights, count it."""
    from jobs.profile import count_params, flops_metrics
    from models import build

    model = build(spec)
    return {names.PARAMS: count_params(model), **flops_metrics(model, height, width)}


def with_progress(items: Iterable, enabled: bool, description: str, total: int | None = None):
    """`items`, with a progress bar on stderr when `enabled`."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, total=total, console=Console(stderr=True), transient=True)
