"""Reachability in a lab: pings and traceroutes from a node or a pod, and the all-pairs matrix.

Used by `make demo` and by the tests (tests/helpers/labcheck.py checks the tables, this the pings).
IPv4-only labs use ``ping_matrix``/``format_matrix`` with one IP per pod; dual-stack pods (lab.json
``ip`` and ``ip6``) are pinged per family with ``ping_matrices``/``format_matrices``.
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Mapping, Union

FAMILIES = ("ipv4", "ipv6")
# a pod's addresses: one IP, a list of IPs, or a mapping ({"ip":, "ip6":} as in lab.json,
# or {"ipv4":, "ipv6":})
PodAddresses = Union[str, list, tuple, Mapping]


def family_of(ip: str) -> str:
    """'ipv4' or 'ipv6' for an address text."""
    return "ipv6" if ipaddress.ip_address(ip).version == 6 else "ipv4"


def by_family(addresses: PodAddresses) -> dict[str, str]:
    """{family: ip} of a pod's addresses (the first of each family)."""
    if isinstance(addresses, str):
        items = [addresses]
    elif isinstance(addresses, Mapping):
        items = [addresses.get(k) for k in ("ip", "ipv4", "ip6", "ipv6")]
    else:
        items = list(addresses)
    found: dict[str, str] = {}
    for ip in items:
        if ip:
            found.setdefault(family_of(str(ip)), str(ip))
    return found


def ping_matrix(ping: Callable[[str, str], bool], pods: dict[str, str]) -> dict[tuple[str, str], bool]:
    """All-pairs reachability: ping(src_pod, dst_ip) for every ordered pair of distinct pods."""
    return {(src, dst): ping(src, ip) for src in pods for dst, ip in pods.items() if src != dst}


def ping_matrices(ping: Callable[[str, str], bool], pods: Mapping[str, PodAddresses]
                  ) -> dict[str, dict[tuple[str, str], bool]]:
    """All-pairs reachability per family: {family: {(src, dst): answered}}.

    ``pods`` maps ``node/pod`` to its addresses (see ``by_family``); a family appears when some
    pod has an address of it, and holds the pairs whose destination has one.
    """
    addresses = {pod: by_family(value) for pod, value in pods.items()}
    matrices = {}
    for family in FAMILIES:
        targets = {pod: ips[family] for pod, ips in addresses.items() if family in ips}
        if targets:
            matrices[family] = {(src, dst): ping(src, ip) for src in pods
                                for dst, ip in targets.items() if src != dst}
    return matrices


def all_answered(matrices: Mapping[str, Mapping]) -> bool:
    """True when every ping of every family was answered."""
    return all(all(matrix.values()) for matrix in matrices.values())


def format_matrix(matrix: dict[tuple[str, str], bool], pods: list[str]) -> str:
    width = max(len(p) for p in pods) + 2
    lines = ["from \\ to".ljust(width) + "".join(p.ljust(width) for p in pods)]
    for src in pods:
        cells = ["-" if src == dst else "n/a" if (src, dst) not in matrix
                 else ("ok" if matrix[(src, dst)] else "FAIL") for dst in pods]
        lines.append(src.ljust(width) + "".join(c.ljust(width) for c in cells))
    return "\n".join(lines)


def format_matrices(matrices: Mapping[str, dict], pods: list[str]) -> str:
    """One table per family, each under its family's name."""
    return "\n\n".join(f"{family}:\n{format_matrix(matrix, pods)}"
                       for family, matrix in matrices.items())


def _family_flag(ip: str) -> list[str]:
    return ["-6"] if ":" in ip else []


def ping(lab, target: str, ip: str) -> bool:
    """One ping from a node or node/pod (IPv4 or IPv6); True when answered."""
    argv = ["ping", *_family_flag(ip), "-c", "1", "-W", "2", ip]
    return lab.exec(target, argv, check=False).returncode == 0


def pod_addresses(lab) -> dict[str, dict]:
    """{"node/pod": {"ip": IPv4, "ip6": IPv6}} of every pod of a lab (from lab.json)."""
    found = {}
    for node, pods in sorted(lab.status().get("pods", {}).items()):
        for pod, record in sorted(pods.items()):
            found[f"{node}/{pod}"] = {k: record[k] for k in ("ip", "ip6") if record.get(k)}
    return found


def ping_pods(lab, pods: Mapping[str, PodAddresses] | None = None
              ) -> dict[str, dict[tuple[str, str], bool]]:
    """``ping_matrices`` with lab pings, over ``pods`` (default: every pod of the lab)."""
    return ping_matrices(lambda src, ip: ping(lab, src, ip),
                         pod_addresses(lab) if pods is None else pods)


def traceroute(lab, target: str, ip: str) -> list:
    """The hop addresses of a traceroute from a node or node/pod (None for a silent hop)."""
    argv = ["traceroute", *_family_flag(ip), "-n", "-q", "1", "-w", "1", "-m", "6", ip]
    out = lab.exec(target, argv).stdout
    hops = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        hops.append(None if len(fields) < 2 or fields[1] == "*" else fields[1])
    return hops
