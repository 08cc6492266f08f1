"""Hostile input and faults on a lab of namespace nodes (issue: hardening). Every bad value is
stopped with a message naming the key or the peer, before the node changes; look-alike keys and
leases that cannot be this config's are warned about and skipped.

One lab of three nodes on one segment, converged once; each test compares the nodes' kernel
state and files before and after.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from labplay import REPO, assert_ok, assert_unchanged, env_06, lab_cluster, run_06, snapshot

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with lab_cluster("hard", tmp_path_factory.mktemp("base"), nodes=3) as (lab, cdir):
        assert_ok(run_06(cdir))
        yield lab, cdir


def leases(cdir) -> dict:
    return json.loads((cdir / "flannel-leases.json").read_text())


def write_leases(cdir, doc: dict) -> None:
    """In the file store's own layout, so that only a real change rewrites it."""
    (cdir / "flannel-leases.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def guard_files(lab) -> dict:
    return {node: lab.exec(node, ["ls", "/run/flannel"]).stdout.split() for node in ("node1", "node2", "node3")}


@pytest.mark.parametrize("config, message", [
    ({"FLANNEL_MTU": 9216}, "FLANNEL_MTU: 9216 is more than the MTU of eth0 (1500)"),
    ({"CLUSTER_CIDR": "198.18.0.0/16"}, "CLUSTER_CIDR: 198.18.0.0/16 holds this node's address 198.18.0."),
    ({"FLANNEL_IFACE": "eth0;reboot"}, "eth0;reboot"),
], ids=["mtu-above-interface", "cidr-holds-node", "iface-injection"])
def test_node_side_refusals_change_nothing_and_release_the_guard(cluster, config, message):
    lab, cdir = cluster
    before, stored = snapshot(lab), leases(cdir)
    proc = run_06(cdir, **config)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-4000:]
    assert snapshot(lab) == before and leases(cdir) == stored
    assert all("route-guard.hold" not in files for files in guard_files(lab).values())


def test_an_incompatible_lease_and_a_lookalike_key_are_warned_and_change_nothing(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))  # the refused runs above left their config in the rendered manifest
    stored = leases(cdir)
    doc = dict(stored, leases=dict(stored["leases"], **{"172.20.0.0-16": {
        "PublicIP": "198.18.0.77", "PublicIPv6": None, "BackendType": "vxlan",
        "BackendData": {"VNI": 1, "VtepMAC": "0e:00:00:00:00:77"}}}))
    write_leases(cdir, doc)
    before = snapshot(lab)
    proc = run_06(cdir, FLANNEL_BACKNED="host-gw")
    assert_unchanged(proc)
    warnings = " ".join(proc.stderr.split())
    assert "skipping lease 172.20.0.0/16 of 198.18.0.77 (store key 172.20.0.0-16)" in warnings
    assert ("FLANNEL_BACKNED is not a key of kubeasz.network.flannel and is ignored; did you mean "
            "FLANNEL_BACKEND?") in warnings
    assert snapshot(lab) == before  # still vxlan, every node keeps its lease
    doc["leases"].pop("172.20.0.0-16")
    write_leases(cdir, doc)


def run_tasks(cdir, tmp_path, tasks: list) -> list:
    """Tasks on node1 through the lab inventory, each allowed to fail -> their results."""
    out = tmp_path / "results.json"
    names = [f"case{i}" for i in range(len(tasks))]
    save = {"name": "save the results", "delegate_to": "localhost", "ansible.builtin.copy": {
        "content": "{{ [%s] | to_json }}" % ", ".join(names), "dest": str(out), "mode": "0644"}}
    play = [{"hosts": "node1", "gather_facts": False, "tasks": [
        {"name": name, **task, "ignore_errors": True, "register": name} for name, task in zip(names, tasks)] + [save]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    proc = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")),
                           "-i", str(cdir / "hosts"), str(path)], cwd=REPO, env=env_06(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def peer(index: int, mac: str, ip: str | None = None) -> dict:
    return {"subnet": f"172.20.{200 + index}.0/24", "public_ip": ip or f"198.18.0.{200 + index}",
            "backend_type": "vxlan", "vni": 1, "vtep_mac": mac}


BAD_VXLAN_LINK = [
    ({"peers": [peer(1, "00:00:00:00:00:00")]}, "vtep_mac: '00:00:00:00:00:00' is the zero MAC address"),
    ({"peers": [peer(1, "0e:00:00:00:00:01"), peer(2, "0e:00:00:00:00:01")]},
     "peers[1] (198.18.0.202) vtep_mac: 0e:00:00:00:00:01 is also the VtepMAC of peers[0] (198.18.0.201)"),
    ({"peers": [peer(1, "0e:00:00:00:00:01", "239.1.1.1")]}, "public_ip: 239.1.1.1 is a multicast address"),
    ({"peers": [peer(1, "0e:00:00:00:00:01", "127.0.0.1")]}, "public_ip: 127.0.0.1 is a loopback address"),
    ({"peers": [peer(1, "0e:00:00:00:00:01", "0.0.0.0")]}, 'public_ip: 0.0.0.0 is a "this network" address'),
    ({"peers": [peer(1, "0e:00:00:00:00:01", "198.18.0.11")]}, "public_ip is this node's own address"),
    ({"mtu": 9000, "peers": []}, "mtu: 9000 does not fit eth0 (MTU 1500)"),
]


def test_vxlan_link_refuses_bad_peers_and_mtus_before_any_change(cluster, tmp_path):
    lab, cdir = cluster
    before = snapshot(lab)
    base = {"vni": 1, "iface": "eth0", "address": "172.20.99.0", "network": "172.20.0.0/16"}
    results = run_tasks(cdir, tmp_path, [{"kubeasz.network.vxlan_link": {**base, **args}}
                                         for args, dummy in BAD_VXLAN_LINK])
    for (args, message), result in zip(BAD_VXLAN_LINK, results):
        assert result["failed"] and not result["changed"] and message in result["msg"], (args, result)
    assert snapshot(lab) == before


def test_one_route_guard_after_run_flannel_is_removed(cluster):
    lab, cdir = cluster
    lab.exec("node2", ["sh", "-c", "rm -rf /run/flannel/*"])
    assert_ok(run_06(cdir))
    status = lab.exec("node2", ["python3", "/run/flannel/route-guard/flannel-route-guard", "status"]).stdout
    assert status.startswith("running ") and len(status.split()) == 2, status
