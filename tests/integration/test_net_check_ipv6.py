"""`ezctl net check` on a dual-stack 4-node lab (`ezctl lab up --ipv6`, ansible dataplane, vxlan, a
pod per node): the healthy cluster passes on both families and no node changes; each planted fault
is named with exactly its pair(s), layer and family. One lab for the file; each fault is undone."""
from __future__ import annotations

import ipaddress
import json
import os

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
# dual stack; no route guard: it would heal the planted route fault at once
CONFIG = {"FLANNEL_ROUTE_GUARD": False, "CLUSTER_CIDR_IPV6": "fd00:20::/56", "NODE_CIDR_LEN_IPV6": 64}
PAIRS = 6


def state(lab) -> dict:
    return {node: node_state(lab, node, ipv6=True) for node in NODES}


def check(cdir):
    proc = ezctl(cdir, "net", "check", cdir.name, "--json", check=False)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def failed(cdir):
    rc, report = check(cdir)
    print("\n" + json.dumps(report["findings"], indent=1))
    assert (rc == 2) == bool(report["failed"])
    return report["failed"]


def subnet_env(lab, node: str) -> dict:
    text = lab.exec(node, ["cat", "/run/flannel/subnet.env"]).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("check6", tmp_path_factory.mktemp("base6"), nodes=4, ipv6=True) as (lab, cdir):
        (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **CONFIG}),
                                         encoding="utf-8")
        assert_ok(run_06(cdir, **CONFIG))
        for node in NODES:
            lab.pod_add(node, f"p-{node}")
        yield lab, cdir


def test_healthy_dual_stack_passes_on_both_families_and_nothing_changes(cluster):
    lab, cdir = cluster
    before = state(lab)
    rc, report = check(cdir)
    assert rc == 0 and report["ok"] and report["failed"] == [], report["findings"]
    families = {}
    for pair in report["pairs"]:
        families.setdefault(pair["family"], []).append(pair)
    assert sorted(families) == ["ipv4", "ipv6"]
    for family, pairs in families.items():
        assert len(pairs) == PAIRS, family
        for pair in pairs:
            assert set(pair["layers"].values()) == {"pass"}, (family, pair)
    assert report["egress"] == {node: {"ipv4": "pass", "ipv6": "pass"} for node in NODES}
    assert state(lab) == before
    assert no_probe_left()


def test_vxlan_port_dropped_over_ipv6_only(cluster):
    lab, cdir = cluster
    before = state(lab)
    with netfaults.drop_udp(lab, "fd53:18::11", "fd53:18::12"):
        assert failed(cdir) == ["node1-node2 transport (ipv6)"]
    assert state(lab) == before and no_probe_left()


def test_smaller_mtu_on_one_fabric_link_fails_both_families(cluster):
    lab, cdir = cluster
    with netfaults.fabric_mtu(lab, "node3", 1400):
        assert failed(cdir) == [f"{pair} mtu ({family})" for pair in ("node1-node3", "node2-node3", "node3-node4")
                                for family in ("ipv4", "ipv6")]


def test_ipv6_pod_subnet_route_deleted_on_one_node(cluster):
    lab, cdir = cluster
    subnet = str(ipaddress.ip_interface(subnet_env(lab, "node2")["FLANNEL_IPV6_SUBNET"]).network)
    with netfaults.route_gone(lab, "node1", subnet):
        assert failed(cdir) == ["node1-node2 overlay (ipv6)"]


def test_rules_in_both_ip6tables_backends(cluster):
    lab, cdir = cluster
    with netfaults.legacy_rule(lab, "node3", tool="ip6tables-legacy"):
        assert failed(cdir) == ["node3 rules"]


def test_forward_drop_without_flannels_ip6_rules(cluster):
    lab, cdir = cluster
    with netfaults.forward_drop(lab, "node2", tool="ip6tables"):
        assert failed(cdir) == ["node2 rules", "node1-node2 pod (ipv6)", "node2-node3 pod (ipv6)",
                                "node2-node4 pod (ipv6)", "node2 egress (ipv6)"]


def test_ipv6_capacity_one_subnet_short(cluster):
    """net check names it; step 06's preflight stops before any node changes."""
    lab, cdir = cluster
    short = {**CONFIG, "CLUSTER_CIDR_IPV6": "fd00:20::/62"}   # SubnetMin :1:: of 4 /64s: 3 for 4 nodes
    (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **short}),
                                     encoding="utf-8")
    try:
        assert failed(cdir) == ["cluster capacity (ipv6)"]
        before = state(lab)
        proc = run_06(cdir, **short)
        assert proc.returncode != 0
        assert "allows 3 node subnets for 4 nodes (1 short)" in proc.stdout, proc.stdout[-3000:]
        assert state(lab) == before
    finally:
        (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **CONFIG}),
                                         encoding="utf-8")


def test_same_ipv6_address_on_the_chosen_second_nic_stops_06(cluster):
    lab, cdir = cluster
    addresses = {"node1": ["10.0.2.15/24", "fd53:99::15/64"], "node2": ["10.0.2.16/24", "fd53:99::15/64"],
                 "node3": ["10.0.2.17/24", "fd53:99::17/64"], "node4": ["10.0.2.18/24", "fd53:99::18/64"]}
    with netfaults.second_nic(lab, addresses):
        before = state(lab)
        proc = run_06(cdir, **CONFIG, FLANNEL_IFACE="eth1")
        assert proc.returncode != 0
        assert "nodes node1, node2 all use the public IP fd53:99::15 (interface eth1)" in proc.stdout, \
            proc.stdout[-3000:]
        assert state(lab) == before
    (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **CONFIG}),
                                     encoding="utf-8")
