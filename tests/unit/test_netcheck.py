"""ezctl net check's pure logic (module_utils/check): capacity, public IPs, rule backends, the
per-pair verdicts, the matrix and the SVG, and the node-side probes with a fake runner."""
from __future__ import annotations

import json
import socket
import struct

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.check import probe, render, verdict
from ansible_collections.kubeasz.network.plugins.module_utils.check.capacity import capacity
from ansible_collections.kubeasz.network.plugins.module_utils.check.settings import check_settings, path_mtu

NET_CONF = {"Network": "172.20.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1}}
NODES = ("n1", "n2", "n3")


def net_conf(**kw):
    return dict(NET_CONF, **kw)


# --------------------------------------------------------------------------- capacity
@pytest.mark.parametrize("network, subnet_len, nodes, severity, free", [
    ("172.20.0.0/16", 24, 4, "ok", 251),      # SubnetMin is the second subnet: 255 subnets
    ("172.20.0.0/16", 21, 20, "ok", 11),
    ("172.20.0.0/16", 21, 31, "warn", 0),     # 31 of /21 subnets (flannel #875's 32 minus the first)
    ("172.20.0.0/16", 21, 32, "fail", -1),
    ("172.20.0.0/22", 24, 4, "fail", -1),     # one subnet short
    ("172.20.0.0/22", 24, 3, "warn", 0),
])
def test_capacity_stops_when_short_and_warns_under_20_percent(network, subnet_len, nodes, severity, free):
    (entry,) = capacity(net_conf(Network=network, SubnetLen=subnet_len), nodes)
    assert (entry["severity"], entry["free"]) == (severity, free)
    if severity == "fail":
        assert "%d short" % -free in entry["cause"] and "flannel #875" in entry["fix"]


def test_capacity_counts_each_family():
    conf = net_conf(EnableIPv6=True, IPv6Network="fd00:20::/120", IPv6SubnetLen=122)
    by_family = {c["family"]: c for c in capacity(conf, 4)}
    assert by_family["ipv6"]["subnets"] == 3 and by_family["ipv6"]["severity"] == "fail"
    assert by_family["ipv4"]["severity"] == "ok"


# --------------------------------------------------------------------------- public IPs, rules
def fact(node, ip, **kw):
    base = {"node": node, "iface": "eth0", "public_ip": ip, "public_ip6": None, "candidates": [ip],
            "candidates6": [], "deployed": False, "rules": {}, "path_mtu": {"ipv4": 1500},
            "subnet": None, "device_ips": {}, "pod_ips": {}}
    base.update(kw)
    return base


def test_duplicate_public_ips_name_the_nodes():
    facts = {"n1": fact("n1", "10.0.2.15"), "n2": fact("n2", "10.0.2.15"), "n3": fact("n3", "10.0.2.16")}
    (dup,) = [f for f in verdict.public_ip_findings(facts) if f["severity"] == "fail"]
    assert dup["nodes"] == ["n1", "n2"] and "10.0.2.15" in dup["cause"] and "FLANNEL_IFACE" in dup["fix"]


def test_an_interface_with_several_addresses_is_named():
    facts = {"n1": fact("n1", "10.0.0.1", candidates=["10.0.0.1", "10.0.0.9"])}
    (warn,) = verdict.public_ip_findings(facts)
    assert warn["severity"] == "warn" and "eth0" in warn["cause"] and "10.0.0.9" in warn["cause"]


def test_no_interface_is_a_failure_of_that_node():
    facts = {"n1": {"node": "n1", "error": "no default route: set FLANNEL_IFACE"}}
    (bad,) = verdict.public_ip_findings(facts)
    assert bad["nodes"] == ["n1"] and bad["severity"] == "fail"


def test_rules_in_both_backends_and_forward_drop():
    both = {"legacy": {"rules": 2, "forward_drop": False, "ours": False},
            "nft": {"rules": 5, "forward_drop": True, "ours": False}}
    facts = {"n1": fact("n1", "10.0.0.1", rules=both, deployed=True),
             "n2": fact("n2", "10.0.0.2", rules={"nft": {"rules": 3, "forward_drop": True, "ours": False}}),
             "n3": fact("n3", "10.0.0.3", rules={"nft": {"rules": 3, "forward_drop": True, "ours": True}})}
    found = [(f["nodes"], f["severity"], "legacy" in f["cause"]) for f in verdict.rule_findings(facts)]
    # n1: split backends and (deployed) FORWARD DROP; n2 not deployed yet: a warning; n3 has our rules
    assert found == [(["n1"], "fail", True), (["n1"], "fail", False), (["n2"], "warn", False)]


def test_rule_backends_reads_both_save_tools():
    outputs = {"iptables-legacy-save": (0, "", ""),
               "iptables-nft-save": (0, "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m comment --comment "
                                        "\"flanneld forward\" -j FLANNEL-FWD\nCOMMIT\n", "")}

    def run(argv, data=None):
        return outputs[argv[0]]
    assert probe.rule_backends(run) == {"legacy": {"rules": 0, "forward_drop": False, "ours": False},
                                        "nft": {"rules": 1, "forward_drop": True, "ours": True}}


def test_rule_backends_reads_ip6tables_where_ipv6_is_on():
    nft = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j FLANNEL-FWD\nCOMMIT\n"
    outputs = {"iptables-legacy-save": (0, "", ""), "iptables-nft-save": (0, nft, ""),
               "ip6tables-legacy-save": (0, "*filter\n:FORWARD DROP [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n", ""),
               "ip6tables-nft-save": (0, nft, "")}
    asked = []

    def run(argv, data=None):
        asked.append(argv[0])
        return outputs[argv[0]]
    assert set(probe.rule_backends(run, (IPV4,))) == {"legacy", "nft"}
    assert asked == ["iptables-legacy-save", "iptables-nft-save"]
    assert probe.rule_backends(run, (IPV4, IPV6)) == {
        "legacy": {"rules": 0, "forward_drop": False, "ours": False},
        "nft": {"rules": 1, "forward_drop": False, "ours": True},
        "legacy6": {"rules": 1, "forward_drop": True, "ours": False},
        "nft6": {"rules": 1, "forward_drop": False, "ours": True}}


def test_ip6tables_split_and_forward_drop_are_named_with_their_tools():
    rules = {"legacy": {"rules": 0, "forward_drop": False, "ours": False},
             "nft": {"rules": 3, "forward_drop": False, "ours": True},
             "legacy6": {"rules": 1, "forward_drop": True, "ours": False},
             "nft6": {"rules": 3, "forward_drop": False, "ours": True}}
    found = verdict.rule_findings({"n1": fact("n1", "10.0.0.1", rules=rules, deployed=True)})
    assert [(f["nodes"], f["severity"]) for f in found] == [(["n1"], "fail"), (["n1"], "fail")]
    assert "ip6tables-legacy holds 1 rules and ip6tables-nft 3" in found[0]["cause"]
    assert "ip6tables-legacy-save | ip6tables-nft-restore" in found[0]["fix"]
    assert "FORWARD policy DROP (ip6tables-legacy)" in found[1]["cause"]


# --------------------------------------------------------------------------- pairs
def rec(peer, **layers):
    base = {"peer": peer, "family": "ipv4", "target": "10.0.0.%s" % peer[-1], "notes": {}, "size": 1472,
            "underlay": True, "mtu": True, "onlink": True, "direct": False, "overlay": True, "pod": True,
            "pod_src": "172.20.1.2", "pod_dst": "172.20.2.2"}
    base.update(layers)
    return base


def healthy():
    facts = dict((n, fact(n, "10.0.0.%s" % n[-1], deployed=True, subnet="172.20.%s.0/24" % n[-1]))
                 for n in NODES)
    probes = dict((n, {"pairs": [rec(p) for p in NODES if p != n], "egress": {}}) for n in NODES)
    heard = dict((n, ["10.0.0.%s" % p[-1] for p in NODES if p != n]) for n in NODES)
    return facts, probes, heard


def run_report(facts, probes, heard, nodes=3, conf=None, ip_masq=True):
    conf = conf or NET_CONF
    params = verdict.report_params(conf, facts, ip_masq)
    return verdict.report(facts, probes, heard, conf, nodes, params), params


def test_healthy_cluster_passes_every_layer():
    rep, params = run_report(*healthy())
    assert rep["ok"] and rep["failed"] == [] and rep["findings"] == []
    assert all(set(p["layers"].values()) == {"pass"} for p in rep["pairs"])
    assert [p["nodes"] for p in rep["pairs"]] == [["n1", "n2"], ["n1", "n3"], ["n2", "n3"]]
    assert "every pair passes every layer" in render.text("c1", rep, params)


def test_udp_dropped_one_way_names_that_pair_and_transport_only():
    facts, probes, heard = healthy()
    heard["n2"] = ["10.0.0.3"]  # n2 never heard n1
    probes["n1"]["pairs"][0].update(overlay=False, pod=False)  # consequences, not the cause
    rep, params = run_report(facts, probes, heard)
    assert rep["failed"] == ["n1-n2 transport (ipv4)"]
    (f,) = rep["findings"]
    assert "UDP port 8472" in f["cause"] and "from n1 to n2 only" in f["cause"] and "FLANNEL_PORT" in f["fix"]
    pair = rep["pairs"][0]
    assert pair["failed"] == "transport" and pair["layers"]["underlay"] == "pass"
    matrix = render.text("c1", rep, params)
    assert "TRANSPORT" in matrix and "FAIL n1-n2 transport (ipv4)" in matrix


def test_mtu_failure_names_sizes_and_fix():
    facts, probes, heard = healthy()
    probes["n3"]["pairs"][0]["mtu"] = False  # n3 -> n1
    rep, _params = run_report(facts, probes, heard)
    assert rep["failed"] == ["n1-n3 mtu (ipv4)"]
    assert "1500-byte packet" in rep["findings"][0]["cause"] and "FLANNEL_MTU 1450 + 50" in rep["findings"][0]["cause"]


def test_listener_unknown_skips_transport_not_fails():
    facts, probes, _heard = healthy()
    rep, _params = run_report(facts, probes, {})
    assert rep["ok"] and {p["layers"]["transport"] for p in rep["pairs"]} == {"skip"}


def test_host_gw_transport_is_on_link():
    facts, probes, _heard = healthy()
    probes["n1"]["pairs"][1].update(onlink=False, via="10.0.0.254", direct=True)
    conf = net_conf(Backend={"Type": "host-gw"})
    rep, _params = run_report(facts, probes, None, conf=conf)
    assert rep["failed"] == ["n1-n3 transport (ipv4)"]
    assert "not on-link" in rep["findings"][0]["cause"] and "DIRECT_ROUTING" in rep["findings"][0]["fix"]


def test_before_deploy_layers_needing_flannel_are_skipped():
    facts, probes, heard = healthy()
    for n in NODES:
        facts[n]["deployed"] = False
        for r in probes[n]["pairs"]:
            r.pop("overlay"), r.pop("pod")
    rep, params = run_report(facts, probes, heard)
    assert rep["ok"] and rep["not_deployed"] == list(NODES) and "pod" in rep["skipped_layers"]
    assert "overlay skipped" in render.text("c1", rep, params)


def test_egress_failure_says_masquerade_is_off():
    facts, probes, heard = healthy()
    probes["n2"]["egress"] = {"ipv4": {"ok": False, "src": "172.20.2.2", "target": "198.18.0.1"}}
    rep, _params = run_report(facts, probes, heard, ip_masq=False)
    assert rep["failed"] == ["n2 egress (ipv4)"] and "FLANNEL_IPMASQ is false" in rep["findings"][0]["cause"]


def test_capacity_short_fails_the_report():
    facts, probes, heard = healthy()
    rep, _params = run_report(facts, probes, heard, nodes=4, conf=net_conf(Network="172.20.0.0/22"))
    assert rep["failed"] == ["cluster capacity (ipv4)"]


def test_svg_marks_the_failing_pair():
    facts, probes, heard = healthy()
    heard["n3"] = ["10.0.0.1"]
    rep, _params = run_report(facts, probes, heard)
    drawing = render.svg("c1", rep)
    assert drawing.startswith("<svg") and drawing.count('stroke="#c0392b"') == 1
    assert "transport ipv4" in drawing and "FAILED: n2-n3 transport" in drawing


def test_report_is_json():
    rep, _params = run_report(*healthy())
    assert json.loads(json.dumps(rep)) == rep


# --------------------------------------------------------------------------- node side
def test_settings_and_path_mtu():
    s = check_settings(net_conf(EnableIPv6=True, IPv6Network="fd00:20::/56"))
    assert s["families"] == ["ipv4", "ipv6"] and s["port"] == 8472
    assert path_mtu(s, 1500) == {"ipv4": 1500, "ipv6": 1500}
    assert path_mtu(s, 1500, {"ipv4": 1400}) == {"ipv4": 1450, "ipv6": 1500}
    hostgw = check_settings(net_conf(Backend={"Type": "host-gw"}))
    assert path_mtu(hostgw, 9000) == {"ipv4": 9000}


def udp4(src, dst, dport, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def test_parse_udp_ipv4_and_ipv6():
    assert probe.parse_udp(bytearray(udp4("10.0.0.1", "10.0.0.2", 8472, b"x")), 8472) == ("10.0.0.1", b"x")
    assert probe.parse_udp(bytearray(udp4("10.0.0.1", "10.0.0.2", 53, b"x")), 8472) is None
    v6 = struct.pack("!IHBB16s16s", 6 << 28, 9, 17, 64, socket.inet_pton(socket.AF_INET6, "fd00::1"),
                     socket.inet_pton(socket.AF_INET6, "fd00::2")) + struct.pack("!HHHH", 1, 8472, 9, 0) + b"y"
    assert probe.parse_udp(bytearray(v6), 8472) == ("fd00::1", b"y")


class FakeSocket:
    def __init__(self, packets):
        self.packets, self.closed = list(packets), False

    def settimeout(self, value):
        pass

    def recvfrom(self, size):
        if not self.packets:
            raise socket.timeout()
        return self.packets.pop(0)

    def close(self):
        self.closed = True


def test_listener_stops_when_every_peer_was_heard():
    token = "42"
    packets = [(udp4("10.0.0.2", "10.0.0.1", 8472, probe.datagram(token, "n2")), ("eth0", 8, 0)),
               (udp4("10.0.0.9", "10.0.0.1", 8472, probe.datagram("other", "x")), ("eth0", 8, 0)),
               (udp4("10.0.0.1", "10.0.0.3", 8472, probe.datagram(token, "n1")), ("eth0", 8, 4)),  # outgoing
               (udp4("10.0.0.3", "10.0.0.1", 8472, probe.datagram(token, "n3")), ("eth0", 8, 0))]
    sock = FakeSocket(packets)
    heard = probe.listen({"token": token, "expect": ["10.0.0.2", "10.0.0.3"], "timeout": 5}, sock=sock)
    assert heard == ["10.0.0.2", "10.0.0.3"] and sock.closed


def test_listener_stops_on_the_stop_datagram_and_at_the_timeout():
    stop = probe.MAGIC + b"7 " + probe.STOP
    sock = FakeSocket([(udp4("127.0.0.1", "127.0.0.1", 8472, stop), ("lo", 8, 0))])
    assert probe.listen({"token": "7", "expect": ["10.0.0.2"], "timeout": 5}, sock=sock) == []
    ticks = iter([0, 0, 0.5, 2, 3])
    assert probe.listen({"token": "7", "timeout": 1}, sock=FakeSocket([]), clock=lambda: next(ticks)) == []


class FakeNode:
    """A runner answering ip -json, ping and route get like a node of a healthy VXLAN cluster,
    except for the targets in ``down``."""

    def __init__(self, down=()):
        self.down, self.calls = set(down), []

    def __call__(self, argv, data=None):
        self.calls.append(list(argv))
        if argv[:2] == ["ip", "-json"] and argv[2] == "addr":
            return 0, json.dumps([
                {"ifname": "eth0", "mtu": 1500, "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]},
                {"ifname": "flannel.1", "mtu": 1450,
                 "addr_info": [{"family": "inet", "local": "172.20.1.0", "prefixlen": 32}]}]), ""
        if argv[:3] == ["ip", "-4", "-json"]:
            return 0, json.dumps([{"dst": "default", "gateway": "10.0.0.254", "dev": "eth0"}]), ""
        if argv[:3] == ["ip", "-json", "netns"]:
            return 0, json.dumps([{"name": "pod1"}]), ""
        if argv[:2] == ["ip", "-n"]:
            return 0, json.dumps([{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "172.20.1.2"}]}]), ""
        if "-batch" in argv:
            with open(argv[-1]) as handle:
                targets = [line.split()[-1] for line in handle]
            return 0, "\n".join(json.dumps([{"dst": t, "dev": "flannel.1", "gateway": "172.20.2.0"}
                                            if t.startswith("172.") else {"dst": t, "dev": "eth0"}])
                                for t in targets), ""
        if "ping" in argv:
            return (1 if argv[-1] in self.down else 0), "", ""
        if argv[0].endswith("-save"):
            return 0, "", ""
        raise AssertionError(argv)


def test_node_facts_read_what_flannel_will_use():
    env = "FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    facts = probe.node_facts(FakeNode(), lambda path: env, {"node": "n1", "net_conf": NET_CONF})
    assert (facts["iface"], facts["public_ip"], facts["mtu"]) == ("eth0", "10.0.0.1", 1500)
    assert facts["deployed"] and facts["subnet"] == "172.20.1.0/24" and facts["path_mtu"] == {"ipv4": 1500}
    assert facts["pod"] == "pod1" and facts["pod_ips"] == {"ipv4": "172.20.1.2"}
    assert facts["outside"]["ipv4"] == "10.0.0.254" and facts["device_ips"] == {"ipv4": "172.20.1.0"}


def test_probe_pings_with_df_at_the_path_mtu_and_reports_each_layer():
    node = FakeNode(down={"172.20.2.2"})
    own = {"node": "n1", "deployed": True, "pod": "pod1", "pod_ips": {"ipv4": "172.20.1.2"},
           "path_mtu": {"ipv4": 1500}, "outside": {"ipv4": "10.0.0.254"}}
    peer = {"node": "n2", "public_ip": "127.0.0.2", "deployed": True, "subnet": "172.20.2.0/24",
            "device_ips": {"ipv4": "172.20.2.0"}, "pod_ips": {"ipv4": "172.20.2.2"}}
    out = probe.probe(node, own, [peer], {"net_conf": NET_CONF, "token": "1"})
    (res,) = out["pairs"]
    assert [res[k] for k in ("underlay", "mtu", "overlay", "pod")] == [True, True, True, False]
    assert ["ping", "-n", "-q", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", "127.0.0.2"] in node.calls
    assert out["egress"] == {"ipv4": {"ok": True, "src": "172.20.1.2", "target": "10.0.0.254"}}
    assert not any(word in call for call in node.calls for word in ("add", "del", "replace", "-P", "-A"))
