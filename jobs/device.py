"""The device a measurement runs on: its short stable name, its clock, its thread count.

Names are `cpu-<model>-<threads>t` and `cuda-<gpu>` (e.g. `cpu-amd-epyc-7b13-1t`,
`cuda-h100-80gb-hbm3`). A cloud VM's CPU often reports a generic model ("AMD EPYC", "Intel Xeon
CPU @ 2.20GHz" for several generations); its name then carries the x86 family and model numbers
(`cpu-amd-epyc-f25m17-1t`), so two generations never share a runtime column. The study's point
is that runtime rankings change with the device, so every runtime we log says which device
produced it; the names go into MLflow metric names, hence lower case, digits and '-' only
(never '_', which separates a metric's parts).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
import time
from functools import lru_cache

import torch

from rdc.errors import UserError

DEVICE_KINDS = ("cpu", "cuda")


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu|processor|@.*$|\d+-core", " ", text.lower())
    text = text.replace("nvidia", "").replace("geforce", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


@lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return model_from_cpuinfo(f.read())
    except OSError:
        pass
    import platform

    return _slug(platform.processor() or platform.machine())


def model_from_cpuinfo(text: str) -> str:
    """The CPU's short name from /proc/cpuinfo's first processor: its model name, with the x86
    family/model numbers when the name has no model number, or the ARM implementer and part."""
    first = text.split("\n\n", 1)[0]
    fields = {}
    for line in first.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    if "model name" in fields:
        name = _slug(fields["model name"])
        if not re.search(r"\d", name) and "cpu family" in fields and "model" in fields:
            name += f"-f{fields['cpu family']}m{fields['model']}"
        return name
    if "CPU part" in fields:  # ARM: no model name; implementer (e.g. 0x41 Arm) and part (0xd0c Neoverse N1)
        return _slug(f"arm-{fields.get('CPU implementer', '')}-{fields['CPU part']}")
    return "unknown"


def device_name(device: str | torch.device = "cpu") -> str:
    """The short stable name of `device`; on CPU it includes torch's current thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        import os

        props = torch.cuda.get_device_properties(device)
        return cuda_name(props.name, props.total_memory, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    return f"cpu-{cpu_model()}-{torch.get_num_threads()}t"


def cuda_name(gpu: str, total_memory: int, visible_devices: str) -> str:
    """`cuda-<gpu>`; a MIG slice (CUDA_VISIBLE_DEVICES=MIG-...) reports its parent GPU's name, so
    its memory is added: a 1g.10gb slice of an H100 is not the H100."""
    name = f"cuda-{_slug(gpu)}"
    if "MIG-" in visible_devices and "-mig" not in name:
        name += f"-mig-{round(total_memory / 2**30)}gb"
    return name


def resolve_device(kind: str, *, key: str = "--device") -> torch.device:
    """The torch device for a user's `cpu` / `cuda` (or `cuda:1`), refused if it is not here."""
    if not isinstance(kind, str) or kind.split(":")[0] not in DEVICE_KINDS:
        raise UserError(key, kind, allowed=", ".join(DEVICE_KINDS))
    try:
        device = torch.device(kind)
    except RuntimeError:
        raise UserError(key, kind, allowed="cpu, cuda, cuda:<index>") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(key, kind, reason="torch sees no CUDA device here", allowed="cpu")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise UserError(key, kind, reason=f"only {torch.cuda.device_count()} CUDA device(s)",
                            allowed=", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count())))
        device = torch.device("cuda", index)
    return device


def synchronize(device: torch.device) -> None:
    """Wait for every kernel queued on `device`: CUDA launches are asynchronous, so a clock read
    without this measures the launch, not the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """Seconds on a monotonic clock, read after the device has finished its queued work."""
    synchronize(device)
    return time.perf_counter()


@contextlib.contextmanager
def pinned_threads(threads: int | None):
    """Run with torch's intra-op thread count fixed at `threads` (None: leave it); restore after.

    CPU runtimes scale with the thread count, which is why it is part of the device's name.
    """
    if threads is None:
        yield torch.get_num_threads()
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise UserError("threads", threads, allowed="a positive integer")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def full_fp32():
    """Run float32 math as float32 on CUDA: no TF32 in matmuls or in cuDNN convolutions.

    torch enables TF32 for cuDNN convolutions by default but not for matmuls, so on an A100/H100
    conv-heavy codecs would run on TF32 tensor cores while Swin's matmuls run in full FP32,
    skewing the very runtime ranking the study compares. Restored afterwards.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def flushed_denormals(enabled: bool = True):
    """Run with subnormal floats flushed to zero on the CPU (x86 FTZ/DAZ), then back to torch's
    default (off; torch has no getter for the flag).

    Subnormal values, common in barely trained weights and activations, make x86 float math
    many times slower, depending on the image: timings turn bimodal and content-dependent
    (seen here: one SwinT decode at 26 or 47 ms for two crops of the same size; 34.5 ms for
    both with flushing).
    """
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


# glibc mallopt parameters and their defaults (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


@lru_cache(maxsize=None)
def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def steady_allocator(enabled: bool = True):
    """Keep freed memory in the process while timing (glibc: no mmap'd blocks, no trimming).

    torch's CPU tensors come from malloc; glibc serves large ones with fresh mmaps and hands
    them back on free, so every call page-faults its activations in again: measured here, a
    SwinT decode took 43 ms with 550k page faults per profile, 26 ms with none. Timing the
    kernel's page-fault path is not timing the model (CUDA's caching allocator avoids it on
    GPUs). Yields whether the setting applied (False off glibc); restores the defaults after.
    """
    libc = _glibc() if enabled else None
    applied = bool(libc) and bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    try:
        yield applied
    finally:
        if applied:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
