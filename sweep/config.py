"""Hydra composition of the root config, with structured configs (dataclasses) as its schema.

`load_config(overrides)` composes conf/config.yaml with command-line overrides and returns a
plain, fully resolved dict (custom resolvers and relative paths do not survive the trip to
Ray workers). Every Hydra/OmegaConf failure becomes one UserError line naming the key, the
value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from jobs.settings import TrainSettings
from rdc.errors import UserError
from sweep.tracking import DEFAULT_TRACKING_URI

DEFAULT_MAX_FAILURES = 3  # cluster.max_failures: retries of a trial from its latest checkpoint
CONF_DIR = Path(os.environ.get("RDC_CONF_DIR", Path(__file__).resolve().parent.parent / "conf"))
GROUPS = ("search_space", "search", "scheduler", "train", "data", "tracking", "cluster", "profile")


# -- schema ------------------------------------------------------------------------------
@dataclass
class DataConfig:
    train_dir: Optional[str] = None
    eval_dir: Optional[str] = None
    workers: int = 0  # processes preparing training batches ahead (0: in the trial's own process)
    cache_images: int = 16  # decoded training images kept per process
    # Images whose header claims more pixels are refused before a byte is decoded (a 40-byte PNG
    # can claim 40000x40000); the default, 2^26, is a 64-megapixel photograph.
    max_pixels: int = 1 << 26


@dataclass
class TrackingConfig:
    uri: str = DEFAULT_TRACKING_URI
    artifact_root: Optional[str] = None
    # The sweep-level run gets `rdc report`'s output at the end of every sweep (sweep.sweep_run).
    sweep_report: bool = True


class ClusterMode(enum.Enum):
    local = "local"
    ray = "ray"


@dataclass
class ClusterConfig:
    mode: ClusterMode = ClusterMode.local
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0
    max_concurrent_trials: int = 0
    max_failures: int = DEFAULT_MAX_FAILURES  # retries of a trial from its latest checkpoint (Tune's FailureConfig)
    storage_path: Optional[str] = None  # Tune state and checkpoints; default runs_dir/ray (shared by every node)
    # What one trial may hold in memory (weights, gradients, optimiser state, activations at the
    # training crop and batch), in GiB; null: the trial's device (sweep.cost_bound).
    trial_memory_gb: Optional[float] = None


@dataclass
class SearchConfig:
    strategy: str = "grid"  # a name in sweep.search.STRATEGIES
    budget: int = 0  # variants to train in all (optuna)
    batch: int = 0  # variants per round (0: as many as the cluster runs at once)
    sampler: str = "tpe"  # a name in sweep.search.SAMPLERS (optuna)
    seed: int = 0


@dataclass
class ProfileConfig:
    flops_height: int = 512
    flops_width: int = 768
    repeats: int = 5
    warmup: int = 1


@dataclass
class RootConfig:
    search_space: Any = None  # validated by sweep.space (its own language)
    search: SearchConfig = field(default_factory=SearchConfig)
    scheduler: Any = None  # {name: none|asha|..., <its options>}: validated by sweep.schedulers
    train: TrainSettings = field(default_factory=TrainSettings)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    runs_dir: str = "runs"
    sweep_name: Optional[str] = None
    resume: bool = False
    force: bool = False


_REGISTERED = False


def _register_schema() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="rdc_schema", node=RootConfig)
    _REGISTERED = True


# -- composition -------------------------------------------------------------------------
def compose(overrides: list[str], config_dir: str | None = None):
    """The composed DictConfig (unresolved): for `--cfg job` printing."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    _register_schema()
    overrides = list(overrides)
    if config_dir:
        extra = Path(config_dir).expanduser().resolve()
        if not extra.is_dir():
            raise UserError("--config-dir", str(config_dir), reason="not a folder")
        overrides.append(f"hydra.searchpath=[file://{extra}]")
    from sweep.yaml_limits import check_config_tree

    # Before Hydra reads a byte: size, encoding, aliases expanded, defaults-list cycles.
    check_config_tree([CONF_DIR] + ([extra] if config_dir else []), overrides)
    try:
        with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR), job_name="rdc"):
            return hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise _user_error(err, overrides, config_dir) from None
    except yaml.YAMLError as err:  # a config file that is not YAML (syntax, duplicate keys)
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}" if mark else "config file"
        raise UserError(where, None, reason=" ".join(str(getattr(err, "problem", None) or err).split()),
                        allowed="valid YAML without duplicate keys") from None
    except TypeError:  # Hydra's defaults list fails on a group given a list (search_space=[a,b])
        raise UserError("override", " ".join(overrides), reason="a config group takes one option",
                        allowed="group=option") from None
    except ValueError as err:  # e.g. search_space=nan: Hydra reads the option as a float
        if "Config group override" not in str(err):
            raise
        group, value = next(((g, _override_value(g, overrides)) for g in GROUPS if _override_value(g, overrides)),
                            ("override", " ".join(overrides)))
        raise UserError(group, value, reason="not a config name",
                        allowed=", ".join(available(group, config_dir)) or "group=option") from None


