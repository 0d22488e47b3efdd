"""Can a sweep tell architectures apart from seed noise? Old and new default training, compared.

    .venv/bin/python bench/bench_noise.py                 # 12 variants x 3 seeds x 2 configs
    .venv/bin/python bench/bench_noise.py --summary-only  # the figures again, from the CSVs

Trains CPU-sized hyperpriors in this process with jobs/ directly (no Ray, no MLflow): every
variant with every seed under the old default training (conf/train/demo.yaml before this change:
batch 4, lr 2e-4, x0.1 at 90 %, no warm-up) and under the new one (batch 8, lr 1e-3 with a
linear warm-up, x0.1 at 80 %), both scaled to the CPU alike (crop, steps). Every
--eval-every steps the held-out curve (jobs.heldout: fixed centre crops of the evaluation
images, likelihood estimate) is recorded; at the end the model is evaluated with real
bitstreams on the full evaluation images (jobs.evaluate), as a sweep's final metrics are.

Per config it prints the between-variant sd (of the variants' mean final RD loss over seeds),
the pooled within-variant sd (root mean of the variants' variances over seeds), their ratio,
Spearman's rho between the rankings of every pair of seeds, and the frontier (minimum RD loss
and decode kFLOPs/px, on the means over seeds) with each variant's membership probability by
bootstrap over seeds (seeds resampled with replacement per variant). Goal for the new default:
within sd <= 1/3 of between sd and rho >= 0.8. The figures are given for the final real-bitstream
RD loss, the last held-out point and rd_loss_smoothed.

Runs are appended to the CSVs as they finish and skipped when present: an interrupted bench
resumes. Order: seed-major, so the first two seeds of every variant finish first.
Files: bench/noise_curves.csv (the learning-curve table the early-stopping work replays: config,
variant_id, seed, step, eval_rd_loss, eval_bpp, eval_psnr, decode_kflops_per_px, lr) and
bench/noise_final.csv (one row per run).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jobs.crops import RandomCrops  # noqa: E402
from jobs.data import load_folder, load_images  # noqa: E402
from jobs.evaluate import evaluate  # noqa: E402
from jobs.heldout import HeldOutSet, smoothed_rd_loss  # noqa: E402
from jobs.profile import decode_flops  # noqa: E402
from jobs.settings import TrainSettings  # noqa: E402
from jobs.train import Trainer, TrainingDiverged  # noqa: E402
from models import build  # noqa: E402
from rdc import names  # noqa: E402
from shards import shard_arg  # noqa: E402  (bench/ is on the path of a bench script)

KODAK = REPO.parent / "shared" / "data" / "kodak"
CURVES = REPO / "bench" / "noise_curves.csv"
FINAL = REPO / "bench" / "noise_final.csv"
CURVE_COLUMNS = ["config", "variant_id", "seed", "step", "eval_rd_loss", "eval_bpp", "eval_psnr",
                 "decode_kflops_per_px", "lr"]
FINAL_COLUMNS = ["config", "variant_id", "seed", "steps", "rd_loss", "bpp", "psnr", "eval_rd_loss_last",
                 "rd_loss_smoothed", "decode_kflops_per_px", "cpu_seconds", "wall_seconds", "failed"]
WITHIN_OVER_BETWEEN_GOAL, RHO_GOAL, MEMBERSHIP_LEVEL = 1 / 3, 0.8, 0.8

# 12 conv hyperpriors (Balle et al. 2018), widths N x latent channels M, about 4x in decode FLOPs.
VARIANTS = {
    f"hp-N{n}-M{m}": {"M": m, "transform": {"type": "conv", "N": n}, "entropy": {"type": "hyperprior"},
                      "hyper": {"type": "conv", "N": n}}
    for n, m in itertools.product((8, 12, 16, 24), (16, 24, 32))
}

# The old default (conf/train/demo.yaml before this change) and the new one; the bench sets
# steps, crop, eval_every and seed for both alike.
CONFIGS = {
    "old": TrainSettings(batch_size=4, lr=2e-4, aux_lr=1e-3, clip_grad=1.0, lr_drop_at=0.9, warmup_steps=0),
    "new": TrainSettings(batch_size=8, lr=1e-3, aux_lr=1e-3, clip_grad=1.0, lr_drop_at=0.8, warmup_steps=-1),
}
# What each part of the new default buys: the new default with one part set back to the old one
# (--configs new-batch4,new-lr2e-4,new-nowarmup,new-drop90).
ABLATIONS = {
    "new-batch4": {"batch_size": 4},
    "new-lr2e-4": {"lr": 2e-4},
    "new-nowarmup": {"warmup_steps": 0},
    "new-drop90": {"lr_drop_at": 0.9},
}
# Candidates for a default that brings the narrow variants' break-through forward (--configs
# new-lr2e-3,...; screened on the N = 8 variants with --variants 3: bench/README.md).
CANDIDATES = {
    "new-lr2e-3": {"lr": 2e-3},
    "new-lr5e-4": {"lr": 5e-4},  # steadier curves for the early-stopping bench's second table
    "new-lr3e-3": {"lr": 3e-3},
    "new-noclip": {"clip_grad": 0.0},
    "new-batch16": {"batch_size": 16},
}
CONFIGS.update({name: replace(CONFIGS["new"], **change) for name, change in {**ABLATIONS, **CANDIDATES}.items()})
WARMUP_SHARE = 0.05  # warmup_steps=-1 above: 5 % of the steps


def settings_for(config: str, steps: int, crop: int, eval_every: int, seed: int) -> TrainSettings:
    base = CONFIGS[config]
    warmup = round(WARMUP_SHARE * steps) if base.warmup_steps < 0 else base.warmup_steps
    return replace(base, steps=steps, crop=crop, eval_every=eval_every, seed=seed, warmup_steps=warmup)


def done_runs() -> set[tuple[str, str, int]]:
    if not FINAL.is_file():
        return set()
    with FINAL.open() as f:
        return {(r["config"], r["variant_id"], int(r["seed"])) for r in csv.DictReader(f)}


def append(path: Path, columns: list[str], rows: list[dict]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def train_one(config, variant_id, seed, args, train_images, held_out, final_images) -> None:
    settings = settings_for(config, args.steps, args.crop, args.eval_every, seed)
    torch.manual_seed(seed)  # the initial weights, as the trainable seeds them
    model = build(VARIANTS[variant_id])
    kflops = decode_flops(model)["kflops_per_px"]
    trainer = Trainer(model, settings, RandomCrops(train_images, settings.crop, settings.batch_size, seed))
    curve, failed = [], ""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        while trainer.step < settings.steps:
            lr = trainer.learning_rate(trainer.step)
            trainer.train_step()
            if trainer.eval_due():
                point = trainer.evaluate_held_out(held_out)
                curve.append({"config": config, "variant_id": variant_id, "seed": seed, "step": trainer.step,
                              "eval_rd_loss": point[names.EVAL_RD_LOSS], "eval_bpp": point[names.EVAL_BPP],
                              "eval_psnr": point[names.EVAL_PSNR], "decode_kflops_per_px": kflops, "lr": lr})
    except TrainingDiverged as err:
        failed = str(err)
    final = evaluate(model, final_images, settings.lmbda).summary if not failed else {}
    row = {"config": config, "variant_id": variant_id, "seed": seed, "steps": trainer.step,
           "rd_loss": final.get(names.RD_LOSS, float("nan")), "bpp": final.get(names.BPP, float("nan")),
           "psnr": final.get(names.PSNR, float("nan")),
           "eval_rd_loss_last": curve[-1]["eval_rd_loss"] if curve else float("nan"),
           "rd_loss_smoothed": smoothed_rd_loss([p["eval_rd_loss"] for p in curve]),
           "decode_kflops_per_px": kflops, "cpu_seconds": time.process_time() - cpu0,
           "wall_seconds": time.perf_counter() - wall0, "failed": failed}
    append(CURVES, CURVE_COLUMNS, curve)
    append(FINAL, FINAL_COLUMNS, [row])
    print(f"{config} {variant_id} seed {seed}: rd_loss {row['rd_loss']:.4f} smoothed {row['rd_loss_smoothed']:.4f} "
          f"({row['cpu_seconds']:.0f} s CPU, {row['wall_seconds']:.0f} s wall){' FAILED ' + failed if failed else ''}",
          flush=True)


# -- the figures ------------------------------------------------------------------------------
def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pareto(rd: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats in both (lower RD loss, lower cost)."""
    better_eq = (rd[None, :] <= rd[:, None]) & (cost[None, :] <= cost[:, None])
    strictly = (rd[None, :] < rd[:, None]) | (cost[None, :] < cost[:, None])
    return ~np.any(better_eq & strictly, axis=1)


