"""The house's direction of imports (/work/shared/HOUSE.md), checked on the source itself.

Every import in sweep/, jobs/, models/, analysis/ and rdc/ is read with `ast`, lazy ones inside
functions too (a lazy import still couples two modules; the circle space.py <-> plan.py was one).
Rooms point down: sweep -> jobs -> models -> rdc; analysis reads MLflow and imports only rdc of
ours, and never ray or torch (a laptop queries a cluster's store without them); models imports
only torch and compressai of the heavy libraries; rdc imports nothing of the rooms above it.
No two modules import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOMS = ("rdc", "models", "jobs", "sweep", "analysis")
# room -> the rooms of ours it may import (besides itself)
MAY_IMPORT = {
    "rdc": set(),
    "models": {"rdc"},
    "jobs": {"models", "rdc"},
    "sweep": {"jobs", "models", "rdc"},
    "analysis": {"rdc"},
}
# room -> third-party top-level packages it must never import
FORBIDDEN = {
    "analysis": {"ray", "torch", "compressai", "torchvision"},
    "models": {"ray", "mlflow", "optuna", "hydra", "omegaconf", "pandas"},
    "jobs": {"ray", "mlflow", "optuna", "hydra"},
    "rdc": {"ray", "torch"},
}
# Known violations, each "importer -> imported" with why it is still there: left out of the tests
# above; test_known_violations_are_still_there fails once one is fixed, so the entry goes too.
# (The last two, the frontier scheduler importing analysis.stopping, went when the rule moved to
# rdc/stopping.py.)
KNOWN_EDGES: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for room in ROOMS for p in sorted((REPO / room).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules `name` imports: ours resolved to the deepest module that exists, others by top level."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import module` imports the module; `from pkg import name`, the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known and target.split(".")[0] in ROOMS:
                target = target.rpartition(".")[0]
            if target:
                out.add(target)
    out.discard(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _room(module: str) -> str:
    return module.split(".")[0]


def _edges(graph: dict[str, set[str]]) -> set[str]:
    return {f"{module} -> {target}" for module, targets in graph.items() for target in targets}


@pytest.mark.parametrize("room", ROOMS)
def test_imports_point_down(graph, room):
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() if _room(module) == room
                    for target in targets if _room(target) in ROOMS and _room(target) != room
                    and _room(target) not in MAY_IMPORT[room])
    upward = [edge for edge in upward if edge not in KNOWN_EDGES]
    assert upward == [], f"{room} may import only {sorted(MAY_IMPORT[room]) or 'nothing'} of ours"


@pytest.mark.parametrize("room", FORBIDDEN)
def test_rooms_keep_out_the_libraries_they_must_not_need(graph, room):
    found = sorted(f"{module} -> {target}" for module, targets in graph.items() if _room(module) == room
                   for target in targets if target.split(".")[0] in FORBIDDEN[room])
    assert [edge for edge in found if edge not in KNOWN_EDGES] == []


def test_known_violations_are_still_there(graph):
    fixed = [edge for edge in KNOWN_EDGES if edge not in _edges(graph)]
    assert fixed == [], f"fixed, so take them out of KNOWN_EDGES: {fixed}"


def test_no_module_imports_round_a_circle(graph):
    ours = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    circles = [sorted(c) for c in _strongly_connected(ours) if len(c) > 1]
    # A package's __init__ re-exporting its modules, which import back names from the package
    # root, is one module in two files; circles through a package root and its own modules count too.
    assert circles == []


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has hundreds of modules)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    out.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def test_the_graph_sees_lazy_imports_and_packages(graph):
    # The checker itself: a lazy import inside a function is an edge, `from pkg import module`
    # resolves to the module, and a relative import to its absolute name.
    assert "sweep.costs" in graph["sweep.space"]  # imported at the top
    assert "sweep.tracking" in graph["sweep.launch"]  # imported inside a function
    assert "sweep.search.grid" in graph["sweep.search"]


def test_the_circle_finder_finds_circles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert sorted(sorted(c) for c in _strongly_connected(edges) if len(c) > 1) == [["a", "b", "c"]]


def test_the_driver_imports_ray_only_once_it_has_configured_it():
    # Ray reads its addressing mode when first imported (sweep.launch.configure_ray_import): every
    # module the driver loads before that point must leave ray unimported.
    import subprocess

    code = ("import sys; import sweep.commands, sweep.config, sweep.trainable, sweep.search, sweep.schedulers, "
            "sweep.space, sweep.costs, sweep.tracking, sweep.plan, sweep.remeasure; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
