# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's net-conf.json rules and the kubeasz config keys (plugins/module_utils/model/netconf.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.model import clusterconfig as nc
from ansible_collections.kubeasz.network.plugins.module_utils.model.clusterconfig import (
    ConfigError, from_cluster_config, load_cluster_config, render)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import ifname_problem
from ansible_collections.kubeasz.network.plugins.module_utils.model.cniconf import (
    checksum, cni_conf, delegate_conflist, dumps)
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import (
    Backend, NetConfError, parse_net_conf, to_net_conf)

BASE = {
    'CLUSTER_NETWORK': 'flannel', 'CLUSTER_CIDR': '172.20.0.0/16', 'SERVICE_CIDR': '10.68.0.0/16',
    'PROXY_MODE': 'ipvs', 'NODE_CIDR_LEN': 24, 'FLANNEL_BACKEND': 'vxlan', 'DIRECT_ROUTING': False,
}


def cfg(**kw):
    out = dict(BASE)
    out.update(kw)
    return out


def net(text):
    return ipaddress.IPv4Network(text)


# ------------------------------------------------------------------ flannel's rules

def test_minimal_vxlan_defaults():
    n = parse_net_conf({'Network': '10.1.0.0/16', 'Backend': {'Type': 'vxlan'}})
    assert n.network == net('10.1.0.0/16')
    assert n.subnet_len == 24
    assert n.subnet_min == net('10.1.1.0/24')
    assert n.subnet_max == net('10.1.255.0/24')
    assert n.backend == Backend(type='vxlan', vni=1, port=0, mtu=0)
    assert n.enable_nftables is False


def test_keys_are_case_insensitive_and_unknown_ignored():
    n = parse_net_conf({'network': '10.1.0.0/16', 'SUBNETLEN': 26, 'whatever': 1,
                        'backend': {'type': 'VXLAN', 'vni': 4, 'directrouting': True, 'x': 'y'}})
    assert n.subnet_len == 26
    assert n.backend.type == 'vxlan'
    assert n.backend.vni == 4
    assert n.backend.direct_routing is True


def test_later_duplicate_key_wins_like_go():
    n = parse_net_conf({'Network': '10.1.0.0/16', 'network': '10.2.0.0/16', 'Backend': {'Type': 'host-gw'}})
    assert n.network == net('10.2.0.0/16')


def test_host_bits_are_masked():
    n = parse_net_conf({'Network': '10.1.2.3/16', 'Backend': {'Type': 'vxlan'}})
    assert n.network == net('10.1.0.0/16')


@pytest.mark.parametrize('prefix, expected', [(8, 24), (16, 24), (22, 24), (23, 25), (26, 28), (28, 30)])
def test_default_subnet_len(prefix, expected):
    n = parse_net_conf({'Network': '10.0.0.0/%d' % prefix, 'Backend': {'Type': 'vxlan'}})
    assert n.subnet_len == expected


def test_network_too_small():
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/29', 'Backend': {'Type': 'vxlan'}})
    assert exc.value.problems == ['Network is too small. Minimum useful network prefix is /28']


@pytest.mark.parametrize('sl, text', [(31, 'less than /31'), (17, 'at least four subnets')])
def test_explicit_subnet_len_checks(sl, text):
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16', 'SubnetLen': sl, 'Backend': {'Type': 'vxlan'}})
    assert text in str(exc.value)


def test_subnet_len_prefix_plus_two_is_allowed():
    assert parse_net_conf({'Network': '10.0.0.0/16', 'SubnetLen': 18, 'Backend': {'Type': 'vxlan'}}).subnet_len == 18


def test_explicit_subnet_min_max():
    n = parse_net_conf({'Network': '10.0.0.0/16', 'SubnetMin': '10.0.10.0', 'SubnetMax': '10.0.20.0',
                        'Backend': {'Type': 'vxlan'}})
    assert n.subnet_min == net('10.0.10.0/24')
    assert n.subnet_max == net('10.0.20.0/24')


@pytest.mark.parametrize('key, value, text', [
    ('SubnetMin', '10.1.0.0', 'SubnetMin is not in the range of the Network'),
    ('SubnetMax', '10.1.0.0', 'SubnetMax is not in the range of the Network'),
    ('SubnetMin', '10.0.1.5', 'SubnetMin is not on a SubnetLen boundary: 10.0.1.5'),
    ('SubnetMax', '10.0.9.128', 'SubnetMax is not on a SubnetLen boundary: 10.0.9.128'),
])
def test_subnet_bound_checks(key, value, text):
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16', key: value, 'Backend': {'Type': 'vxlan'}})
    assert text in exc.value.problems


def test_backend_type_lower_cased_and_unknown_rejected():
    assert parse_net_conf({'Network': '10.0.0.0/16', 'Backend': {'Type': 'Host-GW'}}).backend.type == 'host-gw'
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16', 'Backend': {'Type': 'bogus'}})
    assert "'bogus' is unknown" in str(exc.value)
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16', 'Backend': {'Type': 'wireguard'}})
    assert 'not deployed' in str(exc.value)


def test_missing_backend_is_reported():
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16'})
    assert 'udp' in str(exc.value)


def test_net_conf_reports_all_problems_at_once():
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': 'nope', 'EnableNFTables': 'yes',
                        'Backend': {'Type': 'vxlan', 'VNI': 0, 'Port': 70000, 'MTU': 50, 'GBP': 'no'}})
    text = '\n'.join(exc.value.problems)
    for word in ('Network', 'EnableNFTables', 'VNI', 'Port', 'MTU', 'GBP'):
        assert word in text
    assert len(exc.value.problems) >= 6


def net6(text):
    return ipaddress.IPv6Network(text)


def test_ipv4_only_families_and_ipv6_fields():
    n = parse_net_conf({'Network': '10.0.0.0/16', 'Backend': {'Type': 'vxlan'}})
    assert n.families == ('ipv4',)
    assert (n.enable_ipv4, n.enable_ipv6, n.ipv6_network, n.ipv6_subnet_len, n.ipv6_subnet_min,
            n.ipv6_subnet_max) == (True, False, None, 0, None, None)


def test_dual_stack_defaults():
    n = parse_net_conf({'Network': '10.0.0.0/16', 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56',
                        'Backend': {'Type': 'vxlan'}})
    assert n.families == ('ipv4', 'ipv6')
    assert n.network == net('10.0.0.0/16')
    assert n.ipv6_network == net6('fd00:20::/56')
    assert n.ipv6_subnet_len == 64
    assert n.ipv6_subnet_min == net6('fd00:20:0:1::/64')
    assert n.ipv6_subnet_max == net6('fd00:20:0:ff::/64')


def test_ipv6_only_needs_no_network():
    n = parse_net_conf({'EnableIPv4': False, 'enableipv6': True, 'ipv6network': 'fd00:20::/56',
                        'SubnetLen': 99, 'Backend': {'Type': 'host-gw'}})
    assert n.families == ('ipv6',)
    assert (n.network, n.subnet_len, n.subnet_min, n.subnet_max) == (None, None, None, None)
    assert n.ipv6_network == net6('fd00:20::/56')


