"""What a config may cost to read, checked before Hydra composes it.

Hydra and OmegaConf trust their YAML: a few lines of aliases that expand to millions of nodes,
a 10 MB grid, or a `defaults:` list that includes itself hang or crash them (RecursionError)
long before any of our checks run. So every file the composition will read is checked first,
cheaply and without building anything:

- its size (`MAX_BYTES`), from the file system, before a byte is read;
- its encoding: UTF-8, the offending byte named by file, offset and line;
- its node count with every alias counted as expanded (`MAX_NODES`) and its nesting depth
  (`MAX_DEPTH`), counted from libyaml's event stream with the size of each anchor memoised, so
  an alias bomb is refused after reading a few hundred events, never expanded;
- the chain of `defaults:` lists from the primary config through the chosen options, a cycle
  named file by file.

Each refusal is one UserError; files that do not exist are left for Hydra to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from rdc.errors import UserError

MAX_BYTES = 1 << 20  # 1 MiB; the largest shipped config (the paper space) is under 5 kB
MAX_NODES = 100_000  # after aliases are expanded; the paper space has a few hundred
MAX_DEPTH = 64  # nested mappings and lists; the shipped configs reach 6
MAX_DEFAULTS_DEPTH = 32  # configs included through one another's defaults lists
SUFFIX = ".yaml"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: fast event parsing


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_BYTES
    max_nodes: int = MAX_NODES
    max_depth: int = MAX_DEPTH


def check_file(path: Path, limits: Limits = Limits(), *, name: str | None = None) -> str:
    """The file's text, once its size, encoding, node count and depth are within `limits`.

    `name` is how errors call the file (default: its path)."""
    label = name or str(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UserError(label, None, reason=f"{size:,} bytes, larger than any config should be",
                        allowed=f"at most {limits.max_bytes:,} bytes")
    data = path.read_bytes()
    if len(data) > limits.max_bytes:  # grew between stat and read
        raise UserError(label, None, reason="larger than any config should be", allowed=f"at most {limits.max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(label, None, reason=f"byte 0x{data[err.start]:02x} at offset {err.start} (line {line}) is not UTF-8",
                        allowed="UTF-8 text") from None
    count_nodes(text, limits, label=label)
    return text


def count_nodes(text: str, limits: Limits = Limits(), *, label: str = "config") -> int:
    """Nodes of `text` with aliases counted as expanded; UserError past the limits.

    Walks the parser's events (no node graph, no Python objects): a running total grows by one
    per scalar or collection and by an anchor's whole size per alias, so the count of a bomb
    passes the limit within its first lines."""
    total = 0
    open_starts: list[tuple[int, str | None]] = []  # (total when the collection opened, its anchor)
    sizes: dict[str, int] = {}  # anchor -> nodes in what it names
    open_anchors: set[str] = set()
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    raise _refusal(label, event, f"alias *{event.anchor} refers to the node that contains it",
                                   "aliases to finished nodes only")
                total += sizes.get(event.anchor, 1)
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                total += 1
                open_starts.append((total - 1, event.anchor))
                if event.anchor:
                    open_anchors.add(event.anchor)
                if len(open_starts) > limits.max_depth:
                    raise _refusal(label, event, f"nested more than {limits.max_depth} levels deep",
                                   f"at most {limits.max_depth} levels of mappings and lists")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                start, anchor = open_starts.pop()
                if anchor:
                    sizes[anchor] = total - start
                    open_anchors.discard(anchor)
            if total > limits.max_nodes:
                raise _refusal(label, event, f"more than {limits.max_nodes:,} nodes with its aliases expanded",
                               f"at most {limits.max_nodes:,} nodes (aliases counted as expanded)")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        raise UserError(where, None, reason=" ".join(str(getattr(err, "problem", None) or err).split()),
                        allowed="valid YAML") from None
    return total


def _refusal(label: str, event, reason: str, allowed: str) -> UserError:
    mark = getattr(event, "start_mark", None)
    return UserError(f"{label}:{mark.line + 1}" if mark else label, None, reason=reason, allowed=allowed)


# -- the defaults lists ---------------------------------------------------------------------
def check_config_tree(search_path: list[Path], overrides: list[str], *, primary: str = "config",
                      limits: Limits = Limits()) -> list[str]:
    """Check every config file the composition of `primary` with `overrides` will read, in the
    order Hydra finds them (first folder of `search_path` that has the file); UserError for a
    file past `limits` or a defaults list that includes itself. Returns the files checked
    (relative names such as "search_space/paper.yaml")."""
    choices, added = _group_choices(overrides, search_path)
    walk = _Walk(search_path, choices, limits)
    walk.visit(primary + SUFFIX, [])
    for group, option in added:  # +group=option adds a config no defaults list names
        walk.visit(f"{group}/{option}{SUFFIX}", [])
    return walk.checked


class _Walk:
    """Depth-first over the defaults lists, remembering the chain that led to each file."""

    def __init__(self, search_path: list[Path], choices: dict[str, str | None], limits: Limits):
        self.search_path, self.choices, self.limits = search_path, choices, limits
        self.done: set[str] = set()
        self.checked: list[str] = []

    def visit(self, name: str, chain: list[str]) -> None:
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name):] + [name])
            raise UserError("defaults", cycle, reason="a config includes itself through its defaults list",
                            allowed="defaults lists without a cycle")
        if name in self.done:
            return
        path = self._find(name)
        if path is None:
            return  # a structured config (rdc_schema) or a missing option: Hydra names it
        if len(chain) >= MAX_DEFAULTS_DEPTH:
            raise UserError("defaults", " -> ".join(chain[:3] + ["...", name]),
                            reason=f"configs included more than {MAX_DEFAULTS_DEPTH} levels deep",
                            allowed=f"at most {MAX_DEFAULTS_DEPTH} levels of defaults lists")
        text = check_file(path, self.limits, name=str(path))
        self.checked.append(name)
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        for child in _defaults_targets(yaml.load(text, Loader=_Loader), group, self.choices):
            self.visit(child, chain + [name])
        self.done.add(name)

    def _find(self, name: str) -> Path | None:
        for folder in self.search_path:
            candidate = Path(folder) / name
            if candidate.is_file():
                return candidate
        return None


def _defaults_targets(content, group: str, choices: dict[str, str | None]) -> list[str]:
    """The config files a file's `defaults:` list names, relative to the search path."""
    if not isinstance(content, dict) or not isinstance(content.get("defaults"), list):
        return []
    targets = []
    for entry in content["defaults"]:
        if isinstance(entry, str):
            name = entry.split("@", 1)[0].strip()
            if name in ("_self_", "") or "${" in name:
                continue
            targets.append(_join(group, name) + SUFFIX)
        elif isinstance(entry, dict) and len(entry) == 1:
            (key, option), = entry.items()
            words = str(key).split()
            sub_group = words[-1].split("@", 1)[0] if words else ""
            if not sub_group or "${" in sub_group:
                continue
            absolute = _join(group, sub_group)
            option = choices.get(absolute, option)
            for one in option if isinstance(option, list) else [option]:
                if isinstance(one, str) and one not in ("???", "") and "${" not in one:
                    targets.append(f"{absolute}/{one}{SUFFIX}")
    return targets


def _join(group: str, name: str) -> str:
    if name.startswith("/"):
        return name.lstrip("/")
    return f"{group}/{name}" if group else name


def _group_choices(overrides: list[str], search_path: list[Path]) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """group -> chosen option from overrides such as `search_space=paper`; `+group=option` also
    listed as an addition, `~group` as None (removed)."""
    choices: dict[str, str | None] = {}
    added: list[tuple[str, str]] = []
    for item in overrides:
        name, sep, value = item.partition("=")
        plus = name.startswith("+") and not name.startswith("++")
        removed = name.startswith("~")
        group = name.lstrip("+~").split("@", 1)[0]
        if "." in group or not group or not any((Path(folder) / group).is_dir() for folder in search_path):
            continue  # a value override (train.steps=5), not a group choice
        if removed:
            choices[group] = None
        elif sep:
            choices[group] = value
            if plus:
                added.append((group, value))
    return choices, added
