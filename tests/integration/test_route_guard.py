"""The route guard in the real kernel: a lab of three nodes on one L2 segment, step 06 with the
guard (a process inside each node, as flannel_route_guard_runner=process for netns nodes).

For DirectRouting (vxlan + DR, all peers direct) and host-gw: take a node's eth0 down and up
inside the node; the kernel drops the node's routes to the peers, the guard puts them back and
pods ping again. The recovery time (eth0 up -> every route back) is printed with the test
output (goal: under 2 s); the only timing assertion is a generous timeout.
"""
from __future__ import annotations

import json
import os
import time

import pytest

import labcheck
from ezctl.lab import Lab

from labplay import assert_ok, pods_ping, recap, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

PID_FILE = "/run/flannel/route-guard.pid"
LOG_FILE = "/run/flannel/route-guard.log"
STATE_FILE = "/run/flannel/routes.json"
TIMEOUT = 20.0
RECOVERY = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-guard-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=1)
        cdir = lab.write_cluster(tmp_path_factory.mktemp("base"), lab.name)
        yield lab, cdir
        if RECOVERY:
            print("\nroute guard recovery times (eth0 up -> routes back): "
                  + ", ".join(f"{k}: {v:.3f} s" for k, v in RECOVERY.items()))
    finally:
        pids = guard_pids(lab)
        lab.down()
        left = [pid for pid in pids if alive(pid)]
        assert left == [], f"guard processes left after lab down: {left}"


def alive(pid: int) -> bool:
    """A process that is not a zombie (lab down kills; its reaper may not have reaped yet)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except OSError:
        return False


def guard_pids(lab: Lab) -> list[int]:
    pids = []
    for node in lab.status()["nodes"]:
        if not node.get("present"):
            continue
        out = lab.exec(node["name"], ["cat", PID_FILE], check=False).stdout.strip()
        if out.isdigit():
            pids.append(int(out))
    return pids


def flannel_routes(lab: Lab, node: str) -> set:
    """The node's routes inside the cluster network except its own subnet."""
    view = next(v for v in labcheck.read_lab(lab) if v.name == node)
    return set(view.routes)


def owned_routes(lab: Lab, node: str) -> set:
    routes = json.loads(lab.exec(node, ["ip", "-json", "route", "show", "proto", "159"]).stdout or "[]")
    return {r["dst"] for r in routes}


def flap(lab: Lab, node: str, report: str, capsys) -> float:
    """eth0 down and up inside node; seconds until its routes are back (polled every 20 ms)."""
    want = flannel_routes(lab, node)
    assert want
    lab.exec(node, ["ip", "link", "set", "eth0", "down"])
    direct = {r for r in want if r[2] == "eth0"}
    assert not (owned_routes(lab, node) & {r[0] for r in direct}), "the kernel kept the direct routes"
    time.sleep(0.5)  # the guard must not re-add them while eth0 is down (it would fail anyway)
    lab.exec(node, ["ip", "link", "set", "eth0", "up"])
    start = time.monotonic()
    while flannel_routes(lab, node) != want:
        assert time.monotonic() - start < TIMEOUT, (
            f"{node}: routes not back after {TIMEOUT} s:\n"
            + lab.exec(node, ["ip", "route"]).stdout
            + lab.exec(node, ["cat", LOG_FILE], check=False).stdout)
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    # the node's default route went with eth0 too (not flannel's: an ifup would restore it)
    lab.exec(node, ["ip", "route", "replace", "default", "via", "198.18.0.1", "dev", "eth0"])
    RECOVERY[report] = elapsed
    with capsys.disabled():
        print(f"\n[route guard] {report}: {len(want)} routes back {elapsed:.3f} s after eth0 up")
    return elapsed


def changed_tasks(proc) -> str:
    """The TASK headers followed by a "changed:" line (for failure messages)."""
    out, task = [], ""
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            out.append(f"{task}\n  {line}")
    return "\n".join(out) or proc.stdout[-3000:]


def guard_running(lab: Lab, node: str) -> bool:
    out = lab.exec(node, ["python3", "/run/flannel/route-guard/flannel-route-guard", "status"],
                   check=False)
    return out.returncode == 0


def test_direct_routing_routes_come_back(cluster, capsys):
    lab, cdir = cluster
    assert_ok(run_06(cdir, DIRECT_ROUTING=True))
    for node in ("node1", "node2", "node3"):
        assert guard_running(lab, node), lab.exec(node, ["cat", LOG_FILE], check=False).stdout
        state = json.loads(lab.exec(node, ["cat", STATE_FILE]).stdout)
        assert len(state["routes"]) == 2 and state["backend"] == "vxlan"
    pids = guard_pids(lab)
    second = run_06(cdir, DIRECT_ROUTING=True)
    assert_ok(second)
    assert all(c["changed"] == 0 for c in recap(second).values()), changed_tasks(second)
    assert guard_pids(lab) == pids  # not restarted: its files did not change
    flap(lab, "node1", "vxlan+DirectRouting node1", capsys)
    pods_ping(lab)
    log = lab.exec("node1", ["cat", LOG_FILE]).stdout
    assert "link eth0 up" in log and "re-added 2 route(s)" in log, log


def test_a_deleted_route_comes_back(cluster):
    lab = cluster[0]
    want = flannel_routes(lab, "node2")
    dst = sorted(want)[0][0]
    lab.exec("node2", ["ip", "route", "del", dst])
    start = time.monotonic()
    while flannel_routes(lab, "node2") != want:
        assert time.monotonic() - start < TIMEOUT, lab.exec("node2", ["cat", LOG_FILE]).stdout
        time.sleep(0.02)
    assert f"route {dst} deleted" in lab.exec("node2", ["cat", LOG_FILE]).stdout


def test_host_gw_routes_come_back(cluster, capsys):
    lab, cdir = cluster
    proc = run_06(cdir, FLANNEL_BACKEND="host-gw")
    assert_ok(proc)
    assert labcheck.table_mismatches(labcheck.read_lab(lab), "host-gw", False) == []
    state = json.loads(lab.exec("node2", ["cat", STATE_FILE]).stdout)
    assert state["backend"] == "host-gw" and all(r["dev"] == "eth0" for r in state["routes"])
    flap(lab, "node2", "host-gw node2", capsys)
    pods_ping(lab)


def test_guard_removed_when_disabled(cluster):
    lab, cdir = cluster
    pids = guard_pids(lab)
    assert len(pids) == 3
    proc = run_06(cdir, FLANNEL_BACKEND="host-gw", FLANNEL_ROUTE_GUARD=False)
    assert_ok(proc)
    assert all(c["changed"] > 0 for c in recap(proc).values()), proc.stdout
    assert not any(alive(pid) for pid in pids)
    for node in ("node1", "node2", "node3"):
        left = lab.exec(node, ["ls", "/run/flannel"]).stdout.split()
        assert not [f for f in left if "route" in f], left
    again = run_06(cdir, FLANNEL_BACKEND="host-gw", FLANNEL_ROUTE_GUARD=False)
    assert all(c["changed"] == 0 for c in recap(again).values()), again.stdout