def test_ipv6_keys_without_enable_ipv6_are_ignored_like_flannel():
    n = parse_net_conf({'Network': '10.0.0.0/16', 'IPv6Network': 'fd00::/48', 'IPv6SubnetLen': 1,
                        'Backend': {'Type': 'vxlan'}})
    assert n.families == ('ipv4',)
    assert n.ipv6_network is None


def test_ipv6_host_bits_are_masked():
    n = parse_net_conf({'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::1/56',
                        'Backend': {'Type': 'vxlan'}})
    assert n.ipv6_network == net6('fd00:20::/56')


@pytest.mark.parametrize('prefix, expected', [(48, 64), (56, 64), (62, 64), (63, 65), (100, 102), (124, 126)])
def test_default_ipv6_subnet_len(prefix, expected):
    n = parse_net_conf({'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00::/%d' % prefix,
                        'Backend': {'Type': 'vxlan'}})
    assert n.ipv6_subnet_len == expected


def test_explicit_ipv6_subnet_len_and_bounds():
    n = parse_net_conf({'Network': '10.0.0.0/16', 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56',
                        'IPv6SubnetLen': 80, 'IPv6SubnetMin': 'fd00:20:0:5::', 'IPv6SubnetMax': 'fd00:20:0:9:1::',
                        'Backend': {'Type': 'vxlan'}})
    assert n.ipv6_subnet_len == 80
    assert n.ipv6_subnet_min == net6('fd00:20:0:5::/80')
    assert n.ipv6_subnet_max == net6('fd00:20:0:9:1::/80')


def test_ipv6_bound_unspecified_address_means_default():
    n = parse_net_conf({'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56',
                        'IPv6SubnetMin': '::', 'IPv6SubnetMax': '', 'Backend': {'Type': 'vxlan'}})
    assert n.ipv6_subnet_min == net6('fd00:20:0:1::/64')
    assert n.ipv6_subnet_max == net6('fd00:20:0:ff::/64')


V6 = {'Network': '10.0.0.0/16', 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56', 'Backend': {'Type': 'vxlan'}}


@pytest.mark.parametrize('override, text', [
    ({'IPv6Network': None}, 'IPv6Network is required with EnableIPv6: an IPv6 CIDR such as "fd00:20::/56"'),
    ({'IPv6Network': '10.1.0.0/16'}, "IPv6Network '10.1.0.0/16' is not an IPv6 CIDR"),
    ({'IPv6Network': 'fd00::/125'}, 'IPv6Network is too small. Minimum useful network prefix is /124'),
    ({'IPv6SubnetLen': 127}, 'IPv6SubnetLen must be less than /127'),
    ({'IPv6SubnetLen': 57}, 'IPv6Network must be able to accommodate at least four subnets'),
    ({'IPv6SubnetLen': -1}, 'IPv6SubnetLen must be a non-negative integer, not -1'),
    ({'IPv6SubnetLen': '64'}, "IPv6SubnetLen must be a non-negative integer, not '64'"),
    ({'IPv6SubnetMin': 'fd00:21::'}, 'IPv6SubnetMin is not in the range of the IPv6Network'),
    ({'IPv6SubnetMax': 'fd00:21::'}, 'IPv6SubnetMax is not in the range of the IPv6Network'),
    ({'IPv6SubnetMin': 'fd00:20:0:1::8'}, 'IPv6SubnetMin is not on a SubnetLen boundary: fd00:20:0:1::8'),
    ({'IPv6SubnetMax': 'fd00:20:0:9:1::'}, 'IPv6SubnetMax is not on a SubnetLen boundary: fd00:20:0:9:1::'),
    ({'IPv6SubnetMin': '10.0.1.0'}, "IPv6SubnetMin '10.0.1.0' is not an IPv6 address"),
    ({'IPv6SubnetMin': 'fd00:20:0:9::', 'IPv6SubnetMax': 'fd00:20:0:2::'},
     'IPv6SubnetMin fd00:20:0:9:: is above IPv6SubnetMax fd00:20:0:2::'),
    ({'EnableIPv6': 'true'}, "EnableIPv6 must be true or false, not 'true'"),
    ({'EnableIPv4': 0}, 'EnableIPv4 must be true or false, not 0'),
    ({'EnableIPv4': False, 'EnableIPv6': False},
     'EnableIPv4 and EnableIPv6 are both false: enable at least one address family'),
])
def test_ipv6_checks(override, text):
    data = dict(V6)
    data.update(override)
    with pytest.raises(NetConfError) as exc:
        parse_net_conf(data)
    assert text in '\n'.join(exc.value.problems)


def test_ipv6_only_requires_ipv6_network_not_network():
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'EnableIPv4': False, 'EnableIPv6': True, 'Backend': {'Type': 'vxlan'}})
    assert exc.value.problems == ['IPv6Network is required with EnableIPv6: an IPv6 CIDR such as "fd00:20::/56"']


def test_dual_stack_reports_every_problem_of_both_families():
    with pytest.raises(NetConfError) as exc:
        parse_net_conf({'Network': '10.0.0.0/16', 'SubnetLen': 31, 'SubnetMin': 'x', 'EnableIPv6': True,
                        'IPv6Network': 'fd00::/56', 'IPv6SubnetLen': 127, 'EnableNFTables': 1,
                        'Backend': {'Type': 'vxlan', 'VNI': 0}})
    assert exc.value.problems == ['SubnetLen must be less than /31', 'IPv6SubnetLen must be less than /127',
                                  'VNI must be an integer between 1 and 16777215, not 0',
                                  'EnableNFTables must be true or false, not 1']


def test_ipv6_to_net_conf_renders_only_what_flannel_would_not_derive():
    dual = parse_net_conf(V6)
    assert json.dumps(to_net_conf(dual)) == (
        '{"Network": "10.0.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:20::/56", '
        '"EnableNFTables": false, "Backend": {"Type": "vxlan"}}')
    only6 = parse_net_conf({'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56',
                            'IPv6SubnetLen': 72, 'IPv6SubnetMin': 'fd00:20:0:1::', 'IPv6SubnetMax': 'fd00:20:0:2::',
                            'Backend': {'Type': 'host-gw'}})
    assert json.dumps(to_net_conf(only6)) == (
        '{"EnableIPv4": false, "EnableIPv6": true, "IPv6Network": "fd00:20::/56", "IPv6SubnetLen": 72, '
        '"IPv6SubnetMin": "fd00:20:0:1::", "IPv6SubnetMax": "fd00:20:0:2::", "EnableNFTables": false, '
        '"Backend": {"Type": "host-gw"}}')


