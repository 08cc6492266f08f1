"""What a lab node's flannel tables hold and what FLANNEL.md says they should hold (a test oracle).

Shared by the kernel tests and the molecule verifiers, so that both check the same thing: routes,
neighbours and FDB entries per peer. Pod-to-pod reachability is the lab's own (ezctl.reach), which
the demo shows too.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

_COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
# the molecule verifiers import this file without the tests' conftest, hence the path above
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import parse_subnet_env  # noqa: E402

# run(node, argv) -> stdout; raises on failure. Lab.exec and testinfra hosts both fit.
NodeRunner = Callable[[str, list], str]


@dataclass(frozen=True)
class NodeView:
    """One node as flannel sees it: its lease (from subnet.env) and its flannel tables."""

    name: str
    public_ip: str
    segment: int
    subnet: ipaddress.IPv4Network
    network: ipaddress.IPv4Network
    mtu: int
    vtep_mac: str | None
    routes: frozenset
    neighbours: frozenset
    fdb: frozenset
    devices: frozenset = frozenset()  # every flannel.<n> link on the node
    vni: int = 1


def _json(run: NodeRunner, node: str, argv: list) -> list:
    out = run(node, argv)
    return json.loads(out) if out.strip() else []


def read_node(run: NodeRunner, node: str, public_ip: str, segment: int, vni: int = 1) -> NodeView:
    env = parse_subnet_env(run(node, ["cat", "/run/flannel/subnet.env"]))
    network = ipaddress.ip_network(env["FLANNEL_NETWORK"])
    subnet = ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network
    device = f"flannel.{vni}"
    links = {link["ifname"]: link for link in _json(run, node, ["ip", "-json", "link", "show"])}
    routes = set()
    for route in _json(run, node, ["ip", "-json", "route", "show"]):
        if route["dst"] == "default" or "/" not in route["dst"]:
            continue
        dst = ipaddress.ip_network(route["dst"])
        if dst.subnet_of(network) and dst != subnet:
            routes.add((route["dst"], route.get("gateway"), route["dev"], "onlink" in route.get("flags", [])))
    neighbours, fdb = set(), set()
    devices = frozenset(name for name in links if name.startswith("flannel."))
    for dev in sorted(devices):  # a stale flannel.<n> shows its entries as unexpected ones
        for entry in _json(run, node, ["ip", "-json", "neigh", "show", "dev", dev]):
            if "PERMANENT" in entry.get("state", []):
                neighbours.add((entry["dst"], entry.get("lladdr")))
        for entry in _json(run, node, ["bridge", "-json", "fdb", "show", "dev", dev]):
            if entry.get("dst"):
                fdb.add((entry["mac"], entry["dst"]))
    return NodeView(
        name=node, public_ip=public_ip, segment=segment, subnet=subnet, network=network,
        mtu=int(env["FLANNEL_MTU"]), vtep_mac=links.get(device, {}).get("address"),
        routes=frozenset(routes), neighbours=frozenset(neighbours), fdb=frozenset(fdb),
        devices=devices, vni=vni,
    )


def is_direct(node: NodeView, peer: NodeView, backend: str, direct_routing: bool) -> bool:
    """host-gw always routes directly; vxlan only with DirectRouting and a peer on our segment."""
    return backend == "host-gw" or (direct_routing and node.segment == peer.segment)


def expected_tables(node: NodeView, peers: Iterable[NodeView], backend: str, direct_routing: bool,
                    iface: str = "eth0", vni: int = 1) -> tuple[frozenset, frozenset, frozenset]:
    """FLANNEL.md's routes, neighbours and FDB entries on `node` for the given backend."""
    device = f"flannel.{vni}"
    routes, neighbours, fdb = set(), set(), set()
    for peer in peers:
        if peer.name == node.name:
            continue
        if is_direct(node, peer, backend, direct_routing):
            routes.add((str(peer.subnet), peer.public_ip, iface, False))
            continue
        vtep_ip = str(peer.subnet.network_address)
        routes.add((str(peer.subnet), vtep_ip, device, True))
        neighbours.add((vtep_ip, peer.vtep_mac))
        fdb.add((peer.vtep_mac, peer.public_ip))
    return frozenset(routes), frozenset(neighbours), frozenset(fdb)


def table_mismatches(views: list[NodeView], backend: str, direct_routing: bool) -> list[str]:
    """Every difference between the nodes' tables and FLANNEL.md's, as readable lines."""
    problems = []
    for node in views:
        want = expected_tables(node, views, backend, direct_routing, vni=node.vni)
        want += (frozenset([f"flannel.{node.vni}"] if backend == "vxlan" else []),)
        have = (node.routes, node.neighbours, node.fdb, node.devices)
        for label, w, h in zip(("route", "neighbour", "fdb", "device"), want, have):
            problems += [f"{node.name}: missing {label} {entry}" for entry in sorted(w - h, key=str)]
            problems += [f"{node.name}: unexpected {label} {entry}" for entry in sorted(h - w, key=str)]
    return problems


def read_lab(lab, vni: int = 1) -> list[NodeView]:
    """NodeView of every node of a Lab."""
    def run(node, argv):
        return lab.exec(node, argv).stdout
    return [read_node(run, n["name"], n["ip"], n["segment"], vni) for n in lab.status()["nodes"]]


def vxlan_details(ip_link_json: str) -> dict:
    """The flannel-relevant attributes of a VXLAN device from `ip -d -json link show`."""
    link = json.loads(ip_link_json)[0]
    data = link["linkinfo"]["info_data"]
    return {"id": data["id"], "local": data.get("local"), "link": data.get("link"),
            "port": data.get("port"), "learning": data.get("learning"), "ttl": data.get("ttl", 0),
            "mtu": link["mtu"], "mac": link["address"]}


def expected_hops(src: NodeView, dst: NodeView, dst_ip: str, backend: str, direct_routing: bool) -> list:
    """Own cni0, then the peer node (from flannel.N when its way back is vxlan), then the pod."""
    back_direct = is_direct(dst, src, backend, direct_routing)
    peer = dst.public_ip if back_direct else str(dst.subnet.network_address)
    return [str(src.subnet.network_address + 1), peer, dst_ip]
