"""``ezctl net check <cluster> [--json] [--svg FILE]``: why two pods that match their plans still
cannot talk, per pair of nodes and per layer.

It runs ``playbooks/net_check.yml`` (the collection's module ``net_probe`` on every node: facts,
then the probes, which watch the VXLAN port meanwhile; then the verdict in ``net_probe``'s action
plugin on the controller, which writes the report) and prints the report it
writes: a per-pair matrix of the first failing layer, each failure with its likely cause and fix
(``--json``: the report as JSON; ``--svg``: a drawing with the failing pairs marked). It changes
nothing on any node. Exit status: 0 when every pair passes every layer, 2 naming what failed
(on stderr), 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ezctl import clusters
from ezctl.helptext import CLUSTER_HELP

PLAYBOOK = "playbooks/net_check.yml"


def run_check(base: Path, cluster: str, extra=()) -> tuple[dict, subprocess.CompletedProcess]:
    """(the report file's content, ansible-playbook's process) of net_check.yml."""
    clusters.playbook_files(base, cluster, PLAYBOOK)
    with tempfile.TemporaryDirectory(prefix="ezctl-check-") as tmp:
        out = Path(tmp) / "report.json"
        argv = clusters.playbook_argv(cluster, PLAYBOOK, "-e", f"flannel_check_report={out}", *extra)
        proc = subprocess.run(argv, cwd=base, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True,
                              text=True, check=False)
        if not out.is_file():
            raise clusters.CliError(f"ansible-playbook gave no report (rc {proc.returncode}): "
                                    f"{(proc.stdout + proc.stderr).strip()[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8")), proc


def cmd_net_check(args, base: Path, runner) -> int:
    result, proc = run_check(base, args.cluster)
    report = result["report"]
    if args.svg:
        Path(args.svg).write_text(result["svg"], encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(result["text"])
        if args.svg:
            print(f"drawing: {args.svg}")
    if not report["ok"]:
        print(f"ezctl: net check failed: {', '.join(report['failed'])}", file=sys.stderr)
        return 2
    if proc.returncode != 0:
        print(f"ezctl: ansible-playbook failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}",
              file=sys.stderr)
        return 1
    return 0


def _net_subparsers(sub) -> argparse._SubParsersAction:
    """The sub-commands of ``ezctl net`` (made by status.add_parsers)."""
    net = sub.choices["net"]
    return next(a for a in net._actions if isinstance(a, argparse._SubParsersAction))


def add_parsers(sub, common) -> None:
    p = _net_subparsers(sub).add_parser(
        "check", parents=[common], help="every pair of nodes, layer by layer (changes nothing)",
        description="Runs playbooks/net_check.yml: per pair of nodes underlay reachability, path MTU "
        "(FLANNEL_MTU + the backend's overhead, DF set), the backend's transport (VXLAN's UDP port "
        "delivered; on-link for host-gw and DirectRouting), overlay, pod to pod, and per node pod to "
        "outside, public IPs, subnet capacity and rule backends; layers needing flannel are skipped "
        "before it is deployed. Exit 0 when everything passes, 2 naming what failed.")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--svg", metavar="FILE", help="also draw the pairs into FILE (failing ones red)")
    p.set_defaults(func=cmd_net_check, needs_base=True)
