# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vxlan_link / direct_route entry points against a fake kernel (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import Route, route_text
from ansible_collections.kubeasz.network.tests.unit.netstate import (
    MAC1, MAC2, MAC3, flannel, observed, peer, neigh, fdb, route, BASE_ROUTES, FakeKernel, LOOKUPS,
    link_params, route_params)
from ansible_collections.kubeasz.network.tests.unit.netstate import (
    ACCEPT_RA, BASE_ROUTES6, LOOKUPS6, MAC61, MAC62, MAC63, flannel6, link_params6, observed6, peer6, route6, route_params6)


def lines(routes):
    """direct_route's routes (dicts) in ip route syntax."""
    return [route_text(Route(**r)) for r in routes]


def test_vxlan_link_entry_point_processes_and_result():
    kernel = FakeKernel(observed(), LOOKUPS)
    result = vxlan_link(kernel, link_params(direct_routing=True))
    assert result['changed'] and result['device'] == 'flannel.1' and result['vtep_mac'] == MAC1
    assert [p['public_ip'] for p in result['direct_peers']] == ['198.18.0.12']
    assert [p['public_ip'] for p in result['vxlan_peers']] == ['198.18.1.13']
    assert [w[0] for w in kernel.writes] == ['ip', 'bridge']
    assert len(kernel.calls) == 2 + 1 + 2  # link+addr (no device yet: no neigh/fdb), route get, 2 batches
    assert 'neigh 172.20.3.0 lladdr %s dev flannel.1 nud permanent' % MAC3 in result['diff']['after']
    assert result['diff']['before'] == ''


def test_vxlan_link_check_mode_writes_nothing():
    kernel = FakeKernel(observed())
    result = vxlan_link(kernel, link_params(), check_mode=True)
    assert result['changed'] and result['plan'] and kernel.writes == []


def test_vxlan_link_in_sync_is_unchanged():
    obs = observed([flannel()], neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.3.0', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13')])
    kernel = FakeKernel(obs)
    result = vxlan_link(kernel, link_params())
    assert not result['changed'] and result['plan'] == [] and kernel.writes == []
    assert result['diff']['before'] == result['diff']['after']


def test_vxlan_link_ignores_other_backends_and_validates_first():
    kernel = FakeKernel(observed())
    result = vxlan_link(kernel, link_params(peers=[peer(2), peer(4, backend='host-gw')]), check_mode=True)
    assert [p['subnet'] for p in result['ignored_peers']] == ['172.20.4.0/24']
    bad = peer(3)
    bad['public_ip'] = 'x'
    kernel = FakeKernel(observed())
    with pytest.raises(DataplaneError, match=r'peers\[1\]'):
        vxlan_link(kernel, link_params(peers=[peer(2), bad]))
    assert kernel.calls == []


@pytest.mark.parametrize('kw, message', [
    (dict(iface=None), 'iface'), (dict(address=None), 'address'), (dict(vni=0), 'VNI'),
    (dict(port=70000), 'port'), (dict(mac='01:02:03:04:05:06'), 'multicast'),
    (dict(mtu=20), 'mtu'), (dict(peers=[peer(1)]), "node's address"),
    (dict(mtu=9000), r'mtu: 9000 does not fit eth0 \(MTU 1500\).*at most 1450'),
    (dict(peers=[peer(2, '198.18.0.11')]), r"peer 198.18.0.11 .*public_ip is this node's own address")])
def test_vxlan_link_bad_params(kw, message):
    kernel = FakeKernel(observed())
    with pytest.raises(DataplaneError, match=message):
        vxlan_link(kernel, link_params(**kw))
    assert kernel.writes == []


def test_vxlan_link_absent():
    kernel = FakeKernel(observed([flannel()]))
    result = vxlan_link(kernel, dict(state='absent', vni=1))
    assert result['plan'] == ['ip link del flannel.1'] and kernel.writes == [('ip', 'link del flannel.1\n')]
    kernel = FakeKernel(observed())
    assert not vxlan_link(kernel, dict(state='absent', vni=1))['changed']


