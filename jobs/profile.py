"""What a model costs: parameters, FLOPs per pixel (decode and encode), and runtime on a device.

FLOPs follow the study's convention (REFERENCE.md): convolutions and matrix products only,
FLOPs = 2 x MACs, transposed convolutions at input resolution (H_in * W_in * k^2 * C_in * C_out
MACs), attention's QK^T and AV products counted; elementwise work (GDN's square, softmax,
LayerNorm, activations) counts zero. Decode FLOPs are g_s + h_s + every entropy-parameter
network a decoder runs, entropy coding excluded; encode FLOPs are everything `compress` runs.
Counting is torch's FlopCounterMode on a weightless copy of the model on the meta device, fed
latents of the shapes a height x width image gives, so no arithmetic is done (the fast path).

Runtime follows the protocol the study asks for: batch 1, one image at a time, warm-up calls
first, the device synchronised before every clock read, the median of the repeats and their
coefficient of variation, CPU threads pinned and part of the device's name, subnormal floats
flushed to zero (they slow CPU math by image content, not by model) and freed memory kept in
the process (so calls do not page-fault their activations in again). Three stages are
timed: decode from the real bitstream (entropy decoding included), the decode networks alone
(no entropy coding, as in the study's Fig. 4) and encode to a real bitstream.

On a shared machine a neighbour steals the CPU while the clock runs. So each call is also timed
in CPU time (the calling thread's with one torch thread, the process's with more), the three
stages are interleaved in one window (ABBA order, so decode minus decode-networks compares like
with like), and an image whose window shows interference (wall well above CPU time, or a high
cv, or a canary workload's CPU time above the best this process has seen: a neighbour on the same
core slows the CPU itself) is measured again a bounded number of times. What still looks disturbed is reported
(RuntimeProfile.suspects, names.TAG_RUNTIME_SUSPECT) instead of being passed off as true.
"""

from __future__ import annotations

import copy
import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from jobs.data import Image
from jobs.device import clock, device_name, flushed_denormals, full_fp32, pinned_threads, steady_allocator
from rdc import names

# Kodak's size: the study reports per-pixel costs on Kodak (512 x 768 = 393,216 pixels).
REFERENCE_HEIGHT, REFERENCE_WIDTH = 512, 768


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- FLOPs -------------------------------------------------------------------------------------
def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # QK^T then AV, 2 FLOPs per multiply-add: the same as the bmm's the meta device decomposes to.
    batch, heads, queries, dim = query_shape
    keys, value_dim = key_shape[-2], value_shape[-1]
    return 2 * batch * heads * queries * keys * (dim + value_dim)


def _multi_head_attention_flops(query_shape, key_shape, value_shape, embed_dim, *args, out_shape=None, **kwargs) -> int:
    # nn.MultiheadAttention's fused inference kernel (batch first): q, k, v and output
    # projections, plus QK^T and AV over all heads together.
    batch, queries, _ = query_shape
    keys = key_shape[1]
    projections = 2 * batch * embed_dim * embed_dim * (2 * queries + 2 * keys)
    return projections + 2 * 2 * batch * queries * keys * embed_dim


# torch registers formulas for the CUDA attention kernels only. On CPU (and under FakeTensorMode)
# F.scaled_dot_product_attention and nn.MultiheadAttention's inference path dispatch to fused
# kernels that would otherwise count 0; these formulas equal the meta device's decomposition.
_EXTRA_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
    torch.ops.aten._native_multi_head_attention: _multi_head_attention_flops,
}


def flop_counter() -> FlopCounterMode:
    """torch's FlopCounterMode with the formulas above: use it wherever FLOPs are counted."""
    return FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs (2 x MACs) of the convolutions and matrix products `fn(*args, **kwargs)` runs."""
    counter = flop_counter()
    with counter, torch.no_grad():
        fn(*args, **kwargs)
    return counter.get_total_flops()


def on_meta(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` whose parameters and buffers live on the meta device (shapes only).

    The copy never materialises the weights, so counting a 100M-parameter model costs no memory.
    """
    memo = {}
    for tensor in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = torch.nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, torch.nn.Parameter) else meta
    return copy.deepcopy(model, memo).eval()


