# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the lease files: store/allocation.py, leasestore.py, filestore.py, state.py,
model/subnetenv.py and base/atomicfile.py (no root needed)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import multiprocessing
import os
import random
import stat
from types import SimpleNamespace

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, LeasePart, NodePart
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError, vtep_mac
from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import remove_file, write_atomic
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import (
    SUBNET_ENV_KEYS, parse_subnet_env, subnet6_of_env, subnet_env_text, subnet_of_env)
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import allocate, lease_compatible, split_peers, stale_leases
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import parse_leases, store_diff
from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state

MAC = '0e:2b:5c:11:aa:01'


def net_conf(network='172.20.0.0/16', subnet_len=24, subnet_min=None, subnet_max=None, backend='vxlan'):
    """A NetConf stand-in with flannel's defaults (allocation only needs these attributes)."""
    net = ipaddress.IPv4Network(network)
    size = 1 << (32 - subnet_len)
    smin = ipaddress.IPv4Network(subnet_min or (int(net.network_address) + size, subnet_len))
    smax = ipaddress.IPv4Network(subnet_max or (int(net.broadcast_address) + 1 - size, subnet_len))
    return SimpleNamespace(network=net, subnet_len=subnet_len, subnet_min=smin, subnet_max=smax,
                           backend=SimpleNamespace(type=backend, vni=1, mtu=0))


def lease(subnet, ip, backend='vxlan', vni=1, mac=MAC):
    if backend != 'vxlan':
        vni = mac = None
    return Lease.make(backend, vni, {IPV4: LeasePart(subnet, ip, mac)})


def node(i):
    return '198.18.0.%d' % (10 + i)


# ------------------------------------------------------------------ lease format

def test_to_store_vxlan_is_flannels_json_exactly():
    key, value = lease('172.20.1.0/24', '198.18.0.11').to_store()
    assert key == '172.20.1.0-24'
    assert value == ('{"PublicIP":"198.18.0.11","PublicIPv6":null,"BackendType":"vxlan",'
                     '"BackendData":{"VNI":1,"VtepMAC":"0e:2b:5c:11:aa:01"}}')


def test_to_store_host_gw_omits_backend_data():
    key, value = lease('172.20.2.0/24', '198.18.0.12', 'host-gw').to_store()
    assert value == '{"PublicIP":"198.18.0.12","PublicIPv6":null,"BackendType":"host-gw"}'


@pytest.mark.parametrize('backend', ['vxlan', 'host-gw'])
def test_store_round_trip(backend):
    original = lease('172.20.7.0/24', '198.18.0.17', backend)
    key, value = original.to_store()
    assert Lease.from_store(key, value) == original
    assert Lease.from_store(key, json.loads(value)) == original
    assert Lease.from_store(key, value).to_store() == (key, value)


def test_from_store_accepts_flanneld_value_with_upper_case_mac():
    value = '{"PublicIP":"192.168.2.22","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0E:2B:5C:11:AA:01"}}'
    got = Lease.from_store('172.20.3.0-24', value)
    assert got.vtep_mac == MAC and str(got.public_ip) == '192.168.2.22'


def test_as_peer_shape():
    assert lease('172.20.2.0/24', '198.18.0.12').as_peer() == {
        'subnet': '172.20.2.0/24', 'public_ip': '198.18.0.12', 'backend_type': 'vxlan',
        'vni': 1, 'vtep_mac': MAC, 'subnet6': None, 'public_ip6': None, 'vtep_mac6': None}
    assert lease('172.20.2.0/24', '198.18.0.12', 'host-gw').as_peer()['vtep_mac'] is None
    assert Lease.from_peer(lease('172.20.2.0/24', '198.18.0.12').as_peer()) == lease('172.20.2.0/24', '198.18.0.12')


GOOD = {'PublicIP': '198.18.0.11', 'PublicIPv6': None, 'BackendType': 'vxlan',
        'BackendData': {'VNI': 1, 'VtepMAC': MAC}}


