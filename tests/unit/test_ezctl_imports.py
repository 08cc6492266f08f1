"""ezctl's modules import each other at the top only, and the import graph has no cycle.

A cycle between modules is only survivable with an import inside a function (a "late" import);
these tests forbid those for ezctl's own modules and check that the graph of the top-level
imports is acyclic, so the layers (helpers at the bottom, the lab, the commands, ``cli`` on top)
stay as they are. Every module is also imported first in an interpreter of its own: an import
order that would trip over a cycle fails there.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ezctl"
# __main__ runs the command line when imported; the callbacks folder is Ansible's, not a package
MODULES = sorted(f"ezctl.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def ezctl_imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    """(statement, module) for every import of an ezctl module in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names if a.name.split(".")[0] == "ezctl"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ezctl":
            if node.module == "ezctl":  # from ezctl import cli, lab
                found += [(node, f"ezctl.{a.name}") for a in node.names]
            else:
                found.append((node, node.module))
    return found


def graph() -> dict[str, set[str]]:
    """{module: the ezctl modules it imports} of every file in the package."""
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = "ezctl." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        edges[name] = {module for _node, module in ezctl_imports(ast.parse(path.read_text(encoding="utf-8")))}
    return edges


def test_no_ezctl_import_inside_a_function_or_class():
    late = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for scope in ast.walk(tree):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                late += [f"{path.name}:{node.lineno}: {module}" for node, module in ezctl_imports(scope)]
    assert not late, "ezctl modules imported inside a function or class (import them at the top): " + ", ".join(late)


def test_import_graph_has_no_cycle():
    edges = graph()
    assert set(MODULES) <= set(edges)
    try:
        order = list(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        pytest.fail("ezctl import cycle: " + " -> ".join(exc.args[1]))
    # the bottom stays the bottom: these import no other ezctl module
    assert not set().union(*(edges[n] for n in ("ezctl.clusters", "ezctl.helptext", "ezctl.labsys", "ezctl.reach")))
    assert order.index("ezctl.cli") > max(order.index(n) for n in ("ezctl.lab", "ezctl.nodes", "ezctl.status"))


@pytest.mark.parametrize("first", MODULES)
def test_every_module_imports_first_in_a_fresh_interpreter(first):
    """``first``, then every other module forwards and backwards: no order meets a half-made module."""
    rest = [m for m in MODULES if m != first]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for order in ([first, *rest], [first, *reversed(rest)]):
        proc = subprocess.run([sys.executable, "-c", code, *order], cwd=PACKAGE.parent, capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, f"importing {' '.join(order)}: {proc.stderr}"
