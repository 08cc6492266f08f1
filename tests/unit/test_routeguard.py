# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route guard: state file, monitor events, plan of the missing routes, one resync (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard import guard as rg
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard import cli as routeguard_cli
from ansible_collections.kubeasz.network.plugins.module_utils.plan import trafficrules as tr
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import Route

NET = '172.20.0.0/16'
# direct_route's routes, as it returns them
DIRECT = {'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'dev': None, 'onlink': False}
HOSTGW = {'dst': '172.20.3.0/24', 'gateway': '198.18.0.13', 'dev': 'eth0', 'onlink': False}
VXLAN = {'dst': '172.20.4.0/24', 'gateway': '172.20.4.0', 'dev': 'flannel.1', 'onlink': True}


def state(*routes):
    return rg.load_state(json.dumps({'version': 1, 'network': NET, 'subnet': '172.20.1.0/24',
                                     'backend': 'vxlan', 'routes': list(routes)}))


def link(name, up=True, carrier=True):
    flags = ['BROADCAST', 'MULTICAST'] + (['UP', 'LOWER_UP'] if up else [])
    if up and not carrier:
        flags.append('NO-CARRIER')
    return {'ifname': name, 'flags': flags}


def observed(routes=(), links=('eth0', 'flannel.1')):
    base = [{'dst': '198.18.0.0/24', 'dev': 'eth0', 'protocol': 'kernel', 'scope': 'link',
             'prefsrc': '198.18.0.11'},
            {'dst': '172.20.1.0/24', 'dev': 'cni0', 'protocol': 'kernel', 'scope': 'link'}]
    if 'eth0' not in links:
        base = base[1:]
    return {'link': [link(n) for n in links] + [link('cni0')], 'route': base + list(routes)}


# ------------------------------------------------------------------ state file

def test_routes_from_direct_route_load_as_routes():
    assert rg.route_entry(DIRECT, IPV4) == Route('172.20.2.0/24', '198.18.0.12', None, False)
    assert rg.route_entry(HOSTGW, IPV4) == Route('172.20.3.0/24', '198.18.0.13', 'eth0', False)
    assert rg.route_entry(VXLAN, IPV4) == Route('172.20.4.0/24', '172.20.4.0', 'flannel.1', True)


@pytest.mark.parametrize('entry, words', [
    ('172.20.2.0/24 via 198.18.0.12 proto 159', 'must be a dict'),
    ({'dst': '172.20.2.1/24', 'gateway': '198.18.0.12'}, 'not an IPv4 network'),
    ({'dst': '172.20.2.0/24', 'gateway': 'nope'}, 'not an IPv4 address'),
    ({'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'dev': 'bad/name'}, 'not an interface name'),
    ({'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'onlink': True}, 'onlink needs a gateway and a device'),
    ({'dst': '172.20.2.0/24'}, 'needs a gateway or a device'),
])
def test_bad_routes_are_named(entry, words):
    with pytest.raises(rg.RouteGuardError, match=words):
        rg.route_entry(entry, IPV4)


def test_state_reads_the_routes():
    st = state(DIRECT, VXLAN)
    assert str(st.network) == NET and str(st.subnet) == '172.20.1.0/24'
    assert st.routes == [Route('172.20.2.0/24', '198.18.0.12', None, False),
                         Route('172.20.4.0/24', '172.20.4.0', 'flannel.1', True)]


@pytest.mark.parametrize('doc, words', [
    ('[', 'not JSON'),
    ('[]', 'JSON object'),
    ('{"network": "x"}', 'network'),
    ('{"network": "172.20.0.0/16", "routes": {}}', 'routes: must be a list'),
    ('{"network": "172.20.0.0/16", "routes": [{"dst": "10.0.0.0/24", "gateway": "1.2.3.4"}]}', r'routes\[0\]: 10.0.0.0/24 is not a peer'),
    ('{"network": "172.20.0.0/16", "subnet": "172.20.1.0/24", "routes": [{"dst": "172.20.1.0/24", "gateway": "1.2.3.4"}]}',
     'not a peer subnet'),
    ('{"network": "172.20.0.0/16", "routes": [7]}', r'routes\[0\]: route 7'),
])
def test_bad_state_files_are_refused(doc, words):
    with pytest.raises(rg.RouteGuardError, match=words):
        rg.load_state(doc)


# ------------------------------------------------------------------ events

@pytest.mark.parametrize('line, reason', [
    ('3: eth0@if5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default ',
     'link eth0 up'),
    ('7: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN', 'link flannel.1 up'),
    ('3: eth0@if5: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default ', None),
    ('3: eth0@if5: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 state LOWERLAYERDOWN', None),
    ('Deleted 7: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450', None),
    ('    link/ether 92:99:5c:f0:bb:e0 brd ff:ff:ff:ff:ff:ff', None),
    ('Deleted 172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159 ', 'route 172.20.2.0/24 deleted'),
    ('Deleted 172.20.1.0/24 dev cni0 proto kernel scope link src 172.20.1.1', None),
    ('Deleted 10.99.0.0/24 via 198.18.0.12 dev eth0', None),
    ('Deleted broadcast 172.20.1.255 dev cni0 table local proto kernel scope link', None),
    ('198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.11 ', 'route 198.18.0.0/24 added'),
    ('172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159 ', None),
    ('broadcast 198.18.0.255 dev eth0 table local proto kernel scope link src 198.18.0.11', None),
    ('{"ifname": "eth0", "flags": ["UP", "LOWER_UP"]}', 'link eth0 up'),
    ('[{"deleted": true, "dst": "172.20.2.0/24"}]', 'route 172.20.2.0/24 deleted'),
    ('', None),
])
def test_monitor_lines_that_call_for_a_resync(line, reason):
    assert rg.classify_event(line, state(DIRECT)) == reason


# ------------------------------------------------------------------ plan

def test_nothing_to_do_when_every_route_is_there():
    obs = observed([{'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'dev': 'eth0', 'protocol': '159'}])
    assert rg.plan_missing(obs, state(DIRECT)) == ([], [])


def test_missing_routes_are_re_added_with_the_modules_plan():
    ops, waiting = rg.plan_missing(observed(), state(DIRECT, HOSTGW, VXLAN))
    assert [op.batch_line() for op in ops] == [
        'route replace 172.20.2.0/24 via 198.18.0.12 proto 159',
        'route replace 172.20.3.0/24 via 198.18.0.13 dev eth0 proto 159',
        'route replace 172.20.4.0/24 via 172.20.4.0 dev flannel.1 onlink proto 159']
    assert waiting == []


def test_routes_the_kernel_would_refuse_wait():
    st = state(DIRECT, HOSTGW, VXLAN)
    ops, waiting = rg.plan_missing(observed(links=('flannel.1',)), st)  # eth0 down: no connected route
    assert [op.dst for op in ops] == ['172.20.4.0/24']
    assert [r.dst for r in waiting] == ['172.20.2.0/24', '172.20.3.0/24']
    ops, waiting = rg.plan_missing(observed(links=('eth0',)), st)  # flannel.1 gone (re-created later)
    assert [r.dst for r in waiting] == ['172.20.4.0/24'] and len(ops) == 2


def test_a_link_without_carrier_is_not_up():
    obs = observed()
    obs['link'][0] = link('eth0', carrier=False)
    assert [r.dst for r in rg.plan_missing(obs, state(HOSTGW))[1]] == ['172.20.3.0/24']


def test_the_guard_never_replaces_or_deletes():
    theirs = [{'dst': '172.20.2.0/24', 'gateway': '172.20.2.0', 'dev': 'flannel.1', 'flags': ['onlink']},
              {'dst': '172.20.9.0/24', 'gateway': '198.18.0.19', 'dev': 'eth0', 'protocol': '159'}]
    assert rg.plan_missing(observed(theirs), state(DIRECT)) == ([], [])


def test_hold():
    assert rg.hold_active(100.0, 150.0)
    assert not rg.hold_active(None, 150.0)
    assert not rg.hold_active(100.0, 100.0 + rg.HOLD_MAX + 1)


# ------------------------------------------------------------------ one resync

class FakeKernel(object):
    """A runner answering ip -json link/route and recording ip -batch input."""

    def __init__(self, obs):
        self.obs = obs
        self.batches = []

    def __call__(self, argv, data=None):
        if argv[:2] == ['ip', '-batch']:
            self.batches.append(data)
            return 0, '', ''
        table = 'link' if 'link' in argv else 'route'
        return 0, json.dumps(self.obs[table]), ''


def write_state(tmp_path, *routes):
    path = tmp_path / 'routes.json'
    path.write_text(json.dumps({'network': NET, 'subnet': '172.20.1.0/24', 'routes': list(routes)}))
    return str(path)


def test_resync_applies_one_batch_and_logs_it(tmp_path):
    kernel, logs = FakeKernel(observed()), []
    guard = rg.Guard(write_state(tmp_path, DIRECT, HOSTGW), str(tmp_path / 'hold'), run=kernel,
                     logger=logs.append)
    assert guard.resync('link eth0 up') == []
    assert kernel.batches == ['route replace 172.20.2.0/24 via 198.18.0.12 proto 159\n'
                              'route replace 172.20.3.0/24 via 198.18.0.13 dev eth0 proto 159\n']
    assert 'link eth0 up: re-added 2 route(s)' in logs[-1]


def test_resync_waits_while_held_and_reloads_a_changed_state(tmp_path):
    kernel, logs = FakeKernel(observed()), []
    hold = tmp_path / 'hold'
    hold.write_text('06')
    state_file = write_state(tmp_path, DIRECT)
    guard = rg.Guard(state_file, str(hold), run=kernel, logger=logs.append)
    guard.resync('start')
    assert kernel.batches == [] and any('held' in line for line in logs)
    os.unlink(str(hold))
    with open(state_file, 'w') as handle:
        handle.write(json.dumps({'network': NET, 'routes': [HOSTGW, DIRECT]}))
    guard.resync('periodic resync')
    assert kernel.batches[0].count('route replace') == 2


def test_a_broken_state_file_guards_nothing(tmp_path):
    path = tmp_path / 'routes.json'
    path.write_text('{"network": "nope"}')
    kernel, logs = FakeKernel(observed()), []
    guard = rg.Guard(str(path), str(tmp_path / 'hold'), run=kernel, logger=logs.append)
    assert guard.resync('start') == [] and kernel.batches == []
    assert 'unusable' in logs[0]


def test_status_of_a_missing_pid_file(tmp_path, capsys):
    assert routeguard_cli.main(None, ['status', '--pid-file', str(tmp_path / 'none.pid')]) == 3
    assert capsys.readouterr().out.strip() == 'not running'


def test_ensure_keeps_the_one_running_guard(tmp_path, monkeypatch):
    pid_file, started = str(tmp_path / 'guard.pid'), []
    monkeypatch.setattr(routeguard_cli, 'guard_pids', lambda: [4242])
    assert routeguard_cli.ensure(pid_file, False, lambda: started.append(1)) == ('running', 4242)
    assert started == [] and routeguard_cli.read_pid(pid_file) == 4242   # its lost pid file written again


@pytest.mark.parametrize('running, restart, said', [([], False, 'started'), ([1, 2], False, 'restarted'),
                                                    ([4242], True, 'restarted')])
def test_ensure_stops_every_other_guard_before_it_starts_one(tmp_path, monkeypatch, running, restart, said):
    stopped = []
    monkeypatch.setattr(routeguard_cli, 'guard_pids', lambda: list(running))
    monkeypatch.setattr(routeguard_cli, 'stop', stopped.append)
    assert routeguard_cli.ensure('/run/g.pid', restart, lambda: 77) == (said, 77) and stopped == ['/run/g.pid']


def test_a_background_guard_that_exits_at_once_is_reported_with_its_exit_code(tmp_path, capsys):
    """The child is reaped once: the parent's report still names its exit code and log."""
    def fork(log_fd):
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        return pid
    processes = routeguard_cli.Processes(None, None, None, fork)
    log = str(tmp_path / 'guard.log')
    argv = ['serve', '--background', '--pid-file', str(tmp_path / 'guard.pid'), '--log-file', log]
    assert routeguard_cli.main(processes, argv) == 1
    assert 'the guard did not start (rc 3): see %s' % log in capsys.readouterr().err


def test_serve_in_the_background_needs_a_pid_file(capsys):
    assert routeguard_cli.main(None, ['serve', '--background', '--pid-file', '']) == 1
    assert 'serve --background needs --pid-file' in capsys.readouterr().err


# ------------------------------------------------------------------ traffic rules

RULES = {'mode': 'iptables', 'network': NET, 'subnet': '172.20.1.0/24', 'ip_masq': True,
         'random_fully': True}


def test_state_keeps_traffic_rules():
    doc = {'network': NET, 'routes': [], 'rules': RULES}
    assert rg.load_state(json.dumps(doc)).rules.subnet == '172.20.1.0/24'
    assert rg.load_state(json.dumps(dict(doc, rules={}))).rules is None
    with pytest.raises(rg.RouteGuardError, match='rules: subnet'):
        rg.load_state(json.dumps(dict(doc, rules=dict(RULES, subnet='10.0.0.0/24'))))
    with pytest.raises(rg.RouteGuardError, match='random_fully decided'):
        rg.load_state(json.dumps(dict(doc, rules=dict(RULES, random_fully=None))))


class FakeIptables(object):
    """A runner answering iptables-save from `saved` and recording iptables-restore input."""

    def __init__(self, saved):
        self.saved = saved
        self.restores = []

    def __call__(self, argv, data=None):
        if argv[0].endswith('iptables-restore'):
            self.restores.append(data)
        return 0, self.saved if argv[0].endswith('iptables-save') else '', ''


def rules_guard(tmp_path, kernel, logs):
    path = tmp_path / 'routes.json'
    path.write_text(json.dumps({'network': NET, 'routes': [], 'rules': RULES}))
    return rg.Guard(str(path), str(tmp_path / 'hold'), run=kernel, logger=logs.append,
                    which=lambda name: '/usr/sbin/' + name)


def test_flushed_rules_come_back_in_one_restore(tmp_path):
    kernel, logs = FakeIptables('*nat\n:POSTROUTING ACCEPT [0:0]\n:FLANNEL-POSTRTG - [0:0]\nCOMMIT\n'), []
    rules_guard(tmp_path, kernel, logs).heal_rules('rules check')
    assert len(kernel.restores) == 1 and kernel.restores[0].count('-A FLANNEL-POSTRTG') == 6
    assert 'rules check: restored the traffic rules' in logs[-1] and 'FillChain nat/FLANNEL-POSTRTG' in logs[-1]


def test_rules_in_place_cost_one_read(tmp_path):
    saved = '\n'.join(tr.state_text(tr.desired_state(tr.rule_spec(RULES))))  # iptables-save's form
    calls = []
    kernel = FakeIptables(saved)
    guard = rules_guard(tmp_path, lambda argv, data=None: calls.append(argv) or kernel(argv, data), [])
    guard.heal_rules('rules check')
    assert calls == [['/usr/sbin/iptables-save']] and kernel.restores == []


def test_releasing_the_hold_resyncs_at_once(tmp_path):
    """Routes lost while a run held the guard came back only at the next periodic resync (issue 24,
    defect 13). A fake clock, no monitor events and no periodic resync in sight: the hold's end
    alone must bring the routes back."""
    kernel, logs = FakeKernel(observed()), []
    hold = tmp_path / 'hold'
    hold.write_text('06')
    read_end, write_end = os.pipe()
    ticks = [0.0]

    class Monitor(object):
        stdout = os.fdopen(read_end, 'rb')

        def terminate(self):
            pass

        def wait(self):
            return 0

    def clock():
        ticks[0] += 10.0
        assert ticks[0] < 10000, 'no resync after the hold ended: %s' % logs
        return ticks[0]

    def logger(line):
        logs.append(line)
        if line.startswith('held while'):
            os.unlink(str(hold))          # the run ends: the role releases the hold
        if 're-added' in line:
            guard.stopping = True
    guard = rg.Guard(write_state(tmp_path, DIRECT), str(hold), run=kernel, spawn=lambda argv: Monitor(),
                     logger=logger, interval=1e9, rules_interval=1e9, clock=clock)
    try:
        guard.serve()
    finally:
        os.close(write_end)
        Monitor.stdout.close()
    assert any(line.startswith('hold released: re-added 1 route(s)') for line in logs), logs
