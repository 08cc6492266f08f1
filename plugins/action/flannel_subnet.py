# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.flannel_subnet.

store=etcd|kube: the module talks to the store from the node; this plugin only copies the TLS
files named by etcd_ca/etcd_cert/etcd_key/kube_ca/kube_cert/kube_key from the controller to the
task's temporary directory on the node (removed after the task) and runs the module.

store=file:
present: module(state=query) on the node -> allocate under the lease file's lock on the
         controller -> save (not in check mode) -> module(state=present, subnet=...).
absent:  module(state=query) unless public_ip is given -> release -> module(state=absent).
query:   module(state=query) -> own lease and peers from the store; nothing changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.leases import (
    FileStore, LeaseError, own_entries, parse_leases, split_peers, store_diff)
from ansible_collections.kubeasz.network.plugins.module_utils.leaserenew import load_renewals, record_renewal
from ansible_collections.kubeasz.network.plugins.module_utils.netconf import NetConfError, parse_net_conf
from ansible_collections.kubeasz.network.plugins.modules.flannel_subnet import (
    ARGUMENT_SPEC, ACTION_REQUIRED_IF, TLS_FILES)

MODULE = 'kubeasz.network.flannel_subnet'


def diffs_of(res):
    diff = res.get('diff') or []
    return list(diff) if isinstance(diff, list) else [diff]


def lease_diff(path, before, after, public_ip):
    return store_diff(path, before, after, public_ip)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=ACTION_REQUIRED_IF)
        if args.get('subnet') is not None:
            raise AnsibleActionFail('subnet is internal to kubeasz.network.flannel_subnet; do not set it')
        self._task_vars = task_vars
        try:
            netconf = self._netconf(args)
            if args['store'] != 'file':
                result.update(self._on_node(args))
                return result
            result.update(getattr(self, '_' + args['state'])(args, netconf))
        except (LeaseError, OSError) as exc:
            raise AnsibleActionFail(str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _netconf(args):
        if args['network'] is None:
            return None
        try:
            return parse_net_conf(args['network'])
        except NetConfError as exc:
            raise AnsibleActionFail('network: %s' % exc)

    def _module(self, args, **overrides):
        module_args = dict((k, v) for k, v in args.items() if v is not None)
        module_args.update(overrides)
        res = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=self._task_vars)
        if res.get('failed'):
            raise _ModuleFailed(res)
        return res

    @staticmethod
    def _facts(res):
        keep = ('iface', 'public_ip', 'mtu', 'vtep_mac', 'subnet_env', 'previous_subnet')
        return dict((k, res[k]) for k in keep if k in res)

    def _copy_tls(self, option, path):
        """Copy a TLS file from the controller into the task's temporary directory on the node."""
        local = os.path.expanduser(path)
        if not os.path.isfile(local):
            raise AnsibleActionFail('%s: %s is not a file on the controller' % (option, path))
        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, option.replace('_', '-') + '.pem')
        self._transfer_file(local, remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote), execute=False)
        return remote

    # ------------------------------------------------------------ states

    def _on_node(self, args):
        """store=etcd|kube: the module does the work on the node."""
        module_args = dict(args)
        for option in TLS_FILES:
            if not option.startswith(args['store'] + '_'):
                module_args.pop(option, None)   # the other store's files stay on the controller
            elif args.get(option):
                module_args[option] = self._copy_tls(option, args[option])
        try:
            return self._module(module_args)
        except _ModuleFailed as exc:
            return exc.result

    def _present(self, args, netconf):
        try:
            facts = self._module(args, state='query')
            store = FileStore(args['lease_file'])
            backend = netconf.backend
            with store.locked(create=not self._task.check_mode):
                lease, store_changed, warnings, before, after = store.acquire(
                    netconf, facts['public_ip'], backend.type,
                    backend.vni if backend.type == 'vxlan' else None, facts.get('vtep_mac'),
                    preferred=facts.get('previous_subnet'), config=args['network'],
                    check_mode=self._task.check_mode)
                if not self._task.check_mode:
                    record_renewal(store.path, lease.key)
            leases, dummy, dummy2 = parse_leases(after['leases'])
            dummy, peers, more = split_peers(leases, lease.public_ip, netconf)
            res = self._module(args, state='present', subnet=str(lease.subnet))
        except _ModuleFailed as exc:
            return exc.result
        out = self._facts(facts)
        out.update(self._facts(res))
        out.update(lease=lease.as_peer(), peers=[p.as_peer() for p in peers],
                   changed=bool(store_changed or res.get('changed')),
                   diff=[lease_diff(store.path, before, after, lease.public_ip)] + diffs_of(res))
        return self._warn(out, warnings + more, facts, res)

    def _query(self, args, netconf):
        try:
            facts = self._module(args, state='query')
        except _ModuleFailed as exc:
            return exc.result
        store = FileStore(args['lease_file'])
        with store.locked(shared=True, create=False):
            doc = store.load()
        leases, warnings, dummy = parse_leases(doc['leases'])
        own, peers, more = split_peers(leases, facts['public_ip'], netconf)
        out = self._facts(facts)
        out.update(changed=False, lease=own.as_peer() if own else None, peers=[p.as_peer() for p in peers])
        if own:
            out['renewed'] = load_renewals(store.path).get(own.key)
        return self._warn(out, warnings + more)

    def _absent(self, args, netconf):
        try:
            facts = {} if args['public_ip'] else self._module(args, state='query')
            public_ip = args['public_ip'] or facts['public_ip']
            store = FileStore(args['lease_file'])
            with store.locked(create=not self._task.check_mode):
                before = store.load()
                gone, store_changed = store.release(public_ip, check_mode=self._task.check_mode)
                for lease in gone if not self._task.check_mode else []:
                    record_renewal(store.path, lease.key, gone=True)
                after = before if self._task.check_mode else store.load()
                leases, warnings, dummy = parse_leases(after['leases'])
            res = self._module(args, state='absent')
        except _ModuleFailed as exc:
            return exc.result
        if self._task.check_mode:
            leases = [lease for lease in leases if lease not in gone]
        dummy, peers, more = split_peers(leases, public_ip, netconf)
        out = self._facts(facts)
        out.update(public_ip=str(public_ip), subnet_env={}, lease=gone[0].as_peer() if gone else None,
                   peers=[p.as_peer() for p in peers], changed=bool(store_changed or res.get('changed')),
                   diff=[dict(before=own_entries(before, public_ip), after='',
                              before_header='%s (%s)' % (store.path, public_ip),
                              after_header='%s (%s)' % (store.path, public_ip))] + diffs_of(res))
        return self._warn(out, warnings + more)

    @staticmethod
    def _warn(out, warnings, *results):
        for res in results:
            warnings = list(res.get('warnings') or []) + list(warnings)
        if warnings:
            out['warnings'] = list(warnings)
        return out


class _ModuleFailed(Exception):
    def __init__(self, result):
        super(_ModuleFailed, self).__init__(result.get('msg'))
        self.result = result
