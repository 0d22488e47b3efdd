"""Orchestration overhead of a sweep on the local Ray: how much longer the sweep takes than its
trials' own work, spread perfectly over the trial slots.

    overhead = sweep wall time / (sum of trial times / concurrency)        goal: <= 1.05

A trial's time is measured inside it (trainable entry to its last report: training, MLflow
logging, checkpoints, evaluation); everything else (Tune's scheduling, worker start-up, gaps
between trials, the driver's bookkeeping) is overhead. Two sweep walls are reported: Tune's
fit alone, and the whole `rdc sweep` command (config, Ray start and stop, MLflow checks),
whose fixed start-up cost a long sweep amortises. The baseline (the ideal time) is measured in
the same run, so the ratio holds on a loaded machine too; the absolute seconds do not.

    .venv/bin/python bench/bench_overhead.py            # 16 trials of about 20 s (~3 minutes on 2 cores)
    .venv/bin/python bench/bench_overhead.py --quick    # 4 trials of about 5 s
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.05
FIXED_TRIAL_SECONDS = 2.0  # per trial besides training: MLflow run, evaluation, FLOPs, artifacts (seen here)


def write_inputs(root: Path, widths: list[int]) -> None:
    import skimage.data
    from PIL import Image

    (root / "conf" / "search_space").mkdir(parents=True)
    (root / "conf" / "search_space" / "bench.yaml").write_text(
        "name: bench_overhead\n"
        "shared:\n  entropy: {type: hyperprior}\n  hyper: {type: conv, N: 8}\n"
        f"families:\n  - name: tiny\n    transform: {{type: conv, N: {widths}}}\n    M: {widths}\n")
    (root / "eval").mkdir()
    Image.fromarray(skimage.data.coffee()[:64, :96]).save(root / "eval" / "coffee.png")


def _time_steps(width: int, batch: int, crop: int) -> float:
    import torch

    from jobs.crops import RandomCrops
    from jobs.data import load_images
    from jobs.settings import TrainSettings
    from jobs.train import Trainer
    from models import build

    torch.set_num_threads(1)
    spec = {"M": width, "transform": {"type": "conv", "N": width}, "entropy": {"type": "hyperprior"},
            "hyper": {"type": "conv", "N": 8}}
    trainer = Trainer(build(spec), TrainSettings(steps=1000, batch_size=batch, crop=crop),
                      RandomCrops(load_images(None, split="train", key="data.train_dir"), crop, batch, 0))
    trainer.train_step()
    start, steps = time.perf_counter(), 30
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps


def seconds_per_step(width: int, batch: int, crop: int, concurrent: int) -> float:
    """One training step of a mid-size variant on one thread, with `concurrent` processes training
    side by side as the trials will (they share the machine with each other and whatever else runs)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(concurrent) as pool:
        return max(pool.starmap(_time_steps, [(width, batch, crop)] * concurrent))


def trial_spans(runs: Path, sweep: str) -> list[tuple[float, float]]:
    """(start, end) wall-clock seconds of each trial's own work, as the trial measured it."""
    out = []
    for path in sorted((runs / "ray" / sweep).glob("*/result.json")):
        results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        final = [r for r in results if r.get("done")]
        if not final:
            raise RuntimeError(f"{path.parent.name} did not finish")
        out.append((final[-1]["started_at"], final[-1]["started_at"] + final[-1]["trial_seconds"]))
    return out


def run(trials: int, seconds: float, cpus: int) -> dict:
    from sweep import commands, launch

    side = math.isqrt(trials)
    if side * side != trials:
        raise SystemExit(f"--trials must be a square (a width x width grid), not {trials}")
    widths = list(range(8, 8 + 2 * side, 2))
    batch, crop = 2, 32
    per_step = seconds_per_step(widths[len(widths) // 2], batch, crop, min(cpus, trials))
    steps = max(20, round((seconds - FIXED_TRIAL_SECONDS) / per_step))
    walls: dict[str, float] = {}
    fit = launch.run_trials

    def timed_fit(*args, **kwargs):
        walls["fit_start"] = time.time()
        try:
            return fit(*args, **kwargs)
        finally:
            walls["fit_end"] = time.time()

    launch.run_trials = timed_fit
    with tempfile.TemporaryDirectory(prefix="rdc-bench-") as folder:
        root = Path(folder)
        write_inputs(root, widths)
        argv = ["--config-dir", str(root / "conf"), "search_space=bench", f"runs_dir={root / 'runs'}",
                f"train.steps={steps}", f"train.batch_size={batch}", f"train.crop={crop}", "train.log_every=20",
                f"train.checkpoint_every={max(20, steps // 4)}", f"data.eval_dir={root / 'eval'}",
                "profile.repeats=2", "profile.warmup=0", "profile.flops_height=64", "profile.flops_width=64",
                f"cluster.num_cpus={cpus}", "cluster.trial_cpus=1"]
        start = time.perf_counter()
        code = commands.main(argv)
        walls["command"] = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"the sweep failed (exit {code})")
        spans = trial_spans(root / "runs", "bench_overhead")
    times = [end - start for start, end in spans]
    walls["fit"] = walls["fit_end"] - walls["fit_start"]
    concurrency = min(cpus, trials)
    ideal = sum(times) / concurrency
    return {
        "trials": len(times), "concurrency": concurrency, "steps": steps,
        "trial_seconds_mean": sum(times) / len(times), "trial_seconds_min": min(times), "trial_seconds_max": max(times),
        "ideal_seconds": ideal, "fit_seconds": walls["fit"], "command_seconds": walls["command"],
        "overhead_fit": walls["fit"] / ideal, "overhead_command": walls["command"] / ideal,
        # Where the overhead goes: before the first trial works (worker start-up, imports), after
        # the last one ends, and in between (scheduling gaps: total idle slot time / concurrency).
        "first_trial_after_seconds": min(s for s, _ in spans) - walls["fit_start"],
        "after_last_trial_seconds": walls["fit_end"] - max(e for _, e in spans),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of about 5 s")
    parser.add_argument("--trials", type=int, help="number of trials, a square (default 16; 4 with --quick)")
    parser.add_argument("--seconds", type=float, help="target seconds per trial (default 20; 5 with --quick)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray = concurrent trials (default 2)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    trials = args.trials or (4 if args.quick else 16)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    figures = run(trials, seconds, args.cpus)
    print(f"\n{figures['trials']} trials x {figures['trial_seconds_mean']:.1f} s "
          f"(min {figures['trial_seconds_min']:.1f}, max {figures['trial_seconds_max']:.1f}), "
          f"{figures['concurrency']} at a time: ideal {figures['ideal_seconds']:.1f} s")
    print(f"  Tune fit     {figures['fit_seconds']:7.1f} s   overhead {figures['overhead_fit']:.3f}   (goal <= {GOAL})")
    print(f"  rdc sweep    {figures['command_seconds']:7.1f} s   overhead {figures['overhead_command']:.3f}   "
          "(with Ray start/stop and checks)")
    print(f"  first trial began {figures['first_trial_after_seconds']:.1f} s into the fit; "
          f"the fit ended {figures['after_last_trial_seconds']:.1f} s after the last trial")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