@pytest.mark.parametrize('key,value', [
    ('172.20.1.0-24', '{"PublicIP": '),                                  # bad JSON
    ('172.20.1.0-24', '[]'),                                             # not an object
    ('172.20.1.0-24', dict(GOOD, PublicIP='198.18.0.300')),              # bad IP
    ('172.20.1.0-24', dict(GOOD, PublicIP='0.0.0.0')),
    ('172.20.1.0-24', dict(GOOD, PublicIP=None)),
    ('172.20.1.0-24', dict(GOOD, BackendData={'VNI': 1, 'VtepMAC': 'zz:2b:5c:11:aa:01'})),  # bad MAC
    ('172.20.1.0-24', dict(GOOD, BackendData={'VNI': 1, 'VtepMAC': '01:00:5e:00:00:01'})),  # multicast
    ('172.20.1.0-24', dict(GOOD, BackendData={'VNI': 1, 'VtepMAC': '0e:2b:5c:11:aa:01; reboot'})),
    ('172.20.1.0-24', dict(GOOD, BackendData={'VNI': 'x', 'VtepMAC': MAC})),
    ('172.20.1.0-24', dict(GOOD, BackendData=None)),                     # vxlan without data
    ('172.20.1.0-24', dict(GOOD, BackendType='udp')),
    ('172.20.1.5-24', GOOD),                                             # subnet does not match key
    ('172.20.1.0-33', GOOD),
    ('172.20.1.0/24', GOOD),
    ('172.020.1.0-24', GOOD),
    ('x', GOOD),
])
def test_corrupt_leases_are_rejected(key, value):
    with pytest.raises(LeaseError):
        Lease.from_store(key, value)


def test_parse_leases_skips_corrupt_with_warning_and_reserves_their_subnet():
    entries = {'172.20.1.0-24': '{"oops', '172.20.2.0-24': GOOD, 'junk': {}}
    valid, warnings, reserved = parse_leases(entries)
    assert [str(x.subnet) for x in valid] == ['172.20.2.0/24']
    assert len(warnings) == 2 and all('corrupt' in w for w in warnings)
    assert reserved == [ipaddress.IPv4Network('172.20.1.0/24')]


# ------------------------------------------------------------------ allocation

def test_allocate_lowest_free_from_subnet_min():
    nc = net_conf()
    got = allocate(nc, [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))
    assert str(got.subnet) == '172.20.1.0/24'   # SubnetMin: the first subnet is never used
    taken = [lease('172.20.1.0/24', node(2)), lease('172.20.3.0/24', node(3))]
    assert str(allocate(nc, taken, Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)})).subnet) == '172.20.2.0/24'


def test_allocate_reuses_the_lease_of_our_public_ip_and_updates_backend_data():
    nc = net_conf()
    mine = lease('172.20.9.0/24', node(1), 'host-gw')
    got = allocate(nc, [lease('172.20.1.0/24', node(2)), mine], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC, '172.20.5.0/24')}))
    assert got == lease('172.20.9.0/24', node(1))


def test_allocate_drops_our_lease_when_incompatible():
    nc = net_conf(subnet_max='172.20.8.0/24')
    mine = lease('172.20.9.0/24', node(1))     # above SubnetMax now
    assert str(allocate(nc, [mine], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)})).subnet) == '172.20.1.0/24'
    nc26 = net_conf(subnet_len=26)
    assert allocate(nc26, [lease('172.20.1.0/24', node(1))], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)})).network.prefixlen == 26


def test_allocate_prefers_subnet_env_subnet_when_free_and_valid():
    nc = net_conf()
    assert str(allocate(nc, [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC, '172.20.42.0/24')})).subnet) == '172.20.42.0/24'
    others = [lease('172.20.42.0/24', node(2))]
    assert str(allocate(nc, others, Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC, '172.20.42.0/24')})).subnet) == '172.20.1.0/24'
    for bad in ('172.20.0.0/24', '10.0.0.0/24', '172.20.4.0/25'):     # below SubnetMin, outside, wrong len
        assert str(allocate(nc, [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC, bad)})).subnet) == '172.20.1.0/24'


def test_allocate_honours_subnet_min_and_max():
    nc = net_conf(subnet_min='172.20.10.0/24', subnet_max='172.20.11.0/24')
    a = allocate(nc, [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))
    b = allocate(nc, [a], Claim('vxlan', 1, {IPV4: NodePart(node(2), MAC)}))
    assert [str(a.subnet), str(b.subnet)] == ['172.20.10.0/24', '172.20.11.0/24']
    with pytest.raises(LeaseError) as err:
        allocate(nc, [a, b], Claim('vxlan', 1, {IPV4: NodePart(node(3), MAC)}))
    assert str(err.value) == ('out of subnets: network 172.20.0.0/16 has 2 subnets of /24 between '
                              '172.20.10.0/24 and 172.20.11.0/24 and all are leased')


def test_out_of_subnets_names_network_and_count():
    nc = net_conf('10.1.0.0/28', subnet_len=30)   # 4 subnets, SubnetMin is the second: 3 usable
    held = []
    for i in range(3):
        held.append(allocate(nc, held, Claim('host-gw', None, {IPV4: NodePart(node(i))})))
    assert sorted(str(x.subnet) for x in held) == ['10.1.0.12/30', '10.1.0.4/30', '10.1.0.8/30']
    with pytest.raises(LeaseError, match=r'out of subnets: network 10\.1\.0\.0/28 has 3 subnets of /30'):
        allocate(nc, held, Claim('host-gw', None, {IPV4: NodePart(node(9))}))


