"""Migration without an outage: a running 4-node flanneld cluster (vxlan, the lab's etcd) moved to
the Ansible dataplane node by node with the README's procedure, and back, while every pod pings
every other pod all the time. The lost pings per pair are recorded (tests/output/real-flanneld/
migration.json and the test's output); goal: at most 1 per pair per node converted.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

import realflannel
from labplay import REPO, lab_cluster, recap
from test_real_flanneld import NODES, Cluster, flannel_pods, ok

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

INTERVAL = "0.2"  # seconds between pings of one pair


class Pings:
    """One `ping -i 0.2` per ordered pair of pods, running until ``stop()``."""

    def __init__(self, lab, pods: dict):
        self.procs = {}
        for src in pods:
            for dst, ip in pods.items():
                if src != dst:
                    node, _sep, pod = src.partition("/")
                    argv = lab.nsenter_argv(node) + [
                        "ip", "netns", "exec", pod, "ping", "-n", "-i", INTERVAL, "-W", "1", ip]
                    self.procs[(src, dst)] = subprocess.Popen(
                        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        start_new_session=True)

    def stop(self) -> dict:
        """{(src, dst): (sent, received)}."""
        counts = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for pair, proc in self.procs.items():
            out = proc.communicate(timeout=30)[0]
            match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
            assert match, out[-500:]
            counts[pair] = (int(match.group(1)), int(match.group(2)))
        return counts


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    bins = realflannel.binaries()
    with lab_cluster("rfmig", tmp_path_factory.mktemp("migration"), nodes=4) as (lab, cdir):
        c = Cluster(lab, cdir, bins, "vxlan")
        try:
            for node in NODES:
                c.start_flanneld(node)
            for node in NODES:
                realflannel.write_conflist(lab, node, c.cni_conf)
            c.pods = flannel_pods(lab)
            yield c
        finally:
            c.close()


def test_flanneld_to_ansible_and_back_node_by_node_under_continuous_pings(cluster):
    lab = cluster.lab
    deadline = time.monotonic() + 20   # every flanneld has watched every lease
    while not all(len(cluster.routes_to(n, s["subnet"])) == 1 for n in NODES
                  for p, s in cluster.leases().items() if p != n):
        assert time.monotonic() < deadline, "flanneld did not program every peer"
        time.sleep(0.2)
    leases_before = {n: v["subnet"] for n, v in cluster.leases().items()}
    pings = Pings(lab, cluster.pods)
    steps = []
    try:
        time.sleep(2)
        converted = []
        for node in NODES:   # README "Moving a node from flanneld to Ansible": 1. stop, 2. run 06
            cluster.stop_flanneld(node)
            converted.append(node)
            run = ok(cluster.run_06(converted))
            steps.append(("to ansible", node, recap(run)[node]["changed"]))
            time.sleep(2)
        for node in NODES:   # and back: the route guard off on the node, then flanneld
            ok(cluster.run_06([node], FLANNEL_ROUTE_GUARD=False))
            cluster.start_flanneld(node)
            steps.append(("to flanneld", node, None))
            time.sleep(2)
        time.sleep(2)
    finally:
        counts = pings.stop()
    lost = {f"{src}->{dst}": sent - received for (src, dst), (sent, received) in counts.items()}
    figures = {"interval_s": float(INTERVAL), "conversions": len(steps),
               "lost_per_pair": lost, "sent_per_pair": {f"{s}->{d}": c[0] for (s, d), c in counts.items()},
               "max_lost": max(lost.values()), "total_lost": sum(lost.values())}
    out = REPO / "tests" / "output" / "real-flanneld"
    out.mkdir(parents=True, exist_ok=True)
    (out / "migration.json").write_text(json.dumps(figures, indent=1))
    print("migration:", json.dumps(figures))
    assert {n: v["subnet"] for n, v in cluster.leases().items()} == leases_before  # every node kept its subnet
    assert all(cluster.flanneld[n].running() for n in NODES)
    # at most one lost ping per pair per node converted
    assert figures["max_lost"] <= len(steps), figures
