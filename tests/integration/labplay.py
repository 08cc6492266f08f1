"""Shared by the kernel tests that run step 06 on a lab: the lab fixture body, the playbook run,
and reading its PLAY RECAP."""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from ezctl import reach
from ezctl.lab import Lab

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = {"NODE_CIDR_LEN": 24, "FLANNEL_BACKEND": "vxlan", "DIRECT_ROUTING": False}
DATAPLANE_CONFIG = {"ansible": {"FLANNEL_DATAPLANE": "ansible", "FLANNEL_SUBNET_STORE": "file"},
                    "flanneld": {"FLANNEL_DATAPLANE": "flanneld"}}


@contextlib.contextmanager
def lab_cluster(tag: str, base: Path, nodes: int = 3, segments: int = 1, ipv6: bool = False):
    """A lab with a unique name and its cluster folder under `base`; always taken down."""
    lab = Lab(f"it-{tag}-{os.getpid()}")
    try:
        lab.up(nodes=nodes, segments=segments, ipv6=ipv6)
        yield lab, lab.write_cluster(base, lab.name)
    finally:
        lab.down()


def argv_06(cdir: Path, *extra: str, book: str = "playbooks/06.network.yml", **config) -> list:
    """Write config.yml (the ansible dataplane unless config says otherwise) and return 06's argv
    (``book``: another playbook of the repository, e.g. 22.addnode.yml)."""
    dataplane = DATAPLANE_CONFIG[config.get("FLANNEL_DATAPLANE", "ansible")]
    (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **dataplane, **config}), encoding="utf-8")
    return [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(cdir / "hosts"),
            "-e", f"@{cdir / 'config.yml'}", book, *extra]


def env_06() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")


def run_06(cdir: Path, *extra: str, book: str = "playbooks/06.network.yml", **config) -> subprocess.CompletedProcess:
    return subprocess.run(argv_06(cdir, *extra, book=book, **config), cwd=REPO, env=env_06(), capture_output=True,
                          text=True, timeout=600, check=False)


def recap(proc: subprocess.CompletedProcess) -> dict:
    """PLAY RECAP counters per host."""
    counts = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    assert counts, proc.stdout + proc.stderr
    return counts


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


def assert_unchanged(proc: subprocess.CompletedProcess) -> None:
    assert_ok(proc)
    assert all(c["changed"] == 0 for c in recap(proc).values()), proc.stdout


def pods_ping(lab: Lab) -> dict:
    """A pod per node; every pod pings every other pod; the pods are removed again."""
    pods = {}
    for node in (n["name"] for n in lab.status()["nodes"]):
        pod = f"p-{node}"
        pods[f"{node}/{pod}"] = lab.pod_add(node, pod)
    try:
        matrix = reach.ping_matrix(lambda src, ip: reach.ping(lab, src, ip), pods)
        assert all(matrix.values()), reach.format_matrix(matrix, list(pods))
        return pods
    finally:
        for target in pods:
            node, _sep, pod = target.partition("/")
            lab.pod_del(node, pod)


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
