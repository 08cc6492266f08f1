# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Subnet capacity: how many node subnets the config allows against the nodes in the inventory.

Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf

HEADROOM = 0.2  # warn when fewer than 20 % of the subnets are left


def subnets_between(smin, smax, subnet_len):
    """Subnets of length ``subnet_len`` from SubnetMin to SubnetMax, both included."""
    size = 1 << (smin.max_prefixlen - subnet_len)
    return (int(smax.network_address) - int(smin.network_address)) // size + 1


def capacity(net_conf, nodes):
    """[{family, subnets, nodes, free, severity, cause, fix}] of each enabled family; severity
    'fail' when the nodes outnumber the subnets, 'warn' under 20 % headroom, else 'ok'."""
    nc = parse_net_conf(net_conf)
    out = []
    for family in nc.families:
        net, slen, smin, smax = (getattr(nc, attr) for attr in family.conf_attrs)
        keys = (family.cidr_key, family.node_len_key, '%s/%s' % (family.subnet_min_key, family.subnet_max_key))
        total = subnets_between(smin, smax, slen)
        free = total - nodes
        entry = {'family': family, 'subnets': total, 'nodes': nodes, 'free': free, 'network': str(net),
                 'subnet_len': slen, 'severity': 'ok', 'cause': None, 'fix': None}
        if free < 0 or (free < HEADROOM * total):
            entry['severity'] = 'fail' if free < 0 else 'warn'
            entry['cause'] = ('%s with /%d subnets from %s to %s allows %d node subnets for %d nodes (%s)' % (
                net, slen, smin, smax, total, nodes, '%d short' % -free if free < 0 else
                'only %d left, under %d %% headroom' % (free, HEADROOM * 100)))
            entry['fix'] = ('make %s larger, %s larger (smaller subnets per node) or widen %s: nodes beyond '
                            'the last subnet get no lease (flannel #875)' % keys)
        out.append(entry)
    return out