@pytest.mark.parametrize('data', [
    V6,
    {'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56', 'Backend': {'Type': 'host-gw'}},
    {'EnableIPv4': False, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/120', 'IPv6SubnetLen': 124,
     'IPv6SubnetMax': 'fd00:20::e0', 'Backend': {'Type': 'vxlan'}},
    {'Network': '10.0.0.0/16', 'SubnetLen': 26, 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/48',
     'IPv6SubnetLen': 60, 'IPv6SubnetMin': 'fd00:20:0:10::', 'EnableNFTables': True,
     'Backend': {'Type': 'vxlan', 'MTU': 1500}},
])
def test_ipv6_round_trip_is_identity(data):
    n = parse_net_conf(data)
    assert parse_net_conf(to_net_conf(n)) == n
    assert to_net_conf(parse_net_conf(to_net_conf(n))) == to_net_conf(n)


def test_round_trip_is_identity():
    for data in ({'Network': '10.0.0.0/16', 'SubnetLen': 26, 'SubnetMin': '10.0.0.64', 'Backend': {'Type': 'vxlan', 'MTU': 1500}},
                 {'Network': '10.0.0.0/24', 'Backend': {'Type': 'host-gw'}, 'EnableNFTables': True}):
        n = parse_net_conf(data)
        assert parse_net_conf(to_net_conf(n)) == n


# ------------------------------------------------------------------ canonical net-conf.json

def test_exact_net_conf_vxlan():
    assert dumps(to_net_conf(from_cluster_config(cfg()))) == (
        '{\n'
        '  "Network": "172.20.0.0/16",\n'
        '  "EnableNFTables": false,\n'
        '  "Backend": {\n'
        '    "Type": "vxlan"\n'
        '  }\n'
        '}\n')


def test_exact_net_conf_vxlan_direct_routing():
    assert json.dumps(to_net_conf(from_cluster_config(cfg(DIRECT_ROUTING=True)))) == (
        '{"Network": "172.20.0.0/16", "EnableNFTables": false, '
        '"Backend": {"Type": "vxlan", "DirectRouting": true}}')


def test_exact_net_conf_host_gw():
    assert json.dumps(to_net_conf(from_cluster_config(cfg(FLANNEL_BACKEND='host-gw')))) == (
        '{"Network": "172.20.0.0/16", "EnableNFTables": false, "Backend": {"Type": "host-gw"}}')


def test_exact_net_conf_non_defaults():
    c = cfg(NODE_CIDR_LEN=26, FLANNEL_SUBNET_MIN='172.20.1.0', FLANNEL_SUBNET_MAX='172.20.9.192',
            FLANNEL_VNI=7, FLANNEL_PORT=4789, FLANNEL_MTU=9000, FLANNEL_GBP=True, PROXY_MODE='nftables',
            FLANNEL_ENABLE_NFTABLES='PROXY_MODE')
    assert json.dumps(to_net_conf(from_cluster_config(c))) == (
        '{"Network": "172.20.0.0/16", "SubnetLen": 26, "SubnetMin": "172.20.1.0", '
        '"SubnetMax": "172.20.9.192", "EnableNFTables": true, "Backend": {"Type": "vxlan", '
        '"VNI": 7, "Port": 4789, "MTU": 9000, "GBP": true}}')


def test_cluster_settings_and_store_default():
    cc = load_cluster_config(cfg(FLANNEL_IFACE='eth1'))
    assert (cc.dataplane, cc.namespace, cc.store, cc.iface, cc.ip_masq, cc.route_guard) == \
        ('flanneld', 'kube-system', 'kube', 'eth1', True, True)  # kubeasz's namespace
    assert load_cluster_config(cfg(FLANNEL_NAMESPACE='kube-flannel')).namespace == 'kube-flannel'
    assert load_cluster_config(cfg(FLANNEL_DATAPLANE='ansible')).store == 'file'
    assert load_cluster_config(cfg(FLANNEL_DATAPLANE='ansible', FLANNEL_SUBNET_STORE='etcd')).store == 'etcd'


def test_digit_strings_from_ini_are_accepted_for_integers():
    assert from_cluster_config(cfg(NODE_CIDR_LEN='25')).subnet_len == 25


def test_unset_node_cidr_len_follows_flannel():
    c = cfg(CLUSTER_CIDR='10.0.0.0/24')
    del c['NODE_CIDR_LEN']
    assert from_cluster_config(c).subnet_len == 26


def test_host_gw_ignores_direct_routing_with_warning():
    cc = load_cluster_config(cfg(FLANNEL_BACKEND='host-gw', DIRECT_ROUTING=True))
    assert cc.net_conf.backend == Backend(type='host-gw')
    assert any('DIRECT_ROUTING' in w for w in cc.warnings)


# ------------------------------------------------------------------ CNI documents

def test_cni_conf():
    assert cni_conf() == {
        'name': 'cbr0', 'cniVersion': '0.3.1',
        'plugins': [{'type': 'flannel', 'delegate': {'hairpinMode': True, 'isDefaultGateway': True}},
                    {'type': 'portmap', 'capabilities': {'portMappings': True}}]}


def test_delegate_conflist_from_subnet_env_strings():
    env = {'FLANNEL_NETWORK': '172.20.0.0/16', 'FLANNEL_SUBNET': '172.20.1.1/24',
           'FLANNEL_MTU': '1450', 'FLANNEL_IPMASQ': 'true'}
    assert delegate_conflist(env) == {
        'cniVersion': '0.3.1', 'name': 'cbr0',
        'plugins': [
            {'type': 'bridge', 'name': 'cbr0', 'bridge': 'cni0', 'mtu': 1450, 'hairpinMode': True,
             'isGateway': True, 'isDefaultGateway': True, 'ipMasq': False,
             'ipam': {'type': 'host-local',
                      'ranges': [[{'subnet': '172.20.1.0/24', 'gateway': '172.20.1.1'}]],
                      'routes': [{'dst': '172.20.0.0/16'}]}},
            {'type': 'portmap', 'capabilities': {'portMappings': True}}]}


def test_delegate_conflist_ipmasq_false_masquerades_in_bridge():
    out = delegate_conflist({'FLANNEL_NETWORK': '10.0.0.0/16', 'FLANNEL_SUBNET': '10.0.5.1/26',
                             'FLANNEL_MTU': 1500, 'FLANNEL_IPMASQ': False})
    bridge = out['plugins'][0]
    assert bridge['ipMasq'] is True
    assert bridge['mtu'] == 1500
    assert bridge['ipam']['ranges'] == [[{'subnet': '10.0.5.0/26', 'gateway': '10.0.5.1'}]]


def test_delegate_conflist_rejects_bad_mtu():
    with pytest.raises(ValueError):
        delegate_conflist({'FLANNEL_NETWORK': '10.0.0.0/16', 'FLANNEL_SUBNET': '10.0.5.1/24',
                           'FLANNEL_MTU': 'x', 'FLANNEL_IPMASQ': 'true'})


