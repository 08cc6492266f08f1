# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the role gets from flannel_config, the node check, the route guard's state document and
the drift records: the role's decisions made once, in Python."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import re
from collections import namedtuple

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import guard_decision as decide
from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift, drift_of_diffs
from ansible_collections.kubeasz.network.plugins.module_utils.entry import nodecheck
from ansible_collections.kubeasz.network.plugins.module_utils.entry.roleconfig import role_values
from ansible_collections.kubeasz.network.plugins.module_utils.model.clusterconfig import load_cluster_config
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import load_state, state_text
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import subnet_env_text

BASE = {'CLUSTER_NETWORK': 'flannel', 'CLUSTER_CIDR': '172.20.0.0/16'}
DUAL = {'CLUSTER_CIDR_IPV6': 'fd00:20::/56'}
V6_ONLY = dict(DUAL, FLANNEL_ENABLE_IPV4=False, CLUSTER_CIDR='')
Sample = namedtuple('Sample', ['subnet', 'subnet6'])


def values(**keys):
    return role_values(load_cluster_config(dict(BASE, **keys)))


def written(nc_keys, mtu, ip_masq=True, subnet='172.20.7.0/24', subnet6='fd00:20:0:7::/64'):
    """subnet.env as flanneld (and flannel_subnet) writes it for a node."""
    nc = load_cluster_config(dict(BASE, **nc_keys)).net_conf
    return subnet_env_text(nc, Sample(subnet, subnet6), mtu, ip_masq)


def test_each_family_has_its_device_networks_and_module_states():
    fam = values(**DUAL)['family']
    assert fam['ipv4'] == {'family': 'ipv4', 'on': True, 'network': '172.20.0.0/16', 'route_network': '172.20.0.0/16',
                           'state': 'present', 'link_state': 'present', 'device': 'flannel.1',
                           'lease_keys': {'subnet': 'subnet', 'public_ip': 'public_ip', 'vtep_mac': 'vtep_mac'}}
    assert fam['ipv6']['device'] == 'flannel-v6.1' and fam['ipv6']['lease_keys']['subnet'] == 'subnet6'
    off = values()['family']['ipv6']
    assert (off['on'], off['network'], off['route_network'], off['state'], off['link_state']) == \
        (False, None, '::/0', 'absent', 'absent')
    assert values(**V6_ONLY)['family']['ipv4']['route_network'] == '0.0.0.0/0'


def test_the_backend_is_decided_once():
    vxlan, hostgw = values(FLANNEL_VNI=4, FLANNEL_ENABLE_NFTABLES=True), values(FLANNEL_BACKEND='host-gw')
    assert (vxlan['host_gw'], vxlan['flanneld']['link_state'], vxlan['flanneld']['device']) == (False, 'prune', 'flannel.4')
    assert vxlan['rules_mode'] == 'nftables' and hostgw['rules_mode'] == 'iptables'
    assert (hostgw['host_gw'], hostgw['flanneld']['link_state'], hostgw['flanneld']['device']) == (True, 'absent', None)
    assert hostgw['family']['ipv4']['link_state'] == 'absent' and hostgw['family']['ipv4']['state'] == 'present'
    assert values(**V6_ONLY)['flanneld']['device'] == 'flannel-v6.1'


@pytest.mark.parametrize('keys, mtu', [({}, None), ({'FLANNEL_MTU': 1400}, 1350), (DUAL, None), (V6_ONLY, None),
                                       ({'FLANNEL_BACKEND': 'host-gw', 'FLANNEL_MTU': 1400}, None)])
def test_the_expected_subnet_env_matches_what_is_written(keys, mtu):
    flanneld = values(**keys)['flanneld']
    assert flanneld['mtu'] == mtu
    pattern = re.compile(flanneld['subnet_env_regex'], re.M)
    assert pattern.search(written(keys, mtu or 1450))
    assert not pattern.search(written(keys, mtu or 1450, ip_masq=False))
    if mtu:
        assert not pattern.search(written(keys, mtu + 1))
    if 'ipv6' not in load_cluster_config(dict(BASE, **keys)).net_conf.families:
        # flanneld writes empty IPv6 lines without IPv6
        text = written(keys, mtu or 1450).replace('FLANNEL_MTU', 'FLANNEL_IPV6_NETWORK=\nFLANNEL_MTU')
        assert pattern.search(text)
    assert not pattern.search(written(dict(keys, NODE_CIDR_LEN=25) if 'ipv4' in load_cluster_config(
        dict(BASE, **keys)).net_conf.families else dict(keys, NODE_CIDR_LEN_IPV6=60), mtu or 1450,
        subnet='172.20.7.0/25', subnet6='fd00:20:0:70::/60'))
    assert 'FLANNEL_IPMASQ=true' in flanneld['subnet_env_summary']


