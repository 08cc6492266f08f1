# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peers of a node run (the other nodes' leases): validated as a set, and which are direct.

Every peer is validated like user input (``Lease.parse_peer``) before anything changes. A run is
of one family (``family``: ipv4 or ipv6): the peers are that family's views (``Lease.view``), a
peer without the family is left out.
Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, Lease


# ------------------------------------------------------------------- peers

def _peer_name(index, raw, family):
    """peers[i] and the peer's address (or subnet) of the family, else of IPv4."""
    label = None
    if isinstance(raw, dict):
        label = (raw.get(family.public_ip_key) or raw.get(family.subnet_key)
                 or raw.get('public_ip') or raw.get('subnet'))
    return 'peers[%d]%s' % (index, ' (%s)' % label if label else '')


def _parse_peer(index, raw, network, family):
    """One peer dict -> (Lease, its ``family`` view, parsed subnet), or (Lease, None, None) when
    it has no such family; LeaseError names the peer."""
    name = _peer_name(index, raw, family)
    peer, subnet = Lease.parse_peer(raw, name, family)
    if subnet is None:
        return peer, None, None
    view = peer.view(family)
    if network is not None and not family.subnet_of(subnet, network):
        raise DataplaneError('%s %s: %s is not inside the cluster network %s'
                             % (name, family.subnet_key, view.subnet, family.net_text(network)))
    return peer, view, subnet


def validate_peers(peers, family, network=None, own_subnet=None, wholes=None):
    """Validate every peer before anything changes; reject duplicates and overlaps. Returns
    the peers' views of ``family`` (Leases in the IPv4 field names); a peer without the family is
    left out (validated all the same).

    network / own_subnet: ip_network objects or CIDR text of the family (or None);
    wholes: a dict to fill with {view: whole lease} where the view is not the lease itself (a
    dual-stack peer), so that a module returns the peers whole."""
    fam = family
    net = None if network is None else fam.parse_net(network, strict=False)
    own = None if own_subnet is None else fam.parse_net(own_subnet, strict=False)
    result, spans, indexes = [], [], []
    for index, raw in enumerate(peers or []):
        peer, view, subnet = _parse_peer(index, raw, net, family)
        if view is None:
            continue
        if own is not None and fam.overlaps(subnet, own):
            raise DataplaneError('%s %s: %s overlaps this node\'s subnet %s'
                                 % (_peer_name(index, raw, family), family.subnet_key, view.subnet, fam.net_text(own)))
        spans.append((subnet[0], fam.last(subnet), index, raw))
        result.append(view)
        indexes.append(index)
        if wholes is not None and view is not peer:
            wholes[view] = peer
    _check_overlaps(spans, family)
    _check_unique_macs(peers, result, indexes, family)
    return result


def _check_unique_macs(raws, peers, indexes, family):
    """One FDB entry per MAC: two peers with one VtepMAC would take turns owning it.
    raws: the peer dicts; indexes: each peer's index in raws."""
    seen = {}
    for number, peer in enumerate(peers):
        if peer.vtep_mac is None:
            continue
        if peer.vtep_mac in seen:
            this, first = indexes[number], indexes[seen[peer.vtep_mac]]
            raise DataplaneError('%s %s: %s is also the VtepMAC of %s; every node needs its own'
                                 % (_peer_name(this, raws[this], family), family.vtep_mac_key, peer.vtep_mac,
                                    _peer_name(first, raws[first], family)))
        seen[peer.vtep_mac] = number


def _check_overlaps(spans, family):
    """Sweep sorted address ranges: O(n log n) instead of comparing every pair."""
    reach = None
    for first, last, index, raw in sorted(spans, key=lambda s: (s[0], -s[1], s[2])):
        if reach is not None and first <= reach[0]:
            later, earlier = sorted([(index, raw), reach[1:]], key=lambda x: x[0])[::-1]
            key = family.subnet_key
            raise DataplaneError('%s %s: %s overlaps %s' % (
                _peer_name(later[0], later[1], family), key, later[1].get(key),
                _peer_name(earlier[0], earlier[1], family)))
        if reach is None or last > reach[0]:
            reach = (last, index, raw)


def split_by_backend(peers, backend):
    """(peers of this backend, ignored peers): flannel ignores other backends' leases."""
    return ([p for p in peers if p.backend_type == backend],
            [p for p in peers if p.backend_type != backend])


def check_peers_vs_address(peers, address, family, node_ip=None):
    """No peer subnet may hold this node's flannel.N address, no peer may claim its node IP."""
    fam = family
    own = fam.parse_ip(address)
    for peer in peers:
        if fam.contains(fam.parse_net(peer.subnet), own):
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


def decide_direct(run, peers, direct_routing, family, given=None):
    """The node run's one decision of which vxlan peers are direct -> (direct, vxlan).

    ``given``: the ``direct_peers`` vxlan_link decided (whole peer dicts) for this family: taken
    as they are (matched by public_ip, IPv6: public_ip6), so the routes follow the device entries
    and no lookup runs. Else one set of kernel route lookups (``iproute.route_get``: one
    ``ip [-6] route get`` process) and flannel's rule (``classify_peers``, ip.DirectRouting);
    vxlan_link and direct_route both call this with the same inputs (the vxlan peers,
    DirectRouting), so without ``given`` they still decide alike unless the kernel's routes
    change between the two tasks.
    """
    if not direct_routing:
        return [], list(peers)
    if given is not None:
        key = family.public_ip_key
        ips = set(peer.get(key) for peer in given if isinstance(peer, dict))
        return [p for p in peers if p.public_ip in ips], [p for p in peers if p.public_ip not in ips]
    lookups = iproute.route_get(run, [p.public_ip for p in peers], family) if peers else {}
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