def test_checksum_changes_with_config():
    a = render(cfg())
    b = render(cfg(DIRECT_ROUTING=True))
    assert a['checksum'] == checksum(a['net_conf_json'], a['cni_conf_json'])
    assert len(a['checksum']) == 64
    assert a['checksum'] != b['checksum']
    assert render(cfg())['checksum'] == a['checksum']
    assert json.loads(a['cni_conf_json']) == cni_conf()


# ------------------------------------------------------------------ bad kubeasz configs

BAD = [
    ('CLUSTER_NETWORK', {'CLUSTER_NETWORK': 'calico'}),
    ('CLUSTER_NETWORK', {'CLUSTER_NETWORK': None}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': None}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0/33'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': 'fd00::/48'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0/16,fd00::/48'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.1.0/16'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '10.0.0.0/29', 'NODE_CIDR_LEN': None}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '10.0.0.0/30', 'NODE_CIDR_LEN': 30}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 31}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 17}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 'big'}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': True}),
    ('FLANNEL_SUBNET_MIN', {'FLANNEL_SUBNET_MIN': '172.21.0.0'}),
    ('FLANNEL_SUBNET_MIN', {'FLANNEL_SUBNET_MIN': '172.20.1.7'}),
    ('FLANNEL_SUBNET_MIN', {'FLANNEL_SUBNET_MIN': 'first'}),
    ('FLANNEL_SUBNET_MIN', {'FLANNEL_SUBNET_MIN': '172.20.9.0', 'FLANNEL_SUBNET_MAX': '172.20.2.0'}),
    ('FLANNEL_SUBNET_MAX', {'FLANNEL_SUBNET_MAX': '172.20.3.0/25'}),
    ('FLANNEL_BACKEND', {'FLANNEL_BACKEND': 'wireguard'}),
    ('FLANNEL_BACKEND', {'FLANNEL_BACKEND': 3}),
    ('DIRECT_ROUTING', {'DIRECT_ROUTING': 'yes'}),
    ('DIRECT_ROUTING', {'DIRECT_ROUTING': 'false'}),
    ('DIRECT_ROUTING', {'DIRECT_ROUTING': 1}),
    ('FLANNEL_VNI', {'FLANNEL_VNI': 0}),
    ('FLANNEL_VNI', {'FLANNEL_VNI': 16777216}),
    ('FLANNEL_PORT', {'FLANNEL_PORT': 65536}),
    ('FLANNEL_PORT', {'FLANNEL_PORT': -1}),
    ('FLANNEL_MTU', {'FLANNEL_MTU': 100}),
    ('FLANNEL_MTU', {'FLANNEL_MTU': 65000}),
    ('FLANNEL_GBP', {'FLANNEL_GBP': 'on'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'a-very-long-interface-name'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'eth/0'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'eth 0'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': '..'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'eth0', 'FLANNEL_IFACE_REGEX': '^eth'}),
    ('FLANNEL_IFACE_REGEX', {'FLANNEL_IFACE_REGEX': '(eth'}),
    ('FLANNEL_DATAPLANE', {'FLANNEL_DATAPLANE': 'cilium'}),
    ('FLANNEL_NAMESPACE', {'FLANNEL_NAMESPACE': 'default'}),
    ('FLANNEL_SUBNET_STORE', {'FLANNEL_SUBNET_STORE': 'consul'}),
    ('FLANNEL_SUBNET_STORE', {'FLANNEL_SUBNET_STORE': 'file'}),
    ('FLANNEL_SUBNET_STORE', {'FLANNEL_SUBNET_STORE': 'etcd', 'FLANNEL_DATAPLANE': 'flanneld'}),
    ('PROXY_MODE', {'PROXY_MODE': 'userspace'}),
    ('FLANNEL_ENABLE_NFTABLES', {'FLANNEL_ENABLE_NFTABLES': 'yes'}),
    ('FLANNEL_ENABLE_NFTABLES', {'FLANNEL_ENABLE_NFTABLES': 'nftables'}),
    ('FLANNEL_ENABLE_NFTABLES', {'FLANNEL_ENABLE_NFTABLES': 1}),
    ('FLANNEL_IPMASQ', {'FLANNEL_IPMASQ': 'true'}),
    ('FLANNEL_ROUTE_GUARD', {'FLANNEL_ROUTE_GUARD': 'no'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '172.20.128.0/20'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '10.68.0.0/99'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': 'fd00:10::/108'}),
]


@pytest.mark.parametrize('key, override', BAD, ids=['%s-%d' % (k, i) for i, (k, dummy) in enumerate(BAD)])
def test_bad_config_names_the_key(key, override):
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(**override))
    assert any(p.startswith(key + ':') for p in exc.value.problems), exc.value.problems
    assert str(exc.value).startswith('config.yml has %d problem(s):\n- ' % len(exc.value.problems))
    assert 'write' in str(exc.value)


def test_node_cidr_len_message_says_what_to_write():
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(NODE_CIDR_LEN=31))
    assert exc.value.problems == [
        'NODE_CIDR_LEN: 31 is too long for flannel (at most 30); write a value between 18 and 30 '
        'for CLUSTER_CIDR 172.20.0.0/16']


def test_direct_routing_string_hint():
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(DIRECT_ROUTING='yes'))
    assert 'write DIRECT_ROUTING: true' in str(exc.value)


def test_all_problems_reported_at_once():
    bad = cfg(CLUSTER_NETWORK='calico', NODE_CIDR_LEN=31, DIRECT_ROUTING='yes', FLANNEL_VNI=0,
              FLANNEL_IFACE='a/b', FLANNEL_DATAPLANE='x', PROXY_MODE='kernel', SERVICE_CIDR='172.20.0.0/24',
              FLANNEL_SUBNET_MIN='10.0.0.0')
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(bad)
    keys = set(p.split(':')[0] for p in exc.value.problems)
    assert keys == {'CLUSTER_NETWORK', 'NODE_CIDR_LEN', 'DIRECT_ROUTING', 'FLANNEL_VNI', 'FLANNEL_IFACE',
                    'FLANNEL_DATAPLANE', 'PROXY_MODE', 'SERVICE_CIDR', 'FLANNEL_SUBNET_MIN'}
    assert str(exc.value).startswith('config.yml has 9 problem(s):')


def test_not_a_mapping():
    with pytest.raises(ConfigError):
        load_cluster_config(None)


def test_ifname_rules():
    assert ifname_problem('eth0') is None
    assert ifname_problem('x' * 15) is None
    assert ifname_problem('x' * 16)
    assert ifname_problem('.')
    assert ifname_problem('')


