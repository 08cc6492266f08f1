"""Molecule verifier set-up: testinfra reaches lab nodes through the netns:// backend."""
import os

import pytest

from ezctl import labcheck
from ezctl.lab import Lab
from ezctl.testinfra_netns import register

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
