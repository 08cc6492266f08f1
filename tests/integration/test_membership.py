"""Membership changes are transactional (issue 24, defects 2 and 7): one lab of two host-gw nodes
on segment 1 (file store). A join that is refused (a host-gw node on segment 2) or that fails
(an unreachable node) leaves the store, the nodes and the hosts file as they were, and the next
06 runs clean."""
from __future__ import annotations

import os
import subprocess

import pytest

from ezctl import nodes
from labplay import REPO, argv_06, assert_ok, assert_unchanged, env_06, run_06
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
    """22.addnode.yml itself (no ezctl rollback): the host-gw check runs before the new node's
    lease is taken, with the lease it would take."""
    lab, cdir = cluster
    before = snapshot(lab, cdir)
    node, ip = ezctl(cdir, "lab", "node", "add", lab.name, "--segment", "2").stdout.split()
    line = " ".join([ip, nodes.lab_line(lab, ip)])
    (cdir / "hosts").write_text(nodes.add_host_line(before["hosts"], line))
    argv = argv_06(cdir, "-e", f"NODE_TO_ADD={ip}", **HOST_GW)
    argv[argv.index("playbooks/06.network.yml")] = "playbooks/22.addnode.yml"
    proc = subprocess.run(argv, cwd=REPO, env=env_06(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 2, proc.stdout[-4000:] + proc.stderr
    assert "host-gw" in proc.stdout and ip in proc.stdout, proc.stdout[-4000:]
    (cdir / "hosts").write_text(before["hosts"])
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
