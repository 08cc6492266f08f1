"""Lab nodes that join and leave a running lab (``ezctl lab node add|del``).

A new node takes the next free ``node<i>`` and the address that ``lab up`` would give node ``i``
on its segment (198.18.<segment-1>.<10+i>); a second segment's bridge is made when missing. In a
lab made with IPv6 (lab.json ``ipv6``) the node gets its IPv6 twin too (``lab.address6``).
Deleting a node stops the processes living in its namespaces (a route guard), deletes its pods,
its veth in the fabric and its namespace files, and forgets it in ``lab.json``.
"""

from __future__ import annotations

import contextlib
import os
import re


def _lab():
    from ezctl import lab  # late: lab imports this module
    return lab


def node_add(lab, segment: int = 1) -> tuple[str, str]:
    mod = _lab()
    if os.geteuid() != 0:
        raise mod.LabError("the lab needs root (it creates namespaces and mounts)")
    if segment not in (1, 2):
        raise mod.LabError(f"segment must be 1 or 2, got {segment}")
    with lab._locked():
        state = lab.load_state()
        if not state.get("nodes"):
            raise mod.LabError(f"lab {lab.name} is not up: run ezctl lab up {lab.name}")
        used = [int(m.group(1)) for m in (re.match(r"^node(\d+)$", n["name"]) for n in state["nodes"]) if m]
        index = max(used, default=0) + 1
        if index > mod.MAX_NODES:
            raise mod.LabError(f"a lab holds at most {mod.MAX_NODES} nodes")
        node, ip = f"node{index}", f"198.18.{segment - 1}.{10 + index}"
        segments = max(int(state.get("segments") or 1), segment)
        ipv6 = bool(state.get("ipv6", False))
        record = mod.node_record(node, segment, ip, ipv6)
        lab._make_fabric(segments, ipv6)
        lab._make_node(node)
        lab._wire_node(node, segment, ip, record.get("ip6"))
        state["segments"] = segments
        state["nodes"].append(record)
        state.setdefault("pods", {})[node] = {}
        lab._save_state(state)
    return node, ip


def node_del(lab, node: str) -> None:
    mod = _lab()
    if os.geteuid() != 0:
        raise mod.LabError("the lab needs root (it removes namespaces and mounts)")
    if node == mod.FABRIC or not mod.NAME_RE.match(node or ""):
        raise mod.LabError(f"invalid lab node {node!r}")
    state = lab.load_state()
    if node not in [n["name"] for n in state.get("nodes", [])] and not lab.ns_path(node, "mnt").exists():
        raise mod.LabError(f"lab node {node} not found in lab {lab.name}: see ezctl lab status {lab.name}")
    inodes = set()
    if lab.node_exists(node):
        inodes = {i for i in lab._ns_inodes([node])
                  if i not in _other_inodes(lab, node)}
    lab._kill_processes(inodes)  # before the pods' namespaces are freed (Lab.down says why)
    if lab.node_exists(node):
        lab._delete_pods(node)
    lab._fabric(mod._tool("ip"), "link", "delete", node, check=False)
    for kind in ("net", "mnt", "uts"):
        path = lab.ns_path(node, kind)
        while str(path) in set(mod.mounts()):
            if mod._run([mod._tool("umount"), path], check=False).returncode != 0:
                mod._run([mod._tool("umount"), "-l", path], check=False)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with lab._locked():
        state = lab.load_state()
        state["nodes"] = [n for n in state.get("nodes", []) if n["name"] != node]
        state.get("pods", {}).pop(node, None)
        lab._save_state(state)


def _other_inodes(lab, node: str) -> set:
    """Namespace files of the lab that are not ``node``'s (they must survive)."""
    mod = _lab()
    here = set(mod.mounts())
    found = set()
    for path in lab.dir.glob("*.*"):
        if str(path) in here and path.suffix in (".net", ".mnt", ".uts") and path.stem != node:
            st = path.stat()
            found.add((st.st_dev, st.st_ino))
    return found
