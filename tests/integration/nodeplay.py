"""Shared by the tests of nodes that join and leave (issue 13): a lab cluster in a base directory
that `ezctl` can use (playbooks/ and clusters/), ezctl itself, and the lab's tables and leases."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from labplay import REPO, assert_ok, env_06, lab_cluster
from test_etcd_leases import LAB_ETCD


@contextlib.contextmanager
def ezctl_lab(tag: str, base: Path, nodes: int = 3, segments: int = 1, ipv6: bool = False):
    """lab_cluster() in a base directory that also holds playbooks/ (a link to the repository's)."""
    (base / "playbooks").symlink_to(REPO / "playbooks")
    with lab_cluster(tag, base, nodes=nodes, segments=segments, ipv6=ipv6) as made:
        yield made


def ezctl(cdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m ezctl --base <base of cdir> ARGS...` with the repository's ansible.cfg."""
    argv = [sys.executable, "-m", "ezctl", "--base", str(cdir.parent.parent), *args]
    proc = subprocess.run(argv, cwd=REPO, env=env_06(), capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert_ok(proc)
    return proc


def tables(lab, node: str) -> str:
    """The node's routes, permanent neighbours and FDB."""
    return "\n".join(lab.exec(node, argv).stdout for argv in (
        ["ip", "route", "show"], ["ip", "neigh", "show", "nud", "permanent"], ["bridge", "fdb", "show"]))


def etcd_leases(lab) -> dict:
    """{public IP: subnet network address} of flannel's etcd layout (etcd in node1)."""
    out = lab.exec("node1", ["etcdctl", "--endpoints", LAB_ETCD, "get", "--prefix", "/coreos.com/network/subnets/"])
    lines = out.stdout.splitlines()
    return {json.loads(value)["PublicIP"]: key.rsplit("/", 1)[1].split("-")[0]
            for key, value in zip(lines[::2], lines[1::2])}
