# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CNI documents: flannel's cni-conf.json, the delegate conflist flannel's CNI plugin would
derive from subnet.env, and the checksum that rolls the DaemonSet when either changes.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import ipaddress
import json

CNI_VERSION = '0.3.1'
CNI_NAME = 'cbr0'
BRIDGE = 'cni0'  # the pods' bridge the delegate conflist names


def cni_conf():
    """flannel's cni-conf.json (10-flannel.conflist written by the install-cni container)."""
    return {
        'name': CNI_NAME,
        'cniVersion': CNI_VERSION,
        'plugins': [
            {'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
            {'type': 'portmap', 'capabilities': {'portMappings': True}},
        ],
    }


def _env_bool(value, key):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    raise ValueError('%s must be true or false, not %r' % (key, value))


# subnet.env keys of each address family: (network key, subnet key, network type, interface type)
ENV_FAMILIES = (
    ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', ipaddress.IPv4Network, ipaddress.IPv4Interface),
    ('FLANNEL_IPV6_NETWORK', 'FLANNEL_IPV6_SUBNET', ipaddress.IPv6Network, ipaddress.IPv6Interface),
)


def _env_ranges(subnet_env):
    """(host-local ranges, routes): one range and one route per family subnet.env holds, IPv4 first."""
    ranges, routes = [], []
    for net_key, sub_key, net_type, iface_type in ENV_FAMILIES:
        present = [k for k in (net_key, sub_key) if subnet_env.get(k) not in (None, '')]
        if not present:
            continue
        if len(present) == 1:
            raise ValueError('subnet.env holds %s but not %s' % (present[0], ({net_key, sub_key} - set(present)).pop()))
        family = 'IPv4' if net_type is ipaddress.IPv4Network else 'IPv6'
        try:
            network = net_type(str(subnet_env[net_key]))
        except ValueError as exc:
            raise ValueError('%s %r is not an %s network (%s)' % (net_key, subnet_env[net_key], family, exc))
        try:
            iface = iface_type(str(subnet_env[sub_key]))
        except ValueError as exc:
            raise ValueError('%s %r is not an %s address/length (%s)' % (sub_key, subnet_env[sub_key], family, exc))
        ranges.append([{'subnet': str(iface.network), 'gateway': str(iface.ip)}])
        routes.append({'dst': str(network)})
    if not ranges:
        raise ValueError('subnet.env holds neither FLANNEL_NETWORK/FLANNEL_SUBNET nor '
                         'FLANNEL_IPV6_NETWORK/FLANNEL_IPV6_SUBNET')
    return ranges, routes


def delegate_conflist(subnet_env):
    """The conflist flannel's CNI plugin would hand to bridge/host-local for this subnet.env.

    ``subnet_env`` holds FLANNEL_NETWORK and FLANNEL_SUBNET (gateway IP/len), and/or
    FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET, FLANNEL_MTU and FLANNEL_IPMASQ, as strings
    (parsed subnet.env) or typed values. host-local gets one range per family (IPv4 first) and
    one route per cluster network, as flannel's CNI plugin builds them; IPv6-only has no IPv4
    keys. flannel sets the bridge's ipMasq to the opposite of FLANNEL_IPMASQ (flanneld
    masquerades itself).
    """
    ranges, routes = _env_ranges(subnet_env)
    mtu = subnet_env['FLANNEL_MTU']
    if isinstance(mtu, bool) or not str(mtu).isdigit():
        raise ValueError('FLANNEL_MTU must be an integer, not %r' % (mtu,))
    ipmasq = _env_bool(subnet_env.get('FLANNEL_IPMASQ', False), 'FLANNEL_IPMASQ')
    bridge = {
        'type': 'bridge', 'name': CNI_NAME, 'bridge': BRIDGE, 'mtu': int(mtu),
        'hairpinMode': True, 'isGateway': True, 'isDefaultGateway': True, 'ipMasq': not ipmasq,
        'ipam': {'type': 'host-local', 'ranges': ranges, 'routes': routes},
    }
    return {'cniVersion': CNI_VERSION, 'name': CNI_NAME,
            'plugins': [bridge, {'type': 'portmap', 'capabilities': {'portMappings': True}}]}


def dumps(doc):
    """Pretty JSON as placed in the ConfigMap (2-space indent, trailing newline)."""
    return json.dumps(doc, indent=2) + '\n'


def checksum(net_conf_json, cni_conf_json):
    """sha256 over net-conf.json and cni-conf.json text, for the pod template annotation."""
    h = hashlib.sha256()
    for text in (net_conf_json, cni_conf_json):
        h.update(text.encode('utf-8'))
        h.update(b'\0')
    return h.hexdigest()
