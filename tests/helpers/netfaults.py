"""Faults planted in a lab for `ezctl net check`'s tests, each with its undo, so that one lab
serves a whole test file. Everything happens inside the lab's namespaces (the fabric or a node),
never in the host's own.

- ``drop_udp``: the fabric's bridge drops UDP to one port between two nodes only (nft bridge
  table), both ways, as VMware NSX drops 8472 (flannel #2388);
- ``fabric_mtu``: a smaller MTU on one node's link in the fabric (the bridge then drops larger
  frames silently, as a real switch does);
- ``forward_drop``: a node's FORWARD policy DROP without flannel's FLANNEL-FWD jump;
- ``route_gone``: one node loses its route to a peer's pod subnet (IPv4 or IPv6);
- ``second_nic``: nodes get a second NIC (a veth pair inside the node), with chosen addresses;
- ``legacy_rule``: a rule in iptables-legacy (or ip6tables-legacy) beside the *-nft ones.
"""
from __future__ import annotations

import contextlib
import json
import shlex

NFT_TABLE = "netcheck_fault"


@contextlib.contextmanager
def drop_udp(lab, ip_a: str, ip_b: str, port: int = 8472):
    ip = "ip6" if ":" in ip_a else "ip"
    rules = "\n".join(
        [f"table bridge {NFT_TABLE} {{", "  chain forward {", "    type filter hook forward priority 0; policy accept;",
         f"    {ip} saddr {ip_a} {ip} daddr {ip_b} udp dport {port} drop",
         f"    {ip} saddr {ip_b} {ip} daddr {ip_a} udp dport {port} drop", "  }", "}", ""])
    lab.exec("fabric", ["nft", "-f", "-"], input=rules)
    try:
        yield
    finally:
        lab.exec("fabric", ["nft", "delete", "table", "bridge", NFT_TABLE])


@contextlib.contextmanager
def fabric_mtu(lab, node: str, mtu: int):
    before = json.loads(lab.exec("fabric", ["ip", "-json", "link", "show", node]).stdout)[0]["mtu"]
    lab.exec("fabric", ["ip", "link", "set", node, "mtu", str(mtu)])
    try:
        yield
    finally:
        lab.exec("fabric", ["ip", "link", "set", node, "mtu", str(before)])
        # the nodes may have learnt the smaller path MTU (IPv6 keeps it 10 minutes): forget it
        for other in (n["name"] for n in lab.load_state()["nodes"]):
            for family in ("-4", "-6"):
                lab.exec(other, ["ip", family, "route", "flush", "cache"], check=False)


@contextlib.contextmanager
def forward_drop(lab, node: str, tool: str = "iptables"):
    """FORWARD policy DROP without flannel's jump (``tool``: ip6tables for IPv6)."""
    saved = lab.exec(node, [f"{tool}-save", "-t", "filter"]).stdout
    jumps = [line for line in saved.splitlines() if line.startswith("-A FORWARD") and "FLANNEL-FWD" in line]
    for line in jumps:
        lab.exec(node, [tool, "-D", *shlex.split(line)[1:]])
    lab.exec(node, [tool, "-P", "FORWARD", "DROP"])
    try:
        yield
    finally:
        lab.exec(node, [f"{tool}-restore"], input=saved)


@contextlib.contextmanager
def route_gone(lab, node: str, subnet: str):
    ip = ["ip", "-6"] if ":" in subnet else ["ip"]
    route = json.loads(lab.exec(node, [*ip, "-json", "route", "show", subnet]).stdout)[0]
    lab.exec(node, [*ip, "route", "del", subnet])
    try:
        yield
    finally:
        argv = [*ip, "route", "replace", subnet, "via", route["gateway"], "dev", route["dev"]]
        argv += ["onlink"] if "onlink" in route.get("flags", []) else []
        argv += ["proto", str(route["protocol"])] if route.get("protocol") else []
        lab.exec(node, argv)


@contextlib.contextmanager
def second_nic(lab, addresses: dict, name: str = "eth1"):
    """``addresses``: {node: "10.0.2.15/24"} or {node: ["10.0.2.15/24", "fd53:99::15/64"]}; the
    peer end is ``<name>p`` in the same node (IPv6 without duplicate address detection)."""
    for node, cidrs in addresses.items():
        lab.exec(node, ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"])
        for cidr in [cidrs] if isinstance(cidrs, str) else cidrs:
            lab.exec(node, ["ip", "addr", "add", cidr, "dev", name] + (["nodad"] if ":" in cidr else []))
        lab.exec(node, ["ip", "link", "set", name, "up"])
        lab.exec(node, ["ip", "link", "set", f"{name}p", "up"])
    try:
        yield
    finally:
        for node in addresses:
            lab.exec(node, ["ip", "link", "del", name], check=False)


@contextlib.contextmanager
def legacy_rule(lab, node: str, tool: str = "iptables-legacy"):
    """A rule in iptables-legacy (or ``tool``: ip6tables-legacy) beside the *-nft ones (flannel #1306)."""
    rule = ["INPUT", "-s", "2001:db8::1/128" if tool.startswith("ip6") else "192.0.2.1/32", "-j", "ACCEPT"]
    lab.exec(node, [tool, "-A", *rule])
    try:
        yield
    finally:
        lab.exec(node, [tool, "-D", *rule])
