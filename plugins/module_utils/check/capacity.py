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
        if family == 'ipv4':
            net, slen, smin, smax, keys = nc.network, nc.subnet_len, nc.subnet_min, nc.subnet_max, (
                'CLUSTER_CIDR', 'NODE_CIDR_LEN', 'FLANNEL_SUBNET_MIN/MAX')
        else:
            net, slen, smin, smax, keys = nc.ipv6_network, nc.ipv6_subnet_len, nc.ipv6_subnet_min, nc.ipv6_subnet_max, (
                'CLUSTER_CIDR_IPV6', 'NODE_CIDR_LEN_IPV6', 'FLANNEL_SUBNET_MIN_IPV6/MAX_IPV6')
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
