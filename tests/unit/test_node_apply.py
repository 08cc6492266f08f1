# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The full path's last call (node_check's apply) without root: which of the route guard's files
it writes and how it starts the guard, for each runner, in check mode too; the guard held while
the call changes the node; add-node's join refused by the preflight before anything changes
(test_node_join.py: what its action plugin does after).
tests/integration (test_route_guard, test_fast_path, test_add_del_node) run it on a real lab."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.routeguard import cli as routeguard_cli
from ansible_collections.kubeasz.network.plugins.module_utils.entry.nodecheck import holding, start_guard
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.entry.fastpath import node_plan
from ansible_collections.kubeasz.network.plugins.module_utils.entry.nodecheck import join
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    Claim, DataplaneError, NodePart, vtep_mac)
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
from ansible_collections.kubeasz.network.tests.unit.netstate import FakeKernel, observed
from ansible_collections.kubeasz.network.tests.unit.test_fastpath import FAMILIES, LOOK, NET_CONF, NODE, VXLAN, plan
from ansible_collections.kubeasz.network.tests.unit.test_leases import net_conf


class Runs(object):
    """A node's run_command that records the commands and answers rc."""

    def __init__(self, rc=0):
        self.argvs, self.rc = [], rc

    def __call__(self, argv, data=None):
        self.argvs.append(list(argv))
        return self.rc, 'started 42\n' if self.rc == 0 else '', 'boom' if self.rc else ''


def params(tmp_path, runner='process'):
    return dict(runner=runner, guard_dir=str(tmp_path / 'guard'), guard_state=str(tmp_path / 'routes.json'),
                guard_unit=str(tmp_path / 'flannel-route-guard.service'), hold=str(tmp_path / 'hold'),
                guard_pid_file=str(tmp_path / 'guard.pid'), guard_log_file=str(tmp_path / 'guard.log'))


GIVEN = dict(guard_text='print("guard")\n', unit_text='[Service]\n', python='/usr/bin/python3', interval=10)


def decision(**differs):
    base = dict(guard=False, state=False, unit=False, stopped=False)
    base.update(differs)
    return dict(todo=any(base.values()), differs=base, state={}, state_text='{"routes": []}\n')


def test_a_new_guard_is_written_and_started_once(tmp_path, monkeypatch):
    monkeypatch.setattr(routeguard_cli, 'guard_pids', lambda: [])   # none runs in this namespace
    run, p = Runs(), params(tmp_path)
    out = start_guard(run, p, GIVEN, decision(guard=True, state=True, stopped=True))
    guard_file = os.path.join(p['guard_dir'], 'flannel-route-guard')
    assert out['written'] == [guard_file, p['guard_state']] and out['changed'] and out['started']
    assert open(guard_file).read() == GIVEN['guard_text']
    # its script changed: the running guard (if any) is stopped, one Python start serves in the background
    assert out['restart'] and run.argvs == [[
        '/usr/bin/python3', guard_file, 'serve', '--background', '--state', p['guard_state'], '--hold', p['hold'],
        '--interval', '10', '--pid-file', p['guard_pid_file'], '--log-file', p['guard_log_file']]]
    # only the state's --diff is shown (the guard is 200 KB of module_utils)
    assert [d['after_header'] for d in out['diff']] == [p['guard_state']]


def test_a_new_state_alone_starts_nothing(tmp_path):
    run = Runs()
    out = start_guard(run, params(tmp_path), GIVEN, decision(state=True))
    assert out['changed'] and not out['restart'] and not out['started'] and run.argvs == []


def test_a_stopped_guard_is_started_without_a_restart(tmp_path):
    run = Runs()
    out = start_guard(run, params(tmp_path, 'systemd'), GIVEN, decision(stopped=True))
    assert out['written'] == [] and out['started'] and not out['restart']
    assert run.argvs == [['systemctl', 'enable', 'flannel-route-guard.service'],
                         ['systemctl', 'start', 'flannel-route-guard.service']]


def test_a_new_unit_is_reloaded_and_restarted(tmp_path):
    run, p = Runs(), params(tmp_path, 'systemd')
    out = start_guard(run, p, GIVEN, decision(unit=True))
    assert out['written'] == [p['guard_unit']] and out['restart']
    assert run.argvs == [['systemctl', 'daemon-reload'], ['systemctl', 'enable', 'flannel-route-guard.service'],
                         ['systemctl', 'restart', 'flannel-route-guard.service']]


