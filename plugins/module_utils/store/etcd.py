# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's leases in etcd (v3), over etcd's JSON API with Ansible's own URL helpers.

* ``EtcdClient``: a tiny v3 client (``/v3/kv/range|put|txn``, ``/v3/lease/grant|keepalive|
  revoke``); keys and values travel base64-encoded, 64-bit numbers come back as strings.
  Endpoints are tried in order; an error names the endpoint(s) and what failed there.
* ``EtcdStore``: flannel's layout: the config at ``<prefix>/config``, leases at
  ``<prefix>/subnets/<a.b.c.d>-<len>`` (dual-stack: ``<a.b.c.d>-<len>&<ipv6>-<len>``, flannel's
  MakeSubnetKey) holding flannel's lease JSON. A new lease is created by a
  transaction that succeeds only if the key does not exist (compare CREATE revision 0) and is
  bound to an etcd lease (24 h); a race lost to another node is retried. Each run renews the
  etcd lease (keepalive), as flanneld does before its lease expires.

Imported on the managed node: standard library and ansible.module_utils only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import random
import socket
import time

try:
    from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
    from ansible.module_utils.six.moves.urllib.parse import urlparse
    from ansible.module_utils.urls import Request
except ImportError:   # the route guard (leaserenew.py): no ansible, it passes its own opener
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    Request = None

try:
    from ansible.module_utils.urls import make_context
except ImportError:   # ansible-core < 2.15: a context per request
    make_context = None
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import allocate, is_own, node_ips, stale_leases
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import LeaseStore, decoded, parse_leases

DEFAULT_PREFIX = '/coreos.com/network'
LEASE_TTL = 24 * 3600
TIMEOUT = 10
RETRIES = 64
SPREAD_MAX = 100   # flanneld picks among the first 100 free subnets


class EtcdError(LeaseError):
    """etcd could not be reached or refused a request; the message names the endpoint."""


# ---------------------------------------------------------------- encoding

def b64(text):
    return base64.b64encode(text.encode('utf-8')).decode('ascii')


def unb64(text):
    return base64.b64decode(text or '').decode('utf-8', 'replace')


def prefix_end(prefix):
    """range_end covering every key that starts with ``prefix`` (last byte + 1)."""
    raw = prefix.encode('utf-8')
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode('ascii')


def check_endpoint(url):
    """``http(s)://host:port`` without a path; returns it without a trailing slash."""
    parsed = urlparse(url if isinstance(url, str) else '')
    if parsed.scheme not in ('http', 'https') or not parsed.hostname or parsed.path not in ('', '/'):
        raise EtcdError('etcd endpoint %r is not of the form https://host:2379' % (url,))
    return url.rstrip('/')


# ---------------------------------------------------------------- the client

