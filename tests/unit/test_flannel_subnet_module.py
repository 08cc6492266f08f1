# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeasz.network.flannel_subnet: the module's node-side facts, without root."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeasePart
from ansible_collections.kubeasz.network.plugins.module_utils.entry import subnetnode as module
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, vtep_mac
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import Backend, parse_net_conf


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


def test_node_facts_keep_the_mac_of_a_flannel_device_in_place(tmp_path):
    """flanneld made flannel.4 with a random MAC: the lease publishes that MAC (as flanneld keeps an
    existing device's), so taking the node over changes no peer's entries."""
    fake = FakeModule(tmp_path)
    fake.TABLES = dict(FakeModule.TABLES, addr=FakeModule.TABLES['addr'] + [
        {'ifname': 'flannel.4', 'mtu': 1450, 'address': '3E:86:27:7C:90:59', 'addr_info': []}])
    facts, dummy = module.node_facts(fake, conf({'Type': 'vxlan', 'VNI': 4}))
    assert facts['vtep_mac'] == '3e:86:27:7c:90:59'
    facts, dummy = module.node_facts(fake, conf({'Type': 'vxlan', 'VNI': 1}))   # another VNI: a new device
    assert facts['vtep_mac'] == vtep_mac('198.18.0.11', 1)
    fake.TABLES['addr'][-1]['address'] = '01:00:5e:00:00:01'   # not a unicast MAC: not kept
    facts, dummy = module.node_facts(fake, conf({'Type': 'vxlan', 'VNI': 4}))
    assert facts['vtep_mac'] == vtep_mac('198.18.0.11', 4)


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


# ------------------------------------------------------------------ IPv6 (issue 16)

def conf6(backend=None, ipv4=True, network6='fd00:20::/56'):
    """A dual-stack (or IPv6-only) NetConf built directly: net-conf's IPv6 keys are parsed by netconf.py."""
    import dataclasses
    import ipaddress
    extra = dict(enable_ipv6=True, ipv6_network=ipaddress.IPv6Network(network6), ipv6_subnet_len=64,
                 ipv6_subnet_min=ipaddress.IPv6Network((int(ipaddress.IPv6Network(network6).network_address) + (1 << 64), 64)),
                 ipv6_subnet_max=ipaddress.IPv6Network('fd00:20:0:ff::/64'))
    if not ipv4:
        extra.update(enable_ipv4=False, network=None, subnet_len=None, subnet_min=None, subnet_max=None)
    return dataclasses.replace(conf(backend or {'Type': 'vxlan', 'VNI': 4}), **extra)


V6_ADDRS = [{'family': 'inet6', 'local': 'fd53:18::99', 'prefixlen': 64, 'scope': 'global', 'dynamic': True},
            {'family': 'inet6', 'local': 'fd53:18::11', 'prefixlen': 64, 'scope': 'global'},
            {'family': 'inet6', 'local': 'fe80::1', 'prefixlen': 64, 'scope': 'link'}]


class FakeModule6(FakeModule):
    """FakeModule whose eth0 also has IPv6 addresses, and an IPv6 default route (``ip -6 route``)."""

    def __init__(self, tmp_path, v4=True, v6=True, **params):
        super(FakeModule6, self).__init__(tmp_path, **dict(dict(public_ip6=None, ip_masq=True, cni_conf_file=None), **params))
        self.check_mode = False
        eth0 = dict(self.TABLES['addr'][1])
        eth0['addr_info'] = (eth0['addr_info'] if v4 else []) + (V6_ADDRS if v6 else [])
        self.TABLES = dict(self.TABLES, addr=[self.TABLES['addr'][0], eth0])

    def run_command(self, argv, data=None, binary_data=False):
        if '-6' in argv:
            self.calls.append(argv)
            return 0, json.dumps([{'dst': 'default', 'gateway': 'fd53:18::1', 'dev': 'eth0', 'flags': []}]), ''
        return super(FakeModule6, self).run_command(argv, data, binary_data)


def test_node_facts_dual_stack_public_ipv6_vtep_mac6_and_previous_subnet6(tmp_path):
    (tmp_path / 'subnet.env').write_text('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.7.1/24\n'
                                         'FLANNEL_IPV6_NETWORK=fd00:20::/56\nFLANNEL_IPV6_SUBNET=fd00:20:0:7::1/64\n')
    fake = FakeModule6(tmp_path)
    facts, dummy = module.node_facts(fake, conf6())
    assert len(fake.calls) == 3                      # no IPv6 route lookup: the IPv4 default route names eth0
    assert facts['public_ip'] == '198.18.0.11' and facts['public_ip6'] == 'fd53:18::11'   # configured, not SLAAC
    assert facts['vtep_mac6'] == vtep_mac('fd53:18::11', 4) and facts['vtep_mac'] == vtep_mac('198.18.0.11', 4)
    assert facts['previous_subnet'] == '172.20.7.0/24' and facts['previous_subnet6'] == 'fd00:20:0:7::/64'
    assert module.node_facts(FakeModule6(tmp_path, public_ip6='2001:db8::5'), conf6())[0]['public_ip6'] == '2001:db8::5'
    ipv4_only = module.node_facts(FakeModule6(tmp_path), conf({'Type': 'vxlan'}))[0]
    assert not [k for k in ipv4_only if k.endswith('6')]       # IPv4-only: the facts as before


