"""Lab nodes that join and leave a running lab (``ezctl lab node add|del``).

A new node takes the next free ``node<i>`` and the address that ``lab up`` would give node ``i``
on its segment (198.18.<segment-1>.<10+i>); a second segment's bridge is made when missing. In a
lab made with IPv6 (lab.json ``ipv6``) the node gets its IPv6 twin too (``labnet.address6``).
Deleting a node stops the processes living in its namespaces (a route guard), deletes its pods,
its veth in the fabric and its namespace files, and forgets it in ``lab.json``.

``lab`` is a ``Lab`` (ezctl/lab.py, whose ``node_add``/``node_del`` call these): they use its
public side only, the namespaces (``Namespaces`` in ezctl/labns.py) and ``changing_state()``.
"""

from __future__ import annotations

import os
import re

from ezctl.labnet import MAX_NODES, NAME_RE, node_ip, node_record
from ezctl.labns import FABRIC
from ezctl.labsys import LabError, tool


def node_add(lab, segment: int = 1) -> tuple[str, str]:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces and mounts)")
    if segment not in (1, 2):
        raise LabError(f"segment must be 1 or 2, got {segment}")
    with lab.changing_state() as state:
        if not state.get("nodes"):
            raise LabError(f"lab {lab.name} is not up: run ezctl lab up {lab.name}")
        used = [int(m.group(1)) for m in (re.match(r"^node(\d+)$", n["name"]) for n in state["nodes"]) if m]
        index = max(used, default=0) + 1
        if index > MAX_NODES:
            raise LabError(f"a lab holds at most {MAX_NODES} nodes")
        node, ip = f"node{index}", node_ip(index, segment)
        segments = max(int(state.get("segments") or 1), segment)
        ipv6 = bool(state.get("ipv6", False))
        record = node_record(node, segment, ip, ipv6)
        lab.make_fabric(segments, ipv6)
        lab.build_node(record)
        state["segments"] = segments
        state["nodes"].append(record)
        state.setdefault("pods", {})[node] = {}
    return node, ip


def node_del(lab, node: str) -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it removes namespaces and mounts)")
    if node == FABRIC or not NAME_RE.match(node or ""):
        raise LabError(f"invalid lab node {node!r}")
    state = lab.load_state()
    if node not in [n["name"] for n in state.get("nodes", [])] and not lab.ns_path(node, "mnt").exists():
        raise LabError(f"lab node {node} not found in lab {lab.name}: see ezctl lab status {lab.name}")
    inodes = set()
    if lab.node_exists(node):  # the other namespace files must survive
        inodes = lab.ns_inodes([node]) - lab.file_inodes(but=node)
    lab.kill_processes(inodes)  # before the pods' namespaces are freed (Lab.down says why)
    if lab.node_exists(node):
        lab.delete_pods(node)
    lab.fabric(tool("ip"), "link", "delete", node, check=False)
    lab.remove_ns_files(node)
    with lab.changing_state() as state:
        state["nodes"] = [n for n in state.get("nodes", []) if n["name"] != node]
        state.get("pods", {}).pop(node, None)
