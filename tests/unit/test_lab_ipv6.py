"""Dual-stack lab without root: IPv6 addresses of nodes, pod IPs from CNI results, per-family pings."""

from __future__ import annotations

import ipaddress

import pytest

from ezctl import cli, reach
from ezctl import lab as labmod
from ezctl import labnet
from ezctl.labsys import LabError


@pytest.mark.parametrize("ipv4, ipv6", [
    ("198.18.0.11", "fd53:18::11"),
    ("198.18.0.12", "fd53:18::12"),
    ("198.18.1.13", "fd53:18:0:1::13"),
    ("198.18.0.1", "fd53:18::1"),
    ("198.18.1.1", "fd53:18:0:1::1"),
    ("198.18.0.210", "fd53:18::210"),
])
def test_address6_twins_the_ipv4_digits(ipv4, ipv6):
    assert labnet.address6(ipv4) == ipv6
    assert ipaddress.IPv6Address(ipv6) in labnet.LAB_NET6


@pytest.mark.parametrize("bad", ["10.0.0.1", "198.19.0.1", "fd53:18::11", "node1", ""])
def test_address6_refuses_non_lab_addresses(bad):
    with pytest.raises(LabError):
        labnet.address6(bad)


@pytest.mark.parametrize("count, segments", [(1, 1), (4, 1), (3, 2), (2, 2), (labnet.MAX_NODES, 2)])
def test_node_address6_follows_node_address(count, segments):
    seen = set()
    for index in range(1, count + 1):
        segment, ip = labnet.node_address(index, count, segments)
        segment6, ip6 = labnet.node_address6(index, count, segments)
        assert segment6 == segment
        addr = ipaddress.IPv6Address(ip6)
        # the node's /64 is its segment's: 198.18.(segment-1).0/24 ↔ fd53:18:0:(segment-1)::/64
        assert addr in ipaddress.IPv6Network(f"fd53:18:0:{segment - 1}::/64")
        assert addr in ipaddress.IPv6Interface(
            f"{labnet.address6(labnet.gateway(segment))}/{labnet.PREFIXLEN6}").network
        assert ip6.rsplit(":", 1)[1] == ip.rsplit(".", 1)[1]  # host digits kept
        seen.add(ip6)
    assert len(seen) == count


def test_node_record():
    v4 = labnet.node_record("node3", 2, "198.18.1.13", False)
    assert v4 == {"name": "node3", "ip": "198.18.1.13", "prefixlen": 24, "segment": 2,
                  "iface": "eth0", "gateway": "198.18.1.1"}
    v6 = labnet.node_record("node3", 2, "198.18.1.13", True)
    assert v6 == dict(v4, ip6="fd53:18:0:1::13", prefixlen6=64, gateway6="fd53:18:0:1::1")


def result(*addresses, version=True):
    ips = []
    for addr in addresses:
        entry = {"address": addr, "interface": 2}
        if version:
            entry["version"] = "6" if ":" in addr else "4"
        ips.append(entry)
    return {"cniVersion": "0.3.1", "ips": ips}


