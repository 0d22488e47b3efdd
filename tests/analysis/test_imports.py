"""analysis works on a laptop with none of the sweep's heavy machinery: no ray, sweep, jobs,
models, torch or compressai. Proven in a fresh interpreter where importing any of them fails."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BANNED = ["ray", "sweep", "jobs", "models", "torch", "compressai"]

PROGRAM = textwrap.dedent("""
    import importlib, json, pkgutil, sys

    BANNED = set(sys.argv[1].split(","))

    class Blocker:
        # A laptop without these installed: any attempt to import them fails.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BANNED:
                raise ImportError(f"{name} is not installed on this laptop")
            return None

    sys.meta_path.insert(0, Blocker())
    import analysis
    modules = [f"analysis.{m.name}" for m in pkgutil.iter_modules(analysis.__path__)]
    for module in modules:
        importlib.import_module(module)
    from rdc.cli import main
    codes = [
        main(["frontier", "--experiment", "known", "--tracking-uri", sys.argv[2], "--format", "csv"]),
        main(["report", "--experiment", "study", "--tracking-uri", sys.argv[3], "--out", sys.argv[4],
              "--anchor", sys.argv[5]]),
    ]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
    print(json.dumps({"modules": modules, "codes": codes, "loaded": loaded}))
""")


def test_analysis_needs_no_ray_sweep_jobs_torch_or_compressai(known_store, study_store, anchors_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, ",".join(BANNED), known_store, study_store, str(tmp_path / "report"),
         str(anchors_dir / "compressai" / "vtm.json")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"analysis.cli", "analysis.frontier", "analysis.report", "analysis.runs"} <= set(result["modules"])
    assert result["codes"] == [0, 0]
    assert result["loaded"] == []
    assert (tmp_path / "report" / "report.html").is_file()
