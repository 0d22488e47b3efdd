"""Our models against compressai's at equal widths: training step and decode time, as ratios.

    .venv/bin/python bench/bench_models.py            # N=192, M=320; batch 8 of 256x256; Kodak
    .venv/bin/python bench/bench_models.py --quick    # same widths, batch 2 of 128x128, 256x256 decode

Rows (ours / compressai; goal: ratio <= 1.0, i.e. our wrapping costs nothing):
- Conv/Hyperprior:Conv vs MeanScaleHyperprior(N, M): the same architecture, with the same
  weights copied in so that entropy coding sees the same symbols. Training step (forward,
  backward, Adam, aux step), decode from real bytes, and the decode networks alone.
- ELIC transforms vs Elic2022Official's g_a/g_s (same weights): training step of g_a + g_s and
  the synthesis alone.
- elic2022-official vs the whole Elic2022Official (same weights through models.compat, so the
  same bytes): training step, decode from real bytes (ELIC's ten y streams and z), and the
  decode networks alone.

Timing: batch 1 for decoding, warm-up first, ours and compressai's alternated in every round
so that load changes on a shared machine hit both, median of the rounds. On CUDA the device is
synchronised before every clock read.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=FutureWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from compressai.models import MeanScaleHyperprior  # noqa: E402
from compressai.models.sensetime import Elic2022Official  # noqa: E402

from models import build  # noqa: E402
from models.compat import from_compressai  # noqa: E402
from models.presets import preset  # noqa: E402

LAMBDA = 0.0125
DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim01.png"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paired_ms(ours, theirs, repeats: int, warmup: int, device: torch.device) -> tuple[float, float, float, float]:
    """Median milliseconds of two callables, alternated (and their order swapped) every round,
    and the spread of the per-round ratios ours/theirs (min, max)."""
    for _ in range(warmup):
        ours()
        theirs()
    times: dict[int, list[float]] = {0: [], 1: []}
    for round_ in range(repeats):
        pair = [(0, ours), (1, theirs)] if round_ % 2 == 0 else [(1, theirs), (0, ours)]
        for key, fn in pair:
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[key].append((time.perf_counter() - start) * 1e3)
    ratios = [a / b for a, b in zip(times[0], times[1])]
    return statistics.median(times[0]), statistics.median(times[1]), min(ratios), max(ratios)


def rd_train_step(model: torch.nn.Module, x: torch.Tensor):
    """One training step as jobs/train.py runs it: RD loss, Adam, then the aux (quantile) step."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]

    def step():
        model.train()
        out = model(x)
        bits = sum(torch.log(lik).sum() for lik in out["likelihoods"].values()) / -np.log(2)
        loss = LAMBDA * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bits / pixels
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        aux_optimizer.zero_grad(set_to_none=True)
        model.aux_loss().backward()
        aux_optimizer.step()

    return step


def transform_train_step(g_a: torch.nn.Module, g_s: torch.nn.Module, x: torch.Tensor):
    params = list(g_a.parameters()) + list(g_s.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)

    def step():
        y = g_a(x)
        x_hat = g_s(y + torch.empty_like(y).uniform_(-0.5, 0.5))
        loss = torch.mean((x_hat - x) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def load_image(path: Path | None, height: int, width: int, device) -> tuple[torch.Tensor, str]:
    if path is not None and path.is_file():
        from PIL import Image

        array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1)[None, :, :height, :width].contiguous()
        return x.to(device), f"{path.name} cropped to {x.shape[2]}x{x.shape[3]}"
    # No Kodak beside the checkout: a smooth synthetic image keeps the symbol statistics tame.
    ramp = torch.linspace(0, 1, width)[None, :] * torch.linspace(0.2, 0.8, height)[:, None]
    x = torch.stack([ramp, ramp.flip(0), ramp.flip(1)])[None]
    return x.to(device), f"synthetic {height}x{width} (no image at {path})"


def compressai_decoder(model, x):
    out = model.compress(x)
    return lambda: model.decompress(out["strings"], out["shape"])


