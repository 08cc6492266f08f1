"""``ezctl net status <cluster> [--json] [--svg FILE]``: the cluster's network in one view.

It runs ``playbooks/net_status.yml`` with ``--check --diff``: step 06 in check mode (each
module observes the node and plans as a real run would; what it would change is the node's
drift, which the modules return as data: ``drift`` records naming the object, with the lines
present but not planned and those planned but missing), then read-only tasks for the underlay
address and the route guard, and the role's status task, which hands over one dict per node
(``flannel_status``). Results come back through the ``ezctl_status`` callback as JSON. Exit status:
0 when every node matches its plan, 2 when a node drifted (named on stderr), 1 on errors.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ezctl import clusters
from ezctl.helptext import CLUSTER_HELP

PLAYBOOK = "playbooks/net_status.yml"
CALLBACKS = Path(__file__).resolve().parent / "ansible_callbacks"
# the fact the role's status task (roles/flannel/tasks/status.yml) sets on every node
STATUS_FACT = "flannel_status"
# the collection's modules and actions report their drift in it; any other task that would change
# something (a file, the route guard's) is drift by itself
OURS = "kubeasz.network."


def run_playbook(base: Path, cluster: str, extra=()) -> tuple[int, dict, str]:
    """(rc, {host: [task records]}, ansible's stderr) of net_status.yml in check mode."""
    cdir = clusters.cluster_dir(base, cluster)
    for needed in (cdir / "hosts", cdir / "config.yml", base / PLAYBOOK):
        if not needed.is_file():
            raise clusters.CliError(f"{needed} not found")
    with tempfile.NamedTemporaryFile(prefix="ezctl-status-", suffix=".json") as out:
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ezctl_status", ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                   ANSIBLE_LOAD_CALLBACK_PLUGINS="1", EZCTL_STATUS_FILE=out.name, ANSIBLE_NOCOLOR="1")
        argv = [clusters.ansible_playbook(), "-i", f"clusters/{cluster}/hosts", "-e", f"@clusters/{cluster}/config.yml",
                PLAYBOOK, "--check", "--diff", *extra]
        proc = subprocess.run(argv, cwd=base, env=env, capture_output=True, text=True, check=False)
        text = Path(out.name).read_text(encoding="utf-8")
    if not text.strip():
        raise clusters.CliError(f"ansible-playbook gave no results (rc {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.returncode, json.loads(text), proc.stderr


def _path(route: dict, backend: str) -> str:
    """How a route of direct_route's ``routes`` reaches its peer: through the VXLAN device (the
    on-link routes), or directly."""
    if route.get("onlink"):
        return "vxlan"
    return "host-gw" if backend == "host-gw" else "direct"


def _segment(addresses: list, ips: tuple):
    """The network of the first underlay address that is the node's public IP (IPv4 or IPv6)."""
    for link in addresses or []:
        for addr in link.get("addr_info", []):
            if addr.get("local") in ips:
                return str(ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network)
    return None


def _apply_status(view: dict, status: dict) -> None:
    """The role's status dict of a node -> its view."""
    res = status.get("lease") or {}
    view["lease"] = res.get("lease")
    view["renewed"] = res.get("renewed")  # file store: when the lease was last renewed
    view["public_ip"] = res.get("public_ip")
    view["public_ip6"] = res.get("public_ip6")
    view["iface"] = res.get("iface")
    view["warnings"] = list(res.get("warnings") or [])   # skipped (corrupt, misfit) leases
    view["segment"] = _segment(status.get("addresses"), (view["public_ip"], view["public_ip6"]))
    guard = status.get("guard") or {}   # the result of asking the guard: rc 0 when it runs
    if "rc" in guard:
        view["guard"] = "running" if guard["rc"] == 0 else "not running"
        if guard["rc"] != 0:
            view["drift"].append({"what": "route guard", "stale": [], "missing": ["flannel-route-guard running"]})
    families = [family or {} for family in (status.get("results") or {}).values()]
    backend = (view["lease"] or {}).get("backend_type", "vxlan")
    for family in families:
        for route in (family.get("routes") or {}).get("routes") or []:
            view["paths"][route["dst"]] = _path(route, backend)
    results = [res] + [result or {} for family in families for result in family.values()] + list(status.get("pruned") or [])
    view["drift"] += [{"what": d.get("what"), "stale": list(d.get("stale") or []), "missing": list(d.get("missing") or [])}
                      for result in results for d in result.get("drift") or []]


def node_view(name: str, records: list) -> dict:
    """One node's lease, drift and paths from its task records (the role's status dict)."""
    view = {"node": name, "lease": None, "drift": [], "errors": [], "segment": None, "guard": None,
            "paths": {}, "reachable": True}
    for rec in records:
        res, task, status = rec["result"], rec["task"], rec["status"]
        if status == "unreachable":
            view["reachable"] = False
            view["errors"].append(f"unreachable: {res.get('msg', '')}".strip())
        elif status == "failed":
            view["errors"].append(f"{task}: {res.get('msg', '')}")
        elif STATUS_FACT in (res.get("ansible_facts") or {}):
            _apply_status(view, res["ansible_facts"][STATUS_FACT])
        elif status == "changed" and not str(rec.get("action") or "").startswith(OURS):
            view["drift"].append({"what": task, "stale": [], "missing": []})
    view["drifted"] = bool(view["drift"] or view["errors"])
    return view


def cluster_view(results: dict) -> dict:
    nodes = [node_view(host, records) for host, records in sorted(results.items()) if host != "localhost"]
    return {"nodes": nodes, "drifted": [n["node"] for n in nodes if n["drifted"]]}


def format_text(cluster: str, view: dict) -> str:
    lines = [f"cluster {cluster}: {len(view['nodes'])} node(s), "
             f"{'drifted: ' + ', '.join(view['drifted']) if view['drifted'] else 'every node matches its plan'}",
             f"{'NODE':<14} {'PUBLIC IP':<15} {'SUBNET':<17} {'BACKEND':<8} {'SEGMENT':<17} {'GUARD':<11} "
             f"{'RENEWED':<21} STATE"]
    for node in view["nodes"]:
        lease = node["lease"] or {}
        public = node.get("public_ip") or node.get("public_ip6") or "-"   # IPv6-only: the IPv6 one
        subnet = lease.get("subnet") or lease.get("subnet6") or "-"
        lines.append(f"{node['node']:<14} {public:<15} {subnet:<17} "
                     f"{lease.get('backend_type', '-'):<8} {node['segment'] or '-':<17} {node['guard'] or '-':<11} "
                     f"{node.get('renewed') or '-':<21} {'DRIFT' if node['drifted'] else 'ok'}")
        if lease.get("subnet6") and lease.get("subnet"):
            lines.append(f"    IPv6: public {node.get('public_ip6') or '-'}, subnet {lease['subnet6']}")
        for error in node["errors"]:
            lines.append(f"    error: {error}")
        for warning in node.get("warnings") or []:
            lines.append(f"    warning: {warning}")
        for drift in node["drift"]:
            lines.append(f"    {drift['what']}:")
            lines += [f"      - {l}  (present, not planned)" for l in drift["stale"]]
            lines += [f"      + {l}  (planned, missing)" for l in drift["missing"]]
    return "\n".join(lines)


def draw_svg(cluster: str, view: dict, path: str) -> None:
    """Nodes grouped by L2 segment with their subnets, each pair joined by its path (Graphviz)."""
    try:
        import graphviz
    except ImportError as exc:
        raise clusters.CliError("--svg needs the Python package graphviz (make setup installs it)") from exc
    title = {"label": f"flannel network of {cluster}", "labelloc": "t", "fontname": "Helvetica"}
    graph = graphviz.Graph(name=cluster, format="svg", graph_attr=title,
                           node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"})
    by_subnet = {}
    segments = {}
    for node in view["nodes"]:
        segments.setdefault(node["segment"] or "unknown segment", []).append(node)
        for key in ("subnet", "subnet6"):
            if (node["lease"] or {}).get(key):
                by_subnet[node["lease"][key]] = node["node"]
    for index, (segment, nodes) in enumerate(sorted(segments.items())):
        with graph.subgraph(name=f"cluster_{index}") as sub:
            sub.attr(label=f"L2 segment {segment}", style="dashed")
            for node in nodes:
                lease = node["lease"] or {}
                label = "\\n".join([node["node"], node.get("public_ip") or node.get("public_ip6") or "?"]
                                   + ([lease[k] for k in ("subnet", "subnet6") if lease.get(k)] or ["no lease"]))
                if node["drifted"]:
                    label += "\\nDRIFT"
                sub.node(node["node"], label=label, fillcolor="#f4b6b6" if node["drifted"] else "#d5e8d4",
                         color="red" if node["drifted"] else "black")
    styles = {"vxlan": {"style": "dashed", "color": "blue"}, "direct": {"style": "solid", "color": "darkgreen"},
              "host-gw": {"style": "bold", "color": "darkgreen"}}
    done = set()
    for node in view["nodes"]:
        for subnet, kind in sorted(node["paths"].items()):
            peer = by_subnet.get(subnet)
            if peer is None or frozenset((node["node"], peer)) in done:
                continue
            done.add(frozenset((node["node"], peer)))
            graph.edge(node["node"], peer, label=kind, **styles.get(kind, {}))
    Path(path).write_bytes(graph.pipe(format="svg"))


def cmd_net_status(args, base: Path, runner) -> int:
    rc, results, stderr = run_playbook(base, args.cluster)
    view = cluster_view(results)
    if args.svg:
        draw_svg(args.cluster, view, args.svg)
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=True))
    else:
        print(format_text(args.cluster, view))
        if args.svg:
            print(f"drawing: {args.svg}")
    if view["drifted"]:
        print(f"ezctl: nodes drifted from their plan: {', '.join(view['drifted'])}", file=sys.stderr)
        return 2
    if rc != 0:
        print(f"ezctl: ansible-playbook failed (rc {rc}): {stderr.strip()[-2000:]}", file=sys.stderr)
        return 1
    return 0


def add_parsers(sub, common) -> None:
    net = sub.add_parser("net", parents=[common], help="the cluster's network: status")
    nsub = net.add_subparsers(dest="net_command", metavar="NET_COMMAND", required=True)
    p = nsub.add_parser("status", parents=[common], help="leases and drift per node (step 06 in check mode)",
                        description="Runs playbooks/net_status.yml --check --diff and shows per node its "
                        "lease and what a run of 06 would change (drift); exit 2 when a node drifted.")
    p.add_argument("cluster", help=CLUSTER_HELP)
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    p.add_argument("--svg", metavar="FILE", help="also draw the cluster (Graphviz) into FILE")
    p.set_defaults(func=cmd_net_status, needs_base=True)
