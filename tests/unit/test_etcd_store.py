# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd.py: the v3 JSON client and flannel's etcd layout, against an in-memory etcd gateway.

The fake answers exactly as etcd 3.4's JSON gateway does (tried on this machine): keys and
values base64, 64-bit numbers as strings, a failed txn without ``succeeded``, errors as
``{"error", "message", "code"}``. tests/integration/test_etcd_leases.py runs the same store
against a real etcd.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import io
import json

import pytest

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, LeasePart, NodePart
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import (
    EtcdClient, EtcdError, EtcdStore, prefix_end)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import leases_of
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf

NET = {'Network': '172.20.0.0/16', 'Backend': {'Type': 'vxlan'}}
P = '/coreos.com/network'
FLANNELD = ('{"PublicIP":"192.168.2.22","PublicIPv6":null,"BackendType":"vxlan",'
            '"BackendData":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:01"}}')


def d64(text):
    return base64.b64decode(text).decode()


def e64(text):
    return base64.b64encode(text.encode()).decode()


class FakeEtcd:
    """An etcd v3 JSON gateway in memory. ``down`` endpoints refuse connections."""

    def __init__(self):
        self.kv = {}          # key -> dict(value, create, mod, lease)
        self.leases = {}      # id -> ttl
        self.rev = 1
        self.down = set()
        self.calls = []
        self.before_txn = None   # hook: runs once before the next txn (a racing writer)

    def __call__(self, method, url, data=None, headers=None):
        endpoint, path = url.split('/v3/', 1)
        if endpoint in self.down:
            raise URLError(ConnectionRefusedError(111, 'Connection refused'))
        self.calls.append(path)
        body = json.loads(data)
        answer = getattr(self, path.replace('/', '_'))(body)
        if 'code' in answer:
            raise HTTPError(url, 404, 'Not Found', {}, io.BytesIO(json.dumps(answer).encode()))
        answer.setdefault('header', {'cluster_id': '1', 'member_id': '2', 'revision': str(self.rev), 'raft_term': '2'})
        return io.BytesIO(json.dumps(answer).encode())

    def _put(self, key, value, lease=0):
        if lease and int(lease) not in self.leases:
            return {'error': 'etcdserver: requested lease not found', 'message': 'etcdserver: requested lease not found',
                    'code': 5}
        self.rev += 1
        old = self.kv.get(key)
        self.kv[key] = dict(value=value, create=old['create'] if old else self.rev, mod=self.rev, lease=int(lease or 0))
        return {}

    def kv_put(self, body):
        return self._put(d64(body['key']), d64(body['value']), body.get('lease', 0))

    def kv_range(self, body):
        key = d64(body['key'])
        end = d64(body['range_end']) if body.get('range_end') else None
        keys = sorted(k for k in self.kv if (k == key if end is None else key <= k < end))
        kvs = [{'key': e64(k), 'create_revision': str(self.kv[k]['create']), 'mod_revision': str(self.kv[k]['mod']),
                'version': '1', 'value': e64(self.kv[k]['value'])} for k in keys]
        for k, kv in zip(keys, kvs):
            if self.kv[k]['lease']:
                kv['lease'] = str(self.kv[k]['lease'])
        return {'kvs': kvs, 'count': str(len(kvs))} if kvs else {}

    def kv_txn(self, body):
        if self.before_txn:
            hook, self.before_txn = self.before_txn, None
            hook()
        for cmp in body['compare']:
            entry = self.kv.get(d64(cmp['key']))
            have = (entry or {}).get('create' if cmp['target'] == 'CREATE' else 'mod', 0)
            want = int(cmp.get('create_revision' if cmp['target'] == 'CREATE' else 'mod_revision', 0))
            if have != want:
                return {}
        for op in body['success']:
            if 'request_put' in op:
                put = op['request_put']
                answer = self._put(d64(put['key']), d64(put['value']), put.get('lease', 0))
                if answer:
                    return answer
            else:
                self.rev += 1
                self.kv.pop(d64(op['request_delete_range']['key']), None)
        return {'succeeded': True, 'responses': []}

    def lease_grant(self, body):
        lease = 7000 + len(self.leases) + 1
        self.leases[lease] = int(body['TTL'])
        return {'ID': str(lease), 'TTL': body['TTL']}

    def lease_keepalive(self, body):
        lease = int(body['ID'])
        result = {'header': {}, 'ID': body['ID']}
        if lease in self.leases:
            result['TTL'] = str(self.leases[lease])
        return {'result': result}

    def lease_revoke(self, body):
        lease = int(body['ID'])
        self.leases.pop(lease, None)
        for key in [k for k, v in self.kv.items() if v['lease'] == lease]:
            del self.kv[key]
        return {}


