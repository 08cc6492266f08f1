# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flannel.<VNI> device: VTEP MAC, device plans, stale devices (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import Op
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, check_mac
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import plan_vxlan_absent, plan_vxlan_link, vxlan_link_spec
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac
from ansible_collections.kubeasz.network.tests.unit.netstate import raw, MAC1, flannel, observed, spec, FakeKernel, link_params
from ansible_collections.kubeasz.network.tests.unit.netstate import MAC61, NET6, eth0_6, flannel6, observed6


# ------------------------------------------------------------------ vtep_mac

def test_vtep_mac_stable_local_unicast():
    mac = vtep_mac('198.18.0.11', 1)
    assert mac == vtep_mac('198.18.0.11', 1)
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert mac != vtep_mac('198.18.0.11', 2) != vtep_mac('198.18.0.12', 1)
    assert check_mac(mac, 'x') == mac


# -------------------------------------------------------------- vxlan link

def test_plan_vxlan_link_create():
    ops, fresh = plan_vxlan_link(observed(), spec())
    assert fresh
    assert raw(ops) == [
        Op('ip', 'link add flannel.1 address %s mtu 1450 type vxlan id 1 dev eth0 local 198.18.0.11 '
                 'dstport 8472 ttl 0 nolearning' % MAC1),
        Op('ip', 'addr add 172.20.1.0/32 dev flannel.1'),
        Op('ip', 'link set flannel.1 up')]


def test_plan_vxlan_link_create_gbp_port_learning():
    ops, dummy = plan_vxlan_link(observed(), spec(gbp=True, port=4789, learning=True))
    assert ops[0].batch_line().endswith('dstport 4789 ttl 0 learning gbp')


def test_plan_vxlan_link_in_sync():
    assert plan_vxlan_link(observed([flannel()]), spec()) == ([], False)


@pytest.mark.parametrize('change', [dict(vni=1, dev='eth1'), dict(local='198.18.0.99'),
                                    dict(port=4789), dict(gbp=True), dict(kind='veth')])
def test_plan_vxlan_link_recreate(change):
    ops, fresh = plan_vxlan_link(observed([flannel(**change)]), spec())
    assert fresh and raw(ops)[0] == Op('ip', 'link del flannel.1') and ops[1].batch_line().startswith('link add')


def test_plan_vxlan_link_fix_in_place():
    link = flannel(mtu=1400, mac='0e:00:00:00:00:01', learning=True, up=False,
                   addrs=('172.20.7.0/32', '172.20.1.0/24', '10.1.1.1/8'))
    ops, fresh = plan_vxlan_link(observed([link]), spec())
    assert not fresh
    assert raw(ops) == [Op('ip', 'link set flannel.1 address %s' % MAC1),
                        Op('ip', 'link set flannel.1 mtu 1450'),
                        Op('ip', 'link set flannel.1 type vxlan nolearning'),
                        Op('ip', 'addr del 172.20.7.0/32 dev flannel.1'),
                        Op('ip', 'addr del 172.20.1.0/24 dev flannel.1'),
                        Op('ip', 'addr add 172.20.1.0/32 dev flannel.1'),
                        Op('ip', 'link set flannel.1 up')]


def test_plan_vxlan_absent():
    assert raw(plan_vxlan_absent(observed([flannel()]), 'flannel.1', IPV4)) == [Op('ip', 'link del flannel.1')]
    assert plan_vxlan_absent(observed(), 'flannel.1', IPV4) == []


# ------------------------------------------------- stale flannel.<n> devices

def test_vni_change_removes_the_old_device():
    kernel = FakeKernel(observed([flannel(vni=1)]))
    result = vxlan_link(kernel, link_params(vni=2), check_mode=True)
    assert result['plan'][:2] == ['ip link del flannel.1', 'ip link add flannel.2 address %s mtu 1450 type vxlan '
                                  'id 2 dev eth0 local 198.18.0.11 dstport 8472 ttl 0 nolearning'
                                  % vtep_mac('198.18.0.11', 2)]
    assert result['removed'] == ['flannel.1']
    assert 'link flannel.1 type vxlan id 1' in result['diff']['before']


