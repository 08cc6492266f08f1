# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flannel subnet leases: allocation, subnet.env, files and the stores (the lease itself: ``lease.py``).

* ``allocate()``: flannel's acquire rules as a pure function (deterministic: lowest free subnet).
* ``subnet_env_text()`` / ``parse_subnet_env()``: /run/flannel/subnet.env (IPv4, IPv6 or both).
* ``write_atomic()``: compare, then temp file + fsync + rename.
* ``LeaseStore``: what ``flannel_subnet`` needs of a store (``acquire``, ``release``, ``leases``);
  ``FileStore`` (one JSON file, guarded by ``flock`` on a sidecar lock file) is one, the etcd
  store (``etcd.py``) and the Kubernetes store (``kubestore.py``) are the others.
* ``own_entries()`` / ``store_diff()``: a node's entries of a store document, for ``--diff``.

Standard library only: imported on the managed node and on the controller.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import ipaddress
import itertools
import json
import os
import random
import tempfile

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4
from ansible_collections.kubeasz.network.plugins.module_utils.lease import (
    Lease, LeaseError, check_node_ip, subnet_from_key)

SUBNET_ENV_PATH = '/run/flannel/subnet.env'
SUBNET_ENV_KEYS = ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK',
                   'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ')


def _subnet(value, what):
    try:
        return ipaddress.IPv4Network(value if isinstance(value, (str, ipaddress.IPv4Network)) else '<%r>' % (value,))
    except ValueError as exc:
        raise LeaseError('%s: %r is not an IPv4 subnet (%s)' % (what, value, exc))


def parse_leases(entries):
    """{key: value} -> (sorted valid leases, warnings, reserved subnets of corrupt entries).

    A corrupt entry whose key still names a subnet keeps that subnet reserved, so it is
    never handed to a second node; fixing or deleting it is the operator's call.
    """
    leases, warnings, reserved = [], [], []
    for key in sorted(entries or {}):
        try:
            leases.append(Lease.from_store(key, entries[key]))
        except LeaseError as exc:
            warnings.append('skipping corrupt lease: %s' % exc)
            try:
                reserved.append(ipaddress.IPv4Network(subnet_from_key(key)))
            except LeaseError:
                pass
    leases.sort(key=lambda lease: ipv4.net_key(lease.subnet))
    return leases, warnings, reserved


# ---------------------------------------------------------------- allocation

def fits(netconf, subnet):
    """A subnet this network config could have leased: of SubnetLen, inside Network."""
    return subnet.prefixlen == netconf.subnet_len and subnet.subnet_of(netconf.network)


def compatible(netconf, subnet):
    """flannel's isSubnetConfigCompat: between SubnetMin and SubnetMax, of SubnetLen."""
    return (subnet.prefixlen == netconf.subnet_len
            and netconf.subnet_min.network_address <= subnet.network_address <= netconf.subnet_max.network_address)


def subnet_count(netconf):
    size = 1 << (32 - netconf.subnet_len)
    return (int(netconf.subnet_max.network_address) - int(netconf.subnet_min.network_address)) // size + 1


def _free_subnets(netconf, taken):
    """Free subnets of SubnetLen in [SubnetMin, SubnetMax] overlapping none of ``taken``, lowest first."""
    size = 1 << (32 - netconf.subnet_len)
    cand = int(netconf.subnet_min.network_address)
    last = int(netconf.subnet_max.network_address)
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    index = 0
    while cand <= last:
        while index < len(spans) and spans[index][1] < cand:
            index += 1
        if index < len(spans) and spans[index][0] <= cand + size - 1:
            cand = (spans[index][1] + size) // size * size   # first boundary after the taken span
            continue
        yield ipaddress.IPv4Network((cand, netconf.subnet_len))
        cand += size


def _overlaps(subnet, taken):
    return any(subnet.overlaps(other) for other in taken)


