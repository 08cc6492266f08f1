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

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import flannel_mtu
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import KEYS
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import device_name
from ansible_collections.kubeasz.network.plugins.module_utils.store.leases import subnet_env_text

# direct_route's network for a family that is off: every route of flannel's protocol or device
ANY_NETWORK = {'ipv4': '0.0.0.0/0', 'ipv6': '::/0'}
# what a FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET address of flanneld's may be (the node's own)
_SUBNET_ADDRESS = {'FLANNEL_SUBNET': '[0-9.]+', 'FLANNEL_IPV6_SUBNET': '[0-9a-f:]+'}
_ENV_PREFIX = {'ipv4': 'FLANNEL', 'ipv6': 'FLANNEL_IPV6'}
_Sample = namedtuple('_Sample', ['subnet', 'subnet6'])


# the NetConf fields of each family's network and node subnet length
_FIELDS = {'ipv4': ('network', 'subnet_len'), 'ipv6': ('ipv6_network', 'ipv6_subnet_len')}


def _network(nc, family):
    return getattr(nc, _FIELDS[family][0])


def _subnet_len(nc, family):
    return getattr(nc, _FIELDS[family][1])


def family_settings(nc, family):
    """One family's values for the role's tasks, on or off (a family that is off is removed)."""
    on = family in nc.families
    network = _network(nc, family) if on else None
    subnet, public_ip, vtep_mac = KEYS[family]
    return {
        'family': family, 'on': on,
        'network': None if network is None else str(network),
        # which routes are flannel's: the cluster network, else every route of its protocol or device
        'route_network': ANY_NETWORK[family] if network is None else str(network),
        'state': 'present' if on else 'absent',
        # ansible dataplane: the VXLAN device of the family
        'link_state': 'present' if on and nc.backend.type == 'vxlan' else 'absent',
        'device': device_name(nc.backend.vni, family),
        # the keys of the family's part of a lease (flannel_subnet's lease, peers)
        'lease_keys': {'subnet': subnet, 'public_ip': public_ip, 'vtep_mac': vtep_mac},
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
            key = key if 'ipv6' in nc.families else r'(?:FLANNEL_IPV6_[A-Z]+=\S*\n)*' + key
        else:
            value = re.escape(value)
        lines.append(key + '=' + value)
    return '^' + '\n'.join(lines) + '$'


def subnet_env_summary(nc, ip_masq):
    """What subnet_env_pattern asks for, in words (the message of a node that does not match)."""
    parts = [] if 'ipv4' in nc.families else ['no IPv4 lines (IPv6-only)']
    for family in nc.families:
        key = _ENV_PREFIX[family]
        parts.append('%s_NETWORK=%s, a /%d %s_SUBNET' % (key, _network(nc, family), _subnet_len(nc, family), key))
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
            'device': device_name(nc.backend.vni, nc.families[0]) if vxlan else None,
            'mtu': expected_mtu(nc.backend),
            'subnet_env_regex': subnet_env_pattern(nc, cc.ip_masq),
            'subnet_env_summary': subnet_env_summary(nc, cc.ip_masq),
        },
    }
