"""Pod egress in the real kernel: flanneld's masquerade and forward rules (traffic_rules) on a
lab of two nodes, step 06 with the ansible dataplane, one lab for the whole file.

The lab's fabric (198.18.0.1) has no route to the pod network, so a pod's ping is answered only
when the node masquerades it; tcpdump in the fabric shows the source. Every iptables/nft command
runs inside the lab's namespaces; the host's own rules are compared before and after.
"""
from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import time

import pytest

from ezctl import reach

from labplay import assert_ok, assert_unchanged, lab_cluster, pods_ping, recap, run_06
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import parse_subnet_env

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

NODES = ("node1", "node2")
OUTSIDE = "198.18.0.1"  # the fabric: no route back to the pods
NETWORK = "172.20.0.0/16"
HEAL_WITHIN = 2.0
NFT_LIST = ["nft", "list", "table", "ip", "flannel-ipv4"]


def host_rules() -> tuple[str, str]:
    """The host's own iptables and nft rule sets (read only), without iptables-save's dates."""
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    return re.sub(r"(?m)^#.*\n", "", saved), nft


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes networked by 06 (iptables mode) with a pod each; the host's rules must not move."""
    before = host_rules()
    with lab_cluster("masq", tmp_path_factory.mktemp("base"), nodes=len(NODES)) as (lab, cdir):
        assert_ok(run_06(cdir))
        pods = {f"{node}/m-{node}": lab.pod_add(node, f"m-{node}") for node in NODES}
        yield lab, cdir, pods
    assert host_rules() == before, "the host's own iptables/nft rules changed"


def node_exec(lab, node: str, *argv: str) -> str:
    return lab.exec(node, list(argv)).stdout


def subnet(lab, node: str) -> str:
    env = parse_subnet_env(node_exec(lab, node, "cat", "/run/flannel/subnet.env"))
    return str(ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network)


def node_ip(lab, node: str) -> str:
    return next(n["ip"] for n in lab.status()["nodes"] if n["name"] == node)


def ours(saved: str) -> list[str]:
    """Our lines in iptables-save output (chains, jumps, rules)."""
    return [line for line in saved.splitlines() if "FLANNEL-" in line or "flanneld" in line]


def expected_iptables(own: str, random_fully: bool = True) -> list[str]:
    masq, fwd, c = '-m comment --comment "flanneld masq"', '-m comment --comment "flanneld forward"', NETWORK
    rnd = " --random-fully" if random_fully else ""
    return [":FLANNEL-FWD - [0:0]",
            f"-A FORWARD {fwd} -j FLANNEL-FWD",
            f"-A FLANNEL-FWD -s {c} {fwd} -j ACCEPT",
            f"-A FLANNEL-FWD -d {c} {fwd} -j ACCEPT",
            ":FLANNEL-POSTRTG - [0:0]",
            f"-A POSTROUTING {masq} -j FLANNEL-POSTRTG",
            f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {own} -d {c} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {c} -d {own} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG ! -s {c} -d {own} {masq} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {c} ! -d 224.0.0.0/4 {masq} -j MASQUERADE{rnd}",
            f"-A FLANNEL-POSTRTG ! -s {c} -d {c} {masq} -j MASQUERADE{rnd}"]


def sources_seen(lab, where: str, iface: str, bpf: str, action) -> list[str]:
    """Source IPs of the packets tcpdump sees in `where` (fabric, node or node/pod) during action()."""
    node, _sep, pod = where.partition("/")
    argv = lab.nsenter_argv(node) + (["ip", "netns", "exec", pod] if pod else [])
    argv += ["tcpdump", "-n", "-l", "-i", iface, "-c", "1", bpf]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # capturing starts once tcpdump says so
            if "listening on" in line:
                break
        action()
        out, _err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return re.findall(r"IP (\d+\.\d+\.\d+\.\d+) > ", out)


def pod_pings_outside(lab, pod: str) -> list[str]:
    """The sources the fabric sees while `pod` pings it; the ping must be answered."""
    return sources_seen(lab, "fabric", "any", f"icmp and dst host {OUTSIDE}",
                        lambda: assert_ping(lab, pod, OUTSIDE))


