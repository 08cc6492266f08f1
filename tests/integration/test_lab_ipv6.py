"""The namespace lab with IPv6 (ezctl lab up --ipv6, issue 16): needs root; never touches the host's
network namespace (its links and IPv6 sysctls are compared before and after)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess

import pytest

from ezctl import cli, reach
from ezctl.lab import Lab
from ezctl.labsys import LabError, mounts

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

_seq = itertools.count()

# what the flannel role's conflist holds for a dual-stack cluster: one host-local range per family
CONFLIST6 = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "mtu": 1450, "isGateway": True,
         "isDefaultGateway": True, "hairpinMode": True, "ipMasq": False,
         "ipam": {"type": "host-local",
                  "ranges": [[{"subnet": "172.20.1.0/24"}], [{"subnet": "fd00:20:0:1::/64"}]],
                  "routes": [{"dst": "172.20.0.0/16"}, {"dst": "fd00:20::/56"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
HOST_SYSCTLS = ("net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding",
                "net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad",
                "net.ipv4.ip_forward")


def unique_name(tag: str) -> str:
    return f"it6-{tag}-{os.getpid()}-{next(_seq)}"


def host_netns() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout.split()


def host_view() -> dict:
    """The host's links and IPv6 sysctls: the lab must leave them as they are."""
    links = json.loads(subprocess.run(["ip", "-json", "link", "show"], capture_output=True,
                                      text=True, check=True).stdout)
    sysctls = subprocess.run(["sysctl", "-n", *HOST_SYSCTLS], capture_output=True, text=True,
                             check=True).stdout.split()
    return {"links": sorted(link["ifname"] for link in links),
            "sysctls": dict(zip(HOST_SYSCTLS, sysctls))}


def assert_gone(lab: Lab) -> None:
    prefix = str(lab.dir)
    assert not [m for m in mounts() if m == prefix or m.startswith(prefix + "/")]
    assert not lab.dir.exists()
    assert host_netns() == []


@pytest.fixture(scope="module")
def host_before():
    return host_view()


@pytest.fixture
def make_lab(host_before):
    labs = []

    def make(tag="lab"):
        lab = Lab(unique_name(tag))
        labs.append(lab)
        return lab
    yield make
    for lab in labs:
        lab.down()
        assert_gone(lab)
    assert host_view() == host_before


@pytest.fixture(scope="module")
def lab6(host_before):
    """Three nodes, two segments, IPv6: node1, node2 on fd53:18::/64, node3 on fd53:18:0:1::/64."""
    lab = Lab(unique_name("seg"))
    try:
        lab.up(nodes=3, segments=2, ipv6=True)
        assert host_view() == host_before
        yield lab
    finally:
        lab.down()
        assert_gone(lab)
    assert host_view() == host_before


def addrs6(lab, target, dev="eth0"):
    """{address: flags} of the global IPv6 addresses of dev in a node or node/pod."""
    out = json.loads(lab.exec(target, ["ip", "-6", "-json", "addr", "show", "dev", dev]).stdout)
    found = {}
    for link in out:
        for info in link.get("addr_info", []):
            if info.get("scope") == "global":
                found[f"{info['local']}/{info['prefixlen']}"] = sorted(
                    k for k in ("tentative", "dadfailed", "nodad") if info.get(k))
    return found


