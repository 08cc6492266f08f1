# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import Op
from flannel_route_guard import subprocess_runner  # roles/flannel/files, on sys.path (tests/conftest.py)


class FakeRun:
    def __init__(self, replies=None):
        self.replies = replies or {}
        self.calls = []

    def __call__(self, argv, data=None):
        self.calls.append((list(argv), data))
        return self.replies.get(tuple(argv), (0, '', ''))


def test_observe_one_process_per_table():
    run = FakeRun({tuple(iproute.TABLE_ARGV['route']): (0, json.dumps([{'dst': 'default'}]), ''),
                   tuple(iproute.TABLE_ARGV['neigh']): (0, '', '')})
    observed = iproute.observe(run, ['route', 'neigh'])
    assert observed == {'route': [{'dst': 'default'}], 'neigh': []}
    assert [c[0] for c in run.calls] == [iproute.TABLE_ARGV['route'], iproute.TABLE_ARGV['neigh']]
    assert iproute.TABLE_ARGV['route'][:3] == ['ip', '-4', '-json']
    assert 'main' in iproute.TABLE_ARGV['route']
    assert iproute.TABLE_ARGV['fdb'][0] == 'bridge'


def test_observe_unknown_table():
    with pytest.raises(ValueError):
        iproute.observe(FakeRun(), ['rules'])


def test_observe_failure_names_command():
    run = FakeRun({tuple(iproute.TABLE_ARGV['link']): (1, '', 'boom')})
    with pytest.raises(iproute.IprouteError) as err:
        iproute.observe(run, ['link'])
    assert 'ip -json -details link show' in str(err.value)
    assert err.value.command == 'ip -json -details link show'
    assert 'boom' in str(err.value)


def test_observe_bad_json():
    run = FakeRun({tuple(iproute.TABLE_ARGV['addr']): (0, '{not json', '')})
    with pytest.raises(iproute.IprouteError):
        iproute.observe(run, ['addr'])


def test_batches_group_consecutive_tools():
    ops = [Op('ip', 'a'), Op('ip', 'b'), Op('bridge', 'c'), Op('bridge', 'd')]
    assert iproute.batches(ops) == [('ip', ['a', 'b']), ('bridge', ['c', 'd'])]
    assert iproute.batches([]) == []


def test_apply_one_process_per_tool():
    run = FakeRun()
    iproute.apply(run, [Op('ip', 'neigh replace x'), Op('ip', 'neigh replace y'),
                        Op('bridge', 'fdb replace z')], IPV4)
    assert run.calls == [(['ip', '-batch', '-'], 'neigh replace x\nneigh replace y\n'),
                         (['bridge', '-batch', '-'], 'fdb replace z\n')]


def test_apply_nothing_spawns_nothing():
    run = FakeRun()
    iproute.apply(run, [], IPV4)
    assert run.calls == []


def test_apply_error_names_failed_line():
    run = FakeRun({('ip', '-batch', '-'): (1, '', 'RTNETLINK answers: File exists\nCommand failed -:2\n')})
    with pytest.raises(iproute.IprouteError) as err:
        iproute.apply(run, [Op('ip', 'route add 1'), Op('ip', 'route add 2')], IPV4)
    assert err.value.command == 'ip route add 2'
    assert 'File exists' in str(err.value)
    assert err.value.applied == ['ip route add 1'] and err.value.partial


def test_apply_error_on_first_line_applied_nothing():
    run = FakeRun({('ip', '-batch', '-'): (1, '', 'Error\nCommand failed -:1\n')})
    with pytest.raises(iproute.IprouteError) as err:
        iproute.apply(run, [Op('ip', 'route add 1'), Op('ip', 'route add 2')], IPV4)
    assert err.value.applied == [] and not err.value.partial


def test_apply_error_in_second_batch_keeps_the_first():
    run = FakeRun({('bridge', '-batch', '-'): (1, '', 'Error\nCommand failed -:1\n')})
    with pytest.raises(iproute.IprouteError) as err:
        iproute.apply(run, [Op('ip', 'neigh replace a'), Op('bridge', 'fdb replace b')], IPV4)
    assert err.value.applied == ['ip neigh replace a'] and err.value.partial


def test_apply_error_without_line_number():
    run = FakeRun({('bridge', '-batch', '-'): (1, '', 'weird')})
    with pytest.raises(iproute.IprouteError) as err:
        iproute.apply(run, [Op('bridge', 'fdb x')], IPV4)
    assert err.value.command == 'bridge -batch (1 lines)'
    assert err.value.partial  # how far it got is unknown


def test_apply_unknown_tool():
    with pytest.raises(ValueError):
        iproute.apply(FakeRun(), [Op('sh', 'rm -rf /')], IPV4)


def test_route_get_single_process_maps_results():
    out = ('[{"dst":"198.18.0.12","dev":"eth0","prefsrc":"198.18.0.11","flags":[]}]\n'
           '[{"dst":"10.1.1.1","gateway":"198.18.0.1","dev":"eth0","flags":[]}]\n')
    seen = {}

    def run(argv, data=None):
        assert argv[:4] == ['ip', '-force', '-json', '-batch'] and data is None
        with open(argv[4]) as handle:
            seen['batch'] = handle.read()
        seen['path'] = argv[4]
        return 1, out, 'RTNETLINK answers: Network is unreachable'
    found = iproute.route_get(run, ['198.18.0.12', '10.1.1.1', '192.0.2.9', '198.18.0.12'], IPV4)
    assert seen['batch'] == 'route get 198.18.0.12\nroute get 10.1.1.1\nroute get 192.0.2.9\n'
    assert not os.path.exists(seen['path'])
    assert found['198.18.0.12'][0]['dev'] == 'eth0'
    assert found['10.1.1.1'][0]['gateway'] == '198.18.0.1'
    assert found['192.0.2.9'] == []


def test_route_get_no_ips_no_process():
    run = FakeRun()
    assert iproute.route_get(run, [], IPV4) == {}
    assert run.calls == []


def test_counting_runner_counts():
    run = iproute.counting_runner(FakeRun())
    run(['ip', 'x'])
    run(['bridge', 'y'], 'data')
    assert run.calls == [['ip', 'x'], ['bridge', 'y']]


def test_subprocess_runner_prefix():
    run = subprocess_runner(prefix=['env'])
    rc, out, dummy = run(['echo', 'hi'])
    assert rc == 0 and out == 'hi\n'
    rc, out, dummy = run(['cat'], 'data')
    assert out == 'data'