def test_allocate_skips_reserved_but_not_leases_that_cannot_be_this_configs():
    nc = net_conf()
    # another SubnetLen, the whole network, outside it: flanneld ignores them, so do we
    foreign = [lease('172.20.0.0/23', node(2)), lease('172.20.0.0/16', node(3)), lease('10.9.0.0/24', node(4))]
    reserved = [ipaddress.IPv4Network('172.20.1.0/24'), ipaddress.IPv4Network('172.20.0.0/18')]
    got = allocate(nc, foreign, Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}), reserved=reserved)
    assert str(got.subnet) == '172.20.2.0/24'


def test_never_one_subnet_for_two_nodes_and_stable_under_reordering():
    nc = net_conf('172.20.0.0/20')
    held = []
    for i in range(15):
        held.append(allocate(nc, held, Claim('vxlan', 1, {IPV4: NodePart(node(i), MAC)})))
    assert len({x.subnet for x in held}) == 15
    for seed in range(5):
        shuffled = list(held)
        random.Random(seed).shuffle(shuffled)
        for i in range(15):
            assert allocate(nc, shuffled, Claim('vxlan', 1, {IPV4: NodePart(node(i), MAC)})) == held[i]
    with pytest.raises(LeaseError, match='out of subnets'):
        allocate(nc, held, Claim('vxlan', 1, {IPV4: NodePart(node(99), MAC)}))


