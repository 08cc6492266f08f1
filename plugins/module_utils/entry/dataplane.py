# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dataplane entry points of the vxlan_link and direct_route modules (observe -> plan -> apply)
and their AnsibleModule glue; the planning lives beside it, one concern per file.

One call is of one family (``family``: ipv4, the default, or ipv6: ``flannel-v6.<VNI>``, ``ip -6``):
the peers are passed whole and each is worked on as its view of the family (docs/dual-stack.md).

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift
from ansible_collections.kubeasz.network.plugins.module_utils.plan.extif import external_interface, links_by_name
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, LABEL, module_for
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import BACKENDS, DataplaneError, check_vni
from ansible_collections.kubeasz.network.plugins.module_utils.plan.neighfdb import device_fdb, device_neighbours, entries_text, plan_vxlan_peers, wanted_entries
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import (
    check_peers_not_local, check_peers_vs_address, decide_direct, host_gw_problems, split_by_backend,
    validate_peers)
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import (
    desired_routes, observed_route_text, owned_routes, plan_routes, route_dict, route_key, route_matches, route_text)
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import (
    DEVICE_PREFIX, accept_ra_key, device_name, devices_text, flannel_devices, iface6_name,
    plan_stale_devices, plan_vxlan_absent, plan_vxlan_link, spec_text, vxlan_link_spec)

VXLAN_STATES = ('present', 'absent', 'prune')
# what a module reads: only vxlan links (flannel.<n> and nothing else), and the
# neighbours / FDB of the one device
VXLAN_LINKS = {'link': ['type', 'vxlan']}


# argument spec of one peer, shared by the vxlan_link and direct_route modules (a peer has
# subnet and public_ip, subnet6 and public_ip6, or both: Lease.parse_peer checks)
PEER_OPTIONS = dict(
    subnet=dict(type='str'),
    public_ip=dict(type='str'),
    backend_type=dict(type='str', default='vxlan'),
    vni=dict(type='int'),
    vtep_mac=dict(type='str'),
    subnet6=dict(type='str'),
    public_ip6=dict(type='str'),
    vtep_mac6=dict(type='str'),
)


def run_module(module, entry_point):
    """Run an entry point for an AnsibleModule: its runner, check mode, --diff, warnings, errors."""
    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False)

    try:
        result = entry_point(run, module.params, check_mode=module.check_mode, diff=module._diff)
    except DataplaneError as exc:
        module.fail_json(msg=str(exc))
    except iproute.IprouteError as exc:
        # a half-applied plan changed the node: say so, and what ran (the next run converges)
        module.fail_json(msg=str(exc), changed=exc.partial, applied=exc.applied)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


def _out(peers, wholes=None):
    """Peers as dicts, whole (both families) when a view stands for a dual-stack lease."""
    if not wholes:
        return [peer.as_peer() for peer in peers]
    return [wholes.get(peer, peer).as_peer() for peer in peers]


def text(lines):
    return ''.join(line + '\n' for line in lines)


def _family(params):
    family = params.get('family') or 'ipv4'
    if family not in FAMILIES:
        raise DataplaneError('family: %r is not one of %s' % (family, ', '.join(FAMILIES)))
    return family


def _cidr(value, what, strict=False, family='ipv4'):
    """(int, prefix) of a required CIDR parameter."""
    if not value:
        raise DataplaneError('%s is required' % what)
    try:
        return module_for(family).parse_net(value, strict=strict)
    except ValueError as exc:
        raise DataplaneError('%s: %r is not an %s network (%s)' % (what, value, LABEL[family], exc))


def _finish(run, result, ops, texts, check_mode, apply, family='ipv4', diff=True, what=None):
    """Apply (unless check mode) and report; texts: a function returning (before, after) lines,
    called only when a diff is wanted or, in check mode, the plan is not empty (the node's
    ``drift`` from the plan about ``what``): with thousands of peers the text is not free."""
    if ops and not check_mode:
        (apply or (iproute.apply if family == 'ipv4' else functools.partial(iproute.apply, family=family)))(run, ops)
    result.update(changed=bool(ops), plan=iproute.op_text(ops, family), drift=[])
    if diff or (ops and check_mode):
        before, after = texts()
        if diff:
            result['diff'] = dict(before=text(before), after=text(after))
        if ops and check_mode:
            result['drift'] = [drift(what, before, after)]
    return result


# ------------------------------------------------------------------ vxlan_link

def _vxlan_absent(run, name, prune, family='ipv4'):
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


def _observe_vxlan(run, name, family='ipv4'):
    """link (vxlan only) and addr; neigh and FDB of name only when it exists (IPv6: ``ip -6``
    neighbours, and the device's accept_ra)."""
    observed = iproute.observe(run, ['link', 'addr'], VXLAN_LINKS)
    if name in links_by_name({'link': observed['link']}):
        observed.update(iproute.observe(run, ['neigh', 'fdb'], {
            'neigh': ['dev', name, 'nud', 'permanent'], 'fdb': ['dev', name]}, family))
        if family == 'ipv6':
            observed['accept_ra'] = {name: iproute.sysctl_get(run, accept_ra_key(name))}
    return observed


