"""Lab teardown order, without root: processes die while every namespace of the lab is mounted."""

from __future__ import annotations

import pytest

from ezctl import lab as labmod
from ezctl import labnodes, labns


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """A lab whose namespace and process operations only record their order."""
    calls = []
    lab = labmod.Lab("t1", root=tmp_path)
    monkeypatch.setattr(labmod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(labmod.Lab, "ns_inodes", lambda self, nodes: {(1, 2)})
    monkeypatch.setattr(labmod.Lab, "node_exists", lambda self, node: True)
    monkeypatch.setattr(labmod.Lab, "delete_pods", lambda self, node: calls.append(("pods", node)))
    monkeypatch.setattr(labmod.Lab, "kill_processes", staticmethod(lambda inodes: calls.append(("kill",))))
    monkeypatch.setattr(labmod.Lab, "mounts_under", lambda self: [])
    return lab, calls


def test_down_kills_before_it_frees_the_pods_namespaces(recorded):
    lab, calls = recorded
    lab.dir.mkdir(parents=True)
    (lab.dir / "node1.mnt").touch()
    lab.down()
    assert calls == [("kill",), ("pods", "node1")]


def test_node_del_kills_before_it_frees_the_pods_namespaces(recorded, monkeypatch):
    lab, calls = recorded
    monkeypatch.setattr(labns.Namespaces, "file_inodes", lambda self, but=None: set())
    monkeypatch.setattr(labmod.Lab, "load_state", lambda self: {"nodes": [{"name": "node1"}]})
    monkeypatch.setattr(labmod.Lab, "fabric", lambda self, *argv, **kw: None)
    monkeypatch.setattr(labmod.Lab, "_save_state", lambda self, state: None)
    lab.dir.mkdir(parents=True)
    labnodes.node_del(lab, "node1")
    assert calls[:2] == [("kill",), ("pods", "node1")]
