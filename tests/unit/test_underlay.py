# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The underlay: the external interface and its addresses, one chooser for every module (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import node_facts
from ansible_collections.kubeasz.network.plugins.module_utils.plan.underlay import (
    ExternalInterface, default_route_dev, external_interface, ipv6_addrs, link_ips)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf
from ansible_collections.kubeasz.network.tests.unit.netstate import (
    FakeKernel, link_params, observed, peer, peer6, route_params)


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


# -------------------------------------------------------- one chooser: the modules agree (issue 25)

def _node(v4=True):
    """A node with several NICs: lo; eth0 (the default routes) whose IPv6 addresses come in the
    kernel's order, newest first (temporary, dynamic, deprecated, IPv4-mapped, DAD-failed,
    link-local, then the two configured ones); eth1 with one address of each family."""
    lo = {'ifname': 'lo', 'mtu': 65536, 'flags': ['LOOPBACK', 'UP'], 'addr_info': [
        {'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8, 'scope': 'host'},
        {'family': 'inet6', 'local': '::1', 'prefixlen': 128, 'scope': 'host'}]}
    eth0 = {'ifname': 'eth0', 'mtu': 1500, 'flags': ['UP'], 'addr_info': (
        [{'family': 'inet', 'local': '198.18.0.11', 'prefixlen': 24},
         {'family': 'inet', 'local': '198.18.0.99', 'prefixlen': 24}] if v4 else []) + [
        inet6('fd53:18::99', dynamic=True, temporary=True), inet6('fd53:18::98', dynamic=True),
        inet6('fd53:18::97', deprecated=True), inet6('::ffff:198.18.0.11'),
        inet6('fd53:18::96', tentative=True, dadfailed=True), inet6('fe80::1', scope='link'),
        inet6('FD53:18:0::11'), inet6('fd53:18::12')]}
    eth1 = {'ifname': 'eth1', 'mtu': 9000, 'flags': ['UP'], 'addr_info': [
        {'family': 'inet', 'local': '10.9.0.5', 'prefixlen': 24}, inet6('fd99::5')]}
    links = [lo, eth0, eth1]
    return {'link': links, 'addr': links,
            'route': [{'dst': 'default', 'gateway': '198.18.0.1', 'dev': 'eth0', 'flags': []}] if v4 else [],
            'route6': [{'dst': 'default', 'gateway': 'fd53:18::1', 'dev': 'eth0', 'flags': []}],
            'neigh': [], 'fdb': []}


class _Module:
    """Just enough of AnsibleModule for flannel_subnet's node_facts(), on a FakeKernel."""

    def __init__(self, kernel, tmp_path, **params):
        self.kernel = kernel
        self.params = dict(iface=None, iface_regex=None, public_ip=None, public_ip6=None,
                           subnet_file=str(tmp_path / 'subnet.env'))
        self.params.update(params)

    def run_command(self, argv, data=None, binary_data=False):
        return self.kernel(argv, data)


def _netconf(families):
    conf = {'Backend': {'Type': 'vxlan', 'VNI': 1}}
    if 'ipv4' in families:
        conf['Network'] = '172.20.0.0/16'
    else:
        conf['EnableIPv4'] = False
    if 'ipv6' in families:
        conf.update(EnableIPv6=True, IPv6Network='fd00:20::/56')
    return parse_net_conf(conf)


def _vxlan_local(obs, family, iface):
    """The interface and address vxlan_link (the module's entry point, check mode) puts on the device."""
    params = link_params(iface=iface, peers=[])
    if family == 'ipv6':
        params.update(family='ipv6', address='fd00:20:0:1::', network='fd00:20::/56')
    plan = vxlan_link(FakeKernel(obs), params, check_mode=True)['plan']
    words = next(line for line in plan if ' link add ' in ' %s ' % line).split()
    return words[words.index('dev') + 1], words[words.index('local') + 1]


def _host_gw_dev(obs, family):
    """The device direct_route (host-gw, no iface given) routes a peer on the same segment through."""
    peer_ip = '198.18.0.12' if family == 'ipv4' else 'fd53:18::12:1'
    params = dict(backend='host-gw', peers=[peer(2, peer_ip, backend='host-gw')])
    if family == 'ipv6':
        params.update(family='ipv6', network='fd00:20::/56', subnet='fd00:20:0:1::/64',
                      peers=[peer6(2, peer_ip, backend='host-gw', v4=False)])
    lookups = {peer_ip: [{'dst': peer_ip, 'dev': default_route_dev(obs, 'route' if family == 'ipv4' else 'route6')}]}
    routes = direct_route(FakeKernel(obs, lookups), route_params(**params), check_mode=True)['routes']
    return routes[0]['dev']


@pytest.mark.parametrize('families', [('ipv4',), ('ipv6',), ('ipv4', 'ipv6')])
@pytest.mark.parametrize('chooser', [{}, {'iface': 'eth1'}, {'iface_regex': '^eth[1-9]'}])
def test_flannel_subnet_and_vxlan_link_choose_the_same_interface_and_addresses(tmp_path, families, chooser):
    """Run on their own (no local_ip from the role), vxlan_link puts on its device the interface and
    address(es) flannel_subnet publishes in the lease: one chooser, one order of IPv6 addresses."""
    obs = _node(v4='ipv4' in families)
    facts = node_facts(_Module(FakeKernel(obs), tmp_path, **chooser), _netconf(families))[0]
    want = {'ipv4': facts['public_ip'], 'ipv6': facts.get('public_ip6')}
    expected_iface = chooser.get('iface') or ('eth1' if chooser else 'eth0')
    assert facts['iface'] == expected_iface
    assert want == ({'ipv4': '198.18.0.11' if 'ipv4' in families else None,
                     'ipv6': 'fd53:18::11' if 'ipv6' in families else None} if expected_iface == 'eth0' else
                    {'ipv4': '10.9.0.5' if 'ipv4' in families else None,
                     'ipv6': 'fd99::5' if 'ipv6' in families else None})
    for family in families:
        assert _vxlan_local(obs, family, facts['iface']) == (facts['iface'], want[family])
        if not chooser:   # direct_route's host-gw interface: the same default route's
            assert _host_gw_dev(obs, family) == facts['iface']
    # and the chooser itself, as both call it
    ext = external_interface(obs, families=families, **chooser)
    assert (ext.name, ext.ip, ext.ip6) == (facts['iface'], want['ipv4'], want['ipv6'])


def test_link_ips_are_every_address_of_the_family_canonical():
    eth0 = _node()['addr'][1]
    assert link_ips(eth0, 'ipv4') == ['198.18.0.11', '198.18.0.99']
    assert 'fd53:18::11' in link_ips(eth0, 'ipv6') and 'fe80::1' in link_ips(eth0, 'ipv6')
    assert [a['local'] for a in ipv6_addrs(eth0)] == ['FD53:18:0::11', 'fd53:18::12', 'fd53:18::98', 'fd53:18::99']
