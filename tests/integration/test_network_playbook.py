"""The kubeasz step 06 with FLANNEL_DATAPLANE=ansible on a lab of namespace nodes, in the real kernel.

Four nodes: three on one L2 segment, node4 behind the fabric's router. Tests run in order on one
lab, the way an operator would: check mode first, vxlan, vxlan + DirectRouting, a refused
host-gw, back to vxlan. The nodes start with the bridge CNI config kubeasz's kube-node role writes
(10-default.conf), which the first run removes.
"""
from __future__ import annotations

import os

import pytest

import labcheck
from ezctl.lab import Lab
from labplay import assert_ok, assert_unchanged, lab_cluster, pods_ping, recap, run_06, snapshot

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

FOREIGN_INSIDE = "172.20.250.0/24 via 198.18.0.12 dev eth0"
FOREIGN_OUTSIDE = "10.99.0.0/24 via 198.18.0.12 dev eth0"
KUBEASZ_CNI_CONF = "/etc/cni/net.d/10-default.conf"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with lab_cluster("play", tmp_path_factory.mktemp("base"), nodes=4, segments=2) as made:
        yield made


def node_names(lab: Lab) -> list:
    return [n["name"] for n in lab.status()["nodes"]]


def cni_confs(lab: Lab) -> dict:
    return {node: sorted(lab.exec(node, ["ls", "/etc/cni/net.d"]).stdout.split()) for node in node_names(lab)}


def without_foreign(problems: list) -> list:
    """The operator's own route inside the cluster network is expected to stay."""
    return [p for p in problems if FOREIGN_INSIDE.split()[0] not in p]


def test_check_mode_on_a_fresh_cluster_changes_nothing(cluster):
    lab, cdir = cluster
    for node in node_names(lab):  # as kubeasz's kube-node role leaves a node
        lab.exec(node, ["sh", "-c", f"cat > {KUBEASZ_CNI_CONF}"],
                 input='{"cniVersion": "0.3.1", "name": "mynet", "type": "bridge", "bridge": "mynet0"}\n')
    before = snapshot(lab)
    proc = run_06(cdir, "--check", "--diff")
    assert_ok(proc)
    assert snapshot(lab) == before
    assert not (cdir / "flannel-leases.json").exists()


def test_vxlan(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))
    assert cni_confs(lab) == {node: ["10-flannel.conflist"] for node in node_names(lab)}  # 10-default.conf gone
    views = labcheck.read_lab(lab)
    assert len({v.subnet for v in views}) == 4
    assert labcheck.table_mismatches(views, "vxlan", False) == []
    pods_ping(lab)
    assert_unchanged(run_06(cdir))


def test_foreign_routes_and_check_mode_switch(cluster):
    lab, cdir = cluster
    for route in (FOREIGN_INSIDE, FOREIGN_OUTSIDE):
        lab.exec("node1", ["ip", "route", "add", *route.split()])
    before = snapshot(lab)
    proc = run_06(cdir, "--check", "--diff", DIRECT_ROUTING=True)
    assert_ok(proc)
    assert any(c["changed"] > 0 for c in recap(proc).values())
    assert snapshot(lab) == before


def test_direct_routing_mixes_direct_and_vxlan_peers(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir, DIRECT_ROUTING=True))
    views = labcheck.read_lab(lab)
    assert without_foreign(labcheck.table_mismatches(views, "vxlan", True)) == []
    node1 = next(v for v in views if v.name == "node1")
    vias = {dst: (gw, dev) for dst, gw, dev, _onlink in node1.routes}
    assert {dev for gw, dev in vias.values()} == {"eth0", "flannel.1"}
    pods_ping(lab)
    assert_unchanged(run_06(cdir, DIRECT_ROUTING=True))
    routes = lab.exec("node1", ["ip", "route", "show"]).stdout
    assert FOREIGN_INSIDE.split(" dev", maxsplit=1)[0] in routes
    assert FOREIGN_OUTSIDE.split(" dev", maxsplit=1)[0] in routes


def test_host_gw_refuses_the_routed_peer_and_changes_nothing(cluster):
    lab, cdir = cluster
    before = snapshot(lab)
    proc = run_06(cdir, FLANNEL_BACKEND="host-gw")
    assert proc.returncode != 0
    assert "198.18.1.14" in proc.stdout  # node4, behind the router, is named
    assert "not on-link" in proc.stdout
    assert snapshot(lab) == before  # tables, subnet.env and CNI config alike


def test_back_to_vxlan_converges(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))
    views = labcheck.read_lab(lab)
    assert without_foreign(labcheck.table_mismatches(views, "vxlan", False)) == []
    pods_ping(lab)