def allocate(netconf, leases, public_ip, backend_type, vni=None, vtep_mac=None, preferred=None, reserved=(),
             spread=1):
    """Pick this node's lease following flanneld's acquire rules.

    1. a lease already holding ``public_ip`` and compatible with the config is kept (backend
       data updated); several such leases (a damaged store): the lowest subnet wins;
    2. else ``preferred`` (the subnet of an existing subnet.env) if compatible and free;
    3. else the lowest free compatible subnet (flanneld picks at random among the first 100
       free ones; lowest-first makes runs reproducible); with ``spread`` > 1 one at random among
       the first ``spread`` free ones (a store retrying after a lost race spreads the racers).

    ``leases``: valid leases of the store; ``reserved``: subnets that are taken by entries
    that could not be parsed. Leases of ``public_ip`` that are not kept are free for reuse
    (the caller removes them). Raises LeaseError "out of subnets".
    """
    public_ip = check_node_ip(str(public_ip), 'public_ip')
    what = 'node %s' % public_ip
    mine = sorted((lease.network for lease in leases if lease.public_ip == public_ip))
    # a lease of another size or outside the network cannot be this config's: it blocks nothing
    others = [subnet for subnet in [lease.network for lease in leases if lease.public_ip != public_ip]
              + list(reserved) if fits(netconf, subnet)]

    def lease_of(subnet):
        return Lease.make(subnet, public_ip, backend_type, vni, vtep_mac, what)

    for subnet in mine:
        if compatible(netconf, subnet) and not _overlaps(subnet, others):
            return lease_of(subnet)
    if preferred is not None:
        preferred = _subnet(preferred, 'preferred subnet')
        if compatible(netconf, preferred) and not _overlaps(preferred, others):
            return lease_of(preferred)
    free = list(itertools.islice(_free_subnets(netconf, others), max(1, int(spread))))
    subnet = random.choice(free) if free else None
    if subnet is None:
        raise LeaseError(
            'out of subnets: network %s has %d subnets of /%d between %s and %s and all are leased'
            % (netconf.network, subnet_count(netconf), netconf.subnet_len,
               netconf.subnet_min, netconf.subnet_max))
    return lease_of(subnet)


# ---------------------------------------------------------------- subnet.env

def _bool_text(value):
    return 'true' if value else 'false'


def subnet_env_text(netconf, lease, mtu, ip_masq, ipv6_network=None, subnet6=None):
    """subnet.env as flanneld writes it (WriteSubnetFile): fixed order, LF, no quotes.

    IPv4 lines (FLANNEL_NETWORK, FLANNEL_SUBNET = first address of ``lease.subnet``/len) unless
    ``netconf.enable_ipv4`` is false (IPv6-only); then FLANNEL_IPV6_NETWORK and
    FLANNEL_IPV6_SUBNET (first address of the IPv6 subnet/len) when there is an IPv6 network:
    ``ipv6_network``, else ``netconf.ipv6_network`` with IPv6 enabled. The IPv6 subnet is
    ``subnet6``, else ``lease.subnet6``; ValueError when IPv6 is on and there is none.
    """
    text = ''
    if getattr(netconf, 'enable_ipv4', True):
        net = ipv4.parse_net(lease.subnet)
        gateway = '%s/%d' % (ipv4.ip_text(net[0] + 1), net[1])
        text += 'FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\n' % (netconf.network, gateway)
    if ipv6_network is None and getattr(netconf, 'enable_ipv6', False):
        ipv6_network = netconf.ipv6_network
    if ipv6_network is not None:
        subnet6 = subnet6 if subnet6 is not None else getattr(lease, 'subnet6', None)
        if subnet6 is None:
            raise ValueError('IPv6 network %s but the lease has no IPv6 subnet' % (ipv6_network,))
        net6 = ipaddress.IPv6Network(str(subnet6))
        text += 'FLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s/%d\n' % (
            ipaddress.IPv6Network(str(ipv6_network)), net6.network_address + 1, net6.prefixlen)
    return text + 'FLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n' % (int(mtu), _bool_text(ip_masq))


