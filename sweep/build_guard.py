"""What building a model part may create, counted before it exists (sweep.cost_bound and
sweep.costs both build parts under it): a width of 10^9 stops here in milliseconds instead of
allocating, or overflowing on the meta device."""

from __future__ import annotations

import math
import os

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only

GIB = 1 << 30
# What building a part on meta or fake tensors may create before it is stopped: nothing is
# allocated there, so only what torch can represent (a storage's size in bytes is an int64).
SHAPES_ONLY_LIMIT = 1 << 62
REAL_TENSOR_BYTES = 16 << 20  # a build on meta makes no real tensor larger than this


def physical_memory() -> int:
    """Bytes of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read this machine's physical memory")


class PartTooLarge(Exception):
    """Building a part would create more than its CreationGuard allows (what torch can
    represent, on meta): stopped before that tensor existed."""

    def __init__(self, kind: str, created_bytes: int, shape: tuple):
        self.kind, self.created_bytes, self.shape = kind, created_bytes, tuple(shape)
        super().__init__(kind, created_bytes, self.shape)

    @property
    def part_name(self) -> str:
        return "transforms" if self.kind == "transform" else "entropy model and hyper-transforms"

    def __str__(self) -> str:
        return f"its {self.part_name} create more than {self.created_bytes / GIB:.3g} GiB (a tensor {list(self.shape)})"


def _is_fake(tensor) -> bool:
    return isinstance(tensor, FakeTensor)


def _tensors(args: tuple, kwargs: dict) -> list:
    return [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]


def _tree_on_meta(tree):
    return tree_map_only(torch.Tensor, lambda t: t.to("meta"), tree)


def _is_meta_device(device) -> bool:
    return device is not None and torch.device(device).type == "meta"


class CreationGuard(TorchDispatchMode):
    """Counts the bytes of every tensor a build creates before it exists: the ops without
    tensor arguments (empty, zeros, eye, ...) from their sizes, and ops on real CPU tensors
    (a constructor's `torch.Tensor([...]).repeat(channels, 1, 1)`) from their result's shape
    on meta. PartTooLarge once a part has created more than `limit` bytes.

    `shapes_only` (a build on meta): a real tensor above REAL_TENSOR_BYTES is made on meta
    instead, so a wide entropy bottleneck's CPU-side quantiles never allocate; otherwise (a
    build with real weights) it is counted and made as asked."""

    def __init__(self, kind: str, limit: int, *, shapes_only: bool = False):
        super().__init__()
        self.kind, self.limit, self.shapes_only, self.created = kind, limit, shapes_only, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = _tensors(args, kwargs)
        if not tensors:
            shape = _created_shape(func, args, kwargs)
            if shape is not None:
                dtype = kwargs.get("dtype") or torch.get_default_dtype()
                nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
                self._count(nbytes, shape)
                if self.shapes_only and nbytes > REAL_TENSOR_BYTES and not _is_meta_device(kwargs.get("device")):
                    kwargs = {**kwargs, "device": torch.device("meta")}
            return func(*args, **kwargs)
        if all(t.device.type == "cpu" and not _is_fake(t) for t in tensors):
            try:  # the result's size, on meta
                out = func(*_tree_on_meta(args), **_tree_on_meta(kwargs))
            except Exception:  # noqa: BLE001 - no meta kernel, or a value read: small real tensors
                return func(*args, **kwargs)
            results = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            nbytes = sum(t.numel() * t.element_size() for t in results)
            if nbytes > REAL_TENSOR_BYTES:
                self._count(nbytes, tuple(results[0].shape))
                if self.shapes_only:
                    return out
        return func(*args, **kwargs)

    def _count(self, nbytes: int, shape: tuple) -> None:
        self.created += nbytes
        if self.created > self.limit:
            raise PartTooLarge(self.kind, self.created, shape)


def _created_shape(func, args, kwargs) -> tuple | None:
    named = dict(kwargs)
    for argument, value in zip(func._schema.arguments, args):
        named[argument.name] = value
    size = named.get("size")
    if isinstance(size, (list, tuple)) and all(isinstance(s, int) for s in size):
        return tuple(size)
    if isinstance(named.get("n"), int):  # eye(n, m)
        m = named.get("m")
        return (named["n"], m if isinstance(m, int) else named["n"])
    return None