class EtcdClient:
    """etcd v3 over its JSON gateway. ``ca``/``cert``/``key`` are file paths (TLS)."""

    def __init__(self, endpoints, ca=None, cert=None, key=None, timeout=TIMEOUT, opener=None):
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(',') if e.strip()]
        if not endpoints:
            raise EtcdError('no etcd endpoint given')
        self.endpoints = [check_endpoint(e.strip()) for e in endpoints]
        self.opener = opener or tls_opener(ca, cert, key, timeout)

    def __str__(self):
        return ','.join(self.endpoints)

    def _post_one(self, endpoint, path, body):
        """(answer dict, None) or (None, reason when the endpoint cannot be used)."""
        try:
            text = self.opener('POST', endpoint + path, json.dumps(body), {'Content-Type': 'application/json'}).read()
        except HTTPError as exc:
            text = exc.read() if hasattr(exc, 'read') else b''
            answer = _json_or_none(text)
            if exc.code in (502, 503, 504) or not isinstance(answer, dict):
                return None, 'HTTP %s %s' % (exc.code, _short(text) or exc.reason)
            raise EtcdError('etcd %s refused %s: %s' % (endpoint, path, _message(answer)))
        except (URLError, socket.error, ValueError) as exc:
            return None, str(getattr(exc, 'reason', None) or exc)
        answer = _json_or_none(text)
        if not isinstance(answer, dict):
            return None, 'answer is not JSON: %s' % _short(text)
        if answer.get('error') or answer.get('code'):
            raise EtcdError('etcd %s refused %s: %s' % (endpoint, path, _message(answer)))
        return answer, None

    def post(self, path, body):
        """POST ``body`` to the first endpoint that answers; EtcdError naming every failure."""
        failures = []
        for endpoint in self.endpoints:
            answer, reason = self._post_one(endpoint, path, body)
            if answer is not None:
                return answer
            failures.append('%s: %s' % (endpoint, reason))
        raise EtcdError('etcd is unreachable (%s %s): %s' % ('POST', path, '; '.join(failures)))

    # ------------------------------------------------------------ kv

    def range_prefix(self, prefix):
        """Every key under ``prefix`` -> [{key, value, mod_revision, lease}] (text, ints)."""
        answer = self.post('/v3/kv/range', {'key': b64(prefix), 'range_end': prefix_end(prefix)})
        return [dict(key=unb64(kv.get('key')), value=unb64(kv.get('value')),
                     mod_revision=int(kv.get('mod_revision', 0)), lease=int(kv.get('lease', 0)))
                for kv in answer.get('kvs') or []]

    def put(self, key, value, lease=0):
        body = {'key': b64(key), 'value': b64(value)}
        if lease:
            body['lease'] = str(lease)
        self.post('/v3/kv/put', body)

    def txn(self, compare, success):
        """True when every comparison held and ``success`` was applied."""
        return bool(self.post('/v3/kv/txn', {'compare': compare, 'success': success}).get('succeeded'))

    @staticmethod
    def _put_op(key, value, lease):
        op = {'key': b64(key), 'value': b64(value)}
        if lease:
            op['lease'] = str(lease)
        return {'request_put': op}

    def create(self, key, value, lease=0):
        """Put ``key`` only if it does not exist (CREATE revision 0)."""
        compare = [{'key': b64(key), 'target': 'CREATE', 'result': 'EQUAL', 'create_revision': '0'}]
        return self.txn(compare, [self._put_op(key, value, lease)])

    def replace(self, key, value, mod_revision, lease=0):
        """Put ``key`` only if nobody changed it since ``mod_revision``."""
        compare = [{'key': b64(key), 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': str(mod_revision)}]
        return self.txn(compare, [self._put_op(key, value, lease)])

    def delete_if(self, key, mod_revision):
        """Delete ``key`` only if nobody changed it since ``mod_revision``."""
        compare = [{'key': b64(key), 'target': 'MOD', 'result': 'EQUAL', 'mod_revision': str(mod_revision)}]
        return self.txn(compare, [{'request_delete_range': {'key': b64(key)}}])

    # ------------------------------------------------------------ leases

    def grant(self, ttl):
        return int(self.post('/v3/lease/grant', {'TTL': str(int(ttl))})['ID'])

    def keepalive(self, lease):
        """Renew ``lease``; its TTL, or 0 when it no longer exists."""
        answer = self.post('/v3/lease/keepalive', {'ID': str(lease)})
        return int((answer.get('result') or answer).get('TTL') or 0)

    def revoke(self, lease):
        self.post('/v3/lease/revoke', {'ID': str(lease)})


def tls_opener(ca=None, cert=None, key=None, timeout=TIMEOUT, use_proxy=False):
    """``open(method, url, data, headers)`` over one ansible ``Request`` and one TLS context.

    Building the context loads the CA bundle (tens of milliseconds), so it is made once per
    client, not once per request.
    """
    tls = dict(ca_path=ca or None, client_cert=cert or None, client_key=key or None)
    request = Request(use_proxy=use_proxy, timeout=timeout, http_agent='kubeasz.network', **tls)
    context = []

    def opener(method, url, data=None, headers=None):
        if make_context is None:
            return request.open(method, url, data=data, headers=headers)
        if not context:
            context.append(make_context(cafile=tls['ca_path'], client_cert=tls['client_cert'],
                                        client_key=tls['client_key']))
        return request.open(method, url, data=data, headers=headers, context=context[0])
    return opener


def _json_or_none(text):
    try:
        return json.loads(text.decode('utf-8', 'replace') if isinstance(text, bytes) else text)
    except ValueError:
        return None


def _short(text):
    text = text.decode('utf-8', 'replace') if isinstance(text, bytes) else (text or '')
    return text.strip()[:200]


def _message(answer):
    return answer.get('message') or answer.get('error') or json.dumps(answer)[:200]


# ---------------------------------------------------------------- the store

class EtcdStore(LeaseStore):
    """flannel's leases in etcd under ``prefix`` (flanneld's ``--etcd-prefix``)."""

    def __init__(self, client, prefix=DEFAULT_PREFIX, ttl=LEASE_TTL, retries=RETRIES):
        prefix = '/' + (prefix or DEFAULT_PREFIX).strip('/')
        self.client = client
        self.prefix = prefix
        self.ttl = int(ttl)
        self.retries = retries
        self.label = 'etcd %s %s' % (client, prefix)

    def lease_key(self, key):
        return '%s/subnets/%s' % (self.prefix, key)

    def snapshot(self):
        """(store document, {lease key: (etcd key, mod_revision, etcd lease)}) in one range."""
        doc, meta = {'config': None, 'leases': {}}, {}
        for kv in self.client.range_prefix(self.prefix + '/'):
            name = kv['key'][len(self.prefix) + 1:]
            if name == 'config':
                doc['config'] = decoded(kv['value'])
                meta['config'] = (kv['key'], kv['mod_revision'], kv['lease'])
            elif name.startswith('subnets/'):
                # the whole key: "<a.b.c.d>-<len>" or, dual-stack, "<a.b.c.d>-<len>&<ipv6>-<len>"
                # (parse_leases reads both subnets of it, and reports a corrupt one naming it)
                key = name[len('subnets/'):]
                doc['leases'][key] = decoded(kv['value'])
                meta[key] = (kv['key'], kv['mod_revision'], kv['lease'])
        return doc, meta

    def leases(self):
        leases, warnings, dummy = parse_leases(self.snapshot()[0]['leases'])
        return leases, warnings

    def acquire(self, netconf, claim, config=None, check_mode=False):
        """flanneld's acquire on etcd; see LeaseStore. Nothing is written in check mode."""
        if not getattr(netconf, 'enable_ipv4', True):
            raise EtcdError('%s: flannel\'s etcd registry keys every lease by its IPv4 subnet, so IPv6-only '
                            '(FLANNEL_ENABLE_IPV4: false) needs FLANNEL_SUBNET_STORE file or kube' % self.label)
        granted = [None]
        try:
            for attempt in range(self.retries):
                doc, meta = self.snapshot()
                leases, warnings, reserved = parse_leases(doc['leases'])
                # lowest free subnet first; after a lost race one of the first 2**attempt free ones,
                # so that racing nodes spread out instead of all retrying the same subnet
                lease = allocate(netconf, leases, claim, reserved, spread=min(1 << attempt, SPREAD_MAX))
                stale = stale_leases(leases, lease, netconf, claim.former_ips)
                key, value = lease.to_store()
                after = {'config': doc['config'] if config is None else config,
                         'leases': dict((k, v) for k, v in doc['leases'].items() if k not in [s.key for s in stale])}
                after['leases'][key] = json.loads(value)
                held = next((old for old in leases if old.key == key), None)
                changed = held != lease or bool(stale) or (config is not None and doc['config'] != config)
                if check_mode:
                    return lease, changed, warnings, doc, after
                if self._store(lease, held, meta, granted):
                    self._drop(stale, meta)
                    self._put_config(config, doc, meta)
                    granted[0] = None   # bound to our key now
                    return lease, changed, warnings, doc, after
                time.sleep(random.uniform(0, 0.02 * (attempt + 1)))   # lost a race: read again
            raise EtcdError('%s: could not store a lease after %d attempts, other nodes kept taking the '
                            'same subnet; run again' % (self.label, self.retries))
        finally:
            if granted[0]:
                self.client.revoke(granted[0])

    def _grant(self, granted):
        if self.ttl <= 0:
            return 0   # leases that never expire (no flanneld renews them in the ansible dataplane)
        if not granted[0]:
            granted[0] = self.client.grant(self.ttl)
        return granted[0]

    def _store(self, lease, held, meta, granted):
        """Create, update or renew the node's key; False when another writer got there first."""
        key, value = lease.to_store()
        if held is None:
            if key in meta:   # a corrupt entry of ours (or a race): read again
                return False
            return self.client.create(self.lease_key(key), value, self._grant(granted))
        etcd_key, revision, etcd_lease = meta[key]
        if self.ttl <= 0 and held == lease:
            return True
        if etcd_lease and held == lease:
            if self.client.keepalive(etcd_lease) > 0:
                return True
            return False   # the lease just expired (and the key with it): start over
        if etcd_lease and self.client.keepalive(etcd_lease) > 0:
            return self.client.replace(etcd_key, value, revision, etcd_lease)
        return self.client.replace(etcd_key, value, revision, self._grant(granted))

    def _drop(self, stale, meta):
        """flanneld deletes the node's leases it does not keep."""
        for old in stale:
            etcd_key, revision, dummy = meta[old.key]
            self.client.delete_if(etcd_key, revision)

    def _put_config(self, config, doc, meta):
        """Write net-conf.json to ``<prefix>/config`` unless it already holds the same config."""
        if config is None or doc['config'] == config:
            return
        text = json.dumps(config, sort_keys=True, separators=(',', ':'))
        if 'config' in meta:
            self.client.replace(meta['config'][0], text, meta['config'][1])
        else:
            self.client.create(self.prefix + '/config', text)

    def release(self, addresses, check_mode=False):
        addresses = node_ips(addresses)
        doc, meta = self.snapshot()
        leases, dummy, dummy2 = parse_leases(doc['leases'])
        gone = [lease for lease in leases if is_own(lease, addresses)]
        if not check_mode:
            self._drop(gone, meta)
        return gone, bool(gone)
