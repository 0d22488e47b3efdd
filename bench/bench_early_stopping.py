"""Find the frontier without training everything: early-stopping policies replayed over a learning-curve table.

    .venv/bin/python bench/bench_early_stopping.py                       # bench/noise_curves.csv, config new
    .venv/bin/python bench/bench_early_stopping.py --table T.csv --final F.csv --config new
    .venv/bin/python bench/bench_early_stopping.py --synthetic --quick   # no table needed

Every policy of rdc/stopping.py and analysis/stopping.py is driven report by report (analysis/replay.py) over the
held-out curves the noise bench recorded (bench/bench_noise.py: variant_id, seed, step,
eval_rd_loss, decode_kflops_per_px): the frontier rule at several margins (fixed, and multiples
of the table's noise: the pooled within-variant sd of the final RD loss over seeds), ASHA on
rd_loss, MO-ASHA, Ax's scaled-Pareto rule, Optuna TPE choosing which variants to train fully,
and finishing k random variants (the rest stopped at the first rung; mean over draws). For each:
training steps as a share of the exhaustive grid's, the hypervolume of the final (rd_loss,
decode kFLOPs) frontier of the variants it finished, relative to the exhaustive one (bounds of
the exhaustive frontier, analysis.frontier.hypervolume), and the exhaustive-frontier variants lost.

Two sweep shapes: each seed alone (a one-seed sweep, the usual case; figures averaged over seeds)
and all seeds together (replicates decide on their mean). Two report orders: every trial side by
side ("parallel") and --concurrency trials at a time in plan order (a cluster smaller than the
sweep). The final RD loss is the real-bitstream one from --final when given, else the last
held-out point. Baselines are compared at equal steps: random and TPE at the k that spends the
frontier rule's steps, ASHA/MO-ASHA/Ax by the best of their settings that spends no more.
Goal (issue 15): >= 95 % of the exhaustive hypervolume with <= 35 % of its steps, and more
hypervolume than every baseline at equal steps. Writes bench/early_stopping.csv and a plot of
hypervolume vs steps (bench/early_stopping_hv.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curve_agreement import curve_agreement  # noqa: E402
from analysis.replay import (  # noqa: E402
    Curve,
    curves_from_table,
    exhaustive_hypervolume,
    first_rung_step,
    hindsight_floor,
    mean_outcome,
    pooled_noise_sd,
    random_finish,
    replay,
    tpe_finish,
)
from analysis.stopping import AshaRule, FinishChosen, MoAshaRule, ScaledParetoRule  # noqa: E402
from rdc.stopping import FrontierRule, Margin  # noqa: E402
from rdc import names  # noqa: E402
from shards import shard_arg  # noqa: E402  (bench/ is on the path of a bench script)

TABLE = REPO / "bench" / "noise_curves.csv"
FINAL = REPO / "bench" / "noise_final.csv"
OUT = REPO / "bench" / "early_stopping.csv"
PLOT = REPO / "bench" / "early_stopping_hv.png"
HV_GOAL, STEPS_GOAL = 0.95, 0.35
RUNGS = (0.1, 0.25, 0.5)
RELATIVE_MARGINS = (0.0, 0.01, 0.02, 0.05)
NOISE_MULTIPLES = (0.5, 1.0, 2.0)
CURVE_MULTIPLES = (1.0, 2.0, 3.0)  # margins in sds of one evaluation, measured on the curves at each rung
GRACES = (0.1, 0.25)
FACTORS = (2.0, 3.0, 4.0)
AX_FACTORS = (0.3, 0.5, 0.7, 0.9)
WINDOW = 3  # the frontier rule's mean of the last evaluations, against spiky held-out points


def load(table_path: Path, final_path: Path | None, config: str | None) -> pd.DataFrame:
    table = pd.read_csv(table_path)
    if config is not None and "config" in table:
        table = table[table["config"] == config]
    # A (variant, seed) trained twice (an interrupted, sharded recording) counts once: its first run.
    twice = int(table.duplicated(["variant_id", "seed", "step"]).sum())
    table = table.drop_duplicates(["variant_id", "seed", "step"], keep="first")
    if twice:
        print(f"{twice} evaluation rows of (variant, seed) pairs recorded twice: the first run kept")
    if final_path is not None and final_path.is_file():
        finals = pd.read_csv(final_path)
        if config is not None and "config" in finals:
            finals = finals[finals["config"] == config]
        finals = finals.drop_duplicates(["variant_id", "seed"], keep="first")
        finals = finals[finals["failed"].isna() | (finals["failed"].astype(str) == "")] if "failed" in finals else finals
        table = table.merge(finals[["variant_id", "seed", names.RD_LOSS]], on=["variant_id", "seed"], how="inner")
    return table.reset_index(drop=True)


def to_curves(table: pd.DataFrame) -> tuple[list[Curve], int]:
    curves, max_steps = curves_from_table(table)
    if names.RD_LOSS in table:  # the real-bitstream final loss, as a sweep's frontier uses
        final = table.groupby(["variant_id", "seed"])[names.RD_LOSS].first()
        curves = [Curve(c.trial_id, c.variant_id, c.kflops, c.steps, c.rd_loss,
                        float(final[(c.variant_id, c.seed)]) if c.final_rd_loss is not None else None, seed=c.seed)
                  for c in curves]
    return curves, max_steps


def synthetic(variants: int = 24, seeds: int = 3, steps: int = 500, every: int = 25, seed: int = 0) -> pd.DataFrame:
    """Curves shaped like the noise bench's: loss ~ final + a (t / T)^-1/2 with per-variant speed and
    seed noise; final loss falls with log FLOPs plus an architecture term."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(variants):
        kflops = float(np.exp(rng.uniform(np.log(0.5), np.log(3.0))))
        final = 14.0 - 1.5 * np.log(kflops) + rng.normal(0, 0.6)
        speed = rng.uniform(0.7, 1.3)
        for s in range(seeds):
            offset = rng.normal(0, 0.2)
            for step in range(every, steps + 1, every):
                loss = final + offset + 8 * speed * ((step / steps) ** -0.5 - 1) + rng.normal(0, 0.3)
                rows.append({"variant_id": f"syn-{v:02d}", "seed": s, "step": step, "eval_rd_loss": loss,
                             names.DECODE_KFLOPS_PER_PX: kflops})
    return pd.DataFrame(rows)


