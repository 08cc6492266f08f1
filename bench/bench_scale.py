# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scale benchmark of step 06 (FLANNEL_DATAPLANE=ansible) on labs of 4, 8, 16 (32) nodes.

Per lab size, in one run and on one inventory (the lab's, `kubeasz.network.netns` connection):

- ``ping10``: a playbook of ten ``ansible.builtin.ping`` tasks, Ansible's own floor (before and
  after the 06 runs; their mean is the baseline); ``raw10``, ten ``ansible.builtin.raw`` tasks,
  shows how much of it is the controller's (no Python starts on the node);
- ``cold``: 06 on fresh nodes; ``no-op``: 06 again, which must report changed=0;
  ``one-change``: 06 after one key changed (DIRECT_ROUTING toggled);

and the ratios against ping10 (targets: no-op <= 1.5x, cold <= 2.5x, one-change <= 2x, not
growing with nodes) and the seconds per node. Timings on a shared machine are noisy: read the
ratios, which are measured against a baseline of the same run. Prints a markdown table.

    sudo .venv/bin/python bench/bench_scale.py [--sizes 4,8,16] [--forks 20] [--profile]

``--profile`` adds the task_times callback (bench/callback_plugins) to the no-op run and prints
its slowest tasks; ``--pipelining 4`` also times no-op and ping10 with the connection's pipelining
off and on again at 4 nodes. The labs live in network namespaces under /run/kubeasz-lab and are
removed at the end; the host's own network namespace is never touched.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ezctl.lab import Lab  # noqa: E402

CONFIG = ("# bench_scale: Ansible is flannel's control plane (no flanneld)\n"
          "FLANNEL_DATAPLANE: ansible\nFLANNEL_BACKEND: vxlan\nDIRECT_ROUTING: {direct}\n"
          "NODE_CIDR_LEN: 24\nFLANNEL_SUBNET_STORE: file\n")
PING10 = "\n".join(
    ["---", "- name: Ten pings, Ansible's own floor", "  hosts: [kube_master, kube_node]",
     "  gather_facts: false", "  tasks:"]
    + ["    - name: Ping %d\n      ansible.builtin.ping:" % i for i in range(1, 11)]) + "\n"
RAW10 = PING10.replace("ansible.builtin.ping:", "ansible.builtin.raw: 'true'").replace(
    "Ten pings, Ansible's own floor", "Ten raw commands, the controller's share of the floor").replace(
    "Ping ", "Raw ")
TARGETS = {"no-op": 1.5, "cold": 2.5, "one-change": 2.0}


