# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peers of a node run (the other nodes' leases): validated as a set, and which are direct.

Every peer is validated like user input (``Lease.from_peer``) before anything changes.
Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils import iproute, ipv4
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError, Lease


# ------------------------------------------------------------------- peers

def _peer_name(index, raw):
    label = raw.get('public_ip') or raw.get('subnet') if isinstance(raw, dict) else None
    return 'peers[%d]%s' % (index, ' (%s)' % label if label else '')


def _parse_peer(index, raw, network):
    """One peer dict -> (Lease, parsed subnet); LeaseError names the peer."""
    name = _peer_name(index, raw)
    peer, subnet = Lease.parse_peer(raw, name)
    if network is not None and not ipv4.subnet_of(subnet, network):
        raise DataplaneError('%s subnet: %s is not inside the cluster network %s'
                             % (name, peer.subnet, ipv4.net_text(network)))
    return peer, subnet


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


def decide_direct(run, peers, direct_routing, given=None):
    """The node run's one decision of which vxlan peers are direct -> (direct, vxlan).

    ``given``: the ``direct_peers`` vxlan_link decided (peer dicts): taken as they are, so the
    routes follow the device entries and no lookup runs. Else one set of kernel route lookups
    (``iproute.route_get``: one process) and flannel's rule (``classify_peers``); vxlan_link and
    direct_route both call this with the same inputs (the vxlan peers, DirectRouting), so without
    ``given`` they still decide alike unless the kernel's routes change between the two tasks.
    """
    if not direct_routing:
        return [], list(peers)
    if given is not None:
        ips = set(peer.get('public_ip') for peer in given if isinstance(peer, dict))
        return [p for p in peers if p.public_ip in ips], [p for p in peers if p.public_ip not in ips]
    lookups = iproute.route_get(run, [p.public_ip for p in peers]) if peers else {}
    check_peers_not_local(peers, lookups)
    return classify_peers(peers, lookups, direct_routing)


def host_gw_problems(peers, lookups, iface):
    """Why each off-link peer cannot be reached by a host-gw route (empty: all fine)."""
    problems = []
    for peer in peers:
        reason = on_link(lookups.get(peer.public_ip), iface)
        if reason:
            problems.append('peer %s (subnet %s) is not on-link on %s: %s'
                            % (peer.public_ip, peer.subnet, iface, reason))
    return problems
