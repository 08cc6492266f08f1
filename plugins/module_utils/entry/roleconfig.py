# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the flannel role derives from a validated config, decided once here and returned by
flannel_config, so that the role's tasks only pass values on: per address family its device,
networks, lease keys and the state of each module; whether the backend is vxlan or host-gw; the
FLANNEL_MTU a node must report; the subnet.env flanneld must write.

Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import flannel_mtu
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import subnet_env_text

# what a FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET address of flanneld's may be (the node's own)
_SUBNET_ADDRESS = {IPV4.env_subnet: '[0-9.]+', IPV6.env_subnet: '[0-9a-f:]+'}
_Sample = namedtuple('_Sample', ['subnet', 'subnet6'])


def any_network(family):
    """direct_route's network for a family that is off (0.0.0.0/0, ::/0): every route of
    flannel's protocol or device."""
    return '%s/0' % family.ip_text(0)


def _network(nc, family):
    return getattr(nc, family.conf_attrs[0])


def _subnet_len(nc, family):
    return getattr(nc, family.conf_attrs[1])


def family_settings(nc, family):
    """One family's values for the role's tasks, on or off (a family that is off is removed)."""
    on = family in nc.families
    network = _network(nc, family) if on else None
    return {
        'family': family, 'on': on,
        'network': None if network is None else str(network),
        # which routes are flannel's: the cluster network, else every route of its protocol or device
        'route_network': any_network(family) if network is None else str(network),
        'state': 'present' if on else 'absent',
        # ansible dataplane: the VXLAN device of the family
        'link_state': 'present' if on and nc.backend.type == 'vxlan' else 'absent',
        'device': family.device(nc.backend.vni),
        # the keys of the family's part of a lease (flannel_subnet's lease, peers)
        'lease_keys': {'subnet': family.subnet_key, 'public_ip': family.public_ip_key,
                       'vtep_mac': family.vtep_mac_key},
    }


def expected_mtu(backend):
    """The FLANNEL_MTU every node reports when the config fixes it (vxlan's Backend.MTU less its
    overhead), else None: then it follows each node's interface."""
    return flannel_mtu(backend, None) if backend.type == 'vxlan' and backend.mtu else None


def subnet_env_pattern(nc, ip_masq):
    """A regular expression (multi-line) matching the subnet.env flanneld writes with this config:
    subnet_env_text's lines, any subnet of the node's length, FLANNEL_MTU the expected one (any
    without one); without IPv6, flanneld's empty IPv6 lines may stand before FLANNEL_MTU."""
    sample = _Sample(*('%s/%d' % (_network(nc, f).network_address, _subnet_len(nc, f)) if f in nc.families else None
                       for f in FAMILIES))
    mtu = expected_mtu(nc.backend)
    lines = []
    for line in subnet_env_text(nc, sample, mtu or 0, ip_masq).splitlines():
        key, dummy, value = line.partition('=')
        if key in _SUBNET_ADDRESS:
            value = _SUBNET_ADDRESS[key] + re.escape('/' + value.rpartition('/')[2])
        elif key == 'FLANNEL_MTU':
            value = '[0-9]+' if mtu is None else str(mtu)
            key = key if IPV6 in nc.families else r'(?:FLANNEL_IPV6_[A-Z]+=\S*\n)*' + key
        else:
            value = re.escape(value)
        lines.append(key + '=' + value)
    return '^' + '\n'.join(lines) + '$'


def subnet_env_summary(nc, ip_masq):
    """What subnet_env_pattern asks for, in words (the message of a node that does not match)."""
    parts = [] if IPV4 in nc.families else ['no IPv4 lines (IPv6-only)']
    for family in nc.families:
        parts.append('%s=%s, a /%d %s' % (family.env_network, _network(nc, family), _subnet_len(nc, family),
                                          family.env_subnet))
    mtu = expected_mtu(nc.backend)
    return '%s, FLANNEL_MTU=%s and FLANNEL_IPMASQ=%s' % (', '.join(parts), '<n>' if mtu is None else mtu,
                                                         'true' if ip_masq else 'false')


def role_values(cc):
    """A ClusterConfig -> the values flannel_config returns for the role besides ``cluster``."""
    nc = cc.net_conf
    vxlan = nc.backend.type == 'vxlan'
    return {
        'family': dict((f, family_settings(nc, f)) for f in FAMILIES),
        'rules_mode': 'nftables' if nc.enable_nftables else 'iptables',
        # host-gw reaches a peer only on its L2 segment: the known peers are checked first
        'host_gw': not vxlan,
        'flanneld': {
            # the VXLAN devices flanneld leaves behind after a backend switch (flannel.<VNI> is its own)
            'link_state': 'prune' if vxlan else 'absent',
            # the device whose MTU flanneld's subnet.env names (IPv6-only: flannel-v6.<VNI>), None for host-gw
            'device': nc.families[0].device(nc.backend.vni) if vxlan else None,
            'mtu': expected_mtu(nc.backend),
            'subnet_env_regex': subnet_env_pattern(nc, cc.ip_masq),
            'subnet_env_summary': subnet_env_summary(nc, cc.ip_masq),
        },
    }