def test_absent_removes_every_flannel_device_but_nothing_else():
    other = flannel(vni=7)
    other['ifname'] = 'vxlan7'  # not flannel's
    kernel = FakeKernel(observed([flannel(vni=1), flannel(vni=3), other]))
    result = vxlan_link(kernel, dict(state='absent', vni=1))
    assert result['plan'] == ['ip link del flannel.1', 'ip link del flannel.3']
    assert result['removed'] == ['flannel.1', 'flannel.3'] and result['diff']['after'] == ''
    kernel = FakeKernel(observed([flannel(vni=3)]))
    assert vxlan_link(kernel, dict(state='absent', vni=1))['plan'] == ['ip link del flannel.3']


def test_prune_keeps_the_current_device():
    kernel = FakeKernel(observed([flannel(vni=1), flannel(vni=2)]))
    result = vxlan_link(kernel, dict(state='prune', vni=2))
    assert result['plan'] == ['ip link del flannel.1'] and result['removed'] == ['flannel.1']
    assert 'flannel.2' in result['diff']['after'] and 'flannel.1' not in result['diff']['after']
    kernel = FakeKernel(observed([flannel(vni=2)]))
    assert not vxlan_link(kernel, dict(state='prune', vni=2))['changed']


def test_unknown_state_is_refused():
    with pytest.raises(DataplaneError, match='state'):
        vxlan_link(FakeKernel(observed()), dict(state='gone', vni=1))


# ------------------------------------------------------------- flannel-v6.<VNI>

def spec6(**kw):
    base = dict(name='flannel-v6.1', local='fd53::11', mtu=1430, mac=MAC61, address='fd00:20:0:1::',
                network=NET6, family=IPV6)
    base.update(kw)
    return spec(**base)


def test_plan_vxlan_link6_create():
    ops, fresh = plan_vxlan_link(observed6(), spec6())
    assert fresh
    assert raw(ops) == [
        Op('ip', 'link add flannel-v6.1 address %s mtu 1430 type vxlan id 1 dev eth0 local fd53::11 '
                 'dstport 8472 ttl 0 nolearning' % MAC61),
        Op('sysctl', '-w net/ipv6/conf/flannel-v6.1/accept_ra=0'),
        Op('ip', 'addr add fd00:20:0:1::/128 dev flannel-v6.1'),
        Op('ip', 'link set flannel-v6.1 up')]


def test_plan_vxlan_link6_in_sync_keeps_link_local_and_the_ipv4_device():
    obs = observed6([flannel(), flannel6()])
    obs['accept_ra'] = {'flannel-v6.1': '0'}
    assert plan_vxlan_link(obs, spec6()) == ([], False)
    # the IPv4 device's plan does not see flannel-v6.1 either
    assert plan_vxlan_link(obs, spec()) == ([], False)


def test_plan_vxlan_link6_fix_in_place():
    link = flannel6(mtu=1400, mac='0e:00:00:00:00:01', up=False,
                    addrs=('fd00:20:0:7::/128', 'fd00:20:0:1::/64', '2001:db8::1/64'))
    obs = observed6([link])
    obs['accept_ra'] = {'flannel-v6.1': '1'}
    ops, fresh = plan_vxlan_link(obs, spec6())
    assert not fresh
    # EnsureV6AddressOnLink: every address but ours and link-local goes (also outside the network)
    assert raw(ops) == [Op('ip', 'link set flannel-v6.1 address %s' % MAC61),
                        Op('ip', 'link set flannel-v6.1 mtu 1430'),
                        Op('sysctl', '-w net/ipv6/conf/flannel-v6.1/accept_ra=0'),
                        Op('ip', 'addr del fd00:20:0:7::/128 dev flannel-v6.1'),
                        Op('ip', 'addr del fd00:20:0:1::/64 dev flannel-v6.1'),
                        Op('ip', 'addr del 2001:db8::1/64 dev flannel-v6.1'),
                        Op('ip', 'addr add fd00:20:0:1::/128 dev flannel-v6.1'),
                        Op('ip', 'link set flannel-v6.1 up')]


