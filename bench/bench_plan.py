"""How much faster is `rdc plan` than building and counting every model, and is it exact?

    .venv/bin/python bench/bench_plan.py            # paper space; slow way on 3 variants per family
    .venv/bin/python bench/bench_plan.py --quick    # paper space; slow way on 1 variant per family
    .venv/bin/python bench/bench_plan.py --space frontier --workers 1

Three measurements in one run, on the same machine:
- the command users run, `rdc plan search_space=<space> --out <tmp>.csv`, timed end to end in a
  fresh process (Python start-up, imports, Hydra, expansion, costing, writing);
- the fast path alone (sweep.plan.CostModel costing every variant of the space), in this process;
- the slow way, the baseline: build each model with real weights (models.build) and count it at
  512x768 with jobs.profile (params, decode and encode FLOPs). Doing that for every variant takes
  minutes, so it runs on a sample of each family, and the family's mean time per variant times
  its number of variants extrapolates the total (said so in the output).
The ratio is slow total / fast total. The sample's fast and slow numbers must be equal (exit 1
otherwise). Target (issue 4): the command in at most 30 s for the paper space on a 2-core box;
the machine's load average is printed, since a loaded machine stretches every wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from sweep.plan import CostModel, measured_costs, mismatches  # noqa: E402
from sweep.space import expand  # noqa: E402

TARGET_SECONDS = 30.0


def command_seconds(space: str, workers: int) -> tuple[float, int]:
    """Wall seconds of `rdc plan search_space=<space> --out x.csv` in a fresh process, and its rows."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "plan.csv"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rdc.cli", "plan", f"search_space={space}", "--out", str(out),
                        "--workers", str(workers)], cwd=REPO, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        rows = sum(1 for _ in out.open()) - 1
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="paper", help="a preset in conf/search_space (default: paper)")
    parser.add_argument("--quick", action="store_true", help="the slow way on 1 variant per family instead of 3")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    args = parser.parse_args(argv)

    variants = expand(yaml.safe_load((REPO / "conf" / "search_space" / f"{args.space}.yaml").read_text()))
    families = sorted({v.family for v in variants})
    print(f"space {args.space!r}: {len(variants)} variants in {len(families)} families; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; workers {args.workers}")

    cli_seconds, rows = command_seconds(args.space, args.workers)
    print(f"rdc plan search_space={args.space} --out plan.csv: {cli_seconds:.1f} s wall for {rows} rows "
          f"(target <= {TARGET_SECONDS:.0f} s: {'met' if cli_seconds <= TARGET_SECONDS else 'NOT met'})")

    fast = CostModel(workers=args.workers)
    started = time.perf_counter()
    fast.prepare([v.spec for v in variants])
    fast_costs = {v.variant_id: fast(v.spec) for v in variants}
    fast_seconds = time.perf_counter() - started
    print(f"fast path: {fast_seconds:.1f} s for {len(variants)} variants ({fast.parts_built} distinct parts; "
          f"built {fast.built_by})")

    per_family = 1 if args.quick else 3
    rng = random.Random(0)
    sample = [v for family in families
              for v in rng.sample([v for v in variants if v.family == family], per_family)]
    slow_seconds: dict[str, list[float]] = {family: [] for family in families}
    failures = 0
    for variant in sample:
        started = time.perf_counter()
        slow = measured_costs(variant.spec)
        slow_seconds[variant.family].append(time.perf_counter() - started)
        diff = mismatches(fast_costs[variant.variant_id], slow)
        if diff:
            failures += 1
            print(f"  MISMATCH {variant.variant_id} {variant.family} {variant.label()}: {diff}")

    print(f"slow way (build with real weights + count at 512x768) on {len(sample)} sampled variants:")
    total_slow = 0.0
    for family in families:
        times = slow_seconds[family]
        count = sum(1 for v in variants if v.family == family)
        mean = sum(times) / len(times) if times else float("nan")
        total_slow += mean * count
        print(f"  {family:<24} {len(times)} sampled, {mean:6.2f} s/variant x {count:3d} variants = {mean * count:7.1f} s")
    print(f"slow way, extrapolated to all {len(variants)} variants: {total_slow:.0f} s")
    print(f"ratio slow / fast (in-process): {total_slow / fast_seconds:.1f}x; "
          f"slow / the whole command: {total_slow / cli_seconds:.1f}x")
    print(f"exactness: {len(sample) - failures}/{len(sample)} sampled variants equal")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
