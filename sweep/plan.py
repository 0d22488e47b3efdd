"""`rdc plan [overrides] [--out plan.csv|plan.parquet]`: what every variant costs, before any training.

The plan expands the space exactly as `rdc sweep` does (sweep.space.expand) and gives each
variant its parameter count and its decode and encode kFLOPs/px and kMACs/px at the profile's
reference size (conf/profile: 512x768, Kodak), in the conventions of jobs.profile.

Building every model with real weights and counting it takes about half a second per variant
here (random init of millions of weights dominates), and compressai's GDN cannot be built on the
meta device. `CostModel` is the fast way, and it is exact:
  - a model is two parts: the transforms (g_a, g_s), which depend only on (transform, M), and
    the latent codec (h_a, h_s, entropy-parameter networks), which depends only on
    (entropy, hyper, M). Params and FLOPs of the model are the sums of its parts'. Families
    share parts, so a space has far fewer distinct parts than variants, each costed once;
  - each part is built under torch's FakeTensorMode: tensors carry shapes but no storage, so
    no weight is initialised, and compressai's CPU-tensor constructors still work;
  - FlopCounterMode counts each part on fake inputs of the full reference size: the same
    operators on the same shapes as jobs.profile's count of the real model.
tests/sweep/test_plan_costs.py checks the fast numbers equal the slow ones on every family;
`rdc plan --verify N` repeats that check on N variants of any space (a new component, say).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
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


class CostModel:
    """Params and FLOPs per pixel of variants, each distinct part built and counted once.

    `fake=False` builds parts with real weights and counts copies on the meta device (the way
    jobs.profile counts a whole model): slower, for components FakeTensorMode cannot build;
    parts that fail under FakeTensorMode fall back to it on their own.
    """

    def __init__(self, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH, *, fake: bool = True):
        self.height, self.width, self.fake = height, width, fake
        self._parts: dict[tuple, PartCost] = {}
        self.fallbacks = 0  # parts FakeTensorMode could not build
        self._fake_mode = None

    @property
    def parts_built(self) -> int:
        return len(self._parts)

    def costs(self, spec) -> dict[str, float]:
        """The plan's cost columns for one spec (mapping or ModelSpec)."""
        from models import parse_spec

        spec = parse_spec(spec)
        total = self._transform_part(spec) + self._latent_part(spec)
        pixels = self.height * self.width
        return {
            names.PARAMS: total.params,
            names.DECODE_KFLOPS_PER_PX: total.decode_flops / pixels / 1e3,
            names.DECODE_KMACS_PER_PX: total.decode_flops / 2 / pixels / 1e3,
            names.ENCODE_KFLOPS_PER_PX: total.encode_flops / pixels / 1e3,
            names.ENCODE_KMACS_PER_PX: total.encode_flops / 2 / pixels / 1e3,
        }

    __call__ = costs  # a CostFn for sweep.space.expand

    # The codec assembled around a part gives the latent shapes and the padding exactly as the
    # real model computes them; jobs.profile.count_flops applies the project's FLOPs conventions.
    def _transform_part(self, spec) -> PartCost:
        def build():
            return spec.transform.build(spec.M)

        def count(g_a, g_s, tensor) -> tuple[int, int]:
            from jobs.profile import count_flops
            from models.codec import ImageCodec

            codec = ImageCodec(spec, g_a, g_s, _NoLatent())
            y_shape, _ = codec.latent_shapes(self.height, self.width)
            decode = count_flops(g_s, tensor(y_shape))
            encode = count_flops(lambda x: g_a(codec.pad(x)), tensor((1, 3, self.height, self.width)))
            return decode, encode

        return self._part(("transform", _canonical(spec.transform), spec.M), build, count)

    def _latent_part(self, spec) -> PartCost:
        def build():
            z_channels = spec.hyper.z_channels(spec.M)
            h_a, h_s = spec.hyper.build(spec.M, spec.entropy.hyper_out_channels(spec.M))
            return (spec.entropy.build(spec.M, h_a, h_s, z_channels),)

        def count(latent, tensor) -> tuple[int, int]:
            from jobs.profile import count_flops
            from models.codec import ImageCodec
            from torch import nn

            codec = ImageCodec(spec, nn.Identity(), nn.Identity(), latent)
            y_shape, z_shape = codec.latent_shapes(self.height, self.width)
            decode = count_flops(latent.decode_networks, tensor(y_shape), tensor(z_shape))
            if hasattr(latent, "encode_networks"):
                encode = count_flops(latent.encode_networks, tensor(y_shape))
            else:  # as jobs.profile counts a codec without encode_networks: h_a, then what decode runs
                encode = count_flops(lambda y: latent.decode_networks(y, latent.h_a(y)), tensor(y_shape))
            return decode, encode

        return self._part(("latent", _canonical(spec.entropy), _canonical(spec.hyper), spec.M), build, count)

    def _part(self, key: tuple, build: Callable, count: Callable) -> PartCost:
        if key not in self._parts:
            if self.fake:
                try:
                    self._parts[key] = self._measure(build, count, fake=True)
                except Exception:  # noqa: BLE001 - a module FakeTensorMode cannot build: count it for real
                    self.fallbacks += 1
            if key not in self._parts:
                self._parts[key] = self._measure(build, count, fake=False)
        return self._parts[key]

    def _measure(self, build: Callable, count: Callable, *, fake: bool) -> PartCost:
        import contextlib

        import torch
        from jobs.profile import on_meta

        with self._fake() if fake else contextlib.nullcontext():
            modules = build()
            params = sum(p.numel() for module in modules for p in module.parameters())
            # fake modules have no storage to copy; real ones are counted as weightless meta copies
            counted = [module.eval() for module in modules] if fake else [on_meta(module) for module in modules]
            device = "cpu" if fake else "meta"
            decode, encode = count(*counted, lambda shape: torch.zeros(shape, device=device))
        return PartCost(params, decode, encode)

    def _fake(self):
        if self._fake_mode is None:
            from torch._subclasses.fake_tensor import FakeTensorMode

            self._fake_mode = FakeTensorMode()
        return self._fake_mode


