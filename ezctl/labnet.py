"""The lab's topology: names, addresses and gateways of nodes on their segments, and a node's
record in lab.json (pure functions: nothing here runs a command)."""

from __future__ import annotations

import ipaddress
import re

from ezctl.labsys import LabError

NODE_IFACE = "eth0"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")  # \Z: "$" matches before a final newline
MAX_NODES = 200
LAB_NET = ipaddress.IPv4Network("198.18.0.0/16")
LAB_NET6 = ipaddress.IPv6Network("fd53:18::/48")  # segment S (198.18.S.0/24) ↔ fd53:18:0:S::/64
PREFIXLEN6 = 64


def node_names(count: int) -> list[str]:
    return [f"node{i}" for i in range(1, count + 1)]


def node_ip(index: int, segment: int) -> str:
    """The IPv4 address of node ``index`` (1-based) on ``segment`` (1 or 2)."""
    return f"198.18.{segment - 1}.{10 + index}"


def node_address(index: int, count: int, segments: int) -> tuple[int, str]:
    """(segment, ip) of node ``index`` (1-based) in a lab of ``count`` nodes."""
    segment = 2 if segments == 2 and index == count else 1
    return segment, node_ip(index, segment)


def address6(ipv4: str) -> str:
    """The IPv6 twin of a lab IPv4 address: 198.18.S.H → fd53:18:0:S::H (RFC 5952 text).

    The decimal digits of S and H are reused as the IPv6 groups (198.18.1.13 → fd53:18:0:1::13),
    so both addresses read alike; gateways map the same way (198.18.0.1 → fd53:18::1).
    """
    try:
        addr = ipaddress.IPv4Address(ipv4)
    except ValueError as exc:
        raise LabError(f"{ipv4!r} is not an IPv4 address") from exc
    if addr not in LAB_NET:
        raise LabError(f"{ipv4} is not a lab address (outside {LAB_NET})")
    _net, _lab, segment, host = str(addr).split(".")
    return str(ipaddress.IPv6Address(f"fd53:18:0:{segment}::{host}"))


def node_address6(index: int, count: int, segments: int) -> tuple[int, str]:
    """(segment, IPv6 address) of node ``index``: the twin of ``node_address``'s IPv4 one."""
    segment, ip = node_address(index, count, segments)
    return segment, address6(ip)


def gateway(segment: int) -> str:
    """The fabric's IPv4 address on ``segment`` (1 or 2): the nodes' default gateway."""
    return f"198.18.{segment - 1}.1"


def node_record(node: str, segment: int, ip: str, ipv6: bool) -> dict:
    """A node's entry in lab.json (``ip6``/``prefixlen6``/``gateway6`` only in IPv6 labs)."""
    record = {"name": node, "ip": ip, "prefixlen": 24, "segment": segment, "iface": NODE_IFACE,
              "gateway": gateway(segment)}
    if ipv6:
        record.update(ip6=address6(ip), prefixlen6=PREFIXLEN6, gateway6=address6(gateway(segment)))
    return record
