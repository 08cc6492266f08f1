# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dataplane entry points of the vxlan_link and direct_route modules (observe -> plan -> apply;
the modules run them with ``runner.run_module``); the planning lives beside it, one concern per file.

One call is of one family (the ``family`` option: ipv4, the default, or ipv6: ``flannel-v6.<VNI>``,
``ip -6``), turned into its Family once here and passed down: the peers are passed whole and each is
worked on as its view of the family (docs/dual-stack.md).

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift
from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import text
from ansible_collections.kubeasz.network.plugins.module_utils.plan.underlay import external_interface, links_by_name
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV6, family_named
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import BACKENDS, DataplaneError, check_vni
from ansible_collections.kubeasz.network.plugins.module_utils.plan.neighfdb import device_fdb, device_neighbours, entries_text, plan_vxlan_peers, wanted_entries
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import (
    check_peers_not_local, check_peers_vs_address, decide_direct, host_gw_problems, split_by_backend,
    validate_peers)
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import (
    desired_routes, observed_route_text, owned_routes, plan_routes, route_dict, route_key, route_matches, route_text)
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import (
    accept_ra_key, devices_text, flannel_devices, plan_stale_devices, plan_vxlan_absent, plan_vxlan_link, spec_text,
    vxlan_link_spec)

VXLAN_STATES = ('present', 'absent', 'prune')
# what a module reads: only vxlan links (flannel.<n> and nothing else), and the
# neighbours / FDB of the one device
VXLAN_LINKS = {'link': ['type', 'vxlan']}


def _out(peers, wholes=None):
    """Peers as dicts, whole (both families) when a view stands for a dual-stack lease."""
    if not wholes:
        return [peer.as_peer() for peer in peers]
    return [wholes.get(peer, peer).as_peer() for peer in peers]


def family_option(params):
    """The Family of the module's ``family`` option (unset: ipv4, the option's default): the one
    place the option's text becomes the Family the rest is given."""
    try:
        return family_named(params.get('family') or 'ipv4')
    except ValueError as exc:
        raise DataplaneError(str(exc))


def _cidr(value, what, family, strict=False):
    """(int, prefix) of a required CIDR parameter."""
    if not value:
        raise DataplaneError('%s is required' % what)
    try:
        return family.parse_net(value, strict=strict)
    except ValueError as exc:
        raise DataplaneError('%s: %r is not an %s network (%s)' % (what, value, family.label, exc))


def _finish(run, result, ops, texts, check_mode, apply, family, diff=True, what=None):
    """Apply (unless check mode) and report; texts: a function returning (before, after) lines,
    called only when a diff is wanted or, in check mode, the plan is not empty (the node's
    ``drift`` from the plan about ``what``): with thousands of peers the text is not free.
    ``apply``: ``apply(run, ops)`` injected in its place (default: ``iproute.apply`` of the family)."""
    if ops and not check_mode:
        (apply or functools.partial(iproute.apply, family=family))(run, ops)
    result.update(changed=bool(ops), plan=iproute.op_text(ops, family), drift=[])
    if diff or (ops and check_mode):
        before, after = texts()
        if diff:
            result['diff'] = dict(before=text(before), after=text(after))
        if ops and check_mode:
            result['drift'] = [drift(what, before, after)]
    return result


# ------------------------------------------------------------------ vxlan_link

def _vxlan_absent(run, name, prune, family):
    """state=absent: delete flannel.<VNI> and every other flannel.<n>;
    state=prune: delete only the others (flanneld owns flannel.<VNI>). IPv6: flannel-v6.*."""
    observed = iproute.observe(run, ['link', 'addr'], VXLAN_LINKS)
    link = links_by_name({'link': observed['link']}).get(name)
    ops = plan_stale_devices(observed, name, family) if prune else plan_vxlan_absent(observed, name, family)
    gone = [op.dev for op in ops]   # LinkDel only
    result = dict(device=name, vtep_mac=link.get('address') if link else None, removed=gone,
                  direct_peers=[], vxlan_peers=[], ignored_peers=[])

    def diff():
        devices = flannel_devices(observed, family)
        return (devices_text(observed, devices, family),
                devices_text(observed, [d for d in devices if d not in gone], family))
    return result, ops, diff


