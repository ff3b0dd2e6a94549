"""The product never imports `evals`, `bench` or `tests`, not even lazily inside a function:
a plain install (no extras) lacks what they need, and `wattwise` must start on one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("service", "agent", "tools", "context", "router", "quota", "telemetry", "demo")
OUTSIDE = frozenset({"evals", "bench", "tests"})


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", PRODUCT)
def test_the_product_imports_nothing_from_evals_bench_or_tests(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in _imported(ast.parse(path.read_text(), str(path)))
        if name.split(".")[0] in OUTSIDE
    ]
    assert wrong == []


def test_the_walk_finds_a_lazy_import() -> None:
    tree = ast.parse("def f():\n    from evals.cli import main\n    import bench.chat\n")
    assert [name for _, name in _imported(tree)] == ["evals.cli", "bench.chat"]