@pytest.mark.parametrize('change', [dict(local='fd53::99'), dict(port=4789), dict(gbp=True), dict(dev='eth1')])
def test_plan_vxlan_link6_recreate(change):
    obs = observed6([flannel6(**change)])
    obs['accept_ra'] = {'flannel-v6.1': '0'}
    ops, fresh = plan_vxlan_link(obs, spec6())
    assert fresh and raw(ops)[0] == Op('ip', 'link del flannel-v6.1') and ops[1].batch_line().startswith('link add')


def test_vxlan_link6_spec_from_params_and_the_kernel_mtu_cap():
    got = vxlan_link_spec(observed6(), dict(vni=1, iface='eth0', address='fd00:20:0:1::/64',
                                            network='fd00:20::/56', mtu=1450), IPV6)
    assert got == spec6(network='fd00:20::/56')   # local: the first global IPv6 address, not fe80::1
    assert got.mtu == 1430 and got.mac == MAC61 and str(NET6) == got.network
    jumbo = observed6()
    jumbo['addr'] = jumbo['link'] = [eth0_6(9000)]
    assert vxlan_link_spec(jumbo, dict(vni=1, iface='eth0', address='fd00:20:0:1::'), IPV6).mtu == 8930
    given = vxlan_link_spec(observed6(), dict(vni=1, iface='eth0', address='fd00:20:0:1::',
                                              local_ip='FD53:0::11', mtu=1300), IPV6)
    assert (given.local, given.mtu) == ('fd53::11', 1300)


@pytest.mark.parametrize('kw, message', [
    (dict(address='172.20.1.0'), 'address: .* is not an IPv6 network'),
    (dict(local_ip='198.18.0.11'), 'local_ip: .* is not an IPv6 address'),
    (dict(local_ip='fe80::1'), 'link-local'),
    (dict(mtu=1460), r'mtu: 1460 does not fit eth0 \(MTU 1500\)')])
def test_vxlan_link6_spec_refuses(kw, message):
    params = dict(vni=1, iface='eth0', address='fd00:20:0:1::')
    params.update(kw)
    with pytest.raises(DataplaneError, match=message):
        vxlan_link_spec(observed6(), params, IPV6)


def test_vxlan_link6_needs_a_global_address():
    obs = observed()   # eth0 has only fe80::1
    with pytest.raises(DataplaneError, match='eth0 has no global IPv6 address'):
        vxlan_link_spec(obs, dict(vni=1, iface='eth0', address='fd00:20:0:1::'), IPV6)


def test_absent6_removes_only_flannel_v6_devices():
    kernel = FakeKernel(observed6([flannel(), flannel6(), flannel6(vni=3)]))
    result = vxlan_link(kernel, dict(state='absent', vni=1, family='ipv6'))
    assert result['plan'] == ['ip -6 link del flannel-v6.1', 'ip -6 link del flannel-v6.3']
    assert result['removed'] == ['flannel-v6.1', 'flannel-v6.3'] and result['device'] == 'flannel-v6.1'
    assert kernel.writes == [('ip -6', 'link del flannel-v6.1\nlink del flannel-v6.3\n')]
    assert 'link flannel-v6.1 type vxlan id 1 dev eth0 local fd53::11' in result['diff']['before']
    # and the IPv4 call leaves the IPv6 device alone
    kernel = FakeKernel(observed6([flannel(vni=2), flannel6()]))
    assert vxlan_link(kernel, dict(state='absent', vni=1))['plan'] == ['ip link del flannel.2']
    kernel = FakeKernel(observed6([flannel6(vni=1), flannel6(vni=2)]))
    assert vxlan_link(kernel, dict(state='prune', vni=2, family='ipv6'))['plan'] == ['ip -6 link del flannel-v6.1']