def _observe_vxlan(run, name, family):
    """link (vxlan only) and addr; neigh and FDB of name only when it exists (IPv6: ``ip -6``
    neighbours, and the device's accept_ra)."""
    observed = iproute.observe(run, ['link', 'addr'], VXLAN_LINKS)
    if name in links_by_name({'link': observed['link']}):
        observed.update(iproute.observe(run, ['neigh', 'fdb'], {
            'neigh': ['dev', name, 'nud', 'permanent'], 'fdb': ['dev', name]}, family))
        if family is IPV6:
            observed['accept_ra'] = {name: iproute.sysctl_get(run, accept_ra_key(name))}
    return observed


def _vxlan_present(run, params, name, family):
    network = _cidr(params['network'], 'network', family) if params.get('network') else None
    wholes = {}
    peers = validate_peers(params.get('peers'), family, network, wholes=wholes)
    observed = _observe_vxlan(run, name, family)
    spec = vxlan_link_spec(observed, params, family)
    check_peers_vs_address(peers, spec.address, family, spec.local)
    wanted, ignored = split_by_backend(peers, 'vxlan')
    direct, vxlan = decide_direct(run, wanted, params.get('direct_routing'), family)
    link_ops, fresh = plan_vxlan_link(observed, spec)
    # a new MAC on the device makes the kernel flush its neighbour entries, permanent ones too
    # (a device flanneld made, with a MAC of its own): plan every neighbour again after it
    remac = any(isinstance(op, iproute.LinkSet) and op.dev == name and op.attr == 'address' for op in link_ops)
    ops = link_ops + plan_vxlan_peers(dict(observed, neigh=[]) if remac else observed, name, vxlan, family, fresh)

    def diff():
        return (devices_text(observed, flannel_devices(observed, family), family) + entries_text(
            device_neighbours(observed, name, family), device_fdb(observed, name), name, family),
            spec_text(spec) + entries_text(*wanted_entries(vxlan), dev=name, family=family))
    removed = [op.dev for op in ops if isinstance(op, iproute.LinkDel) and op.dev != name]
    result = dict(device=name, vtep_mac=spec.mac, removed=removed, direct_peers=_out(direct, wholes),
                  vxlan_peers=_out(vxlan, wholes), ignored_peers=_out(ignored, wholes))
    return result, ops, diff


def vxlan_link(run, params, check_mode=False, apply=None, diff=True):
    """Make flannel.<VNI> (IPv6: flannel-v6.<VNI>) and its neighbour/FDB entries match params;
    every other VXLAN device of the family (an old VNI) is removed.

    ``apply`` is iproute.apply (injected so planning stays testable);
    ``diff``: also return before/after text (the module asks only in --diff)."""
    family = family_option(params)
    name = family.device(check_vni(params.get('vni', 1)))
    state = params.get('state', 'present')
    if state not in VXLAN_STATES:
        raise DataplaneError('state: %r is not one of %s' % (state, ', '.join(VXLAN_STATES)))
    if state == 'present':
        result, ops, texts = _vxlan_present(run, params, name, family)
    else:
        result, ops, texts = _vxlan_absent(run, name, state == 'prune', family)
    return _finish(run, result, ops, texts, check_mode, apply, family, diff, name)


# ---------------------------------------------------------------- direct_route

