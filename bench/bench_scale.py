# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scale benchmark of step 06 (FLANNEL_DATAPLANE=ansible) on labs of 4, 8, 16 and 32 nodes.

Per lab size N, in one run and on one inventory (the lab's, `kubeasz.network.netns` connection):

- ``ping10``: a playbook of ten ``ansible.builtin.ping`` tasks, Ansible's own floor (before and
  after the 06 runs; their mean is the baseline); ``raw10``, ten ``ansible.builtin.raw`` tasks,
  shows how much of it is the controller's (no Python starts on the node);
- ``cold``: 06 on fresh nodes; ``no-op``: 06 again, which must report changed=0;
  ``one-change``: 06 after one key changed (DIRECT_ROUTING toggled);
- ``add-node``: one more lab node (``ezctl lab node add``), then ``ezctl add-node <cluster> <ip>``
  as a user runs it (22.addnode.yml: the new node, then the N others learn it), on the cluster
  the runs above left (DIRECT_ROUTING on);

each in wall and in CPU seconds (Ansible and everything it ran, the nodes' Python included), and
the ratios against ping10 with issue 27's goals: no-op <= 0.5x, one-change <= 1.2x, cold <= 1.5x,
add-node <= 1.5x the no-op of N nodes, none of them growing with the node count faster than
ping10 (its ratio to ping10 at the largest size against the smallest). A ratio over its goal is
marked in the tables; the last lines say per goal whether it is met. Timings on a shared machine
are noisy: read the ratios, which are measured against a baseline of the same lab and run, and
the load average in the header.

    sudo .venv/bin/python bench/bench_scale.py [--sizes 4,8,16,32] [--forks 33] [--markdown]
                                               [--profile] [--pipelining 4]

``--sizes`` defaults to $BENCH_SCALE_SIZES, else 4,8,16,32. ``--markdown`` prints only what
README.md's Performance section shows (the header line, the two tables, the goal lines; the
progress goes to stderr). ``--profile`` adds the task_times callback (bench/callback_plugins) to
the cold, no-op and add-node runs and prints their slowest tasks; ``--pipelining 4`` also times no-op and ping10 with the
connection's pipelining off and on again at 4 nodes. The labs live in network namespaces under
/run/kubeasz-lab and are removed at the end, also after a failure; the host's own network
namespace is never touched.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import signal
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
DEFAULT_SIZES = "4,8,16,32"
VARIANTS = ("cold", "no-op", "one-change", "add-node")
KINDS = (("wall", "wall"), ("cpu", "CPU"))  # figure kind, its label
# issue 27's goals: the variant's time over ping10's (add-node: over the no-op of the N nodes it
# joins), at every size
TARGETS = {"cold": 1.5, "no-op": 0.5, "one-change": 1.2}
ADD_NODE_TARGET = 1.5
# "grows faster than ping10": its ratio to ping10 at the largest size is more than this times the
# ratio at the smallest (one run on a shared machine: a few per cent are noise)
GROWTH_SLACK = 1.10