def test_direct_route_vxlan_with_direct_routing():
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES)), LOOKUPS)
    result = direct_route(kernel, route_params(direct_routing=True))
    assert lines(result['routes']) == ['172.20.2.0/24 via 198.18.0.12 proto 159',
                                       '172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159']
    assert kernel.writes == [('ip', 'route replace 172.20.2.0/24 via 198.18.0.12 proto 159\n'
                                    'route replace 172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159\n')]


@pytest.mark.parametrize('kw', [dict(direct_routing=True), dict(
    backend='host-gw', iface='eth0', peers=[peer(2, backend='host-gw'), peer(3, '198.18.0.13', backend='host-gw')])])
def test_direct_route_refuses_a_peer_with_this_nodes_address(kw):
    lookups = dict(LOOKUPS, **{'198.18.0.12': [{'type': 'local', 'dst': '198.18.0.12', 'dev': 'lo'}]})
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES)), lookups)
    with pytest.raises(DataplaneError, match=r"peer 198.18.0.12 \(subnet 172.20.2.0/24\): public_ip is this "
                                             r"node's own address"):
        direct_route(kernel, route_params(**kw))
    assert kernel.writes == []


def test_direct_route_needs_device_for_vxlan_peers():
    kernel = FakeKernel(observed(routes=list(BASE_ROUTES)))
    with pytest.raises(DataplaneError, match='flannel.1 does not exist'):
        direct_route(kernel, route_params())
    result = direct_route(kernel, route_params(), check_mode=True)
    assert result['changed'] and 'flannel.1 does not exist' in result['warnings'][0]
    assert kernel.writes == []


def test_direct_route_host_gw_off_link_changes_nothing():
    peers = [peer(2, backend='host-gw'), peer(3, '198.18.1.13', backend='host-gw')]
    kernel = FakeKernel(observed(routes=list(BASE_ROUTES)), LOOKUPS)
    with pytest.raises(DataplaneError, match=r'peer 198.18.1.13 \(subnet 172.20.3.0/24\).*gateway 198.18.0.1'):
        direct_route(kernel, route_params(backend='host-gw', peers=peers))
    assert kernel.writes == []


def test_direct_route_host_gw_routes_and_cleanup():
    routes = BASE_ROUTES + [route('172.20.3.0/24', '172.20.3.0', 'flannel.1', '159', onlink=True)]
    kernel = FakeKernel(observed(routes=routes), LOOKUPS)
    result = direct_route(kernel, route_params(backend='host-gw', peers=[peer(2, backend='host-gw')]))
    assert result['plan'] == ['ip route del 172.20.3.0/24 via 172.20.3.0 dev flannel.1 table main',
                              'ip route replace 172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159']
    assert result['direct_peers'][0]['subnet'] == '172.20.2.0/24'


def test_direct_route_absent_removes_only_owned():
    routes = BASE_ROUTES + [route('172.20.3.0/24', '172.20.3.0', 'flannel.1', '159', onlink=True)]
    kernel = FakeKernel(observed(routes=routes))
    result = direct_route(kernel, dict(state='absent', network='172.20.0.0/16', subnet='172.20.1.0/24'))
    assert result['plan'] == ['ip route del 172.20.3.0/24 via 172.20.3.0 dev flannel.1 table main']
    assert '172.20.3.0/24 via 172.20.3.0 dev flannel.1 proto 159 onlink' in result['diff']['before']


@pytest.mark.parametrize('kw, message', [
    (dict(backend='ipip'), 'backend'), (dict(network=None), 'network is required'),
    (dict(subnet=None), 'subnet'), (dict(subnet='10.0.0.0/24'), 'not inside network')])
def test_direct_route_bad_params(kw, message):
    kernel = FakeKernel(observed())
    with pytest.raises(DataplaneError, match=message):
        direct_route(kernel, route_params(**kw))
    assert kernel.calls == []


def test_inputs_not_mutated():
    params = route_params()
    before = copy.deepcopy(params)
    direct_route(FakeKernel(observed([flannel()], routes=list(BASE_ROUTES))), params, check_mode=True)
    assert params == before


