"""`ezctl net check` and step 06's preflight on a 4-node lab (ansible dataplane, a pod per node):
each planted fault is named with exactly its pair(s) and layer and nothing else, and no check
changes a node (state compared before and after). One lab for the file."""
from __future__ import annotations

import json
import os
import re
import time

import pytest
import yaml

import netfaults
from checkstate import no_probe_left, node_state
from labplay import BASE_CONFIG, DATAPLANE_CONFIG, assert_ok, run_06
from nodeplay import ezctl, ezctl_lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

NODES = ("node1", "node2", "node3", "node4")
# no route guard: it would heal the planted route and rule faults at once
CONFIG = {"FLANNEL_ROUTE_GUARD": False}


def state(lab) -> dict:
    return {node: node_state(lab, node) for node in NODES}


def write_config(cdir, **extra):
    (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **CONFIG,
                                                     **extra}), encoding="utf-8")


def check(cdir, *args):
    proc = ezctl(cdir, "net", "check", cdir.name, "--json", *args, check=False)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("check", tmp_path_factory.mktemp("base"), nodes=4) as (lab, cdir):
        write_config(cdir)
        before = check(cdir)  # before flannel: the layers needing it skipped, the rest run
        assert_ok(run_06(cdir, **{**CONFIG}))
        for node in NODES:
            lab.pod_add(node, f"p-{node}")
        yield lab, cdir, before


def test_before_deploy_layers_needing_flannel_are_skipped(cluster):
    _lab, _cdir, (rc, report, _proc) = cluster
    assert rc == 0 and report["ok"] and report["not_deployed"] == list(NODES)
    assert {p["layers"]["overlay"] for p in report["pairs"]} == {"skip"}
    assert {p["layers"]["transport"] for p in report["pairs"]} == {"pass"}


def test_healthy_cluster_passes_and_nothing_changes(cluster, tmp_path):
    lab, cdir, _before = cluster
    before = state(lab)
    start = time.monotonic()
    proc = ezctl(cdir, "net", "check", cdir.name, "--svg", str(tmp_path / "check.svg"))
    took = time.monotonic() - start
    print(f"\nnet check on {len(NODES)} nodes: {took:.1f} s\n{proc.stdout}")
    assert "every pair passes every layer" in proc.stdout
    assert "layers: underlay 6/6, mtu 6/6, transport 6/6, overlay 6/6, pod 6/6" in proc.stdout
    assert (tmp_path / "check.svg").read_text().startswith("<svg")
    assert state(lab) == before
    assert no_probe_left()


def failed(cdir, *args):
    rc, report, proc = check(cdir, *args)
    print("\n" + json.dumps(report["findings"], indent=1))
    assert (rc == 2) == bool(report["failed"])
    return report["failed"]


def test_vxlan_port_dropped_between_two_nodes(cluster):
    lab, cdir, _before = cluster
    before = state(lab)
    with netfaults.drop_udp(lab, "198.18.0.11", "198.18.0.12"):
        assert failed(cdir) == ["node1-node2 transport (ipv4)"]
    assert state(lab) == before and no_probe_left()


def test_smaller_mtu_on_one_fabric_link(cluster):
    lab, cdir, _before = cluster
    with netfaults.fabric_mtu(lab, "node3", 1400):
        assert failed(cdir) == ["node1-node3 mtu (ipv4)", "node2-node3 mtu (ipv4)", "node3-node4 mtu (ipv4)"]


def test_pod_subnet_route_deleted_on_one_node(cluster):
    lab, cdir, _before = cluster
    env = lab.exec("node2", ["cat", "/run/flannel/subnet.env"]).stdout
    subnet = re.search(r"FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/24", env).group(1) + ".0/24"
    with netfaults.route_gone(lab, "node1", subnet):
        assert failed(cdir) == ["node1-node2 overlay (ipv4)"]


def test_forward_drop_without_flannels_rules(cluster):
    lab, cdir, _before = cluster
    with netfaults.forward_drop(lab, "node2"):
        assert failed(cdir) == ["node2 rules", "node1-node2 pod (ipv4)", "node2-node3 pod (ipv4)",
                                "node2-node4 pod (ipv4)", "node2 egress (ipv4)"]


def test_rules_in_both_iptables_backends(cluster):
    lab, cdir, _before = cluster
    with netfaults.legacy_rule(lab, "node3"):
        assert failed(cdir) == ["node3 rules"]


def test_capacity_one_subnet_short(cluster):
    """net check names it; step 06's preflight stops before any node changes."""
    lab, cdir, _before = cluster
    write_config(cdir, CLUSTER_CIDR="172.20.0.0/22")  # SubnetMin .1.0: 3 subnets for 4 nodes
    try:
        assert failed(cdir) == ["cluster capacity (ipv4)"]
        before = state(lab)
        proc = run_06(cdir, **CONFIG, CLUSTER_CIDR="172.20.0.0/22")
        assert proc.returncode != 0
        assert "allows 3 node subnets for 4 nodes (1 short)" in proc.stdout, proc.stdout[-3000:]
        assert state(lab) == before
    finally:
        write_config(cdir)


def test_same_address_on_the_chosen_second_nic_stops_06(cluster):
    lab, cdir, _before = cluster
    addresses = {"node1": "10.0.2.15/24", "node2": "10.0.2.15/24", "node3": "10.0.2.16/24", "node4": "10.0.2.17/24"}
    with netfaults.second_nic(lab, addresses):
        before = state(lab)
        proc = run_06(cdir, **CONFIG, FLANNEL_IFACE="eth1")
        assert proc.returncode != 0
        assert "nodes node1, node2 all use the public IP 10.0.2.15 (interface eth1)" in proc.stdout, proc.stdout[-3000:]
        assert state(lab) == before
    write_config(cdir)


def test_forward_drop_with_masquerade_off(cluster):
    """FLANNEL_IPMASQ false: pods reach no outside host (no route back), named with its cause on
    every node; FORWARD DROP without flannel's rules on node2 is then named as with masquerade on."""
    lab, cdir, _before = cluster
    egress = [f"{node} egress (ipv4)" for node in NODES]
    write_config(cdir, FLANNEL_IPMASQ=False)
    try:
        assert_ok(run_06(cdir, **CONFIG, FLANNEL_IPMASQ=False))
        assert failed(cdir) == egress
        causes = {f["cause"] for f in check(cdir)[1]["findings"] if f["layer"] == "egress"}
        assert all("FLANNEL_IPMASQ is false" in cause for cause in causes), causes
        with netfaults.forward_drop(lab, "node2"):
            assert failed(cdir) == ["node2 rules", "node1-node2 pod (ipv4)", "node2-node3 pod (ipv4)",
                                    "node2-node4 pod (ipv4)"] + egress
    finally:
        write_config(cdir)
        assert_ok(run_06(cdir, **CONFIG))
