"""The MLflow contract: every metric, tag and param name users query, defined once.

Users write `mlflow.search_runs(filter_string="tags.family = 'Conv/Hyperprior:Conv'")` and
dashboards against these names; renaming one breaks them. The README documents each.
"""

import re


def name_part(text: str) -> str:
    """`text` (an image folder's or file's name) as a piece of a metric or artifact name:
    letters, digits, '_', '.' and '-' kept, every other run of characters one '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "images"


# Final metrics of one variant, evaluated on the evaluation images with real bitstreams.
RD_LOSS = "rd_loss"  # lambda * 255^2 * mse + bpp (bpp from bytes)
BPP = "bpp"  # bits per pixel of the real bitstream, every stream and the header counted
BPP_EST = "bpp_est"  # bits per pixel estimated from the model's likelihoods
PSNR = "psnr"  # dB, on 8-bit RGB reconstructions, averaged per image
MSE = "mse"  # on [0, 1] images after rounding the reconstruction to 8 bits
PARAMS = "params"  # number of model parameters (entropy-model tables excluded)
DECODE_KFLOPS_PER_PX = "decode_kflops_per_px"  # g_s + h_s + entropy-parameter nets, 2 x MACs
DECODE_KMACS_PER_PX = "decode_kmacs_per_px"
ENCODE_KFLOPS_PER_PX = "encode_kflops_per_px"  # g_a + h_a + h_s + entropy-parameter nets
ENCODE_KMACS_PER_PX = "encode_kmacs_per_px"
MS_SSIM = "ms_ssim"  # linear, on 8-bit RGB reconstructions, averaged per image (needs sides > 160 px)
MS_SSIM_DB = "ms_ssim_db"  # -10 log10(1 - ms_ssim) per image, then averaged

# Training curves, logged with their step.
TRAIN_LOSS = "train/loss"
TRAIN_BPP = "train/bpp"
TRAIN_MSE = "train/mse"
TRAIN_AUX_LOSS = "train/aux_loss"
TRAIN_STEPS = "train_steps"  # steps actually trained (final)
TRAIN_SECONDS = "train_seconds"

# Held-out learning curves, logged every train.eval_every steps on the fixed evaluation images
# (likelihood estimate, no entropy coding: cheap enough to run during training).
EVAL_RD_LOSS = "eval/rd_loss"
EVAL_BPP = "eval/bpp"
EVAL_PSNR = "eval/psnr"
EVAL_CURVE = (EVAL_RD_LOSS, EVAL_BPP, EVAL_PSNR)
RD_LOSS_SMOOTHED = "rd_loss_smoothed"  # final, from the held-out curve (rule in the README)

# Coding diagnostics of the real bitstream (final): where estimate and bytes part ways.
ESCAPE_SHARE = "escape_share"  # share of latent symbols outside the CDF tables (coded by the escape path)
BPP_OVER_EST = "bpp_over_est"  # bpp (bytes) / bpp_est (likelihoods)
# Bits per pixel the coder spends by its own tables (scale table, CDFs, escape code): the bytes
# without the header and the few bytes of rANS flush per stream.
BPP_TABLE = "bpp_table"
BPP_STREAM_PREFIX = "bpp_stream_"  # bpp of one stream: bpp_stream_z, bpp_stream_y, bpp_stream_y3, ...


def bpp_stream(stream: str) -> str:
    """Bits per pixel carried by one named stream of the bitstream (header excluded)."""
    return f"{BPP_STREAM_PREFIX}{stream}"


# Runtimes carry the device's short stable name (jobs.device.device_name) at the end:
# <stage>_<stat>_<device>, e.g. decode_ms_cpu-amd-epyc-1t or decode_networks_mps_cuda-h100-80gb-hbm3.
# Device names never contain "_", so the device is everything after the stat.
DECODE = "decode"  # bitstream -> image: entropy decoding, h_s, entropy-parameter nets, g_s
DECODE_NETWORKS = "decode_networks"  # the same networks without entropy coding (the study's Fig. 4)
ENCODE = "encode"  # image -> bitstream: g_a, h_a, h_s, entropy-parameter nets, entropy coding
RUNTIME_STAGES = (DECODE, DECODE_NETWORKS, ENCODE)
MS = "ms"  # mean over images of the per-image median milliseconds (batch 1, after warm-up)
MPS = "mps"  # megapixels per second: all pixels / sum of the per-image medians
CV = "cv"  # robust coefficient of variation of the repeats (1.4826 MAD / median), mean over images
RUNTIME_STATS = (MS, MPS, CV)
DECODE_MS_PREFIX = "decode_ms_"


def runtime_metric(stage: str, stat: str, device: str) -> str:
    """The metric name of one runtime statistic of one stage on one device."""
    if stage not in RUNTIME_STAGES or stat not in RUNTIME_STATS:
        raise ValueError(f"unknown runtime metric {stage!r}/{stat!r}")
    return f"{stage}_{stat}_{device}"


def parse_runtime_metric(name: str) -> tuple[str, str, str] | None:
    """(stage, stat, device) of a runtime metric name, or None for any other metric."""
    for stage in sorted(RUNTIME_STAGES, key=len, reverse=True):  # decode_networks before decode
        for stat in RUNTIME_STATS:
            prefix = f"{stage}_{stat}_"
            if name.startswith(prefix) and len(name) > len(prefix):
                return stage, stat, name[len(prefix):]
    return None


def runtime_metrics(device: str) -> list[str]:
    """Every runtime metric one profiling of `device` logs."""
    return [runtime_metric(stage, stat, device) for stage in RUNTIME_STAGES for stat in RUNTIME_STATS]


def decode_ms(device: str) -> str:
    """Median milliseconds per image to decode a real bitstream (entropy decoding included)."""
    return runtime_metric(DECODE, MS, device)


# Tags: find a variant's run again, group runs into families and sweeps.
TAG_VARIANT_ID = "variant_id"
TAG_FAMILY = "family"
TAG_SWEEP = "sweep"
TAG_TRAIN_CONFIG = "train_config_id"  # hash of the training config: same id -> same training
TAG_DEVICE = "device"  # device the trial trained and was measured on (jobs.device.device_name)
# "true": the trial shared its device with other trials, so its runtimes went under the device
# name plus SHARED_SUFFIX (e.g. decode_ms_cpu-amd-epyc-1t-shared); `rdc profile` measures clean ones.
TAG_SHARED_DEVICE = "shared_device"
SHARED_SUFFIX = "-shared"
TAG_FAILURE = "failure_reason"
TAG_GROUP = "group"  # the YAML family (search_space.families[].name) that produced the variant
TAG_ATTEMPT = "attempt"  # id of the trial attempt that owns the run: a fence against stale workers
TAG_RESUMED_FROM_STEP = "resumed_from_step"  # step the last attempt resumed from (0: from scratch)
TAG_FLOPS_SIZE = "flops_size"  # "<height>x<width>": the image size per-pixel FLOPs were counted at
TAG_EVAL_IMAGES = "eval_images"  # the folder the trial evaluated and timed on, or "builtin"
RUNTIME_PROTOCOL_TAG_PREFIX = "runtime_protocol."
TAG_SEED = "seed"  # the training seed of this replicate; variant_id stays the architecture's
TAG_LMBDA = "lmbda"  # the lambda this run trained at (train.lmbdas: one run per lambda), as %g
# A trial a scheduler stopped: the run ends with STOPPED_STATUS and this tag holds the step;
# TAG_STOPPED_BY the scheduler's name and TAG_STOP_DECISION why (JSON: rung, margin, dominators).
TAG_STOPPED_EARLY = "stopped_early"
TAG_STOPPED_BY = "stopped_by"
TAG_STOP_DECISION = "stop_decision"
STOPPED_STATUS = "KILLED"  # MLflow's run status for a run ended on purpose before it finished
TAG_REFERENCE = "reference"  # a model trained elsewhere, imported by `rdc import`: its source
# Runtimes an interfering process spoiled: "<device>:<stage>: <figure>" per stage that still failed.
TAG_RUNTIME_SUSPECT = "runtime_suspect"
TAG_REUSED_FROM = "reused_from"  # a run copied from another sweep's FINISHED run of the same training: its id
# A run's evaluation on each set it was measured on: evalset/<set name>/<metric> (sweep.reevaluate).
EVAL_SET_PREFIX = "evalset/"
TAG_SWEEP_RUN = "sweep_run"  # "true" on the sweep-level run whose children are the variant runs
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow's own parent-run tag (the UI nests children)


def runtime_protocol_tag(device: str) -> str:
    """Tag holding how a device's runtimes were measured (images, repeats, warm-up, threads, torch)."""
    return f"{RUNTIME_PROTOCOL_TAG_PREFIX}{device}"


# Params: the canonical spec, flattened with this prefix (spec.M, spec.transform.type, ...),
# and the training config with `train.`.
SPEC_PARAM_PREFIX = "spec."
TRAIN_PARAM_PREFIX = "train."
SPEC_JSON_PARAM = "spec_json"  # the whole canonical spec, for exact rebuilding

# Artifacts of a run.
MODEL_ARTIFACT = "model.pt"  # {"spec": canonical spec dict, "model": state_dict}
EVAL_TABLE = "eval_images.csv"  # per-image evaluation (bytes, bpp, PSNR, MS-SSIM) of the eval images
EVAL_TABLE_DIR = "eval"  # `rdc eval` tables: eval/<folder name>.csv


def runtime_table(device: str) -> str:
    """Per-image runtimes (median, cv, every repeat) of one device."""
    return f"runtime_{device}.csv"
