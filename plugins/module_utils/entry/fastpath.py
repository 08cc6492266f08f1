# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 06's fast path: is the node already what this run would make of it?

node_check's ``plan`` option carries what the role's later tasks give the modules. ``node_plan``
runs those modules' entry points in check mode, here in one process, with the parameters the
tasks would pass: the lease (flannel_subnet: the store, subnet.env, the CNI config), then per
family the VXLAN device and its entries (vxlan_link), the routes (direct_route) and the rules
(traffic_rules), then the route guard's files, state and process. The node is in plan when none of
them would change anything; the role then skips the module tasks on it, provided no node of the
play changes its lease either (``store_stable``: the peers every node planned with stay).

The lease file (store=file) is the controller's: node_check's action plugin reads it and passes
its text. The etcd and kube stores take the full path.

Standard library and ansible.module_utils only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import put, read_text
from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift
from ansible_collections.kubeasz.network.plugins.module_utils.check.probe import node_facts as probe_facts
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import IprouteError
from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.entry.specs import (
    DIRECT_ROUTE, TRAFFIC_RULES, VXLAN_LINK, module_params)
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import node_facts, write_env
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import NetConfError, parse_net_conf
from ansible_collections.kubeasz.network.plugins.module_utils.plan.trafficrules import traffic_rules
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import guard_decision
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import LeaseFileText
from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state

SUBNET_FILE = '/run/flannel/subnet.env'


class ModuleView(object):
    """What flannel_subnet's node code reads of its AnsibleModule (params, check mode,
    run_command), for its work from another module."""

    def __init__(self, run, params, check_mode=True):
        self._run, self.params, self.check_mode = run, params, check_mode

    def run_command(self, argv, data=None, binary_data=False):
        return self._run(argv, data)


def subnet_view(run, plan, check_mode=True):
    """flannel_subnet's view of the node, with the options the role's lease task gives it."""
    return ModuleView(run, dict(iface=plan.get('iface') or None, iface_regex=plan.get('iface_regex') or None,
                                public_ip=None, public_ip6=None, subnet_file=plan.get('subnet_file') or SUBNET_FILE,
                                ip_masq=plan['ip_masq'], cni_conf_file=plan.get('cni_conf_file') or None), check_mode)


def _lease(run, plan, out):
    """flannel_subnet (state present) in check mode: (its result, whether the store would change).
    ``out['facts']``: the node's facts as flannel_subnet reads them (its lease task takes them)."""
    netconf = parse_net_conf(plan['network'])
    view = subnet_view(run, plan)
    facts = out['facts'] = node_facts(view, netconf)[0]
    if plan.get('store') != 'file' or plan.get('lease_text') is None:
        raise LeaseError('the %s store is checked by the full path' % plan.get('store')
                         if plan.get('store') != 'file' else 'no lease file yet')
    store = LeaseFileText(plan['lease_file'], plan['lease_text'])

    def env(lease):
        return write_env(view, netconf, facts, dict((fam, part.subnet) for fam, part in lease.parts.items()))
    # the real run's peers are the leases as they are (no node of the play changes its lease)
    result = lease_state(store, 'present', netconf, facts, env, plan['network'], check_mode=True,
                         peers_after_run=False)
    return result, store.changed


def _family(run, plan, family, lease_result, check_mode=True, diff=False):
    """One family's results of vxlan_link, direct_route and traffic_rules as family.yml runs them
    (in check mode unless told)."""
    settings, backend = plan['families'][family], plan['backend']
    keys, lease = settings['lease_keys'], lease_result['lease']
    subnet = lease.get(keys['subnet']) or None
    shared = dict(family=family, vni=backend['vni'], direct_routing=backend['direct_routing'],
                  iface=lease_result.get('iface'), peers=lease_result['peers'])
    link = vxlan_link(run, module_params(VXLAN_LINK, dict(
        shared, state=settings['link_state'], port=backend['port'], gbp=backend['gbp'],
        learning=backend['learning'], mtu=lease_result.get('mtu'), local_ip=lease_result.get(keys['public_ip']) or None,
        address=subnet, network=settings['network'] or None, mac=lease.get(keys['vtep_mac']) or None),
        'vxlan_link'), check_mode=check_mode, diff=diff)
    routes = direct_route(run, module_params(DIRECT_ROUTE, dict(
        shared, state=settings['state'], backend=backend['type'], network=settings['route_network'], subnet=subnet,
        direct_peers=link.get('direct_peers')), 'direct_route'), check_mode=check_mode, diff=diff)
    rules = traffic_rules(run, module_params(TRAFFIC_RULES, dict(
        family=family, state=settings['state'], mode=plan['rules_mode'], ip_masq=plan['ip_masq'],
        network=settings['network'] or None, subnet=subnet), 'traffic_rules'), check_mode=check_mode, diff=diff)
    return {'link': link, 'routes': routes, 'rules': rules}


