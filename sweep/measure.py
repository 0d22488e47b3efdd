"""The final measurements of a trained variant, as logged to its MLflow run.

Real-bitstream evaluation on the evaluation images, parameters, decode FLOPs per pixel, and
decode time on this device (the device's short name goes into the metric name and a tag).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.data import load_images
from jobs.device import device_name
from jobs.evaluate import evaluate
from jobs.profile import count_params, decode_flops, decode_ms
from rdc import names


@dataclass
class Measurement:
    metrics: dict[str, float]  # logged as MLflow metrics
    tags: dict[str, str] = field(default_factory=dict)  # logged as MLflow tags
    tables: dict[str, "object"] = field(default_factory=dict)  # name.csv -> pandas DataFrame artifacts


def measure(model, settings: dict, lmbda: float) -> Measurement:
    """Final metrics of a trained model: real-bitstream evaluation, params, FLOPs, decode time."""
    images = load_images(settings["data"]["eval_dir"], split="eval", key="data.eval_dir")
    summary, _ = evaluate(model, images, lmbda)
    profile = settings["profile"]
    flops = decode_flops(model, profile["flops_height"], profile["flops_width"])
    device = device_name("cpu")
    times = [decode_ms(model, im.tensor(), repeats=profile["repeats"], warmup=profile["warmup"]) for im in images]
    metrics = {
        **summary,
        names.PARAMS: count_params(model),
        names.DECODE_KFLOPS_PER_PX: flops["kflops_per_px"],
        names.DECODE_KMACS_PER_PX: flops["kmacs_per_px"],
        names.decode_ms(device): sum(times) / len(times),
    }
    return Measurement(metrics, {names.TAG_DEVICE: device})