def test_drift_records_name_what_is_stale_and_missing():
    assert drift('flannel.1', ['a', 'b'], ['b', 'c']) == {'what': 'flannel.1', 'stale': ['a'], 'missing': ['c']}
    assert drift_of_diffs([{'before': 'x\n', 'after': 'x\n', 'before_header': 'same'},
                           {'before': 'x\ny\n', 'after': 'x\nz\n', 'before_header': '/run/flannel/subnet.env'}]) == [
        {'what': '/run/flannel/subnet.env', 'stale': ['y'], 'missing': ['z']}]


PARAMS = {'hold': None, 'families': ['ipv4'], 'default_cni_conf': '/nonexistent/10-default.conf',
          'runner': 'systemd', 'guard_dir': '/nonexistent/guard', 'guard_unit': '/nonexistent/unit',
          'guard_state': '/nonexistent/routes.json', 'guard_pid_file': '/nonexistent/pid',
          'guard_log_file': '/nonexistent/log'}


class Node:
    """A fake node for node_check: the commands it answers, and every command asked."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, argv, data=None):
        self.calls.append(argv)
        for prefix, answer in self.answers.items():
            if ' '.join(argv).startswith(prefix):
                return answer
        return 1, '', 'no'


def test_node_check_finds_ipv6_state_and_the_guard(tmp_path):
    (tmp_path / 'guard').mkdir()
    (tmp_path / 'guard' / 'flannel-route-guard').write_text('guard')
    (tmp_path / 'hold' / 'x').parent.mkdir()
    params = dict(PARAMS, guard_dir=str(tmp_path / 'guard'), hold=str(tmp_path / 'hold' / 'route-guard.hold'))
    node = Node({'ip -json -details link': (0, json.dumps([{'ifname': 'flannel-v6.1'}]), ''),
                 'systemctl is-active': (0, '', ''), 'systemctl is-enabled': (0, '', '')})
    found = nodecheck.node_check(node, params)
    assert found['families'] == ['ipv4', 'ipv6'] and found['running'] and not found['default_cni_conf']
    assert found['guard'] == hashlib.sha1(b'guard').hexdigest()
    assert found['found'] == [str(tmp_path / 'guard')] and found['unit'] == ''
    assert (tmp_path / 'hold' / 'route-guard.hold').read_text() == nodecheck.HOLD_TEXT
    # nothing there, IPv6 off: IPv4 only; check mode writes no hold
    (tmp_path / 'hold' / 'route-guard.hold').unlink()
    node = Node({'ip -json -details link': (0, '[]', ''), 'ip -6 -json route': (0, '[]', '')})
    assert nodecheck.node_check(node, params, check_mode=True)['families'] == ['ipv4']
    assert not (tmp_path / 'hold' / 'route-guard.hold').exists()
    # IPv6 on: no need to look for its state
    node = Node({})
    assert nodecheck.node_check(node, dict(PARAMS, families=['ipv6']))['families'] == ['ipv4', 'ipv6']
    assert not any(argv[:2] == ['ip', '-6'] for argv in node.calls)


ROUTES4 = [{'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'dev': None, 'onlink': False}]
ROUTES6 = [{'dst': 'fd00:20:0:2::/64', 'gateway': 'fd00:20:0:2::', 'dev': 'flannel-v6.1', 'onlink': True}]


def guard_args(**kw):
    cfg = values(**DUAL)
    args = {'wanted': True, 'node': {'guard': 'g', 'unit': 'u', 'state': '', 'running': True, 'found': []},
            'runner': 'process', 'guard_sha1': 'g', 'unit_sha1': 'other', 'backend': 'vxlan',
            'families': cfg['family'], 'lease': {'subnet': '172.20.1.0/24', 'subnet6': 'fd00:20:0:1::/64'},
            'results': {'ipv4': {'routes': {'routes': ROUTES4}, 'rules': {'spec': {}}},
                        'ipv6': {'routes': {'routes': ROUTES6}, 'rules': {}}}, 'store': 'file',
            'lease_renewal': {'endpoints': 'https://10.0.0.1:2379,https://10.0.0.2:2379', 'prefix': '/coreos.com/network'}}
    args.update(kw)
    return args


def test_the_route_guard_state_is_built_from_the_results_and_read_back():
    out = decide(guard_args())
    assert out['differs'] == {'guard': False, 'state': True, 'unit': False, 'stopped': False} and out['todo']
    state = load_state(out['state_text'])
    assert [r.dst for r in state.routes] == ['172.20.2.0/24'] and [r.dst for r in state.ipv6.routes] == ['fd00:20:0:2::/64']
    assert out['state']['lease_renewal'] is None and out['state_text'] == state_text(out['state'])
    etcd = decide(guard_args(store='etcd'))['state']['lease_renewal']
    assert etcd['endpoints'] == ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'] and etcd['subnet6'] == 'fd00:20:0:1::/64'
    # the same state on the node: nothing to do
    same = guard_args(node=dict(guard_args()['node'], state=hashlib.sha1(out['state_text'].encode()).hexdigest()))
    assert not decide(same)['todo']
    # flanneld dataplane: no routes to keep; not wanted: removed where a file is left
    assert not decide(guard_args(results=None))['todo']
    assert decide(guard_args(wanted=False, node={'found': ['/run/flannel/routes.json']}))['todo']
