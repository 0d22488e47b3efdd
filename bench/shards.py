"""`--shard i/n` for the benches that train runs in processes side by side: process i of n takes
runs i, i+n, i+2n, ... A bad value stops the bench before it trains anything."""
from __future__ import annotations

import argparse


def shard_arg(text: str) -> tuple[int, int]:
    """argparse type for "i/n" with 0 <= i < n."""
    try:
        part, parts = (int(piece) for piece in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected i/n, e.g. 0/2") from None
    if parts < 1 or not 0 <= part < parts:
        raise argparse.ArgumentTypeError(f"{text!r}: need n >= 1 and 0 <= i < n")
    return part, parts