@pytest.mark.parametrize('key, value, what', [
    ('CLUSTER_CIDR', '127.0.0.0/16', 'the loopback range 127.0.0.0/8'),
    ('CLUSTER_CIDR', '224.0.0.0/16', 'the multicast range 224.0.0.0/4'),
    ('CLUSTER_CIDR', '169.254.0.0/16', 'the link-local range 169.254.0.0/16'),
    ('SERVICE_CIDR', '0.0.0.0/8', '"this network" 0.0.0.0/8'),
    ('SERVICE_CIDR', '240.0.0.0/8', 'the reserved range 240.0.0.0/4'),
])
def test_special_ranges_are_refused(key, value, what):
    with pytest.raises(ConfigError) as err:
        load_cluster_config(cfg(**{key: value}))
    assert err.value.problems == ["%s: '%s' overlaps %s, which pods and services cannot use; write a private "
                                  'range such as "%s"' % (key, value, what, '172.20.0.0/16' if key == 'CLUSTER_CIDR'
                                                          else '10.68.0.0/16')]


def test_node_addresses_inside_cluster_or_service_cidr_are_refused_all_at_once():
    addresses = {'node1': '172.20.3.4', 'node2': '10.68.0.9', 'node3': '198.18.0.13', 'node4': 'name.example'}
    with pytest.raises(ConfigError) as err:
        load_cluster_config(cfg(SERVICE_CIDR='10.68.0.0/16', FLANNEL_VNI='abc'), addresses)
    assert err.value.problems[:2] == [
        'CLUSTER_CIDR: 172.20.0.0/16 holds the address 172.20.3.4 of node node1; write a range outside the '
        'node network in clusters/<name>/hosts [all:vars]',
        'SERVICE_CIDR: 10.68.0.0/16 holds the address 10.68.0.9 of node node2; write a range outside the '
        'node network in clusters/<name>/hosts [all:vars]']
    assert err.value.problems[2].startswith('FLANNEL_VNI:')
    assert load_cluster_config(cfg(), {'node3': '198.18.0.13'}).net_conf.network == net('172.20.0.0/16')


def test_unknown_keys_that_look_like_ours_are_warned_with_the_nearest_known_key():
    known = {'FLANNEL_BACKEND', 'DIRECT_ROUTING', 'CLUSTER_CIDR', 'flannel_ver'}
    names = ['FLANNEL_BACKNED', 'DIRECT_ROUTNG', 'FLANNEL_FOO', 'CLUSTER_CIDR', 'SERVICE_CIDR',
             'CLUSTER_DNS_DOMAIN', 'flannel_routes', 'KUBE_APISERVER', 'hostvars']
    assert nc.unknown_key_warnings(names, known) == [
        'DIRECT_ROUTNG is not a key of kubeasz.network.flannel and is ignored; did you mean DIRECT_ROUTING?',
        'FLANNEL_BACKNED is not a key of kubeasz.network.flannel and is ignored; did you mean FLANNEL_BACKEND?',
        'FLANNEL_FOO is not a key of kubeasz.network.flannel and is ignored; known FLANNEL_* keys are listed '
        'in ansible-doc -t role kubeasz.network.flannel']


# ------------------------------------------------------------------ dual-stack and IPv6-only kubeasz configs

DUAL = {'CLUSTER_CIDR_IPV6': 'fd00:20::/56', 'NODE_CIDR_LEN_IPV6': 64}
ONLY6 = {'CLUSTER_CIDR_IPV6': 'fd00:20::/56', 'NODE_CIDR_LEN_IPV6': 64, 'FLANNEL_ENABLE_IPV4': False,
         'SERVICE_CIDR': 'fd00:10::/108', 'CLUSTER_CIDR': ''}


def test_ipv4_only_cluster_dict_has_ipv6_keys_empty():
    d = load_cluster_config(cfg()).as_dict()
    assert d['families'] == ['ipv4']
    assert (d['ipv6_network'], d['ipv6_subnet_len'], d['ipv6_subnet_min'], d['ipv6_subnet_max']) == (None,) * 4
    assert (d['network'], d['subnet_len'], d['service_cidr']) == ('172.20.0.0/16', 24, '10.68.0.0/16')


def test_dual_stack_config():
    cc = load_cluster_config(cfg(SERVICE_CIDR='10.68.0.0/16,fd00:10::/108', **DUAL))
    assert cc.net_conf.families == ('ipv4', 'ipv6')
    assert cc.service_cidr_ipv6 == ipaddress.IPv6Network('fd00:10::/108')
    d = cc.as_dict()
    assert d['families'] == ['ipv4', 'ipv6']
    assert (d['network'], d['ipv6_network'], d['ipv6_subnet_len']) == ('172.20.0.0/16', 'fd00:20::/56', 64)
    assert (d['ipv6_subnet_min'], d['ipv6_subnet_max']) == ('fd00:20:0:1::/64', 'fd00:20:0:ff::/64')
    assert d['service_cidr'] == '10.68.0.0/16,fd00:10::/108'
    assert dumps(to_net_conf(cc.net_conf)) == (
        '{\n'
        '  "Network": "172.20.0.0/16",\n'
        '  "EnableIPv6": true,\n'
        '  "IPv6Network": "fd00:20::/56",\n'
        '  "EnableNFTables": false,\n'
        '  "Backend": {\n'
        '    "Type": "vxlan"\n'
        '  }\n'
        '}\n')


def test_dual_stack_with_ipv4_service_cidr_only_is_fine():
    assert load_cluster_config(cfg(**DUAL)).as_dict()['service_cidr'] == '10.68.0.0/16'


def test_dual_stack_non_defaults_render_ipv6_keys():
    c = cfg(CLUSTER_CIDR_IPV6='fd00:20::/48', NODE_CIDR_LEN_IPV6='60', FLANNEL_SUBNET_MIN_IPV6='fd00:20:0:20::',
            FLANNEL_SUBNET_MAX_IPV6='fd00:20:0:f0::/60')
    out = to_net_conf(from_cluster_config(c))
    assert json.dumps(out) == (
        '{"Network": "172.20.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:20::/48", "IPv6SubnetLen": 60, '
        '"IPv6SubnetMin": "fd00:20:0:20::", "IPv6SubnetMax": "fd00:20:0:f0::", "EnableNFTables": false, '
        '"Backend": {"Type": "vxlan"}}')
    assert parse_net_conf(out) == from_cluster_config(c)


def test_unset_node_cidr_len_ipv6_follows_flannel():
    assert from_cluster_config(cfg(CLUSTER_CIDR_IPV6='fd00:20::/56')).ipv6_subnet_len == 64
    assert from_cluster_config(cfg(CLUSTER_CIDR_IPV6='fd00:20::/120')).ipv6_subnet_len == 122


def test_ipv6_only_config():
    cc = load_cluster_config(cfg(**ONLY6))
    assert cc.net_conf.families == ('ipv6',)
    assert cc.warnings == ()
    d = cc.as_dict()
    assert d['families'] == ['ipv6']
    assert (d['network'], d['subnet_len'], d['subnet_min'], d['subnet_max']) == (None,) * 4
    assert (d['ipv6_network'], d['service_cidr']) == ('fd00:20::/56', 'fd00:10::/108')
    assert json.dumps(to_net_conf(cc.net_conf)) == (
        '{"EnableIPv4": false, "EnableIPv6": true, "IPv6Network": "fd00:20::/56", "EnableNFTables": false, '
        '"Backend": {"Type": "vxlan"}}')


