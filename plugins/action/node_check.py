# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.node_check: with a ``plan`` on the file store, the lease
file is the controller's (in a whole --check run, the run's copy, which the run's lease tasks
change), so its text goes to the module with the plan (read under the store's lock, its config
made this run's first); a node whose lease stays as it is keeps it, which is noted as renewed, as
flannel_subnet notes it (the role then runs no lease task on the node).

add-node's joining node (``join``): the module programs it with the lease its look planned from the
file's text; the lease is then written here, as its lease task would write it (flannel_subnet's
take_lease). Should another node have taken that subnet meanwhile (two add-nodes at once), the node
is programmed again, in a second call, with the lease written. ``joined``: that call's result,
returned again with no call to the node (the joining node's turn in main.yml's look)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.action.flannel_subnet import diffs_of, lease_file_store, take_lease
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError, subnet_key
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import NetConfError, parse_net_conf
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

    def _take_joined_lease(self, store, args, result, task_vars):
        """The lease the joining node was programmed with, written to the file; the node programmed
        again with the lease written when that differs (another node took the planned one)."""
        plan = args['plan']
        try:
            taken = take_lease(store, parse_net_conf(plan['network']), result['facts'], plan['network'],
                               self._task.check_mode)
        except (LeaseError, NetConfError, OSError) as exc:
            return dict(result, failed=True, msg=(
                'the node was programmed with the lease %s but it could not be written to %s: %s; fix that, '
                'then run add-node again (or del-node, which takes the node off)'
                % (result['lease']['lease'].get('subnet') or result['lease']['lease'].get('subnet6'), store.label, exc)))
        warnings = list(taken.pop('warnings', None) or [])
        if taken['lease'] != result['lease']['lease']:
            again = dict(args, apply=dict(args['apply'], lease=taken, peers=taken['peers']))
            del again['join']
            changed = result.get('changed')
            result.update(self._execute_module(module_name=MODULE, module_args=again, task_vars=task_vars))
            result.update(joined=True, changed=bool(changed or result.get('changed')))
        result['lease'] = taken
        result['changed'] = bool(result.get('changed') or taken.get('changed'))
        if warnings:
            result['warnings'] = list(result.get('warnings') or []) + warnings
        if self._task.diff:
            result['diff'] = diffs_of(taken) + list(result.get('diff') or [])
        return result

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args, store, new_config = dict(self._task.args), None, None
        if args.get('joined'):   # the joining node's first call did it all: said, not done again
            result.update((k, v) for k, v in args['joined'].items()
                          if k not in ('diff', 'warnings', 'invocation') and not k.startswith('_ansible'))
            result['changed'] = False
            return result
        plan = args.get('plan')
        if isinstance(plan, dict) and plan.get('store') == 'file' and plan.get('lease_file') and (
                args.get('join') or not args.get('apply')):
            # a whole --check run: the leases its lease tasks took too (add-node's new node's)
            store = lease_file_store(plan['lease_file'], self._task.check_mode)
            text, new_config = self._lease_text(store, plan.get('network'))
            args['plan'] = dict(plan, lease_text=text)
        elif args.get('join'):   # other stores: the role's path takes the lease
            del args['join']
        try:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            if result.get('joined') and not result.get('failed'):
                return self._take_joined_lease(store, args, result, task_vars)
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