def bench(args) -> list[tuple[str, str, float, float]]:
    device = torch.device(args.device)
    N, M = 192, 320
    batch, crop, decode_hw = (2, 128, (256, 256)) if args.quick else (8, 256, (512, 768))
    torch.manual_seed(0)
    train_x = torch.rand(batch, 3, crop, crop, device=device)
    image, image_label = load_image(args.image, *decode_hw, device)
    rows = []

    def record(label, measure, pair):
        rows.append((label, measure, *pair))
        print(f"  {label:34s} {measure:26s} ours {pair[0]:9.1f} ms  compressai {pair[1]:9.1f} ms  "
              f"ratio {pair[0] / pair[1]:.3f} (rounds {pair[2]:.3f}-{pair[3]:.3f})", flush=True)

    # -- Conv/Hyperprior:Conv vs MeanScaleHyperprior ---------------------------------------
    theirs = MeanScaleHyperprior(N, M).to(device)
    ours = from_compressai(theirs).to(device)  # preset minnen2018-mean-scale-192-320
    label = f"Conv/Hyperprior:Conv N={N} M={M}"
    record(label, f"train step {batch}x{crop}x{crop}",
           paired_ms(rd_train_step(ours, train_x), rd_train_step(theirs, train_x), args.repeats, 1, device))
    with torch.no_grad():
        for model in (ours, theirs):
            model.eval().update(force=True)
        data = ours.compress(image)[0]
        record(label, f"decode {decode_hw[0]}x{decode_hw[1]} (bytes)",
               paired_ms(lambda: ours.decompress(data), compressai_decoder(theirs, image), args.repeats, 1, device))
        y_hat, z_hat = ours.encode_networks(image).values()
        record(label, "decode networks only",
               paired_ms(lambda: ours.decode_networks(y_hat, z_hat),
                         lambda: (theirs.h_s(z_hat), theirs.g_s(y_hat)), args.repeats, 1, device))
    del ours, theirs

    # -- ELIC transforms vs Elic2022Official's ---------------------------------------------
    official = Elic2022Official(N=N, M=M).to(device)
    ours = build(preset("elic2022-transforms")).to(device)
    ours.load_state_dict({k: v for k, v in official.state_dict().items() if k.split(".")[0] in ("g_a", "g_s")}, strict=False)
    label = "ELIC transforms (192,192,192) n=3"
    record(label, f"train step {batch}x{crop}x{crop}",
           paired_ms(transform_train_step(ours.g_a, ours.g_s, train_x),
                     transform_train_step(official.g_a, official.g_s, train_x), args.repeats, 1, device))
    with torch.no_grad():
        y = torch.round(official.g_a(image))
        record(label, f"synthesis {decode_hw[0]}x{decode_hw[1]}",
               paired_ms(lambda: ours.g_s(y), lambda: official.g_s(y), args.repeats, 1, device))

    del ours
    # -- elic2022-official vs the whole Elic2022Official (same weights, same bytes) ------------
    ours = from_compressai(official).to(device)
    label = "elic2022-official vs Elic2022Official"
    record(label, f"train step {batch}x{crop}x{crop}",
           paired_ms(rd_train_step(ours, train_x), rd_train_step(official, train_x), args.repeats, 1, device))
    with torch.no_grad():
        for model in (ours, official):
            model.eval().update(force=True)
        data = ours.compress(image)[0]
        record(label, f"decode {decode_hw[0]}x{decode_hw[1]} (bytes)",
               paired_ms(lambda: ours.decompress(data), compressai_decoder(official, image), args.repeats, 1, device))
    print(f"  decode image: {image_label}")
    return rows


def markdown(rows, args) -> str:
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else (platform.processor() or platform.machine())
    lines = [
        f"`{' '.join(['.venv/bin/python', 'bench/bench_models.py', *sys.argv[1:]])}` on {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), {os.cpu_count()} cores, median of {args.repeats}",
        "",
        "| model | measure | ours (ms) | compressai (ms) | ratio ours/compressai | per-round ratios |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, measure, ours, theirs, low, high in rows:
        lines.append(f"| {label} | {measure} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.3f} | {low:.3f}-{high:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small batch, crops and decode image; fewer rounds")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per measure (default 9, quick 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="decode-test image (default: Kodak kodim01)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 9
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}: allowed: a positive integer")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = bench(args)
    print()
    print(markdown(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
