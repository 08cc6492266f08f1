"""Interrupted runs: SIGKILL `ansible-playbook playbooks/06.network.yml` while it programs the lab
nodes, run it again, and the cluster converges (issue 6).

Three nodes on one L2 segment, ansible dataplane; the killed runs go one node at a time
(`--forks 1`) so that the kill leaves the nodes in different states: the first interruption comes right after the VXLAN device of
the first node was programmed (no routes anywhere yet), the second during the switch to
DirectRouting, after the first node's routes. Each time the next run must converge: tables exactly
as FLANNEL.md says (labcheck), every pod pings every pod, and a further run changes nothing.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
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
VXLAN_TASK = "Program the VXLAN device and its peer entries"
ROUTE_TASK = "Program the routes to the peers' subnets"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-kill-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=1)
        cdir = lab.write_cluster(tmp_path_factory.mktemp("base"), lab.name)
        yield lab, cdir
    finally:
        lab.down()


def argv_06(cdir: Path, forks: int = 5, **config) -> list:
    conf = {"FLANNEL_DATAPLANE": "ansible", "FLANNEL_SUBNET_STORE": "file", "NODE_CIDR_LEN": 24,
            "FLANNEL_BACKEND": "vxlan", "DIRECT_ROUTING": False, **config}
    (cdir / "config.yml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    bindir = Path(sys.executable).parent
    return [str(bindir / "ansible-playbook"), "-i", str(cdir / "hosts"), "-e", f"@{cdir / 'config.yml'}",
            "--forks", str(forks), "playbooks/06.network.yml"]


def env_06() -> dict:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")


def run_06(cdir: Path, **config) -> subprocess.CompletedProcess:
    return subprocess.run(argv_06(cdir, **config), cwd=REPO, env=env_06(), capture_output=True,
                          text=True, timeout=600, check=False)


def kill_06_after(cdir: Path, task: str, hosts_done: int, **config) -> str:
    """Start 06, SIGKILL its whole process group once `task` reported `hosts_done` hosts; the output."""
    proc = subprocess.Popen(argv_06(cdir, forks=1, **config), cwd=REPO, env=env_06(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, in_task, done = [], False, 0
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("TASK ["):
                in_task = task in line
            elif in_task and re.match(r"^(changed|ok): \[", line):
                done += 1
                if done >= hosts_done:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    output = "".join(seen)
    assert done >= hosts_done, "06 ended before the kill point:\n" + output[-4000:]
    assert proc.returncode == -signal.SIGKILL
    return output


def recap(proc: subprocess.CompletedProcess) -> dict:
    counts = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", proc.stdout, re.M):
        counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    assert counts, proc.stdout + proc.stderr
    return counts


def assert_converged(lab: Lab, cdir: Path, direct_routing: bool, rerun: bool = True, **config) -> None:
    proc = run_06(cdir, DIRECT_ROUTING=direct_routing, **config)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "vxlan", direct_routing) == []
    pods = {f"{n['name']}/k-{n['name']}": lab.pod_add(n["name"], f"k-{n['name']}") for n in lab.status()["nodes"]}
    try:
        matrix = labcheck.ping_matrix(lambda src, ip: labcheck.ping(lab, src, ip), pods)
        assert all(matrix.values()), labcheck.format_matrix(matrix, list(pods))
    finally:
        for target in pods:
            node, dummy, pod = target.partition("/")
            lab.pod_del(node, pod)
    if not rerun:
        return
    again = run_06(cdir, DIRECT_ROUTING=direct_routing, **config)
    assert again.returncode == 0 and all(c["changed"] == 0 for c in recap(again).values()), again.stdout[-6000:]


def devices(lab: Lab, node: str) -> str:
    return lab.exec(node, ["ip", "-br", "link", "show", "type", "vxlan"]).stdout


def test_killed_while_programming_vxlan_devices(cluster):
    lab, cdir = cluster
    kill_06_after(cdir, VXLAN_TASK, 1, DIRECT_ROUTING=False)
    # really interrupted half-way: the first node has its device, the last one not, nobody has routes
    assert "flannel.1" in devices(lab, "node1") and "flannel.1" not in devices(lab, "node3")
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "vxlan", False) != []
    assert_converged(lab, cdir, False, rerun=False)  # the next test ends with the changed=0 run


def test_killed_while_switching_routes(cluster):
    lab, cdir = cluster
    kill_06_after(cdir, ROUTE_TASK, 1, DIRECT_ROUTING=True)
    # node1 routes directly already, node3 still over flannel.1
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "vxlan", True) != []
    assert_converged(lab, cdir, True)