def test_allocate_is_fast_on_a_huge_range():
    nc = net_conf('10.0.0.0/8', subnet_len=30)        # 4 million candidates
    held = [lease(ipaddress.IPv4Network((int(ipaddress.IPv4Address('10.0.0.4')) + 4 * i, 30)), '198.18.%d.%d' % (i // 200, i % 200 + 1))
            for i in range(2000)]
    got = allocate(nc, held, Claim('vxlan', 1, {IPV4: NodePart('198.19.0.1', MAC)}))
    assert got.network.network_address == ipaddress.IPv4Address('10.0.0.4') + 4 * 2000


def test_allocate_validates_its_inputs():
    with pytest.raises(LeaseError):
        allocate(net_conf(), [], Claim('vxlan', 1, {IPV4: NodePart('not-an-ip', MAC)}))
    with pytest.raises(LeaseError):
        allocate(net_conf(), [], Claim('vxlan', 1, {IPV4: NodePart(node(1), 'bad')}))
    with pytest.raises(LeaseError):
        allocate(net_conf(), [], Claim('udp', None, {IPV4: NodePart(node(1))}))


# ------------------------------------------------------------------ subnet.env

def test_subnet_env_text_matches_flannel_md_example():
    text = subnet_env_text(net_conf(), lease('172.20.1.0/24', node(1)), 1450, True)
    assert text == ('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\n'
                    'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')
    assert parse_subnet_env(text) == {'FLANNEL_NETWORK': '172.20.0.0/16', 'FLANNEL_SUBNET': '172.20.1.1/24',
                                      'FLANNEL_MTU': '1450', 'FLANNEL_IPMASQ': 'true'}
    assert str(subnet_of_env(parse_subnet_env(text))) == '172.20.1.0/24'


def test_subnet_env_ipmasq_false_and_parse_tolerates_noise():
    text = subnet_env_text(net_conf('10.244.0.0/16'), lease('10.244.3.0/24', node(1), 'host-gw'), 1500, False)
    assert text.endswith('FLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n')
    assert parse_subnet_env('# c\n\nFLANNEL_SUBNET="10.0.0.1/24"\r\nbogus\n') == {'FLANNEL_SUBNET': '10.0.0.1/24'}
    assert subnet_of_env({'FLANNEL_SUBNET': 'garbage'}) is None


def _netconf6(**kw):
    from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf
    data = {'Network': '172.20.0.0/16', 'EnableIPv6': True, 'IPv6Network': 'fd00:20::/56', 'Backend': {'Type': 'vxlan'}}
    data.update(kw)
    return parse_net_conf(data)


DUAL_ENV = ('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\n'
            'FLANNEL_IPV6_NETWORK=fd00:20::/56\nFLANNEL_IPV6_SUBNET=fd00:20:0:1::1/64\n'
            'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')


def test_subnet_env_text_dual_stack_in_flannels_order():
    lease4 = lease('172.20.1.0/24', node(1))
    assert subnet_env_text(_netconf6(), lease4, 1450, True, subnet6='fd00:20:0:1::/64') == DUAL_ENV
    # the IPv6 network may be given instead of coming from the NetConf; the subnet from the lease
    lease6 = SimpleNamespace(subnet='172.20.1.0/24', subnet6=ipaddress.IPv6Network('fd00:20:0:1::/64'))
    assert subnet_env_text(net_conf(), lease6, 1450, True, ipv6_network='fd00:20::/56') == DUAL_ENV
    env = parse_subnet_env(DUAL_ENV)
    assert list(env) == list(SUBNET_ENV_KEYS)
    assert str(subnet_of_env(env)) == '172.20.1.0/24'
    assert str(subnet6_of_env(env)) == 'fd00:20:0:1::/64'


def test_subnet_env_text_ipv6_only_omits_the_ipv4_lines():
    nc = _netconf6(EnableIPv4=False)
    lease6 = SimpleNamespace(subnet=None, subnet6='fd00:20:0:a::/64')
    text = subnet_env_text(nc, lease6, 1430, False)
    assert text == ('FLANNEL_IPV6_NETWORK=fd00:20::/56\nFLANNEL_IPV6_SUBNET=fd00:20:0:a::1/64\n'
                    'FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n')
    env = parse_subnet_env(text)
    assert subnet_of_env(env) is None
    assert str(subnet6_of_env(env)) == 'fd00:20:0:a::/64'
    assert subnet6_of_env({'FLANNEL_IPV6_SUBNET': '10.0.0.1/24'}) is None


def test_subnet_env_text_ipv4_only_ignores_ipv6_inputs_it_is_not_given():
    lease6 = SimpleNamespace(subnet='172.20.1.0/24', subnet6='fd00:20:0:1::/64')
    assert 'IPV6' not in subnet_env_text(net_conf(), lease6, 1450, True)


def test_subnet_env_text_ipv6_without_a_subnet_is_an_error():
    with pytest.raises(ValueError) as exc:
        subnet_env_text(_netconf6(), lease('172.20.1.0/24', node(1)), 1450, True)
    assert 'no IPv6 subnet' in str(exc.value)


# ------------------------------------------------------------------ files

def test_write_atomic_mode_dirs_and_compare_before_write(tmp_path):
    path = tmp_path / 'run' / 'flannel' / 'subnet.env'
    old = os.umask(0o077)
    try:
        assert write_atomic(str(path), 'A=1\n') is True
    finally:
        os.umask(old)
    assert path.read_text() == 'A=1\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    inode = path.stat().st_ino
    assert write_atomic(str(path), 'A=1\n') is False
    assert path.stat().st_ino == inode                # not rewritten
    assert write_atomic(str(path), 'A=2\n') is True
    assert path.read_text() == 'A=2\n' and path.stat().st_ino != inode    # renamed into place
    os.chmod(str(path), 0o600)
    assert write_atomic(str(path), 'A=2\n') is True and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ['subnet.env']   # no temp files left


def test_remove_file(tmp_path):
    path = tmp_path / 'x'
    path.write_text('1')
    assert remove_file(str(path)) is True
    assert remove_file(str(path)) is False


# ------------------------------------------------------------------ the file store

def test_file_store_acquire_release_and_format(tmp_path):
    nc = net_conf()
    store = FileStore(str(tmp_path / 'cluster' / 'flannel-leases.json'))
    with store.locked():
        got, changed, warnings, before, after = store.acquire(nc, Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}), config={'Network': '172.20.0.0/16'})
    assert changed and not warnings and str(got.subnet) == '172.20.1.0/24'
    doc = json.loads(open(store.path).read())
    assert doc == {'config': {'Network': '172.20.0.0/16'}, 'leases': {'172.20.1.0-24': GOOD}}
    with store.locked():
        again = store.acquire(nc, Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}), config={'Network': '172.20.0.0/16'})
    assert again[0] == got and again[1] is False
    with store.locked():
        assert store.release({IPV4: node(2)}) == ([], False)
        assert store.release({IPV4: node(1)}) == ([got], True)
    assert json.loads(open(store.path).read())['leases'] == {}


def test_file_store_check_mode_writes_nothing(tmp_path):
    store = FileStore(str(tmp_path / 'leases.json'))
    with store.locked():
        got, changed = store.acquire(net_conf(), Claim('host-gw', None, {IPV4: NodePart(node(1))}), check_mode=True)[:2]
    assert changed and str(got.subnet) == '172.20.1.0/24'
    assert not os.path.exists(store.path)


