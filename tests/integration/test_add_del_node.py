"""Nodes join and leave a lab cluster in the real kernel (ansible dataplane, file store):
3 nodes -> `ezctl lab node add`, the join previewed with --check --diff, `ezctl add-node` -> every
pair of pods pings and the old nodes change only the new peer's entries, in one play (the new node
in one call);
`ezctl del-node` of a middle node -> no route, neighbour, FDB entry or lease to it anywhere, the
remaining pods ping, it left [kube_node]."""
from __future__ import annotations

import json
import os
import re

import pytest

from ezctl import nodes
from labplay import assert_ok, pods_ping, recap, run_06
from nodeplay import etcd_leases, ezctl, ezctl_lab, tables
from test_etcd_leases import LAB_ETCD, start_lab_etcd, stop_lab_etcd

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("nodes", tmp_path_factory.mktemp("base")) as made:
        assert_ok(run_06(made[1]))
        yield made


def leases(cdir) -> dict:
    """{public IP: subnet network address} of the file store."""
    doc = json.loads((cdir / "flannel-leases.json").read_text())["leases"]
    return {(json.loads(v) if isinstance(v, str) else v)["PublicIP"]: key.split("-")[0] for key, v in doc.items()}


def changed_tasks(proc, host) -> list:
    """Names of the tasks that reported `changed: [host]` (default callback)."""
    names, current = [], None
    for line in proc.stdout.splitlines():
        match = re.match(r"^TASK \[(.*)\]", line)
        if match:
            current = match.group(1)
        elif re.match(r"^changed: \[%s\]" % re.escape(host), line):
            names.append(current)
    return names


