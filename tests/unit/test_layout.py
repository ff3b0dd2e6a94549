"""The layout is the architecture: imports flow one way between the top-level packages
(`service → agent → {tools, context, router, quota} → telemetry`, `demo → telemetry`,
`evals` from outside), no module imports itself back through others, and the product never
imports `evals`, `bench` or `tests`, not even lazily inside a function (a plain install
lacks what they need, and `wattwise` must start on one). Every import counts: at module
level, inside a function, or for type checking only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What each top-level package may import besides itself and third-party libraries.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "service": frozenset({"agent", "tools", "context", "router", "quota", "telemetry", "demo"}),
    "agent": frozenset({"tools", "context", "router", "quota", "telemetry"}),
    "tools": frozenset({"telemetry"}),
    "context": frozenset({"telemetry"}),
    "router": frozenset(),
    "quota": frozenset(),
    "telemetry": frozenset(),
    "demo": frozenset({"telemetry"}),
    # The eval drives the service and the turn from outside, seeds with the demo's
    # simulator and scores the router; it reads no internals of quota or telemetry.
    "evals": frozenset({"service", "agent", "demo", "router"}),
}
PRODUCT = tuple(p for p in MAY_IMPORT if p != "evals")
OUTSIDE = frozenset({"evals", "bench", "tests"})


def _imported(tree: ast.AST, package: str = "") -> list[tuple[int, str]]:
    """(line, module) for every import in `tree`; `from a import b` names `a.b`, which the
    caller resolves to `a` when `b` is not a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _edges(name: str) -> Iterator[tuple[int, str]]:
    """The project modules `name` imports, by line."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for line, target in _imported(ast.parse(path.read_text(), str(path)), package):
        if target in MODULES and target != name:
            yield line, target


@pytest.mark.parametrize("package", list(MAY_IMPORT))
def test_imports_flow_one_way(package: str) -> None:
    allowed = MAY_IMPORT[package] | {package}
    wrong = sorted(
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in MODULES
        if name.split(".")[0] == package
        for line, target in _edges(name)
        if target.split(".")[0] not in allowed
    )
    assert wrong == []


@pytest.mark.parametrize("package", PRODUCT)
def test_the_product_imports_nothing_from_evals_bench_or_tests(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in _imported(ast.parse(path.read_text(), str(path)))
        if name.split(".")[0] in OUTSIDE
    ]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back() -> None:
    graph = {name: {target for _, target in _edges(name)} for name in MODULES}
    assert _cycles(graph) == []


def test_the_walk_finds_lazy_relative_and_submodule_imports() -> None:
    tree = ast.parse(
        "def f():\n    from evals.cli import main\n    import bench.chat\n"
        "from . import sibling\nfrom router import route\n"
    )
    names = {name for _, name in _imported(tree, "agent")}
    assert {"evals.cli", "bench.chat", "agent.sibling", "router.route"} <= names


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