def test_ipv6_only_ignores_ipv4_keys_with_warnings():
    c = cfg(FLANNEL_SUBNET_MIN='172.20.9.0', NODE_CIDR_LEN=99, **ONLY6)
    c['CLUSTER_CIDR'] = '172.20.0.0/16'
    cc = load_cluster_config(c)
    assert cc.warnings == (
        "CLUSTER_CIDR '172.20.0.0/16' is ignored: FLANNEL_ENABLE_IPV4 is false (IPv6-only), the pod network "
        'is CLUSTER_CIDR_IPV6',
        'FLANNEL_SUBNET_MIN is ignored: FLANNEL_ENABLE_IPV4 is false (IPv6-only)')
    # kubeasz may hold the IPv6 pod network in CLUSTER_CIDR too (kube-controller-manager --cluster-cidr)
    c['CLUSTER_CIDR'] = 'fd00:20::/56'
    assert load_cluster_config(c).warnings == (
        'FLANNEL_SUBNET_MIN is ignored: FLANNEL_ENABLE_IPV4 is false (IPv6-only)',)


def test_ipv6_bounds_without_ipv6_are_warned():
    cc = load_cluster_config(cfg(FLANNEL_SUBNET_MAX_IPV6='fd00:20:0:9::'))
    assert cc.warnings == ('FLANNEL_SUBNET_MAX_IPV6 is ignored: CLUSTER_CIDR_IPV6 is not set (no IPv6 pods)',)


@pytest.mark.parametrize('store, dataplane', [('file', 'ansible'), ('kube', 'ansible'), ('', 'flanneld'),
                                              ('kube', 'flanneld')])
def test_ipv6_only_stores_that_work(store, dataplane):
    cc = load_cluster_config(cfg(FLANNEL_SUBNET_STORE=store, FLANNEL_DATAPLANE=dataplane, **ONLY6))
    assert cc.store == (store or 'kube')


def test_ipv6_only_with_etcd_is_refused_naming_both_keys():
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(FLANNEL_SUBNET_STORE='etcd', FLANNEL_DATAPLANE='ansible', **ONLY6))
    assert exc.value.problems == [
        'FLANNEL_SUBNET_STORE: "etcd" cannot hold IPv6-only leases with FLANNEL_ENABLE_IPV4: false '
        "(flannel's etcd registry keys every lease by its IPv4 subnet); write FLANNEL_SUBNET_STORE: "
        '"file" or "kube", or FLANNEL_ENABLE_IPV4: true with an IPv4 CLUSTER_CIDR (dual-stack)']
    cc = load_cluster_config(cfg(FLANNEL_SUBNET_STORE='etcd', FLANNEL_DATAPLANE='ansible', **DUAL))
    assert cc.store == 'etcd'


BAD6 = [
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00:20::1/56'},
     'CLUSTER_CIDR_IPV6: \'fd00:20::1/56\' has host bits set; write "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00:0020::/56'},
     'CLUSTER_CIDR_IPV6: \'fd00:0020::/56\' is not in canonical form; write "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': '10.1.0.0/16'},
     'CLUSTER_CIDR_IPV6: \'10.1.0.0/16\' is not an IPv6 CIDR; write one such as "fd00:20::/56" '
     '(IPv4 pods take CLUSTER_CIDR)'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00:20::'},
     'CLUSTER_CIDR_IPV6: \'fd00:20::\' has no prefix length; write a CIDR such as "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00:20::/129'},
     'CLUSTER_CIDR_IPV6: \'fd00:20::/129\' is not an IPv6 CIDR; write one such as "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00::/48,fd01::/48'},
     'CLUSTER_CIDR_IPV6: \'fd00::/48,fd01::/48\' holds 2 networks; write one IPv6 CIDR such as "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fe80::/64'},
     "CLUSTER_CIDR_IPV6: 'fe80::/64' overlaps the link-local range fe80::/10, which pods and services cannot "
     'use; write a private range such as "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'ff00::/16'}, 'the multicast range ff00::/8'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': '::/64'}, 'the unspecified address ::/128'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': '::ffff:0:0/96'}, 'the IPv4-mapped range'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00::/125', 'NODE_CIDR_LEN_IPV6': None},
     'CLUSTER_CIDR_IPV6: fd00::/125 is too small for flannel (the prefix must be /124 or shorter); '
     'write a larger network such as "fd00:20::/56"'),
    ('CLUSTER_CIDR_IPV6', {'CLUSTER_CIDR_IPV6': 'fd00::/126', 'NODE_CIDR_LEN_IPV6': 126},
     'CLUSTER_CIDR_IPV6: fd00::/126 is too small for flannel: it must hold at least four node subnets of at '
     'most /126; write a /124 or larger network'),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': 'fd00::/48'},
     "CLUSTER_CIDR: 'fd00::/48' is an IPv6 CIDR; write an IPv4 one here, such as \"172.20.0.0/16\", and the "
     'IPv6 one as CLUSTER_CIDR_IPV6: "fd00::/48" in config.yml (with FLANNEL_ENABLE_IPV4: false for IPv6-only)'),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0/16,fd00::/48'},
     "CLUSTER_CIDR: '172.20.0.0/16,fd00::/48' holds an IPv4 and an IPv6 network; write the IPv4 one here, "
     'CLUSTER_CIDR="172.20.0.0/16", and the IPv6 one as CLUSTER_CIDR_IPV6: "fd00::/48" in config.yml (dual-stack)'),
    ('NODE_CIDR_LEN_IPV6', {'NODE_CIDR_LEN_IPV6': 127},
     'NODE_CIDR_LEN_IPV6: 127 is too long for flannel (at most 126); write a value between 58 and 126 for '
     'CLUSTER_CIDR_IPV6 fd00:20::/56'),
    ('NODE_CIDR_LEN_IPV6', {'NODE_CIDR_LEN_IPV6': 57},
     'NODE_CIDR_LEN_IPV6: 57 leaves room for fewer than four node subnets in CLUSTER_CIDR_IPV6 fd00:20::/56; '
     'write a value between 58 and 126'),
    ('NODE_CIDR_LEN_IPV6', {'NODE_CIDR_LEN_IPV6': 'big'},
     "NODE_CIDR_LEN_IPV6: 'big' is not an integer; write a value between 58 and 126 for CLUSTER_CIDR_IPV6 "
     'fd00:20::/56'),
    ('FLANNEL_SUBNET_MIN_IPV6', {'FLANNEL_SUBNET_MIN_IPV6': 'fd00:21::'},
     "FLANNEL_SUBNET_MIN_IPV6: 'fd00:21::' is outside CLUSTER_CIDR_IPV6 fd00:20::/56; write an address inside it"),
    ('FLANNEL_SUBNET_MIN_IPV6', {'FLANNEL_SUBNET_MIN_IPV6': 'fd00:20:0:5::7'},
     "FLANNEL_SUBNET_MIN_IPV6: 'fd00:20:0:5::7' is not on a /64 boundary (NODE_CIDR_LEN_IPV6); "
     'write "fd00:20:0:5::"'),
    ('FLANNEL_SUBNET_MIN_IPV6', {'FLANNEL_SUBNET_MIN_IPV6': '172.20.1.0'},
     "FLANNEL_SUBNET_MIN_IPV6: '172.20.1.0' is not an IPv6 address; write the first address of a node subnet "
     'inside CLUSTER_CIDR_IPV6 fd00:20::/56'),
    ('FLANNEL_SUBNET_MAX_IPV6', {'FLANNEL_SUBNET_MAX_IPV6': 'fd00:20:0:9::/80'},
     "FLANNEL_SUBNET_MAX_IPV6: 'fd00:20:0:9::/80' has prefix /80 but NODE_CIDR_LEN_IPV6 is 64; "
     'write "fd00:20:0:9::/64"'),
    ('FLANNEL_SUBNET_MIN_IPV6', {'FLANNEL_SUBNET_MIN_IPV6': 'fd00:20:0:9::', 'FLANNEL_SUBNET_MAX_IPV6': 'fd00:20:0:2::'},
     'FLANNEL_SUBNET_MIN_IPV6: fd00:20:0:9:: is above FLANNEL_SUBNET_MAX_IPV6 fd00:20:0:2::; swap them: write '
     'FLANNEL_SUBNET_MIN_IPV6: "fd00:20:0:2::" and FLANNEL_SUBNET_MAX_IPV6: "fd00:20:0:9::"'),
    ('FLANNEL_ENABLE_IPV4', {'FLANNEL_ENABLE_IPV4': 'false'},
     "FLANNEL_ENABLE_IPV4: 'false' is not a boolean; write FLANNEL_ENABLE_IPV4: false (a YAML boolean, no "
     'quotes) in config.yml'),
    ('FLANNEL_ENABLE_IPV4', {'FLANNEL_ENABLE_IPV4': False, 'CLUSTER_CIDR_IPV6': None, 'SERVICE_CIDR': None},
     'FLANNEL_ENABLE_IPV4: false (IPv6-only) needs an IPv6 pod network; write CLUSTER_CIDR_IPV6: '
     '"fd00:20::/56" in config.yml, or FLANNEL_ENABLE_IPV4: true'),
    ('FLANNEL_ENABLE_IPV4', {'FLANNEL_ENABLE_IPV4': False, 'CLUSTER_CIDR_IPV6': None, 'SERVICE_CIDR': None,
                             'CLUSTER_CIDR': 'fd00:30::/56'},
     'FLANNEL_ENABLE_IPV4: false (IPv6-only) needs an IPv6 pod network; write CLUSTER_CIDR_IPV6: '
     '"fd00:30::/56" in config.yml, or FLANNEL_ENABLE_IPV4: true'),
    ('SERVICE_CIDR', {'SERVICE_CIDR': 'fd00:20:0:ff::/108'},
     'SERVICE_CIDR: fd00:20:0:ff::/108 overlaps CLUSTER_CIDR_IPV6 fd00:20::/56; write a range outside it, '
     'e.g. "fd00:10::/108"'),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '10.68.0.0/16,10.69.0.0/16'},
     "SERVICE_CIDR: '10.68.0.0/16,10.69.0.0/16' holds two IPv4 networks; write at most one network per address "
     'family, e.g. "10.68.0.0/16,fd00:10::/108"'),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '10.68.0.0/16,fd00:10::1/108'},
     'SERVICE_CIDR: \'fd00:10::1/108\' has host bits set; write "fd00:10::/108"'),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '10.68.0.0/16', 'FLANNEL_ENABLE_IPV4': False},
     "SERVICE_CIDR: '10.68.0.0/16': the IPv4 service range 10.68.0.0/16 is unreachable from IPv6-only pods "
     '(FLANNEL_ENABLE_IPV4: false); write an IPv6 CIDR such as "fd00:10::/108"'),
]


