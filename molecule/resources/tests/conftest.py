"""Molecule verifier set-up: testinfra reaches lab nodes through the netns:// backend."""
import os
import sys
from pathlib import Path

import pytest

# the test helpers (labcheck, testinfra_netns) live in tests/helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "helpers"))

import labcheck  # noqa: E402 pylint: disable=wrong-import-position
from ezctl.lab import Lab  # noqa: E402 pylint: disable=wrong-import-position
from testinfra_netns import register  # noqa: E402 pylint: disable=wrong-import-position

register()


@pytest.fixture(scope="session")
def lab():
    return Lab(os.environ["KUBEASZ_LAB"])


@pytest.fixture(scope="session")
def backend():
    return os.environ["FLANNEL_BACKEND"], os.environ["DIRECT_ROUTING"].lower() == "true"


@pytest.fixture(scope="session")
def views(lab):
    """Every node's lease and flannel tables, read once."""
    return labcheck.read_lab(lab)


@pytest.fixture(scope="session")
def pods(lab):
    """One pod per node, wired by the real CNI plugins from the conflist the role wrote."""
    nodes = [node["name"] for node in lab.status()["nodes"]]
    ips = {f"{node}/pod-{node}": lab.pod_add(node, f"pod-{node}") for node in nodes}
    yield ips
    for target in ips:
        node, _sep, pod = target.partition("/")
        lab.pod_del(node, pod)
