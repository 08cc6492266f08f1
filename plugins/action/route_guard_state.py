# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.route_guard_state: the route guard's state document from
this run's results and what of the guard differs on the node, decided on the controller; the
files that differ (guard, state, unit) are then written with one call of the module on the node."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib

from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import files_to_write, guard_decision
from ansible_collections.kubeasz.network.plugins.modules.route_guard_state import ARGUMENT_SPEC

MODULE = 'kubeasz.network.route_guard_state'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args['write'] is not None:
            result.update(failed=True, msg='write is internal to kubeasz.network.route_guard_state; do not set it')
            return result
        if args['guard_text'] is not None and not args['guard_sha1']:
            args['guard_sha1'] = hashlib.sha1(args['guard_text'].encode('utf-8')).hexdigest()
        decision = guard_decision(args)
        result.update(decision, changed=False, restart=False)
        write = files_to_write(args, decision)
        if not write:
            return result
        try:
            # the node_check result (with its leases and routes) is not needed on the node
            res = self._execute_module(module_name=MODULE, module_args=dict(wanted=True, node={}, write=write),
                                       task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if res.get('failed'):
            return dict(result, **res)
        written = res.get('written') or []
        restart = bool(set(written) & set([args['guard_file'], args['unit_file']]))
        differs = decision['differs']
        result.update(changed=bool(written), written=written, diff=res.get('diff') or [], restart=restart,
                      # left for route_guard.yml: start or restart the guard
                      todo=bool(restart or differs.get('stopped')))
        return result
