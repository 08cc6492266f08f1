# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peers (the other nodes' leases): validation, and direct vs vxlan classification.

Every peer is validated like user input before anything changes; a validated
``Peer`` holds canonical text (``subnet`` is a strict CIDR, so its network
address is the text before the slash).  Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4

MAX_VNI = 16777215

Peer = namedtuple('Peer', ['subnet', 'public_ip', 'backend_type', 'vni', 'vtep_mac'])

_IFNAME = re.compile(r'^[^\s/:]{1,15}$')
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
_BACKEND = re.compile(r'^[a-z0-9-]{1,32}$')


class DataplaneError(Exception):
    """Invalid input or a state that cannot be programmed; message names the culprit."""


# ---------------------------------------------------------------- single values

def _ipv4(value, what):
    """Canonical text of an IPv4 address."""
    if ipv4.ip_int(value) is not None:
        return value  # inet_pton accepts canonical dotted quads only
    try:
        return ipv4.ip_text(ipv4.parse_ip(value))
    except ValueError:
        raise DataplaneError('%s: %r is not an IPv4 address' % (what, value))


def _ipv4_net(value, what):
    """((int, prefix), canonical text) of a strict IPv4 network."""
    try:
        return ipv4.parse_cidr(value)
    except ValueError as exc:
        raise DataplaneError('%s: %r is not an IPv4 network (%s)' % (what, value, exc))


def check_ifname(name, what='iface'):
    if not isinstance(name, str) or not _IFNAME.match(name) or name in ('.', '..'):
        raise DataplaneError('%s: %r is not a valid interface name' % (what, name))
    return name


def check_mac(value, what):
    mac = str(value).lower()
    if not _MAC.match(mac):
        raise DataplaneError('%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)' % (what, value))
    if int(mac[:2], 16) & 1:
        raise DataplaneError('%s: %r is a multicast MAC address' % (what, value))
    if mac == '00:00:00:00:00:00':
        raise DataplaneError('%s: %r is the zero MAC address, which the kernel refuses in the FDB'
                             % (what, value))
    return mac


# Where no node can live: "this" network, loopback, multicast and the reserved/broadcast range.
_NOT_UNICAST = tuple((ipv4.parse_net(net), why) for net, why in (
    ('0.0.0.0/8', 'a "this network" address'), ('127.0.0.0/8', 'a loopback address'),
    ('224.0.0.0/4', 'a multicast address'), ('240.0.0.0/4', 'a reserved or broadcast address')))


def check_node_ip(value, what):
    """Canonical text of a node address that can carry VXLAN and routes (unicast, not loopback)."""
    text = _ipv4(value, what)
    ip = ipv4.parse_ip(text)
    for net, why in _NOT_UNICAST:
        if ipv4.contains(net, ip):
            raise DataplaneError('%s: %s is %s, not a node address' % (what, text, why))
    return text


def check_vni(value, what='vni'):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VNI:
        raise DataplaneError('%s: %r is not a VNI (1..%d)' % (what, value, MAX_VNI))
    return value


def first_ip(subnet):
    """The lease's network address: the peer's flannel.N address ("subnet .0")."""
    return ipv4.ip_text(ipv4.parse_net(subnet, strict=False)[0])


# ------------------------------------------------------------------- peers

def _peer_name(index, raw):
    label = raw.get('public_ip') or raw.get('subnet') if isinstance(raw, dict) else None
    return 'peers[%d]%s' % (index, ' (%s)' % label if label else '')


def _parse_peer(index, raw, network):
    """One peer dict -> (Peer, parsed subnet); DataplaneError names the peer."""
    if not isinstance(raw, dict):
        raise DataplaneError('%s: a peer must be a dict, got %r' % (_peer_name(index, raw), raw))
    name = _peer_name(index, raw)
    subnet, subnet_text = _ipv4_net(raw.get('subnet'), '%s subnet' % name)
    public_ip = check_node_ip(raw.get('public_ip'), '%s public_ip' % name)
    backend = raw.get('backend_type') or 'vxlan'
    if not isinstance(backend, str) or not _BACKEND.match(backend):
        raise DataplaneError('%s backend_type: %r is not a backend name' % (name, backend))
    vni = raw.get('vni')
    if vni is not None:
        check_vni(vni, '%s vni' % name)
    mac = raw.get('vtep_mac')
    if mac is not None:
        mac = check_mac(mac, '%s vtep_mac' % name)
    elif backend == 'vxlan':
        raise DataplaneError('%s: a vxlan peer needs vtep_mac' % name)
    if network is not None and not ipv4.subnet_of(subnet, network):
        raise DataplaneError('%s subnet: %s is not inside the cluster network %s'
                             % (name, ipv4.net_text(subnet), ipv4.net_text(network)))
    return Peer(subnet_text, public_ip, backend, vni, mac), subnet


def validate_peer(index, raw, network=None):
    """One peer dict -> Peer; DataplaneError names the peer."""
    net = None if network is None else _ipv4_net(network, 'network')[0]
    return _parse_peer(index, raw, net)[0]


