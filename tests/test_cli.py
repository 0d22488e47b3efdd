"""The `rdc` dispatcher: help, unknown commands, and user errors as one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

from rdc.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_exits_2_naming_allowed(capsys):
    assert main(["sweeep"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sweeep" in err and "sweep" in err


def test_user_error_is_one_line_exit_2_without_traceback(tmp_path):
    # Through the installed console script, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "rdc.cli", "sweep", "train.stpes=3", f"runs_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["rdc sweep: error: train.stpes='3': unknown key: allowed: " + lines[0].split("allowed: ")[1]]
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_help_does_not_import_heavy_packages():
    code = "import sys; from rdc.cli import main; main(['--help']); print(sorted(m for m in ('torch','ray','mlflow','compressai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_damaged_checkpoint_is_one_line_even_after_compressai_is_imported(tmp_path):
    """rdc import loads compressai before anything else of ours: torch's deprecation warning
    about compressai's jit scripting must not put lines before the error line."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(images / "flat.png")
    (tmp_path / "empty.pt").write_bytes(b"")
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "rdc.cli", "import", "--experiment", "refs", "--checkpoint", str(tmp_path / "empty.pt"),
         "--arch", "ScaleHyperprior", "--lmbda", "0.01", "--images", str(images),
         "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"rdc import: error: --checkpoint='{tmp_path / 'empty.pt'}': not a readable torch checkpoint (EOFError)"]
    assert not store.exists()
