"""The modules of ridgelens.ridge import each other one way: no cycle, not even through an import inside a function."""

import ast
import graphlib
from pathlib import Path

import ridgelens.ridge


def _ridge_import_graph() -> dict:
    """module → the ridgelens.ridge modules it imports anywhere in its text (function-level imports included)."""
    folder = Path(ridgelens.ridge.__file__).parent
    graph = {}
    for f in sorted(folder.glob("_*.py")):
        deps = {node.module for node in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ridgelens.ridge.")}
        graph[f"ridgelens.ridge.{f.stem}"] = deps
    return graph


def test_ridge_modules_have_no_import_cycle():
    graph = _ridge_import_graph()
    assert {"ridgelens.ridge._path", "ridgelens.ridge._weighted", "ridgelens.ridge._solvers"} <= set(graph)
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("ridgelens.ridge._result") < order.index("ridgelens.ridge._solvers") \
        < order.index("ridgelens.ridge._path")
    assert order.index("ridgelens.ridge._weighted") < order.index("ridgelens.ridge._path")
