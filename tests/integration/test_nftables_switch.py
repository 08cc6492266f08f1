"""FLANNEL_ENABLE_NFTABLES switched in both directions, in both dataplanes, on lab nodes: after
each run every node holds only the new mode's rules of ours, read with `iptables-save` and
`nft list ruleset` inside the node before and after.

- ansible dataplane: the role's traffic_rules (state present) installs the new mode's rules and
  removes the other mode's;
- flanneld dataplane: flanneld makes the new mode's rules itself and never removes the old
  mode's; here the node is given both, as the old and the new flanneld leave them (written from
  the collection's own rule builders, the new flanneld's subnet differing from ours so that any
  rewrite would show), and the run must leave the new mode's exactly as they were and remove the
  others (traffic_rules state prune). kubectl is fakebin's stand-in, as in test_flanneld_mode.py.
"""
from __future__ import annotations

import os
import re

import pytest

import fakebin
from labplay import assert_ok, assert_unchanged, lab_cluster, run_06
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.plan import trafficrules as tr

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

NODES = ("node1", "node2")
NETWORK = "172.20.0.0/16"
IPT_CHAINS = ("FLANNEL-POSTRTG", "FLANNEL-FWD")


def rulesets(lab) -> dict:
    """Per node: (iptables-save without its date lines, nft list ruleset)."""
    out = {}
    for node in NODES:
        saved = lab.exec(node, ["iptables-save"]).stdout
        out[node] = (re.sub(r"(?m)^#.*\n", "", saved), lab.exec(node, ["nft", "list", "ruleset"]).stdout)
    return out


def nft_table(ruleset: str) -> str:
    """`table ip flannel-ipv4 { ... }` out of `nft list ruleset` ('' when absent)."""
    match = re.search(r"(?ms)^table ip flannel-ipv4 \{\n.*?^\}\n", ruleset)
    return match.group(0) if match else ""


def iptables_ours(saved: str) -> list[str]:
    return [line for line in saved.splitlines() if "FLANNEL-" in line or "flanneld" in line]


def assert_only(lab, mode: str) -> dict:
    """Every node holds our rules of `mode` only: in iptables-save and in nft list ruleset
    (where iptables-nft's tables show too)."""
    sets = rulesets(lab)
    for node, (saved, ruleset) in sets.items():
        if mode == "nftables":
            assert iptables_ours(saved) == [], (node, saved)
            assert not any(chain in ruleset for chain in IPT_CHAINS), (node, ruleset)
            assert "masquerade" in nft_table(ruleset) and "chain forward" in nft_table(ruleset), (node, ruleset)
        else:
            assert nft_table(ruleset) == "" and "flannel-ipv4" not in ruleset, (node, ruleset)
            assert {f":{c} - [0:0]" for c in IPT_CHAINS} <= set(iptables_ours(saved)), (node, saved)
    return sets


def test_ansible_dataplane_switches_both_ways(tmp_path, capsys):
    with lab_cluster("nft", tmp_path, nodes=len(NODES)) as (lab, cdir):
        assert_ok(run_06(cdir))                                   # default: iptables, as kubeasz
        before = assert_only(lab, "iptables")
        assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
        after = assert_only(lab, "nftables")
        assert_unchanged(run_06(cdir, FLANNEL_ENABLE_NFTABLES=True))
        # "PROXY_MODE" follows kube-proxy: ipvs -> iptables, nftables -> nftables (no change here)
        assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES="PROXY_MODE", PROXY_MODE="ipvs"))
        assert_only(lab, "iptables")
        assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES="PROXY_MODE", PROXY_MODE="nftables"))
        assert_only(lab, "nftables")
        assert_ok(run_06(cdir, FLANNEL_ENABLE_NFTABLES=False, PROXY_MODE="nftables"))
        back = assert_only(lab, "iptables")
        assert_unchanged(run_06(cdir, PROXY_MODE="nftables"))
        assert {n: iptables_ours(s) for n, (s, r) in back.items()} == \
            {n: iptables_ours(s) for n, (s, r) in before.items()}
        with capsys.disabled():
            print("\n[nftables switch, ansible] node1 before (iptables-save, ours):\n"
                  + "\n".join(iptables_ours(before["node1"][0]))
                  + f"\n[nftables switch, ansible] node1 after (nft list ruleset):\n{after['node1'][1]}")


