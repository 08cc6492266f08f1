"""Dual-stack and IPv6-only pod networks (issue 16): step 06 on labs with an IPv6 underlay
(`ezctl lab up --ipv6`), in the real kernel.

Lab "seg2": three nodes on two L2 segments (node3 behind the fabric's router): dual-stack vxlan,
then vxlan + DirectRouting. Lab "seg1": three nodes on one segment: dual-stack host-gw, then
IPv6-only vxlan (IPv4 is taken off the nodes). Every step: all pairs of pods ping over each
family, the IPv6 tables are flanneld's (docs/dual-stack.md), a rerun reports changed=0.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os

import pytest

from ezctl import reach
from ezctl.lab import Lab
from labplay import assert_ok, assert_unchanged, recap, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

DUAL = {"CLUSTER_CIDR_IPV6": "fd00:20::/56", "NODE_CIDR_LEN_IPV6": 64}
IPV6_ONLY = {**DUAL, "FLANNEL_ENABLE_IPV4": False, "SERVICE_CIDR": "fd00:10::/108"}
ROUTE_PROTOCOL = "159"


@contextlib.contextmanager
def ipv6_lab(tag: str, base, segments: int):
    lab = Lab(f"it-{tag}-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=segments, ipv6=True)
        yield lab, lab.write_cluster(base, lab.name)
    finally:
        lab.down()


@pytest.fixture(scope="module")
def seg2(tmp_path_factory):
    with ipv6_lab("ds2", tmp_path_factory.mktemp("ds2"), segments=2) as made:
        yield made


@pytest.fixture(scope="module")
def seg1(tmp_path_factory):
    with ipv6_lab("ds1", tmp_path_factory.mktemp("ds1"), segments=1) as made:
        yield made


def nodes(lab: Lab) -> list:
    return [n["name"] for n in lab.status()["nodes"]]


def subnet_env(lab: Lab, node: str) -> dict:
    text = lab.exec(node, ["cat", "/run/flannel/subnet.env"]).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def pods_ping_families(lab: Lab, families: tuple) -> dict:
    """A pod per node; every pod pings every other pod over each family; pods removed again."""
    made = []
    try:
        for node in nodes(lab):
            lab.pod_add(node, f"p-{node}")
            made.append(node)
        pods = lab.status()["pods"]
        matrices = {}
        for family, key in (("ipv4", "ip"), ("ipv6", "ip6")):
            addrs = {f"{n}/p-{n}": pods[n][f"p-{n}"].get(key) for n in made}
            if family not in families:
                assert not any(addrs.values()), f"pods got {family} addresses: {addrs}"
                continue
            assert all(addrs.values()), f"a pod has no {family} address: {addrs}"
            matrix = reach.ping_matrix(lambda src, ip: reach.ping(lab, src, ip), addrs)
            assert all(matrix.values()), family + "\n" + reach.format_matrix(matrix, list(addrs))
            matrices[family] = addrs
        return matrices
    finally:
        for node in made:
            lab.pod_del(node, f"p-{node}")


def ipv6_view(lab: Lab, node: str) -> dict:
    """What flannel set up for IPv6 on a node: its lease (subnet.env) and its kernel tables."""
    env = subnet_env(lab, node)
    sub = ipaddress.IPv6Interface(env["FLANNEL_IPV6_SUBNET"]).network
    addrs = json.loads(lab.exec(node, ["ip", "-6", "-json", "addr", "show", "dev", "eth0", "scope", "global"]).stdout)
    public6 = addrs[0]["addr_info"][0]["local"]
    links = {l["ifname"]: l for l in json.loads(lab.exec(node, ["ip", "-d", "-json", "link", "show"]).stdout)}
    mac6 = links.get("flannel-v6.1", {}).get("address")
    segment = ipaddress.IPv6Network(f"{public6}/64", strict=False)
    return {"node": node, "subnet6": sub, "public_ip6": public6, "mac6": mac6, "segment": segment,
            "links": links, "env": env,
            "routes": json.loads(lab.exec(node, ["ip", "-6", "-json", "route", "show", "proto", ROUTE_PROTOCOL]).stdout),
            "neigh": lab.exec(node, ["ip", "-6", "neigh", "show", "nud", "permanent"]).stdout,
            "fdb": lab.exec(node, ["bridge", "fdb", "show", "dev", "flannel-v6.1"], check=False).stdout}


def ipv6_mismatches(views: list, backend: str, direct_routing: bool) -> list:
    """Differences from flanneld's IPv6 rules: per peer either the VXLAN route (onlink via the
    peer's subnet address on flannel-v6.1) with its permanent neighbour and FDB entry, or a route
    via the peer's public IPv6 on eth0 (host-gw, DirectRouting on the same segment)."""
    problems = []
    for me in views:
        routes = {r["dst"]: r for r in me["routes"]}
        for peer in (v for v in views if v is not me):
            dst = str(peer["subnet6"])
            route = routes.get(dst)
            direct = backend == "host-gw" or (direct_routing and ipaddress.ip_address(peer["public_ip6"]) in me["segment"])
            if direct:
                want = {"gateway": peer["public_ip6"], "dev": "eth0"}
            else:
                gw = str(peer["subnet6"].network_address)
                want = {"gateway": gw, "dev": "flannel-v6.1"}
                if f"{gw} dev flannel-v6.1 lladdr {peer['mac6']} PERMANENT" not in me["neigh"]:
                    problems.append(f"{me['node']}: no neighbour {gw} lladdr {peer['mac6']}")
                if f"{peer['mac6']} dst {peer['public_ip6']} self permanent" not in me["fdb"]:
                    problems.append(f"{me['node']}: no fdb {peer['mac6']} dst {peer['public_ip6']}")
                if route is not None and "onlink" not in route.get("flags", []):
                    problems.append(f"{me['node']}: route {dst} is not onlink: {route}")
            if route is None or {k: route.get(k) for k in want} != want:
                problems.append(f"{me['node']}: route {dst}: want {want}, have {route}")
        if len(routes) != len(views) - 1:
            problems.append(f"{me['node']}: {len(routes)} IPv6 routes of ours: {sorted(routes)}")
    return problems