def test_file_store_moves_our_incompatible_lease_and_keeps_corrupt_ones(tmp_path):
    store = FileStore(str(tmp_path / 'leases.json'))
    with open(store.path, 'w') as handle:
        json.dump({'leases': {'172.20.1.0-24': 'garbage', '172.20.9.0-25': dict(GOOD)}}, handle)
    with store.locked():
        got, changed, warnings = store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))[:3]
    assert str(got.subnet) == '172.20.2.0/24'      # .1 is held by a corrupt entry: not reused
    assert len(warnings) == 1 and '172.20.1.0-24' in warnings[0]
    assert sorted(json.loads(open(store.path).read())['leases']) == ['172.20.1.0-24', '172.20.2.0-24']


def test_file_store_refuses_a_broken_file(tmp_path):
    store = FileStore(str(tmp_path / 'leases.json'))
    with open(store.path, 'w') as handle:
        handle.write('{not json')
    with pytest.raises(LeaseError, match='not JSON'):
        store.load()


def test_split_peers():
    mine = lease('172.20.1.0/24', node(1))
    peer = lease('172.20.2.0/24', node(2))
    outside = lease('10.9.0.0/24', node(3))
    whole = lease('172.20.0.0/16', node(4))
    own, peers, warnings = split_peers([mine, peer, outside, whole], {IPV4: node(1)}, net_conf())
    assert own == mine and peers == [peer]
    assert warnings == ['skipping lease 10.9.0.0/24 of 198.18.0.13 (store key 10.9.0.0-24): not a /24 inside '
                        'network 172.20.0.0/16',
                        'skipping lease 172.20.0.0/16 of 198.18.0.14 (store key 172.20.0.0-16): not a /24 '
                        'inside network 172.20.0.0/16']


def _acquire_in_child(args):
    path, index = args
    store = FileStore(path)
    with store.locked():
        got = store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(index), MAC)}))[0]
    return index, str(got.subnet)


def test_file_store_twenty_concurrent_processes(tmp_path):
    path = str(tmp_path / 'leases.json')
    ctx = multiprocessing.get_context('fork')
    jobs = [(path, i) for i in range(20)]
    with ctx.Pool(20) as pool:
        first = dict(pool.map(_acquire_in_child, jobs))
    assert len(set(first.values())) == 20
    assert set(first.values()) == set('172.20.%d.0/24' % i for i in range(1, 21))
    with ctx.Pool(20) as pool:
        second = dict(pool.map(_acquire_in_child, list(reversed(jobs))))
    assert second == first
    assert len(json.loads(open(path).read())['leases']) == 20


def test_check_mode_plans_with_the_peers_leases_after_their_run(tmp_path):
    """A backend switch in check mode: the peers' stored leases still hold the old backend; the
    real run's peers hold the new one once every node has run, so check mode plans with that."""
    store = FileStore(str(tmp_path / 'leases.json'))
    with store.locked():
        store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(2), MAC)}))
    facts = dict(public_ip=node(1), backend_type='host-gw', vni=None, vtep_mac=None, previous_subnet=None)

    def env(dummy):
        return False, [], {}
    hostgw = net_conf(backend='host-gw')
    checked = lease_state(store, 'query', hostgw, facts, env, check_mode=True)
    assert checked['peers'] == [lease('172.20.1.0/24', node(2), 'host-gw').as_peer()]
    real = lease_state(store, 'query', hostgw, facts, env)
    assert real['peers'] == [lease('172.20.1.0/24', node(2)).as_peer()]     # the store as it is
    checked = lease_state(store, 'present', hostgw, facts, env, check_mode=True)
    assert checked['changed'] and checked['peers'] == [lease('172.20.1.0/24', node(2), 'host-gw').as_peer()]
    assert not (tmp_path / 'leases.json').read_text().count('host-gw')      # check mode wrote nothing
    back = Lease.make('host-gw', None, {IPV4: LeasePart('172.20.1.0/24', node(2), None)}).after_run(net_conf().backend)
    assert back == Lease.make('vxlan', 1, {IPV4: LeasePart('172.20.1.0/24', node(2), vtep_mac(node(2), 1))})


# ------------------------------------------------------------------ IPv6: dual-stack and IPv6-only (issue 16)

MAC6 = '0e:2b:5c:11:aa:06'


def net_conf6(ipv6_network='fd00:20::/56', ipv6_len=64, ipv4=True, backend='vxlan', network='172.20.0.0/16'):
    """A NetConf with IPv6 and flannel's derived IPv6SubnetMin/Max (the second and the last subnet)."""
    from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import Backend, NetConf
    v4 = net_conf(network) if ipv4 else SimpleNamespace(network=None, subnet_len=None, subnet_min=None, subnet_max=None)
    net6 = ipaddress.IPv6Network(ipv6_network)
    size = 1 << (128 - ipv6_len)
    return NetConf(network=v4.network, subnet_len=v4.subnet_len, subnet_min=v4.subnet_min, subnet_max=v4.subnet_max,
                   backend=Backend(type=backend), enable_ipv4=ipv4, enable_ipv6=True, ipv6_network=net6,
                   ipv6_subnet_len=ipv6_len,
                   ipv6_subnet_min=ipaddress.IPv6Network((int(net6.network_address) + size, ipv6_len)),
                   ipv6_subnet_max=ipaddress.IPv6Network((int(net6.broadcast_address) + 1 - size, ipv6_len)))


