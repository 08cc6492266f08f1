"""Membership changes are transactional (issue 24, defects 2 and 7): one lab of two host-gw nodes
on segment 1 (file store). A join that is refused (a host-gw node on segment 2) or that fails
(an unreachable node) leaves the store, the nodes and the hosts file as they were, and the next
06 runs clean."""
from __future__ import annotations

import ipaddress
import json
import os
import re

import pytest

from ezctl import nodes
from ezctl.lab import Lab
from labplay import REPO, assert_ok, assert_unchanged, run_06
from nodeplay import ezctl, ezctl_lab, tables

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

HOST_GW = {"FLANNEL_BACKEND": "host-gw"}


CHECK_RUN = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("member", tmp_path_factory.mktemp("base"), nodes=2) as made:
        CHECK_RUN["proc"] = run_06(made[1], "--check", "--diff", **HOST_GW)   # a preview of the first run
        CHECK_RUN["store made"] = (made[1] / "flannel-leases.json").exists()
        assert_ok(run_06(made[1], **HOST_GW))
        yield made


def test_check_mode_of_a_fresh_cluster_previews_a_subnet_per_node(cluster):
    """Every node was previewed with the first subnet (issue 24, defect 9): now each node's check
    run is planned from the leases the nodes before it will hold."""
    lab, cdir = cluster
    proc = CHECK_RUN["proc"]
    assert_ok(proc)
    assert not CHECK_RUN["store made"]
    previewed = sorted(set(re.findall(r"^\+FLANNEL_SUBNET=(\S+)$", proc.stdout, re.M)))
    real = sorted(v.split("-")[0] for v in json.loads((cdir / "flannel-leases.json").read_text())["leases"])
    assert [p.rsplit(".", 1)[0] for p in previewed] == [r.rsplit(".", 1)[0] for r in real], proc.stdout[-3000:]


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
    proc = run_06(cdir, "-e", f"NODE_TO_ADD={ip}", book="playbooks/22.addnode.yml", **HOST_GW)
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


# ---------------------------------------------------------------- IPv6-only (defects 4, 12, 14)

IPV6_ONLY = {"CLUSTER_CIDR_IPV6": "fd00:20::/56", "NODE_CIDR_LEN_IPV6": 64, "FLANNEL_ENABLE_IPV4": False,
             "SERVICE_CIDR": "fd00:10::/108"}


@pytest.fixture(scope="module")
def v6_cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("base6")
    (base / "playbooks").symlink_to(REPO / "playbooks")
    lab = Lab(f"it-member6-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=1, ipv6=True)
        cdir = lab.write_cluster(base, lab.name)
        assert_ok(run_06(cdir))   # IPv4-only first
        yield lab, cdir
    finally:
        lab.down()


def file_leases(cdir) -> dict:
    return json.loads((cdir / "flannel-leases.json").read_text())["leases"]


def test_ipv4_only_to_ipv6_only_leaves_no_ipv4_lease(v6_cluster):
    lab, cdir = v6_cluster
    assert len(file_leases(cdir)) == 3
    proc = run_06(cdir, **IPV6_ONLY)
    assert_ok(proc)
    assert "skipping lease" not in proc.stdout
    leases = file_leases(cdir)
    assert len(leases) == 3 and all(":" in key and "." not in key for key in leases), leases


def test_net_status_of_ipv6_only_nodes_shows_address_and_segment(v6_cluster):
    lab, cdir = v6_cluster
    view = json.loads(ezctl(cdir, "net", "status", cdir.name, "--json").stdout)
    assert view["drifted"] == [], view
    for node in view["nodes"]:
        assert node["public_ip6"], node
        assert node["segment"] == str(ipaddress.ip_interface(node["public_ip6"] + "/64").network), node


def test_del_node_of_an_unreachable_ipv6_only_node_releases_its_lease(v6_cluster):
    lab, cdir = v6_cluster
    key, gone_ip6 = next((k, v["PublicIPv6"]) for k, v in file_leases(cdir).items() if v["PublicIPv6"].endswith("::13"))
    subnet6 = key.split("-")[0]
    lab.node_del("node3")
    ezctl(cdir, "del-node", cdir.name, "198.18.0.13")
    assert key not in file_leases(cdir) and len(file_leases(cdir)) == 2
    for node in ("node1", "node2"):
        text = "\n".join(lab.exec(node, argv).stdout for argv in (
            ["ip", "-6", "route", "show"], ["ip", "-6", "neigh", "show", "nud", "permanent"], ["bridge", "fdb", "show"]))
        assert subnet6 not in text and gone_ip6 not in text, text
