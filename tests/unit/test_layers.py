"""module_utils' layers (its subpackages) import only the layers below them, so the folder tree
stays the architecture: base <- model <- plan, store <- check, routeguard <- entry."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import architecture_stats as stats  # noqa: E402

BELOW = {
    "base": set(),
    "model": {"base"},
    "plan": {"base", "model"},
    "store": {"base", "model"},
    "check": {"base", "model", "plan"},
    "routeguard": {"base", "model", "plan", "store"},
    "entry": {"base", "model", "plan", "store", "check", "routeguard"},
}


def test_every_layer_is_known():
    assert stats.LAYERS == set(BELOW)


def test_a_layer_imports_only_the_layers_below_it():
    wrong = []
    for path in stats.UTILS.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        layer = stats.module_name(path).split(".")[0]
        for dep in stats.imports_of(path):
            if dep.split(".")[0] not in BELOW[layer] | {layer}:
                wrong.append(f"{stats.module_name(path)} -> {dep}")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    graph = {stats.module_name(p): stats.imports_of(p) for p in stats.UTILS.rglob("*.py") if p.name != "__init__.py"}
    assert max(stats.layers(graph).values()) < len(graph)  # layers() raises SystemExit on a cycle