def policies(max_steps: int, curves: list[Curve], noise: float | None) -> list:
    out = [FrontierRule(max_steps, RUNGS, Margin(relative=m)) for m in RELATIVE_MARGINS]
    if noise is not None:
        out += [FrontierRule(max_steps, RUNGS, Margin(noise_multiple=k, noise_sd=noise)) for k in NOISE_MULTIPLES]
    out += [FrontierRule(max_steps, RUNGS, Margin(relative=m), window=WINDOW) for m in RELATIVE_MARGINS[1:3]]
    out += [FrontierRule(max_steps, RUNGS, Margin(curve_multiple=k)) for k in CURVE_MULTIPLES]
    out += [FrontierRule(max_steps, RUNGS, Margin(curve_multiple=k), window=WINDOW) for k in CURVE_MULTIPLES[:2]]
    kflops = [c.kflops for c in curves]
    kflops_ref = max(kflops) + 0.1 * (max(kflops) - min(kflops))
    for grace in GRACES:
        g = first_rung_step(max_steps, grace)
        out += [AshaRule(max_steps, g, rf) for rf in FACTORS]
        out += [MoAshaRule(max_steps, g, rf) for rf in FACTORS]
    out += [ScaledParetoRule(max_steps, first_rung_step(max_steps, RUNGS[0]), 5, f, kflops_reference=kflops_ref)
            for f in AX_FACTORS]
    return out