def load_config(overrides: list[str], config_dir: str | None = None) -> dict:
    """The resolved root config as plain data, paths made absolute."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = compose(overrides, config_dir)
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except OmegaConfBaseException as err:
        raise _user_error(err, overrides, config_dir) from None
    plain.pop("hydra", None)
    _check_not_empty(plain)  # before paths are made absolute: '' would become the working directory
    _absolutise(plain)
    _check_values(plain)
    return plain


def _absolutise(cfg: dict) -> None:
    # Trials run with another working directory (and on other hosts): ship absolute paths.
    runs = Path(cfg["runs_dir"]).expanduser().resolve()
    cfg["runs_dir"] = str(runs)
    tracking = cfg["tracking"]
    uri = tracking["uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        tracking["uri"] = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).expanduser().resolve())
    if tracking.get("artifact_root") and "://" not in tracking["artifact_root"]:
        tracking["artifact_root"] = str(Path(tracking["artifact_root"]).expanduser().resolve())
    for key in ("train_dir", "eval_dir"):
        if cfg["data"].get(key):
            cfg["data"][key] = str(Path(cfg["data"][key]).expanduser().resolve())


_POSITIVE = "a positive integer"
_NON_NEGATIVE = "an integer >= 0"
# key path -> (the smallest value allowed, what to say is allowed)
_MINIMUM = {
    **{f"train.{key}": (1, _POSITIVE) for key in ("steps", "batch_size", "crop", "log_every", "checkpoint_every")},
    "train.seed": (0, _NON_NEGATIVE),
    "train.clip_grad": (0, "0 (no clipping) or a positive number"),
    "train.warmup_steps": (0, _NON_NEGATIVE),
    "train.eval_every": (0, "0 (no held-out curve) or a positive integer"),
    "train.eval_crop": (0, "0 (whole images) or a positive integer"),
    "profile.flops_height": (1, _POSITIVE),
    "profile.flops_width": (1, _POSITIVE),
    "profile.repeats": (2, "an integer >= 2 (the CV needs two timings)"),
    "profile.warmup": (0, _NON_NEGATIVE),
    "data.workers": (0, "0 (no worker processes) or a positive integer"),
    "data.cache_images": (1, _POSITIVE),
    "data.max_pixels": (1, _POSITIVE),
    "search.batch": (0, _NON_NEGATIVE),
    "search.seed": (0, _NON_NEGATIVE),
}


def _check_values(cfg: dict) -> None:
    _check_known_keys(cfg)
    _check_finite(cfg)
    for path, (minimum, allowed) in _MINIMUM.items():
        group, key = path.split(".")
        if cfg[group][key] < minimum:
            raise UserError(path, cfg[group][key], allowed=allowed)
    for key in ("lr", "aux_lr", "lmbda"):
        if not cfg["train"][key] > 0:
            raise UserError(f"train.{key}", cfg["train"][key], allowed="a positive number")
    if not 0 < cfg["train"]["lr_drop_at"] <= 1:
        raise UserError("train.lr_drop_at", cfg["train"]["lr_drop_at"], allowed="a fraction in (0, 1]")
    from sweep.schedulers import scheduler_for
    from sweep.search import check_search
    from sweep.trials import check_axes

    check_search(cfg["search"])
    check_axes(cfg["train"])
    scheduler = scheduler_for(cfg["scheduler"], cfg["train"]["steps"])
    if scheduler.one_scale and len(cfg["train"].get("lmbdas") or []) > 1:
        raise UserError("scheduler", scheduler.name,
                        reason="it ranks every trial by one rd_loss, and rd_losses at different train.lmbdas "
                               "weigh rate and distortion differently",
                        allowed="scheduler=frontier (judges each lambda apart) or scheduler=none")
    if scheduler.active and cfg["train"]["eval_every"] <= 0:
        raise UserError("train.eval_every", cfg["train"]["eval_every"],
                        reason=f"scheduler={cfg['scheduler']['name']} ranks trials by their held-out curve",
                        allowed="a positive number of steps (or scheduler=none)")
    if cfg["search_space"] is None:
        raise UserError("search_space", None, allowed=", ".join(available("search_space")))


def _leaves(node, path: str = ""):
    """(key path, value) of every scalar in a plain config, e.g. ('train.lmbdas[1]', 0.01)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def _check_finite(cfg: dict) -> None:
    """No inf or NaN anywhere: every comparison with NaN is False, so a NaN passes every
    bound check written as `if value < minimum`, and inf passes `> 0`."""
    for path, value in _leaves(cfg):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(path, value, allowed="a finite number")


def _check_not_empty(cfg: dict) -> None:
    """No empty string anywhere: `runs_dir=$RUNS` with RUNS unset put the store at /mlflow.db, and
    an empty folder, name or address read as "not set" and silently took the default. No default
    is an empty string; a key left out (null) still takes its default."""
    for path, value in _leaves(cfg):
        if isinstance(value, str) and not value.strip():
            raise UserError(path, value, reason="empty", allowed="a value, or leave the key out for its default")


