"""rdc.arguments: argparse's refusal is rdc's one error line (the option, why, what is allowed),
exit 2, for every rdc command; --help still prints in full."""

from __future__ import annotations

import pytest

from rdc import cli
from rdc.arguments import ArgumentParser
from rdc.errors import UserError


def parser() -> ArgumentParser:
    made = ArgumentParser(prog="rdc frontier")
    made.add_argument("--experiment", required=True, help="the sweep")
    made.add_argument("--images", required=True)
    for name in ("x", "y", "z", "family", "lmbda", "anchor", "versus", "psnr-range", "bd-method"):
        made.add_argument(f"--{name}", default=None, help="an option with a long help text " * 3)
    made.add_argument("--count", type=int, default=1)
    made.add_argument("--format", choices=["table", "csv"], default="table")
    source = made.add_mutually_exclusive_group()
    source.add_argument("--compressai")
    source.add_argument("--checkpoint")
    return made


@pytest.mark.parametrize("argv, line", [
    ([], "--experiment: required (also missing: --images)"),
    (["--images", "i"], "--experiment: required"),
    (["--experiment", "a", "--images", "i", "--count", "many"], "--count: invalid int value: 'many'"),
    (["--experiment", "a", "--images", "i", "--format", "xml"], "--format: invalid choice: 'xml' (choose from 'table', 'csv')"),
    (["--experiment", "a", "--images", "i", "--count"], "--count: expected one argument"),
    (["--experiment", "a", "--images", "i", "--compressai", "x", "--checkpoint", "y"],
     "--checkpoint: not allowed with argument --compressai"),
    (["--experiment", "a", "--images", "i", "--bogus", "1"],
     "--bogus: not an argument of rdc frontier: allowed: --anchor, --bd-method, --checkpoint, --compressai, --count, "
     "--experiment, --family, --format, --help, --images, --lmbda, --psnr-range, --versus, --x, --y, --z"),
])
def test_a_refused_argument_is_a_user_error_naming_it(argv, line):
    with pytest.raises(UserError) as refused:
        parser().parse_args(argv)
    assert str(refused.value) == line


@pytest.mark.parametrize("argv, line", [
    (["--experiment", "", "--images", "i"], "--experiment='': empty: allowed: a value"),
    (["--experiment", "a", "--images", "i", "--x", " "], "--x=' ': empty: allowed: a value, or leave the argument out for its default"),
])
def test_an_empty_value_is_refused_not_taken_as_the_default(argv, line):
    # `--tracking-uri "$URI"` with URI unset would otherwise read the default store.
    with pytest.raises(UserError) as refused:
        parser().parse_args(argv)
    assert str(refused.value) == line


def test_help_still_prints_in_full(capsys):
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(["--help"])
    assert caught.value.code == 0
    assert "an option with a long help text" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
@pytest.mark.parametrize("argv", [["--bogus"], ["--experiment"], ["--threads", "-1", "--experiment", "x", "--run", "r"]])
def test_every_command_refuses_a_bad_argument_in_one_line_with_exit_2(capsys, command, argv):
    assert cli.main([command, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"rdc {command}: error: --"), err
    assert "usage:" not in err and "Traceback" not in err