def env(forks, pipelining=True, profile=False):
    out = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_FORKS=str(forks),
               ANSIBLE_PIPELINING="True" if pipelining else "False")
    if profile:
        out.update(ANSIBLE_CALLBACK_PLUGINS=str(REPO / "bench" / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_times")
    return out


def playbook(cdir, book, forks, pipelining=True, profile=False):
    """Run a playbook on the lab's inventory: (seconds, completed process)."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(cdir / "hosts"),
            "-e", "@%s" % (cdir / "config.yml"), str(book)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env(forks, pipelining, profile), capture_output=True,
                          text=True, timeout=3600, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of Ansible and everything it ran (the node side too): steadier than wall time
    # on a shared machine
    proc.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (book, proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed, proc


def changed(proc):
    """Sum of changed= over the PLAY RECAP."""
    return sum(int(n) for n in re.findall(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M))


def profile_lines(proc, limit):
    """The profile_tasks lines of a run (slowest first)."""
    if "TASK TIMES" not in proc.stdout:
        return []
    lines = proc.stdout.split("TASK TIMES", 1)[-1].splitlines()
    return ["TASK TIMES" + lines[0]] + lines[1:limit + 1] if len(lines) > 1 else []


def write_config(cdir, direct):
    (cdir / "config.yml").write_text(CONFIG.format(direct=str(direct).lower()), encoding="utf-8")


def bench_size(nodes, forks, base, args):
    """All figures of one lab size."""
    lab = Lab("bench%d-%d" % (nodes, os.getpid()))
    fig = {"nodes": nodes}
    try:
        start = time.perf_counter()
        lab.up(nodes=nodes)
        fig["lab_up"] = time.perf_counter() - start
        cdir = lab.write_cluster(base, lab.name)
        write_config(cdir, False)
        book06 = REPO / "playbooks" / "06.network.yml"
        ping10 = base / "ping10.yml"
        ping10.write_text(PING10, encoding="utf-8")
        raw10 = base / "raw10.yml"
        raw10.write_text(RAW10, encoding="utf-8")

        fig["ping10_a"], proc = playbook(cdir, ping10, forks)
        cpu = {"ping10": proc.cpu}
        fig["cold"], proc = playbook(cdir, book06, forks)
        fig["cold_changed"], cpu["cold"] = changed(proc), proc.cpu
        fig["no-op"], proc = playbook(cdir, book06, forks, profile=args.profile)
        fig["noop_changed"], cpu["no-op"] = changed(proc), proc.cpu
        if args.profile:
            fig["profile"] = profile_lines(proc, args.profile_lines)
        write_config(cdir, True)
        fig["one-change"], proc = playbook(cdir, book06, forks)
        fig["change_changed"], cpu["one-change"] = changed(proc), proc.cpu
        fig["ping10_b"], proc = playbook(cdir, ping10, forks)
        cpu["ping10"] = (cpu["ping10"] + proc.cpu) / 2
        fig["raw10"], proc = playbook(cdir, raw10, forks)
        cpu["raw10"] = proc.cpu
        fig["cpu"] = cpu
        if str(nodes) in args.pipelining.split(","):
            for key, pipelining in (("nopipe", False), ("pipe", True)):
                fig["no-op_" + key], proc = playbook(cdir, book06, forks, pipelining=pipelining)
                cpu["no-op_" + key] = proc.cpu
                fig["ping10_" + key], proc = playbook(cdir, ping10, forks, pipelining=pipelining)
                cpu["ping10_" + key] = proc.cpu
        fig["ping10"] = (fig["ping10_a"] + fig["ping10_b"]) / 2
        return fig
    finally:
        lab.down()


def ratio_cell(fig, key):
    value = fig[key] / fig["ping10"]
    mark = "" if value <= TARGETS[key] else " (over %.1f×)" % TARGETS[key]
    return "%.2f×%s" % (value, mark)


def report(figs, forks):
    print()
    print("step 06 on the lab (FLANNEL_DATAPLANE=ansible, vxlan, file store), forks=%d, %d CPUs"
          % (forks, os.cpu_count() or 0))
    print()
    print("| nodes | ping10 | 06 cold | 06 no-op | 06 one-change | no-op / ping10 | cold / ping10 "
          "| one-change / ping10 | no-op s/node | cold s/node |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in figs:
        n = f["nodes"]
        print("| %d | %.1f s | %.1f s | %.1f s | %.1f s | %s | %s | %s | %.2f | %.2f |" % (
            n, f["ping10"], f["cold"], f["no-op"], f["one-change"], ratio_cell(f, "no-op"),
            ratio_cell(f, "cold"), ratio_cell(f, "one-change"), f["no-op"] / n, f["cold"] / n))
    print()
    for f in figs:
        print("%d nodes: ping10 %.1f / %.1f s (before / after), raw10 %.1f s, changed= cold %d, "
              "no-op %d, one-change %d; lab up %.1f s"
              % (f["nodes"], f["ping10_a"], f["ping10_b"], f["raw10"], f["cold_changed"],
                 f["noop_changed"], f["change_changed"], f["lab_up"]))
        c = f["cpu"]
        print("  CPU seconds: ping10 %.1f, raw10 %.1f, cold %.1f (%.2f×), no-op %.1f (%.2f×), "
              "one-change %.1f (%.2f×)" % (c["ping10"], c["raw10"], c["cold"], c["cold"] / c["ping10"],
                                           c["no-op"], c["no-op"] / c["ping10"], c["one-change"],
                                           c["one-change"] / c["ping10"]))
        if "no-op_nopipe" in f:
            print("  pipelining off: no-op %.1f s (CPU %.1f s), ping10 %.1f s (CPU %.1f s); "
                  "on: no-op %.1f s (CPU %.1f s), ping10 %.1f s (CPU %.1f s)"
                  % (f["no-op_nopipe"], c["no-op_nopipe"], f["ping10_nopipe"], c["ping10_nopipe"],
                     f["no-op_pipe"], c["no-op_pipe"], f["ping10_pipe"], c["ping10_pipe"]))
        for line in f.get("profile", []):
            print("  " + line)
    bad = [f["nodes"] for f in figs if f["noop_changed"]]
    if bad:
        print("NOT IDEMPOTENT: the no-op run reported changes at %s nodes" % bad)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="4,8,16", help="lab sizes, comma-separated (default 4,8,16)")
    parser.add_argument("--forks", type=int, default=None,
                        help="Ansible forks (default: ansible.cfg's, at least the lab size)")
    parser.add_argument("--profile", action="store_true", help="profile_tasks on the no-op run")
    parser.add_argument("--profile-lines", type=int, default=25)
    parser.add_argument("--pipelining", default="",
                        help="lab sizes (comma-separated) at which to also time no-op and ping10 with "
                             "the connection's pipelining off and on again")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_scale needs root: the lab builds namespaces")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    forks = args.forks or max([20] + sizes)
    figs = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for nodes in sizes:
            figs.append(bench_size(nodes, forks, Path(tmp), args))
            print("%d nodes: ping10 %.1f s, cold %.1f s, no-op %.1f s, one-change %.1f s"
                  % (nodes, figs[-1]["ping10"], figs[-1]["cold"], figs[-1]["no-op"],
                     figs[-1]["one-change"]), flush=True)
    return report(figs, forks)


if __name__ == "__main__":
    sys.exit(main())