def test_add_node_teaches_every_node_the_new_peer(cluster):
    lab, cdir = cluster
    before = {n: tables(lab, n) for n in ("node1", "node2", "node3")}
    out = ezctl(cdir, "lab", "node", "add", lab.name).stdout.split()
    assert out == ["node4", "198.18.0.14"]
    # previewed first (22.addnode.yml --check --diff, its line added by hand): the new node's lease
    # is taken in the run's copy of the lease file, so every other node shows the new peer's entries
    hosts = (cdir / "hosts").read_text()
    (cdir / "hosts").write_text(nodes.add_host_line(hosts, "198.18.0.14 " + nodes.lab_line(lab, "198.18.0.14")))
    preview = run_06(cdir, "-e", "NODE_TO_ADD=198.18.0.14", "--check", "--diff", book="playbooks/22.addnode.yml")
    (cdir / "hosts").write_text(hosts)
    assert preview.returncode == 0, preview.stdout[-4000:] + preview.stderr
    look = "kubeasz.network.flannel : Look at the node and bring its dataplane to plan"
    assert all(changed_tasks(preview, node) == [look] for node in ("node1", "node2", "node3")), preview.stdout
    assert preview.stdout.count("dev flannel.1 dst 198.18.0.14 self permanent") == 3, preview.stdout
    assert "198.18.0.14" not in leases(cdir)
    assert {n: tables(lab, n) for n in ("node1", "node2", "node3")} == before
    assert lab.exec("node4", ["test", "-e", "/run/flannel/subnet.env"], check=False).returncode == 1
    bad = ezctl(cdir, "add-node", cdir.name, "198.18.0.300", check=False)
    assert bad.returncode == 1 and "invalid IP address '198.18.0.300'" in bad.stderr
    proc = ezctl(cdir, "add-node", cdir.name, "198.18.0.14")
    line = next(l for l in (cdir / "hosts").read_text().splitlines() if l.startswith("198.18.0.14 "))
    assert "ansible_host=node4" in line and "ansible_connection=kubeasz.network.netns" in line
    again = ezctl(cdir, "add-node", cdir.name, "198.18.0.14", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    subnet = leases(cdir)["198.18.0.14"]
    # one play: the new node joins in its first look (its lease planned, checked, programmed and
    # written: one call, no lease task), then every other node learns the new lease in its look's
    # round (a call each, no full path); the new node's turn there is that look's result again
    assert proc.stdout.count("PLAY [") == 1, proc.stdout
    assert changed_tasks(proc, "198.18.0.14") == [look], proc.stdout
    assert "TASK [kubeasz.network.flannel : Acquire the node's subnet lease" not in proc.stdout
    assert "TASK [kubeasz.network.flannel : Program the node's dataplane" not in proc.stdout
    for node in ("node1", "node2", "node3"):
        # only the dataplane changed (node_check brings it to plan: no lease changes in this play),
        # and only by the new peer's entries
        assert changed_tasks(proc, node) == [look], proc.stdout
        added = set(tables(lab, node).splitlines()) - set(before[node].splitlines())
        removed = set(before[node].splitlines()) - set(tables(lab, node).splitlines())
        assert added and not removed
        assert all("198.18.0.14" in l or subnet + " " in l or subnet + "/" in l for l in added), added
    pods_ping(lab)


def test_a_node_added_again_under_a_second_address_is_refused_and_left_as_it_is(cluster):
    """A line for 198.18.0.98 that reaches node3 (a second NIC of it, here its namespace): the
    preflight refuses the duplicate public IP before anything changes, and the rollback takes the
    line off without taking flannel off node3 (it used to reset node3 and release its lease)."""
    lab, cdir = cluster

    def node3():   # flannel's routes, its device's entries and its route guard (cni0's carrier may change)
        return [lab.exec("node3", argv).stdout for argv in (["ip", "route", "show", "proto", "159"],
                                                            ["bridge", "fdb", "show", "dev", "flannel.1"],
                                                            ["ip", "neigh", "show", "dev", "flannel.1"], ["cat", "/run/flannel/route-guard.pid"])]
    hosts, held, before = (cdir / "hosts").read_text(), leases(cdir), node3()
    line = nodes.lab_line(lab, "198.18.0.13").replace("kubeasz_node_ip=198.18.0.13", "kubeasz_node_ip=198.18.0.98")
    proc = ezctl(cdir, "add-node", cdir.name, "198.18.0.98", *line.split(), check=False)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr
    assert "all use the public IP 198.18.0.13" in proc.stdout and "rolled back" in proc.stderr
    assert (cdir / "hosts").read_text() == hosts and leases(cdir) == held
    assert node3() == before
    pods_ping(lab)


def test_del_node_of_a_middle_node(cluster):
    lab, cdir = cluster
    gone = ezctl(cdir, "del-node", cdir.name, "198.18.0.99", check=False)
    assert gone.returncode == 1 and "not in [kube_node]" in gone.stderr
    subnet = leases(cdir)["198.18.0.12"]
    ezctl(cdir, "del-node", cdir.name, "198.18.0.12")
    assert "198.18.0.12" not in leases(cdir)
    hosts = (cdir / "hosts").read_text()
    kube_node = hosts.split("[kube_node]")[1].split("\n[")[0]
    assert "node2 " not in kube_node
    for node in ("node1", "node3", "node4"):
        assert "198.18.0.12" not in tables(lab, node) and subnet + "/" not in tables(lab, node), tables(lab, node)
        assert subnet + " " not in tables(lab, node)
    # the node itself was reset
    assert "flannel" not in lab.exec("node2", ["ip", "link", "show"]).stdout
    lab.node_del("node2")
    pods_ping(lab)


def test_net_status_names_the_node_that_drifted(cluster, tmp_path):
    """On the converged cluster left by the tests above (node1, node3, node4)."""
    lab, cdir = cluster
    proc = ezctl(cdir, "net", "status", cdir.name, "--json", "--svg", str(tmp_path / "net.svg"))
    view = json.loads(proc.stdout)
    assert view["drifted"] == [] and len(view["nodes"]) == 3
    assert all(n["lease"] and n["guard"] == "running" and n["segment"] == "198.18.0.0/24" and n["renewed"]
               for n in view["nodes"])
    assert (tmp_path / "net.svg").read_text().count(">vxlan<") == 3

    neigh = lab.exec("node3", ["ip", "neigh", "show", "dev", "flannel.1"]).stdout.splitlines()[0].split()[0]
    lab.exec("node3", ["ip", "neigh", "del", neigh, "dev", "flannel.1"])
    drift = ezctl(cdir, "net", "status", cdir.name, check=False)
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "nodes drifted from their plan: node3" in drift.stderr
    assert "+ neigh %s lladdr" % neigh in drift.stdout, drift.stdout

    # a node file: subnet.env edited by hand (the full path's one call shows it, in check mode)
    lab.exec("node1", ["sed", "-i", "s/^FLANNEL_MTU=.*/FLANNEL_MTU=1300/", "/run/flannel/subnet.env"])
    drift = ezctl(cdir, "net", "status", cdir.name, check=False)
    assert drift.returncode == 2 and "nodes drifted from their plan: node1, node3" in drift.stderr, drift.stderr
    assert "- FLANNEL_MTU=1300  (present, not planned)" in drift.stdout, drift.stdout
    assert "FLANNEL_MTU=1300" in lab.exec("node1", ["cat", "/run/flannel/subnet.env"]).stdout  # status changes nothing


# ---------------------------------------------------------------- the same with the etcd store

ETCD_CONFIG = {"FLANNEL_SUBNET_STORE": "etcd", "FLANNEL_ETCD_ENDPOINTS": LAB_ETCD, "flannel_etcd_ca": "",
               "flannel_etcd_cert": "", "flannel_etcd_key": ""}


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory):
    with ezctl_lab("nodes-etcd", tmp_path_factory.mktemp("base-etcd")) as (lab, cdir):
        proc = start_lab_etcd(lab, tmp_path_factory.mktemp("etcd-data"))
        try:
            assert_ok(run_06(cdir, **ETCD_CONFIG))
            yield lab, cdir
        finally:
            stop_lab_etcd(proc)


def test_etcd_store_add_then_del_of_an_unreachable_node(etcd_cluster):
    lab, cdir = etcd_cluster
    node, ip = ezctl(cdir, "lab", "node", "add", lab.name).stdout.split()
    ezctl(cdir, "add-node", cdir.name, ip)
    assert set(etcd_leases(lab)) == {"198.18.0.11", "198.18.0.12", "198.18.0.13", ip}
    pods_ping(lab)

    subnet = etcd_leases(lab)["198.18.0.13"]
    lab.node_del("node3")  # the node is gone: unreachable for the play
    proc = ezctl(cdir, "del-node", cdir.name, "198.18.0.13")  # an unreachable node is no failure
    assert recap(proc)["node3"]["failed"] == 0
    assert "198.18.0.13" not in etcd_leases(lab), proc.stdout
    for other in ("node1", "node2", node):
        text = tables(lab, other)
        assert "198.18.0.13" not in text and subnet + "/" not in text and subnet + " " not in text, text
    kube_node = (cdir / "hosts").read_text().split("[kube_node]")[1].split("\n[")[0]
    assert "node3 " not in kube_node
    pods_ping(lab)