@pytest.fixture
def fake():
    return FakeEtcd()


def make_store(fake, endpoints=('http://10.0.0.1:2379',), **kwargs):
    return EtcdStore(EtcdClient(list(endpoints), opener=fake), **kwargs)


def take(store, ip, net=None, **kwargs):
    netconf = parse_net_conf(net or NET)
    return store.acquire(netconf, Claim('vxlan', 1, {IPV4: NodePart(ip, '0e:00:00:00:00:%02x' % int(ip.split('.')[-1]))}),
                         config=net or NET, **kwargs)


# ---------------------------------------------------------------- the client

def test_prefix_end_is_the_next_key_after_the_prefix():
    assert d64(prefix_end('/coreos.com/network/')) == '/coreos.com/network0'


@pytest.mark.parametrize('bad', ['198.18.0.11:2379', 'ftp://x:1', 'http://x:2379/v3', '', None])
def test_bad_endpoints_are_refused(bad):
    with pytest.raises(EtcdError, match='etcd endpoint|no etcd endpoint'):
        EtcdClient([bad] if bad is not None else [], opener=FakeEtcd())


def test_comma_separated_endpoints_and_failover(fake):
    fake.down.add('http://10.0.0.1:2379')
    client = EtcdClient('http://10.0.0.1:2379,http://10.0.0.2:2379/', opener=fake)
    assert client.endpoints == ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']
    client.put('/a', 'b')
    assert fake.kv['/a']['value'] == 'b'


def test_unreachable_names_every_endpoint(fake):
    fake.down.update(['http://10.0.0.1:2379', 'http://10.0.0.2:2379'])
    client = EtcdClient(['http://10.0.0.1:2379', 'http://10.0.0.2:2379'], opener=fake)
    with pytest.raises(EtcdError) as err:
        client.range_prefix('/x/')
    assert 'etcd is unreachable' in str(err.value)
    assert 'http://10.0.0.1:2379: ' in str(err.value) and 'http://10.0.0.2:2379: ' in str(err.value)
    assert 'Connection refused' in str(err.value)


def test_refused_request_names_endpoint_and_message(fake):
    client = EtcdClient(['http://10.0.0.1:2379'], opener=fake)
    with pytest.raises(EtcdError, match=r'etcd http://10.0.0.1:2379 refused /v3/kv/put: .*lease not found'):
        client.put('/a', 'b', lease=99)


def test_range_decodes_keys_values_and_numbers(fake):
    client = EtcdClient(['http://10.0.0.1:2379'], opener=fake)
    lease = client.grant(60)
    assert client.create('/p/a', 'one', lease) is True
    assert client.create('/p/a', 'two') is False          # create-if-absent
    client.put('/q', 'outside')
    [kv] = client.range_prefix('/p/')
    assert kv == {'key': '/p/a', 'value': 'one', 'mod_revision': fake.kv['/p/a']['mod'], 'lease': lease}
    assert client.replace('/p/a', 'three', kv['mod_revision'] - 1) is False
    assert client.replace('/p/a', 'three', kv['mod_revision']) is True
    assert client.keepalive(lease) == 60 and client.keepalive(12345) == 0


# ---------------------------------------------------------------- the store

def test_first_lease_is_created_with_a_24h_etcd_lease_and_the_config(fake):
    store = make_store(fake)
    lease, changed, warnings, before, after = take(store, '198.18.0.11')
    assert changed and not warnings and str(lease.subnet) == '172.20.1.0/24'
    entry = fake.kv[P + '/subnets/172.20.1.0-24']
    assert entry['value'] == lease.to_store()[1]
    assert fake.leases[entry['lease']] == 86400
    assert json.loads(fake.kv[P + '/config']['value']) == NET
    assert before == {'config': None, 'leases': {}}
    assert after['leases'] == {'172.20.1.0-24': json.loads(lease.to_store()[1])}