def test_node_facts_without_an_ipv6_address_fails_before_any_write(tmp_path):
    with pytest.raises(DataplaneError, match=r'interface eth0 has no global IPv6 address .*add an IPv6 address to '
                                             r'eth0, or set FLANNEL_IFACE'):
        module.node_facts(FakeModule6(tmp_path, v6=False), conf6())
    assert not (tmp_path / 'subnet.env').exists()
    with pytest.raises(DataplaneError, match="CLUSTER_CIDR_IPV6: fd53::/16 holds this node's address fd53:18::11"):
        module.node_facts(FakeModule6(tmp_path), conf6(network6='fd53::/16'))
    with pytest.raises(DataplaneError, match='public_ip6 2001:db8::5 is not an address of eth0: the host-gw backend'):
        module.node_facts(FakeModule6(tmp_path, public_ip6='2001:db8::5'), conf6({'Type': 'host-gw'}))


def test_node_facts_ipv6_only_uses_the_ipv6_default_route(tmp_path):
    fake = FakeModule6(tmp_path, v4=False)
    facts, dummy = module.node_facts(fake, conf6(ipv4=False))
    assert ['ip', '-6', '-json', 'route', 'show', 'table', 'main', 'default'] in fake.calls
    assert (facts['iface'], facts['public_ip'], facts['public_ip6'], facts['vtep_mac']) == (
        'eth0', None, 'fd53:18::11', None)
    # no network (state=absent): whatever family the interface has finds the lease
    assert module.node_facts(FakeModule6(tmp_path, v4=False), None)[0]['public_ip6'] == 'fd53:18::11'


def lease6(subnet='172.20.1.0/24', subnet6='fd00:20:0:1::/64'):
    return Lease.make('vxlan', 4, {
        IPV4: LeasePart(subnet, '198.18.0.11' if subnet else None, vtep_mac('198.18.0.11', 4) if subnet else None),
        IPV6: LeasePart(subnet6, 'fd53:18::11', vtep_mac('fd53:18::11', 4))})


def test_subnet_env_is_flannels_write_subnet_file_with_the_ipv6_lines():
    from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import subnet_env_text
    assert subnet_env_text(conf6(), lease6(), 1450, True) == (
        'FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\n'
        'FLANNEL_IPV6_NETWORK=fd00:20::/56\nFLANNEL_IPV6_SUBNET=fd00:20:0:1::1/64\n'
        'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')
    assert subnet_env_text(conf6(ipv4=False), lease6(None), 1450, False) == (
        'FLANNEL_IPV6_NETWORK=fd00:20::/56\nFLANNEL_IPV6_SUBNET=fd00:20:0:1::1/64\n'
        'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n')


def test_write_env_dual_stack_and_check_mode_diff_names_the_ipv6_subnet(tmp_path):
    fake = FakeModule6(tmp_path)
    facts = module.node_facts(fake, conf6())[0]
    fake.check_mode = True
    changed, diffs, more = module.write_env(fake, conf6(), facts, {IPV4: '172.20.1.0/24', IPV6: 'fd00:20:0:1::/64'})
    assert changed and not (tmp_path / 'subnet.env').exists()
    assert 'FLANNEL_IPV6_SUBNET=fd00:20:0:1::1/64' in diffs[0]['after']
    assert more['lease'] == lease6().as_peer() and more['subnet_env']['FLANNEL_IPV6_NETWORK'] == 'fd00:20::/56'
    fake.check_mode = False
    assert module.write_env(fake, conf6(), facts, {IPV4: '172.20.1.0/24', IPV6: 'fd00:20:0:1::/64'})[0]
    assert (tmp_path / 'subnet.env').read_text().count('FLANNEL_IPV6_') == 2
    with pytest.raises(LeaseError, match='the network has IPv6 but the lease has no IPv6 subnet'):
        module.write_env(fake, conf6(), facts, {IPV4: '172.20.1.0/24'})
    with pytest.raises(LeaseError, match='subnet6 fd00:99::/64 is not a /64 inside network fd00:20::/56'):
        module.write_env(fake, conf6(), facts, {IPV4: '172.20.1.0/24', IPV6: 'fd00:99::/64'})


