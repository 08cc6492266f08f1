# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kubeasz.network.flannel_subnet.

store=etcd|kube: the module talks to the store from the node; this plugin only copies the TLS
files named by etcd_ca/etcd_cert/etcd_key/kube_ca/kube_cert/kube_key from the controller to the
task's temporary directory on the node (removed after the task) and runs the module.

store=file: module(state=query) on the node for its facts (absent: unless public_ip or public_ip6 is given;
present: unless node_check's ``facts`` are given), then
``state.lease_state()`` (the state machine the module runs for etcd/kube) on the controller with
the lease file under its lock; subnet.env is written by module(state=present, subnet=..., subnet6=...) and
removed by module(state=absent).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import hashlib
import os
import re
import tempfile

from ansible import context
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError, subnet_key
from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import read_text
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import own_entries
from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state
from ansible_collections.kubeasz.network.plugins.module_utils.store.leaserenew import load_renewals, record_renewal
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import NetConfError, parse_net_conf
from ansible_collections.kubeasz.network.plugins.modules.flannel_subnet import (
    ARGUMENT_SPEC, ACTION_REQUIRED_IF, TLS_FILES)

MODULE = 'kubeasz.network.flannel_subnet'


def diffs_of(res):
    diff = res.get('diff') or []
    return list(diff) if isinstance(diff, list) else [diff]


class RunCopy(FileStore):
    """The lease file of a whole check-mode run (``--check``): a copy private to the run, which
    every node's acquire and release change as the real run would change the file, so each node's
    plan is made from the leases all nodes will hold (a subnet each on a fresh cluster, the new or
    the removed peer on the other nodes of add-node and del-node). ``changed`` and ``--diff`` of an
    acquire compare the node's entries with the real file. Copies of runs that ended are removed."""

    PATTERN = 'kubeasz-network-check-%s-%d.json'

    def __init__(self, real, run_id, directory=None):
        directory = directory or tempfile.gettempdir()
        tag = hashlib.sha1(real.path.encode('utf-8')).hexdigest()[:12]
        super(RunCopy, self).__init__(os.path.join(directory, self.PATTERN % (tag, run_id)))
        self.real, self.label = real, real.label
        self._sweep(directory, tag, run_id)
        with self.locked():
            if read_text(self.path) is None:
                with real.locked(shared=True, create=False):
                    self.save(real.load())

    @classmethod
    def _sweep(cls, directory, tag, run_id):
        for path in glob.glob(os.path.join(directory, cls.PATTERN.replace('%d', '*') % tag)):
            match = re.search(r'-(\d+)\.json$', path)
            if match and int(match.group(1)) != run_id and not _alive(int(match.group(1))):
                for stale in (path, path + '.lock'):
                    try:
                        os.unlink(stale)
                    except OSError:
                        pass

    def locked(self, shared=False, create=True):
        return super(RunCopy, self).locked(shared, True)

    def acquire(self, *args, **kwargs):
        kwargs['check_mode'] = False
        lease, dummy, warnings, dummy2, after = super(RunCopy, self).acquire(*args, **kwargs)
        real = self.real.load()
        ips = dict((fam, part.public_ip) for fam, part in lease.parts.items())
        return lease, own_entries(real, ips) != own_entries(after, ips), warnings, real, after

    def release(self, addresses, check_mode=False):
        return super(RunCopy, self).release(addresses, False)


def lease_file_store(path, check_mode):
    """The file store a task reads and writes: in a whole check-mode run, the run's copy."""
    store = FileStore(path)
    if check_mode and context.CLIARGS.get('check'):   # the whole run is a preview
        store = RunCopy(store, os.getppid())
    return store


def with_backend(facts, netconf):
    """The node's facts as the lease state machine takes them: with the backend's type and VNI."""
    facts = dict(facts)
    if netconf is not None:
        backend = netconf.backend
        facts.update(backend_type=backend.type, vni=backend.vni if backend.type == 'vxlan' else None)
    return facts


def finish_lease(store, state, out, check_mode):
    """A file-store lease result as flannel_subnet returns it: the renewal noted (not in check mode)
    and the lease's last renewal given (``renewed``); its ``warnings`` are left to the caller."""
    for key in ('backend_type', 'vni'):
        out.pop(key, None)
    if state == 'query':
        out.pop('diff', None)
    lease = out.get('lease')
    if not check_mode and state != 'query' and lease:
        with store.locked(create=False):
            record_renewal(store.path, subnet_key(lease['subnet'], lease.get('subnet6')), gone=state == 'absent')
    if state != 'absent' and lease:
        out['renewed'] = load_renewals(getattr(store, 'real', store).path).get(subnet_key(lease['subnet'], lease.get('subnet6')))
    return out


def take_lease(store, netconf, facts, network, check_mode):
    """The node's lease taken on the file store (state present) from facts read on the node, its
    node files left to the caller (node_check's join): flannel_subnet's result."""
    out = lease_state(store, 'present', netconf, with_backend(facts, netconf), lambda lease: (False, [], {}),
                      network, check_mode)
    return finish_lease(store, 'present', out, check_mode)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == 1   # EPERM: alive, another user's
    return True


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=ACTION_REQUIRED_IF)
        for internal in ('subnet', 'subnet6'):
            if args.get(internal) is not None:
                raise AnsibleActionFail('%s is internal to kubeasz.network.flannel_subnet; do not set it' % internal)
        self._task_vars = task_vars
        try:
            netconf = self._netconf(args)
            if args['store'] != 'file':
                result.update(self._on_node(args))
                return result
            result.update(self._file_store(args, netconf))
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
        module_args = dict((k, v) for k, v in args.items() if v is not None and k not in ('facts', 'node_files'))
        module_args.update(overrides)
        res = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=self._task_vars)
        if res.get('failed'):
            raise _ModuleFailed(res)
        return res

    @staticmethod
    def _facts(res):
        keep = ('iface', 'public_ip', 'mtu', 'vtep_mac', 'subnet_env', 'previous_subnet',
                'public_ip6', 'vtep_mac6', 'previous_subnet6', 'former_ips')
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

    def _file_store(self, args, netconf):
        """store=file: the lease state machine on the controller, the node's side by the module."""
        state, check_mode = args['state'], self._task.check_mode
        results = []
        try:
            if state == 'absent' and (args['public_ip'] or args['public_ip6']):
                facts = dict(public_ip=args['public_ip'])
                if args['public_ip6']:
                    facts['public_ip6'] = args['public_ip6']
            else:
                if state == 'present' and args.get('facts'):   # node_check read them in this run
                    facts = self._facts(args['facts'])
                else:
                    results.append(self._module(args, state='query'))
                    facts = self._facts(results[0])
                facts = with_backend(facts, netconf)

            def env(lease):
                if state == 'query' or (state == 'present' and not args['node_files']):
                    return False, [], {}
                subnets = {}
                if lease is not None:
                    subnets = dict((k, v) for k, v in (('subnet', lease.subnet), ('subnet6', lease.subnet6)) if v)
                res = self._module(args, state=state, **subnets)
                results.append(res)
                return bool(res.get('changed')), diffs_of(res), self._facts(res)
            store = lease_file_store(args['lease_file'], check_mode)
            out = lease_state(store, state, netconf, facts, env, args['network'], check_mode)
        except _ModuleFailed as exc:
            return exc.result
        out = finish_lease(store, state, out, check_mode)
        return self._warn(out, out.pop('warnings'), *results)

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
