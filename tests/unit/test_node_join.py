# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""add-node's joining node in one call (node_check's join), its action plugin on the controller:
it writes the lease the node was programmed with, or programs it again with the lease it wrote
when another node took the planned one meanwhile. Controller only (test_node_python skips it);
the module's side is in test_node_apply.py, tests/integration/test_add_del_node.py joins real
lab nodes."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.kubeasz.network.plugins.action.node_check import ActionModule
from ansible_collections.kubeasz.network.tests.unit.test_node_apply import PEER, joining, store_with


class Task(object):
    check_mode, diff = False, False


class Joined(object):
    """What _take_joined_lease uses of the action plugin: its task and the module's calls."""
    _take_joined_lease = ActionModule._take_joined_lease

    def __init__(self):
        self._task, self.calls = Task(), []

    def _execute_module(self, module_name, module_args, task_vars):
        self.calls.append(module_args)
        return dict(changed=True, applied=True, in_plan=True, lease=module_args['apply']['lease'])


def joined_result(look):
    return dict(changed=True, joined=True, applied=True, in_plan=True, lease=look['lease'], facts=look['facts'])


def test_the_lease_the_node_was_programmed_with_is_written_once(tmp_path):
    store = store_with(tmp_path, PEER)
    the_plan, look = joining(tmp_path, store)
    action = Joined()
    args = dict(plan=the_plan, join=dict(nodes=2), apply=dict(python='/usr/bin/python3'))
    result = action._take_joined_lease(store, args, joined_result(look), {})
    assert action.calls == []   # no second call
    assert result['lease']['lease']['subnet'] == '172.20.2.0/24' and result['lease']['changed'] and result['changed']
    assert sorted(json.loads(store.text())['leases']) == ['172.20.1.0-24', '172.20.2.0-24']
    assert result['lease']['renewed']   # noted as its lease task notes it


def test_a_lease_another_node_took_meanwhile_is_replaced_in_a_second_call(tmp_path):
    """Two add-nodes at once plan the same free subnet: the second to write gets the next one and
    is programmed again with it (the other nodes learn only the lease written)."""
    store = store_with(tmp_path, PEER)
    the_plan, look = joining(tmp_path, store)
    store_with(tmp_path, '198.18.0.13')   # the other add-node wrote 172.20.2.0/24 first
    action = Joined()
    args = dict(plan=the_plan, join=dict(nodes=3), apply=dict(python='/usr/bin/python3'))
    result = action._take_joined_lease(store, args, joined_result(look), {})
    assert [call['apply']['lease']['lease']['subnet'] for call in action.calls] == ['172.20.3.0/24']
    assert 'join' not in action.calls[0] and action.calls[0]['apply']['python'] == '/usr/bin/python3'
    assert action.calls[0]['apply']['peers'] == result['lease']['peers']
    assert result['joined'] and result['lease']['lease']['subnet'] == '172.20.3.0/24'
    assert sorted(json.loads(store.text())['leases']) == ['172.20.1.0-24', '172.20.2.0-24', '172.20.3.0-24']


def test_a_lease_that_cannot_be_written_fails_the_task_saying_what_the_node_holds(tmp_path):
    store = store_with(tmp_path, PEER)
    the_plan, look = joining(tmp_path, store)
    with open(store.path, 'w') as handle:
        handle.write('{not json')
    args = dict(plan=the_plan, join=dict(nodes=2), apply={})
    result = Joined()._take_joined_lease(store, args, joined_result(look), {})
    assert result['failed'] and result['msg'].startswith('the node was programmed with the lease 172.20.2.0/24 but it could')
    assert 'run add-node again (or del-node' in result['msg']