def test_state_and_addressing(lab6):
    state = lab6.load_state()
    assert state["ipv6"] is True and lab6.status()["ipv6"] is True
    assert [(n["name"], n["ip"], n["ip6"], n["gateway6"], n["segment"]) for n in state["nodes"]] == [
        ("node1", "198.18.0.11", "fd53:18::11", "fd53:18::1", 1),
        ("node2", "198.18.0.12", "fd53:18::12", "fd53:18::1", 1),
        ("node3", "198.18.1.13", "fd53:18:0:1::13", "fd53:18:0:1::1", 2)]
    for node in state["nodes"]:
        # next to the IPv4 address, usable at once (no DAD)
        assert addrs6(lab6, node["name"]) == {f"{node['ip6']}/64": ["nodad"]}
        assert f"{node['ip']}/24" in lab6.exec(node["name"], ["ip", "-br", "addr", "show",
                                                              "eth0"]).stdout
    assert "default via fd53:18:0:1::1 dev eth0" in lab6.exec(
        "node3", ["ip", "-6", "route", "show", "default"]).stdout
    assert addrs6(lab6, "fabric", "seg1") == {"fd53:18::1/64": ["nodad"]}
    assert addrs6(lab6, "fabric", "seg2") == {"fd53:18:0:1::1/64": ["nodad"]}
    fabric = lab6.exec("fabric", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout
    assert fabric.strip() == "1"
    node = lab6.exec("node1", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout
    assert node.strip() == "0"  # a node forwards only what flannel later asks for


def test_underlay_ipv6_all_pairs(lab6):
    nodes = {n["name"]: n["ip6"] for n in lab6.load_state()["nodes"]}
    answered = {(src, dst): reach.ping(lab6, src, ip) for src in nodes for dst, ip in nodes.items()
                if src != dst}
    assert all(answered.values()), answered
    same = lab6.exec("node1", ["ping", "-6", "-c", "1", "-W", "2", "fd53:18::12"]).stdout
    assert "ttl=64" in same
    routed = lab6.exec("node1", ["ping", "-6", "-c", "1", "-W", "2", "fd53:18:0:1::13"]).stdout
    assert "hlim=63" in routed or "ttl=63" in routed  # one hop through the fabric
    assert reach.traceroute(lab6, "node3", "fd53:18::11") == ["fd53:18:0:1::1", "fd53:18::11"]


def test_up_again_keeps_ipv6(lab6):
    addrs = {n: addrs6(lab6, n) for n in ("node1", "node3")}
    again = lab6.up(nodes=3, segments=2)  # ipv6 not given: what the lab has
    assert again["ipv6"] is True and again["nodes"][2]["ip6"] == "fd53:18:0:1::13"
    assert {n: addrs6(lab6, n) for n in addrs} == addrs
    with pytest.raises(LabError, match="with IPv6: run ezctl lab down"):
        lab6.up(nodes=3, segments=2, ipv6=False)


def test_dual_stack_pods(lab6):
    lab6.exec("node1", ["/bin/sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
              input=json.dumps(CONFLIST6))
    ip_a = lab6.pod_add("node1", "a")
    ip_b = lab6.pod_add("node1", "b")
    try:
        assert ip_a.startswith("172.20.1.") and ip_b.startswith("172.20.1.")  # primary: IPv4
        pods = {f"node1/{p}": lab6.pod_addresses("node1", p) for p in ("a", "b")}
        assert [pods["node1/a"]["ip"], pods["node1/b"]["ip"]] == [ip_a, ip_b]
        assert all(v["ip6"].startswith("fd00:20:0:1::") for v in pods.values())
        record = lab6.load_state()["pods"]["node1"]["a"]
        assert (record["ip"], record["ip6"]) == (ip_a, pods["node1/a"]["ip6"])
        assert addrs6(lab6, "node1/a") == {f"{pods['node1/a']['ip6']}/64": []}  # not tentative
        assert "default via fd00:20:0:1::1" in lab6.exec("node1/a", ["ip", "-6", "route"]).stdout
        # same node, over cni0: each family
        matrices = reach.ping_matrices(lambda src, ip: reach.ping(lab6, src, ip), pods)
        assert list(matrices) == ["ipv4", "ipv6"]
        assert reach.all_answered(matrices), reach.format_matrices(matrices, list(pods))
        assert reach.ping_pods(lab6) == matrices
        assert reach.ping(lab6, "node1/a", "fd00:20:0:1::1")  # the gateway on cni0
    finally:
        lab6.pod_del("node1", "a")
    leases = lab6.exec("node1", ["ls", "/var/lib/cni/networks/cbr0"]).stdout.split()
    assert ip_a not in leases and pods["node1/a"]["ip6"] not in leases  # both released
    assert ip_b in leases and pods["node1/b"]["ip6"] in leases
    lab6.pod_del("node1", "b")


def test_node_add_gets_ipv6(make_lab):
    lab = make_lab("add")
    lab.up(nodes=2, ipv6=True)
    name, ip = lab.node_add(segment=2)  # makes seg2 on the running fabric
    assert (name, ip) == ("node3", "198.18.1.13")
    node = lab.load_state()["nodes"][-1]
    assert (node["ip6"], node["gateway6"]) == ("fd53:18:0:1::13", "fd53:18:0:1::1")
    assert addrs6(lab, "fabric", "seg2") == {"fd53:18:0:1::1/64": ["nodad"]}
    assert reach.ping(lab, "node3", "fd53:18::11") and reach.ping(lab, "node1", "fd53:18:0:1::13")
    lab.node_del("node3")
    assert [n["name"] for n in lab.load_state()["nodes"]] == ["node1", "node2"]


def test_ipv4_lab_has_no_ipv6(make_lab):
    lab = make_lab("v4")
    state = lab.up(nodes=1)
    assert state["ipv6"] is False and "ip6" not in state["nodes"][0]
    assert addrs6(lab, "node1") == {}
    # a dual-stack conflist still works at once: the node's cni0 skips DAD
    lab.exec("node1", ["/bin/sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
             input=json.dumps(CONFLIST6))
    lab.pod_add("node1", "p")
    assert list(addrs6(lab, "node1", "cni0").values()) == [[]]
    assert reach.ping(lab, "node1/p", "fd00:20:0:1::1")


def test_cli_up_ipv6_and_down_with_pods(make_lab, tmp_path, capsys):
    lab = make_lab("cli")
    assert cli.main(["--base", str(tmp_path), "lab", "up", lab.name, "--nodes", "2", "--ipv6"]) == 0
    out = capsys.readouterr().out
    assert "node1\t198.18.0.11/24\tfd53:18::11/64\tsegment 1" in out
    hosts = (tmp_path / "clusters" / lab.name / "hosts").read_text()
    assert "kubeasz_node_ip=198.18.0.12 kubeasz_node_ip6=fd53:18::12 " in hosts
    assert 'CLUSTER_CIDR_IPV6="fd00:20::/56"' in hosts
    lab.exec("node2", ["/bin/sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
             input=json.dumps(CONFLIST6))
    assert cli.main(["lab", "pod", "add", lab.name, "node2", "p1"]) == 0
    ip4, ip6 = capsys.readouterr().out.split()
    assert ip4.startswith("172.20.1.") and ip6.startswith("fd00:20:0:1::")
    assert cli.main(["lab", "status", lab.name]) == 0
    assert f"p1={ip4},{ip6}" in capsys.readouterr().out
    assert cli.main(["lab", "down", lab.name]) == 0
    assert_gone(lab)
