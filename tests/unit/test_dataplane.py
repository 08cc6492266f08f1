# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vxlan_link / direct_route entry points against a fake kernel (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError
from ansible_collections.kubeasz.network.tests.unit.netstate import (
    MAC1, MAC2, MAC3, flannel, observed, peer, neigh, fdb, route, BASE_ROUTES, FakeKernel, LOOKUPS,
    link_params, route_params)


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
    assert result['routes'] == ['172.20.2.0/24 via 198.18.0.12 proto 159',
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
    assert result['routes'] == ['172.20.2.0/24 via 198.18.0.12 proto 159',
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
