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
import time
from pathlib import Path

import pytest

import labcheck
from ezctl.lab import Lab
from labplay import REPO, argv_06, assert_ok, assert_unchanged, env_06, lab_cluster, pods_ping, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

DATAPLANE_TASK = "Program the node's dataplane and keep it with the route guard"
# a switch of DirectRouting changes no lease: each node's look at the node switches its routes
SWITCH_TASK = "Look at the node and bring its dataplane to plan"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with lab_cluster("kill", tmp_path_factory.mktemp("base")) as made:
        yield made


def kill_06_after(cdir: Path, task: str, hosts_done: int, **config) -> str:
    """Start 06, SIGKILL its whole process group once `task` reported `hosts_done` hosts; the output."""
    proc = subprocess.Popen(argv_06(cdir, "--forks", "1", **config), cwd=REPO, env=env_06(), stdout=subprocess.PIPE,
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


def assert_converged(lab: Lab, cdir: Path, direct_routing: bool, rerun: bool = True, **config) -> None:
    assert_ok(run_06(cdir, DIRECT_ROUTING=direct_routing, **config))
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "vxlan", direct_routing) == []
    pods_ping(lab)
    if rerun:
        assert_unchanged(run_06(cdir, DIRECT_ROUTING=direct_routing, **config))


def devices(lab: Lab, node: str) -> str:
    return lab.exec(node, ["ip", "-br", "link", "show", "type", "vxlan"]).stdout


def test_killed_while_programming_the_dataplane(cluster):
    lab, cdir = cluster
    kill_06_after(cdir, DATAPLANE_TASK, 1, DIRECT_ROUTING=False)
    # really interrupted half-way: the first node is programmed, the last one has its lease in the
    # store but nothing on the node yet (subnet.env is written in the same call as its device)
    assert "flannel.1" in devices(lab, "node1") and "flannel.1" not in devices(lab, "node3")
    assert lab.exec("node3", ["test", "-e", "/run/flannel/subnet.env"], check=False).returncode == 1
    assert_converged(lab, cdir, False, rerun=False)  # the next test ends with the changed=0 run


def test_killed_while_switching_routes(cluster):
    lab, cdir = cluster
    kill_06_after(cdir, SWITCH_TASK, 1, DIRECT_ROUTING=True)
    # node1 routes directly already, node3 still over flannel.1
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "vxlan", True) != []
    assert_converged(lab, cdir, True)
