"""The final measurements of a trained variant, as logged to its MLflow run.

Real-bitstream evaluation on the evaluation images (summary metrics and a per-image table),
parameters, decode and encode FLOPs per pixel at the reference size, and runtimes on the
trial's device (a per-image table too). A trial that shared its device with other trials
cannot time cleanly: its runtimes go under the device name plus names.SHARED_SUFFIX, which
leaves the device's own metric names to `rdc profile` (each metric is written once per run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.data import BUILTIN, DEFAULT_MAX_PIXELS, load_images
from jobs.evaluate import evaluate
from jobs.profile import RuntimeProtocol, count_params, flops_metrics, profile_runtime
from rdc import names


@dataclass
class Measurement:
    metrics: dict[str, float]  # logged as MLflow metrics
    tags: dict[str, str] = field(default_factory=dict)  # logged as MLflow tags
    tables: dict[str, "object"] = field(default_factory=dict)  # name.csv -> pandas DataFrame artifacts


def measure(model, settings: dict, lmbda: float, *, shared_device: bool) -> Measurement:
    """Final metrics of a trained model: real-bitstream evaluation, params, FLOPs, runtimes.

    `shared_device`: other trials may have run on the model's device while it was timed (the
    trial decides, from what Ray gave it); its runtimes then go under `<device>-shared`.
    """
    eval_dir = settings["data"]["eval_dir"]  # absolute already (sweep.config)
    images = load_images(eval_dir, split="eval", key="data.eval_dir",
                         max_pixels=settings["data"].get("max_pixels", DEFAULT_MAX_PIXELS))
    images_label = eval_dir or BUILTIN
    profile = settings["profile"]
    height, width = profile["flops_height"], profile["flops_width"]

    evaluation = evaluate(model, images, lmbda)
    device = next(model.parameters()).device
    # A shared device is disturbed by design: re-measuring would only cost time (rdc profile
    # measures such runs alone later); its runtimes are flagged, not retried.
    protocol = RuntimeProtocol(profile["warmup"], profile["repeats"], remeasure=0 if shared_device else 2)
    runtime = profile_runtime(model, images, device, protocol)
    label = runtime.device + (names.SHARED_SUFFIX if shared_device else "")

    metrics = {
        **evaluation.summary,
        names.PARAMS: count_params(model),
        **flops_metrics(model, height, width),
        **runtime.metrics(label),
    }
    tags = {
        names.TAG_DEVICE: runtime.device,
        names.TAG_SHARED_DEVICE: str(shared_device).lower(),
        names.TAG_FLOPS_SIZE: f"{height}x{width}",
        # `rdc profile` times the same images by default, so every device's column compares.
        names.TAG_EVAL_IMAGES: images_label,
        names.runtime_protocol_tag(label): runtime.describe(images_label),
    }
    suspect = runtime.suspect_tag(label)
    if suspect and not shared_device:  # a shared device's runtimes are under <device>-shared anyway
        tags[names.TAG_RUNTIME_SUSPECT] = suspect
    tables = {names.EVAL_TABLE: evaluation.table(), names.runtime_table(label): runtime.table()}
    return Measurement(metrics, tags, tables)
