"""sweep.yaml_limits: configs that would hang or crash Hydra are refused before it reads them,
with real files in tmp_path; the shipped configs pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rdc.errors import UserError
from sweep.yaml_limits import MAX_BYTES, Limits, check_config_tree, check_file, count_nodes

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def alias_bomb(levels: int = 6) -> str:
    """Ten aliases per level: 10**levels scalars once expanded, in a few hundred bytes."""
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def one_line(error: UserError) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_alias_bomb_refused_without_expanding_it(tmp_path: Path):
    bomb = write(tmp_path / "search_space" / "bomb.yaml", alias_bomb(6))
    assert bomb.stat().st_size < 600
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_file(bomb)
    assert time.monotonic() - started < 0.5
    text = one_line(caught.value)
    assert str(bomb) in text and "aliases expanded" in text and "100,000" in text


def test_aliases_are_counted_as_expanded():
    assert count_nodes("a: &a [1, 2, 3]\nb: *a\n") == 1 + 2 + 4 + 4  # root, 2 keys, 2 lists of 1+3
    assert count_nodes(alias_bomb(3), Limits(max_nodes=10**6)) > 1000
    with pytest.raises(UserError):
        count_nodes("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  z: 3\n", Limits(max_nodes=8))


def test_recursive_alias_refused():
    with pytest.raises(UserError) as caught:
        count_nodes("a: &a [1, *a]\n")
    assert "contains it" in one_line(caught.value)


def test_deep_nesting_refused(tmp_path: Path):
    deep = write(tmp_path / "deep.yaml", "x: " + "[" * 20000 + "]" * 20000 + "\n")
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_file(deep)
    assert time.monotonic() - started < 0.5
    text = one_line(caught.value)  # libyaml stops at its own limit first, in the scanner
    assert "levels deep" in text or "nesting depth" in text
    with pytest.raises(UserError) as caught:
        check_file(write(tmp_path / "deeper_than_ours.yaml", "x: " + "[" * 100 + "]" * 100 + "\n"))
    assert "nested more than 64 levels deep" in one_line(caught.value)


def test_too_many_plain_nodes_refused(tmp_path: Path):
    grid = write(tmp_path / "grid.yaml", "N: [" + ", ".join(str(i) for i in range(2000)) + "]\n")
    with pytest.raises(UserError) as caught:
        check_file(grid, Limits(max_nodes=1000))
    assert "1,000 nodes" in one_line(caught.value)
    check_file(grid, Limits(max_nodes=3000))


def test_oversized_file_refused_before_reading(tmp_path: Path):
    huge = tmp_path / "grid.yaml"
    with open(huge, "wb") as handle:  # 10 MB, sparse: only its size is ever looked at
        handle.truncate(10 * MAX_BYTES)
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_file(huge)
    assert time.monotonic() - started < 0.1
    text = one_line(caught.value)
    assert "10,485,760 bytes" in text and f"at most {MAX_BYTES:,} bytes" in text


def test_non_utf8_byte_named_with_offset_and_line(tmp_path: Path):
    latin = write(tmp_path / "space.yaml", b"name: demo\nlabel: caf\xe9\n")
    with pytest.raises(UserError) as caught:
        check_file(latin)
    text = one_line(caught.value)
    assert str(latin) in text and "byte 0xe9 at offset 21 (line 2) is not UTF-8" in text


def test_yaml_syntax_error_named_with_line(tmp_path: Path):
    broken = write(tmp_path / "broken.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(UserError) as caught:
        check_file(broken)
    assert one_line(caught.value).startswith(f"{broken}:")


def test_shipped_configs_pass():
    checked = check_config_tree([CONF_DIR], [])
    assert checked[0] == "config.yaml"
    assert {"search_space/demo.yaml", "train/demo.yaml", "cluster/local.yaml", "profile/cpu.yaml"} <= set(checked)
    checked = check_config_tree([CONF_DIR], ["search_space=paper", "train=paper", "train.steps=5"])
    assert "search_space/paper.yaml" in checked and "search_space/demo.yaml" not in checked


def test_space_that_includes_itself(tmp_path: Path):
    extra = tmp_path / "conf"
    write(extra / "search_space" / "loop.yaml", "defaults:\n  - loop\n  - _self_\nname: loop\n")
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_config_tree([CONF_DIR, extra], ["search_space=loop"])
    assert time.monotonic() - started < 1
    text = one_line(caught.value)
    assert "search_space/loop.yaml -> search_space/loop.yaml" in text
    assert caught.value.key == "defaults"


def test_cycle_through_another_file_names_the_chain(tmp_path: Path):
    extra = tmp_path / "conf"
    write(extra / "search_space" / "a.yaml", "defaults:\n  - b\n  - _self_\n")
    write(extra / "search_space" / "b.yaml", "defaults:\n  - common/base@_here_\n")
    write(extra / "search_space" / "common" / "base.yaml", "defaults:\n  - /search_space/a\n")
    with pytest.raises(UserError) as caught:
        check_config_tree([CONF_DIR, extra], ["search_space=a"])
    assert ("search_space/a.yaml -> search_space/b.yaml -> search_space/common/base.yaml -> search_space/a.yaml"
            in one_line(caught.value))


def test_group_entry_cycle_and_override_choice(tmp_path: Path):
    root = tmp_path / "conf"
    write(root / "config.yaml", "defaults:\n  - train: demo\n  - _self_\n")
    write(root / "train" / "demo.yaml", "steps: 5\n")
    write(root / "train" / "spin.yaml", "defaults:\n  - /train: spin\n")
    check_config_tree([root], [])  # the default choice has no cycle
    with pytest.raises(UserError) as caught:
        check_config_tree([root], ["train=spin"])
    assert "train/spin.yaml -> train/spin.yaml" in one_line(caught.value)


def test_each_file_of_the_tree_is_checked(tmp_path: Path):
    extra = tmp_path / "conf"
    write(extra / "search_space" / "ok.yaml", "defaults:\n  - parts/latin\n")
    write(extra / "search_space" / "parts" / "latin.yaml", b"x: \xff\n")
    with pytest.raises(UserError) as caught:
        check_config_tree([CONF_DIR, extra], ["search_space=ok"])
    assert "latin.yaml" in one_line(caught.value) and "0xff" in str(caught.value)


def test_missing_options_are_left_to_hydra(tmp_path: Path):
    assert "search_space/absent.yaml" not in check_config_tree([CONF_DIR], ["search_space=absent"])