def test_nothing_differs_nothing_runs(tmp_path):
    run = Runs()
    out = start_guard(run, params(tmp_path), GIVEN, decision())
    assert not out['changed'] and out['written'] == [] and run.argvs == []


def test_check_mode_says_what_the_run_will_do_and_changes_nothing(tmp_path):
    run, p = Runs(), params(tmp_path)
    out = start_guard(run, p, GIVEN, decision(guard=True, state=True, stopped=True), check_mode=True)
    assert out['changed'] and out['started'] and out['restart'] and run.argvs == []
    assert not os.path.exists(p['guard_dir']) and not os.path.exists(p['guard_state'])
    assert out['diff'][0]['before'] == '' and out['diff'][0]['after'] == '{"routes": []}\n'


def test_a_background_guard_that_says_something_else_fails_the_task(tmp_path, monkeypatch):
    monkeypatch.setattr(routeguard_cli, 'guard_pids', lambda: [])
    with pytest.raises(DataplaneError, match="the route guard did not start: it said 'usage: ...'"):
        start_guard(lambda argv, data=None: (0, 'usage: ...\n', ''), params(tmp_path), GIVEN, decision(stopped=True))


def test_a_guard_that_does_not_start_fails_the_task_naming_the_command(tmp_path):
    with pytest.raises(DataplaneError, match='the route guard did not start: systemctl enable .* exited 1: boom'):
        start_guard(Runs(rc=1), params(tmp_path, 'systemd'), GIVEN, decision(stopped=True))


def test_the_guard_is_held_while_the_call_changes_the_node_and_released_after(tmp_path):
    """The apply holds the guard itself: add-node's joining node makes its call outside the full
    path's hold, and the full path's release after it is then not needed."""
    p = params(tmp_path)
    with holding(p, check_mode=False):
        assert os.path.exists(p['hold'])
    assert not os.path.exists(p['hold'])
    with pytest.raises(DataplaneError):
        with holding(p, check_mode=False):
            raise DataplaneError('ip -batch failed')
    assert not os.path.exists(p['hold'])   # a failed call releases it too


def test_nothing_is_held_in_check_mode_or_without_a_guard(tmp_path):
    p = params(tmp_path)
    with holding(p, check_mode=True):
        assert not os.path.exists(p['hold'])
    with holding(dict(p, hold=None), check_mode=False):
        assert os.listdir(str(tmp_path)) == []


# ------------------------------------------------------------------ add-node's join

PEER = '198.18.0.12'


def store_with(tmp_path, *ips):
    store = FileStore(str(tmp_path / 'flannel-leases.json'))
    for ip in ips:
        with store.locked():
            store.acquire(net_conf(), Claim('vxlan', 1, {IPV4: NodePart(ip, vtep_mac(ip, 1))}), config=NET_CONF)
    return store


def joining(tmp_path, store):
    """The joining node's plan and its look (node_plan) against the lease file as it is now."""
    the_plan = plan(lease_file=store.path, lease_text=store.text(), backend=VXLAN, families=FAMILIES,
                    guard=dict(wanted=False, runner='process', guard_sha1='', unit_sha1=''),
                    probe=dict(node='new', outside='', outside6=''))
    look = dict(LOOK, **node_plan(FakeKernel(observed()), the_plan, LOOK))
    return the_plan, look


def test_a_preflight_that_fails_stops_the_join_before_anything_changes(tmp_path):
    store = store_with(tmp_path, PEER)
    the_plan, look = joining(tmp_path, store)
    assert look['lease']['lease']['subnet'] == '172.20.2.0/24' and look['probe']['public_ip'] == NODE
    kernel, hold = FakeKernel(observed()), str(tmp_path / 'hold')
    params = dict(plan=the_plan, join=dict(nodes=1000), apply={}, hold=hold)   # 256 subnets for 1,000 nodes
    with pytest.raises(DataplaneError, match='preflight: .*FAIL capacity: .* for 1000 nodes'):
        join(kernel, params, look)
    assert kernel.writes == [] and not os.path.exists(hold)
