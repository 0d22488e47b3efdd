"""Do runtimes flag their own interference? The frontier preset timed without and with competing load.

    .venv/bin/python bench/bench_runtime_load.py                  # families D-G, 2 Kodak crops of 128 px
    .venv/bin/python bench/bench_runtime_load.py --families A,B,C,D,E,F,G --crop 256

Every model is profiled with jobs.profile.profile_runtime (what `rdc profile` runs: one torch
thread, CPU time beside wall time, stages interleaved, disturbed images re-measured) twice:
first as the machine is ("quiet": this bench adds nothing; on a shared machine that is not
idle), then with one CPU-bound process per core started by the bench ("loaded"). Per model and
stage the loaded wall figure is compared with a reference: the quiet wall figure when the quiet
profile trusted it, else the quiet CPU time (with one thread, the calling thread's CPU time is
what an undisturbed call takes: no neighbour's work is counted in it). Verdict per figure:
"ok" within 5 % of the reference, "flagged" when the profile reported it suspect
(RuntimeProfile.suspects, what becomes the runtime_suspect tag), "WRONG" otherwise. Target: no
WRONG figure. The loaded/quiet ratio of CPU time is printed too: it says whether CPU time itself
stays true under load (a neighbour on the same physical core or cache inflates it).
Writes bench/runtime_load.csv. Exit code 0 when no figure is WRONG.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from bench_profile import variants  # noqa: E402
from jobs.data import Image, load_folder, load_images  # noqa: E402
from jobs.profile import RuntimeProtocol, decode_flops, profile_runtime  # noqa: E402
from models import build  # noqa: E402
from rdc import names  # noqa: E402

KODAK = REPO.parent / "shared" / "data" / "kodak"
OUT = REPO / "bench" / "runtime_load.csv"
TOLERANCE = 0.05
BUSY_LOOP = "while True: pass"


def bench_images(crop: int, count: int) -> list[Image]:
    found = load_folder(KODAK, key="kodak") if KODAK.is_dir() else load_images(None, split="eval", key="eval")
    return [Image(im.name, im.pixels[:crop, :crop].copy()) for im in found[:count]]


def competing_load(processes: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]


def profile_all(models: dict, images, protocol) -> dict:
    return {label: profile_runtime(model, images, torch.device("cpu"), protocol) for label, model in models.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default="D,E,F,G", help="frontier families (Table 1 letters)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--num-images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--remeasure", type=int, default=2)
    parser.add_argument("--competitors", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    args = parser.parse_args(argv)

    source, specs = variants()
    wanted = args.families.split(",")
    chosen = {label: spec for label, spec in specs.items() if label.split()[0] in wanted} or specs
    models = {}
    for label, spec in chosen.items():
        torch.manual_seed(0)
        model = build(spec).eval()
        model.update(force=True)
        models[label] = model
    images = bench_images(args.crop, args.num_images)
    protocol = RuntimeProtocol(warmup=1, repeats=args.repeats, threads=1, remeasure=args.remeasure)
    print(f"bench_runtime_load: {len(models)} models from {source}; {len(images)} images {args.crop} px; "
          f"1 torch thread; repeats {args.repeats}, re-measure <= {args.remeasure}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} before starting (other processes share this machine)", flush=True)
    profile_all(models, images, RuntimeProtocol(1, 2, threads=1, remeasure=0))  # burn-in, untimed

    started = time.perf_counter()
    quiet = profile_all(models, images, protocol)
    load_quiet = os.getloadavg()[0]
    competitors = competing_load(args.competitors)
    try:
        time.sleep(1.0)  # let them get going
        loaded = profile_all(models, images, protocol)
        load_loaded = os.getloadavg()[0]
    finally:
        for process in competitors:
            process.kill()
            process.wait()
    print(f"quiet pass: load average {load_quiet:.1f}; loaded pass (+{args.competitors} busy processes): "
          f"{load_loaded:.1f}; {time.perf_counter() - started:.0f} s in all\n")

    rows, counts = [], {"ok": 0, "flagged": 0, "WRONG": 0}
    header = (f"{'model':<24} {'stage':<16} {'quiet ms':>9} {'cpu':>8} {'q?':>3} {'ref':>8} {'loaded':>9} "
              f"{'cpu':>8} {'l?':>3} {'wall/ref':>8} {'cpu l/q':>7} verdict")
    print(header)
    for label in sorted(models, key=lambda m: decode_flops(models[m])["kflops_per_px"]):
        q, l = quiet[label], loaded[label]
        q_suspect, l_suspect = q.suspects(), l.suspects()
        for stage in names.RUNTIME_STAGES:
            q_ms, q_cpu = q.summary(stage)[names.MS], q.cpu_ms(stage)
            l_ms, l_cpu = l.summary(stage)[names.MS], l.cpu_ms(stage)
            reference = q_ms if stage not in q_suspect else q_cpu
            ratio = l_ms / reference
            verdict = "ok" if abs(ratio - 1) <= TOLERANCE else ("flagged" if stage in l_suspect else "WRONG")
            counts[verdict] += 1
            windows = sum(im.windows for im in l.images)
            rows.append({"model": label, "stage": stage, "quiet_ms": q_ms, "quiet_cpu_ms": q_cpu,
                         "quiet_suspect": stage in q_suspect, "reference_ms": reference, "loaded_ms": l_ms,
                         "loaded_cpu_ms": l_cpu, "loaded_suspect": stage in l_suspect, "loaded_windows": windows,
                         "wall_over_reference": ratio, "cpu_loaded_over_quiet": l_cpu / q_cpu, "verdict": verdict})
            print(f"{label:<24} {stage:<16} {q_ms:9.2f} {q_cpu:8.2f} {'S' if stage in q_suspect else '-':>3} "
                  f"{reference:8.2f} {l_ms:9.2f} {l_cpu:8.2f} {'S' if stage in l_suspect else '-':>3} "
                  f"{ratio:8.2f} {l_cpu / q_cpu:7.2f} {verdict}")
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cpu_ratios = sorted(r["cpu_loaded_over_quiet"] for r in rows)
    print(f"\n{len(rows)} figures: {counts['ok']} within {100 * TOLERANCE:.0f}% of the reference, {counts['flagged']} "
          f"flagged suspect, {counts['WRONG']} WRONG (off and unflagged); quiet figures flagged: "
          f"{sum(r['quiet_suspect'] for r in rows)}; CPU time loaded/quiet from {cpu_ratios[0]:.2f} to "
          f"{cpu_ratios[-1]:.2f} (median {cpu_ratios[len(cpu_ratios) // 2]:.2f}). Table: {OUT.relative_to(REPO)}")
    return 0 if counts["WRONG"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
