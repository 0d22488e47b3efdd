"""rdc.arguments: a bad argument prints two lines (one-line usage, the error) and exits 2."""

from __future__ import annotations

import pytest

from rdc.arguments import ArgumentParser


def parser() -> ArgumentParser:
    made = ArgumentParser(prog="rdc frontier")
    made.add_argument("--experiment", required=True, help="the sweep")
    for name in ("x", "y", "z", "family", "lmbda", "format", "anchor", "versus", "psnr-range", "bd-method"):
        made.add_argument(f"--{name}", default=None, help="an option with a long help text " * 3)
    made.add_argument("--count", type=int, default=1)
    return made


@pytest.mark.parametrize("argv, says", [
    ([], "the following arguments are required: --experiment"),
    (["--experiment", "a", "--count", "many"], "argument --count: invalid int value: 'many'"),
    (["--experiment", "a", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_error_is_two_lines(capsys, argv, says):
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("usage: rdc frontier ") and "--experiment EXPERIMENT" in lines[0]
    assert lines[1] == f"rdc frontier: error: {says}"


def test_help_still_prints_in_full(capsys):
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["--help"])
    assert caught.value.code == 0
    assert "an option with a long help text" in capsys.readouterr().out