@pytest.mark.parametrize('key, override, text', BAD6, ids=['%s-%d' % (k, i) for i, (k, d1, d2) in enumerate(BAD6)])
def test_bad_ipv6_config_names_the_key_and_the_fix(key, override, text):
    c = cfg(**DUAL)
    c.update(override)
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(c)
    mine = [p for p in exc.value.problems if p.startswith(key + ':')]
    assert mine and text in mine[0], exc.value.problems
    assert 'write' in mine[0]


def test_ipv6_service_cidr_needs_ipv6_pods():
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(SERVICE_CIDR='fd00:10::/108'))
    assert exc.value.problems == [
        "SERVICE_CIDR: 'fd00:10::/108': the IPv6 service range fd00:10::/108 needs IPv6 pods; set "
        'CLUSTER_CIDR_IPV6 in config.yml, or write an IPv4 CIDR such as "10.68.0.0/16"']


def test_dual_stack_reports_problems_of_both_families_at_once():
    bad = cfg(CLUSTER_CIDR='172.20.1.0/16', NODE_CIDR_LEN=31, CLUSTER_CIDR_IPV6='fd00:20::/56',
              NODE_CIDR_LEN_IPV6=127, FLANNEL_SUBNET_MIN_IPV6='x', FLANNEL_ENABLE_IPV4='yes')
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(bad)
    keys = [p.split(':')[0] for p in exc.value.problems]
    assert keys == ['FLANNEL_ENABLE_IPV4', 'CLUSTER_CIDR', 'NODE_CIDR_LEN', 'NODE_CIDR_LEN_IPV6',
                    'FLANNEL_SUBNET_MIN_IPV6']


def test_node_addresses_are_checked_per_family():
    addresses = {'node1': 'fd00:20:0:7::5', 'node2': 'fd00:10::9', 'node3': '172.20.3.4', 'node4': 'fd53::11'}
    with pytest.raises(ConfigError) as err:
        load_cluster_config(cfg(SERVICE_CIDR='10.68.0.0/16,fd00:10::/108', **DUAL), addresses)
    assert err.value.problems == [
        'CLUSTER_CIDR_IPV6: fd00:20::/56 holds the address fd00:20:0:7::5 of node node1; write a range outside '
        'the node network in config.yml',
        'SERVICE_CIDR: fd00:10::/108 holds the address fd00:10::9 of node node2; write a range outside the '
        'node network in clusters/<name>/hosts [all:vars]',
        'CLUSTER_CIDR: 172.20.0.0/16 holds the address 172.20.3.4 of node node3; write a range outside the '
        'node network in clusters/<name>/hosts [all:vars]']
    assert load_cluster_config(cfg(**DUAL), {'node4': 'fd53::11', 'node5': '198.18.0.13'}).net_conf.enable_ipv6


