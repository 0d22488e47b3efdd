"""Is our runtime protocol repeatable, and do FLOPs rank models like runtime does?

    .venv/bin/python bench/bench_profile.py            # Kodak (4 images, full size), 15 repeats
    .venv/bin/python bench/bench_profile.py --quick    # 2 Kodak images cropped to 256 x 256, 7 repeats

The models are the `frontier` search space's variants (conf/search_space/frontier.yaml) when
that file exists, otherwise a built-in list of tiny CPU variants of every component. Each is
built with fixed seeds and profiled twice with jobs.profile.profile_runtime (the code `rdc
profile` runs: batch 1, warm-up, synchronised clock, median and CV of the repeats, threads
pinned), the second pass after the first has gone through every model.

Targets (from the issue; the lead re-runs them on a quiet machine):
- CV <= 3 % per model (the mean over images of the repeats' robust CV, 1.4826 MAD / median; the
  classic stdev / mean is printed beside it), in both passes;
- Kendall tau >= 0.95 between the two passes' runtime rankings.
Reported, the study's point: the Kendall tau between the decode-FLOPs ranking and the runtime
ranking. Times are also given as ratios to the smallest model (the baseline of this run).
Ranked stage: decode without entropy coding (`decode_networks`, the study's Fig. 4); the same
figures are printed for decode with entropy coding.
Exit code 0 when both targets are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from jobs.data import Image, load_folder  # noqa: E402
from jobs.device import device_name, pinned_threads  # noqa: E402
from jobs.profile import RuntimeProtocol, decode_flops, profile_runtime  # noqa: E402
from models import build  # noqa: E402
from rdc import names  # noqa: E402

FRONTIER_SPACE = REPO / "conf" / "search_space" / "frontier.yaml"
KODAK = REPO.parent / "shared" / "data" / "kodak"
CV_TARGET = 0.03
TAU_TARGET = 0.95
RANKED = names.DECODE_NETWORKS

# Until conf/search_space/frontier.yaml lands: tiny CPU members of every transform, entropy
# model and hyper-transform, spread over about an order of magnitude of decode FLOPs.
BUILTIN_VARIANTS = {
    "conv-hp-32-48": {"M": 48, "transform": {"type": "conv", "N": 32}, "entropy": {"type": "hyperprior"},
                      "hyper": {"type": "conv", "N": 32}},
    "conv-hp-64-96": {"M": 96, "transform": {"type": "conv", "N": 64}, "entropy": {"type": "hyperprior"},
                      "hyper": {"type": "conv", "N": 64}},
    "conv-hp-96-128": {"M": 128, "transform": {"type": "conv", "N": 96}, "entropy": {"type": "hyperprior"},
                       "hyper": {"type": "conv", "N": 64}},
    "conv-charm-48-96": {"M": 96, "transform": {"type": "conv", "N": 48},
                         "entropy": {"type": "charm", "num_slices": 4, "max_support_slices": 2,
                                     "slice_widths": [48, 32], "slice_kernel": 3},
                         "hyper": {"type": "conv", "N": 48}},
    "elic-hp-32-64": {"M": 96, "transform": {"type": "elic", "channels": [32, 64, 64], "num_res_blocks": 1},
                      "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 48}},
    "elic-charm-swint": {"M": 96, "transform": {"type": "elic", "channels": [32, 48, 48], "num_res_blocks": 2},
                         "entropy": {"type": "charm", "num_slices": 4, "max_support_slices": 2,
                                     "slice_widths": [32, 16], "slice_kernel": 3, "lrp_merge": "concat",
                                     "hyper_heads": "per_slice"},
                         "hyper": {"type": "swint", "dims": [48, 48], "depths": [2, 1], "head_dim": 16, "window": 4}},
    "swint-hp-32-64": {"M": 96, "transform": {"type": "swint", "dims": [32, 48, 64], "depths": [1, 1, 2, 1],
                                              "head_dim": 16, "window": 8},
                       "entropy": {"type": "hyperprior"}, "hyper": {"type": "conv", "N": 48}},
}


def variants() -> tuple[str, dict[str, dict]]:
    """(where they came from, label -> spec)."""
    if not FRONTIER_SPACE.is_file():
        return "built-in list (conf/search_space/frontier.yaml is absent)", BUILTIN_VARIANTS
    import yaml

    from sweep.space import expand

    space = yaml.safe_load(FRONTIER_SPACE.read_text())
    found = {f"{v.group} {v.family}": v.spec for v in expand(space)}  # e.g. "B ELIC/CHARM:SwinT"
    return f"{FRONTIER_SPACE.relative_to(REPO)} ({len(found)} variants)", found


def images(args) -> tuple[str, list[Image]]:
    if args.images:
        found = load_folder(Path(args.images), key="--images")
    elif KODAK.is_dir():
        found = load_folder(KODAK, key="kodak")
    else:
        from jobs.data import load_images

        found = load_images(None, split="eval", key="builtin")
    found = found[: args.num_images]
    if args.crop:
        found = [Image(im.name, im.pixels[: args.crop, : args.crop].copy()) for im in found]
    size = f"{found[0].pixels.shape[0]}x{found[0].pixels.shape[1]}"
    return f"{len(found)} images ({size}{' crops' if args.crop else ''})", found


def ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0] * len(values)
    for rank, index in enumerate(order):
        out[index] = rank + 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 images cropped to 256 px, 7 repeats")
    parser.add_argument("--images", default=None, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, pinned (default 1)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    args = parser.parse_args(argv)
    args.num_images, args.crop = (2, 256) if args.quick else (4, None)
    repeats = args.repeats or (7 if args.quick else 15)
    warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)

    source, specs = variants()
    image_text, bench_images = images(args)
    protocol = RuntimeProtocol(warmup=warmup, repeats=repeats, threads=args.threads)
    models, flops = {}, {}
    for label, spec in specs.items():
        torch.manual_seed(0)
        model = build(spec).eval()
        model.update(force=True)
        models[label], flops[label] = model, decode_flops(model)["kflops_per_px"]

    with pinned_threads(args.threads):
        device = device_name("cpu")
    print(f"bench_profile: {len(models)} models from {source}; {image_text}; {device}; warmup {warmup}, "
          f"repeats {repeats}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    # Burn-in, untimed: the first model a process times otherwise pays for the process's own
    # warm-up (allocator growth, thread pool, caches) on top of its per-model warm-up.
    for m in models.values():
        profile_runtime(m, bench_images, torch.device("cpu"), RuntimeProtocol(1, 2))
    passes = []
    for _ in range(2):  # every model once, then every model again
        passes.append({label: profile_runtime(m, bench_images, torch.device("cpu"), protocol) for label, m in models.items()})
    print(f"  two passes took {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}\n")

    labels = sorted(models, key=flops.get)
    baseline = labels[0]
    ok = True
    for stage in (RANKED, names.DECODE):
        ms = [[p[label].summary(stage)[names.MS] for label in labels] for p in passes]
        cvs = [[p[label].summary(stage)[names.CV] for label in labels] for p in passes]
        print(f"{stage} ({'ranked' if stage == RANKED else 'for information'}):")
        print(f"  {'model':<24} {'kFLOP/px':>9} {'ms 1':>9} {'ms 2':>9} {'x base':>7} {'cv 1':>6} {'cv 2':>6}"
              f" {'rank FLOPs':>10} {'rank 1':>6} {'rank 2':>6}")
        rank_flops, rank_1, rank_2 = ranks([flops[label] for label in labels]), ranks(ms[0]), ranks(ms[1])
        for i, label in enumerate(labels):
            print(f"  {label:<24} {flops[label]:9.1f} {ms[0][i]:9.2f} {ms[1][i]:9.2f} {ms[0][i] / ms[0][0]:7.2f}"
                  f" {100 * cvs[0][i]:5.1f}% {100 * cvs[1][i]:5.1f}% {rank_flops[i]:>10} {rank_1[i]:>6} {rank_2[i]:>6}")
        worst_cv = max(max(c) for c in cvs)
        # The classic stdev/mean, for comparison: one preempted repeat dominates it.
        worst_classic = max(statistics.fmean(im.timings[stage].cv_classic for im in p[label].images)
                            for p in passes for label in labels)
        tau_passes = kendalltau(ms[0], ms[1]).statistic
        tau_flops = kendalltau([flops[label] for label in labels], ms[0]).statistic
        cv_met, tau_met = worst_cv <= CV_TARGET, tau_passes >= TAU_TARGET
        print(f"  worst CV {100 * worst_cv:.1f}% (robust, MAD/median; target <= {100 * CV_TARGET:.0f}%: "
              f"{'met' if cv_met else 'NOT met'}; classic stdev/mean {100 * worst_classic:.1f}%); "
              f"Kendall tau pass 1 vs pass 2 {tau_passes:.3f} (target >= {TAU_TARGET}: {'met' if tau_met else 'NOT met'}); "
              f"Kendall tau FLOPs vs runtime {tau_flops:.3f}; baseline {baseline}\n")
        if stage == RANKED:
            ok = cv_met and tau_met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