def test_file_store_run_in_check_mode_tells_the_truth_about_ipv6(tmp_path):
    """What the action plugin does for store=file: lease_state on the controller, write_env on the node."""
    from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
    from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state
    fake = FakeModule6(tmp_path)
    fake.check_mode = True
    facts = module.node_facts(fake, conf6())[0]
    store = FileStore(str(tmp_path / 'leases.json'))

    def env(got):
        return module.write_env(fake, conf6(), facts, {IPV4: got.subnet, IPV6: got.subnet6})
    out = lease_state(store, 'present', conf6(), facts, env, check_mode=True)
    assert out['changed'] and out['lease']['subnet6'] == 'fd00:20:0:1::/64' and out['public_ip6'] == 'fd53:18::11'
    assert '"172.20.1.0-24&fd00:20:0:1::-64"' in out['diff'][0]['after']
    assert 'FLANNEL_IPV6_SUBNET=fd00:20:0:1::1/64' in out['diff'][1]['after']
    assert not (tmp_path / 'leases.json').exists() and not (tmp_path / 'subnet.env').exists()


def test_kube_store_on_the_node_dual_stack_with_public_ipv6_overwrite(tmp_path, monkeypatch):
    from ansible_collections.kubeasz.network.tests.unit.test_kube_store import API, RECORDED, FakeAPI, dual_node
    from ansible_collections.kubeasz.network.plugins.module_utils.store import kubestore
    node = dual_node(('172.20.3.0/24', 'fd00:20:0:3::/64'))
    node['metadata']['annotations'][kubestore.PUBLIC_IPV6_OVERWRITE] = '2001:db8::3'
    api = FakeAPI([node])
    monkeypatch.setattr(module, 'open_store', lambda params: kubestore.KubeStore(
        kubestore.KubeClient(API, opener=api), RECORDED))
    fake = FakeModule6(tmp_path, state='present', store='kube', network={})
    out = module.on_node(fake, conf6())
    assert out['lease']['subnet6'] == 'fd00:20:0:3::/64' and out['lease']['public_ip6'] == '2001:db8::3'
    assert out['public_ip6'] == '2001:db8::3' and out['public_ip'] == '198.18.0.11'
    assert 'FLANNEL_IPV6_SUBNET=fd00:20:0:3::1/64' in (tmp_path / 'subnet.env').read_text()
    assert api.nodes[RECORDED]['metadata']['annotations'][kubestore.PUBLIC_IPV6] == '2001:db8::3'
    # a node whose podCIDRs lack the IPv6 one: refused before subnet.env changes
    (tmp_path / 'subnet.env').unlink()
    api.nodes[RECORDED]['spec']['podCIDRs'] = ['172.20.3.0/24']
    with pytest.raises(LeaseError, match='has no IPv6 subnet'):
        module.on_node(fake, conf6())
    assert not (tmp_path / 'subnet.env').exists()


def test_stale_bridge_addresses_are_those_of_an_earlier_lease_or_a_family_that_is_off():
    links = [{'ifname': 'cni0', 'addr_info': [
        {'family': 'inet', 'local': '172.20.2.1', 'prefixlen': 24, 'scope': 'global'},
        {'family': 'inet6', 'local': 'fd00:20:0:1::1', 'prefixlen': 64, 'scope': 'global'},
        {'family': 'inet6', 'local': 'fe80::1', 'prefixlen': 64, 'scope': 'link'}]},
        {'ifname': 'eth0', 'addr_info': [{'family': 'inet', 'local': '198.18.0.11', 'prefixlen': 24, 'scope': 'global'}]}]
    only6 = Lease.make('vxlan', 1, {IPV4: LeasePart(None, None, None), IPV6: LeasePart('fd00:20:0:1::/64', 'fd53::11', '0e:00:00:00:00:06')})
    assert module.stale_bridge_addrs(links, only6) == ['172.20.2.1/24']
    moved = Lease.make('vxlan', 1, {IPV4: LeasePart('172.20.1.0/24', '198.18.0.11', '0e:00:00:00:00:04')})
    assert module.stale_bridge_addrs(links, moved) == ['172.20.2.1/24', 'fd00:20:0:1::1/64']
    same = Lease.make('vxlan', 1, {IPV4: LeasePart('172.20.2.0/24', '198.18.0.11', '0e:00:00:00:00:04'),
                                   IPV6: LeasePart('fd00:20:0:1::/64', 'fd53::11', '0e:00:00:00:00:06')})
    assert module.stale_bridge_addrs(links, same) == []


def test_node_facts_name_the_addresses_of_the_family_the_config_lacks(tmp_path):
    """The old lease of a family switch is found by them (issue 24, defect 12)."""
    facts = module.node_facts(FakeModule6(tmp_path), conf6(ipv4=False))[0]
    assert '198.18.0.11' in facts['former_ips'] and facts['public_ip'] is None
    facts = module.node_facts(FakeModule6(tmp_path), conf6())[0]
    assert facts['former_ips'] == []
