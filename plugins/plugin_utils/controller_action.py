# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's actions that run entirely on the controller and never connect
to the host (flannel_config)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """Validates the task's arguments against ARGUMENT_SPEC (and REQUIRED_IF) and returns
    ``decide(args, task_vars)`` with changed false; a subclass names both."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC = {}
    REQUIRED_IF = []

    def decide(self, args, task_vars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp  # no remote temp dir: this plugin never connects to the host
        dummy, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC, required_if=self.REQUIRED_IF)
        result.update(self.decide(args, task_vars or {}))
        result.setdefault('changed', False)
        return result