def membership(values: np.ndarray, cost: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Per variant: the share of bootstrap rounds (seeds resampled per variant) it is on the frontier.
    `values`: variants x seeds."""
    variants, seeds = values.shape
    hits = np.zeros(variants)
    for _ in range(rounds):
        picks = rng.integers(seeds, size=(variants, seeds))
        means = np.take_along_axis(values, picks, axis=1).mean(axis=1)
        hits += pareto(means, cost)
    return hits / rounds


def summarise(rows: list[dict], metric: str, seeds: list[int], rounds: int = 2000) -> dict | None:
    """The figures over the variants that have every one of `seeds` (None: fewer than 3 such)."""
    by_variant: dict[str, dict[int, float]] = {}
    cost: dict[str, float] = {}
    for r in rows:
        by_variant.setdefault(r["variant_id"], {})[int(r["seed"])] = float(r[metric])
        cost[r["variant_id"]] = float(r["decode_kflops_per_px"])
    variants = sorted((v for v in by_variant if all(s in by_variant[v] and not np.isnan(by_variant[v][s]) for s in seeds)),
                      key=cost.get)
    if len(seeds) < 2 or len(variants) < 3:
        return None
    values = np.array([[by_variant[v][s] for s in seeds] for v in variants])
    between = float(np.std(values.mean(axis=1), ddof=1))
    within = float(np.sqrt(np.mean(np.var(values, axis=1, ddof=1))))
    rhos = [spearman(values[:, i].tolist(), values[:, j].tolist()) for i, j in itertools.combinations(range(len(seeds)), 2)]
    costs = np.array([cost[v] for v in variants])
    on_front = pareto(values.mean(axis=1), costs)
    prob = membership(values, costs, rounds, np.random.default_rng(0))
    return {"variants": len(variants), "between_sd": between, "within_sd": within,
            "ratio": within / between if between > 0 else float("inf"), "rho_pairs": rhos,
            "rho_01": rhos[0], "frontier": [v for v, f in zip(variants, on_front) if f],
            "confident": [v for v, f, p in zip(variants, on_front, prob) if f and p >= MEMBERSHIP_LEVEL],
            "membership": dict(zip(variants, prob.round(3).tolist()))}


def report() -> int:
    if not FINAL.is_file():
        print("no runs yet")
        return 1
    with FINAL.open() as f:
        rows, seen = [], set()
        for r in csv.DictReader(f):  # a run trained twice (two processes met on it): the first counts
            if (key := (r["config"], r["variant_id"], r["seed"])) not in seen:
                seen.add(key)
                rows.append(r)
    met = True
    seed_sets = [[0, 1], [0, 1, 2]]
    for metric, seeds in itertools.product(("rd_loss", "eval_rd_loss_last", "rd_loss_smoothed"), seed_sets):
        print(f"\n== {metric}, seeds {seeds}")
        for config in CONFIGS:
            s = summarise([r for r in rows if r["config"] == config], metric, seeds)
            if s is None:
                print(f"{config}: too few finished runs")
                continue
            goal = s["ratio"] <= WITHIN_OVER_BETWEEN_GOAL and s["rho_01"] >= RHO_GOAL
            if config == "new" and metric == "rd_loss":
                met = met and goal
            print(f"{config}: {s['variants']} variants x seeds {seeds}: between sd {s['between_sd']:.4f}, "
                  f"within sd {s['within_sd']:.4f}, within/between {s['ratio']:.2f} (goal <= 0.33); "
                  f"Spearman rho seeds 0-1 {s['rho_01']:.2f}, all pairs {[round(r, 2) for r in s['rho_pairs']]} "
                  f"(goal >= 0.8); frontier {len(s['frontier'])} variants, {len(s['confident'])} with "
                  f"membership >= {MEMBERSHIP_LEVEL}: {s['confident']}; goal {'met' if goal else 'NOT met'}")
            print(f"    membership: {s['membership']}")
    cpu = {c: [float(r["cpu_seconds"]) for r in rows if r["config"] == c] for c in CONFIGS}
    print("\nCPU seconds per run: " + ", ".join(f"{c} {statistics.fmean(v):.0f}" for c, v in cpu.items() if v))
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-crop", type=int, default=128)
    parser.add_argument("--eval-images", type=int, default=8, help="first N Kodak images (builtin without Kodak)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--configs", default="old,new")
    parser.add_argument("--variants", type=int, default=len(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", type=shard_arg, default=(0, 1), help="i/n: train only the runs i, i+n, i+2n, ... (parallel processes)")
    parser.add_argument("--reverse", action="store_true", help="take the runs from the last (a helper process)")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--tables", default=None, metavar="PREFIX",
                        help="write bench/PREFIX_curves.csv and bench/PREFIX_final.csv instead of noise_*.csv "
                             "(another training length: runs are keyed by config, variant and seed only)")
    args = parser.parse_args(argv)
    if args.tables:
        global CURVES, FINAL
        CURVES, FINAL = (REPO / "bench" / f"{args.tables}_{part}.csv" for part in ("curves", "final"))
    if args.summary_only:
        return report()

    torch.set_num_threads(args.threads)
    train_images = load_images(None, split="train", key="train")
    final_images = (load_folder(KODAK, key="kodak") if KODAK.is_dir() else load_images(None, split="eval", key="eval"))
    final_images = final_images[: args.eval_images]
    held_out = HeldOutSet.from_images(final_images, args.eval_crop)
    print(f"{len(VARIANTS)} variants, steps {args.steps}, crop {args.crop}, eval every {args.eval_every} on "
          f"{held_out.num_images} centre crops of {args.eval_crop}, final on {len(final_images)} full images; "
          f"torch threads {args.threads}; load average {os.getloadavg()[0]:.1f} (a shared machine)", flush=True)
    shard, shards = args.shard
    runs = list(itertools.product(range(args.seeds), list(VARIANTS)[: args.variants], args.configs.split(",")))
    for index, (seed, variant_id, config) in (reversed(list(enumerate(runs))) if args.reverse else enumerate(runs)):
        if index % shards == shard and (config, variant_id, seed) not in done_runs():
            train_one(config, variant_id, seed, args, train_images, held_out, final_images)
    return report()


if __name__ == "__main__":
    sys.exit(main())
