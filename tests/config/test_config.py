"""Hydra composition: defaults, overrides, absolute paths, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdc.errors import UserError
from sweep.config import available, load_config


def test_defaults_compose_to_plain_absolute_config():
    cfg = load_config([])
    assert cfg["search_space"]["name"] == "demo"
    assert cfg["cluster"]["mode"] == "local"
    assert cfg["tracking"]["uri"].startswith("sqlite:////")  # absolute: trials run elsewhere
    assert Path(cfg["runs_dir"]).is_absolute()
    assert isinstance(cfg["train"]["steps"], int)


def test_overrides_apply_and_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(["train.steps=7", "runs_dir=out", "data.eval_dir=imgs"])
    assert cfg["train"]["steps"] == 7
    assert cfg["runs_dir"] == str(tmp_path / "out")
    assert cfg["tracking"]["uri"] == f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    assert cfg["data"]["eval_dir"] == str(tmp_path / "imgs")


def test_extra_config_dir_adds_search_spaces(tmp_path):
    (tmp_path / "search_space").mkdir()
    (tmp_path / "search_space" / "mine.yaml").write_text(
        "name: mine\nfamilies:\n  - name: a\n    transform: {type: conv, N: 8}\n"
        "    entropy: {type: hyperprior}\n    hyper: {type: conv, N: 8}\n    M: 8\n"
    )
    cfg = load_config(["search_space=mine"], config_dir=str(tmp_path))
    assert cfg["search_space"]["name"] == "mine"


@pytest.mark.parametrize(
    "override, key, allowed",
    [
        ("train.stpes=3", "train.stpes", "steps"),
        ("+train.extra=1", "train.extra", "steps"),
        ("trian.steps=3", "trian.steps", "train"),
        ("train.steps=abc", "train.steps", "integer"),
        ("train.steps=0", "train.steps", "positive"),
        ("train.lr=-1", "train.lr", "positive"),
        ("train.lr_drop_at=2", "train.lr_drop_at", "fraction"),
        ("profile.repeats=1", "profile.repeats", ">= 2"),
        ("profile.warmup=-1", "profile.warmup", ">= 0"),
        ("train.seed=-1", "train.seed", ">= 0"),
        ("train.aux_lr=0", "train.aux_lr", "positive"),
        ("train.clip_grad=-1", "train.clip_grad", "0 (no clipping)"),
        ("train.warmup_steps=-1", "train.warmup_steps", ">= 0"),
        ("train.eval_every=-5", "train.eval_every", "0 (no held-out curve)"),
        ("train.eval_crop=-1", "train.eval_crop", "0 (whole images)"),
        (["scheduler=asha", "train.eval_every=0"], "train.eval_every", "positive"),
        ("data.workers=-1", "data.workers", "0 (no worker processes)"),
        ("data.cache_images=0", "data.cache_images", "positive"),
        ("search.sampler=cmaes", "search.sampler", "tpe, nsga2, random"),
        ("search.strategy=bayes", "search.strategy", "grid, optuna"),
        ("search.batch=-1", "search.batch", ">= 0"),
        ("search=nope", "search", "grid"),
        ("cluster.mode=slurm", "cluster.mode", "local, ray"),
        ("search_space=nope", "search_space", "demo"),
        ("train=nope", "train", "demo"),
        ("search_space=nan", "search_space", "demo"),
        ("train.steps", "override", "key=value"),
        # A value of the wrong shape: what to write, not OmegaConf's class names.
        ("train.seeds=abc", "train.seeds", "a list, e.g. [0, 1, 2]"),
        ("train.seeds={a:1}", "train.seeds", "a list"),
        ("train.lmbdas=0.01", "train.lmbdas", "a list"),
        ("train.steps={a:1}", "train.steps", "a value of type integer"),
        ("tracking.uri=[1]", "tracking.uri", "a string"),
        ("train.steps=null", "train.steps", "cannot be null"),
        ("runs_dir=null", "runs_dir", "cannot be null"),
        ("cluster.mode=[a]", "cluster.mode", "local, ray"),
    ],
)
def test_bad_overrides_are_one_line_naming_the_key(override, key, allowed):
    with pytest.raises(UserError) as info:
        load_config(override if isinstance(override, list) else [override])
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(key)
    assert allowed in line


def test_missing_config_dir_is_refused(tmp_path):
    with pytest.raises(UserError, match="--config-dir"):
        load_config([], config_dir=str(tmp_path / "absent"))


def test_available_lists_group_options():
    assert "demo" in available("search_space")
    assert {"demo", "paper"} <= set(available("train"))


def test_an_unknown_space_lists_the_users_spaces_too(tmp_path):
    (tmp_path / "search_space").mkdir()
    (tmp_path / "search_space" / "my_space.yaml").write_text("name: my_space\nfamilies: []\n")
    with pytest.raises(UserError) as err:
        load_config(["search_space=nope"], str(tmp_path))
    assert err.value.key == "search_space" and err.value.value == "nope"
    assert {"my_space", "demo", "paper"} <= set(err.value.allowed.split(", "))


@pytest.mark.parametrize("key", ["runs_dir", "sweep_name", "data.eval_dir", "data.train_dir", "cluster.storage_path",
                                 "cluster.address", "tracking.uri", "search_space.name"])
def test_an_empty_value_is_refused_not_taken_as_the_default(key, tmp_path, monkeypatch):
    """`runs_dir=$RUNS` with RUNS unset put the store at /mlflow.db; an empty folder or name read as
    "not set". Refused before any path is made absolute."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as info:
        load_config([f"{key}="])
    assert str(info.value) == f"{key}='': empty: allowed: a value, or leave the key out for its default"
    assert list(tmp_path.iterdir()) == []
