"""Reachability in a lab: pings and traceroutes from a node or a pod, and the all-pairs matrix.

Used by `make demo` and by the tests (tests/helpers/labcheck.py checks the tables, this the pings).
"""
from __future__ import annotations

from typing import Callable


def ping_matrix(ping: Callable[[str, str], bool], pods: dict[str, str]) -> dict[tuple[str, str], bool]:
    """All-pairs reachability: ping(src_pod, dst_ip) for every ordered pair of distinct pods."""
    return {(src, dst): ping(src, ip) for src in pods for dst, ip in pods.items() if src != dst}


def format_matrix(matrix: dict[tuple[str, str], bool], pods: list[str]) -> str:
    width = max(len(p) for p in pods) + 2
    lines = ["from \\ to".ljust(width) + "".join(p.ljust(width) for p in pods)]
    for src in pods:
        cells = ["-" if src == dst else ("ok" if matrix[(src, dst)] else "FAIL") for dst in pods]
        lines.append(src.ljust(width) + "".join(c.ljust(width) for c in cells))
    return "\n".join(lines)


def ping(lab, target: str, ip: str) -> bool:
    """One ping from a node or node/pod; True when answered."""
    return lab.exec(target, ["ping", "-c", "1", "-W", "2", ip], check=False).returncode == 0


def traceroute(lab, target: str, ip: str) -> list:
    """The hop addresses of a traceroute from a node or node/pod (None for a silent hop)."""
    out = lab.exec(target, ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "6", ip]).stdout
    hops = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        hops.append(None if len(fields) < 2 or fields[1] == "*" else fields[1])
    return hops