def _vxlan_present(run, params, name, family='ipv4'):
    network = _cidr(params['network'], 'network', family=family) if params.get('network') else None
    wholes = {}
    peers = validate_peers(params.get('peers'), network, family=family, wholes=wholes)
    observed = _observe_vxlan(run, name, family)
    spec = vxlan_link_spec(observed, params, family)
    check_peers_vs_address(peers, spec.address, spec.local, family)
    wanted, ignored = split_by_backend(peers, 'vxlan')
    direct, vxlan = decide_direct(run, wanted, params.get('direct_routing'), family=family)
    link_ops, fresh = plan_vxlan_link(observed, spec)
    # a new MAC on the device makes the kernel flush its neighbour entries, permanent ones too
    # (a device flanneld made, with a MAC of its own): plan every neighbour again after it
    remac = any(isinstance(op, iproute.LinkSet) and op.dev == name and op.attr == 'address' for op in link_ops)
    ops = link_ops + plan_vxlan_peers(dict(observed, neigh=[]) if remac else observed, name, vxlan, fresh, family)

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
    family = _family(params)
    name = device_name(check_vni(params.get('vni', 1)), family)
    state = params.get('state', 'present')
    if state not in VXLAN_STATES:
        raise DataplaneError('state: %r is not one of %s' % (state, ', '.join(VXLAN_STATES)))
    if state == 'present':
        result, ops, texts = _vxlan_present(run, params, name, family)
    else:
        result, ops, texts = _vxlan_absent(run, name, state == 'prune', family)
    return _finish(run, result, ops, texts, check_mode, apply, family, diff, name)


# ---------------------------------------------------------------- direct_route

def _host_gw_routes(run, observed, params, peers, family='ipv4'):
    if family == 'ipv4':
        iface = external_interface(observed, iface=params.get('iface')).name
    else:
        iface = iface6_name(observed, params.get('iface'))
    lookups = iproute.route_get(run, [p.public_ip for p in peers], family) if peers else {}
    check_peers_not_local(peers, lookups)
    problems = host_gw_problems(peers, lookups, iface)
    if problems:
        raise DataplaneError('host-gw needs every peer on the same L2 segment; nothing was '
                             'changed: ' + '; '.join(problems))
    return peers, [], desired_routes('host-gw', peers, [], iface=iface, family=family)


def _vxlan_routes(run, observed, params, peers, warnings, check_mode, family='ipv4'):
    vni = check_vni(params.get('vni', 1))
    direct, vxlan = decide_direct(run, peers, params.get('direct_routing'), params.get('direct_peers'), family)
    name = device_name(vni, family)
    if vxlan and name not in links_by_name({'link': observed.get('link')}):
        message = 'device %s does not exist: run vxlan_link first' % name
        if not check_mode:
            raise DataplaneError(message)
        warnings.append(message + ' (check mode: it would be created by vxlan_link)')
    return direct, vxlan, desired_routes('vxlan', direct, vxlan, vni, family=family)


def _routes_present(run, params, backend, network, own, result, check_mode, family='ipv4'):
    if own is None:
        raise DataplaneError('subnet (this node\'s lease subnet) is required with state=present')
    fam = module_for(family)
    if not fam.subnet_of(own, network):
        raise DataplaneError('subnet: %s is not inside network %s' % (fam.net_text(own), fam.net_text(network)))
    wholes = {}
    peers, ignored = split_by_backend(validate_peers(params.get('peers'), network, own, family, wholes), backend)
    if backend == 'host-gw':
        observed = iproute.observe(run, ['addr', 'route'], family=family)
        direct, vxlan, want = _host_gw_routes(run, observed, params, peers, family)
    else:
        observed = iproute.observe(run, ['link', 'route'], VXLAN_LINKS, family)
        direct, vxlan, want = _vxlan_routes(run, observed, params, peers, result['warnings'], check_mode, family)
    if check_mode:   # vxlan_link runs first and deletes the other flannel.<n>: the kernel drops their routes
        keep = device_name(params.get('vni', 1), family) if backend == 'vxlan' else None
        prefix = DEVICE_PREFIX[family]
        observed['route'] = [r for r in observed.get('route') or []
                             if not (r.get('dev') or '').startswith(prefix) or r.get('dev') == keep]
    result.update(direct_peers=_out(direct, wholes), vxlan_peers=_out(vxlan, wholes),
                  ignored_peers=_out(ignored, wholes), routes=[route_dict(r) for r in want])
    return observed, want


def direct_route(run, params, check_mode=False, apply=None, diff=True):
    """Make the flannel-owned routes of the main table match params (IPv6 ones for family ipv6)."""
    family = _family(params)
    backend = params.get('backend') or 'vxlan'
    if backend not in BACKENDS:
        raise DataplaneError('backend: %r is not one of %s' % (backend, ', '.join(BACKENDS)))
    network = _cidr(params.get('network'), 'network', family=family)
    own = _cidr(params['subnet'], 'subnet', family=family) if params.get('subnet') else None
    result = dict(direct_peers=[], vxlan_peers=[], ignored_peers=[], routes=[], warnings=[])
    if params.get('state', 'present') == 'absent':
        observed, want = iproute.observe(run, ['route'], family=family), []
    else:
        observed, want = _routes_present(run, params, backend, network, own, result, check_mode, family)
    owned = owned_routes(observed, network, own, family)
    ops = plan_routes(observed, want, network, own, owned, family=family)

    def texts():
        # a route that stays is shown as the kernel has it, before and after (direct ones carry a dev)
        kept = dict((route_key(r), r) for r in owned)

        def after(w):
            have = kept.get(w.dst)
            return observed_route_text(have) if have is not None and route_matches(have, w) else route_text(w)
        return [observed_route_text(r) for r in owned], [after(w) for w in want]
    return _finish(run, result, ops, texts, check_mode, apply, family, diff, '%s routes' % LABEL[family])
