# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flannel.<VNI> device: VTEP MAC, device plans, stale devices (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.dataplane import vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.iproute import Op
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError, check_mac
from ansible_collections.kubeasz.network.plugins.module_utils.vxlandev import plan_vxlan_absent, plan_vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.lease import vtep_mac
from ansible_collections.kubeasz.network.tests.unit.netstate import raw, MAC1, flannel, observed, spec, FakeKernel, link_params


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
    assert raw(plan_vxlan_absent(observed([flannel()]), 'flannel.1')) == [Op('ip', 'link del flannel.1')]
    assert plan_vxlan_absent(observed(), 'flannel.1') == []


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
