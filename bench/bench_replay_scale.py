"""How long the report's early-stopping section takes as a sweep grows to the study's 571 variants.

    .venv/bin/python bench/bench_replay_scale.py            # 24, 100, 571 variants
    .venv/bin/python bench/bench_replay_scale.py 50 200     # other sizes

`rdc report` (and so the end of every `rdc sweep`) replays every early-stopping policy over the
sweep's held-out curves (analysis.replay.replay_all with the report's draws). No sweep of 571
trained variants fits this box, so the curves are synthetic and seeded: per variant a decode
cost drawn from 1-300 kFLOPs/px, a final loss that falls with the cost plus noise, and a curve
of 20 evaluations decaying to it, logged one step apart per variant (the observed order). The
figure is CPU seconds of the replay alone (imports excluded), so load from other processes
inflates it little.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.replay import Curve, Suite, pooled_noise_sd, replay_all  # noqa: E402
from analysis.report import REPORT_REPLAY_DRAWS  # noqa: E402

EVALUATIONS, EVERY = 20, 25


def synthetic_curves(variants: int, seed: int = 0) -> tuple[list[Curve], int]:
    rng = np.random.default_rng(seed)
    out = []
    for v in range(variants):
        kflops = float(rng.uniform(1, 300))
        final = 8 + 3 / np.log(kflops + 2) + rng.normal(0, 0.3)
        steps = tuple(EVERY * (i + 1) for i in range(EVALUATIONS))
        losses = tuple(final + 30 * np.exp(-s / 150) + rng.normal(0, 0.2) for s in steps)
        out.append(Curve(f"t{v}", f"v{v}", kflops, steps, losses, losses[-1], times=tuple(range(v, v + EVALUATIONS))))
    return out, EVERY * EVALUATIONS


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [24, 100, 571]
    print(f"replay_all as the report runs it (draws {REPORT_REPLAY_DRAWS}, observed order), synthetic curves:")
    for n in sizes:
        curves, max_steps = synthetic_curves(n)
        cpu = time.process_time()
        table, _ = replay_all(curves, max_steps, noise_sd=pooled_noise_sd(curves), suite=Suite(draws=REPORT_REPLAY_DRAWS),
                              order="observed")
        print(f"  {n:4d} variants: {time.process_time() - cpu:6.1f} s CPU, {len(table)} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