def test_render_dual_stack_checksum_differs_from_ipv4_only():
    a, b = render(cfg()), render(cfg(**DUAL))
    assert a['checksum'] != b['checksum']
    assert b['cluster']['families'] == ['ipv4', 'ipv6']
    assert json.loads(b['net_conf_json'])['IPv6Network'] == 'fd00:20::/56'


# ------------------------------------------------------------------ CNI delegate conflist, dual-stack

def _ipam(env):
    return delegate_conflist(env)['plugins'][0]['ipam']


def test_delegate_conflist_dual_stack_one_range_and_route_per_family_ipv4_first():
    env = {'FLANNEL_NETWORK': '172.20.0.0/16', 'FLANNEL_SUBNET': '172.20.1.1/24',
           'FLANNEL_IPV6_NETWORK': 'fd00:20::/56', 'FLANNEL_IPV6_SUBNET': 'fd00:20:0:1::1/64',
           'FLANNEL_MTU': '1450', 'FLANNEL_IPMASQ': 'true'}
    out = delegate_conflist(env)
    assert out['plugins'][0]['ipam'] == {
        'type': 'host-local',
        'ranges': [[{'subnet': '172.20.1.0/24', 'gateway': '172.20.1.1'}],
                   [{'subnet': 'fd00:20:0:1::/64', 'gateway': 'fd00:20:0:1::1'}]],
        'routes': [{'dst': '172.20.0.0/16'}, {'dst': 'fd00:20::/56'}]}
    v4 = dict((k, v) for k, v in env.items() if 'IPV6' not in k)
    rest = dict(out['plugins'][0], ipam=None)
    assert rest == dict(delegate_conflist(v4)['plugins'][0], ipam=None)   # only ipam differs


def test_delegate_conflist_ipv6_only():
    env = {'FLANNEL_IPV6_NETWORK': 'fd00:20::/56', 'FLANNEL_IPV6_SUBNET': 'fd00:20:0:5::1/64',
           'FLANNEL_MTU': 1430, 'FLANNEL_IPMASQ': False}
    ipam = _ipam(env)
    assert ipam['ranges'] == [[{'subnet': 'fd00:20:0:5::/64', 'gateway': 'fd00:20:0:5::1'}]]
    assert ipam['routes'] == [{'dst': 'fd00:20::/56'}]
    assert delegate_conflist(env)['plugins'][0]['ipMasq'] is True


def test_delegate_conflist_of_a_written_subnet_env():
    from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import parse_subnet_env
    text = ('FLANNEL_NETWORK=10.0.0.0/16\nFLANNEL_SUBNET=10.0.3.1/24\nFLANNEL_IPV6_NETWORK=fd00::/48\n'
            'FLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=true\n')
    assert _ipam(parse_subnet_env(text))['routes'] == [{'dst': '10.0.0.0/16'}, {'dst': 'fd00::/48'}]


@pytest.mark.parametrize('env, text', [
    ({'FLANNEL_IPV6_NETWORK': 'fd00:20::/56'}, 'holds FLANNEL_IPV6_NETWORK but not FLANNEL_IPV6_SUBNET'),
    ({'FLANNEL_SUBNET': '10.0.5.1/24'}, 'holds FLANNEL_SUBNET but not FLANNEL_NETWORK'),
    ({}, 'holds neither'),
    ({'FLANNEL_IPV6_NETWORK': '10.0.0.0/16', 'FLANNEL_IPV6_SUBNET': '10.0.5.1/24'}, 'IPv6'),
    ({'FLANNEL_NETWORK': 'fd00::/48', 'FLANNEL_SUBNET': 'fd00::1/64'}, 'IPv4'),
])
def test_delegate_conflist_rejects_incomplete_or_wrong_family(env, text):
    env = dict(env, FLANNEL_MTU='1450', FLANNEL_IPMASQ='true')
    with pytest.raises(ValueError) as exc:
        delegate_conflist(env)
    assert text in str(exc.value)


# ------------------------------------------------------------------ kubeasz's net-conf and nftables

def kubeasz_template_net_conf(cluster_cidr, backend, direct_routing):
    """What kubeasz 3.7's roles/flannel/templates/kube-flannel.yaml.j2 renders as net-conf.json:
    Network, "EnableNFTables": false whatever PROXY_MODE is, Backend Type and, with vxlan and
    DIRECT_ROUTING, "DirectRouting": true (written here from its template's rules, not copied)."""
    out = {'Type': backend}
    if backend == 'vxlan' and direct_routing:
        out['DirectRouting'] = True
    return {'Network': cluster_cidr, 'EnableNFTables': False, 'Backend': out}


@pytest.mark.parametrize('backend, direct', [('vxlan', False), ('vxlan', True), ('host-gw', False)])
@pytest.mark.parametrize('proxy', ['nftables', 'ipvs', 'iptables'])
def test_kubeasz_example_renders_kubeasz_net_conf(backend, direct, proxy):
    """kubeasz 3.7.0's example: CLUSTER_NETWORK="flannel", PROXY_MODE="nftables" (its default):
    the same net-conf.json as kubeasz's own template, so taking over its DaemonSet keeps iptables."""
    c = cfg(PROXY_MODE=proxy, FLANNEL_BACKEND=backend, DIRECT_ROUTING=direct)
    assert json.loads(render(c)['net_conf_json']) == kubeasz_template_net_conf('172.20.0.0/16', backend, direct)


@pytest.mark.parametrize('value, proxy, enabled', [
    (None, 'nftables', False), ('', 'nftables', False), (False, 'nftables', False),
    (True, 'ipvs', True), (True, 'nftables', True),
    ('PROXY_MODE', 'nftables', True), ('proxy_mode', 'nftables', True), (' PROXY_MODE ', 'nftables', True),
    ('PROXY_MODE', 'ipvs', False), ('PROXY_MODE', 'iptables', False), ('PROXY_MODE', None, False),
])
def test_flannel_enable_nftables(value, proxy, enabled):
    c = cfg(FLANNEL_ENABLE_NFTABLES=value, PROXY_MODE=proxy)
    cc = load_cluster_config(c)
    assert cc.net_conf.enable_nftables is enabled
    assert cc.as_dict()['enable_nftables'] is enabled
    assert json.loads(render(c)['net_conf_json'])['EnableNFTables'] is enabled


def test_flannel_enable_nftables_message_says_what_to_write():
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg(FLANNEL_ENABLE_NFTABLES='nftables'))
    assert exc.value.problems == [
        "FLANNEL_ENABLE_NFTABLES: 'nftables' is not valid; write false (flannel masquerades with iptables, "
        'as kubeasz renders it), true (nftables) or "PROXY_MODE" (nftables when PROXY_MODE is "nftables") '
        'in config.yml']


def test_nftables_switch_changes_the_checksum():
    """The checksum on the pod template follows EnableNFTables: the DaemonSet rolls on a switch."""
    sums = set(render(cfg(FLANNEL_ENABLE_NFTABLES=v))['checksum'] for v in (False, True))
    assert len(sums) == 2
