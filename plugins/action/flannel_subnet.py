# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.flannel_subnet (store=file).

present: module(state=query) on the node -> allocate under the lease file's lock on the
         controller -> save (not in check mode) -> module(state=present, subnet=...).
absent:  module(state=query) unless public_ip is given -> release -> module(state=absent).
query:   module(state=query) -> own lease and peers from the store; nothing changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.leases import (
    FileStore, LeaseError, parse_leases, split_peers)
from ansible_collections.kubeasz.network.plugins.module_utils.netconf import NetConfError, parse_net_conf
from ansible_collections.kubeasz.network.plugins.modules.flannel_subnet import ARGUMENT_SPEC, ACTION_REQUIRED_IF

MODULE = 'kubeasz.network.flannel_subnet'


def own_entries(doc, public_ip):
    """The store entries of ``public_ip`` (and the config) as text, for --diff."""
    mine = dict((key, value) for key, value in sorted(doc['leases'].items())
                if isinstance(value, dict) and value.get('PublicIP') == str(public_ip))
    if not mine:
        return ''
    return json.dumps({'config': doc.get('config'), 'leases': mine}, indent=2, sort_keys=True) + '\n'


def diffs_of(res):
    diff = res.get('diff') or []
    return list(diff) if isinstance(diff, list) else [diff]


def lease_diff(path, before, after, public_ip):
    return dict(before=own_entries(before, public_ip), after=own_entries(after, public_ip),
                before_header='%s (%s)' % (path, public_ip), after_header='%s (%s)' % (path, public_ip))


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

    # ------------------------------------------------------------ states

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
            leases, dummy, dummy2 = parse_leases(after['leases'])
            dummy, peers, more = split_peers(leases, lease.public_ip, netconf.network)
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
        own, peers, more = split_peers(leases, facts['public_ip'], netconf.network)
        out = self._facts(facts)
        out.update(changed=False, lease=own.as_peer() if own else None, peers=[p.as_peer() for p in peers])
        return self._warn(out, warnings + more)

    def _absent(self, args, netconf):
        try:
            facts = {} if args['public_ip'] else self._module(args, state='query')
            public_ip = args['public_ip'] or facts['public_ip']
            store = FileStore(args['lease_file'])
            with store.locked(create=not self._task.check_mode):
                before = store.load()
                gone, store_changed = store.release(public_ip, check_mode=self._task.check_mode)
                after = before if self._task.check_mode else store.load()
                leases, warnings, dummy = parse_leases(after['leases'])
            res = self._module(args, state='absent')
        except _ModuleFailed as exc:
            return exc.result
        if self._task.check_mode:
            leases = [lease for lease in leases if lease not in gone]
        dummy, peers, more = split_peers(leases, public_ip, netconf.network if netconf else None)
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