def node6(i):
    return 'fd53:18::%d' % (10 + i)


def lease6(subnet, ip, subnet6, ip6, backend='vxlan'):
    vxlan = backend == 'vxlan'
    return Lease.make(backend, 1 if vxlan else None, {IPV4: LeasePart(subnet, ip, MAC if vxlan and subnet else None),
                                                      IPV6: LeasePart(subnet6, ip6, MAC6 if vxlan else None)})


def take6(netconf, leases, i, preferred6=None, **kw):
    return allocate(netconf, leases, Claim('vxlan', 1, {IPV4: NodePart(node(i) if netconf.enable_ipv4 else None, MAC),
                                                        IPV6: NodePart(node6(i), MAC6, preferred6)}), **kw)


def test_dual_stack_allocation_lowest_free_in_both_families_and_kept_across_runs():
    nc = net_conf6()
    leases = []
    for i in (1, 2, 3):
        leases.append(take6(nc, leases, i))
    assert [(x.subnet, x.subnet6) for x in leases] == [
        ('172.20.1.0/24', 'fd00:20:0:1::/64'), ('172.20.2.0/24', 'fd00:20:0:2::/64'),
        ('172.20.3.0/24', 'fd00:20:0:3::/64')]
    assert leases[0].key == '172.20.1.0-24&fd00:20:0:1::-64'
    assert take6(nc, list(reversed(leases)), 2) == leases[1]        # same node -> same subnets


def test_dual_stack_ipv6_subnets_do_not_overlap_other_leases_or_reserved_ones():
    nc = net_conf6()
    other = lease6('172.20.9.0/24', node(9), 'fd00:20:0:1::/64', node6(9))
    got = take6(nc, [other], 1, reserved=[ipaddress.IPv6Network('fd00:20:0:2::/64')])
    assert (got.subnet, got.subnet6) == ('172.20.1.0/24', 'fd00:20:0:3::/64')
    # a subnet.env's FLANNEL_IPV6_SUBNET is honoured when free, not when another node holds it
    assert take6(nc, [other], 1, preferred6='fd00:20:0:7::/64').subnet6 == 'fd00:20:0:7::/64'
    assert take6(nc, [other], 1, preferred6='fd00:20:0:1::/64').subnet6 == 'fd00:20:0:2::/64'


def test_ipv6_only_leases_only_subnet6():
    nc = net_conf6(ipv4=False)
    got = take6(nc, [], 1)
    assert (got.subnet, got.public_ip, got.vtep_mac, got.subnet6) == (None, None, None, 'fd00:20:0:1::/64')
    assert got.key == 'fd00:20:0:1::-64'
    assert json.loads(got.to_store()[1])['PublicIP'] == '0.0.0.0'
    assert take6(nc, [got], 1) == got and take6(nc, [got], 2).subnet6 == 'fd00:20:0:2::/64'


def test_switching_ipv6_on_keeps_the_ipv4_subnet_in_a_new_lease():
    """flannel: the IPv4 lease is not compatible once IPv6 is on (isIPv6SubnetConfigCompat), so it
    is replaced; the new lease keeps the node's IPv4 subnet (flannel would pick a new one)."""
    old = lease('172.20.5.0/24', node(1))
    got = take6(net_conf6(), [old, lease('172.20.1.0/24', node(2))], 1)
    assert (got.subnet, got.subnet6, got.key) == ('172.20.5.0/24', 'fd00:20:0:1::/64', '172.20.5.0-24&fd00:20:0:1::-64')
    assert stale_leases([old], got) == [old]
    assert not lease_compatible(net_conf6(), old) and lease_compatible(net_conf(), old)


def test_switching_ipv6_off_or_moving_the_ipv6_network_replaces_only_that_part():
    dual = lease6('172.20.5.0/24', node(1), 'fd00:20:0:4::/64', node6(1))
    assert not lease_compatible(net_conf(), dual)
    got = allocate(net_conf(), [dual], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))
    assert (got.subnet, got.subnet6, got.key) == ('172.20.5.0/24', None, '172.20.5.0-24')
    moved = take6(net_conf6('fd00:30::/56'), [dual], 1)
    assert (moved.subnet, moved.subnet6) == ('172.20.5.0/24', 'fd00:30:0:1::/64')
    longer = take6(net_conf6(ipv6_len=80), [dual], 1)
    assert longer.subnet6 == 'fd00:20:0:0:1::/80'


