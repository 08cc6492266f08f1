# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback of ``ezctl net status`` (not part of the collection): every task result per host,
written as JSON to $EZCTL_STATUS_FILE when the playbook ends; the screen gets nothing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: ezctl_status
type: stdout
short_description: task results per host as JSON for ezctl net status
description: Writes every task result per host to the file named by EZCTL_STATUS_FILE.
'''

KEEP = ('changed', 'renewed', 'warnings', 'failed', 'skipped', 'unreachable', 'msg', 'diff', 'lease', 'peers', 'iface', 'public_ip',
        'public_ip6', 'routes', 'direct_peers', 'vxlan_peers', 'vtep_mac', 'device', 'mode', 'stdout', 'rc', 'ansible_facts')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'ezctl_status'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.results = {}

    def _record(self, result, status):
        task = result._task
        data = dict((k, v) for k, v in result._result.items() if k in KEEP)
        self.results.setdefault(result._host.get_name(), []).append(dict(
            task=task.get_name().split(' : ', 1)[-1], action=task.action, status=status, role=task._role.get_name() if task._role else None,
            result=data))

    def v2_runner_on_ok(self, result):
        self._record(result, 'changed' if result._result.get('changed') else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('EZCTL_STATUS_FILE')
        if path:
            with open(path, 'w') as handle:
                json.dump(self.results, handle, default=str)