def parse_subnet_env(text):
    """KEY=VALUE lines -> {KEY: VALUE} (strings; blank lines and # comments ignored)."""
    env = {}
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        env[key.strip()] = value.strip().strip('"\'')
    return env


def subnet_of_env(env):
    """The leased subnet named by a parsed subnet.env (FLANNEL_SUBNET), or None."""
    try:
        return ipaddress.IPv4Interface(env.get('FLANNEL_SUBNET', '')).network
    except ValueError:
        return None


def subnet6_of_env(env):
    """The leased IPv6 subnet named by a parsed subnet.env (FLANNEL_IPV6_SUBNET), or None."""
    try:
        return ipaddress.IPv6Interface(env.get('FLANNEL_IPV6_SUBNET', '')).network
    except ValueError:
        return None


# ---------------------------------------------------------------- files

def read_text(path):
    """File content, or None when it does not exist."""
    try:
        with open(path, 'r') as handle:
            return handle.read()
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def needs_write(path, text, mode=0o644):
    """True unless ``path`` holds exactly ``text`` with ``mode``."""
    try:
        current = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return True
        raise
    return read_text(path) != text or (current.st_mode & 0o7777) != mode


def write_atomic(path, text, mode=0o644, dir_mode=0o755):
    """Write ``text`` to ``path`` atomically unless it already holds it. Returns changed."""
    if not needs_write(path, text, mode):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, dir_mode)
        os.chmod(directory, dir_mode)   # makedirs honours the umask
    if read_text(path) == text:          # only the mode differs
        os.chmod(path, mode)
        return True
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return True


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_file(path):
    """Remove ``path``; returns True if it existed."""
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise


# ---------------------------------------------------------------- the store interface

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

    def acquire(self, netconf, public_ip, backend_type, vni=None, vtep_mac=None,
                preferred=None, config=None, check_mode=False):
        """Allocate or keep the node's lease -> (lease, changed, warnings, before, after)."""
        raise NotImplementedError

    def release(self, public_ip, check_mode=False):
        """Remove the node's leases -> (released leases, changed)."""
        raise NotImplementedError


def decoded(value):
    """A store value as an object when it is JSON text, else unchanged."""
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def own_entries(doc, public_ip):
    """The store entries of ``public_ip`` (and the config) as text, for --diff."""
    mine = {}
    for key, value in sorted((doc.get('leases') or {}).items()):
        value = decoded(value)
        if isinstance(value, dict) and value.get('PublicIP') == str(public_ip):
            mine[key] = value
    if not mine:
        return ''
    return json.dumps({'config': doc.get('config'), 'leases': mine}, indent=2, sort_keys=True) + '\n'


def store_diff(label, before, after, public_ip):
    """--diff entry of the node's lease in a store."""
    header = '%s (%s)' % (label, public_ip)
    return dict(before=own_entries(before, public_ip), after=own_entries(after, public_ip),
                before_header=header, after_header=header)


def leases_of(doc):
    """Valid leases of a store document (corrupt ones are left out)."""
    return parse_leases(doc.get('leases') or {})[0]


# ---------------------------------------------------------------- the file store

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
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)   # closing releases the lock

    def load(self):
        """The stored document ({"config": ..., "leases": {...}}); empty when missing."""
        text = read_text(self.path)
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

    def acquire(self, netconf, public_ip, backend_type, vni=None, vtep_mac=None,
                preferred=None, config=None, check_mode=False):
        """Allocate/keep this node's lease and store it. Call inside ``locked()``.

        Returns (lease, changed, warnings, before, after) where before/after are the store
        documents (for --diff); nothing is written in check mode.
        """
        before = self.load()
        leases, warnings, reserved = parse_leases(before['leases'])
        lease = allocate(netconf, leases, public_ip, backend_type, vni, vtep_mac, preferred, reserved)
        after = {'config': before['config'] if config is None else config, 'leases': dict(before['leases'])}
        for old in leases:
            if old.public_ip == lease.public_ip and old.subnet != lease.subnet:
                del after['leases'][old.key]   # flannel deletes our incompatible lease
        key, value = lease.to_store()
        after['leases'][key] = json.loads(value)
        changed = self.dumps(after) != read_text(self.path)
        if changed and not check_mode:
            self.save(after)
        return lease, changed, warnings, before, after

    def release(self, public_ip, check_mode=False):
        """Remove every valid lease of ``public_ip``. Call inside ``locked()``.

        Returns (released leases, changed).
        """
        public_ip = check_node_ip(str(public_ip), 'public_ip')
        data = self.load()
        leases, dummy, dummy2 = parse_leases(data['leases'])
        gone = [lease for lease in leases if lease.public_ip == public_ip]
        for lease in gone:
            del data['leases'][lease.key]
        if gone and not check_mode:
            self.save(data)
        return gone, bool(gone)


