"""The test cluster's command line refuses what it cannot build, in one line, before touching
the network (no root or iproute2 needed for that); `down` of a cluster that is not up is harmless."""

from __future__ import annotations

import pytest

from rdc.errors import UserError
from tests.cluster import testcluster


@pytest.mark.parametrize("argv, key", [
    (["--name", "much-too-long", "up"], "--name"),
    (["--name", "a_b", "up"], "--name"),
    (["--name", "rtx", "up", "--workers", "0"], "--workers"),
    (["--name", "rtx", "up", "--workers", "9"], "--workers"),
    (["--name", "rtx", "up", "--cpus", "0"], "--cpus"),
    (["--name", "rtx", "exec", "--", "true"], "--name"),
    (["--name", "rtx", "cut", "w1"], "--name"),
])
def test_what_cannot_be_built_or_reached_is_one_user_error(tmp_path, argv, key):
    with pytest.raises(UserError) as err:
        testcluster.main(["--state", str(tmp_path / "state"), *argv])
    assert err.value.key == key
    assert testcluster.namespaces("rtx") == []
    assert not (tmp_path / "state").exists()


def test_down_without_a_cluster_removes_nothing(tmp_path, capsys):
    assert testcluster.main(["--name", "rtx", "--state", str(tmp_path / "state"), "down"]) == 0
    assert "(0 namespaces removed)" in capsys.readouterr().out
