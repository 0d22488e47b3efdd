"""Bad and hostile input to `rdc sweep`, `rdc plan`, `rdc profile` and `rdc eval`: refused with one
line and exit 2, in seconds, before Ray starts or a store is opened, and nothing is created or
changed anywhere under the working folder, runs_dir or the store's folder (issue 12).

Each case runs the real command in-process (rdc.cli.main) in a fresh working folder; the
snapshot of that folder (every path, size, mtime and content hash) must be the same after.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from rdc.cli import main

SECONDS = 10  # no command may wait longer than this on an unreachable or wrong store


def snapshot(folder: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path)] = (path.stat().st_size, path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[str(path)] = ("other", path.is_symlink())
    return out


@pytest.fixture(scope="module", autouse=True)
def imported():
    """The commands' modules imported once up front: the time bound is about waiting on stores
    and files, not about a loaded machine importing torch and compressai the first time."""
    import importlib

    for module in ("sweep.commands", "sweep.space", "sweep.plan", "sweep.remeasure", "jobs.crops", "mlflow",
                   "compressai", "models.catalog"):
        importlib.import_module(module)


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a user's file\n")
    other = sqlite3.connect(tmp_path / "contacts.db")
    other.execute("CREATE TABLE people (name TEXT)")
    other.commit()
    other.close()
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 24), (120, 30, 200)).save(tmp_path / "images" / "a.png")
    return tmp_path


def refuse(work: Path, capsys, argv: list[str]) -> str:
    before = snapshot(work)
    started = time.monotonic()
    code = main(argv)
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert elapsed < SECONDS, f"{argv} took {elapsed:.1f}s"
    assert snapshot(work) == before, "the refusal created or changed files"
    return lines[0].split(": error: ", 1)[1]


def sweep_args(work: Path, *overrides: str) -> list[str]:
    base = {"runs_dir": str(work / "runs"), "tracking.uri": f"sqlite:///{work / 'runs' / 'mlflow.db'}"}
    for item in overrides:
        base.pop(item.lstrip("+").split("=", 1)[0], None)
    return ["sweep", *[f"{k}={v}" for k, v in base.items()], *overrides]


# (overrides, how the error line starts, what else it says) ------------------------------
SWEEP_CASES = [
    (["train.lmbda=inf"], "train.lmbda=inf", "finite"),
    (["train.lr=nan"], "train.lr=nan", ""),
    (["train.clip_grad=nan"], "train.clip_grad=nan", "finite"),
    (["cluster.trial_cpus=nan"], "cluster.trial_cpus=nan", "finite"),
    (["+train.steps=5"], "train.steps", "already"),
    (["resume=true"], "resume=True", "no sweep 'demo' to restore"),
    (["runs_dir=notes.txt"], "runs_dir=", "is a file"),
    (["runs_dir=notes.txt/runs"], "runs_dir=", "which is a file"),
    (["runs_dir=/proc/1/runs"], "runs_dir=", "not writable"),
    (["tracking.artifact_root=notes.txt"], "tracking.artifact_root=", "is a file"),
    (["cluster.storage_path=notes.txt/ray"], "cluster.storage_path=", "which is a file"),
    (["tracking.uri=sqlite:///folder"], "tracking.uri=", "is a folder"),
    (["tracking.uri=sqlite:///contacts.db"], "tracking.uri=", "not an MLflow store"),
    (["tracking.uri=sqlite:///empty.db"], "tracking.uri=", "empty file"),
    (["tracking.uri=http://127.0.0.1:9"], "tracking.uri=", "no MLflow server answers"),
    (["tracking.uri=postgresql://sweeper@localhost/mlflow"], "tracking.uri=", "pip install psycopg"),
    (["tracking.uri=runs/mlflow.db"], "tracking.uri=", "not a tracking URI"),
    (["data.max_pixels=0"], "data.max_pixels=0", "positive"),
    (["data.max_pixels=100", "data.eval_dir=images"], "data.eval_dir=", "at most 100 pixels"),
    (["train.seeds=[0,0]"], "train.seeds=", "listed twice"),
    (["train.lmbdas=[0.01,inf]"], "train.lmbdas[1]=inf", "finite"),
    (["scheduler=asha", "train.lmbdas=[0.01,0.02]"], "scheduler='asha'", "weigh rate and distortion differently"),
]


@pytest.mark.parametrize("overrides, start, says", SWEEP_CASES, ids=[c[0][0] for c in SWEEP_CASES])
def test_sweep_refuses_before_anything_starts(work: Path, capsys, overrides, start, says):
    line = refuse(work, capsys, sweep_args(work, *overrides))
    assert line.startswith(start), line
    assert says in line, line


SPACES = {
    "bomb": "\n".join(['name: bomb', 'l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
                      + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 7)]) + "\n",
    "loop": "defaults:\n  - loop\n  - _self_\nname: loop\nfamilies: []\n",
    "latin": b"name: latin\ndescription: caf\xe9\nfamilies: []\n",
    "named_with_newline": 'name: "demo\\n"\nfamilies: [{transform: {type: conv}, entropy: {type: hyperprior}}]\n',
}
SPACE_SAYS = {"bomb": "aliases expanded", "loop": "loop.yaml -> search_space/loop.yaml", "latin": "0xe9 at offset 28",
              "named_with_newline": "letters, digits"}


@pytest.mark.parametrize("command", ["plan", "sweep"])
@pytest.mark.parametrize("space", sorted(SPACES))
def test_hostile_spaces_are_refused_in_seconds(work: Path, capsys, command: str, space: str):
    conf = work / "conf" / "search_space"
    conf.mkdir(parents=True)
    data = SPACES[space]
    (conf / f"{space}.yaml").write_bytes(data if isinstance(data, bytes) else data.encode())
    argv = [command, "--config-dir", str(work / "conf"), f"search_space={space}"]
    if command == "sweep":
        argv = [*sweep_args(work), "--config-dir", str(work / "conf"), f"search_space={space}"]
    line = refuse(work, capsys, argv)
    assert SPACE_SAYS[space] in line, line


def test_a_huge_space_is_refused_before_reading(work: Path, capsys):
    conf = work / "conf" / "search_space"
    conf.mkdir(parents=True)
    with open(conf / "grid.yaml", "wb") as handle:
        handle.truncate(10 << 20)
    line = refuse(work, capsys, ["plan", "--config-dir", str(work / "conf"), "search_space=grid"])
    assert "10,485,760 bytes" in line


# rdc profile / rdc eval only read a store: never one that is not already an MLflow store ------
READ_CASES = [
    ("sqlite:///empty.db", "empty file"),
    ("sqlite:///contacts.db", "not an MLflow store"),
    ("sqlite:///folder", "is a folder"),
    ("sqlite:///absent.db", "no such sqlite file"),
    ("http://127.0.0.1:9", "no MLflow server answers"),
    ("postgresql://u@localhost/mlflow", "pip install psycopg"),
    ("mlflow.db", "not a tracking URI"),
]


@pytest.mark.parametrize("uri, says", READ_CASES, ids=[c[0] for c in READ_CASES])
@pytest.mark.parametrize("command", ["profile", "eval"])
def test_readers_refuse_a_store_that_is_not_one(work: Path, capsys, command: str, uri: str, says: str):
    if command == "profile":
        argv = ["profile", "--experiment", "demo", "--tracking-uri", uri]
    else:
        argv = ["eval", "--run", "0" * 32, "--images", str(work / "images"), "--tracking-uri", uri]
    line = refuse(work, capsys, argv)
    assert line.startswith("--tracking-uri=") and says in line, line


# Every case of the malformed corpus, with the whole working folder watched -----------------
CORPUS = sorted((Path(__file__).resolve().parent / "malformed").glob("*.yaml"))


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_malformed_corpus_leaves_nothing_anywhere(work: Path, capsys, case: Path):
    conf = work / "conf" / "search_space"
    conf.mkdir(parents=True)
    (conf / case.name).write_bytes(case.read_bytes())
    refuse(work, capsys, [*sweep_args(work), "--config-dir", str(work / "conf"), f"search_space={case.stem}"])
