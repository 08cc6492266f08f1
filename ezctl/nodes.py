"""ezctl commands for nodes that join and leave, and for taking flannel off nodes.

    ezctl add-node <cluster> <ip> [host vars ...]   add <ip> to [kube_node], run 22.addnode.yml
    ezctl del-node <cluster> <ip>                   run 32.delnode.yml (it leaves [kube_node])
    ezctl reset-net <cluster> [--nodes N[,N..]]     run 99.network-reset.yml
    ezctl lab node add <cluster> [--segment N]      one more lab node: prints "<node> <ip>"
    ezctl lab node del <cluster> <node>             remove a lab node

The checks follow kubeasz's ``ezctl add-node`` / ``del-node``: the IP must be a valid IPv4
address; add refuses a node already in the inventory, del one that is not in ``[kube_node]``.
For a lab cluster (``ezctl lab up``) add-node writes the lab node's connection variables on the
new inventory line, and del-node also accepts the IP of a lab node listed under its name.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shlex
import sys
from pathlib import Path

from ezctl import lab as labmod
from ezctl.clusters import CliError, after_dashes, check_name, cluster_dir, playbook_argv, playbook_files
from ezctl.helptext import CLUSTER_HELP, LAB_HELP
from ezctl.labsys import node_python

PLAYBOOKS = {"add": "playbooks/22.addnode.yml", "del": "playbooks/32.delnode.yml",
             "reset": "playbooks/99.network-reset.yml"}
# Every pattern that checks a whole argument is used with fullmatch: "$" would also match before
# a final newline ($'k8s_nodename=n5\n' wrote the connection vars on a line of their own).
HOSTVAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
# the cluster's settings (config.yml, hosts [all:vars]): the role reads them once per run, from the
# play's first host, which add-node makes the new node - a host var there would change every node
CLUSTER_KEY_RE = re.compile(r"(FLANNEL_\w+|CLUSTER_\w+|SERVICE_CIDR|PROXY_MODE|DIRECT_ROUTING|NODE_CIDR_LEN\w*)=")
NODE_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
GROUP_RE = re.compile(r"^\[([^\]]+)\]\s*$")


def check_ip(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise CliError(f"invalid IP address {value!r}: give the node's IPv4 address, "
                       "for example 192.168.1.5") from None


def check_node_ip(value: str) -> str:
    """check_ip, and an address a node can have (not loopback, multicast, reserved or unspecified)."""
    ip = ipaddress.IPv4Address(check_ip(value))
    if ip.is_loopback or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        raise CliError(f"{ip} is not a node's address (loopback, multicast, reserved or unspecified): "
                       "give the IPv4 address the other nodes reach it at")
    return str(ip)


def inventory_hosts(text: str) -> dict:
    """{group: [(host, {var: value})]} of an INI inventory (groups of hosts, not :vars/:children)."""
    groups, current = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        match = GROUP_RE.match(stripped)
        if match:
            current = match.group(1)
            groups.setdefault(current, [])
            continue
        if current is None or ":" in current or not stripped or stripped.startswith(("#", ";")):
            continue
        words = shlex.split(stripped, comments=True)
        if words:
            hostvars = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            groups[current].append((words[0], hostvars))
    return groups


def find_node(hosts_text: str, ip: str, group: str | None = None):
    """The inventory name of the node with this IP (its name, or kubeasz_node_ip), else None."""
    for name, groups in inventory_hosts(hosts_text).items():
        if group and name != group:
            continue
        for host, hostvars in groups:
            if host == ip or hostvars.get("kubeasz_node_ip") == ip:
                return host
    return None


def add_host_line(text: str, line: str, group: str = "kube_node") -> str:
    """Insert ``line`` as the first host of ``[group]`` (as kubeasz's ``sed /[kube_node/a``)."""
    lines = text.splitlines()
    for index, current in enumerate(lines):
        if current.strip() == f"[{group}]":
            lines.insert(index + 1, line)
            return "\n".join(lines) + "\n"
    raise CliError(f"no [{group}] group in the hosts file: add one")


def remove_host_line(text: str, host: str, group: str = "kube_node") -> str:
    """The inventory without ``host``'s line in ``[group]`` (other groups keep theirs)."""
    out, current = [], None
    for line in text.splitlines():
        match = GROUP_RE.match(line.strip())
        if match:
            current = match.group(1)
        elif current == group and line.split() and line.split()[0] == host:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _run(argv, base, runner) -> int:
    print("+ " + " ".join(argv), flush=True)
    return runner(argv, str(base))


def lab_line(lab: labmod.Lab, ip: str) -> str | None:
    """Connection variables of the lab node with this IP, when the cluster is a lab."""
    state = lab.load_state() if lab.dir.is_dir() else {}
    for node in state.get("nodes", []):
        if node.get("ip") == ip:
            return (f"ansible_connection=kubeasz.network.netns ansible_host={node['name']} "
                    f"kubeasz_lab_dir={lab.dir} kubeasz_node_ip={ip} "
                    f"ansible_python_interpreter={node_python()}")
    return None


# --------------------------------------------------------------------------- commands
def cmd_add_node(args, base: Path, runner) -> int:
    """Add the node's line, run 22.addnode.yml; a refused or failed run is rolled back (the node
    is taken off again by 32.delnode.yml: its lease, its files, the others' entries, its line)."""
    ip = check_node_ip(args.ip)
    cdir = playbook_files(base, args.cluster, PLAYBOOKS["add"])
    hosts = (cdir / "hosts").read_text(encoding="utf-8")
    if find_node(hosts, ip):
        raise CliError(f"node {ip} already exists in {cdir / 'hosts'}: "
                       f"remove it first with `ezctl del-node {args.cluster} {ip}`")
    flags = [v for v in args.hostvars if v.startswith("-")]
    if flags:
        raise CliError(f"add-node takes no ansible-playbook arguments (got {' '.join(flags)}): check mode cannot "
                       f"preview its change of {cdir / 'hosts'}; to preview a join, add the node's line there "
                       f"yourself and run ansible-playbook -i {cdir / 'hosts'} -e @{cdir / 'config.yml'} "
                       f"playbooks/22.addnode.yml -e NODE_TO_ADD={ip} --check --diff")
    bad = [repr(v) for v in args.hostvars if not HOSTVAR_RE.fullmatch(v)]
    if bad:
        raise CliError(f"host vars must be KEY=VALUE without spaces or newlines, got {' '.join(bad)}")
    cluster_keys = [v.split("=", 1)[0] for v in args.hostvars if CLUSTER_KEY_RE.match(v)]
    if cluster_keys:
        raise CliError(f"{', '.join(cluster_keys)}: a cluster setting, not a host var (the role reads it once per "
                       f"run, so on the new node it would change every node); set it in {cdir / 'config.yml'} "
                       "and run `ezctl setup " + args.cluster + " 06`")
    words = [ip, *args.hostvars]
    lab = labmod.Lab(args.cluster, root=args.lab_root)
    connection = lab_line(lab, ip)
    if connection and not any(v.startswith("ansible_connection=") for v in args.hostvars):
        words.append(connection)
    (cdir / "hosts").write_text(add_host_line(hosts, " ".join(words)), encoding="utf-8")
    print(f"added {ip} to [kube_node] in {cdir / 'hosts'}")
    rc = _run(playbook_argv(args.cluster, PLAYBOOKS["add"], "-e", f"NODE_TO_ADD={ip}"), base, runner)
    if rc == 0:
        return rc
    return _roll_back_add(args.cluster, cdir, ip, rc, base, runner)


def _roll_back_add(cluster: str, cdir: Path, ip: str, rc: int, base: Path, runner) -> int:
    """Take a node whose add-node failed off again; its line leaves the hosts file (32.delnode.yml
    removes it; only that line: another add-node may have added its own meanwhile)."""
    print(f"add-node of {ip} failed (rc {rc}): rolling back with {PLAYBOOKS['del']}", flush=True)
    undo = _run(playbook_argv(cluster, PLAYBOOKS["del"], "-e", f"NODE_TO_DEL={ip}", "-e", f"CLUSTER={cluster}",
                              "-e", "FLANNEL_ROLLBACK=true"), base, runner)
    if undo != 0:
        raise CliError(f"add-node of {ip} failed (rc {rc}) and so did its rollback (rc {undo}): the node "
                       f"stays in [kube_node] of {cdir / 'hosts'}; once the cause is fixed, run "
                       f"`ezctl del-node {cluster} {ip}` to take it off, or `ezctl setup {cluster} 06`")
    now = (cdir / "hosts").read_text(encoding="utf-8")
    if find_node(now, ip):
        (cdir / "hosts").write_text(remove_host_line(now, ip), encoding="utf-8")
    print(f"add-node of {ip} failed (rc {rc}); rolled back: {ip} is not in {cdir / 'hosts'}, holds no lease, "
          "and the other nodes do not know it", file=sys.stderr)
    return rc


def del_node_problem(hosts_text: str, host: str) -> str | None:
    """Why ``host`` cannot leave with del-node (a member of [kube_master] or [etcd], or the
    cluster's last node), or None."""
    groups = inventory_hosts(hosts_text)
    member = [g for g in ("kube_master", "etcd") if any(h == host for h, dummy in groups.get(g, []))]
    if member:
        return (f"{host} is also in {' and '.join(f'[{g}]' for g in member)}: del-node takes a worker off; "
                "move the control plane or etcd member first (kubeasz: ezctl del-master / del-etcd)")
    others = {h for g in ("kube_master", "kube_node") for h, dummy in groups.get(g, []) if h != host}
    if not others:
        return f"{host} is the cluster's last node: take flannel off with `ezctl reset-net` instead"
    return None


def cmd_del_node(args, base: Path, runner) -> int:
    ip = check_ip(args.ip)
    cdir = playbook_files(base, args.cluster, PLAYBOOKS["del"])
    hosts = (cdir / "hosts").read_text(encoding="utf-8")
    host = find_node(hosts, ip, group="kube_node")
    if host is None:
        raise CliError(f"node {ip} is not in [kube_node] of {cdir / 'hosts'}: "
                       "nothing to delete (list the nodes there)")
    problem = del_node_problem(hosts, host)
    if problem:
        raise CliError(f"del-node {ip}: {problem}; nothing was changed")
    return _run(playbook_argv(args.cluster, PLAYBOOKS["del"], "-e", f"NODE_TO_DEL={host}",
                              "-e", f"CLUSTER={args.cluster}", *after_dashes(args.extra)),
                base, runner)


def cmd_reset_net(args, base: Path, runner) -> int:
    playbook_files(base, args.cluster, PLAYBOOKS["reset"])
    rest = list(args.extra or [])
    if rest[:1] == ["--nodes"] and len(rest) > 1:  # options after the cluster land in REMAINDER
        args.nodes, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--nodes="):
        args.nodes, rest = rest[0].split("=", 1)[1], rest[1:]
    args.extra = rest
    extra = []
    if args.nodes:
        nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
        if not nodes or any(not NODE_NAME_RE.fullmatch(n) for n in nodes):
            raise CliError(f"--nodes: give node names or IPs separated by commas, got "
                           f"{args.nodes!r}")
        hosts = (cluster_dir(base, args.cluster) / "hosts").read_text(encoding="utf-8")
        groups = inventory_hosts(hosts)
        names = [n if n in groups else find_node(hosts, n) for n in nodes]   # an IP -> its inventory name
        unknown = [n for n, name in zip(nodes, names) if name is None]
        if unknown:
            raise CliError(f"--nodes: {', '.join(unknown)} matches no node or group of "
                           f"clusters/{args.cluster}/hosts (give a node's inventory name or IP); "
                           "nothing was changed")
        extra = ["-e", f"NODES_TO_RESET={','.join(names)}"]
    return _run(playbook_argv(args.cluster, PLAYBOOKS["reset"], *extra, *after_dashes(args.extra)),
                base, runner)


def cmd_lab_node_add(args, base, runner) -> int:
    node, ip = labmod.Lab(check_name(args.cluster), root=args.lab_root).node_add(
        segment=args.segment)
    print(f"{node} {ip}")
    return 0


def cmd_lab_node_del(args, base, runner) -> int:
    labmod.Lab(check_name(args.cluster), root=args.lab_root).node_del(args.node)
    print(f"lab node {args.node} removed")
    return 0


# --------------------------------------------------------------------------- parsers
def add_parsers(sub, common, labsub, labopt) -> None:
    """Register the commands on ezctl's sub-parsers (``sub``: top level, ``labsub``: ``lab``)."""
    lab_root = {"default": os.environ.get("KUBEASZ_LAB_ROOT", labmod.DEFAULT_ROOT),
                "help": "where labs live (default: $KUBEASZ_LAB_ROOT or %(default)s)"}
    p = sub.add_parser("add-node", parents=[common], help="add a node to [kube_node] and run 22.addnode.yml",
                       description="Adds IP (with host vars KEY=VALUE) as the first host of "
                       "[kube_node] in clusters/C/hosts and runs playbooks/22.addnode.yml "
                       "-e NODE_TO_ADD=IP; it takes no ansible-playbook arguments (check mode cannot "
                       "preview the hosts file's change: see the README to preview a join).")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("ip", help="the new node's address, as Ansible reaches it (its inventory name)")
    p.add_argument("hostvars", nargs="*", metavar="KEY=VALUE", help="host vars written on the node's line "
                   "(k8s_nodename=n5 ansible_port=2222 ...)")
    p.add_argument("--lab-root", **lab_root)
    p.set_defaults(func=cmd_add_node, needs_base=True)
    p = sub.add_parser("del-node", parents=[common], help="remove a node: run 32.delnode.yml",
                       description="Runs playbooks/32.delnode.yml -e NODE_TO_DEL=<node>: the "
                       "node's lease is released, every other node drops its routes and "
                       "entries to it, the node is reset if reachable and leaves [kube_node].")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("ip", help="the node to remove, as the hosts file names it")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="-- extra ansible-playbook args")
    p.set_defaults(func=cmd_del_node, needs_base=True)
    p = sub.add_parser("reset-net", parents=[common], help="take flannel off nodes (99.network-reset.yml)")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("--nodes", help="comma-separated nodes (default: every kube_master and kube_node)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="-- extra ansible-playbook args")
    p.set_defaults(func=cmd_reset_net, needs_base=True)

    node = labsub.add_parser("node", parents=[labopt], help="add or delete a lab node")
    nsub = node.add_subparsers(dest="node_command", metavar="NODE_COMMAND", required=True)
    p = nsub.add_parser("add", parents=[labopt], help="create one more node; prints '<node> <ip>'")
    p.add_argument("cluster", help=LAB_HELP)
    p.add_argument("--segment", type=int, choices=(1, 2), default=1, help="L2 segment (default 1)")
    p.set_defaults(func=cmd_lab_node_add, needs_base=False)
    p = nsub.add_parser("del", parents=[labopt], help="remove a node (its namespaces and processes)")
    p.add_argument("cluster", help=LAB_HELP)
    p.add_argument("node", help="the lab node's name (n5)")
    p.set_defaults(func=cmd_lab_node_del, needs_base=False)
