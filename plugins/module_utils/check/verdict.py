# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdicts of ``ezctl net check`` from the nodes' facts and probes: per pair and layer, per
node, per cluster, each failure with its likely cause and fix.

Pure functions on plain data (standard library only): the controller runs them in net_probe's
``report`` and ``preflight`` modes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import family_named
from ansible_collections.kubeasz.network.plugins.module_utils.check.capacity import capacity
from ansible_collections.kubeasz.network.plugins.module_utils.check.settings import check_settings
from ansible_collections.kubeasz.network.plugins.module_utils.check.texts import (
    NEEDS_FLANNEL, PAIR_LAYERS, VXLAN_PORT, cause_fix, overhead)

PASS, FAIL, SKIP = 'pass', 'fail', 'skip'


def finding(layer, severity, nodes, cause, fix, family=None):
    return {'layer': layer, 'severity': severity, 'nodes': sorted(nodes), 'family': family,
            'cause': cause, 'fix': fix}


def public_ip_findings(facts):
    """Duplicate public IPs (naming the nodes), interfaces with several candidate addresses,
    nodes whose interface could not be chosen."""
    out, by_ip = [], {}
    for node, fact in sorted(facts.items()):
        if fact.get('error'):
            out.append(finding('public-ip', 'fail', [node], '%s: %s' % (node, fact['error']),
                               'set FLANNEL_IFACE (or FLANNEL_IFACE_REGEX) to the interface between the nodes'))
            continue
        for key, cands in (('public_ip', 'candidates'), ('public_ip6', 'candidates6')):
            if fact.get(key):
                by_ip.setdefault(fact[key], []).append(node)
            if len(fact.get(cands) or []) > 1:
                out.append(finding('public-ip', 'warn', [node], '%s: interface %s has several candidate addresses '
                                   '(%s); flannel takes %s' % (node, fact.get('iface'), ', '.join(fact[cands]),
                                                                fact.get(key)),
                                   'make sure %s is the address the other nodes reach' % fact.get(key)))
    for ip, nodes in sorted(by_ip.items()):
        if len(nodes) > 1:
            out.append(finding('public-ip', 'fail', nodes, 'nodes %s all use the public IP %s (interface %s): '
                               'their leases collide and traffic goes astray (Vagrant/VirtualBox NAT 10.0.2.15)'
                               % (', '.join(nodes), ip, facts[nodes[0]].get('iface')),
                               'set FLANNEL_IFACE to the interface that joins the nodes (each node its own address)'))
    return out


# the rule backends rule_backends() reads: (legacy key, nft key, tool prefix) per family
RULE_BACKENDS = (('legacy', 'nft', 'iptables'), ('legacy6', 'nft6', 'ip6tables'))


def _tool(backend):
    """iptables-legacy, ip6tables-nft, ... of a key of rule_backends()."""
    return '%s-%s' % ('ip6tables' if backend.endswith('6') else 'iptables', backend.rstrip('6'))


def rule_findings(facts):
    """Rules split between iptables-legacy and iptables-nft (or ip6tables-legacy and ip6tables-nft);
    FORWARD policy DROP without flannel's FLANNEL-FWD jump (a failure once flannel is deployed, a
    warning before: step 06 adds them)."""
    out = []
    for node, fact in sorted(facts.items()):
        rules = fact.get('rules') or {}
        for legacy, nft, tool in RULE_BACKENDS:
            if all((rules.get(b) or {}).get('rules') for b in (legacy, nft)):
                out.append(finding('rules', 'fail', [node], '%s: %s-legacy holds %d rules and %s-nft %d: '
                                   'the rules are split between two backends and one of them is not seen '
                                   '(flannel #1306)' % (node, tool, rules[legacy]['rules'], tool, rules[nft]['rules']),
                                   'keep one backend: move the legacy rules over (%s-legacy-save | '
                                   '%s-nft-restore) and flush %s-legacy' % (tool, tool, tool)))
        for backend, state in sorted(rules.items()):
            if state.get('forward_drop') and not state.get('ours'):
                out.append(finding('rules', 'fail' if fact.get('deployed') else 'warn', [node],
                                   '%s: FORWARD policy DROP (%s) without flannel\'s FLANNEL-FWD rules: '
                                   'pod traffic between nodes is dropped (flannel #1753)' % (node, _tool(backend)),
                                   'run ezctl setup <cluster> 06 (it installs flannel\'s FLANNEL-FWD accept '
                                   'rules), or accept the cluster network in FORWARD'))
    return out


def capacity_findings(net_conf, nodes):
    return [finding('capacity', c['severity'], [], c['cause'], c['fix'], c['family'])
            for c in capacity(net_conf, nodes) if c['severity'] != 'ok']


def preflight(facts, net_conf, nodes, stop_on_rules=True):
    """Findings of the public IPs, capacity and rule backends. Step 06's preflight passes
    stop_on_rules=False: rule findings are warnings there (06 adds flannel's own rules and does
    not touch the others), duplicate public IPs and too few subnets stop it."""
    rules = rule_findings(facts)
    if not stop_on_rules:
        rules = [dict(f, severity='warn') for f in rules]
    return public_ip_findings(facts) + capacity_findings(net_conf, nodes) + rules


def preflight_result(facts, net_conf, nodes):
    """Step 06's preflight as a task result: failed (its message naming every cause and fix) on
    duplicate public IPs and too few subnets, else the findings with the others as warnings."""
    findings = preflight(facts, net_conf, nodes, stop_on_rules=False)
    lines = ['%s %s: %s; fix: %s' % (f['severity'].upper(), f['layer'], f['cause'], f['fix']) for f in findings]
    if any(f['severity'] == FAIL for f in findings):
        return {'failed': True, 'msg': 'preflight: ' + ' | '.join(lines), 'findings': findings}
    result = {'findings': findings, 'text': '\n'.join(lines)}
    if lines:
        result['warnings'] = lines
    return result


