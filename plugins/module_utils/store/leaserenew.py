# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lease renewal on the node (store=etcd): a live node's lease never runs out.

flanneld renews its lease one hour before it expires; in the ``ansible`` dataplane no flanneld
runs, so the route guard's process does it (``start()`` runs ``Renewer`` in a thread beside the
guard's loop). The role puts what renewal needs under ``lease_renewal`` in the guard's state file
(``/run/flannel/routes.json``)::

    {"endpoints": ["https://10.0.0.1:2379"], "prefix": "/coreos.com/network",
     "subnet": "172.20.1.0/24", "subnet6": "fd00:20:0:1::/64", "ca": "", "cert": "", "key": ""}

(``subnet6`` null or absent without IPv6: the etcd key is flannel's, ``172.20.1.0-24`` or
``172.20.1.0-24&fd00:20:0:1::-64``.)

Each check reads the key's etcd lease (``/v3/lease/timetolive``) and renews it (keepalive) when
less than ``min(1 h, TTL / 2)`` is left, the way flanneld does for 24 h leases and scaled down
for short TTLs. A lease that already expired is not re-created here: the next run of 06 takes a
lease again (possibly another subnet), as flanneld does after an outage. A node that is gone
renews nothing, its lease expires, and the other nodes drop it at their next run of 06.

Runs in the route guard, which carries module_utils but not ansible: etcd.py's client is used
with ``stdlib_opener()`` (urllib and ssl of the standard library).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import os
import threading
import time

from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import subnet_key

RENEW_MARGIN = 3600     # flanneld: renew one hour before expiry
CHECK_MAX = 60.0        # seconds between two looks at the lease, at most
CHECK_MIN = 1.0


def renew_due(remaining, granted):
    """True when a lease with ``remaining`` of ``granted`` seconds left must be renewed now."""
    return remaining <= min(RENEW_MARGIN, granted / 2.0)


def next_check(remaining, granted):
    """Seconds until the next look: before the renewal is due, never longer than a minute."""
    until_due = remaining - min(RENEW_MARGIN, granted / 2.0)
    return max(CHECK_MIN, min(CHECK_MAX, granted / 4.0, until_due if until_due > 0 else CHECK_MAX))


def stdlib_opener(ca=None, cert=None, key=None, timeout=10):
    """``open(method, url, data, headers)`` as etcd.tls_opener, with the standard library only
    (imported here: only a guard of the etcd store talks HTTP, and every other start stays light)."""
    import ssl
    from urllib.request import HTTPSHandler, Request, build_opener
    context = None
    if ca or cert:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)

    client = build_opener(HTTPSHandler(context=context)) if context else build_opener()

    def opener(method, url, data=None, headers=None):
        body = data.encode('utf-8') if isinstance(data, str) else data
        return client.open(Request(url, data=body, headers=headers or {}, method=method), timeout=timeout)
    return opener


def renewal_config(endpoints, prefix, lease, ca='', cert='', key=''):
    """The ``lease_renewal`` section (load_config reads it back) for a lease of the etcd store
    (a flannel_subnet lease dict); ``endpoints`` a list or comma-separated text."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(',')
    config = {'endpoints': list(endpoints or []), 'prefix': prefix, 'subnet': lease.get('subnet'),
              'ca': ca or '', 'cert': cert or '', 'key': key or ''}
    if lease.get('subnet6'):
        config['subnet6'] = lease['subnet6']
    return config


def load_config(state_file):
    """The ``lease_renewal`` section of the guard's state file, or None."""
    try:
        with open(state_file) as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    config = doc.get('lease_renewal') if isinstance(doc, dict) else None
    if not isinstance(config, dict) or not config.get('endpoints') or not (config.get('subnet') or config.get('subnet6')):
        return None
    return config


def lease_key(config):
    """The lease's etcd key (flannel's MakeSubnetKey of ``subnet`` and ``subnet6``)."""
    subnet, subnet6 = config.get('subnet'), config.get('subnet6')
    return '%s/subnets/%s' % (config.get('prefix', '/coreos.com/network').rstrip('/'),
                              subnet_key(ipaddress.IPv4Network(subnet) if subnet else None,
                                         ipaddress.IPv6Network(subnet6) if subnet6 else None))