def test_out_of_ipv6_subnets_names_the_ipv6_network():
    nc = net_conf6('fd00:20::/62')           # /64s: ::1, ::2, ::3 between SubnetMin and SubnetMax
    leases = [take6(nc, [], 1)]
    leases.append(take6(nc, leases, 2))
    leases.append(take6(nc, leases, 3))
    with pytest.raises(LeaseError, match=r'out of IPv6 subnets: network fd00:20::/62 has 3 subnets of /64 '
                                         r'between fd00:20:0:1::/64 and fd00:20:0:3::/64'):
        take6(nc, leases, 4)


def test_allocate_needs_the_public_ipv6_when_the_network_has_ipv6():
    with pytest.raises(LeaseError, match='the network has IPv6: the node needs public_ip6'):
        allocate(net_conf6(), [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))
    with pytest.raises(LeaseError, match='public_ip6.*link-local'):
        allocate(net_conf6(), [], Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC), IPV6: NodePart('fe80::1', MAC6)}))


@pytest.mark.parametrize('key,value', [
    ('172.20.1.0-24&fd00:20:0:1::-64', dict(GOOD, PublicIPv6='fd53:18::300')),     # bad IPv6
    ('172.20.1.0-24&fd00:20:0:1::-64', dict(GOOD, PublicIPv6=None)),
    ('172.20.1.0-24&fd00:20:0:1::-64', dict(GOOD, PublicIPv6='fe80::1')),          # link-local
    ('172.20.1.0-24&fd00:20:0:1::-64', dict(GOOD, PublicIPv6='fd53:18::11')),      # vxlan, no BackendV6Data
    ('172.20.1.0-24&fd00:20:0:1::-64', dict(GOOD, PublicIPv6='fd53:18::11',
                                            BackendV6Data={'VNI': 1, 'VtepMAC': 'zz:00:00:00:00:01'})),
    ('172.20.1.0-24&fd00:20:0:1::1-64', GOOD),                                     # host bits
    ('172.20.1.0-24&fd00:20:0:1:0::-64', GOOD),                                    # not canonical
    ('172.20.1.0-24&fd00:20:0:1::-129', GOOD),
    ('172.20.1.0-24&', GOOD),
])
def test_corrupt_ipv6_leases_are_rejected_naming_the_key(key, value):
    with pytest.raises(LeaseError):
        Lease.from_store(key, value)
    valid, warnings, dummy = parse_leases({key: value})
    assert valid == [] and len(warnings) == 1 and key in warnings[0] and 'skipping corrupt lease' in warnings[0]


def test_parse_leases_reserves_both_subnets_of_a_corrupt_dual_stack_entry():
    key = '172.20.1.0-24&fd00:20:0:1::-64'
    valid, warnings, reserved = parse_leases({key: dict(GOOD, PublicIPv6='bogus'),
                                              'fd00:20:0:3::-64': '{"x"'})
    assert valid == [] and len(warnings) == 2 and key in warnings[0]
    assert reserved == [ipaddress.IPv4Network('172.20.1.0/24'), ipaddress.IPv6Network('fd00:20:0:1::/64'),
                        ipaddress.IPv6Network('fd00:20:0:3::/64')]
    got = take6(net_conf6(), valid, 1, reserved=reserved)
    assert (got.subnet, got.subnet6) == ('172.20.2.0/24', 'fd00:20:0:2::/64')


def test_file_store_dual_stack_format_switch_and_release_by_ipv6(tmp_path):
    store = FileStore(str(tmp_path / 'leases.json'))
    with store.locked():
        v4 = store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))[0]
    ipv4_text = open(store.path).read()
    with store.locked():
        got, changed, warnings, before, after = store.acquire(net_conf6(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC), IPV6: NodePart(node6(1), MAC6)}))
    assert changed and got.subnet == v4.subnet and got.subnet6 == 'fd00:20:0:1::/64'
    doc = json.loads(open(store.path).read())
    assert doc['leases'] == {'172.20.1.0-24&fd00:20:0:1::-64': {
        'PublicIP': '198.18.0.11', 'PublicIPv6': 'fd53:18::11', 'BackendType': 'vxlan',
        'BackendData': {'VNI': 1, 'VtepMAC': MAC}, 'BackendV6Data': {'VNI': 1, 'VtepMAC': MAC6}}}
    diff = store_diff(store.label, before, after, {IPV4: node(1), IPV6: node6(1)})
    assert diff['after_header'].endswith('(198.18.0.11, fd53:18::11)')
    assert '"172.20.1.0-24"' in diff['before'] and '"172.20.1.0-24&fd00:20:0:1::-64"' in diff['after']
    with store.locked():        # IPv6 off again: the IPv4-only file is byte-identical to before
        store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}))
    assert open(store.path).read() == ipv4_text
    with store.locked():
        store.acquire(net_conf6(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC), IPV6: NodePart(node6(1), MAC6)}))
        # IPv6-only: the node is known by its IPv6 address only (PublicIP "0.0.0.0")
        store.acquire(net_conf6(ipv4=False), Claim('vxlan', 1, {IPV4: NodePart(None, None), IPV6: NodePart(node6(1), MAC6)}))
        assert sorted(json.loads(open(store.path).read())['leases']) == ['fd00:20:0:1::-64']
        gone, changed = store.release({IPV4: None, IPV6: node6(1)})
    assert changed and [x.subnet6 for x in gone] == ['fd00:20:0:1::/64']
    assert json.loads(open(store.path).read())['leases'] == {}