def env(forks, pipelining=True, profile=False):
    out = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_FORKS=str(forks),
               ANSIBLE_PIPELINING="True" if pipelining else "False")
    if profile:
        out.update(ANSIBLE_CALLBACK_PLUGINS=str(REPO / "bench" / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_times")
    return out


def timed(argv, what, forks, pipelining=True, profile=False):
    """Run argv (cwd: the repository): (seconds, completed process with .cpu); exit on a failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env(forks, pipelining, profile), capture_output=True,
                          text=True, timeout=3600, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the command and everything it ran and waited for (Ansible's workers, the node
    # side too): steadier than wall time on a shared machine
    proc.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s\n%s" % (what, proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed, proc


def playbook(cdir, book, forks, pipelining=True, profile=False):
    """Run a playbook on the lab's inventory: (seconds, completed process)."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(cdir / "hosts"),
            "-e", "@%s" % (cdir / "config.yml"), str(book)]
    return timed(argv, book, forks, pipelining, profile)


def add_node(lab, base, forks, profile=False):
    """``ezctl lab node add`` (untimed), then ``ezctl add-node <cluster> <ip>`` timed as a user
    runs it: (seconds, completed process, seconds the lab took to make the node)."""
    start = time.perf_counter()
    _node, ip = lab.node_add()
    made = time.perf_counter() - start
    argv = [sys.executable, "-m", "ezctl", "--base", str(base), "add-node", "--lab-root", str(lab.root),
            lab.name, ip]
    elapsed, proc = timed(argv, "ezctl add-node %s %s" % (lab.name, ip), forks, profile=profile)
    return elapsed, proc, made


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
    """All figures of one lab size: {"nodes", "wall": {run: s}, "cpu": {run: s}, "changed": {run: n},
    "lab_up", "node_add"[, "profile_noop", "profile_add"]}; the lab is taken down whatever happens."""
    lab = Lab("bench%d-%d" % (nodes, os.getpid()))
    fig = {"nodes": nodes, "wall": {}, "cpu": {}, "changed": {}}

    def record(key, took, proc):
        fig["wall"][key], fig["cpu"][key], fig["changed"][key] = took, proc.cpu, changed(proc)
        return proc

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

        record("ping10_a", *playbook(cdir, ping10, forks))
        proc = record("cold", *playbook(cdir, book06, forks, profile=args.profile))
        if args.profile:
            fig["profile_cold"] = profile_lines(proc, args.profile_lines)
        proc = record("no-op", *playbook(cdir, book06, forks, profile=args.profile))
        if args.profile:
            fig["profile_noop"] = profile_lines(proc, args.profile_lines)
        write_config(cdir, True)
        record("one-change", *playbook(cdir, book06, forks))
        record("ping10_b", *playbook(cdir, ping10, forks))
        record("raw10", *playbook(cdir, raw10, forks))
        if str(nodes) in args.pipelining.split(","):
            for key, pipelining in (("nopipe", False), ("pipe", True)):
                record("no-op_" + key, *playbook(cdir, book06, forks, pipelining=pipelining))
                record("ping10_" + key, *playbook(cdir, ping10, forks, pipelining=pipelining))
        # last: from here on the inventory holds N + 1 nodes
        took, proc, fig["node_add"] = add_node(lab, base, forks, args.profile)
        record("add-node", took, proc)
        if args.profile:
            fig["profile_add"] = profile_lines(proc, args.profile_lines)
        for kind, _label in KINDS:
            fig[kind]["ping10"] = (fig[kind]["ping10_a"] + fig[kind]["ping10_b"]) / 2
        return fig
    finally:
        lab.down()


# --------------------------------------------------------------------------- the report
def ratios(fig, kind):
    """{variant: (ratio, goal or None)}: the variants over ping10, and add-node over the no-op."""
    values = fig[kind]
    out = {v: (values[v] / values["ping10"], TARGETS.get(v)) for v in VARIANTS}
    out["add-node/no-op"] = (values["add-node"] / values["no-op"], ADD_NODE_TARGET)
    return out


def over(value, goal):
    """A ratio misses its goal as printed (two decimals): 1.504× meets 1.5×."""
    return goal is not None and round(value, 2) > goal


def ratio_cell(value, goal):
    mark = " (over %.1f×)" % goal if over(value, goal) else ""
    return "%.2f×%s" % (value, mark)


def table(figs, kind):
    """The markdown table of one kind ("wall" seconds or "cpu" seconds)."""
    unit = " s" if kind == "wall" else ""
    heads = (["nodes", "ping10"] + ["06 %s" % v if v != "add-node" else v for v in VARIANTS]
             + ["%s / ping10%s" % (v, " (≤ %.1f×)" % TARGETS[v] if v in TARGETS else "") for v in VARIANTS]
             + ["add-node / no-op (≤ %.1f×)" % ADD_NODE_TARGET])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---:|" * len(heads)]
    for fig in figs:
        rat = ratios(fig, kind)
        cells = (["%d" % fig["nodes"]] + ["%.1f%s" % (fig[kind][v], unit) for v in ("ping10",) + VARIANTS]
                 + [ratio_cell(*rat[v]) for v in VARIANTS + ("add-node/no-op",)])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def growth_text(small, large, variant, kind, label):
    """How ``variant`` grows from the smallest lab to the largest against ping10, in ``kind``."""
    before, after = ratios(small, kind)[variant][0], ratios(large, kind)[variant][0]
    return "%s %d→%d nodes: %s × %.1f, ping10 × %.1f, %s (%s / ping10 %.2f× → %.2f×)" % (
        label, small["nodes"], large["nodes"], variant, large[kind][variant] / small[kind][variant],
        large[kind]["ping10"] / small[kind]["ping10"],
        "GROWS FASTER than ping10" if after > before * GROWTH_SLACK else "not faster than ping10",
        variant, before, after)


def goal_lines(figs):
    """One line per goal: met or missed, in wall and in CPU seconds, and whether the variant grows
    with the node count faster than ping10 (its ratio to ping10 from the smallest size to the
    largest, wall and CPU)."""
    small, large = min(figs, key=lambda f: f["nodes"]), max(figs, key=lambda f: f["nodes"])
    out = []
    for key in ("no-op", "one-change", "cold", "add-node/no-op"):
        variant = key.split("/", maxsplit=1)[0]
        goal = TARGETS.get(key, ADD_NODE_TARGET)
        what = ("%s ≤ %.1f× ping10" % (key, goal) if key in TARGETS
                else "add-node ≤ %.1f× the no-op of the N nodes it joins" % goal)
        parts = []
        for kind, label in KINDS:
            missed = [f for f in figs if over(ratios(f, kind)[key][0], goal)]
            parts.append("%s %s" % (label, "met at every size" if not missed else "MISSED at " + ", ".join(
                "%d (%.2f×)" % (f["nodes"], ratios(f, kind)[key][0]) for f in missed)))
        if small is large:
            parts.append("growth: one size only")
        else:
            parts.extend(growth_text(small, large, variant, kind, label) for kind, label in KINDS)
        out.append("- %s: %s" % (what, "; ".join(parts)))
    return out


def header(forks, load, started):
    try:
        from ansible.release import __version__ as ansible_version
    except ImportError:  # pragma: no cover - the bench runs in the venv, which has it
        ansible_version = "?"
    commit = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip() or "?"
    return ("Step 06 on lab namespaces (FLANNEL_DATAPLANE=ansible, vxlan, file store), %s, "
            "load average %.2f %.2f %.2f at the start (%.2f at the end), %d CPUs, forks %d, "
            "ansible-core %s, commit %s:" % (
                started.strftime("%Y-%m-%d %H:%M UTC"), load[0], load[1], load[2], os.getloadavg()[0],
                os.cpu_count() or 0, forks, ansible_version, commit))


def details(fig):
    """The figures behind one row, and the profile when asked for."""
    wall, cpu, chg = fig["wall"], fig["cpu"], fig["changed"]
    lines = ["%d nodes: ping10 %.1f / %.1f s (before / after), raw10 %.1f s (CPU %.1f s); changed= cold %d, "
             "no-op %d, one-change %d, add-node %d; lab up %.1f s, lab node add %.1f s"
             % (fig["nodes"], wall["ping10_a"], wall["ping10_b"], wall["raw10"], cpu["raw10"], chg["cold"],
                chg["no-op"], chg["one-change"], chg["add-node"], fig["lab_up"], fig["node_add"])]
    if "no-op_nopipe" in wall:
        lines.append("  pipelining off: no-op %.1f s (CPU %.1f s), ping10 %.1f s (CPU %.1f s); "
                     "on: no-op %.1f s (CPU %.1f s), ping10 %.1f s (CPU %.1f s)"
                     % (wall["no-op_nopipe"], cpu["no-op_nopipe"], wall["ping10_nopipe"], cpu["ping10_nopipe"],
                        wall["no-op_pipe"], cpu["no-op_pipe"], wall["ping10_pipe"], cpu["ping10_pipe"]))
    for key, run in (("profile_cold", "cold"), ("profile_noop", "no-op"), ("profile_add", "add-node")):
        if fig.get(key):
            lines.append("  %s run, slowest tasks:" % run)
            lines.extend("    " + line for line in fig[key])
    return lines


def report(figs, forks, load, started, markdown=False):
    """Print the header, the wall and CPU tables and the goal lines (and, unless ``markdown``, the
    figures behind them); 1 when a no-op run changed something."""
    out = [header(forks, load, started), "", "Wall seconds:", ""] + table(figs, "wall")
    out += ["", "CPU seconds (Ansible and everything it ran, the nodes' Python included):", ""]
    out += table(figs, "cpu") + ["", "Goals (issue 27):", ""] + goal_lines(figs)
    if not markdown:
        out.append("")
        for fig in figs:
            out.extend(details(fig))
    print("\n".join(out), flush=True)
    bad = [f["nodes"] for f in figs if f["changed"]["no-op"]]
    if bad:
        print("NOT IDEMPOTENT: the no-op run reported changes at %s nodes" % bad, file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SCALE_SIZES") or DEFAULT_SIZES,
                        help="lab sizes, comma-separated (default $BENCH_SCALE_SIZES, else %s)" % DEFAULT_SIZES)
    parser.add_argument("--forks", type=int, default=None,
                        help="Ansible forks (default: 20, at least the largest lab size + 1, add-node's)")
    parser.add_argument("--markdown", action="store_true",
                        help="print only the header line, tables and goal lines for README.md's Performance "
                             "section (progress on stderr)")
    parser.add_argument("--profile", action="store_true", help="task_times on the cold, no-op and add-node runs")
    parser.add_argument("--profile-lines", type=int, default=25)
    parser.add_argument("--pipelining", default="",
                        help="lab sizes (comma-separated) at which to also time no-op and ping10 with "
                             "the connection's pipelining off and on again")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_scale needs root: the lab builds namespaces")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not sizes:
        raise SystemExit("--sizes: give at least one lab size")
    # a SIGTERM (a timeout, make interrupted) unwinds like Ctrl-C: each lab's finally takes it down
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load, started = os.getloadavg(), datetime.datetime.now(datetime.timezone.utc)
    forks = args.forks or max([20] + [n + 1 for n in sizes])
    figs = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        base = Path(tmp)
        (base / "playbooks").symlink_to(REPO / "playbooks")  # ezctl's base: playbooks/ and clusters/
        for nodes in sizes:
            fig = bench_size(nodes, forks, base, args)
            figs.append(fig)
            print("%d nodes: ping10 %.1f s, %s" % (nodes, fig["wall"]["ping10"], ", ".join(
                "%s %.1f s" % (v, fig["wall"][v]) for v in VARIANTS)), file=sys.stderr, flush=True)
    return report(figs, forks, load, started, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
