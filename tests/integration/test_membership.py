"""Membership changes are transactional (issue 24, defects 2 and 7): one lab of two host-gw nodes
on segment 1 (file store). A join that is refused (a host-gw node on segment 2) or that fails
(an unreachable node) leaves the store, the nodes and the hosts file as they were, and the next
06 runs clean."""
from __future__ import annotations

import os

import pytest

from labplay import assert_ok, assert_unchanged, run_06
from nodeplay import ezctl, ezctl_lab, tables

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

HOST_GW = {"FLANNEL_BACKEND": "host-gw"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("member", tmp_path_factory.mktemp("base"), nodes=2) as made:
        assert_ok(run_06(made[1], **HOST_GW))
        yield made


def snapshot(lab, cdir) -> dict:
    return {"hosts": (cdir / "hosts").read_text(), "leases": (cdir / "flannel-leases.json").read_text(),
            "node1": tables(lab, "node1"), "node2": tables(lab, "node2")}


def test_a_refused_host_gw_join_changes_nothing(cluster):
    lab, cdir = cluster
    before = snapshot(lab, cdir)
    node, ip = ezctl(cdir, "lab", "node", "add", lab.name, "--segment", "2").stdout.split()
    proc = ezctl(cdir, "add-node", cdir.name, ip, check=False)
    assert proc.returncode == 2, proc.stdout[-4000:] + proc.stderr
    assert "not on-link" in proc.stdout or "not reachable" in proc.stdout or "segment" in proc.stdout, proc.stdout
    assert "rolled back" in proc.stderr, proc.stderr
    assert snapshot(lab, cdir) == before
    for path in ("/run/flannel/subnet.env", "/etc/cni/net.d/10-flannel.conflist"):
        assert lab.exec(node, ["test", "-e", path], check=False).returncode == 1, path
    lab.node_del(node)
    assert_unchanged(run_06(cdir, **HOST_GW))


def test_a_join_of_an_unreachable_node_is_rolled_back(cluster):
    lab, cdir = cluster
    before = snapshot(lab, cdir)
    proc = ezctl(cdir, "add-node", cdir.name, "198.18.0.19", "ansible_connection=kubeasz.network.netns",
                 "ansible_host=nosuchnode", f"kubeasz_lab_dir={lab.dir}", check=False)
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr
    assert "rolled back" in proc.stderr, proc.stderr
    assert snapshot(lab, cdir) == before