def test_direct_route_takes_the_direct_peers_vxlan_link_decided():
    kernel = FakeKernel(observed(), LOOKUPS)
    link = vxlan_link(kernel, link_params(direct_routing=True), check_mode=True)
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES)))   # no lookups: none may run
    result = direct_route(kernel, route_params(direct_routing=True, direct_peers=link['direct_peers']),
                          check_mode=True)
    assert result['direct_peers'] == link['direct_peers'] and result['vxlan_peers'] == link['vxlan_peers']
    assert not any(argv[:4] == ['ip', '-force', '-json', '-batch'] for argv in kernel.calls)
    assert lines(result['routes']) == ['172.20.2.0/24 via 198.18.0.12 proto 159',
                                       '172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159']
    # without DirectRouting the list changes nothing: every peer goes over flannel.1
    result = direct_route(kernel, route_params(direct_peers=link['direct_peers']), check_mode=True)
    assert result['direct_peers'] == [] and len(result['vxlan_peers']) == 2


def test_direct_route_check_mode_counts_on_vxlan_link_removing_stale_devices():
    """flannel.2's routes go with the device (vxlan_link runs first): check mode plans no delete."""
    stale = route('172.20.2.0/24', '172.20.2.0', 'flannel.2', onlink=True)
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES) + [stale]))
    checked = direct_route(kernel, route_params(), check_mode=True)
    assert not any('route del' in line for line in checked['plan']) and 'flannel.2' not in checked['diff']['before']
    real = direct_route(kernel, route_params())
    assert 'flannel.2' in real['diff']['before'] and real['plan'] == checked['plan']   # alone, it replaces


def test_direct_route_diff_shows_a_kept_direct_route_as_the_kernel_has_it():
    """DirectRouting: the kernel adds ``dev eth0`` to a direct route; --diff lists only what changes."""
    routes = BASE_ROUTES + [route('172.20.2.0/24', '198.18.0.12', 'eth0', '159')]
    kernel = FakeKernel(observed([flannel()], routes=routes), LOOKUPS)
    result = direct_route(kernel, route_params(direct_routing=True), check_mode=True)
    diff = result['diff'] if isinstance(result['diff'], dict) else result['diff'][0]
    before, after = diff['before'].splitlines(), diff['after'].splitlines()
    assert '172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159' in before
    assert set(after) - set(before) == {'172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159'}


# ------------------------------------------------------------------ IPv6 (one call per family)

def test_vxlan_link6_entry_point():
    kernel = FakeKernel(observed6(), LOOKUPS6)
    result = vxlan_link(kernel, link_params6(direct_routing=True))
    assert result['changed'] and result['device'] == 'flannel-v6.1' and result['vtep_mac'] == MAC61
    # peers come back whole (both families), decided for IPv6
    assert [(p['public_ip'], p['public_ip6']) for p in result['direct_peers']] == [('198.18.0.12', 'fd53::12')]
    assert [p['subnet6'] for p in result['vxlan_peers']] == ['fd00:20:0:3::/64']
    assert result['plan'] == [
        'ip -6 link add flannel-v6.1 address %s mtu 1430 type vxlan id 1 dev eth0 local fd53::11 dstport 8472 '
        'ttl 0 nolearning' % MAC61,
        'sysctl -w net/ipv6/conf/flannel-v6.1/accept_ra=0',
        'ip -6 addr add fd00:20:0:1::/128 dev flannel-v6.1',
        'ip -6 link set flannel-v6.1 up',
        'ip -6 neigh replace fd00:20:0:3:: lladdr %s dev flannel-v6.1 nud permanent' % MAC63,
        'bridge fdb replace %s dev flannel-v6.1 dst fd53:1::13 self permanent' % MAC63]
    assert [w[0] for w in kernel.writes] == ['ip -6', 'sysctl', 'ip -6', 'bridge']
    assert kernel.writes[1] == ('sysctl', '-q -w net/ipv6/conf/flannel-v6.1/accept_ra=0')
    assert ['ip', '-6', '-force', '-json', '-batch'] == kernel.calls[2][:5]
    assert result['diff']['after'].splitlines()[1:3] == ['addr fd00:20:0:1::/128 dev flannel-v6.1',
                                                         'sysctl net/ipv6/conf/flannel-v6.1/accept_ra=0']


