"""`rdc plan [overrides] [--out plan.csv|plan.parquet]`: what every variant costs, before any training.

The plan expands the space exactly as `rdc sweep` does (sweep.space.expand) and gives each
variant its parameter count and its decode and encode kFLOPs/px and kMACs/px at the profile's
reference size (conf/profile: 512x768, Kodak), in the conventions of jobs.profile.

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
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from jobs.profile import REFERENCE_HEIGHT, REFERENCE_WIDTH
from rdc import names
from rdc.errors import UserError
from sweep.variant import canonical_json

OUT_FORMATS = (".csv", ".parquet")


# -- the fast, exact cost path ---------------------------------------------------------------
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
        from models import parse_spec

        workers = self.workers if workers is None else workers
        todo: dict[tuple, tuple[str, dict]] = {}
        for raw in specs:
            spec = parse_spec(raw)
            for kind in PARTS:
                key = part_key(kind, spec)
                if key not in self._parts and key not in todo:
                    todo[key] = (kind, spec.to_dict())
        if not todo:
            return
        if workers <= 1 or len(todo) < 2 * workers:
            for kind, spec in _progress(list(todo.values()), progress, "costing parts"):
                self.part(kind, spec)
            return
        for key, cost, how in _in_processes(todo, workers, (self.height, self.width, self.strategies), progress):
            self._parts[key] = cost
            self.built_by[how] += 1

    def _first_that_works(self, kind: str, spec) -> tuple[PartCost, str]:
        types = (kind,) + tuple(c["type"] for c in _components(kind, spec))
        order = sorted(self.strategies, key=lambda how: how != self._preferred.get(types))
        for how in order[:-1]:
            try:
                cost = self._measure(kind, spec, how)
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
        with context():
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


def _in_processes(todo: dict, workers: int, setup: tuple, progress: bool):
    """(key, cost, how) of every part of `todo`, costed by a pool of fresh processes."""
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
        futures = [pool.submit(_cost_part_in_worker, setup, kind, spec) for kind, spec in todo.values()]
        for future in _progress(as_completed(futures), progress, "costing parts", total=len(futures)):
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


# -- the table -------------------------------------------------------------------------------
COST_COLUMNS = (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX,
                names.ENCODE_KFLOPS_PER_PX, names.ENCODE_KMACS_PER_PX)


def plan_rows(variants: Iterable, costs: Callable[[dict], dict]) -> list[dict]:
    """One row per variant: id, family, group, label, costs, then every knob as `spec.<path>`."""
    from sweep.variant import flatten_spec

    rows = []
    for variant in variants:
        spec = variant.spec
        row = {names.TAG_VARIANT_ID: variant.variant_id, names.TAG_FAMILY: variant.family, "group": variant.group,
               "label": variant.label()}
        row.update(costs(spec))
        # the same flattening and spelling as the MLflow params, so plan rows join runs
        row.update({names.SPEC_PARAM_PREFIX + k: (str(v) if isinstance(v, list) else v)
                    for k, v in flatten_spec(spec).items()})
        row[names.SPEC_JSON_PARAM] = variant.spec_json
        rows.append(row)
    return rows


def _progress(items: Iterable, enabled: bool, description: str, total: int | None = None):
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, total=total, console=Console(stderr=True), transient=True)


def family_summary(rows: list[dict]) -> list[dict]:
    """Per study family: count and min/median/max of params and decode/encode kFLOPs/px."""
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(row[names.TAG_FAMILY], []).append(row)
    out = []
    for family, members in by_family.items():
        entry = {"family": family, "count": len(members)}
        for column in (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.ENCODE_KFLOPS_PER_PX):
            values = [row[column] for row in members]
            entry[column] = (min(values), statistics.median(values), max(values))
        out.append(entry)
    return out


def print_summary(summary: list[dict], console) -> None:
    from rich.table import Table

    table = Table(title=None, show_edge=False)
    table.add_column("family")
    table.add_column("variants", justify="right")
    for title in ("params (M)", "decode kFLOPs/px", "encode kFLOPs/px"):
        table.add_column(f"{title}\nmin / median / max", justify="right")
    for entry in summary:
        params = " / ".join(f"{v / 1e6:.2f}" for v in entry[names.PARAMS])
        decode = " / ".join(f"{v:.1f}" for v in entry[names.DECODE_KFLOPS_PER_PX])
        encode = " / ".join(f"{v:.1f}" for v in entry[names.ENCODE_KFLOPS_PER_PX])
        table.add_row(entry["family"], str(entry["count"]), params, decode, encode)
    table.add_row("total", str(sum(e["count"] for e in summary)), "", "", "", style="bold")
    console.print(table)


def write_table(rows: list[dict], out: Path) -> None:
    """CSV or parquet by suffix, written whole or not at all (a temporary file, then a rename)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    partial = out.with_name(f".{out.name}.partial")
    try:
        if out.suffix == ".csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