def assert_vxlan6_device(view: dict) -> None:
    """flanneld's flannel-v6.<VNI>: local = the node's public IPv6 on eth0, the lease's address/128."""
    link = view["links"]["flannel-v6.1"]
    data = link["linkinfo"]["info_data"]
    assert data["id"] == 1 and data.get("local6", data.get("local")) == view["public_ip6"], data
    # the kernel caps a VXLAN device over IPv6 at underlay - 70 (flanneld's flannel-v6 too)
    assert link["mtu"] == view["links"]["eth0"]["mtu"] - 70, link
    assert data.get("learning") is not True, data


def test_dual_stack_vxlan(seg2):
    lab, cdir = seg2
    proc = run_06(cdir, **DUAL)
    assert_ok(proc)
    views = [ipv6_view(lab, n) for n in nodes(lab)]
    env = views[0]["env"]
    assert list(env) == ["FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_IPV6_NETWORK", "FLANNEL_IPV6_SUBNET",
                         "FLANNEL_MTU", "FLANNEL_IPMASQ"], env
    assert env["FLANNEL_IPV6_NETWORK"] == "fd00:20::/56"
    assert len({str(v["subnet6"]) for v in views}) == 3
    for view in views:
        assert_vxlan6_device(view)
        assert "flannel.1" in view["links"]
    assert ipv6_mismatches(views, "vxlan", False) == []
    pods_ping_families(lab, ("ipv4", "ipv6"))
    assert_unchanged(run_06(cdir, **DUAL))


def test_dual_stack_vxlan_direct_routing(seg2):
    lab, cdir = seg2
    assert_ok(run_06(cdir, DIRECT_ROUTING=True, **DUAL))
    views = [ipv6_view(lab, n) for n in nodes(lab)]
    assert ipv6_mismatches(views, "vxlan", True) == []
    pods_ping_families(lab, ("ipv4", "ipv6"))
    assert_unchanged(run_06(cdir, DIRECT_ROUTING=True, **DUAL))


def test_dual_stack_host_gw(seg1):
    lab, cdir = seg1
    assert_ok(run_06(cdir, FLANNEL_BACKEND="host-gw", **DUAL))
    views = [ipv6_view(lab, n) for n in nodes(lab)]
    assert ipv6_mismatches(views, "host-gw", False) == []
    assert all("flannel-v6.1" not in v["links"] and "flannel.1" not in v["links"] for v in views)
    rules = lab.exec(nodes(lab)[0], ["ip6tables-save", "-t", "nat"]).stdout
    assert "-A FLANNEL-POSTRTG -s fd00:20::/56 ! -d ff00::/8" in rules, rules
    pods_ping_families(lab, ("ipv4", "ipv6"))
    assert_unchanged(run_06(cdir, FLANNEL_BACKEND="host-gw", **DUAL))


def test_ipv6_only_vxlan_takes_ipv4_off(seg1):
    lab, cdir = seg1
    proc = run_06(cdir, **IPV6_ONLY)
    assert_ok(proc)
    assert any(c["changed"] for c in recap(proc).values())
    for node in nodes(lab):
        env = subnet_env(lab, node)
        assert list(env) == ["FLANNEL_IPV6_NETWORK", "FLANNEL_IPV6_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"], env
        assert "flannel.1" not in lab.exec(node, ["ip", "-o", "link"]).stdout
        assert lab.exec(node, ["ip", "-4", "route", "show", "proto", ROUTE_PROTOCOL]).stdout == ""
    views = [ipv6_view(lab, n) for n in nodes(lab)]
    for view in views:
        assert_vxlan6_device(view)
    assert ipv6_mismatches(views, "vxlan", False) == []
    pods_ping_families(lab, ("ipv6",))
    assert_unchanged(run_06(cdir, **IPV6_ONLY))


def test_back_to_dual_stack_then_ipv4_only(seg1):
    """IPv6-only -> dual-stack: the nodes get IPv4 subnets again and cni0 loses what the earlier
    lease left, so pods start; dual-stack -> IPv4-only takes every IPv6 object off."""
    lab, cdir = seg1
    dual = {**DUAL, "SERVICE_CIDR": "10.68.0.0/16,fd00:10::/108"}
    assert_ok(run_06(cdir, **dual))
    pods_ping_families(lab, ("ipv4", "ipv6"))
    assert_unchanged(run_06(cdir, **dual))
    ipv4_only = {"CLUSTER_CIDR_IPV6": ""}
    assert_ok(run_06(cdir, **ipv4_only))
    for node in nodes(lab):
        assert "flannel-v6" not in lab.exec(node, ["ip", "-o", "link"]).stdout
        assert lab.exec(node, ["ip", "-6", "route", "show", "proto", ROUTE_PROTOCOL]).stdout == ""
        assert "FLANNEL" not in lab.exec(node, ["ip6tables-save"]).stdout
        assert "FLANNEL_IPV6" not in lab.exec(node, ["cat", "/run/flannel/subnet.env"]).stdout
    pods_ping_families(lab, ("ipv4",))
    assert_unchanged(run_06(cdir, **ipv4_only))