def _check_known_keys(cfg: dict) -> None:
    # `+key=value` can add keys the schema does not have; refuse them like unknown overrides.
    root = {f.name: f for f in dataclasses.fields(RootConfig)}
    for key, value in cfg.items():
        if key not in root:
            raise UserError(key, value, reason="unknown key", allowed=", ".join(root))
        schema = root[key].default_factory if root[key].default_factory is not dataclasses.MISSING else None
        if schema is not None and dataclasses.is_dataclass(schema) and isinstance(value, dict):
            known = [f.name for f in dataclasses.fields(schema)]
            for sub in value:
                if sub not in known:
                    raise UserError(f"{key}.{sub}", value[sub], reason="unknown key", allowed=", ".join(known))


def available(group: str, config_dir: str | None = None) -> list[str]:
    """The options of a config group: the shipped ones and those in the user's --config-dir."""
    folders = [CONF_DIR] + ([Path(config_dir).expanduser()] if config_dir else [])
    return sorted({p.stem for folder in folders for p in (folder / group).glob("*.yaml")})


# -- errors ------------------------------------------------------------------------------
def _user_error(err: Exception, overrides: list[str], config_dir: str | None = None) -> UserError:
    """One line for a Hydra/OmegaConf failure: the key, the value and what is allowed."""
    text = " ".join(str(err).split())
    cause = err.__cause__ or err.__context__
    cause_text = " ".join(str(cause).split()) if cause else ""

    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        return UserError(group, option, reason="no such config", allowed=", ".join(available(group, config_dir)) or "none")
    missing_primary = re.search(r"Could not override '([^']+)'", text)
    if missing_primary:
        key = missing_primary.group(1)
        return UserError(key, _override_value(key, overrides), reason="unknown key", allowed=_allowed_keys(key))
    key_error = re.search(r"Key '([^']+)' not in '([^']+)'", text + " " + cause_text)
    if key_error:
        full = re.search(r"full_key: (\S+)", text + " " + cause_text)
        key = full.group(1) if full else key_error.group(1)
        return UserError(key, _override_value(key, overrides), reason="unknown key", allowed=_allowed_keys(key))
    merging = re.search(r"Error merging override (\S+?)=(\S*)", text)
    conversion = re.search(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", text + " " + cause_text)
    wrong_shape = _wrong_shape(text + " " + cause_text)
    invalid_enum = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", text + " " + cause_text)
    if merging:
        key, value = merging.groups()
        if invalid_enum:
            return UserError(key, invalid_enum.group(1), allowed=invalid_enum.group(2).replace("'", ""))
        if conversion:
            return UserError(key, conversion.group(1), allowed=f"a value of type {conversion.group(2).lower()}")
        if wrong_shape:
            return UserError(key, value, allowed=wrong_shape)
        return UserError(key, value, reason=cause_text or text)
    if conversion or invalid_enum:
        full = re.search(r"full_key: (\S+)", text + " " + cause_text)
        key = full.group(1) if full else "config"
        if invalid_enum:
            return UserError(key, invalid_enum.group(1), allowed=invalid_enum.group(2).replace("'", ""))
        return UserError(key, conversion.group(1), allowed=f"a value of type {conversion.group(2).lower()}")
    appended = re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    if appended:
        key = appended.group(1)
        return UserError(key, _override_value(key, overrides), reason="is already in the config (+key adds a key that is not)",
                         allowed=f"{key}=VALUE to change it, or ++{key}=VALUE")
    parse = re.search(r"Error parsing override '([^']*)'", text)
    if parse:
        return UserError("override", parse.group(1), reason="not key=value",
                         allowed="key=value, group=option, +key=value")
    return UserError("config", None, reason=text.split(". ")[0][:300])


def _wrong_shape(message: str) -> str | None:
    """What is allowed, for OmegaConf's refusals of a value of the wrong shape (its own words
    name classes and reference types, not what to write)."""
    if re.search(r"is not a ListConfig, list or tuple|Cannot merge DictConfig with ListConfig", message):
        return "a list, e.g. [0, 1, 2]"
    if re.search(r"Cannot merge ListConfig with DictConfig|is not a DictConfig|Cannot assign \w+ to DictConfig", message):
        return "a mapping, e.g. {key: value}"
    enum = re.search(r"is not a valid input for <enum '(\w+)'>", message)
    if enum and enum.group(1) == ClusterMode.__name__:  # the schema's one enum
        return ", ".join(member.value for member in ClusterMode)
    if re.search(r"Cannot convert '\w+' to string", message):
        return "a string"
    if re.search(r"is not Optional", message):
        return "a value (this key cannot be null)"
    return None


def _override_value(key: str, overrides: list[str]):
    for item in overrides:
        name, _, value = item.lstrip("+~").partition("=")
        if name == key:
            return value
    return None


def _allowed_keys(key: str) -> str:
    group = key.split(".")[0]
    _register_schema()
    from hydra.core.config_store import ConfigStore

    root = ConfigStore.instance().load("rdc_schema.yaml").node
    if group in root and hasattr(root[group], "keys") and "." in key:
        return ", ".join(str(k) for k in root[group].keys())
    return ", ".join(list(root.keys()))
