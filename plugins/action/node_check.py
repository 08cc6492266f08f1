# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.node_check: with a ``plan`` on the file store, the lease
file is the controller's, so its text goes to the module with the plan (read under the store's
shared lock); a node whose lease stays as it is keeps it, which is noted as renewed, as flannel_subnet
notes it (the role then runs no lease task on the node)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import subnet_key
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
from ansible_collections.kubeasz.network.plugins.module_utils.store.leaserenew import load_renewals, record_renewal

MODULE = 'kubeasz.network.node_check'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args, store = dict(self._task.args), None
        plan = args.get('plan')
        if isinstance(plan, dict) and plan.get('store') == 'file' and plan.get('lease_file'):
            store = FileStore(plan['lease_file'])
            with store.locked(shared=True, create=False):
                args['plan'] = dict(plan, lease_text=store.text())
        try:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        lease = (result.get('lease') or {}).get('lease')
        if store is not None and lease and result['lease'].get('changed') is False:
            key = subnet_key(lease['subnet'], lease.get('subnet6'))
            if not self._task.check_mode:
                with store.locked(create=False):
                    record_renewal(store.path, key)
            result['lease']['renewed'] = load_renewals(store.path).get(key)
        return result
