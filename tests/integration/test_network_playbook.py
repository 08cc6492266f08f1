"""The kubeasz step 06 with FLANNEL_DATAPLANE=ansible on a lab of namespace nodes, in the real kernel.

Four nodes: three on one L2 segment, node4 behind the fabric's router. Tests run in order on one
lab, the way an operator would: check mode first, vxlan, vxlan + DirectRouting, a refused
host-gw, back to vxlan.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ezctl import labcheck
from ezctl.lab import Lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

REPO = Path(__file__).resolve().parents[2]
FOREIGN_INSIDE = "172.20.250.0/24 via 198.18.0.12 dev eth0"
FOREIGN_OUTSIDE = "10.99.0.0/24 via 198.18.0.12 dev eth0"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-play-{os.getpid()}")
    try:
        lab.up(nodes=4, segments=2)
        base = tmp_path_factory.mktemp("base")
        cdir = lab.write_cluster(base, lab.name)
        yield lab, cdir
    finally:
        lab.down()


def run_06(cdir: Path, *extra: str, **config) -> subprocess.CompletedProcess:
    conf = {"FLANNEL_DATAPLANE": "ansible", "FLANNEL_SUBNET_STORE": "file", "NODE_CIDR_LEN": 24,
            "FLANNEL_BACKEND": "vxlan", "DIRECT_ROUTING": False, **config}
    (cdir / "config.yml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    bindir = Path(sys.executable).parent
    argv = [str(bindir / "ansible-playbook"), "-i", str(cdir / "hosts"), "-e", f"@{cdir / 'config.yml'}",
            "playbooks/06.network.yml", *extra]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def recap(proc: subprocess.CompletedProcess) -> dict:
    """PLAY RECAP counters per host."""
    counts = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    assert counts, proc.stdout + proc.stderr
    return counts


def assert_ok(proc):
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def snapshot(lab: Lab) -> dict:
    """The kernel state flannel could touch on every node, without counters or timers."""
    def lines(node, argv):
        return lab.exec(node, argv).stdout
    state = {}
    for node in (n["name"] for n in lab.status()["nodes"]):
        links = json.loads(lines(node, ["ip", "-d", "-json", "link", "show"]))
        state[node] = {
            "links": sorted((l["ifname"], l["mtu"], l.get("address"), l.get("linkinfo", {}).get("info_kind"))
                            for l in links),
            "addrs": lines(node, ["ip", "-br", "addr"]),
            "routes": lines(node, ["ip", "route", "show"]),
            "neigh": sorted(l for l in lines(node, ["ip", "neigh", "show", "nud", "permanent"]).splitlines()),
            "fdb": sorted(l for l in lines(node, ["bridge", "fdb", "show"]).splitlines() if "flannel" in l),
            "files": lines(node, ["sh", "-c", "cat /run/flannel/subnet.env /etc/cni/net.d/* 2>/dev/null || true"]),
        }
    return state


def without_foreign(problems: list) -> list:
    """The operator's own route inside the cluster network is expected to stay."""
    return [p for p in problems if FOREIGN_INSIDE.split()[0] not in p]


def pods_ping(lab: Lab) -> dict:
    pods = {}
    for node in (n["name"] for n in lab.status()["nodes"]):
        pod = f"p-{node}"
        pods[f"{node}/{pod}"] = lab.pod_add(node, pod)
    try:
        matrix = labcheck.ping_matrix(lambda src, ip: labcheck.ping(lab, src, ip), pods)
        assert all(matrix.values()), labcheck.format_matrix(matrix, list(pods))
        return pods
    finally:
        for target in pods:
            node, _sep, pod = target.partition("/")
            lab.pod_del(node, pod)


def test_check_mode_on_a_fresh_cluster_changes_nothing(cluster):
    lab, cdir = cluster
    before = snapshot(lab)
    proc = run_06(cdir, "--check", "--diff")
    assert_ok(proc)
    assert snapshot(lab) == before
    assert not (cdir / "flannel-leases.json").exists()


def test_vxlan(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))
    views = labcheck.read_lab(lab)
    assert len({v.subnet for v in views}) == 4
    assert labcheck.table_mismatches(views, "vxlan", False) == []
    pods_ping(lab)
    second = run_06(cdir)
    assert_ok(second)
    assert all(c["changed"] == 0 for c in recap(second).values()), second.stdout


def test_foreign_routes_and_check_mode_switch(cluster):
    lab, cdir = cluster
    for route in (FOREIGN_INSIDE, FOREIGN_OUTSIDE):
        lab.exec("node1", ["ip", "route", "add", *route.split()])
    before = snapshot(lab)
    proc = run_06(cdir, "--check", "--diff", DIRECT_ROUTING=True)
    assert_ok(proc)
    assert any(c["changed"] > 0 for c in recap(proc).values())
    assert snapshot(lab) == before


def test_direct_routing_mixes_direct_and_vxlan_peers(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir, DIRECT_ROUTING=True))
    views = labcheck.read_lab(lab)
    assert without_foreign(labcheck.table_mismatches(views, "vxlan", True)) == []
    node1 = next(v for v in views if v.name == "node1")
    vias = {dst: (gw, dev) for dst, gw, dev, _onlink in node1.routes}
    assert {dev for gw, dev in vias.values()} == {"eth0", "flannel.1"}
    pods_ping(lab)
    second = run_06(cdir, DIRECT_ROUTING=True)
    assert all(c["changed"] == 0 for c in recap(second).values()), second.stdout
    routes = lab.exec("node1", ["ip", "route", "show"]).stdout
    assert FOREIGN_INSIDE.split(" dev", maxsplit=1)[0] in routes
    assert FOREIGN_OUTSIDE.split(" dev", maxsplit=1)[0] in routes


def test_host_gw_refuses_the_routed_peer_and_changes_nothing(cluster):
    lab, cdir = cluster
    before = snapshot(lab)
    proc = run_06(cdir, FLANNEL_BACKEND="host-gw")
    assert proc.returncode != 0
    assert "198.18.1.14" in proc.stdout  # node4, behind the router, is named
    assert "not on-link" in proc.stdout
    assert snapshot(lab) == before  # tables, subnet.env and CNI config alike


def test_back_to_vxlan_converges(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))
    views = labcheck.read_lab(lab)
    assert without_foreign(labcheck.table_mismatches(views, "vxlan", False)) == []
    pods_ping(lab)
