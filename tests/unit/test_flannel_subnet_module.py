# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeasz.network.flannel_subnet: the module's node-side facts, without root."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils import subnetnode as module
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.lease import vtep_mac
from ansible_collections.kubeasz.network.plugins.module_utils.netconf import Backend, parse_net_conf


def test_flannel_mtu_rules():
    assert module.flannel_mtu(Backend(type='vxlan'), 1500) == 1450
    assert module.flannel_mtu(Backend(type='vxlan', mtu=9000), 1500) == 8950
    assert module.flannel_mtu(Backend(type='host-gw'), 1500) == 1500


class FakeModule:
    """Just enough of AnsibleModule for node_facts(): canned ``ip -json`` tables."""

    TABLES = {
        'link': [{'ifname': 'lo', 'mtu': 65536}, {'ifname': 'eth0', 'mtu': 1500}],
        'addr': [{'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
                 {'ifname': 'eth0', 'mtu': 1500, 'addr_info': [{'family': 'inet', 'local': '198.18.0.11', 'prefixlen': 24}]}],
        'route': [{'dst': 'default', 'gateway': '198.18.0.1', 'dev': 'eth0'}],
    }

    def __init__(self, tmp_path, **params):
        self.params = dict(iface=None, iface_regex=None, public_ip=None, subnet_file=str(tmp_path / 'subnet.env'))
        self.params.update(params)
        self.calls = []

    def run_command(self, argv, data=None, binary_data=False):
        self.calls.append(argv)
        table = next(word for word in argv if word in self.TABLES)
        return 0, json.dumps(self.TABLES[table]), ''


def conf(backend):
    return parse_net_conf({'Network': '172.20.0.0/16', 'Backend': backend})


def test_node_facts_observes_once_per_table_and_reads_subnet_env(tmp_path):
    (tmp_path / 'subnet.env').write_text('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.7.1/24\n')
    fake = FakeModule(tmp_path)
    facts, text = module.node_facts(fake, conf({'Type': 'vxlan', 'VNI': 4}))
    assert len(fake.calls) == 3
    assert facts['iface'] == 'eth0' and facts['public_ip'] == '198.18.0.11' and facts['mtu'] == 1450
    assert facts['previous_subnet'] == '172.20.7.0/24' and facts['vni'] == 4
    assert facts['vtep_mac'] == vtep_mac('198.18.0.11', 4)
    assert text.startswith('FLANNEL_NETWORK=')


def test_node_facts_host_gw_mtu_and_nat_refusal(tmp_path):
    facts, text = module.node_facts(FakeModule(tmp_path), conf({'Type': 'host-gw'}))
    assert facts['mtu'] == 1500 and facts['vtep_mac'] is None and text is None and facts['subnet_env'] == {}
    with pytest.raises(DataplaneError, match='NAT'):
        module.node_facts(FakeModule(tmp_path, public_ip='203.0.113.5'), conf({'Type': 'host-gw'}))
    facts, dummy = module.node_facts(FakeModule(tmp_path, public_ip='203.0.113.5'), conf({'Type': 'vxlan'}))
    assert facts['public_ip'] == '203.0.113.5'        # vxlan works behind NAT


def test_node_facts_refuses_a_backend_mtu_above_the_interface_before_any_write(tmp_path):
    with pytest.raises(DataplaneError, match=r'FLANNEL_MTU: 9216 is more than the MTU of eth0 \(1500\).*'
                                             r'write FLANNEL_MTU: 0 .* or at most 1500'):
        module.node_facts(FakeModule(tmp_path), conf({'Type': 'vxlan', 'MTU': 9216}))
    assert not (tmp_path / 'subnet.env').exists()


def test_node_facts_refuses_a_cluster_cidr_holding_the_node_address(tmp_path):
    netconf = parse_net_conf({'Network': '198.18.0.0/16', 'Backend': {'Type': 'vxlan'}})
    with pytest.raises(DataplaneError, match=r"CLUSTER_CIDR: 198.18.0.0/16 holds this node's address 198.18.0.11"):
        module.node_facts(FakeModule(tmp_path), netconf)
