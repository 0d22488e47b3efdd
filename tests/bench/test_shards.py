"""The benches' --shard i/n: a bad value is refused before any training starts."""
import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from shards import shard_arg  # noqa: E402


def test_a_shard_is_a_process_index_and_a_count():
    assert shard_arg("0/1") == (0, 1)
    assert shard_arg("1/2") == (1, 2)


@pytest.mark.parametrize("text, says", [("2/2", "0 <= i < n"), ("0/0", "n >= 1"), ("-1/2", "0 <= i < n"),
                                         ("1", "expected i/n"), ("a/b", "expected i/n"), ("1/2/3", "expected i/n"),
                                         ("", "expected i/n")])
def test_a_shard_outside_its_count_or_not_i_over_n_is_refused(text, says):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{text!r}: .*{says}"):
        shard_arg(text)
