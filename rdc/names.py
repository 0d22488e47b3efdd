"""The MLflow contract: every metric, tag and param name users query, defined once.

Users write `mlflow.search_runs(filter_string="tags.family = 'Conv/Hyperprior:Conv'")` and
dashboards against these names; renaming one breaks them. The README documents each.
"""

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
MS_SSIM = "ms_ssim"  # linear, on 8-bit RGB reconstructions
MS_SSIM_DB = "ms_ssim_db"  # -10 log10(1 - ms_ssim)

# Training curves, logged with their step.
TRAIN_LOSS = "train/loss"
TRAIN_BPP = "train/bpp"
TRAIN_MSE = "train/mse"
TRAIN_AUX_LOSS = "train/aux_loss"
TRAIN_STEPS = "train_steps"  # steps actually trained (final)
TRAIN_SECONDS = "train_seconds"


# Runtimes carry the device's short stable name (jobs.device.device_name), e.g.
# decode_ms_cpu-amd-epyc-1t or decode_ms_cuda-h100-80gb-hbm3.
DECODE_MS_PREFIX = "decode_ms_"


def decode_ms(device: str) -> str:
    """Median milliseconds per image to decode a real bitstream (entropy decoding included)."""
    return f"{DECODE_MS_PREFIX}{device}"

# Tags: find a variant's run again, group runs into families and sweeps.
TAG_VARIANT_ID = "variant_id"
TAG_FAMILY = "family"
TAG_SWEEP = "sweep"
TAG_TRAIN_CONFIG = "train_config_id"  # hash of the training config: same id -> same training
TAG_DEVICE = "device"  # device the trial trained and was profiled on
TAG_SHARED_DEVICE = "shared_device"  # "true": runtime measured on a device shared with other trials
TAG_FAILURE = "failure_reason"

# Params: the canonical spec, flattened with this prefix (spec.M, spec.transform.type, ...),
# and the training config with `train.`.
SPEC_PARAM_PREFIX = "spec."
TRAIN_PARAM_PREFIX = "train."
SPEC_JSON_PARAM = "spec_json"  # the whole canonical spec, for exact rebuilding