class _NoLatent:
    """Stands in for the latent codec where a transform part only needs y's shape."""

    z_channels = 1


def _canonical(component) -> str:
    from models import registry

    return json.dumps(registry.to_plain(component), sort_keys=True)


@functools.lru_cache(maxsize=None)
def cost_model(height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> CostModel:
    """The process's shared CostModel for a size: the plan and budget constraints reuse its parts."""
    return CostModel(height, width)


def reference_costs(spec: dict) -> dict[str, float]:
    """Costs at the reference size: what `max: {key: decode_kflops_per_px, ...}` budgets compare."""
    return cost_model().costs(spec)


def measured_costs(spec: dict, height: int = REFERENCE_HEIGHT, width: int = REFERENCE_WIDTH) -> dict[str, float]:
    """The slow way the fast one must equal: build the whole model with real weights, count it."""
    from jobs.profile import count_params, decode_flops
    from models import build

    model = build(spec)
    flops = decode_flops(model, height, width)
    out = {
        names.PARAMS: count_params(model),
        names.DECODE_KFLOPS_PER_PX: flops["kflops_per_px"],
        names.DECODE_KMACS_PER_PX: flops["kmacs_per_px"],
    }
    encode = _encode_flops(model, height, width)
    if encode is not None:
        out[names.ENCODE_KFLOPS_PER_PX] = encode["kflops_per_px"]
        out[names.ENCODE_KMACS_PER_PX] = encode["kmacs_per_px"]
    return out


def _encode_flops(model, height: int, width: int):
    import jobs.profile

    encode_flops = getattr(jobs.profile, "encode_flops", None)
    return encode_flops(model, height, width) if encode_flops is not None else None


# -- the table -------------------------------------------------------------------------------
COST_COLUMNS = (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.DECODE_KMACS_PER_PX,
                names.ENCODE_KFLOPS_PER_PX, names.ENCODE_KMACS_PER_PX)


def plan_rows(variants: Iterable, costs: Callable[[dict], dict], *, progress: bool = False) -> list[dict]:
    """One row per variant: id, family, group, label, costs, then every knob as `spec.<path>`."""
    from sweep.variant import flatten_spec

    variants = list(variants)
    rows = []
    for variant in _progress(variants, progress, "costing variants"):
        spec = variant.spec
        row = {"variant_id": variant.variant_id, "family": variant.family, "group": variant.group,
               "label": variant.label()}
        row.update(costs(spec))
        # the same flattening and spelling as the MLflow params, so plan rows join runs
        row.update({names.SPEC_PARAM_PREFIX + k: (str(v) if isinstance(v, list) else v)
                    for k, v in flatten_spec(spec).items()})
        row[names.SPEC_JSON_PARAM] = variant.spec_json
        rows.append(row)
    return rows


def _progress(items: list, enabled: bool, description: str):
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, console=Console(stderr=True), transient=True)


def family_summary(rows: list[dict]) -> list[dict]:
    """Per study family: count and min/median/max of params and decode/encode kFLOPs/px."""
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(row["family"], []).append(row)
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
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="also build N sampled variants with real weights and check the fast costs equal them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    out = _checked_out(args.out)
    if args.verify < 0:
        raise UserError("--verify", args.verify, allowed="a number of variants >= 0")

    from rich.console import Console

    from sweep.config import load_config
    from sweep.space import expand_space

    started = time.perf_counter()
    cfg = load_config(args.overrides, args.config_dir)
    height, width = cfg["profile"]["flops_height"], cfg["profile"]["flops_width"]
    costs = cost_model(height, width)
    # budgets always compare costs at the reference size, like `rdc sweep`'s expansion
    expansion = expand_space(cfg["search_space"], costs=cost_model())
    rows = plan_rows(expansion.variants, _with_variant_errors(costs, expansion), progress=True)
    seconds = time.perf_counter() - started

    console = Console(highlight=False)
    space = expansion.space
    console.print(f"plan {space.name!r}: {len(rows)} variants from {expansion.points} grid points "
                  f"({expansion.removed_by_constraints} removed by constraints, {expansion.duplicates} duplicates, "
                  f"{expansion.removed_by_budget} over budget) in {seconds:.1f} s")
    console.print(f"costs per pixel of a {height}x{width} image; {costs.parts_built} distinct parts costed"
                  + (f" ({costs.fallbacks} with real weights)" if costs.fallbacks else ""))
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


def _with_variant_errors(costs: CostModel, expansion) -> Callable[[dict], dict]:
    """A component that refuses to build says which family of the space it came from."""
    from models.errors import SpecError

    where = {f.name: f.where for f in expansion.space.families}

    def cost(spec: dict) -> dict:
        try:
            return costs(spec)
        except SpecError as err:
            group = next((v.group for v in expansion.variants if v.spec == spec), None)
            raise UserError(f"{where.get(group, expansion.space.root)}.{err.key}", err.value,
                            allowed=err.allowed, reason="cannot be built") from None

    return cost


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
