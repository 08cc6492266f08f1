# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``file`` lease store: one JSON file on the controller, guarded by ``flock`` on a sidecar
lock file.

Standard library only (the controller side of flannel_subnet)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import fcntl
import json
import os

from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import read_text, write_atomic
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import allocate, is_own, node_ips, stale_leases
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import LeaseStore, parse_leases


class FileStore(LeaseStore):
    """Leases in one JSON file on the controller: ``{"config": {...}, "leases": {key: value}}``.

    ``config`` is the net-conf.json the leases were made for (flannel's ``<prefix>/config``);
    a value is flannel's lease object (decoded, so the file stays readable; ``to_store()``
    gives the exact etcd text). Use ``with store.locked():`` around load-modify-save: an
    exclusive ``flock`` on ``<path>.lock`` serialises Ansible's forks and parallel runs.
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.lock_path = self.path + '.lock'
        self.label = self.path

    @contextlib.contextmanager
    def locked(self, shared=False, create=True):
        """Hold ``flock`` on the sidecar lock file (exclusive unless ``shared``).

        ``create=False`` (check mode, query) creates neither the directory nor the lock file:
        when the lock file does not exist yet nothing is locked, which is safe for readers
        because the store is only ever replaced by an atomic rename.
        """
        directory = os.path.dirname(self.path)
        if not create and not os.path.exists(self.lock_path):
            yield self
            return
        os.makedirs(directory, 0o755, exist_ok=True)   # the forks of one run race to create it
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)   # closing releases the lock

    def text(self):
        """The lease file's text (None when there is none)."""
        return read_text(self.path)

    def load(self):
        """The stored document ({"config": ..., "leases": {...}}); empty when missing."""
        text = self.text()
        if text is None or not text.strip():
            return {'config': None, 'leases': {}}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise LeaseError('lease file %s is not JSON (%s); fix or remove it' % (self.path, exc))
        if not isinstance(data, dict) or not isinstance(data.get('leases', {}), dict):
            raise LeaseError('lease file %s must hold {"leases": {...}}' % self.path)
        return {'config': data.get('config'), 'leases': dict(data.get('leases') or {})}

    @staticmethod
    def dumps(data):
        return json.dumps(data, indent=2, sort_keys=True) + '\n'

    def save(self, data):
        """Write the document atomically (only if different). Returns changed."""
        return write_atomic(self.path, self.dumps(data), mode=0o644)

    def leases(self):
        """(valid leases sorted by subnet, warnings) of the stored document."""
        leases, warnings, dummy = parse_leases(self.load()['leases'])
        return leases, warnings

    def acquire(self, netconf, claim, config=None, check_mode=False):
        """Allocate/keep this node's lease and store it. Call inside ``locked()``.

        Returns (lease, changed, warnings, before, after) where before/after are the store
        documents (for --diff); nothing is written in check mode.
        """
        before = self.load()
        leases, warnings, reserved = parse_leases(before['leases'])
        lease = allocate(netconf, leases, claim, reserved)
        after = {'config': before['config'] if config is None else config, 'leases': dict(before['leases'])}
        for old in stale_leases(leases, lease, netconf, claim.former_ips):
            del after['leases'][old.key]   # flannel deletes our incompatible lease
        key, value = lease.to_store()
        after['leases'][key] = json.loads(value)
        changed = self.dumps(after) != self.text()
        if changed and not check_mode:
            self.save(after)
        return lease, changed, warnings, before, after

    def release(self, addresses, check_mode=False):
        """Remove every valid lease of the node with ``addresses`` ({Family: address}). Call inside
        ``locked()``.

        Returns (released leases, changed).
        """
        addresses = node_ips(addresses)
        data = self.load()
        leases, dummy, dummy2 = parse_leases(data['leases'])
        gone = [lease for lease in leases if is_own(lease, addresses)]
        for lease in gone:
            del data['leases'][lease.key]
        if gone and not check_mode:
            self.save(data)
        return gone, bool(gone)


class LeaseFileText(FileStore):
    """The file store as the controller read it, on a node that checks its lease against it
    (step 06's fast path): read-only, so it takes no lock and is only used in check mode."""

    def __init__(self, path, text):
        super(LeaseFileText, self).__init__(path)
        self._text = text

    def text(self):
        return self._text

    @contextlib.contextmanager
    def locked(self, shared=False, create=True):
        yield self

    def save(self, data):
        raise LeaseError('the lease file %s is read-only on the node' % self.path)

    def acquire(self, netconf, claim, config=None, check_mode=True):
        """FileStore.acquire in check mode; ``self.changed``: whether the real run would write."""
        out = super(LeaseFileText, self).acquire(netconf, claim, config, check_mode=True)
        self.changed = out[1]
        return out