# -- verification ----------------------------------------------------------------------------
def verification_sample(variants: list, count: int, seed: int = 0) -> list:
    """`count` variants, at least one per family when count allows, the same ones every time."""
    rng = random.Random(seed)
    by_family: dict[str, list] = {}
    for variant in variants:
        by_family.setdefault(variant.family, []).append(variant)
    picked = [rng.choice(members) for members in by_family.values()][:count]
    rest = [v for v in variants if v not in picked]
    picked += rng.sample(rest, min(len(rest), count - len(picked)))
    return picked


def mismatches(fast: dict, slow: dict) -> dict[str, tuple]:
    """Columns where the fast and the measured costs differ (exact comparison)."""
    return {k: (fast[k], slow[k]) for k in slow if fast.get(k) != slow[k]}


# -- command line ----------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rdc plan",
        description="Expand a search space as `rdc sweep` would and cost every variant without training: "
                    "params, decode and encode kFLOPs/px and kMACs/px.")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search_space=paper profile.flops_height=256")
    parser.add_argument("--config-dir", help="an extra folder of config groups (e.g. your search_space/*.yaml)")
    parser.add_argument("--out", help="write the plan here: a .csv or .parquet file")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                        help="processes that cost parts in parallel (default: the CPU count, at most 8)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="also build N sampled variants with real weights and check the fast costs equal them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = _checked_out(args.out)
    for option, value in (("--verify", args.verify), ("--workers", args.workers - 1)):
        if value < 0:
            raise UserError(option, getattr(args, option[2:]), allowed="a whole number >= " + ("0" if option == "--verify" else "1"))

    from rich.console import Console

    from sweep.config import load_config
    from sweep.space import expand_space

    started = time.perf_counter()
    cfg = load_config(args.overrides, args.config_dir)
    height, width = cfg["profile"]["flops_height"], cfg["profile"]["flops_width"]
    # Budgets compare at the reference size; the same cache key as reference_costs, so a plan
    # at the reference size costs every part once.
    costs, budgets = cost_model(height, width), cost_model(REFERENCE_HEIGHT, REFERENCE_WIDTH)
    costs.workers = budgets.workers = args.workers
    try:
        expansion = expand_space(cfg["search_space"], costs=budgets)
        costs.prepare([v.spec for v in expansion.variants], progress=True)
        rows = plan_rows(expansion.variants, costs)
    except PartError as err:
        raise _in_family(err, cfg["search_space"]) from None
    seconds = time.perf_counter() - started

    console = Console(highlight=False, width=max(Console().width, 130))
    console.print(f"plan {expansion.space.name!r}: {len(rows)} variants from {expansion.points} grid points "
                  f"({expansion.removed_by_constraints} removed by constraints, {expansion.duplicates} duplicates, "
                  f"{expansion.removed_by_budget} over budget) in {seconds:.1f} s")
    built = ", ".join(f"{n} {how}" for how, n in costs.built_by.items() if n)
    console.print(f"costs per pixel of a {height}x{width} image; {costs.parts_built} distinct parts costed "
                  f"({built or 'all cached'}) by {args.workers} process(es)")
    print_summary(family_summary(rows), console)
    status = _verify(expansion.variants, costs, args.verify, console) if args.verify else 0
    if out is not None:
        write_table(rows, out)
        console.print(f"wrote {out}")
    return status


def _checked_out(path: str | None) -> Path | None:
    """Refuse a bad --out before any work (and before anything is written)."""
    if path is None:
        return None
    out = Path(path).expanduser()
    if out.suffix not in OUT_FORMATS:
        raise UserError("--out", path, allowed="a file name ending in " + " or ".join(OUT_FORMATS))
    if not out.parent.resolve().is_dir():
        raise UserError("--out", path, reason=f"folder {str(out.parent)!r} does not exist", allowed="a file in an existing folder")
    if out.is_dir():
        raise UserError("--out", path, reason="is a folder", allowed="a file name")
    return out.resolve()


def _in_family(err: PartError, raw_space) -> UserError:
    """A part that refuses to build, named by the first family of the space that has it."""
    from sweep.space import parse_space

    space = parse_space(raw_space)
    for family in space.families:
        types = dict(family.types)
        if all(types[kind] == err.spec[kind]["type"] for kind in types):
            where = family.where
            break
    else:
        where = space.root
    part = "transforms" if err.kind == "transform" else "entropy model and hyper-transforms"
    return UserError(f"{where}.{err.key}", err.value, allowed=err.allowed,
                     reason=f"its {part} cannot be built (M={err.spec['M']})")


def _verify(variants: list, costs: CostModel, count: int, console) -> int:
    sample = verification_sample(variants, count)
    failed = 0
    for variant in _progress(sample, True, "verifying with real weights"):
        diff = mismatches(costs(variant.spec), measured_costs(variant.spec, costs.height, costs.width))
        if diff:
            failed += 1
            console.print(f"MISMATCH {variant.variant_id} {variant.family} {variant.label()}: {diff}")
    console.print(f"verified {len(sample) - failed}/{len(sample)} sampled variants: fast costs "
                  + ("equal" if not failed else "DIFFER FROM") + " the real models'")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
