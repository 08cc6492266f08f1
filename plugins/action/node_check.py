# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.node_check: with a ``plan`` on the file store, the lease
file is the controller's (in a whole --check run, the run's copy, which the run's lease tasks
change), so its text goes to the module with the plan (read under the store's lock, its config
made this run's first); a node whose lease stays as it is keeps it, which is noted as renewed, as
flannel_subnet notes it (the role then runs no lease task on the node)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import subnet_key
from ansible_collections.kubeasz.network.plugins.action.flannel_subnet import lease_file_store
from ansible_collections.kubeasz.network.plugins.module_utils.store.leaserenew import load_renewals, record_renewal

MODULE = 'kubeasz.network.node_check'


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    @staticmethod
    def _lease_text(store, network):
        """The lease file's text for the node, and the document to write when its config is not
        this run's: the net-conf.json the leases are kept for (flannel's <prefix>/config) becomes
        this run's once a node is in plan with it (a changed config alone, DirectRouting toggled,
        changes no lease and no peer's plan); every node is checked against the file as it will be."""
        with store.locked(shared=True, create=False):
            text = store.text()
            if text is None or network is None:
                return text, None
            doc = store.load()
            if not doc['leases'] or doc['config'] == network:
                return text, None
            return store.dumps(dict(doc, config=network)), dict(doc, config=network)

    def _write_config(self, store, doc):
        """Write the lease file's new config (not in check mode); its --diff."""
        with store.locked(create=False):
            before = store.text()
            if not self._task.check_mode:
                store.save(dict(store.load(), config=doc['config']))
        return dict(before=before or '', after=store.dumps(doc), before_header=store.label, after_header=store.label)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args, store, new_config = dict(self._task.args), None, None
        plan = args.get('plan')
        if isinstance(plan, dict) and plan.get('store') == 'file' and plan.get('lease_file') and not args.get('apply'):
            # a whole --check run: the leases its lease tasks took too (add-node's new node's)
            store = lease_file_store(plan['lease_file'], self._task.check_mode)
            text, new_config = self._lease_text(store, plan.get('network'))
            args['plan'] = dict(plan, lease_text=text)
        try:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # written once, by the first play host, when it is in plan now (else its lease task writes
        # it, after the preflight)
        first = (task_vars.get('ansible_play_hosts') or [None])[0] == task_vars.get('inventory_hostname')
        if new_config and first and result.get('in_plan') and not result.get('failed'):
            result.update(changed=True, diff=[self._write_config(store, new_config)] + list(result.get('diff') or []))
        elif new_config and first:
            result['config_pending'] = True   # the node's lease task writes it
        lease = (result.get('lease') or {}).get('lease')
        if store is not None and lease and result['lease'].get('changed') is False:
            key, real = subnet_key(lease['subnet'], lease.get('subnet6')), getattr(store, 'real', store)
            if not self._task.check_mode:
                with store.locked(create=False):
                    record_renewal(store.path, key)
            result['lease']['renewed'] = load_renewals(real.path).get(key)
        return result
