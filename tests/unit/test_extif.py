# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The external interface choice (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.plan.extif import ExternalInterface, external_interface
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.tests.unit.netstate import observed


# -------------------------------------------------------- external_interface

def test_external_interface_default_route():
    assert external_interface(observed()) == ExternalInterface('eth0', '198.18.0.11', 1500)


def test_external_interface_public_ip_wins():
    assert external_interface(observed(), iface='eth0', public_ip='203.0.113.5').ip == '203.0.113.5'


def test_external_interface_regex():
    obs = observed()
    obs['addr'] = [{'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
                   {'ifname': 'ens3', 'mtu': 9000, 'addr_info': []}] + obs['addr']
    assert external_interface(obs, iface_regex='^e').name == 'eth0'
    with pytest.raises(DataplaneError, match='matches iface_regex'):
        external_interface(obs, iface_regex='^wlan')


def test_external_interface_errors():
    with pytest.raises(DataplaneError, match='no default route: set FLANNEL_IFACE'):
        external_interface(observed(routes=[]))
    with pytest.raises(DataplaneError, match='eth9.*does not exist'):
        external_interface(observed(), iface='eth9')
    with pytest.raises(DataplaneError, match='not a valid interface name'):
        external_interface(observed(), iface='eth0; reboot')
    obs = observed()
    obs['addr'][0]['addr_info'] = []
    with pytest.raises(DataplaneError, match='no IPv4 address'):
        external_interface(obs, iface='eth0')


# -------------------------------------------------------- IPv6: the node's public IPv6 address (issue 16)

def inet6(local, **flags):
    return dict({'family': 'inet6', 'local': local, 'prefixlen': 64, 'scope': 'global'}, **flags)


def with_v6(*addrs):
    obs = observed()
    obs['addr'][0] = dict(obs['addr'][0], addr_info=list(obs['addr'][0]['addr_info']) + list(addrs))
    return obs


def test_public_ipv6_is_the_first_usable_global_address_in_flanneld_s_order():
    # the kernel lists the newest IPv6 address first (what `ip -json addr` printed for these)
    obs = with_v6(inet6('fd53:18::99', dynamic=True, temporary=True), inet6('fd53:18::98', dynamic=True),
                  inet6('fd53:18::97', deprecated=True), inet6('fd53:18::96', tentative=True, dadfailed=True),
                  inet6('fe80::1', scope='link'), inet6('fd53:18::11'), inet6('fd53:18::12'))
    ext = external_interface(obs, families=('ipv4', 'ipv6'))
    assert ext == ExternalInterface('eth0', '198.18.0.11', 1500, 'fd53:18::11')   # permanent first
    obs = with_v6(inet6('fd53:18::99', dynamic=True, temporary=True), inet6('fd53:18::98', dynamic=True))
    assert external_interface(obs, families=('ipv4', 'ipv6')).ip6 == 'fd53:18::98'    # not the privacy address
    assert external_interface(observed()).ip6 is None                                   # IPv4-only: not looked at


def test_public_ipv6_option_wins_and_is_checked():
    obs = with_v6(inet6('fd53:18::11'))
    assert external_interface(obs, families=('ipv4', 'ipv6'), public_ip6='2001:DB8::7').ip6 == '2001:db8::7'
    with pytest.raises(DataplaneError, match='public_ip6: fe80::7 is a link-local address'):
        external_interface(obs, families=('ipv4', 'ipv6'), public_ip6='fe80::7')
    # a public IPv6 address also stands in for an interface without one (NAT), as public_ip does
    assert external_interface(observed(), families=('ipv4', 'ipv6'), public_ip6='2001:db8::7').ip6 == '2001:db8::7'


def test_no_ipv6_address_while_ipv6_is_on_names_the_interface_and_the_fix():
    for obs in (observed(), with_v6(inet6('fe80::1', scope='link'), inet6('fd53:18::97', deprecated=True))):
        with pytest.raises(DataplaneError, match=r'interface eth0 has no global IPv6 address and the network has '
                                                 r'IPv6 \(CLUSTER_CIDR_IPV6\): add an IPv6 address to eth0, or set '
                                                 r'FLANNEL_IFACE to an interface that has one'):
            external_interface(obs, families=('ipv4', 'ipv6'))


def test_ipv6_only_uses_the_ipv6_default_route_and_needs_no_ipv4_address():
    obs = with_v6(inet6('fd53:18::11'))
    obs['addr'][0]['addr_info'] = [a for a in obs['addr'][0]['addr_info'] if a['family'] == 'inet6']
    obs['route6'] = [{'dst': 'default', 'gateway': 'fd53:18::1', 'dev': 'eth0', 'flags': []}]
    assert external_interface(obs, families=('ipv6',)) == ExternalInterface('eth0', None, 1500, 'fd53:18::11')
    del obs['route6']
    with pytest.raises(DataplaneError, match='no IPv6 default route: set FLANNEL_IFACE'):
        external_interface(obs, families=('ipv6',))
    assert external_interface(obs, iface_regex='^eth', families=('ipv6',)).ip6 == 'fd53:18::11'
    with pytest.raises(DataplaneError, match='no interface with an IPv4 address and a global IPv6 address matches'):
        external_interface(obs, iface_regex='^eth', families=('ipv4', 'ipv6'))
