"""A local Ray instance started by a sweep listens on 127.0.0.1 only."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import json, psutil
from sweep.launch import start_ray, stop_ray
start_ray({"mode": "local", "address": None, "num_cpus": 1, "num_gpus": 0})
import ray
nodes = [n["NodeManagerAddress"] for n in ray.nodes()]
pids = {p.pid for p in psutil.Process().children(recursive=True)} | {psutil.Process().pid}
listening = sorted({c.laddr.ip for c in psutil.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN and c.pid in pids})
stop_ray()
print(json.dumps({"nodes": nodes, "listening": listening}))
"""


def test_local_ray_nodes_and_sockets_are_on_loopback():
    # A fresh interpreter: Ray must be configured before its first import, as `rdc sweep` does.
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["nodes"] == ["127.0.0.1"]
    assert result["listening"], "Ray's processes should listen somewhere"
    assert set(result["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}, result["listening"]