def test_lease_state_dual_stack_and_ipv6_only(tmp_path):
    store = FileStore(str(tmp_path / 'leases.json'))
    with store.locked():
        store.acquire(net_conf6(), Claim('vxlan', 1, {IPV4: NodePart(node(2), MAC), IPV6: NodePart(node6(2), MAC6)}))
        store.acquire(net_conf6(), Claim('vxlan', 1, {IPV4: NodePart(node(3), MAC), IPV6: NodePart('fd99::3', MAC6)}))
    seen = []

    def env(got):
        seen.append(got)
        return False, [], {}
    facts = dict(public_ip=node(1), public_ip6=node6(1), backend_type='vxlan', vni=1, vtep_mac=MAC,
                 vtep_mac6=MAC6, previous_subnet=None, previous_subnet6=None)
    out = lease_state(store, 'present', net_conf6(), facts, env)
    assert out['lease'] == lease6('172.20.3.0/24', node(1), 'fd00:20:0:3::/64', node6(1)).as_peer()
    assert seen[0].subnet6 == 'fd00:20:0:3::/64' and out['public_ip6'] == node6(1)
    assert [p['subnet6'] for p in out['peers']] == ['fd00:20:0:1::/64', 'fd00:20:0:2::/64']
    # a peer whose IPv6 subnet is outside the IPv6 network is skipped, naming both subnets
    out = lease_state(store, 'query', net_conf6('fd00:30::/56'), facts, env)
    assert out['peers'] == [] and len(out['warnings']) == 2
    assert out['warnings'][0] == ('skipping lease 172.20.1.0/24, fd00:20:0:1::/64 of 198.18.0.12, fd53:18::12 '
                                  '(store key 172.20.1.0-24&fd00:20:0:1::-64): not a /64 inside network fd00:30::/56')
    out = lease_state(store, 'absent', net_conf6(), dict(public_ip=None, public_ip6=node6(1)),
                      lambda got: (False, [], {}))
    assert out['changed'] and out['lease']['subnet6'] == 'fd00:20:0:3::/64' and out['public_ip6'] == node6(1)
    assert '"PublicIPv6": "fd53:18::11"' in out['diff'][0]['before']


def test_a_family_switch_leaves_no_lease_of_the_old_family_in_the_file_store(tmp_path):
    """IPv4-only -> IPv6-only: the new lease carries no IPv4 address, so the old IPv4-only lease was
    kept and warned about on every run; the node's former address names it (issue 24, defect 12).
    Another node's old lease stays until that node runs; a fitting lease of the address too."""
    store = FileStore(str(tmp_path / 'leases.json'))
    mine, theirs = lease('172.20.1.0/24', node(1)), lease('172.20.2.0/24', node(2))
    store.save({'config': None, 'leases': dict((x.key, json.loads(x.to_store()[1])) for x in (mine, theirs))})
    v6only = net_conf6(ipv4=False)
    with store.locked():
        got = store.acquire(v6only, Claim('vxlan', 1, {IPV4: NodePart(None, None), IPV6: NodePart(node6(1), MAC6)}, [node(1)]))[0]
    assert sorted(store.load()['leases']) == sorted([theirs.key, got.key])
    # and back: IPv6-only -> IPv4-only
    with store.locked():
        store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(node(1), MAC)}, [node6(1)]))
    assert got.key not in store.load()['leases'] and theirs.key in store.load()['leases']
    assert stale_leases([theirs], got, v6only, [node(1)]) == []
    assert stale_leases([mine], lease('172.20.3.0/24', node(3)), net_conf(), [node(1)]) == []   # it fits: not ours
