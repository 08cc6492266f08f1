# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of ``ezctl net check`` on labs of 4 and 8 nodes (issue 26's goal: under 10 s at 8).

Per lab size: the lab is built, step 06 deploys flannel (ansible dataplane, vxlan, as
tests/integration/test_net_check.py does) and a pod is added per node; then, on the same inventory
and in the same run, ``ping10`` (ten ``ansible.builtin.ping`` tasks, Ansible's own floor, before
and after; their mean) and ``ezctl net check`` (3 runs, the median), its wall seconds and the
ratio to ping10. The lab is taken down at the end. Timings on a shared machine are noisy: read the
ratio, measured against a baseline of the same run.

    sudo .venv/bin/python bench/bench_netcheck.py [--sizes 4,8] [--runs 3] [--forks 20] [--profile 15]

The labs live in network namespaces under /run/kubeasz-lab; the host's own network namespace is
never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scale import PING10, REPO, env, playbook, profile_lines  # bench/ is this script's own folder

from ezctl.lab import Lab  # noqa: E402  (bench_scale put the repository on sys.path)

CONFIG = ("# bench_netcheck: as tests/integration/test_net_check.py\n"
          "FLANNEL_DATAPLANE: ansible\nFLANNEL_SUBNET_STORE: file\nFLANNEL_BACKEND: vxlan\n"
          "DIRECT_ROUTING: false\nNODE_CIDR_LEN: 24\nFLANNEL_ROUTE_GUARD: false\n")


def net_check(base, cluster, forks):
    """(seconds, report) of one ``ezctl net check --json``."""
    argv = [sys.executable, "-m", "ezctl", "--base", str(base), "net", "check", cluster, "--json"]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env(forks), capture_output=True, text=True, timeout=900,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 2):
        raise SystemExit("ezctl net check failed (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:],
                                                                      proc.stderr[-2000:]))
    return elapsed, json.loads(proc.stdout)


def bench_size(nodes, forks, base, runs, profile=0):
    lab = Lab("nchk%d-%d" % (nodes, os.getpid()))
    try:
        lab.up(nodes=nodes)
        cdir = lab.write_cluster(base, lab.name)
        (cdir / "config.yml").write_text(CONFIG, encoding="utf-8")
        playbook(cdir, REPO / "playbooks" / "06.network.yml", forks)
        for node in (n["name"] for n in lab.load_state()["nodes"]):
            lab.pod_add(node, "p-" + node)
        ping10 = base / "ping10.yml"
        ping10.write_text(PING10, encoding="utf-8")
        before, _proc = playbook(cdir, ping10, forks)
        checks = []
        for _run in range(runs):
            took, report = net_check(base, lab.name, forks)
            if not report["ok"]:
                raise SystemExit("net check failed on a healthy lab: %s" % ", ".join(report["failed"]))
            checks.append(took)
        after, _proc = playbook(cdir, ping10, forks)
        fig = {"nodes": nodes, "ping10": (before + after) / 2, "check": statistics.median(checks), "runs": checks}
        if profile:  # one more run, of the playbook itself, with the task_times callback
            _took, proc = playbook(cdir, REPO / "playbooks" / "net_check.yml", forks, profile=True)
            fig["profile"] = profile_lines(proc, profile)
        return fig
    finally:
        lab.down()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="4,8", help="lab sizes, comma-separated (default 4,8)")
    parser.add_argument("--runs", type=int, default=3, help="net check runs per size (the median is shown)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the timed runs, run net_check.yml once with task_times and show its N slowest tasks")
    parser.add_argument("--forks", type=int, default=None, help="Ansible forks (default: 20, at least the lab size)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_netcheck needs root: the lab builds namespaces")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    forks = args.forks or max([20] + sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-netcheck-") as tmp:
        base = Path(tmp)
        (base / "playbooks").symlink_to(REPO / "playbooks")
        for nodes in sizes:
            fig = bench_size(nodes, forks, base, args.runs, args.profile)
            rows.append(fig)
            print("%d nodes: net check %.1f s (median of %s), ping10 %.1f s, ratio %.2fx"
                  % (nodes, fig["check"], ", ".join("%.1f" % t for t in fig["runs"]), fig["ping10"],
                     fig["check"] / fig["ping10"]), flush=True)
            for line in fig.get("profile", []):
                print("  " + line, flush=True)
    print("\n| nodes | net check (s) | ping10 (s) | ratio |\n|---|---|---|---|")
    for fig in rows:
        print("| %d | %.1f | %.1f | %.2fx |" % (fig["nodes"], fig["check"], fig["ping10"], fig["check"] / fig["ping10"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