def assert_ping(lab, src: str, ip: str) -> None:
    assert reach.ping(lab, src, ip), f"{src} cannot ping {ip}"


def wait_healed(lab, node: str, argv: list, want) -> float:
    """Seconds until want(stdout of argv in node) holds; fails after HEAL_WITHIN * 5."""
    start = time.monotonic()
    while not want(node_exec(lab, node, *argv)):
        assert time.monotonic() - start < HEAL_WITHIN * 5, lab.exec(
            node, ["cat", "/run/flannel/route-guard.log"], check=False).stdout
        time.sleep(0.05)
    return time.monotonic() - start


def test_pods_reach_the_outside_with_the_node_ip(cluster, capsys):
    lab, _cdir, pods = cluster
    for target in pods:
        node = target.partition("/")[0]
        assert ours(node_exec(lab, node, "iptables-save")) == expected_iptables(subnet(lab, node))
        assert pod_pings_outside(lab, target) == [node_ip(lab, node)]
    with capsys.disabled():
        print("\n[traffic rules] node1 iptables-save (ours):\n  " + "\n  ".join(
            ours(node_exec(lab, "node1", "iptables-save"))))


def test_pod_to_pod_keeps_the_pod_ip(cluster):
    lab, _cdir, pods = cluster
    (src, src_ip), (dst, dst_ip) = pods.items()
    seen = sources_seen(lab, dst, "eth0", f"icmp and src host {src_ip}", lambda: assert_ping(lab, src, dst_ip))
    assert seen == [src_ip]


def test_pods_ping_with_forward_policy_drop(cluster):
    lab = cluster[0]
    for node in NODES:
        node_exec(lab, node, "iptables", "-P", "FORWARD", "DROP")
    try:
        pods_ping(lab)
        assert_ping(lab, next(iter(cluster[2])), OUTSIDE)
    finally:
        for node in NODES:
            node_exec(lab, node, "iptables", "-P", "FORWARD", "ACCEPT")


def test_rerun_unchanged_and_check_mode_shows_the_rules(cluster):
    lab, cdir, _pods = cluster
    assert_unchanged(run_06(cdir))
    saved = {node: ours(node_exec(lab, node, "iptables-save")) for node in NODES}
    check = run_06(cdir, "--check", "--diff", FLANNEL_IPMASQ=False)
    assert_ok(check)
    assert all(c["changed"] > 0 for c in recap(check).values()), check.stdout
    assert re.search(r"^-(-A FLANNEL-POSTRTG .*MASQUERADE --random-fully)$", check.stdout, re.M), check.stdout
    assert {node: ours(node_exec(lab, node, "iptables-save")) for node in NODES} == saved


def test_a_flushed_chain_heals_by_itself(cluster, capsys):
    lab = cluster[0]
    want = expected_iptables(subnet(lab, "node1"))
    node_exec(lab, "node1", "iptables", "-t", "nat", "-F", "FLANNEL-POSTRTG")
    elapsed = wait_healed(lab, "node1", ["iptables-save"], lambda out: ours(out) == want)
    node_exec(lab, "node2", "iptables", "-D", "FORWARD", "-m", "comment", "--comment", "flanneld forward",
              "-j", "FLANNEL-FWD")
    elapsed2 = wait_healed(lab, "node2", ["iptables-save"], lambda out: ours(out) == expected_iptables(
        subnet(lab, "node2")))
    with capsys.disabled():
        print(f"\n[traffic rules] healed {elapsed:.3f} s after iptables -t nat -F FLANNEL-POSTRTG, "
              f"{elapsed2:.3f} s after the FORWARD jump was deleted")
    assert elapsed < HEAL_WITHIN and elapsed2 < HEAL_WITHIN
    assert "restored the traffic rules" in node_exec(lab, "node1", "cat", "/run/flannel/route-guard.log")