def split_peers(leases, public_ip, netconf=None):
    """(own lease or None, other leases, warnings); leases that cannot belong to ``netconf``
    (outside its network, or not of its SubnetLen) are skipped with a warning, as flanneld does."""
    public_ip = str(public_ip)
    own, peers, warnings = None, [], []
    for lease in leases:
        if lease.public_ip == public_ip:
            own = own or lease
        elif netconf is not None and not fits(netconf, lease.network):
            warnings.append('skipping lease %s of %s (store key %s): not a /%d inside network %s'
                            % (lease.subnet, lease.public_ip, lease.key, netconf.subnet_len, netconf.network))
        else:
            peers.append(lease)
    return own, peers, warnings


# ---------------------------------------------------------------- flannel_subnet's states

def lease_state(store, state, netconf, facts, env, config=None, check_mode=False):
    """flannel_subnet's one state machine, for any ``LeaseStore``.

    present: acquire (or keep) the node's lease, then ``env(lease)`` writes subnet.env;
    query: the node's lease and the peers, nothing changes;
    absent: release the node's leases, then ``env(None)`` removes subnet.env.
    facts: the node's facts (``public_ip``; with present also ``backend_type``, ``vni``, ``vtep_mac``,
    ``previous_subnet``); env returns (changed, diffs, facts to report). Returns the module result,
    with ``warnings``. The file store is locked around its read-modify-write, not around ``env``.
    """
    public_ip = str(facts['public_ip'])
    result = dict(facts, changed=False, lease=None)
    if state == 'query':
        with store.locked(shared=True, create=False):
            leases, warnings = store.leases()
    elif state == 'absent':
        with store.locked(create=not check_mode):
            gone, result['changed'] = store.release(public_ip, check_mode=check_mode)
            leases, warnings = store.leases()
        leases = [lease for lease in leases if lease not in gone]
        changed, diffs, more = env(None)
        before = {'config': None, 'leases': dict((g.key, json.loads(g.to_store()[1])) for g in gone)}
        result.update(more, subnet_env={}, public_ip=public_ip, lease=gone[0].as_peer() if gone else None,
                      diff=[store_diff(store.label, before, {}, public_ip)] + diffs)
    else:
        with store.locked(create=not check_mode):
            lease, result['changed'], warnings, before, after = store.acquire(
                netconf, public_ip, facts['backend_type'], facts.get('vni'), facts.get('vtep_mac'),
                preferred=facts.get('previous_subnet'), config=config, check_mode=check_mode)
        leases = leases_of(after)
        changed, diffs, more = env(lease)
        result.update(more, lease=lease.as_peer(), diff=[store_diff(store.label, before, after, public_ip)] + diffs)
    own, peers, skipped = split_peers(leases, public_ip, netconf)
    if check_mode and netconf is not None and state != 'absent':
        # the real run's peers hold the new backend once every node has run: so plan with them
        peers = [peer.after_run(netconf.backend) if compatible(netconf, peer.network) else peer for peer in peers]
    if state == 'query':
        result['lease'] = own.as_peer() if own else None
    else:
        result['changed'] = bool(result['changed'] or changed)
    result.update(peers=[peer.as_peer() for peer in peers], warnings=list(warnings) + skipped)
    return result