def sweep_rows(curves: list[Curve], max_steps: int, noise: float | None, order: str, concurrency: int | None,
               draws: int, seed: int) -> list[dict]:
    """One row per policy setting over one sweep (random and TPE: every k, mean over draws)."""
    rows = []
    for policy in policies(max_steps, curves, noise):
        outcome = replay(curves, policy, max_steps, order=order, concurrency=concurrency)
        rows.append({**outcome.row(), "hypervolume_kept_sd": 0.0})
    # The oracle: finish exactly the exhaustive frontier, stop the rest at the first rung. No policy
    # judged at these rungs can keep all the hypervolume with fewer steps.
    _, front = exhaustive_hypervolume(curves)
    oracle = FinishChosen(set(front["variant_id"]), first_rung_step(max_steps, RUNGS[0]), name="oracle")
    rows.append({**replay(curves, oracle, max_steps, order=order, concurrency=concurrency,
                          setting=f"finish the {len(front)} frontier variants, stop the rest at {RUNGS[0]:g}").row(),
                 "hypervolume_kept_sd": 0.0})
    # The fewest variants that keep the goal's hypervolume, in hindsight; named without their count
    # (it differs by seed) so the seeds' rows average into one.
    floor = hindsight_floor(curves, max_steps, keep=HV_GOAL, stop_fraction=RUNGS[0], order=order, concurrency=concurrency,
                            setting=f"in hindsight: finish the variants that keep {HV_GOAL:g} of the hypervolume with "
                                    f"the fewest, stop the rest at {RUNGS[0]:g} (no policy stopping there spends less)")
    if floor is not None:
        rows.append({**floor.row(), "hypervolume_kept_sd": 0.0})
    variants = len({c.variant_id for c in curves})
    for k in range(1, variants + 1):
        rows.append(mean_outcome(random_finish(curves, max_steps, k, stop_fraction=RUNGS[0], draws=draws, seed=seed,
                                               order=order, concurrency=concurrency)))
        rows[-1]["k"] = k
        rows.append(mean_outcome([tpe_finish(curves, max_steps, k, seed=1000 * seed + s) for s in range(max(5, draws // 20))]))
        rows[-1]["k"] = k
    return rows


def average(runs: list[list[dict]]) -> pd.DataFrame:
    """Rows of several sweeps (one per seed) averaged setting by setting."""
    frames = [pd.DataFrame(r) for r in runs]
    keys = ["policy", "setting"]
    numbers = ["steps_fraction", "hypervolume_kept", "stopped", "finished_variants"]
    merged = pd.concat(frames)
    merged["setting"] = merged["setting"].str.replace(r" \(\d+ draws\)", "", regex=True)
    out = merged.groupby(keys, sort=False)[numbers].mean().reset_index()
    lost = merged.groupby(keys, sort=False)["lost_frontier_variants"].apply(lambda s: " | ".join(str(x) for x in s if x))
    out["lost_frontier_variants"] = lost.to_numpy()
    out["sweeps"] = len(frames)
    return out


def best_at(frame: pd.DataFrame, policy: str, steps: float, slack: float = 0.005) -> pd.Series | None:
    """The setting of `policy` with the most hypervolume among those spending at most `steps`."""
    rows = frame[(frame["policy"] == policy) & (frame["steps_fraction"] <= steps + slack)]
    return None if rows.empty else rows.sort_values("hypervolume_kept", ascending=False).iloc[0]


def verdict(frame: pd.DataFrame) -> list[str]:
    lines = []
    ours = frame[frame["policy"] == "frontier"]
    for _, row in ours.iterrows():
        goal = row["hypervolume_kept"] >= HV_GOAL and row["steps_fraction"] <= STEPS_GOAL
        parts = []
        beats_all = True
        for baseline in ("asha", "mo-asha", "ax-scaled-pareto", "random", "optuna-tpe"):
            best = best_at(frame, baseline, row["steps_fraction"])
            if best is None:
                parts.append(f"{baseline}: no setting at <= these steps")
                continue
            beats_all &= row["hypervolume_kept"] > best["hypervolume_kept"]
            parts.append(f"{baseline} {best['hypervolume_kept']:.3f} ({best['steps_fraction']:.2f})")
        lines.append(f"{row['setting']}: hv {row['hypervolume_kept']:.3f} at {row['steps_fraction']:.3f} of the steps -> "
                     f"goal {'met' if goal else 'NOT met'}; {'beats' if beats_all else 'does NOT beat'} every baseline "
                     f"at equal steps [{'; '.join(parts)}]")
    return lines


def plot(frame: pd.DataFrame, title: str, path: Path) -> None:
    from analysis.figures import hypervolume_vs_steps  # the figure rdc replay --plot and rdc report draw

    hypervolume_vs_steps(frame, path, title=title, goal=(STEPS_GOAL, HV_GOAL))


# The second space (issue 15: at least 24 variants, other families than the noise bench's conv
# hyperpriors): ELIC and SwinT transforms x hyperprior, CHARM and ELIC entropy x conv and SwinT
# hyper-transforms, at two latent widths; tiny knobs from models/tiny.py.
SECOND_PREFIX = "early_stopping_space2"  # bench/<prefix>_curves.csv and _final.csv


def second_tables(prefix: str) -> tuple[Path, Path]:
    return REPO / "bench" / f"{prefix}_curves.csv", REPO / "bench" / f"{prefix}_final.csv"


def second_space() -> dict[str, dict]:
    import itertools

    from models.tiny import tiny_spec

    out = {}
    for transform, entropy, hyper in itertools.product(("elic", "swint"), ("hyperprior", "charm", "elic"), ("conv", "swint")):
        for m in (16, 32):
            spec = tiny_spec(transform, entropy, hyper)
            spec["M"] = m
            if entropy == "elic" and m == 16:
                spec["entropy"]["groups"] = [4, 4, 4]  # the tiny groups sum to 16: the last must take the rest
            out[f"{transform}-{entropy}-{hyper}-M{m}"] = spec
    return out


def record_second_table(steps: int, crop: int, eval_every: int, seeds: int, prefix: str, shard: tuple[int, int],
                        eval_crop: int = 128, config: str = "new") -> None:
    """Train the second space with the noise bench's own protocol (its train_one and one of its
    configs, by default the new default), into bench/<prefix>_curves.csv and _final.csv; runs already there are skipped.
    `shard` (i, n) trains only runs i, i+n, ... (n processes side by side, as the noise bench's).
    The held-out curve is taken on centre crops of `eval_crop` of the final images (0: whole, as
    the final evaluation is)."""
    import argparse as _argparse

    import torch

    sys.path.insert(0, str(REPO / "bench"))
    import bench_noise  # the noise bench: one protocol for both tables

    from jobs.data import load_folder, load_images
    from jobs.heldout import HeldOutSet

    if config not in bench_noise.CONFIGS:
        raise SystemExit(f"--record-config={config!r}: allowed: {', '.join(bench_noise.CONFIGS)}")
    bench_noise.VARIANTS.update(second_space())
    bench_noise.CURVES, bench_noise.FINAL = second_tables(prefix)
    part, parts = shard
    torch.set_num_threads(1)
    train_images = load_images(None, split="train", key="train")
    kodak = bench_noise.KODAK
    final_images = (load_folder(kodak, key="kodak") if kodak.is_dir() else load_images(None, split="eval", key="eval"))[:8]
    held_out = HeldOutSet.from_images(final_images, eval_crop)
    args = _argparse.Namespace(steps=steps, crop=crop, eval_every=eval_every)
    done = bench_noise.done_runs()
    runs = [(seed, variant_id) for seed in range(seeds) for variant_id in second_space()]
    for index, (seed, variant_id) in enumerate(runs):
        if index % parts == part and (config, variant_id, seed) not in done:
            bench_noise.train_one(config, variant_id, seed, args, train_images, held_out, final_images)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--final", type=Path, default=FINAL, help="per-run final metrics (rd_loss); '' for none")
    parser.add_argument("--config", default="new", help="rows of this `config` column only (the noise bench's)")
    parser.add_argument("--synthetic", action="store_true", help="replay a synthetic table instead")
    parser.add_argument("--concurrency", type=int, default=None, help="trials at a time (default: all side by side)")
    parser.add_argument("--replicates", action="store_true", help="one sweep with every seed (default: a sweep per seed)")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 draws")
    parser.add_argument("--record-second", action="store_true",
                        help="train the second space's learning-curve table first (CPU-sized; minutes per variant)")
    parser.add_argument("--record-steps", type=int, default=300)
    parser.add_argument("--record-crop", type=int, default=32)
    parser.add_argument("--record-seeds", type=int, default=1)
    parser.add_argument("--record-every", type=int, default=25, help="held-out evaluation every this many steps")
    parser.add_argument("--record-prefix", default=SECOND_PREFIX, help="bench/<prefix>_curves.csv and _final.csv")
    parser.add_argument("--shard", type=shard_arg, default=(0, 1), help="with --record-second, i/n: train runs i, i+n, ... only")
    parser.add_argument("--record-eval-crop", type=int, default=128,
                        help="held-out centre crops of this side (0: the whole final images)")
    parser.add_argument("--record-config", default="new", help="with --record-second: the noise bench's training config")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    draws = 20 if args.quick else args.draws
    if args.record_second:
        record_second_table(args.record_steps, args.record_crop, args.record_every, args.record_seeds,
                            args.record_prefix, args.shard, args.record_eval_crop, args.record_config)
        return 0

    if args.synthetic:
        table, source = synthetic(), "synthetic table (24 variants x 3 seeds)"
    else:
        table = load(args.table, Path(args.final) if str(args.final) else None, args.config)
        source = f"{args.table.name} (config {args.config})"
    curves, max_steps = to_curves(table)
    complete = [c for c in curves if c.final_rd_loss is not None]
    if len(complete) < len(curves):
        print(f"{len(curves) - len(complete)} trial(s) without a final point left out")
    curves = complete
    noise = pooled_noise_sd(curves)
    seeds = sorted({c.seed for c in curves})
    variants = sorted({c.variant_id for c in curves})
    order = "parallel"
    shape = f"{'all seeds together' if args.replicates else 'each seed alone'}, " \
            f"{'every trial side by side' if args.concurrency is None else f'{args.concurrency} trials at a time'}"
    print(f"{source}: {len(variants)} variants x seeds {seeds}, {max_steps} steps, eval every "
          f"{curves[0].steps[1] - curves[0].steps[0] if len(curves[0].steps) > 1 else '?'}; noise (pooled within-variant "
          f"sd of the final RD loss) {noise if noise is None else round(noise, 4)}; {shape}", flush=True)

    # A sweep is every variant: seeds still being recorded (not every variant yet) are left out.
    complete_seeds = [s for s in seeds if {c.variant_id for c in curves if c.seed == s} == set(variants)]
    if complete_seeds != seeds:
        print(f"seeds {sorted(set(seeds) - set(complete_seeds))} lack some variants (still recording): left out")
        curves = [c for c in curves if c.seed in complete_seeds]
    groups = [curves] if args.replicates else [[c for c in curves if c.seed == s] for s in complete_seeds]
    runs = [sweep_rows(g, max_steps, noise, order, args.concurrency, draws, seed=i) for i, g in enumerate(groups)]
    frame = average(runs)
    frame.to_csv(args.out, index=False)
    show = frame[~frame["policy"].isin(["random", "optuna-tpe"])]
    print(show[["policy", "setting", "steps_fraction", "hypervolume_kept", "stopped", "lost_frontier_variants"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}", max_colwidth=70))
    for policy in ("random", "optuna-tpe"):
        rows = frame[frame["policy"] == policy]
        print(f"{policy} by k: " + ", ".join(f"{r.steps_fraction:.2f}->{r.hypervolume_kept:.3f}" for r in rows.itertuples()))
    print(f"\nwhat any policy can know: {curve_agreement(curves, max_steps, RUNGS).describe()}")
    print()
    for line in verdict(frame):
        print(line)
    plot(frame, f"{source}; {shape}", args.plot)
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out} and {args.plot.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
