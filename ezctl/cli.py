"""ezctl: kubeasz's command line, for the flannel network step and the namespace lab.

Base directory (holds ``playbooks/`` and ``clusters/``): ``--base``, else ``$KUBEASZ_BASE``,
else the current directory when it holds ``playbooks/``.

    ezctl new <cluster>                 copy clusters/example to clusters/<cluster>
    ezctl list                          list clusters (the current one is marked)
    ezctl checkout <cluster>            make <cluster> the current one
    ezctl setup <cluster> 06|network [-- ansible-playbook args]
    ezctl lab up|down|status <cluster>  build / remove / show the namespace lab
                                        (lab up --ipv6: nodes get IPv6 next to IPv4)
    ezctl lab exec <cluster> <node>[/<pod>] -- CMD...
    ezctl lab pod add|del <cluster> <node> <pod>
    ezctl add-node|del-node|reset-net, ezctl lab node add|del: see ezctl/nodes.py
    ezctl net status <cluster> [--json] [--svg FILE]: see ezctl/status.py
    ezctl net check <cluster> [--json] [--svg FILE]: see ezctl/netcheck.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

from ezctl import lab as labmod
from ezctl import netcheck, nodes, status
from ezctl.clusters import (CURRENT_FILE, CliError, after_dashes, check_name, cluster_dir, current_cluster,
                            default_runner, find_base, list_clusters, playbook_argv, playbook_files)
from ezctl.helptext import CLUSTER_HELP, LAB_HELP
from ezctl.labsys import LabError

# kubeasz steps this collection provides: step → playbook
STEPS = {"06": "playbooks/06.network.yml", "network": "playbooks/06.network.yml"}


# --------------------------------------------------------------------------- commands
def new_template(base: Path) -> tuple[Path, dict]:
    """The template of ``ezctl new`` in ``base``: this repository's ``clusters/example`` (copied as
    it is), or kubeasz's home layout ``example/`` ({target file: its source}: ``hosts.multi-node``
    becomes ``hosts``, with ``config.yml``)."""
    ours = base / "clusters" / "example"
    if ours.is_dir():
        return ours, {}
    kubeasz = base / "example"
    if (kubeasz / "hosts.multi-node").is_file() and (kubeasz / "config.yml").is_file():
        return kubeasz, {"hosts": kubeasz / "hosts.multi-node", "config.yml": kubeasz / "config.yml"}
    raise CliError(f"template {ours} not found (nor kubeasz's {kubeasz}/hosts.multi-node and config.yml)")


BASE_DIR_RE = re.compile(r'(?m)^base_dir=.*$')
PLACEHOLDER_RE = re.compile(r'"(__[a-z0-9_]+__)"')


def fill_new_cluster(text: str, cluster: str, base: Path, is_hosts: bool) -> str:
    """kubeasz's placeholder ``_cluster_name_`` replaced; in the hosts file ``base_dir`` is the base
    the cluster was made in (so `--base DIR setup` runs against DIR, not kubeasz's /etc/kubeasz)."""
    text = text.replace("_cluster_name_", cluster)
    if is_hosts:
        text = BASE_DIR_RE.sub(lambda m: f'base_dir="{base}"', text)
    return text


def cmd_new(args, base: Path, runner) -> int:
    target = cluster_dir(base, args.cluster, must_exist=False)
    if args.cluster == "example":
        raise CliError("'example' is the template cluster; choose another name")
    if target.exists():
        raise CliError(f"cluster {args.cluster} already exists: {target}")
    example, files = new_template(base)
    if files:   # kubeasz's layout: two files
        target.mkdir(parents=True)
        for name, source in files.items():
            shutil.copyfile(source, target / name)
    else:
        shutil.copytree(example, target)
    left = set()
    for path in target.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            filled = fill_new_cluster(text, args.cluster, base, path == target / "hosts")
            if filled != text:
                path.write_text(filled, encoding="utf-8")
            left.update(PLACEHOLDER_RE.findall(filled))
    print(f"cluster {args.cluster} created in {target} from {example}: edit hosts and config.yml, then "
          f"`ezctl setup {args.cluster} network`")
    if left:   # kubeasz's ezctl new fills them with the versions its ezdown downloaded
        print(f"ezctl: warning: config.yml keeps kubeasz's placeholders {', '.join(sorted(left))}: write the "
              "versions there (kubeasz's own `ezctl new` fills them from ezdown)", file=sys.stderr)
    return 0


def cmd_list(args, base: Path, runner) -> int:
    current = current_cluster(base)
    names = list_clusters(base)
    if not names:
        print(f"no clusters in {base / 'clusters'}")
    for name in names:
        print(f"{name} (current)" if name == current else name)
    return 0


def cmd_checkout(args, base: Path, runner) -> int:
    cluster_dir(base, args.cluster)
    (base / "clusters" / CURRENT_FILE).write_text(args.cluster + "\n", encoding="utf-8")
    print(f"current cluster: {args.cluster}")
    return 0


def setup_argv(base: Path, cluster: str, step: str, extra=()) -> list[str]:
    """The exact ansible-playbook argv of ``ezctl setup`` (run with cwd = base)."""
    if step not in STEPS:
        raise CliError(f"unknown step {step!r}: kubeasz.network provides step 06 (network) "
                       f"only; choose one of {', '.join(STEPS)}")
    playbook_files(base, cluster, STEPS[step])
    return playbook_argv(cluster, STEPS[step], *extra)


def cmd_setup(args, base: Path, runner) -> int:
    argv = setup_argv(base, args.cluster, args.step, after_dashes(args.extra))
    print("+ " + " ".join(argv), flush=True)
    return runner(argv, str(base))


# --------------------------------------------------------------------------- lab
def _lab(args) -> labmod.Lab:
    return labmod.Lab(check_name(args.cluster), root=args.lab_root)


def cmd_lab_up(args, base: Path, runner) -> int:
    lab = _lab(args)
    state = lab.up(nodes=args.nodes, segments=args.segments, ipv6=args.ipv6)
    cdir = lab.write_cluster(base, args.cluster)
    for node in state["nodes"]:
        ip6 = f"\t{node['ip6']}/{node.get('prefixlen6', 64)}" if node.get("ip6") else ""
        print(f"{node['name']}\t{node['ip']}/24{ip6}\tsegment {node['segment']}")
    print(f"lab {args.cluster} is up in {lab.dir}; inventory: {cdir / 'hosts'}")
    return 0


def cmd_lab_down(args, base, runner) -> int:
    lab = _lab(args)
    lab.down()
    print(f"lab {args.cluster} removed")
    return 0


def cmd_lab_status(args, base, runner) -> int:
    status = _lab(args).status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0 if status["up"] else 3
    if not status["nodes"]:
        print(f"lab {args.cluster}: down")
        return 3
    print(f"lab {args.cluster}: {'up' if status['up'] else 'BROKEN (run ezctl lab down)'} "
          f"({status['dir']}, {status['segments']} segment(s)"
          f"{', IPv6' if status.get('ipv6') else ''})")
    for node in status["nodes"]:
        pods = status["pods"].get(node["name"], {})
        pod_text = " ".join(f"{p}={','.join(pod_ip_texts(v))}" for p, v in sorted(pods.items()))
        ip6 = f" {node['ip6']:<16}" if node.get("ip6") else ""
        print(f"  {node['name']:<8} {node.get('ip', '?'):<14}{ip6} "
              f"seg{node.get('segment', '?')} {'ok' if node['present'] else 'MISSING'} "
              f"{pod_text}".rstrip())
    return 0 if status["up"] else 3


def cmd_lab_exec(args, base, runner) -> int:
    argv = after_dashes(args.command)
    if not argv:
        raise CliError("no command given: ezctl lab exec CLUSTER NODE -- CMD...")
    return _lab(args).exec(args.target, argv, check=False, capture=False,
                           timeout=None).returncode


def pod_ip_texts(record: dict) -> list[str]:
    """A pod's addresses, IPv4 first: what `lab pod add` prints and `lab status` shows."""
    return [str(record[k]) for k in ("ip", "ip6") if record.get(k)] or ["None"]


def cmd_pod_add(args, base, runner) -> int:
    lab = _lab(args)
    primary = lab.pod_add(args.node, args.pod)
    try:
        texts = pod_ip_texts(lab.pod_addresses(args.node, args.pod))
    except LabError:
        texts = [primary]
    print(" ".join(texts))  # IPv4-only: the IP alone, as before; dual-stack: "IPv4 IPv6"
    return 0


def cmd_pod_del(args, base, runner) -> int:
    _lab(args).pod_del(args.node, args.pod)
    return 0


# --------------------------------------------------------------------------- parser
def version() -> str:
    """The collection's version: galaxy.yml of the checkout ezctl runs from, else the installed
    package's (pyproject.toml, kept equal to galaxy.yml's)."""
    galaxy = Path(__file__).resolve().parent.parent / "galaxy.yml"
    with contextlib.suppress(OSError, KeyError, TypeError, yaml.YAMLError):
        return str(yaml.safe_load(galaxy.read_text(encoding="utf-8"))["version"])
    import importlib.metadata  # only here: 20 ms of every ezctl start
    try:
        return importlib.metadata.version("kubeasz-network")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ezctl", description="kubeasz.network: flannel networking for kubeasz clusters, "
        "and a lab of namespace nodes to try it on.")
    parser.add_argument("--base", help="base directory (default: $KUBEASZ_BASE, or the "
                        "current directory when it holds playbooks/)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()} (collection kubeasz.network)",
                        help="print the version of ezctl and of the collection it goes with, and exit")
    # --base and --lab-root are accepted before or after the sub-command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    labopt = argparse.ArgumentParser(add_help=False, parents=[common])
    labopt.add_argument("--lab-root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("new", parents=[common], help="create a cluster folder from clusters/example")
    p.add_argument("cluster", help="name of the new cluster: clusters/<cluster>/ must not exist yet")
    p.set_defaults(func=cmd_new, needs_base=True)
    p = sub.add_parser("list", parents=[common], help="list clusters")
    p.set_defaults(func=cmd_list, needs_base=True)
    p = sub.add_parser("checkout", parents=[common], help="make a cluster the current one")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.set_defaults(func=cmd_checkout, needs_base=True)
    p = sub.add_parser("setup", parents=[common], help="run a kubeasz step (06 / network)",
                       description="Runs ansible-playbook -i clusters/C/hosts "
                       "-e @clusters/C/config.yml playbooks/06.network.yml in the base dir; "
                       "arguments after -- go to ansible-playbook.")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("step", help="06 or network")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="-- extra ansible-playbook args")
    p.set_defaults(func=cmd_setup, needs_base=True)

    lab = sub.add_parser("lab", parents=[common], help="namespace lab: up, down, status, exec, pod")
    lab.add_argument("--lab-root",
                     default=os.environ.get("KUBEASZ_LAB_ROOT", labmod.DEFAULT_ROOT),
                     help="where labs live (default: $KUBEASZ_LAB_ROOT or %(default)s)")
    lsub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = lsub.add_parser("up", parents=[labopt], help="build the lab and write clusters/<cluster>/")
    p.add_argument("cluster", help=LAB_HELP)
    p.add_argument("--nodes", type=int, default=4, help="number of nodes (default 4)")
    p.add_argument("--segments", type=int, choices=(1, 2), default=1,
                   help="2 puts the last node on a second, routed segment")
    p.add_argument("--ipv6", action="store_true", default=None,
                   help="give nodes IPv6 too: 198.18.S.H gets fd53:18:0:S::H/64 (kept for "
                   "nodes added later; default: what the lab has, IPv4 only for a new lab)")
    p.set_defaults(func=cmd_lab_up, needs_base=True)
    p = lsub.add_parser("down", parents=[labopt], help="remove the lab (keeps clusters/<cluster>/)")
    p.add_argument("cluster", help=LAB_HELP)
    p.set_defaults(func=cmd_lab_down, needs_base=False)
    p = lsub.add_parser("status", parents=[labopt], help="show nodes and pods (exit 3 when not up)")
    p.add_argument("cluster", help=LAB_HELP)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_lab_status, needs_base=False)
    p = lsub.add_parser("exec", parents=[labopt], help="run a command in a node or node/pod")
    p.add_argument("cluster", help=LAB_HELP)
    p.add_argument("target", metavar="NODE[/POD]", help="a lab node (n1), or a pod in it (n1/p1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD...: the command and its arguments")
    p.set_defaults(func=cmd_lab_exec, needs_base=False)
    pod = lsub.add_parser("pod", parents=[labopt], help="add or delete a pod (real CNI plugins)")
    psub = pod.add_subparsers(dest="pod_command", metavar="POD_COMMAND", required=True)
    for name, func, text in (("add", cmd_pod_add, "create a pod and print its IP (IPv4 IPv6 when dual-stack)"),
                             ("del", cmd_pod_del, "delete a pod (CNI DEL)")):
        p = psub.add_parser(name, parents=[labopt], help=text)
        p.add_argument("cluster", help=LAB_HELP)
        p.add_argument("node", help="the lab node the pod lives in (n1)")
        p.add_argument("pod", help="the pod's name, unique in its node (p1)")
        p.set_defaults(func=func, needs_base=False)
    nodes.add_parsers(sub, common, lsub, labopt)  # add-node, del-node, reset-net, lab node (issue 13)
    status.add_parsers(sub, common)  # net status (issue 13)
    netcheck.add_parsers(sub, common)  # net check (issue 26)
    return parser


