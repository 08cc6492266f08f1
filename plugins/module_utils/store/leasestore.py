# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``flannel_subnet`` needs of a lease store (``LeaseStore``: ``acquire``, ``release``, ``leases``)
and the store document every store reads and returns: its leases parsed (``parse_leases``), a
node's entries for ``--diff`` (``own_entries``, ``store_diff``). The stores: ``filestore.py``,
``etcd.py``, ``kubestore.py``.

Standard library only: imported on the managed node and on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import ipaddress
import json

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError, lease_order, subnets_from_key


def parse_leases(entries):
    """{key: value} -> (sorted valid leases, warnings, reserved subnets of corrupt entries).

    A corrupt entry whose key still names a subnet keeps that subnet reserved (each family's
    part of a dual-stack key: IPv4Network and IPv6Network), so it is never handed to a second
    node; fixing or deleting it is the operator's call.
    """
    leases, warnings, reserved = [], [], []
    for key in sorted(entries or {}):
        try:
            leases.append(Lease.from_store(key, entries[key]))
        except LeaseError as exc:
            # a bad part of a dual-stack key is named alone by lease.py: name the whole key
            warnings.append('skipping corrupt lease: %s%s' % (exc, '' if key in str(exc) else ' (store key %s)' % key))
            try:
                reserved.extend(ipaddress.ip_network(sub) for sub in subnets_from_key(key) if sub is not None)
            except LeaseError:
                pass
    leases.sort(key=lease_order)
    return leases, warnings, reserved


class LeaseStore(object):
    """What kubeasz.network.flannel_subnet needs of a lease store.

    A store document is ``{"config": <net-conf dict or None>, "leases": {key: value}}`` where a
    value is flannel's lease object (decoded) or, when it is not valid JSON, the raw text; it
    is what ``acquire()`` returns as ``before``/``after`` (``after`` holds every lease of the
    store, so that peers can be read from it) and what ``own_entries()`` shows in ``--diff``.
    """

    label = 'lease store'

    @contextlib.contextmanager
    def locked(self, shared=False, create=True):
        """Serialise load-modify-save; stores with their own atomic writes need no lock."""
        yield self

    def leases(self):
        """(valid leases sorted by subnet, warnings)."""
        raise NotImplementedError

    def acquire(self, netconf, claim, config=None, check_mode=False):
        """Allocate or keep the lease of the node that makes ``claim`` (a Claim: backend, VNI and
        its parts by family) -> (lease, changed, warnings, before, after)."""
        raise NotImplementedError

    def release(self, addresses, check_mode=False):
        """Remove the leases of the node with ``addresses`` ({Family: address}: by PublicIP or
        PublicIPv6) -> (released leases, changed)."""
        raise NotImplementedError


def decoded(value):
    """A store value as an object when it is JSON text, else unchanged."""
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def own_entries(doc, addresses):
    """The store entries of the node with ``addresses`` ({Family: address}: its PublicIP or
    PublicIPv6) and the config, as text, for --diff."""
    mine = {}
    for key, value in sorted((doc.get('leases') or {}).items()):
        value = decoded(value)
        if isinstance(value, dict) and any(ip is not None and value.get(fam.store_public_ip) == str(ip)
                                           for fam, ip in addresses.items()):
            mine[key] = value
    if not mine:
        return ''
    return json.dumps({'config': doc.get('config'), 'leases': mine}, indent=2, sort_keys=True) + '\n'


def store_diff(label, before, after, addresses):
    """--diff entry of the lease of the node with ``addresses`` ({Family: address}) in a store."""
    header = '%s (%s)' % (label, ', '.join(str(addresses[fam]) for fam in FAMILIES if addresses.get(fam) is not None))
    return dict(before=own_entries(before, addresses), after=own_entries(after, addresses),
                before_header=header, after_header=header)


def leases_of(doc):
    """Valid leases of a store document (corrupt ones are left out)."""
    return parse_leases(doc.get('leases') or {})[0]