def _host_gw_routes(run, observed, params, peers, family):
    # the chooser reads the IPv6 default route as 'route6' (only for IPv6); the observed 'route'
    # here is of ``family``
    underlay = dict(observed, route6=observed.get('route'))
    iface = external_interface(underlay, iface=params.get('iface'), families=(family,)).name
    lookups = iproute.route_get(run, [p.public_ip for p in peers], family) if peers else {}
    check_peers_not_local(peers, lookups)
    problems = host_gw_problems(peers, lookups, iface)
    if problems:
        raise DataplaneError('host-gw needs every peer on the same L2 segment; nothing was '
                             'changed: ' + '; '.join(problems))
    return peers, [], desired_routes('host-gw', peers, [], family, iface=iface)


def _vxlan_routes(run, observed, params, peers, warnings, check_mode, family):
    vni = check_vni(params.get('vni', 1))
    direct, vxlan = decide_direct(run, peers, params.get('direct_routing'), family, params.get('direct_peers'))
    name = family.device(vni)
    if vxlan and name not in links_by_name({'link': observed.get('link')}):
        message = 'device %s does not exist: run vxlan_link first' % name
        if not check_mode:
            raise DataplaneError(message)
        warnings.append(message + ' (check mode: it would be created by vxlan_link)')
    return direct, vxlan, desired_routes('vxlan', direct, vxlan, family, vni)


def _routes_present(run, params, backend, network, own, result, check_mode, family):
    if own is None:
        raise DataplaneError('subnet (this node\'s lease subnet) is required with state=present')
    if not family.subnet_of(own, network):
        raise DataplaneError('subnet: %s is not inside network %s' % (family.net_text(own), family.net_text(network)))
    wholes = {}
    peers, ignored = split_by_backend(validate_peers(params.get('peers'), family, network, own, wholes), backend)
    if backend == 'host-gw':
        observed = iproute.observe(run, ['addr', 'route'], family=family)
        direct, vxlan, want = _host_gw_routes(run, observed, params, peers, family)
    else:
        observed = iproute.observe(run, ['link', 'route'], VXLAN_LINKS, family)
        direct, vxlan, want = _vxlan_routes(run, observed, params, peers, result['warnings'], check_mode, family)
    if check_mode:   # vxlan_link runs first and deletes the other flannel.<n>: the kernel drops their routes
        keep = family.device(params.get('vni', 1)) if backend == 'vxlan' else None
        prefix = family.device_prefix
        observed['route'] = [r for r in observed.get('route') or []
                             if not (r.get('dev') or '').startswith(prefix) or r.get('dev') == keep]
    result.update(direct_peers=_out(direct, wholes), vxlan_peers=_out(vxlan, wholes),
                  ignored_peers=_out(ignored, wholes), routes=[route_dict(r) for r in want])
    return observed, want


def direct_route(run, params, check_mode=False, apply=None, diff=True):
    """Make the flannel-owned routes of the main table match params (IPv6 ones for family ipv6)."""
    family = family_option(params)
    backend = params.get('backend') or 'vxlan'
    if backend not in BACKENDS:
        raise DataplaneError('backend: %r is not one of %s' % (backend, ', '.join(BACKENDS)))
    network = _cidr(params.get('network'), 'network', family)
    own = _cidr(params['subnet'], 'subnet', family) if params.get('subnet') else None
    result = dict(direct_peers=[], vxlan_peers=[], ignored_peers=[], routes=[], warnings=[])
    if params.get('state', 'present') == 'absent':
        observed, want = iproute.observe(run, ['route'], family=family), []
    else:
        observed, want = _routes_present(run, params, backend, network, own, result, check_mode, family)
    owned = owned_routes(observed, network, own, family)
    ops = plan_routes(observed, want, network, own, family, owned)

    def texts():
        # a route that stays is shown as the kernel has it, before and after (direct ones carry a dev)
        kept = dict((route_key(r, family), r) for r in owned)

        def after(w):
            have = kept.get(w.dst)
            return observed_route_text(have) if have is not None and route_matches(have, w, family) else route_text(w)
        return [observed_route_text(r) for r in owned], [after(w) for w in want]
    return _finish(run, result, ops, texts, check_mode, apply, family, diff, '%s routes' % family.label)
