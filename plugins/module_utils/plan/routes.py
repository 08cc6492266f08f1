# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's routes to the peers' subnets: desired routes, ownership, and the plan
that makes the main table match (from the 'route' table of ``iproute.observe()``).

A route is flannel-owned when its protocol is ROUTE_PROTOCOL, whatever network it lies in (an
earlier CLUSTER_CIDR's routes are ours too), or its destination lies inside the cluster network
and its device is ``flannel.*``; the node's own subnet is never owned. Only owned routes are
ever deleted. IPv6 (``family``, a Family, which every function takes from its caller):
the same with ``flannel-v6.*``; a route inside the own subnet is never owned (the kernel's
route of the device's /128 address), and the kernel's default metric 1024 counts as none.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import RouteDel, RouteReplace, route_spec, route_words

ROUTE_PROTOCOL = 159

Route = namedtuple('Route', ['dst', 'gateway', 'dev', 'onlink'])


def desired_routes(backend, direct, vxlan, family, vni=1, iface=None):
    """Routes flannel programs for the classified peers (validated Peers, views of ``family``)."""
    routes = [Route(p.subnet, p.public_ip, iface if backend == 'host-gw' else None, False)
              for p in direct]
    dev = family.device(vni)
    routes += [Route(p.subnet, p.subnet.partition('/')[0], dev, True) for p in vxlan]
    return sorted(routes, key=lambda r, key=family.net_key: key(r.dst))


def _proto_ours(route):
    return str(route.get('protocol')) == str(ROUTE_PROTOCOL)


def _default_metric(route, family):
    """No metric of its own: IPv4 none (0), IPv6 the kernel's default 1024."""
    metric = route.get('metric')
    return not metric or metric == family.kernel_metric


def _blocks_onlink(have, want, family):
    """IPv6 refuses an onlink gateway that another device's route covers ("Nexthop has invalid
    gateway or device mismatch"): a direct route to a peer subnet must go before its vxlan route
    (DirectRouting off, host-gw -> vxlan) is added, not be replaced by it. IPv4 replaces it."""
    return want.onlink and have.get('dev') != want.dev and family.onlink_refused_when_covered


def route_key(route, family):
    """An observed route's destination as CIDR text (the kernel omits /32, /128 for IPv6)."""
    dst = route.get('dst', '')
    if '/' in dst:
        return dst
    return '%s/%d' % (dst, family.bits)


def _owned(route, network, own, family):
    """is_owned with network/own already parsed to (int, prefix) tuples (IPv6 leaves every route
    inside the own subnet alone)."""
    dst = route.get('dst')
    if not dst or dst == 'default':
        return False
    try:
        net = family.parse_net(dst, strict=False)
    except ValueError:
        return False
    if net == own or family.device_route_in_subnet and own is not None and family.subnet_of(net, own):
        return False
    if _proto_ours(route):
        return True   # ours in whatever network: an earlier CLUSTER_CIDR's routes too
    return family.subnet_of(net, network) and (route.get('dev') or '').startswith(family.device_prefix)


def _parsed(network, own_subnet, family):
    return (family.parse_net(network, strict=False),
            None if own_subnet is None else family.parse_net(own_subnet, strict=False))


def is_owned(route, network, own_subnet, family):
    """Flannel-owned (never the own subnet): proto 159 in any network, or dev flannel.*
    (flannel-v6.*) with dst inside network.

    route: an ``ip -json route`` dict; network / own_subnet: ip_network objects or CIDR text
    (own_subnet may be None)."""
    return _owned(route, *_parsed(network, own_subnet, family), family=family)


def owned_routes(observed, network, own_subnet, family):
    net, own = _parsed(network, own_subnet, family)
    return [r for r in observed.get('route') or [] if _owned(r, net, own, family)]


def route_matches(have, want, family):
    return (route_key(have, family) == want.dst
            and have.get('gateway') == want.gateway
            and (want.dev is None or have.get('dev') == want.dev)
            and ('onlink' in (have.get('flags') or [])) == want.onlink
            and _proto_ours(have) and _default_metric(have, family)
            and have.get('type', 'unicast') == 'unicast')


def replace_op(route):
    """The operation that programs a desired Route."""
    return RouteReplace(route.dst, route.gateway, route.dev, route.onlink, ROUTE_PROTOCOL)


def route_text(route):
    """A Route (desired) in ``ip route`` syntax."""
    return route_spec(replace_op(route))


def route_dict(route):
    """A Route (desired) as data: direct_route's ``routes`` and the route guard's state file."""
    return {'dst': route.dst, 'gateway': route.gateway, 'dev': route.dev, 'onlink': route.onlink}


def observed_route_text(route):
    """An observed route (ip -json dict) in ``ip route`` syntax."""
    return route_words(route.get('dst'), route.get('gateway'), route.get('dev'),
                       'onlink' in (route.get('flags') or []), route.get('protocol'), route.get('metric'),
                       route.get('type'))


def del_op(route):
    """The operation that deletes an observed route (main table)."""
    return RouteDel(route.get('dst'), route.get('gateway'), route.get('dev'), route.get('metric'), route.get('type'))


def plan_routes(observed, want, network, own_subnet, family, owned=None, prune=True):
    """Replace missing/different desired routes, delete stale owned ones (unless not ``prune``:
    the route guard only adds).

    observed: {'route': [ip -json route dicts]}; want: Routes; network /
    own_subnet: ip_network objects or CIDR text of ``family`` (own_subnet may be None); owned:
    owned_routes() if already known."""
    by_dst = {}
    for route in observed.get('route') or []:
        by_dst.setdefault(route_key(route, family), []).append(route)
    wanted = dict((w.dst, w) for w in want)
    ops = []
    if owned is None:
        owned = owned_routes(observed, network, own_subnet, family) if prune else []
    for route in owned:
        w = wanted.get(route_key(route, family))
        if w is not None and (route_matches(route, w, family)
                              or (_default_metric(route, family) and not _blocks_onlink(route, w, family))):
            continue  # in sync, or overwritten by "route replace" (same dst, default metric)
        ops.append(del_op(route))
    for w in want:
        if not any(route_matches(r, w, family) for r in by_dst.get(w.dst, ())):
            ops.append(replace_op(w))
    return ops
