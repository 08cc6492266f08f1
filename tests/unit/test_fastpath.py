# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 06's fast path without root: the modules' parameters as they would get them, the lease
file the controller passes (read-only on the node), and node_plan's answer when a part cannot be
checked (the full path then runs and reports it). tests/integration/test_fast_path.py plants
one difference of each kind on a real lab."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.entry.fastpath import node_plan
from ansible_collections.kubeasz.network.plugins.module_utils.entry.specs import (
    DIRECT_ROUTE, TRAFFIC_RULES, VXLAN_LINK, module_params)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    Claim, DataplaneError, LeaseError, NodePart, vtep_mac)
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore, LeaseFileText
from ansible_collections.kubeasz.network.tests.unit.netstate import FakeKernel, observed
from ansible_collections.kubeasz.network.tests.unit.test_leases import net_conf

NET_CONF = {'Network': '172.20.0.0/16', 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}}
NODE = '198.18.0.11'


def test_module_params_are_what_the_module_gets():
    params = module_params(VXLAN_LINK, dict(family=IPV4, state='absent', mtu=None), 'vxlan_link')
    assert params['vni'] == 1 and params['port'] == 0 and params['peers'] == [] and params['mtu'] is None
    peers = module_params(DIRECT_ROUTE, dict(network='172.20.0.0/16', subnet='172.20.1.0/24', peers=[
        {'subnet': '172.20.2.0/24', 'public_ip': '198.18.0.12'}]), 'direct_route')['peers']
    assert peers[0]['backend_type'] == 'vxlan' and peers[0]['vtep_mac'] is None
    assert module_params(TRAFFIC_RULES, dict(network='172.20.0.0/16'), 'traffic_rules')['ip_masq'] is True


@pytest.mark.parametrize('spec,params,message', [
    (DIRECT_ROUTE, {}, 'direct_route: missing required arguments: network'),
    (VXLAN_LINK, {'state': 'present'}, 'vxlan_link: state is present but all of the following are missing'),
    (TRAFFIC_RULES, {'mode': 'ebtables', 'network': '172.20.0.0/16'}, 'traffic_rules: value of mode must be one of'),
])
def test_module_params_name_the_module_and_the_key(spec, params, message):
    with pytest.raises(DataplaneError, match=message):
        module_params(spec, params, message.partition(':')[0])


def stored(tmp_path):
    real = FileStore(str(tmp_path / 'flannel-leases.json'))
    with real.locked():
        real.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(NODE, vtep_mac(NODE, 1))}), config=NET_CONF)
    return real


def test_the_lease_file_text_answers_as_the_file_would(tmp_path):
    real = stored(tmp_path)
    claim = Claim('vxlan', 1, {IPV4: NodePart(NODE, vtep_mac(NODE, 1))})
    copy = LeaseFileText(real.path, real.text())
    lease, changed = copy.acquire(net_conf(), claim, config=NET_CONF)[:2]
    assert str(lease.subnet) == '172.20.1.0/24' and not changed and copy.changed is False
    # the same leases written another way: the real run rewrites the file, so it is a change
    other = LeaseFileText(real.path, json.dumps(json.loads(real.text())))
    assert other.acquire(net_conf(), claim, config=NET_CONF)[1] is True
    # a new node's lease
    new = LeaseFileText(real.path, real.text())
    assert new.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart('198.18.0.12', vtep_mac('198.18.0.12', 1))}), config=NET_CONF)[1]
    with pytest.raises(LeaseError, match='read-only'):
        new.save({})
    assert json.loads(real.text())['leases'].keys() == {'172.20.1.0-24'}


def plan(**kw):
    out = dict(network=NET_CONF, iface='', iface_regex='', ip_masq=True, cni_conf_file='', store='file',
               lease_file='/nonexistent/flannel-leases.json', lease_text=None, backend={}, rules_mode='iptables',
               families={}, guard={})
    out.update(kw)
    return out


LOOK = dict(families=[IPV4], default_cni_conf=False, old_layout=False, guard='', unit='', state='', running=False,
            found=[])


@pytest.mark.parametrize('kw,reason', [
    (dict(lease_text=None), 'no lease file yet'),
    (dict(store='etcd'), 'the etcd store is checked by the full path'),
    (dict(network={'Network': 'bogus'}), 'Network'),
])
def test_a_node_that_cannot_be_checked_is_not_in_plan(kw, reason):
    kernel = FakeKernel(observed())
    out = node_plan(kernel, plan(**kw), LOOK)
    assert out['in_plan'] is False and out['store_stable'] is False and reason in out['reason']
    assert kernel.writes == []
    if 'network' not in kw:   # the facts were read before the store was looked at: the lease task takes them
        assert out['facts']['iface'] == 'eth0' and out['facts']['public_ip'] == NODE


VXLAN = dict(type='vxlan', vni=1, port=0, mtu=0, gbp=False, learning=False, direct_routing=False)
FAMILIES = {'ipv4': dict(family='ipv4', on=True, network='172.20.0.0/16', route_network='172.20.0.0/16', state='present',
                         link_state='present', device='flannel.1',
                         lease_keys=dict(subnet='subnet', public_ip='public_ip', vtep_mac='vtep_mac'))}


def test_a_node_that_takes_a_lease_is_looked_at_without_its_dataplane(tmp_path):
    """A cold node or add-node's new one: not in plan whatever its device, routes and rules hold,
    which the full path's last call programs; its look reads its facts and its lease only."""
    store = FileStore(str(tmp_path / 'flannel-leases.json'))
    with store.locked():
        store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart('198.18.0.12', vtep_mac('198.18.0.12', 1))}),
                      config=NET_CONF)
    kernel = FakeKernel(observed())
    out = node_plan(kernel, plan(lease_file=store.path, lease_text=store.text(), backend=VXLAN, families=FAMILIES,
                                 guard=dict(wanted=False, runner='process', guard_sha1='', unit_sha1='')), LOOK)
    assert 'reason' not in out, out['reason']
    assert out['in_plan'] is False and out['store_stable'] is False and out['dataplane'] == {}
    assert out['lease']['lease']['subnet'] == '172.20.2.0/24' and out['public_ips'] == [NODE]
    # the facts' reads (links, addresses, the default route), no device, entry, route or rule of flannel's
    flannels = [argv for argv in kernel.calls
                if set(argv) & {'neigh', 'fdb', 'vxlan', 'proto'} or 'iptables-save' in argv[0] or 'nft' in argv[0]]
    assert kernel.writes == [] and flannels == []
