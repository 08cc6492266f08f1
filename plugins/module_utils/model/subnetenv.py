# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""/run/flannel/subnet.env as flanneld writes it (WriteSubnetFile: IPv4, IPv6 or both) and reads it.

Standard library only: imported on the managed node and on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv4
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6


SUBNET_ENV_PATH = '/run/flannel/subnet.env'


SUBNET_ENV_KEYS = ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK',
                   'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ')


def _bool_text(value):
    return 'true' if value else 'false'


def subnet_env_text(netconf, lease, mtu, ip_masq, ipv6_network=None, subnet6=None):
    """subnet.env as flanneld writes it (WriteSubnetFile): fixed order, LF, no quotes.

    IPv4 lines (FLANNEL_NETWORK, FLANNEL_SUBNET = first address of ``lease.subnet``/len) unless
    ``netconf.enable_ipv4`` is false (IPv6-only); then FLANNEL_IPV6_NETWORK and
    FLANNEL_IPV6_SUBNET (first address of the IPv6 subnet/len) when there is an IPv6 network:
    ``ipv6_network``, else ``netconf.ipv6_network`` with IPv6 enabled. The IPv6 subnet is
    ``subnet6``, else ``lease.subnet6``; ValueError when IPv6 is on and there is none.
    """
    text = ''
    if getattr(netconf, 'enable_ipv4', True):
        net = ipv4.parse_net(lease.subnet)
        gateway = '%s/%d' % (ipv4.ip_text(net[0] + 1), net[1])
        text += 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\n' % (netconf.network, gateway)
    if ipv6_network is None and getattr(netconf, 'enable_ipv6', False):
        ipv6_network = netconf.ipv6_network
    if ipv6_network is not None:
        subnet6 = subnet6 if subnet6 is not None else getattr(lease, 'subnet6', None)
        if subnet6 is None:
            raise ValueError('IPv6 network %s but the lease has no IPv6 subnet' % (ipv6_network,))
        net6 = ipaddress.IPv6Network(str(subnet6))
        text += 'FLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s/%d\n' % (
            ipaddress.IPv6Network(str(ipv6_network)), net6.network_address + 1, net6.prefixlen)
    return text + 'FLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n' % (int(mtu), _bool_text(ip_masq))


def parse_subnet_env(text):
    """KEY=VALUE lines -> {KEY: VALUE} (strings; blank lines and # comments ignored)."""
    env = {}
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        env[key.strip()] = value.strip().strip('"\'')
    return env


def env_subnet(env, family):
    """The leased subnet of ``family`` named by a parsed subnet.env (FLANNEL_SUBNET,
    FLANNEL_IPV6_SUBNET), or None."""
    try:
        return family.iface_cls(env.get(family.env_subnet, '')).network
    except ValueError:
        return None


def subnet_of_env(env):
    """The leased IPv4 subnet named by a parsed subnet.env (FLANNEL_SUBNET), or None."""
    return env_subnet(env, IPV4)


def subnet6_of_env(env):
    """The leased IPv6 subnet named by a parsed subnet.env (FLANNEL_IPV6_SUBNET), or None."""
    return env_subnet(env, IPV6)
