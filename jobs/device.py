"""Short, stable device names for metric names and tags: `cpu-<model>-<threads>t`, `cuda-<gpu>`.

The study's point is that runtime rankings change with the device, so every runtime we log
says which device produced it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch


def _slug(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu|processor|@.*$|\d+-core", " ", text.lower())
    text = text.replace("nvidia", "").replace("geforce", "")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


@lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return _slug(line.split(":", 1)[1])
    except OSError:
        pass
    import platform

    return _slug(platform.processor() or platform.machine())


def device_name(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda-{_slug(torch.cuda.get_device_name(device))}"
    return f"cpu-{cpu_model()}-{torch.get_num_threads()}t"
