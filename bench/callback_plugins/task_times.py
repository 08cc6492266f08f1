# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""task_times: wall time of every task (all hosts), slowest first, at the end of the run.

A stand-in for ansible.posix's profile_tasks for bench/bench_scale.py --profile (no Galaxy
here): ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_times.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_times
type: aggregate
short_description: wall time per task, slowest first
description:
  - Prints each task's wall time (first host start to the next task's start) and the number of
    hosts it ran on (not skipped), slowest first, after the PLAY RECAP.
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._times = []      # [name, seconds, hosts run]
        self._current = None
        self._start = None

    def _close(self):
        if self._current is not None:
            self._current[1] = time.perf_counter() - self._start
            self._current = None

    def _task(self, task, *args, **kwargs):
        self._close()
        self._start = time.perf_counter()
        self._current = [task.get_name(), 0.0, 0]
        self._times.append(self._current)

    v2_playbook_on_task_start = _task
    v2_playbook_on_handler_task_start = _task

    def _ran(self, result, *args, **kwargs):
        if self._current is not None:
            self._current[2] += 1

    v2_runner_on_ok = _ran
    v2_runner_on_failed = _ran

    def v2_playbook_on_stats(self, stats):
        self._close()
        total = sum(t[1] for t in self._times)
        self._display.display('TASK TIMES (%d tasks, %.2f s)' % (len(self._times), total))
        for name, seconds, hosts in sorted(self._times, key=lambda t: -t[1]):
            self._display.display('%-72s %3d hosts %7.2fs' % (name[:72], hosts, seconds))