def node_plan(run, plan, look):
    """Whether the node is in plan: node_check's fast-path keys. ``look``: node_check's look at the
    node (its families, the route guard's files and process, kubeasz's default CNI config). A node
    that is not also gets the preflight's facts (net_probe's, with ``plan['probe']``): the full
    path then reads the node once. ``out['guard_decision']``: the route guard's decision (internal)."""
    out = _node_plan(run, plan, look)
    if not out['in_plan'] and plan.get('probe'):
        try:
            out['probe'] = probe_facts(run, lambda path: read_text(path) or '', dict(
                plan['probe'], net_conf=plan['network'], iface=plan.get('iface'), iface_regex=plan.get('iface_regex')))
        except (DataplaneError, IprouteError, ValueError, KeyError, OSError):
            pass   # the preflight reads the node itself and reports it
    return out


def guard_of(plan, look, lease, results, lease_renewal=None):
    return guard_decision(dict(plan['guard'], node=look, backend=plan['backend']['type'], families=plan['families'],
                               lease=lease, results=results, store=plan['store'], lease_renewal=lease_renewal or {}))


def _node_plan(run, plan, look):
    out = dict(in_plan=False, store_stable=False, public_ips=[], drift=[], lease={}, dataplane={})
    try:
        lease_result, store_changed = _lease(run, plan, out)
        # the store's warnings (leases skipped as not this network's): the lease task may not run
        out.update(store_stable=not store_changed, lease=lease_result, warnings=lease_result.pop('warnings', []),
                   public_ips=[ip for ip in (lease_result.get('public_ip'), lease_result.get('public_ip6')) if ip])
        if store_changed:   # it takes or changes its lease: not in plan, whatever its dataplane (the full path's)
            out['drift'] = list(lease_result['drift'])
            return out
        results = dict((family, _family(run, plan, family, lease_result)) for family in look['families'])
    except (DataplaneError, LeaseError, IprouteError, NetConfError, ValueError, KeyError, OSError) as exc:
        out['reason'] = str(exc)
        return out
    out['dataplane'] = results
    decision = out['guard_decision'] = guard_of(plan, look, lease_result['lease'], results)
    found = list(lease_result['drift']) if lease_result['changed'] else []
    for family in look['families']:
        found.extend(record for part in PARTS for record in results[family][part].get('drift') or [])
    found.extend(drift('route guard %s' % what, [], [what]) for what, differs in sorted(decision['differs'].items())
                 if differs)
    if look['default_cni_conf']:
        found.append(drift("kubeasz's default CNI config", ['present'], []))
    if look['old_layout']:
        found.append(drift("the route guard's old layout", ['present'], []))
    changed = (lease_result['changed'] or decision['todo'] or look['default_cni_conf'] or look['old_layout']
               or any(results[f][part].get('changed') for f in look['families'] for part in PARTS))
    out.update(drift=found, in_plan=not changed)
    return out


PARTS = ('link', 'routes', 'rules')


def families_results(run, plan, families, lease_result, check_mode, diff):
    """Every family's part (_family), for real unless check mode: (results, their --diff, headed
    '<family> <part>')."""
    results, diffs = {}, []
    for family in families:
        results[family] = _family(run, plan, family, lease_result, check_mode=check_mode, diff=diff)
        diffs.extend(dict(results[family][part]['diff'], before_header='%s %s' % (family, part),
                          after_header='%s %s' % (family, part))
                     for part in PARTS if results[family][part].get('changed') and results[family][part].get('diff'))
    return results, diffs


def dataplane_only(out):
    """Whether what differs is only the dataplane (device, entries, routes, rules) and the route
    guard's state: the lease, subnet.env and the CNI config stay, and the guard's own files and
    process are as they should be. node_check can then bring the node to plan itself. ``out``:
    node_check's look at the node with node_plan's keys."""
    decision = out.get('guard_decision')
    if out['in_plan'] or decision is None or not out['store_stable'] or out['lease'].get('changed'):
        return False
    if out['default_cni_conf'] or out['old_layout']:
        return False
    if not decision['differs']:   # the guard is not wanted: it is todo only while a file of it is left
        return not decision['todo']
    return not any(differs for what, differs in decision['differs'].items() if what != 'state')


def converge(run, plan, out, state_file, check_mode=False, diff=False):
    """Bring a node whose dataplane alone differs (dataplane_only) to plan: the family tasks' work,
    then the route guard's state; ``out`` updated (in_plan, changed, diff, dataplane). In check mode
    it only says so, as the real run will. ``out``: as for dataplane_only. The caller holds the
    route guard meanwhile."""
    results, diffs = families_results(run, plan, out['families'], out['lease'], check_mode, diff)
    decision = guard_of(plan, out, out['lease']['lease'], results)
    if decision['differs'].get('state'):
        diffs.append(put(state_file, decision['state_text'], check_mode)[1])
    out.update(in_plan=True, changed=True, converged=True, dataplane=results, guard_decision=decision)
    if diff:
        out['diff'] = diffs
    return out
