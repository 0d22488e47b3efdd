"""Malformed spaces and overrides are refused by `rdc plan` and `rdc sweep` before anything runs.

Each file in malformed/ is a search space with a header saying which key path the error must
name, the value it must show and what it must offer instead:

    # key: search_space.families[0].transform.type
    # value: 'resnet'
    # allowed: conv
    # or: sweep_name='my sweep/1'      (optional: another acceptable start, e.g. when rdc sweep
                                        checks the name the space gives the sweep first)

Both commands run in-process (rdc.cli.main) against a sqlite MLflow URI and a runs folder in a
temporary directory; neither may appear. The error is one line on stderr, exit code 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rdc.cli import main

CORPUS = Path(__file__).resolve().parent / "malformed"
CASES = sorted(CORPUS.glob("*.yaml"))
COMMANDS = ("plan", "sweep")


def expectation(path: Path) -> dict[str, str]:
    expected = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, sep, value = line[2:].partition(": ")
        if sep and key in ("key", "value", "allowed", "or"):
            expected[key] = value
    return expected


def refuse(command: str, args: list[str], tmp_path: Path, capsys) -> str:
    """Run one command; check it refused cleanly and left nothing behind; return the error line."""
    db = tmp_path / "mlflow.db"
    runs = tmp_path / "runs"
    code = main([command, *args, f"tracking.uri=sqlite:///{db}", f"runs_dir={runs}"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    assert out == ""
    assert not db.exists(), "an MLflow store was created"
    assert not runs.exists(), "a runs folder was created"
    assert lines[0].startswith(f"rdc {command}: error: ")
    return lines[0][len(f"rdc {command}: error: "):]


def test_the_corpus_is_large_and_every_case_says_what_to_expect():
    assert len(CASES) >= 30
    for path in CASES:
        expected = expectation(path)
        assert {"key", "allowed"} <= set(expected), path.name


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_malformed_space_is_refused_with_one_line(case: Path, command: str, tmp_path: Path, capsys):
    conf = tmp_path / "conf"
    (conf / "search_space").mkdir(parents=True)
    shutil.copy(case, conf / "search_space" / case.name)
    expected = expectation(case)

    line = refuse(command, ["--config-dir", str(conf), f"search_space={case.stem}"], tmp_path, capsys)

    start = f"{expected['key']}={expected['value']}" if "value" in expected else expected["key"]
    if "or" in expected and line.startswith(expected["or"]):
        return  # the other acceptable error, which names its own key and allowed values
    assert line.startswith(start), line
    allowed = line.rsplit("allowed: ", 1)
    assert len(allowed) == 2 and expected["allowed"] in allowed[1], line



# Overrides of the default (demo) space: (overrides, key path, value shown, what is allowed).
OVERRIDES = [
    (["search_space.families.0.M=0"], "search_space.families[0].M", "0", "a positive integer"),
    (["search_space.families.0.M=abc"], "search_space.families[0].M", "'abc'", "a positive integer"),
    (["search_space.families.0.transform.N=[]"], "search_space.families[0].transform.N", "[]", "at least one value"),
    (["search_space.shared.hyper.N=-3"], "search_space.shared.hyper.N", "-3", "numbers >= 1"),
    (["search_space.families.0.transform.type=resnet"], "search_space.families[0].transform.type", "'resnet'", "conv"),
    (["+search_space.families.0.transform._target_=os.system"], "search_space.families[0].transform._target_",
     "'os.system'", "knobs of transform 'conv'"),
    (["+search_space._target_=os.system"], "search_space._target_", "'os.system'", "name, description, shared"),
    (["search_space.families=[]"], "search_space.families", "[]", "a non-empty list of families"),
    (["+search_space.bogus=1"], "search_space.bogus", "1", "name, description, shared, families, constraints"),
    (["search_space.name=a/b"], "search_space.name", "'a/b'", "letters, digits"),
    (["search_space.name=a/b", "sweep_name=ok"], "search_space.name", "'a/b'", "letters, digits"),
    (["~search_space.families.0.transform.N", "+search_space.families.0.transform.N={from:64,to:32}"],
     "search_space.families[0].transform.N.to", "32", "an integer >= from (64)"),
    (["+search_space.constraints=[{max:{key:transform.N,value:8}}]"], "search_space.constraints[0].max",
     "{'max': {'key': 'transform.N', 'value': 8}}", "transform.N takes 32..64"),
    (["search_space=nope"], "search_space", "'nope'", "demo"),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("overrides, key, value, allowed", OVERRIDES, ids=[o[1] + ":" + o[0][-1] for o in OVERRIDES])
def test_malformed_override_is_refused_with_one_line(overrides, key, value, allowed, command, tmp_path, capsys):
    line = refuse(command, overrides, tmp_path, capsys)
    if command == "sweep" and key == "search_space.name" and line.startswith("sweep_name="):
        return  # rdc sweep checks the sweep's name (the space's, by default) first: also one clean line
    assert line.startswith(f"{key}={value}"), line
    assert allowed in line.rsplit("allowed: ", 1)[-1], line


# Broken YAML reaches Hydra before the space language sees it: sweep/config.py names the file.
BROKEN_YAML = {
    "duplicate_key": "name: a\nname: b\nfamilies: []\n",
    "syntax_error": "name: [unclosed\n",
}


@pytest.mark.parametrize("case", sorted(BROKEN_YAML))
def test_broken_yaml_is_refused_with_one_line(case, tmp_path, capsys):
    conf = tmp_path / "conf"
    (conf / "search_space").mkdir(parents=True)
    (conf / "search_space" / f"{case}.yaml").write_text(BROKEN_YAML[case])
    line = refuse("plan", ["--config-dir", str(conf), f"search_space={case}"], tmp_path, capsys)
    assert f"{case}.yaml" in line and "allowed: " in line, line  # names the file (and line)