# --------------------------------------------------------------------------- pairs

def _directed(record, layer, heard, facts, params):
    """True/False/None of one direction's layer."""
    if layer == 'transport':
        if record.get('underlay') is None:
            return None
        if record.get('direct') or params['backend'] == 'host-gw':
            return bool(record.get('onlink'))
        if (heard or {}).get(record['peer']) is None:  # no listener result: unknown
            return None
        src_ip = facts[record['src']].get(family_named(record['family']).public_ip_key)
        return src_ip in heard[record['peer']]
    return record.get(layer)


def _texts(layer, record, facts, params):
    src, dst, family = record['src'], record['peer'], family_named(record['family'])
    values = {'src': src, 'dst': dst, 'ip': record.get('target'), 'via': record.get('via'),
              'backend': params['backend'], 'port': params.get('port') or VXLAN_PORT,
              'overhead': overhead(params['backend'], family), 'mtu': params['flannel_mtu'].get(family),
              'size': record.get('size'), 'subnet': facts[dst].get(family.subnet_key),
              'why': record.get('notes', {}).get('overlay'), 'ip_src': record.get('pod_src')}
    if layer == 'pod':
        values['ip'] = record.get('pod_dst')
    key = layer
    if layer == 'transport':
        key = 'transport-onlink' if (record.get('direct') or params['backend'] == 'host-gw') else 'transport-vxlan'
    if layer == 'mtu':
        values['size'] = (record.get('size') or 0) + family.echo_header
    return cause_fix(key, **values)


def pair_verdicts(facts, probes, heard, params):
    """[{nodes, family, layers: {layer: pass|fail|skip}, failed: first failing layer}] and the
    findings (the first failing layer of each pair and family: the likely cause)."""
    records = {}
    for src, result in probes.items():
        for rec in (result or {}).get('pairs') or []:
            rec = dict(rec, src=src)
            records.setdefault((tuple(sorted((src, rec['peer']))), rec['family']), []).append(rec)
    pairs, found = [], []
    for (nodes, family), recs in sorted(records.items()):
        layers, first = {}, None
        for layer in PAIR_LAYERS:
            values = [(_directed(r, layer, heard, facts, params), r) for r in recs]
            bad = [r for v, r in values if v is False]
            if bad:
                layers[layer] = FAIL
                if first is None:
                    first = layer
                    cause, fix = _texts(layer, bad[0], facts, params)
                    if len(bad) == 1 and len(recs) == 2:
                        cause += ' (from %s to %s only)' % (bad[0]['src'], bad[0]['peer'])
                    found.append(finding(layer, 'fail', nodes, cause, fix, family))
            elif values and all(v is True for v, r in values):
                layers[layer] = PASS
            else:
                layers[layer] = SKIP
        pairs.append({'nodes': list(nodes), 'family': family, 'layers': layers, 'failed': first})
    return pairs, found


def egress_verdicts(probes, params):
    out, found = {}, []
    for node, result in sorted(probes.items()):
        for family, eg in sorted(((result or {}).get('egress') or {}).items()):
            out.setdefault(node, {})[family] = PASS if eg['ok'] else FAIL
            if not eg['ok']:
                cause, fix = cause_fix('egress' if params.get('ip_masq', True) else 'egress-nomasq', src=node, ip_src=eg['src'], ip=eg['target'])
                found.append(finding('egress', 'fail', [node], cause, fix, family))
    return out, found


def report_params(net_conf, facts, ip_masq=True):
    """check_settings() with FLANNEL_IPMASQ and FLANNEL_MTU per family (the first node's)."""
    settings = check_settings(net_conf)
    first = facts[sorted(facts)[0]] if facts else {}
    mtus = dict((fam, mtu - overhead(settings['backend'], fam) if mtu else None)
                for fam, mtu in (first.get('path_mtu') or {}).items())
    return dict(settings, ip_masq=ip_masq, flannel_mtu=mtus)


def report(facts, probes, heard, net_conf, nodes, params):
    """The whole check: {'pairs', 'egress', 'findings', 'failed', 'skipped_layers', 'ok'};
    params: report_params()."""
    pairs, found = pair_verdicts(facts, probes, heard, params)
    egress, found_egress = egress_verdicts(probes, params)
    findings = preflight(facts, net_conf, nodes) + found + found_egress
    deployed = [n for n, f in sorted(facts.items()) if f.get('deployed')]
    skipped = list(NEEDS_FLANNEL) if len(deployed) < len(facts) else []
    failed = [f for f in findings if f['severity'] == 'fail']
    return {'pairs': pairs, 'egress': egress, 'findings': findings, 'ok': not failed,
            'failed': ['%s %s%s' % ('-'.join(f['nodes']) or 'cluster', f['layer'],
                                    ' (%s)' % f['family'] if f['family'] else '') for f in failed],
            'not_deployed': [n for n in sorted(facts) if n not in deployed], 'skipped_layers': skipped,
            'nodes': dict((n, {'iface': f.get('iface'), 'public_ip': f.get('public_ip'),
                               'public_ip6': f.get('public_ip6'), 'subnet': f.get('subnet'),
                               'subnet6': f.get('subnet6'), 'pod': f.get('pod'), 'deployed': f.get('deployed')})
                          for n, f in sorted(facts.items()))}