# ------------------------------------------------------------------ flanneld dataplane

def seed(lab, node: str, mode: str, subnet: str) -> None:
    """The rules a flanneld in `mode` leaves on the node (for lease `subnet`)."""
    spec = tr.RuleSpec(mode, NETWORK, subnet, True, True)
    ops = tr.plan(tr.RuleState({}, None), tr.desired_state(spec))
    if mode == "nftables":
        lab.exec(node, ["nft", "-f", "-"], input=tr.nft_input(ops, IPV4))
    else:
        lab.exec(node, ["iptables-restore", "-w", "5", "--noflush"], input=tr.iptables_restore_input(ops))


def run_flanneld(cdir, tmp, *extra, **config):
    return run_06(cdir, *extra, FLANNEL_DATAPLANE="flanneld", CONTAINER_RUNTIME="containerd", bin_dir=str(tmp / "bin"),
                  flannel_image_dir=str(tmp / "images"), flannel_ready_timeout=2, **config)


@pytest.fixture(scope="module")
def flanneld_cluster(tmp_path_factory):
    with lab_cluster("nftfld", tmp_path_factory.mktemp("base"), nodes=len(NODES)) as (lab, cdir):
        (cdir / "kubectl.kubeconfig").write_text("# written by kubeasz's step 01\n", encoding="utf-8")
        fakebin.install(cdir.parents[1] / "bin", "kubectl")
        tmp = tmp_path_factory.mktemp("node-dirs")
        fakebin.install(tmp / "bin", "ctr", "docker")
        for index, node in enumerate(NODES, start=1):   # what flanneld (vxlan) leaves on a ready node
            lab.exec(node, ["sh", "-c", "cat > /run/flannel/subnet.env"], input=(
                f"FLANNEL_NETWORK={NETWORK}\nFLANNEL_SUBNET=172.20.{index}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"))
            lab.exec(node, ["ip", "link", "add", "flannel.1", "mtu", "1450", "type", "vxlan", "id", "1",
                            "dev", "eth0", "local", f"198.18.0.{10 + index}", "dstport", "8472", "nolearning"])
            lab.exec(node, ["ip", "link", "set", "flannel.1", "up"])
        yield lab, cdir, tmp


@pytest.mark.parametrize("old, new, enable", [("iptables", "nftables", True), ("nftables", "iptables", False)])
def test_flanneld_dataplane_removes_the_old_mode(flanneld_cluster, old, new, enable, capsys):
    lab, cdir, tmp = flanneld_cluster
    for index, node in enumerate(NODES, start=1):
        seed(lab, node, old, f"172.20.{index}.0/24")          # the old flanneld's
        seed(lab, node, new, f"172.20.{index + 100}.0/24")    # the new flanneld's (its own lease)
    before = rulesets(lab)
    check = run_flanneld(cdir, tmp, "--check", FLANNEL_ENABLE_NFTABLES=enable)
    assert_ok(check)
    assert "Remove the masquerade and forward rules of the mode flanneld no longer runs" in check.stdout
    assert rulesets(lab) == before                               # check mode changed nothing
    proc = run_flanneld(cdir, tmp, FLANNEL_ENABLE_NFTABLES=enable)
    assert_ok(proc)
    after = assert_only(lab, new)
    for node in NODES:   # the new flanneld's rules are left exactly as they were
        if new == "nftables":
            assert nft_table(after[node][1]) == nft_table(before[node][1]) != ""
        else:
            assert iptables_ours(after[node][0]) == iptables_ours(before[node][0]) != []
    assert_unchanged(run_flanneld(cdir, tmp, FLANNEL_ENABLE_NFTABLES=enable))
    with capsys.disabled():
        print(f"\n[nftables switch, flanneld {old} -> {new}] node1 before:\n"
              + "\n".join(iptables_ours(before["node1"][0])) + "\n" + nft_table(before["node1"][1])
              + f"[nftables switch, flanneld {old} -> {new}] node1 after:\n"
              + "\n".join(iptables_ours(after["node1"][0])) + "\n" + nft_table(after["node1"][1]))