def _per_pixel(flops: int, height: int, width: int) -> dict[str, float]:
    pixels = height * width
    return {"kflops_per_px": flops / pixels / 1e3, "kmacs_per_px": flops / 2 / pixels / 1e3}


def decode_flops(model, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """Decode FLOPs and MACs per pixel of a height x width image (kflops_per_px, kmacs_per_px)."""
    meta_model = on_meta(model)
    y_shape, z_shape = meta_model.latent_shapes(height, width)
    y_hat = torch.zeros(y_shape, device="meta")
    z_hat = torch.zeros(z_shape, device="meta")
    return _per_pixel(count_flops(meta_model.decode_networks, y_hat, z_hat), height, width)


def encode_flops(model, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """Encode FLOPs and MACs per pixel: g_a, h_a, h_s and the entropy-parameter networks."""
    meta_model = on_meta(model)
    x = torch.zeros(1, 3, height, width, device="meta")
    return _per_pixel(count_flops(meta_model.encode_networks, x), height, width)


def flops_metrics(model, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """Decode and encode cost per pixel under their rdc.names metric names."""
    decode, encode = decode_flops(model, height, width), encode_flops(model, height, width)
    return {
        names.DECODE_KFLOPS_PER_PX: decode["kflops_per_px"],
        names.DECODE_KMACS_PER_PX: decode["kmacs_per_px"],
        names.ENCODE_KFLOPS_PER_PX: encode["kflops_per_px"],
        names.ENCODE_KMACS_PER_PX: encode["kmacs_per_px"],
    }


# -- runtime -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuntimeProtocol:
    """How runtimes are measured. `threads`: torch's CPU threads while timing (None: as set);
    `flush_denormals`, `steady_allocator`: see jobs.device. An image whose window shows
    interference (a stage's median wall time above `max_wall_over_cpu` x its median CPU time, its
    cv above `max_cv`, or the canary's CPU time above `max_wall_over_cpu` x its best) is measured again, at most `remeasure` more times; what still fails is
    reported by RuntimeProfile.suspects()."""

    warmup: int = 1
    repeats: int = 5
    threads: int | None = None
    flush_denormals: bool = True
    steady_allocator: bool = True
    max_cv: float = 0.05
    max_wall_over_cpu: float = 1.05
    remeasure: int = 2

    def __post_init__(self):
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError(f"warmup >= 0 and repeats >= 1 required, got {self.warmup}, {self.repeats}")
        if self.remeasure < 0 or self.max_cv <= 0 or self.max_wall_over_cpu < 1:
            raise ValueError(f"remeasure >= 0, max_cv > 0 and max_wall_over_cpu >= 1 required, got "
                             f"{self.remeasure}, {self.max_cv}, {self.max_wall_over_cpu}")


def _robust_cv(samples: tuple[float, ...]) -> float:
    if len(samples) < 2:
        return float("nan")
    median = statistics.median(samples)
    mad = statistics.median(abs(s - median) for s in samples)
    return 1.4826 * mad / median if median > 0 else float("nan")


@dataclass(frozen=True)
class Timing:
    """Milliseconds of every timed repeat of one call: wall clock, and CPU time (see cpu_clock)
    read around the same call (empty where it was not measured)."""

    samples_ms: tuple[float, ...]
    cpu_ms: tuple[float, ...] = ()

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def cpu_median_ms(self) -> float:
        return statistics.median(self.cpu_ms) if self.cpu_ms else float("nan")

    @property
    def wall_over_cpu(self) -> float:
        """Median wall time / median CPU time: about 1 when nothing took the CPU away (1 thread);
        NaN without CPU times."""
        cpu = self.cpu_median_ms
        return self.median_ms / cpu if cpu > 0 else float("nan")

    @property
    def cv(self) -> float:
        """Robust coefficient of variation: 1.4826 x MAD / median of the repeats.

        For normally distributed timings this estimates stdev / mean, but one repeat stretched
        by the machine (a preempted VM, a page-cache flush) does not dominate it, as it does the
        classic ratio: 14 repeats within 1 % and one at +15 % give 0.9 % here and 4 % classic.
        NaN with a single repeat."""
        return _robust_cv(self.samples_ms)

    @property
    def cv_classic(self) -> float:
        """Sample stdev / mean of the repeats (kept beside the robust cv in the runtime table)."""
        if len(self.samples_ms) < 2:
            return float("nan")
        return statistics.stdev(self.samples_ms) / statistics.fmean(self.samples_ms)

    def interference(self, protocol: RuntimeProtocol, *, check_cpu: bool = True) -> str | None:
        """Why this timing looks disturbed by another process, or None. `check_cpu`: compare wall
        with CPU time (meaningless on a GPU, whose kernels no host clock sees)."""
        reasons = []
        if check_cpu and self.wall_over_cpu > protocol.max_wall_over_cpu:
            reasons.append(f"wall {self.median_ms:.3g} ms vs CPU {self.cpu_median_ms:.3g} ms")
        if self.cv > protocol.max_cv:
            reasons.append(f"cv {100 * self.cv:.1f}%")
        return ", ".join(reasons) or None


def cpu_clock() -> Callable[[], float]:
    """The CPU clock that sees a torch call's work: the calling thread's CPU time when torch runs
    on one thread (exact: no other thread of the process is counted), else the whole process's,
    since torch's intra-op threads work outside the calling thread (an upper bound then: other
    threads of the process, and OpenMP threads spinning while they wait, are counted too)."""
    return time.thread_time if torch.get_num_threads() == 1 else time.process_time


def time_interleaved(calls: dict[str, Callable[[], object]], device: torch.device, warmup: int,
                     repeats: int) -> dict[str, Timing]:
    """Time every call `repeats` times in one window, interleaved: repeat i runs the calls in
    order, repeat i+1 in reverse (ABBA...), so a slow stretch of the machine and the cache state
    one call leaves for the next fall on every call alike, and their differences are fair.
    `warmup` untimed rounds first; the device is synchronised before every clock read."""
    gc.collect()  # before the warm-up: memory it frees is re-faulted by the warm-up, not a timed call
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    read_cpu = cpu_clock()
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    order = list(calls)
    was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one repeat would be charged to that repeat
    try:
        for repeat in range(repeats):
            for name in order if repeat % 2 == 0 else reversed(order):
                start, start_cpu = clock(device), read_cpu()
                calls[name]()
                end = clock(device)
                cpu[name].append((read_cpu() - start_cpu) * 1e3)
                wall[name].append((end - start) * 1e3)
    finally:
        if was_enabled:
            gc.enable()
    return {name: Timing(tuple(wall[name]), tuple(cpu[name])) for name in calls}


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> Timing:
    """Time `fn` `repeats` times after `warmup` untimed calls, synchronising `device` at each read."""
    return time_interleaved({"call": fn}, device, warmup, repeats)["call"]


@dataclass
class ImageRuntime:
    name: str
    height: int
    width: int
    timings: dict[str, Timing]  # stage (names.RUNTIME_STAGES) -> timing
    windows: int = 1  # timing windows measured (1 + re-measurements)
    suspect: dict[str, str] = field(default_factory=dict)  # stage -> why, in the window kept

    @property
    def num_pixels(self) -> int:
        return self.height * self.width


@dataclass
class RuntimeProfile:
    """Runtimes of one model on one device over a set of images."""

    device: str  # jobs.device.device_name while timing (threads included)
    protocol: RuntimeProtocol
    images: list[ImageRuntime] = field(default_factory=list)
    allocator: str = "default"  # "steady" when freed memory was kept in the process
    cpu_clock: str = "thread_time"  # the CPU clock read beside the wall clock (see cpu_clock)

    def summary(self, stage: str) -> dict[str, float]:
        medians = [im.timings[stage].median_ms for im in self.images]
        pixels = sum(im.num_pixels for im in self.images)
        return {
            names.MS: statistics.fmean(medians),
            names.MPS: pixels / (sum(medians) / 1e3) / 1e6,
            names.CV: statistics.fmean(im.timings[stage].cv for im in self.images),
        }

    def cpu_ms(self, stage: str) -> float:
        """Mean over images of the stage's median CPU time (ms), beside names.MS's wall figure."""
        return statistics.fmean(im.timings[stage].cpu_median_ms for im in self.images)

    def metrics(self, device: str | None = None) -> dict[str, float]:
        """Every runtime metric, named for `device` (default: the device measured)."""
        device = device or self.device
        return {
            names.runtime_metric(stage, stat, device): value
            for stage in names.RUNTIME_STAGES
            for stat, value in self.summary(stage).items()
        }

    def suspects(self) -> dict[str, str]:
        """stage -> its figure and why, for every stage some image of which still looked disturbed
        after re-measuring; empty when every runtime can be trusted."""
        out = {}
        for stage in names.RUNTIME_STAGES:
            bad = [im for im in self.images if stage in im.suspect]
            if bad:
                out[stage] = (f"{self.summary(stage)[names.MS]:.4g} ms (CPU {self.cpu_ms(stage):.4g} ms); "
                              f"{len(bad)}/{len(self.images)} images disturbed: "
                              + "; ".join(f"{im.name} {im.suspect[stage]}" for im in bad[:3]))
        return out

    def suspect_tag(self, device: str | None = None) -> str | None:
        """The value of names.TAG_RUNTIME_SUSPECT ("<device>:<stage>: <figure>" per stage, joined
        by " | "), or None when nothing is suspect."""
        device = device or self.device
        found = self.suspects()
        return " | ".join(f"{device}:{stage}: {figure}" for stage, figure in found.items()) or None

    def describe(self, images: str) -> str:
        """One line for the protocol tag: enough to tell whether two measurements compare."""
        p = self.protocol
        text = (f"batch=1 warmup={p.warmup} repeats={p.repeats} images={images}:{len(self.images)} "
                f"clock=perf_counter+sync cpu_clock={self.cpu_clock} interleaved=abba "
                f"remeasure={p.remeasure} max_cv={p.max_cv} max_wall_over_cpu={p.max_wall_over_cpu} "
                f"flush_denormals={p.flush_denormals} allocator={self.allocator} torch={torch.__version__}")
        if self.device.startswith("cuda"):
            text += f" cudnn_benchmark={torch.backends.cudnn.benchmark} tf32=off"
        return text

    def table(self):
        """Per image and stage: median, cv, CPU time, every repeat, the windows measured and
        whether the kept one still looked disturbed (a CSV artifact of the run)."""
        import pandas as pd

        rows = [
            {"image": im.name, "height": im.height, "width": im.width, "stage": stage,
             "median_ms": t.median_ms, "cv": t.cv, "cv_classic": t.cv_classic,
             "cpu_median_ms": t.cpu_median_ms, "windows": im.windows, "suspect": im.suspect.get(stage, ""),
             "samples_ms": " ".join(f"{s:.4f}" for s in t.samples_ms),
             "cpu_samples_ms": " ".join(f"{s:.4f}" for s in t.cpu_ms)}
            for im in self.images for stage, t in im.timings.items()
        ]
        return pd.DataFrame(rows)


# The canary: a fixed piece of CPU work timed in CPU time around every window. A neighbour on the
# same physical core (SMT) or sharing its caches slows the CPU itself, which wall-vs-CPU cannot
# see (both grow alike); the canary's CPU time against the fastest this process has seen can.
_CANARY_SIDE, _CANARY_ROUNDS, _CANARY_RUNS = 160, 16, 5
_canary_best: dict[int, float] = {}  # torch threads -> fastest canary (ms) seen by this process


def canary_ms() -> float:
    """CPU milliseconds of the canary now (the fastest of _CANARY_RUNS runs)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(_CANARY_SIDE, _CANARY_SIDE, generator=generator)
    read_cpu, runs = cpu_clock(), []
    for _ in range(_CANARY_RUNS):
        start = read_cpu()
        b = a
        for _ in range(_CANARY_ROUNDS):
            b = torch.tanh(b @ a)
        runs.append((read_cpu() - start) * 1e3)
    return min(runs)


def cpu_slowdown() -> float:
    """The canary's CPU time now over the fastest this process has seen at this thread count
    (1.0 at best; the first call sets the best)."""
    now, threads = canary_ms(), torch.get_num_threads()
    best = _canary_best[threads] = min(_canary_best.get(threads, now), now)
    return now / best


def _measure_image(calls: dict[str, Callable], device: torch.device, protocol: RuntimeProtocol):
    """(timings, suspect stages, windows) of one image: its stages timed in one interleaved
    window, measured again while some stage looks disturbed (at most protocol.remeasure more
    times); the window kept is the first clean one, else the least disturbed."""
    check_cpu = device.type == "cpu"
    best = None
    for window in range(1 + protocol.remeasure):
        before = cpu_slowdown() if check_cpu else 1.0
        timings = time_interleaved(calls, device, protocol.warmup, protocol.repeats)
        slowdown = max(before, cpu_slowdown()) if check_cpu else 1.0
        suspect = {stage: why for stage, t in timings.items() if (why := t.interference(protocol, check_cpu=check_cpu))}
        if slowdown > protocol.max_wall_over_cpu:  # the same tolerance: 5 % by default
            slow = f"CPU x{slowdown:.2f} slower than its best (canary)"
            suspect = {stage: f"{suspect[stage]}, {slow}" if stage in suspect else slow for stage in timings}
        worst = max((t.wall_over_cpu for t in timings.values() if not math.isnan(t.wall_over_cpu)), default=1.0)
        score = (len(suspect), worst, max(t.cv for t in timings.values()) if protocol.repeats > 1 else 0.0)
        if best is None or score < best[0]:
            best = (score, timings, suspect)
        if not suspect:
            break
    return best[1], best[2], window + 1


@torch.inference_mode()
def profile_runtime(model, images: list[Image], device: torch.device, protocol: RuntimeProtocol) -> RuntimeProfile:
    """Time decode (with and without entropy coding) and encode of every image, batch 1, the
    three stages interleaved in one window per image; images whose window looks disturbed are
    measured again (RuntimeProtocol). The model must have its entropy-coder tables
    (`model.update()`); it is moved to `device`.
    """
    if not images:
        raise ValueError("no images to profile")
    model = model.to(device).eval()
    # Compress and decompress both run under the same flag, so the decoder's entropy parameters
    # match the encoder's bit for bit.
    with (pinned_threads(protocol.threads), flushed_denormals(protocol.flush_denormals), full_fp32(),
          steady_allocator(protocol.steady_allocator) as steady):
        profile = RuntimeProfile(device_name(device), protocol, allocator="steady" if steady else "default",
                                 cpu_clock=cpu_clock().__name__)
        for image in images:
            x = image.tensor().to(device)
            data = model.compress(x)[0]
            decoded = model.decompress(data)
            y_hat, z_hat = decoded["y_hat"], decoded["z_hat"]  # what a decoder holds before g_s
            calls = {
                names.DECODE: lambda: model.decompress(data),
                names.DECODE_NETWORKS: lambda: model.decode_networks(y_hat, z_hat),
                names.ENCODE: lambda: model.compress(x),
            }
            timings, suspect, windows = _measure_image(calls, device, protocol)
            profile.images.append(ImageRuntime(image.name, x.shape[-2], x.shape[-1], timings, windows, suspect))
    return profile