def test_vxlan_link6_in_sync_is_unchanged():
    obs = observed6([flannel(), flannel6()],
                    neigh=[neigh('fd00:20:0:2::', MAC62, 'flannel-v6.1'), neigh('fd00:20:0:3::', MAC63, 'flannel-v6.1')],
                    fdb=[fdb(MAC62, 'fd53::12', 'flannel-v6.1'), fdb(MAC63, 'fd53:1::13', 'flannel-v6.1')])
    kernel = FakeKernel(obs, sysctl={ACCEPT_RA: '0'})
    result = vxlan_link(kernel, link_params6())
    assert not result['changed'] and result['plan'] == [] and kernel.writes == []
    assert result['diff']['before'] == result['diff']['after']
    assert ['ip', '-6', '-json', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent'] in kernel.calls
    kernel = FakeKernel(obs, sysctl={ACCEPT_RA: '1'})
    assert vxlan_link(kernel, link_params6())['plan'] == ['sysctl -w net/ipv6/conf/flannel-v6.1/accept_ra=0']


def test_vxlan_link6_skips_peers_without_ipv6_and_validates_every_peer():
    kernel = FakeKernel(observed6())
    result = vxlan_link(kernel, link_params6(peers=[peer(2), peer6(3, v4=False), peer6(4, backend='host-gw')]),
                        check_mode=True)
    assert [p['public_ip6'] for p in result['vxlan_peers']] == ['fd53::13'] and result['vxlan_peers'][0]['subnet'] is None
    assert [p['subnet6'] for p in result['ignored_peers']] == ['fd00:20:0:4::/64']
    bad = peer(2)
    bad['public_ip'] = 'x'
    kernel = FakeKernel(observed6())
    with pytest.raises(DataplaneError, match=r'peers\[1\]'):
        vxlan_link(kernel, link_params6(peers=[peer6(3), bad]))
    assert kernel.calls == []
    with pytest.raises(DataplaneError, match="family: 'ipv5'"):
        vxlan_link(kernel, link_params6(family='ipv5'))


def test_dual_stack_same_peers_two_calls():
    obs = observed6(routes=list(BASE_ROUTES))
    obs['route6'] = list(BASE_ROUTES6)
    peers = [peer6(2), peer6(3, 'fd53:1::13'), peer(4), peer6(5, v4=False)]
    kernel = FakeKernel(obs)
    four = vxlan_link(kernel, link_params(peers=peers), check_mode=True)
    six = vxlan_link(kernel, link_params6(peers=peers), check_mode=True)
    assert (four['device'], six['device']) == ('flannel.1', 'flannel-v6.1')
    assert [p['subnet'] for p in four['vxlan_peers']] == ['172.20.2.0/24', '172.20.3.0/24', '172.20.4.0/24']
    assert [p['subnet6'] for p in six['vxlan_peers']] == ['fd00:20:0:2::/64', 'fd00:20:0:3::/64', 'fd00:20:0:5::/64']
    assert not any('flannel.' in line for line in six['plan']) and not any('flannel-v6' in line for line in four['plan'])
    kernel = FakeKernel(dict(obs, link=obs['link'] + [flannel(), flannel6()]))
    r4 = direct_route(kernel, route_params(peers=peers), check_mode=True)
    r6 = direct_route(kernel, route_params6(peers=peers), check_mode=True)
    assert lines(r4['routes']) == ['172.20.%d.0/24 via 172.20.%d.0 dev flannel.1 onlink proto 159' % (i, i) for i in (2, 3, 4)]
    assert lines(r6['routes']) == ['fd00:20:0:%d::/64 via fd00:20:0:%d:: dev flannel-v6.1 onlink proto 159' % (i, i)
                                   for i in (2, 3, 5)]
    assert r6['plan'] == ['ip -6 route replace ' + line for line in lines(r6['routes'])]
    assert ['ip', '-6', '-json', 'route', 'show', 'table', 'main'] in kernel.calls


def test_direct_route6_direct_routing_host_gw_and_absent():
    routes = BASE_ROUTES6 + [route6('fd00:20:0:3::/64', 'fd00:20:0:3::', 'flannel-v6.1', '159', onlink=True),
                             route6('fd00:20:0:7::/64', 'fd00:20:0:7::', 'flannel-v6.1', '159', onlink=True)]
    kernel = FakeKernel(observed6([flannel6()], routes=routes), LOOKUPS6)
    link = vxlan_link(kernel, link_params6(direct_routing=True), check_mode=True)
    result = direct_route(kernel, route_params6(direct_routing=True, direct_peers=link['direct_peers']))
    assert lines(result['routes']) == ['fd00:20:0:2::/64 via fd53::12 proto 159',
                                       'fd00:20:0:3::/64 via fd00:20:0:3:: dev flannel-v6.1 onlink proto 159']
    assert result['plan'] == ['ip -6 route del fd00:20:0:7::/64 via fd00:20:0:7:: dev flannel-v6.1 metric 1024 table main',
                              'ip -6 route replace fd00:20:0:2::/64 via fd53::12 proto 159']
    assert kernel.writes[-1][0] == 'ip -6'
    # host-gw: the iface from the IPv6 default route; an off-link peer fails naming it
    peers = [peer6(2, backend='host-gw'), peer6(3, 'fd53:1::13', backend='host-gw')]
    kernel = FakeKernel(observed6(routes=list(BASE_ROUTES6)), LOOKUPS6)
    with pytest.raises(DataplaneError, match=r'peer fd53:1::13 \(subnet fd00:20:0:3::/64\).*gateway fd53::1'):
        direct_route(kernel, route_params6(backend='host-gw', peers=peers))
    result = direct_route(kernel, route_params6(backend='host-gw', peers=peers[:1]))
    assert result['plan'] == ['ip -6 route replace fd00:20:0:2::/64 via fd53::12 dev eth0 proto 159']
    # absent: only owned IPv6 routes, never the kernel's route of the own address
    kernel = FakeKernel(observed6(routes=routes))
    result = direct_route(kernel, dict(state='absent', family='ipv6', network='fd00:20::/56', subnet='fd00:20:0:1::/64'))
    assert result['plan'] == ['ip -6 route del fd00:20:0:3::/64 via fd00:20:0:3:: dev flannel-v6.1 metric 1024 table main',
                              'ip -6 route del fd00:20:0:7::/64 via fd00:20:0:7:: dev flannel-v6.1 metric 1024 table main']


@pytest.mark.parametrize('kw, message', [
    (dict(network='172.20.0.0/16'), 'network: .* is not an IPv6 network'),
    (dict(subnet='fd00:30::/64'), 'not inside network fd00:20::/56')])
def test_direct_route6_bad_params(kw, message):
    kernel = FakeKernel(observed6())
    with pytest.raises(DataplaneError, match=message):
        direct_route(kernel, route_params6(**kw))
    assert kernel.calls == []


def test_vxlan_link_keeps_the_mac_the_lease_holds():
    """The role passes the lease's VtepMAC as mac: a device already there (flanneld's, random MAC)
    whose MAC flannel_subnet published is kept, so taking a node over changes no peer's entries."""
    obs = observed([flannel(mac='0e:00:00:00:00:99')], neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.3.0', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13')])
    result = vxlan_link(FakeKernel(obs), link_params(mac='0E:00:00:00:00:99'), check_mode=True)
    assert result['vtep_mac'] == '0e:00:00:00:00:99' and result['plan'] == []


def test_vxlan_link_new_mac_plans_every_neighbour_again():
    """The kernel flushes a device's neighbours (permanent too) when its MAC changes (the mac
    option): the entries in place are planned again after the change."""
    obs = observed([flannel(mac='0e:00:00:00:00:99')], neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.3.0', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13')])
    result = vxlan_link(FakeKernel(obs), link_params(mac=MAC1), check_mode=True)
    plan = result['plan']
    assert [line for line in plan if 'link set' in line] == ['ip link set flannel.1 address %s' % MAC1]
    assert [line for line in plan if ' neigh ' in line] == [
        'ip neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2,
        'ip neigh replace 172.20.3.0 lladdr %s dev flannel.1 nud permanent' % MAC3]
    assert not [line for line in plan if ' fdb ' in line]   # FDB entries survive a new MAC