def test_rerun_renews_and_reports_no_change(fake):
    store = make_store(fake)
    take(store, '198.18.0.11')
    revision = fake.rev
    fake.calls[:] = []
    lease, changed, dummy, before, after = take(store, '198.18.0.11')
    assert not changed and before == after and fake.rev == revision
    assert fake.calls == ['kv/range', 'lease/keepalive']


def test_check_mode_writes_nothing(fake):
    store = make_store(fake)
    lease, changed, dummy, dummy2, after = take(store, '198.18.0.11', check_mode=True)
    assert changed and str(lease.subnet) == '172.20.1.0/24' and '172.20.1.0-24' in after['leases']
    assert fake.kv == {} and fake.leases == {}


def test_a_lost_race_is_retried_with_another_subnet(fake):
    store = make_store(fake)
    other = Lease.make('vxlan', 1, {IPV4: LeasePart('172.20.1.0/24', '198.18.0.99', '0e:00:00:00:00:99')})
    fake.before_txn = lambda: fake._put(P + '/subnets/' + other.key, other.to_store()[1])
    lease = take(store, '198.18.0.11')[0]
    assert str(lease.subnet) in ('172.20.2.0/24', '172.20.3.0/24')   # one of the first 2 free after 1 lost race
    assert fake.kv[P + '/subnets/172.20.1.0-24']['value'] == other.to_store()[1]
    assert len(fake.leases) == 1   # the etcd lease granted before the race is reused, not leaked


def test_giving_up_after_the_retries_revokes_the_granted_lease(fake):
    store = make_store(fake, retries=2)
    fake.kv_txn = lambda body: {}   # every transaction fails
    with pytest.raises(EtcdError, match='could not store a lease after 2 attempts'):
        take(store, '198.18.0.11')
    assert fake.leases == {}


def test_flanneld_leases_are_honoured(fake):
    fake._put(P + '/subnets/172.20.1.0-24', FLANNELD)
    fake._put(P + '/subnets/172.20.5.0-24', FLANNELD.replace('192.168.2.22', '198.18.0.11'))
    fake._put(P + '/subnets/172.20.2.0-24&fd00::-64', FLANNELD.replace('192.168.2.22', '192.168.2.23'))
    store = make_store(fake)
    assert str(take(store, '198.18.0.11')[0].subnet) == '172.20.5.0/24'   # our own, kept
    assert str(take(store, '198.18.0.12')[0].subnet) == '172.20.3.0/24'   # 1 and 2 are flanneld's
    assert fake.kv[P + '/subnets/172.20.1.0-24']['value'] == FLANNELD
    # our node's lease got our backend data and an etcd lease
    entry = fake.kv[P + '/subnets/172.20.5.0-24']
    assert json.loads(entry['value'])['BackendData']['VtepMAC'] == '0e:00:00:00:00:0b' and entry['lease']


def test_an_incompatible_own_lease_is_replaced_and_deleted(fake):
    fake._put(P + '/subnets/172.20.0.0-24', FLANNELD.replace('192.168.2.22', '198.18.0.11'))   # below SubnetMin
    lease, changed, dummy, before, after = take(make_store(fake), '198.18.0.11')
    assert str(lease.subnet) == '172.20.1.0/24' and changed
    assert sorted(fake.kv) == [P + '/config', P + '/subnets/172.20.1.0-24']
    assert '172.20.0.0-24' in before['leases'] and '172.20.0.0-24' not in after['leases']


def test_corrupt_values_are_skipped_reserved_and_left_alone(fake):
    bad = {'172.20.1.0-24': '{"PublicIP":', '172.20.2.0-24': FLANNELD.replace('192.168.2.22', '1.2.3.4 dev lo'),
           '172.20.3.0-24': FLANNELD.replace('0e:5a:1c:9f:22:01', 'zz:5a:1c:9f:22:01')}
    for key, value in bad.items():
        fake._put(P + '/subnets/' + key, value)
    lease, dummy, warnings, dummy2, after = take(make_store(fake), '198.18.0.11')
    assert str(lease.subnet) == '172.20.4.0/24'
    assert len(warnings) == 3 and all('skipping corrupt lease' in w for w in warnings)
    assert [str(x.subnet) for x in leases_of(after)] == ['172.20.4.0/24']
    assert all(fake.kv[P + '/subnets/' + k]['value'] == v for k, v in bad.items())


