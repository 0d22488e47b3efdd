"""`rdc plan [overrides] [--out plan.csv|plan.parquet]`: what every variant costs, before any training.

The plan expands the space exactly as `rdc sweep` does (sweep.space.expand) and gives each
variant its parameter count and its decode and encode kFLOPs/px and kMACs/px at the profile's
reference size (conf/profile: 512x768, Kodak), in the conventions of jobs.profile. The costs
come from sweep.costs (exact, fast); this module is the table, its summary and the command.

Each row also has `train_memory_gib`: what one training step of the variant holds at
train.crop x train.batch_size (sweep.cost_bound). A variant above the bound (cluster.trial_memory_gb,
by default the trial's device) is refused here exactly as `rdc sweep` refuses it: one line, exit 2,
before any FLOPs are counted (an absurd width never reaches sweep.costs).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from jobs.profile import REFERENCE_HEIGHT, REFERENCE_WIDTH
from rdc import names
from rdc.arguments import ArgumentParser
from rdc.errors import UserError
from sweep.cost_bound import TRAIN_MEMORY_COLUMN, BoundedCosts, check_cost_bound, memory_limit, training_memory
from sweep.costs import (COST_COLUMNS, CostModel, PartError, cost_model, measured_costs, part_key, with_progress,
                         reference_costs)

__all__ = ["COST_COLUMNS", "CostModel", "PartError", "cost_model", "main", "measured_costs", "part_key",
           "plan_rows", "reference_costs", "verification_sample"]

OUT_FORMATS = (".csv", ".parquet")


# -- the table -------------------------------------------------------------------------------
def plan_rows(variants: Iterable, costs: Callable[[dict], dict], memory: dict | None = None) -> list[dict]:
    """One row per variant: id, family, group, label, costs, training memory (GiB, when
    `memory` maps ids to sweep.cost_bound.TrainingMemory), then every knob as `spec.<path>`."""
    from sweep.variant import flatten_spec

    rows = []
    for variant in variants:
        spec = variant.spec
        row = {names.TAG_VARIANT_ID: variant.variant_id, names.TAG_FAMILY: variant.family, "group": variant.group,
               "label": variant.label()}
        row.update(costs(spec))
        if memory is not None:
            row[TRAIN_MEMORY_COLUMN] = memory[variant.variant_id].gib
        # the same flattening and spelling as the MLflow params, so plan rows join runs
        row.update({names.SPEC_PARAM_PREFIX + k: (str(v) if isinstance(v, list) else v)
                    for k, v in flatten_spec(spec).items()})
        row[names.SPEC_JSON_PARAM] = variant.spec_json
        rows.append(row)
    return rows


def family_summary(rows: list[dict]) -> list[dict]:
    """Per study family: count and min/median/max of params and decode/encode kFLOPs/px."""
    by_family: dict[str, list[dict]] = {}
    for row in rows:
        by_family.setdefault(row[names.TAG_FAMILY], []).append(row)
    out = []
    for family, members in by_family.items():
        entry = {"family": family, "count": len(members)}
        for column in (names.PARAMS, names.DECODE_KFLOPS_PER_PX, names.ENCODE_KFLOPS_PER_PX, TRAIN_MEMORY_COLUMN):
            if column not in members[0]:
                continue
            values = [row[column] for row in members]
            entry[column] = (min(values), statistics.median(values), max(values))
        out.append(entry)
    return out


def print_summary(summary: list[dict], console) -> None:
    from rich.table import Table

    table = Table(title=None, show_edge=False)
    table.add_column("family")
    table.add_column("variants", justify="right")
    memory = bool(summary) and TRAIN_MEMORY_COLUMN in summary[0]
    for title in ("params (M)", "decode kFLOPs/px", "encode kFLOPs/px") + (("train GiB",) if memory else ()):
        table.add_column(f"{title}\nmin / median / max", justify="right")
    for entry in summary:
        params = " / ".join(f"{v / 1e6:.2f}" for v in entry[names.PARAMS])
        decode = " / ".join(f"{v:.1f}" for v in entry[names.DECODE_KFLOPS_PER_PX])
        encode = " / ".join(f"{v:.1f}" for v in entry[names.ENCODE_KFLOPS_PER_PX])
        gib = (" / ".join(f"{v:.2f}" for v in entry[TRAIN_MEMORY_COLUMN]),) if memory else ()
        table.add_row(entry["family"], str(entry["count"]), params, decode, encode, *gib)
    table.add_row("total", str(sum(e["count"] for e in summary)), "", "", "", *([""] if memory else []), style="bold")
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
    parser = ArgumentParser(
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
    limit = memory_limit(cfg["cluster"])  # a bad cluster.trial_memory_gb, before any work
    height, width = cfg["profile"]["flops_height"], cfg["profile"]["flops_width"]
    # Budgets compare at the reference size; the same cache key as reference_costs, so a plan
    # at the reference size costs every part once.
    costs, budgets = cost_model(height, width), cost_model(REFERENCE_HEIGHT, REFERENCE_WIDTH)
    costs.workers = budgets.workers = args.workers
    try:
        # The cost bound first: before budgets cost a variant (BoundedCosts) and before the plan does.
        expansion = expand_space(cfg["search_space"], costs=BoundedCosts(cfg, budgets, args.workers))
        check_cost_bound(expansion.variants, cfg, args.workers)
        memory = training_memory(expansion.variants, cfg, args.workers)
        costs.prepare([v.spec for v in expansion.variants], progress=True)
        rows = plan_rows(expansion.variants, costs, memory)
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
    largest = max(rows, key=lambda row: row[TRAIN_MEMORY_COLUMN])
    train = cfg["train"]
    console.print(f"training memory (batch {train['batch_size']}, {train['crop']}x{train['crop']} crops): at most "
                  f"{largest[TRAIN_MEMORY_COLUMN]:.2f} GiB ({largest[names.TAG_VARIANT_ID]}); "
                  f"bound {limit.describe()}")
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
    for variant in with_progress(sample, True, "verifying with real weights"):
        diff = mismatches(costs(variant.spec), measured_costs(variant.spec, costs.height, costs.width))
        if diff:
            failed += 1
            console.print(f"MISMATCH {variant.variant_id} {variant.family} {variant.label()}: {diff}")
    console.print(f"verified {len(sample) - failed}/{len(sample)} sampled variants: fast costs "
                  + ("equal" if not failed else "DIFFER FROM") + " the real models'")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