# --------------------------------------------------------------------------- kubeasz's own ezctl
# In a kubeasz home (/etc/kubeasz: kubeasz's own bash `ezctl` beside playbooks/ and example/) this
# command never stands in for kubeasz's: every sub-command but the ones kubeasz's ezctl does not
# have goes to it, unchanged (`setup <c> 06` there runs the very playbook this one would).
OURS_ONLY = ("lab", "net", "reset-net")
PASSED_ENV = "EZCTL_FROM_KUBEASZ_NET"   # set for kubeasz's ezctl: never pass back and forth


def _command_of(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(--base value, sub-command, argv without --base) of a command line."""
    base, rest, command, i = None, [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--base" and i + 1 < len(argv):
            base, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--base="):
            base, i = arg.split("=", 1)[1], i + 1
            continue
        if command is None and not arg.startswith("-"):
            command = arg
        rest.append(arg)
        i += 1
    return base, command, rest


def kubeasz_ezctl(base: Path) -> Path | None:
    """kubeasz's own ezctl in ``base`` (its home), unless it is this command itself."""
    found = base / "ezctl"
    if not (found.is_file() and os.access(found, os.X_OK) and (base / "playbooks").is_dir()):
        return None
    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    return None if me == found.resolve() else found


def pass_through(argv: list[str]) -> tuple[list[str], str] | None:
    """(argv, cwd) for kubeasz's own ezctl when it should run this command line, else None."""
    if os.environ.get(PASSED_ENV):
        return None
    option, command, rest = _command_of(argv)
    if command is None or command in OURS_ONLY:
        return None
    try:
        base = find_base(option)
    except CliError:
        return None
    found = kubeasz_ezctl(base)
    return ([str(found), *rest], str(base)) if found else None


def main(argv=None, runner=None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    passed = pass_through(argv)
    if passed is not None:
        os.environ[PASSED_ENV] = "1"
        print(f"ezctl: passing `{' '.join(passed[0][1:])}` to kubeasz's own {passed[0][0]}",
              file=sys.stderr, flush=True)
        try:
            return (runner or default_runner)(passed[0], passed[1])
        except CliError as exc:
            print(f"ezctl: error: {exc}", file=sys.stderr)
            return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        base = find_base(args.base) if args.needs_base else None
        code = args.func(args, base, runner or default_runner)
        sys.stdout.flush()  # a reader gone shows here, where it is handled
        return code
    except (CliError, LabError) as exc:
        print(f"ezctl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader stopped early (`ezctl net check c | head -1`): end quietly, as cat does; what
        # is left in stdout's buffer goes to /dev/null, not to a second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