@pytest.mark.parametrize("res, want, primary", [
    (result("172.20.1.2/24", "fd00:20:0:1::2/64"), {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"},
     "172.20.1.2"),
    (result("fd00:20:0:1::2/64", "172.20.1.2/24", version=False),  # CNI 1.0: no version
     {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"}, "172.20.1.2"),
    (result("172.20.1.2/24"), {"ip": "172.20.1.2"}, "172.20.1.2"),
    (result("fd00:20:0:1:0:0:0:2/64"), {"ip6": "fd00:20:0:1::2"}, "fd00:20:0:1::2"),
    (result("172.20.1.2/24", "172.20.9.2/24"), {"ip": "172.20.1.2"}, "172.20.1.2"),
    (result(), {}, None),
    ({"ips": [{"address": "garbage"}]}, {}, None),
    (None, {}, None),
])
def test_pod_ips(res, want, primary):
    assert labmod.pod_ips(res) == want
    assert labmod.primary_ip(want) == primary


def test_by_family():
    assert reach.by_family("10.0.0.1") == {"ipv4": "10.0.0.1"}
    assert reach.by_family({"ip": "10.0.0.1", "ip6": "fd00::1"}) == {"ipv4": "10.0.0.1", "ipv6": "fd00::1"}
    assert reach.by_family({"ipv6": "fd00::1"}) == {"ipv6": "fd00::1"}
    assert reach.by_family(["fd00::1", "10.0.0.1", "fd00::2"]) == {"ipv6": "fd00::1", "ipv4": "10.0.0.1"}


def test_ping_matrices_per_family():
    pods = {"n1/a": {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"},
            "n2/b": {"ip": "172.20.2.2", "ip6": "fd00:20:0:2::2"},
            "n3/c": "172.20.3.2"}  # IPv4 only
    calls = []

    def ping(src, ip):
        calls.append((src, ip))
        return ip != "fd00:20:0:2::2" or src != "n3/c"
    matrices = reach.ping_matrices(ping, pods)
    assert list(matrices) == ["ipv4", "ipv6"]
    assert len(matrices["ipv4"]) == 6
    # every pod pings every other pod's IPv6 address (pods without IPv6 are no destination)
    assert sorted(matrices["ipv6"]) == [("n1/a", "n2/b"), ("n2/b", "n1/a"), ("n3/c", "n1/a"),
                                        ("n3/c", "n2/b")]
    assert matrices["ipv6"][("n3/c", "n2/b")] is False
    assert not reach.all_answered(matrices)
    assert ("n1/a", "fd00:20:0:2::2") in calls and ("n1/a", "172.20.2.2") in calls
    text = reach.format_matrices(matrices, list(pods))
    assert text.startswith("ipv4:\n") and "\n\nipv6:\n" in text and "FAIL" in text
    assert "n/a" in text.split("ipv6:")[1]  # n1/a -> n3/c has no IPv6


def test_ping_matrix_unchanged_for_ipv4_labs():
    pods = {"n1/a": "172.20.1.2", "n2/b": "172.20.2.2"}
    matrix = reach.ping_matrix(lambda src, ip: True, pods)
    assert matrix == {("n1/a", "n2/b"): True, ("n2/b", "n1/a"): True}
    assert reach.ping_matrices(lambda src, ip: True, pods) == {"ipv4": matrix}
    assert "n/a" not in reach.format_matrix(matrix, list(pods))


class FakeLab:
    def __init__(self):
        self.argvs = []

    def exec(self, target, argv, check=True):
        self.argvs.append((target, argv))

        class Proc:
            returncode = 0
            stdout = "traceroute to x\n 1  fd00:20:0:1::1  0.1 ms\n 2  *\n"
        return Proc()

    def status(self):
        return {"pods": {"node1": {"a": {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2", "result": {}}},
                         "node2": {"b": {"ip6": "fd00:20:0:2::2"}}}}


def test_ping_and_traceroute_choose_the_family():
    lab = FakeLab()
    assert reach.ping(lab, "node1/a", "fd00:20:0:2::2")
    assert reach.ping(lab, "node1/a", "172.20.2.2")
    assert reach.traceroute(lab, "node1/a", "fd00:20:0:2::2") == ["fd00:20:0:1::1", None]
    assert [argv for _t, argv in lab.argvs] == [
        ["ping", "-6", "-c", "1", "-W", "2", "fd00:20:0:2::2"],
        ["ping", "-c", "1", "-W", "2", "172.20.2.2"],
        ["traceroute", "-6", "-n", "-q", "1", "-w", "1", "-m", "6", "fd00:20:0:2::2"]]


def test_pod_addresses_and_ping_pods():
    lab = FakeLab()
    assert reach.pod_addresses(lab) == {"node1/a": {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"},
                                        "node2/b": {"ip6": "fd00:20:0:2::2"}}
    matrices = reach.ping_pods(lab)
    assert matrices == {"ipv4": {("node2/b", "node1/a"): True},
                        "ipv6": {("node1/a", "node2/b"): True, ("node2/b", "node1/a"): True}}


def test_cli_lab_up_ipv6_flag():
    parser = cli.build_parser()
    assert parser.parse_args(["lab", "up", "k1", "--ipv6"]).ipv6 is True
    assert parser.parse_args(["lab", "up", "k1"]).ipv6 is None  # keep what the lab has


@pytest.mark.parametrize("record, printed", [
    ({"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"}, "172.20.1.2 fd00:20:0:1::2\n"),
    ({"ip": "172.20.1.2"}, "172.20.1.2\n"),
    ({"ip6": "fd00:20:0:1::2"}, "fd00:20:0:1::2\n"),
])
def test_cli_pod_add_prints_both(monkeypatch, capsys, record, printed):
    monkeypatch.setattr(labmod.Lab, "pod_add", lambda self, node, pod: labmod.primary_ip(record))
    monkeypatch.setattr(labmod.Lab, "pod_addresses", lambda self, node, pod: dict(record))
    assert cli.main(["lab", "pod", "add", "k1", "node1", "p1"]) == 0
    assert capsys.readouterr().out == printed


def test_cli_status_shows_ipv6(monkeypatch, capsys):
    status = {"name": "k1", "dir": "/run/kubeasz-lab/k1", "up": True, "segments": 2, "ipv6": True,
              "nodes": [{"name": "node1", "ip": "198.18.0.11", "ip6": "fd53:18::11", "segment": 1,
                         "present": True}],
              "pods": {"node1": {"a": {"ip": "172.20.1.2", "ip6": "fd00:20:0:1::2"}}}}
    monkeypatch.setattr(labmod.Lab, "status", lambda self: status)
    assert cli.main(["lab", "status", "k1"]) == 0
    out = capsys.readouterr().out
    assert "2 segment(s), IPv6)" in out
    assert "fd53:18::11" in out and "a=172.20.1.2,fd00:20:0:1::2" in out