def test_out_of_subnets_writes_nothing(fake):
    net = {'Network': '10.10.0.0/22', 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}}
    store = make_store(fake)
    for i in range(1, 4):
        take(store, '198.18.0.%d' % i, net)
    kv, leases = dict(fake.kv), dict(fake.leases)
    with pytest.raises(LeaseError, match=r'out of subnets: network 10\.10\.0\.0/22'):
        take(store, '198.18.0.4', net)
    assert fake.kv == kv and fake.leases == leases


def test_config_is_updated_only_when_it_differs(fake):
    store = make_store(fake)
    take(store, '198.18.0.11')
    revision = fake.kv[P + '/config']['mod']
    take(store, '198.18.0.12')
    assert fake.kv[P + '/config']['mod'] == revision
    net = dict(NET, Backend={'Type': 'vxlan', 'DirectRouting': True})
    assert take(store, '198.18.0.12', net)[1] is True
    assert json.loads(fake.kv[P + '/config']['value']) == net


def test_release_deletes_only_our_leases(fake):
    store = make_store(fake, prefix='/custom/prefix/')
    take(store, '198.18.0.11')
    take(store, '198.18.0.12')
    assert store.release({IPV4: '198.18.0.11'}, check_mode=True)[1] is True and len(fake.kv) == 3
    gone, changed = store.release({IPV4: '198.18.0.11'})
    assert changed and [str(x.subnet) for x in gone] == ['172.20.1.0/24']
    assert sorted(fake.kv) == ['/custom/prefix/config', '/custom/prefix/subnets/172.20.2.0-24']
    assert store.release({IPV4: '198.18.0.11'}) == ([], False)


def test_an_expired_etcd_lease_is_started_over(fake):
    store = make_store(fake)
    take(store, '198.18.0.11')
    fake.lease_revoke({'ID': str(next(iter(fake.leases)))})   # expiry deletes the key too
    lease, changed = take(store, '198.18.0.11')[:2]
    assert str(lease.subnet) == '172.20.1.0/24' and changed and fake.kv[P + '/subnets/172.20.1.0-24']['lease']


def test_a_key_without_etcd_lease_gets_one(fake):
    fake._put(P + '/subnets/172.20.1.0-24', '')
    own = Lease.make('vxlan', 1, {IPV4: LeasePart('172.20.1.0/24', '198.18.0.11', '0e:00:00:00:00:0b')})
    fake._put(P + '/subnets/172.20.1.0-24', own.to_store()[1])
    lease, changed = take(make_store(fake), '198.18.0.11')[:2]
    assert lease == own and fake.kv[P + '/subnets/172.20.1.0-24']['lease'] in fake.leases


def test_ttl_zero_makes_leases_that_never_expire(fake):
    store = make_store(fake, ttl=0)
    take(store, '198.18.0.11')
    assert fake.kv[P + '/subnets/172.20.1.0-24']['lease'] == 0 and fake.leases == {}
    revision = fake.rev
    assert take(store, '198.18.0.11')[1] is False and fake.rev == revision


# ---------------------------------------------------------------- IPv6: dual-stack keys (issue 16)

def net6(ipv4=True):
    """NetConf with IPv6 fd00:20::/56 (/64 subnets from fd00:20:0:1::), built directly: the
    IPv6 keys of net-conf.json are parsed by netconf.py (another change)."""
    import dataclasses
    import ipaddress
    base = parse_net_conf(NET)
    extra = dict(enable_ipv6=True, ipv6_network=ipaddress.IPv6Network('fd00:20::/56'), ipv6_subnet_len=64,
                 ipv6_subnet_min=ipaddress.IPv6Network('fd00:20:0:1::/64'),
                 ipv6_subnet_max=ipaddress.IPv6Network('fd00:20:0:ff::/64'))
    if not ipv4:
        extra.update(enable_ipv4=False, network=None, subnet_len=None, subnet_min=None, subnet_max=None)
    return dataclasses.replace(base, **extra)


def take6(store, i, netconf=None, **kwargs):
    claim = Claim('vxlan', 1, {IPV4: NodePart('198.18.0.%d' % i, '0e:00:00:00:00:%02x' % i),
                               IPV6: NodePart('fd53:18::%d' % i, '0e:00:00:00:06:%02x' % i)})
    return store.acquire(netconf or net6(), claim, config=NET, **kwargs)