def lease_name(config):
    """The lease in messages: its subnets."""
    return ' '.join(subnet for subnet in (config.get('subnet'), config.get('subnet6')) if subnet)


class Renewer(object):
    """Keeps the node's etcd lease alive; ``tick()`` returns the seconds until the next look."""

    def __init__(self, state_file, log, opener_factory=stdlib_opener):
        self.state_file = state_file
        self.log = log
        self.opener_factory = opener_factory
        self.last = None

    def client(self, config):
        from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdClient
        opener = self.opener_factory(config.get('ca'), config.get('cert'), config.get('key'))
        return EtcdClient(config['endpoints'], opener=opener)

    def tick(self):
        # etcd's client (ansible's urls) only in the guard process that renews: node_check and the
        # modules import this module too, and pay for what they import on every call
        from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdError
        config = load_config(self.state_file)
        if config is None:
            return CHECK_MAX
        name = lease_name(config)
        try:
            key = lease_key(config)
            client = self.client(config)
            kvs = [kv for kv in client.range_prefix(key) if kv['key'] == key]
            if not kvs:
                self._say('lease %s is gone from etcd: the next run of 06 takes one again' % name)
                return CHECK_MAX
            lease = kvs[0]['lease']
            if not lease:
                return CHECK_MAX   # etcd_lease_ttl 0: never expires
            answer = client.post('/v3/lease/timetolive', {'ID': str(lease)})
            remaining, granted = int(answer.get('TTL') or -1), int(answer.get('grantedTTL') or 0)
            if remaining <= 0:
                self._say('lease %s expired in etcd' % name)
                return CHECK_MIN
            if renew_due(remaining, granted):
                ttl = client.keepalive(lease)
                self._say('renewed lease %s (%ds were left, now %ds)' % (name, remaining, ttl),
                          repeat=True)
                remaining = ttl
            return next_check(remaining, granted)
        except (EtcdError, OSError, ValueError, KeyError) as exc:
            self._say('cannot renew lease %s: %s' % (name, exc))
            return min(CHECK_MAX, 10.0)

    def _say(self, message, repeat=False):
        if repeat or message != self.last:
            self.log(message)
        self.last = message

    def stamp(self):
        """What identifies the state file's current version (it is replaced by a rename), or None."""
        try:
            st = os.stat(self.state_file)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def run(self, stopping, sleep=time.sleep, clock=time.monotonic):
        """Loop until ``stopping()`` is true; a new state file (a run of 06 wrote the lease it took,
        perhaps with a short TTL) is looked at within a second, not after the wait."""
        while not stopping():
            seen = self.stamp()
            wait = self.tick()
            deadline = clock() + wait
            while not stopping() and clock() < deadline and self.stamp() == seen:
                sleep(min(1.0, max(0.0, deadline - clock())))


def start(state_file, log, stopping):
    """Run a Renewer in a daemon thread of the route guard's process."""
    thread = threading.Thread(target=Renewer(state_file, log).run, args=(stopping,), name='lease-renewal')
    thread.daemon = True
    thread.start()
    return thread


# ---------------------------------------------------------------- file store: when a lease was renewed

def renewals_path(lease_file):
    """The file store's renewal record beside the lease file (its document stays flannel's)."""
    return lease_file + '.renewed.json'


def load_renewals(lease_file):
    try:
        with open(renewals_path(lease_file)) as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def record_renewal(lease_file, key, now=None, gone=False):
    """Note that the lease ``key`` was renewed now (or released: ``gone``). Call it under the
    store's lock; a renewal is not a change of the store (as an etcd keepalive is not)."""
    doc = load_renewals(lease_file)
    if gone:
        if key not in doc:
            return
        doc.pop(key)
    else:
        doc[key] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now if now is not None else time.time()))
    path = renewals_path(lease_file)
    with open(path + '.tmp', 'w') as handle:
        json.dump(doc, handle, indent=2, sort_keys=True)
        handle.write('\n')
    os.rename(path + '.tmp', path)
