# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.net_probe: mode=preflight and mode=report are decided here,
on the controller, with no module process (report also writes ``dest`` for ezctl); the node modes
(facts, listen, probe, stop) run the module on the node, as the normal action would (async too)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible.utils.vars import merge_hash

from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import write_atomic
from ansible_collections.kubeasz.network.plugins.module_utils.check import verdict
from ansible_collections.kubeasz.network.plugins.module_utils.check.render import svg, text
from ansible_collections.kubeasz.network.plugins.modules.net_probe import ARGUMENT_SPEC, CONTROLLER_MODES, REQUIRED_IF
from ansible_collections.kubeasz.network.plugins.plugin_utils.controller_action import ControllerAction


def heard_of(args):
    """The listeners' results by node: ``heard`` when given (mode=listen jobs), else each probe's own."""
    if args['heard'] is not None:
        return args['heard']
    return dict((node, (result or {}).get('heard')) for node, result in args['probes'].items())


def report(args):
    """The whole check as data, text and drawing; written to ``dest`` too when given."""
    params = verdict.report_params(args['net_conf'], args['facts'], args['ip_masq'])
    rep = verdict.report(args['facts'], args['probes'], heard_of(args), args['net_conf'], args['nodes'], params)
    result = {'report': rep, 'text': text(args['cluster'], rep, params), 'svg': svg(args['cluster'], rep)}
    if args['dest']:
        write_atomic(args['dest'], json.dumps(result), mode=0o600)
    return result


class ActionModule(ControllerAction):
    """preflight and report on the controller; the other modes run the module on the node."""

    _supports_async = True   # mode=listen runs as an async job
    ARGUMENT_SPEC = ARGUMENT_SPEC
    REQUIRED_IF = REQUIRED_IF

    def decide(self, args, task_vars):
        if args['mode'] == 'preflight':
            return verdict.preflight_result(args['facts'], args['net_conf'], args['nodes'])
        return report(args)

    def run(self, tmp=None, task_vars=None):
        if self._task.args.get('mode') in CONTROLLER_MODES:
            return super(ActionModule, self).run(tmp, task_vars)
        result = super(ControllerAction, self).run(tmp, task_vars)   # ActionBase's: the module on the node
        del tmp
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