def test_dual_stack_keys_are_flannels_and_listed_with_both_subnets(fake):
    store = make_store(fake)
    fake._put(P + '/subnets/172.20.1.0-24&fd00:20:0:1::-64',
              '{"PublicIP":"192.168.2.22","PublicIPv6":"fd53:18::22","BackendType":"vxlan",'
              '"BackendData":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:01"},'
              '"BackendV6Data":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:02"}}')
    (flanneld,), warnings = store.leases()
    assert not warnings and (flanneld.subnet, flanneld.subnet6, flanneld.public_ip6, flanneld.vtep_mac6) == (
        '172.20.1.0/24', 'fd00:20:0:1::/64', 'fd53:18::22', '0e:5a:1c:9f:22:02')
    lease, changed, warnings, before, after = take6(store, 11)
    assert changed and not warnings and lease.key == '172.20.2.0-24&fd00:20:0:2::-64'
    entry = fake.kv[P + '/subnets/172.20.2.0-24&fd00:20:0:2::-64']
    assert entry['value'] == lease.to_store()[1] and entry['lease'] in fake.leases
    assert json.loads(entry['value'])['BackendV6Data'] == {'VNI': 1, 'VtepMAC': '0e:00:00:00:06:0b'}
    assert sorted(after['leases']) == ['172.20.1.0-24&fd00:20:0:1::-64', '172.20.2.0-24&fd00:20:0:2::-64']
    revision = fake.rev
    assert take6(store, 11)[1] is False and fake.rev == revision        # kept and renewed


def test_switching_ipv6_on_replaces_the_ipv4_key_with_a_dual_stack_key(fake):
    store = make_store(fake)
    old = take(store, '198.18.0.11')[0]
    take(store, '198.18.0.12')
    lease, changed = take6(store, 11)[:2]
    assert changed and lease.subnet == old.subnet == '172.20.1.0/24' and lease.subnet6 == 'fd00:20:0:1::/64'
    assert sorted(fake.kv) == [P + '/config', P + '/subnets/172.20.1.0-24&fd00:20:0:1::-64',
                               P + '/subnets/172.20.2.0-24']
    # and off again: the IPv4 key, the value byte-identical to the first one
    assert take(store, '198.18.0.11')[0] == old
    assert fake.kv[P + '/subnets/172.20.1.0-24']['value'] == old.to_store()[1]
    assert P + '/subnets/172.20.1.0-24&fd00:20:0:1::-64' not in fake.kv


def test_corrupt_dual_stack_entries_are_named_and_reserve_both_subnets(fake):
    fake._put(P + '/subnets/172.20.1.0-24&fd00:20:0:1::-64', FLANNELD)        # no PublicIPv6/BackendV6Data
    fake._put(P + '/subnets/172.20.2.0-24&fd00:20:0:2::1-64', FLANNELD)       # host bits in the key
    lease, dummy, warnings = take6(make_store(fake), 11)[:3]
    assert len(warnings) == 2
    assert '172.20.1.0-24&fd00:20:0:1::-64' in warnings[0] and '172.20.2.0-24&fd00:20:0:2::1-64' in warnings[1]
    # the first key's subnets stay reserved; the second key names no subnet, so it reserves none
    assert (lease.subnet, lease.subnet6) == ('172.20.2.0/24', 'fd00:20:0:2::/64')


def test_release_finds_the_lease_by_public_ip_or_public_ipv6(fake):
    store = make_store(fake)
    take6(store, 11)
    take6(store, 12)
    gone, changed = store.release({IPV4: None, IPV6: 'fd53:18::11'})
    assert changed and [x.key for x in gone] == ['172.20.1.0-24&fd00:20:0:1::-64']
    gone, changed = store.release({IPV4: '198.18.0.12'})
    assert changed and [x.key for x in gone] == ['172.20.2.0-24&fd00:20:0:2::-64']
    assert sorted(fake.kv) == [P + '/config']
    with pytest.raises(LeaseError, match='public_ip or public_ip6 is needed'):
        store.release({IPV4: None})


def test_ipv6_only_is_refused_on_etcd_naming_the_keys(fake):
    with pytest.raises(EtcdError, match='IPv6-only .FLANNEL_ENABLE_IPV4: false. needs FLANNEL_SUBNET_STORE file or kube'):
        take6(make_store(fake), 11, net6(ipv4=False))
    assert fake.kv == {}