def test_nftables_mode(cluster, capsys):
    lab, cdir, pods = cluster
    assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
    for target in pods:
        node = target.partition("/")[0]
        assert ours(node_exec(lab, node, "iptables-save")) == []
        assert "masquerade fully-random" in node_exec(lab, node, *NFT_LIST)
        assert pod_pings_outside(lab, target) == [node_ip(lab, node)]
    pods_ping(lab)
    assert_unchanged(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
    listed = node_exec(lab, "node1", *NFT_LIST)
    node_exec(lab, "node1", "nft", "flush", "chain", "ip", "flannel-ipv4", "postrtg")
    elapsed = wait_healed(lab, "node1", NFT_LIST, lambda out: out == listed)
    with capsys.disabled():
        print(f"\n[traffic rules] node1 nft list table ip flannel-ipv4:\n{listed}"
              f"[traffic rules] nft chain postrtg healed {elapsed:.3f} s after a flush")
    assert elapsed < HEAL_WITHIN


def test_nftables_mode_under_a_forward_policy_of_drop(cluster):
    """Docker's iptables FORWARD policy DROP: the nft accept alone is dropped there, so 06 adds
    the iptables forward chain and the pods keep talking; a drop policy in another nft table stops
    06 before any change, naming it (issue 24, defect 15)."""
    lab, cdir, pods = cluster
    for node in NODES:
        node_exec(lab, node, "iptables", "-P", "FORWARD", "DROP")
    try:
        assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
        for node in NODES:
            assert expected_iptables(subnet(lab, node))[0] in ours(node_exec(lab, node, "iptables-save"))
        pods_ping(lab)
        assert pod_pings_outside(lab, next(iter(pods))) == [node_ip(lab, "node1")]
        assert_unchanged(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
        node_exec(lab, "node1", "nft", "add table inet fw")
        node_exec(lab, "node1", "nft", "add chain inet fw fwdrop { type filter hook forward priority 10 ; policy drop ; }")
        before = node_exec(lab, "node1", "nft", "list", "ruleset")
        proc = run_06(cdir, FLANNEL_ENABLE_NFTABLES=True, FLANNEL_IPMASQ=False)
        assert proc.returncode == 2 and "inet fw chain fwdrop" in proc.stdout, proc.stdout[-3000:]
        assert node_exec(lab, "node1", "nft", "list", "ruleset") == before
    finally:
        lab.exec("node1", ["nft", "delete", "table", "inet", "fw"], check=False)
        for node in NODES:
            node_exec(lab, node, "iptables", "-P", "FORWARD", "ACCEPT")
    assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
    assert all(ours(node_exec(lab, node, "iptables-save")) == [] for node in NODES)


FOREIGN = "-A POSTROUTING -s 10.99.0.0/16 -o eth0 -j MASQUERADE"


def test_back_to_iptables_without_masquerade(cluster):
    """The nft table goes, FLANNEL_IPMASQ false leaves no masquerade rule, a foreign rule stays."""
    lab, cdir, _pods = cluster
    node_exec(lab, "node1", "iptables", "-t", "nat", *FOREIGN.split())
    assert_ok(run_06(cdir, FLANNEL_IPMASQ=False))
    for node in NODES:
        assert lab.exec(node, NFT_LIST, check=False).returncode != 0
        saved = node_exec(lab, node, "iptables-save")
        assert "flanneld masq" not in saved and "FLANNEL-POSTRTG" not in saved
        assert ours(saved) == expected_iptables(subnet(lab, node))[:4]  # the forward rules stay
    assert FOREIGN in node_exec(lab, "node1", "iptables-save")


def test_masquerade_back_on(cluster):
    lab, cdir, pods = cluster
    assert_ok(run_06(cdir))
    for target in pods:
        node = target.partition("/")[0]
        assert ours(node_exec(lab, node, "iptables-save")) == expected_iptables(subnet(lab, node))
        assert pod_pings_outside(lab, target) == [node_ip(lab, node)]
    assert FOREIGN in node_exec(lab, "node1", "iptables-save")
