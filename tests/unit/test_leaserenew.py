"""Lease renewal on the node (module_utils/store/leaserenew.py) against a fake etcd JSON gateway."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import io
import json

from ansible_collections.kubeasz.network.plugins.module_utils.store import leaserenew

KEY = '/coreos.com/network/subnets/172.20.1.0-24'


class FakeEtcd(object):
    def __init__(self, remaining, granted, lease=7, present=True):
        self.remaining, self.granted, self.lease, self.present = remaining, granted, lease, present
        self.calls = []

    def opener_factory(self, ca=None, cert=None, key=None):
        def opener(method, url, data=None, headers=None):
            path = url.split('2379', 1)[1]
            self.calls.append(path)
            if path == '/v3/kv/range':
                kvs = [dict(key=base64.b64encode(KEY.encode()).decode(), value='', lease=str(self.lease))]
                answer = {'kvs': kvs if self.present else []}
            elif path == '/v3/lease/timetolive':
                answer = {'TTL': str(self.remaining), 'grantedTTL': str(self.granted)}
            else:
                self.remaining = self.granted
                answer = {'result': {'TTL': str(self.granted)}}
            return io.BytesIO(json.dumps(answer).encode())
        return opener


def renewer(tmp_path, fake, logs):
    state = tmp_path / 'routes.json'
    state.write_text(json.dumps({'lease_renewal': {'endpoints': ['http://10.0.0.1:2379'],
                                                   'prefix': '/coreos.com/network', 'subnet': '172.20.1.0/24'}}))
    return leaserenew.Renewer(str(state), logs.append, opener_factory=fake.opener_factory)


def test_renew_due_like_flanneld_and_scaled_for_short_ttls():
    assert not leaserenew.renew_due(23 * 3600, 24 * 3600)
    assert leaserenew.renew_due(3600, 24 * 3600)
    assert not leaserenew.renew_due(7, 12) and leaserenew.renew_due(6, 12)
    assert leaserenew.next_check(12, 12) == 3.0 and leaserenew.next_check(20 * 3600, 24 * 3600) == 60.0


def test_tick_renews_only_when_due(tmp_path):
    logs = []
    fake = FakeEtcd(remaining=10, granted=12)
    assert renewer(tmp_path, fake, logs).tick() <= 3.0
    assert '/v3/lease/keepalive' not in fake.calls and not logs
    fake.remaining = 5
    renewer(tmp_path, fake, logs).tick()
    assert fake.calls[-1] == '/v3/lease/keepalive' and 'renewed lease 172.20.1.0/24' in logs[-1]


def test_tick_without_config_lease_or_key(tmp_path):
    logs = []
    assert leaserenew.Renewer(str(tmp_path / 'missing.json'), logs.append).tick() == leaserenew.CHECK_MAX
    fake = FakeEtcd(remaining=5, granted=12, present=False)
    renewer(tmp_path, fake, logs).tick()
    assert 'gone from etcd' in logs[-1] and '/v3/lease/keepalive' not in fake.calls
    fake = FakeEtcd(remaining=5, granted=12, lease=0)
    renewer(tmp_path, fake, logs).tick()
    assert fake.calls == ['/v3/kv/range']


def test_file_store_records_renewals_beside_the_lease_file(tmp_path):
    lease_file = str(tmp_path / 'flannel-leases.json')
    assert leaserenew.load_renewals(lease_file) == {}
    leaserenew.record_renewal(lease_file, '172.20.1.0-24', now=0)
    leaserenew.record_renewal(lease_file, '172.20.2.0-24', now=60)
    assert leaserenew.load_renewals(lease_file) == {'172.20.1.0-24': '1970-01-01T00:00:00Z',
                                                    '172.20.2.0-24': '1970-01-01T00:01:00Z'}
    leaserenew.record_renewal(lease_file, '172.20.1.0-24', gone=True)
    leaserenew.record_renewal(lease_file, '172.20.9.0-24', gone=True)
    assert list(leaserenew.load_renewals(lease_file)) == ['172.20.2.0-24']


def test_dual_stack_lease_is_renewed_by_its_dual_stack_key(tmp_path, monkeypatch):
    key = '/coreos.com/network/subnets/172.20.1.0-24&fd00:20:0:1::-64'
    config = {'endpoints': ['http://10.0.0.1:2379'], 'prefix': '/coreos.com/network/',
              'subnet': '172.20.1.0/24', 'subnet6': 'fd00:20:0:1::/64'}
    assert leaserenew.lease_key(config) == key
    assert leaserenew.lease_key(dict(config, subnet6=None)) == '/coreos.com/network/subnets/172.20.1.0-24'
    assert leaserenew.lease_name(config) == '172.20.1.0/24 fd00:20:0:1::/64'
    fake, logs = FakeEtcd(remaining=100, granted=86400), []
    state = tmp_path / 'routes.json'
    state.write_text(json.dumps({'lease_renewal': config}))
    renewer = leaserenew.Renewer(str(state), logs.append, opener_factory=fake.opener_factory)
    renewer.tick()   # the fake holds KEY, the IPv4 key: not this lease's
    assert logs == ['lease 172.20.1.0/24 fd00:20:0:1::/64 is gone from etcd: the next run of 06 takes one again']
    monkeypatch.setitem(globals(), 'KEY', key)
    renewer.tick()
    assert logs[-1] == 'renewed lease 172.20.1.0/24 fd00:20:0:1::/64 (100s were left, now 86400s)'


def test_a_new_state_file_is_looked_at_at_once_not_after_the_wait(tmp_path):
    """A guard started before its state had a renewal entry slept CHECK_MAX (60 s) and a lease of
    TTL 30 expired (issue 24, defect 3). Fake clock: the second look comes one step after the
    state file is replaced, long before the minute is over."""
    logs, now, looks = [], [0.0], []
    state = tmp_path / 'routes.json'
    state.write_text('{"routes": []}')
    fake = FakeEtcd(remaining=30, granted=30)
    guard = leaserenew.Renewer(str(state), logs.append, opener_factory=fake.opener_factory)
    tick = guard.tick

    def counted():
        looks.append(now[0])
        return tick()

    def sleep(seconds):
        now[0] += seconds
        if now[0] == 5.0:   # a run of 06 writes the lease it took (atomic rename: a new file)
            fresh = tmp_path / 'routes.json.new'
            fresh.write_text(json.dumps({'lease_renewal': {'endpoints': ['http://10.0.0.1:2379'],
                                                           'subnet': '172.20.1.0/24'}}))
            fresh.rename(state)
    guard.tick = counted
    guard.run(lambda: len(looks) >= 2, sleep=sleep, clock=lambda: now[0])
    assert looks == [0.0, 5.0]
    assert fake.calls[:2] == ['/v3/kv/range', '/v3/lease/timetolive']