def validate_peers(peers, network=None, own_subnet=None):
    """Validate every peer before anything changes; reject duplicates and overlaps.

    network / own_subnet: IPv4Network objects or CIDR text (or None)."""
    net = None if network is None else ipv4.parse_net(network, strict=False)
    own = None if own_subnet is None else ipv4.parse_net(own_subnet, strict=False)
    result, spans = [], []
    for index, raw in enumerate(peers or []):
        peer, subnet = _parse_peer(index, raw, net)
        if own is not None and ipv4.overlaps(subnet, own):
            raise DataplaneError('%s subnet: %s overlaps this node\'s subnet %s'
                                 % (_peer_name(index, raw), peer.subnet, ipv4.net_text(own)))
        spans.append((subnet[0], ipv4.last(subnet), index, raw))
        result.append(peer)
    _check_overlaps(spans)
    _check_unique_macs(peers, result)
    return result


def _check_unique_macs(raws, peers):
    """One FDB entry per MAC: two peers with one VtepMAC would take turns owning it."""
    seen = {}
    for index, peer in enumerate(peers):
        if peer.vtep_mac is None:
            continue
        if peer.vtep_mac in seen:
            first = seen[peer.vtep_mac]
            raise DataplaneError('%s vtep_mac: %s is also the VtepMAC of %s; every node needs its own'
                                 % (_peer_name(index, raws[index]), peer.vtep_mac,
                                    _peer_name(first, raws[first])))
        seen[peer.vtep_mac] = index


def _check_overlaps(spans):
    """Sweep sorted address ranges: O(n log n) instead of comparing every pair."""
    reach = None
    for first, last, index, raw in sorted(spans, key=lambda s: (s[0], -s[1], s[2])):
        if reach is not None and first <= reach[0]:
            later, earlier = sorted([(index, raw), reach[1:]], key=lambda x: x[0])[::-1]
            raise DataplaneError('%s subnet: %s overlaps %s' % (
                _peer_name(later[0], later[1]), later[1].get('subnet'), _peer_name(earlier[0], earlier[1])))
        if reach is None or last > reach[0]:
            reach = (last, index, raw)


def split_by_backend(peers, backend):
    """(peers of this backend, ignored peers): flannel ignores other backends' leases."""
    return ([p for p in peers if p.backend_type == backend],
            [p for p in peers if p.backend_type != backend])


def check_peers_vs_address(peers, address, node_ip=None):
    """No peer subnet may hold this node's flannel.N address, no peer may claim its node IP."""
    own = ipv4.parse_ip(address)
    for peer in peers:
        if ipv4.contains(ipv4.parse_net(peer.subnet), own):
            raise DataplaneError('peer %s: subnet %s holds this node\'s address %s'
                                 % (peer.public_ip, peer.subnet, address))
        if peer.public_ip == node_ip:
            raise _own_address(peer)


def _own_address(peer):
    return DataplaneError('peer %s (subnet %s): public_ip is this node\'s own address; a peer is '
                          'another node' % (peer.public_ip, peer.subnet))


def check_peers_not_local(peers, lookups):
    """No peer may claim an address of this node (its route lookup says type local)."""
    for peer in peers:
        if any(r.get('type') == 'local' for r in lookups.get(peer.public_ip) or ()):
            raise _own_address(peer)


def peers_out(peers):
    return [dict(p._asdict()) for p in peers]


# ------------------------------------------------------- direct routing

def on_link(routes, iface=None):
    """None when a route lookup result means "same L2 segment", else the reason."""
    if not routes:
        return 'no route to it'
    if len(routes) != 1:
        return '%d routes to it' % len(routes)
    route = routes[0]
    if route.get('type', 'unicast') != 'unicast':
        return 'route type %s' % route.get('type')
    if route.get('gateway'):
        return 'reached through gateway %s' % route['gateway']
    if iface and route.get('dev') != iface:
        return 'reached through %s, not %s' % (route.get('dev'), iface)
    return None


def classify_peers(peers, lookups, direct_routing=True):
    """(direct, vxlan): with DirectRouting a peer whose node IP's route lookup
    returns exactly one route without a gateway is direct (flannel's rule).

    peers: Peer tuples (or peer dicts); lookups: iproute.route_get() output.
    """
    if not direct_routing:
        return [], list(peers)
    direct, vxlan = [], []
    for peer in peers:
        ip = peer['public_ip'] if isinstance(peer, dict) else peer.public_ip
        (vxlan if on_link(lookups.get(ip)) else direct).append(peer)
    return direct, vxlan


def host_gw_problems(peers, lookups, iface):
    """Why each off-link peer cannot be reached by a host-gw route (empty: all fine)."""
    problems = []
    for peer in peers:
        reason = on_link(lookups.get(peer.public_ip), iface)
        if reason:
            problems.append('peer %s (subnet %s) is not on-link on %s: %s'
                            % (peer.public_ip, peer.subnet, iface, reason))
    return problems
