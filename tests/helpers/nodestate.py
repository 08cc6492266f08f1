"""A lab node's flannel state as normalised text lines, so that the state flanneld makes and the
state our modules make can be diffed although every node has its own lease.

Each value that belongs to one node (its subnet, its network address ``.0``, its gateway ``.1``,
its underlay IP, its VtepMAC) is replaced by a role name: ``<own-…>`` for the node itself,
``<peer-…>`` for any peer. Two nodes of one cluster with as many peers each then give the same
lines when they are programmed alike. Counters, indexes and timers are dropped.
"""
from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter

IGNORED_LINK_KEYS = {"ifindex", "link_index", "stats", "stats64", "altnames", "operstate",
                     "flags", "linkmode", "link_netnsid"}


def _names(own: dict, peers: list[dict]) -> list[tuple[str, str]]:
    """(value, placeholder) pairs, longest value first; a lease dict holds subnet, ip, mac."""
    pairs = []
    for lease, who in [(own, "own")] + [(p, "peer") for p in peers]:
        net = ipaddress.ip_network(lease["subnet"])
        pairs += [(str(net), f"<{who}-subnet>"), (str(net.network_address), f"<{who}-net0>"),
                  (str(net.network_address + 1), f"<{who}-gw>"), (lease["ip"], f"<{who}-ip>"),
                  (str(net.broadcast_address), f"<{who}-broadcast>")]
        if lease.get("mac"):
            pairs.append((lease["mac"].lower(), f"<{who}-mac>"))
    return sorted(pairs, key=lambda p: -len(p[0]))


def substitute(text: str, pairs) -> str:
    for value, name in pairs:
        text = re.sub(r"(?<![\w.:])" + re.escape(value) + r"(?![\w:]|\.\d)", name, text)
    return text


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(f"{prefix}.{key}" if prefix else key, value[key], out)
    elif isinstance(value, list):
        out.append(f"{prefix}={json.dumps(sorted(map(str, value)))}")
    else:
        out.append(f"{prefix}={value}")


def read(run, node: str, own: dict, peers: list[dict], network: str, etcd_value: dict | None,
         vni: int = 1) -> dict[str, list[str]]:
    """{table: normalised lines} of ``node``; ``run(node, argv) -> stdout``."""
    pairs = _names(own, peers)
    dev = f"flannel.{vni}"
    net = ipaddress.ip_network(network)
    state: dict[str, list[str]] = {}

    links = json.loads(run(node, ["ip", "-d", "-json", "link", "show"]) or "[]")
    link_lines: list[str] = []
    for link in links:
        if link.get("ifname") == dev:
            _flatten("", {k: v for k, v in link.items() if k not in IGNORED_LINK_KEYS}, link_lines)
    state["link"] = link_lines

    addrs = json.loads(run(node, ["ip", "-json", "addr", "show"]) or "[]")
    state["addresses"] = [
        f"{a['ifname']} {i['local']}/{i['prefixlen']} scope {i.get('scope')}"
        + (f" broadcast {i['broadcast']}" if i.get("broadcast") else "")
        for a in addrs if a.get("ifname") in (dev, "cni0") for i in a.get("addr_info", [])
        if i.get("family") == "inet"]

    state["neighbours"] = [
        f"{n['dst']} lladdr {n.get('lladdr')} dev {n.get('dev')} {' '.join(n.get('state', []))}"
        for n in json.loads(run(node, ["ip", "-json", "neigh", "show", "nud", "permanent"]) or "[]")]

    state["fdb"] = [
        f"{f['mac']} dev {f.get('ifname')} dst {f.get('dst')} {' '.join(f.get('flags', []))} "
        f"{f.get('state', '')}".strip()
        for f in json.loads(run(node, ["bridge", "-json", "fdb", "show"]) or "[]")
        if f.get("ifname") == dev]

    routes = []
    for r in json.loads(run(node, ["ip", "-json", "route", "show"]) or "[]"):
        if r["dst"] == "default" or not ipaddress.ip_network(r["dst"], strict=False).subnet_of(net):
            continue
        routes.append(" ".join(str(x) for x in (
            r["dst"], "via" if r.get("gateway") else "", r.get("gateway", ""), "dev", r.get("dev"),
            "proto", r.get("protocol", "boot"), "scope", r.get("scope", "global"),
            *r.get("flags", []), f"src {r['prefsrc']}" if r.get("prefsrc") else "") if x != ""))
    state["routes"] = routes

    rules = [f"{save}: {line}" for save in ("iptables-save", "ip6tables-save")
             for line in run(node, ["sh", "-c", f"{save} 2>/dev/null || true"]).splitlines()
             if "FLANNEL" in line and not line.startswith("#")]
    nft = run(node, ["sh", "-c", "nft list table ip flannel-ipv4 2>/dev/null || true"])
    tables = run(node, ["sh", "-c", "nft list tables 2>/dev/null || true"])
    state["traffic rules"] = [re.sub(r"\[\d+:\d+\]", "", line).strip() for line in rules] + \
        [line.strip() for line in nft.splitlines() if line.strip()] + \
        [line.strip() for line in tables.splitlines() if "flannel" in line]

    state["subnet.env"] = run(node, ["cat", "/run/flannel/subnet.env"]).splitlines()
    state["etcd value"] = [] if etcd_value is None else \
        [json.dumps(etcd_value, sort_keys=True)]
    return {table: sorted(substitute(line, pairs) for line in lines)
            for table, lines in state.items()}


def diff(flanneld: dict, ours: dict) -> set[tuple[str, str, str]]:
    """{(table, "flanneld" or "ours", line)}: the lines only one side has (as multisets)."""
    found = set()
    for table in sorted(set(flanneld) | set(ours)):
        a, b = Counter(flanneld.get(table, [])), Counter(ours.get(table, []))
        found |= {(table, "flanneld", line) for line in (a - b)}
        found |= {(table, "ours", line) for line in (b - a)}
    return found
