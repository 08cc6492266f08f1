# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flannel subnet leases: the lease record, allocation, subnet.env and the file store.

* ``Lease``: one node's subnet and backend attributes, in flannel's store format
  (key ``172.20.1.0-24``, value ``{"PublicIP":..,"PublicIPv6":null,"BackendType":..,
  "BackendData":..}``) and as the peer dict modules exchange (docs/architecture.md).
* ``allocate()``: flannel's acquire rules as a pure function (deterministic: lowest free subnet).
* ``subnet_env_text()`` / ``parse_subnet_env()``: /run/flannel/subnet.env.
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
import re
import tempfile
from dataclasses import dataclass
from typing import Optional

BACKEND_TYPES = ('vxlan', 'host-gw')
VNI_MAX = (1 << 24) - 1
SUBNET_ENV_PATH = '/run/flannel/subnet.env'
SUBNET_ENV_KEYS = ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK',
                   'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ')

_KEY = re.compile(r'^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$')
_MAC = re.compile(r'^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$')


class LeaseError(ValueError):
    """A lease is invalid, or no subnet can be leased."""


# ---------------------------------------------------------------- validation

def _ipv4(value, what):
    try:
        addr = ipaddress.IPv4Address(value if isinstance(value, str) else '<%r>' % (value,))
    except ValueError:
        raise LeaseError('%s: %r is not an IPv4 address' % (what, value))
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr == ipaddress.IPv4Address('255.255.255.255'):
        raise LeaseError('%s: %s is not a unicast host address' % (what, addr))
    return addr


def _subnet(value, what):
    try:
        return ipaddress.IPv4Network(value if isinstance(value, (str, ipaddress.IPv4Network)) else '<%r>' % (value,))
    except ValueError as exc:
        raise LeaseError('%s: %r is not an IPv4 subnet (%s)' % (what, value, exc))


def _mac(value, what):
    if not isinstance(value, str) or not _MAC.match(value.lower()):
        raise LeaseError('%s: %r is not a MAC address' % (what, value))
    mac = value.lower()
    if int(mac[:2], 16) & 1 or mac == '00:00:00:00:00:00':
        raise LeaseError('%s: %s is not a unicast MAC address' % (what, mac))
    return mac


def _vni(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= VNI_MAX:
        raise LeaseError('%s: %r is not a VNI (0..%d)' % (what, value, VNI_MAX))
    return value


def _backend(backend_type, vni, vtep_mac, what):
    if backend_type not in BACKEND_TYPES:
        raise LeaseError('%s: backend type %r is not one of %s' % (what, backend_type, ', '.join(BACKEND_TYPES)))
    if backend_type != 'vxlan':
        return None, None
    return _vni(vni, what + ' VNI'), _mac(vtep_mac, what + ' VtepMAC')


def subnet_from_key(key):
    """``"172.20.1.0-24"`` -> IPv4Network; LeaseError unless a canonical subnet key."""
    match = _KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise LeaseError('lease key %r is not of the form a.b.c.d-len' % (key,))
    try:
        subnet = ipaddress.IPv4Network('%s/%s' % match.groups())
    except ValueError as exc:
        raise LeaseError('lease key %r: %s' % (key, exc))
    if subnet_key(subnet) != key:
        raise LeaseError('lease key %r is not canonical (expected %s)' % (key, subnet_key(subnet)))
    return subnet


def subnet_key(subnet):
    """IPv4Network -> flannel's key ``"172.20.1.0-24"``."""
    return '%s-%d' % (subnet.network_address, subnet.prefixlen)


# ---------------------------------------------------------------- the lease

@dataclass(frozen=True)
class Lease:
    """One node's lease. ``vni``/``vtep_mac`` are None for host-gw."""

    subnet: ipaddress.IPv4Network
    public_ip: ipaddress.IPv4Address
    backend_type: str
    vni: Optional[int] = None
    vtep_mac: Optional[str] = None

    @classmethod
    def make(cls, subnet, public_ip, backend_type, vni=None, vtep_mac=None):
        """Build a validated lease from strings or ipaddress objects."""
        what = 'lease %s' % (subnet,)
        vni, vtep_mac = _backend(backend_type, vni, vtep_mac, what)
        return cls(_subnet(subnet, what), _ipv4(str(public_ip), what + ' PublicIP'),
                   backend_type, vni, vtep_mac)

    @property
    def key(self):
        return subnet_key(self.subnet)

    def backend_data(self):
        """flannel's BackendData (None for host-gw, which omits it)."""
        if self.backend_type == 'vxlan':
            return {'VNI': self.vni, 'VtepMAC': self.vtep_mac}
        return None

    def to_store(self):
        """(key, value): exactly what flanneld writes (Go's json.Marshal of LeaseAttrs).

        BackendData is ``omitempty`` in flannel and host-gw sets none, so it is left out;
        PublicIPv6 is a nil pointer without omitempty, so it is ``null``.
        """
        value = {'PublicIP': str(self.public_ip), 'PublicIPv6': None, 'BackendType': self.backend_type}
        data = self.backend_data()
        if data is not None:
            value['BackendData'] = data
        return self.key, json.dumps(value, separators=(',', ':'))

    @classmethod
    def from_store(cls, key, value):
        """Parse and validate a stored lease (value: JSON text or the decoded object)."""
        subnet = subnet_from_key(key)
        what = 'lease %s' % key
        if isinstance(value, (bytes, str)):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise LeaseError('%s: value is not JSON (%s)' % (what, exc))
        if not isinstance(value, dict):
            raise LeaseError('%s: value is not a JSON object' % what)
        public_ip = _ipv4(value.get('PublicIP'), what + ' PublicIP')
        backend_type = value.get('BackendType')
        data = value.get('BackendData')
        if backend_type == 'vxlan' and not isinstance(data, dict):
            raise LeaseError('%s: vxlan lease without BackendData' % what)
        data = data if isinstance(data, dict) else {}
        vni, mac = _backend(backend_type, data.get('VNI'), data.get('VtepMAC'), what)
        return cls(subnet, public_ip, backend_type, vni, mac)

    def as_peer(self):
        """The peer dict of docs/architecture.md."""
        return {'subnet': str(self.subnet), 'public_ip': str(self.public_ip),
                'backend_type': self.backend_type, 'vni': self.vni, 'vtep_mac': self.vtep_mac}

    @classmethod
    def from_peer(cls, peer):
        """Validate a peer dict (as passed between modules) into a Lease."""
        if not isinstance(peer, dict):
            raise LeaseError('peer %r is not a dict' % (peer,))
        lease = cls.make(peer.get('subnet'), peer.get('public_ip'), peer.get('backend_type'),
                         peer.get('vni'), peer.get('vtep_mac'))
        if str(lease.subnet) != str(peer.get('subnet')):
            raise LeaseError('peer subnet %r is not canonical (expected %s)' % (peer.get('subnet'), lease.subnet))
        return lease


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
                reserved.append(subnet_from_key(key))
            except LeaseError:
                pass
    leases.sort(key=lambda lease: lease.subnet)
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


def _lowest_free(netconf, taken):
    """Lowest subnet of SubnetLen in [SubnetMin, SubnetMax] overlapping none of ``taken``."""
    return next(_free_subnets(netconf, taken), None)


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
    public_ip = _ipv4(str(public_ip), 'public_ip')
    what = 'node %s' % public_ip
    vni, vtep_mac = _backend(backend_type, vni, vtep_mac, what)
    mine = sorted((lease for lease in leases if lease.public_ip == public_ip), key=lambda lease: lease.subnet)
    # a lease of another size or outside the network cannot be this config's: it blocks nothing
    others = [subnet for subnet in [lease.subnet for lease in leases if lease.public_ip != public_ip]
              + list(reserved) if fits(netconf, subnet)]

    def lease_of(subnet):
        return Lease(subnet, public_ip, backend_type, vni, vtep_mac)

    for lease in mine:
        if compatible(netconf, lease.subnet) and not _overlaps(lease.subnet, others):
            return lease_of(lease.subnet)
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


def subnet_env_text(netconf, lease, mtu, ip_masq):
    """subnet.env as flanneld writes it (IPv4 only): fixed order, LF, no quotes."""
    gateway = ipaddress.IPv4Interface((int(lease.subnet.network_address) + 1, lease.subnet.prefixlen))
    return ('FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n'
            % (netconf.network, gateway, int(mtu), _bool_text(ip_masq)))


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
        public_ip = _ipv4(str(public_ip), 'public_ip')
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
    public_ip = ipaddress.IPv4Address(str(public_ip))
    own, peers, warnings = None, [], []
    for lease in leases:
        if lease.public_ip == public_ip:
            own = own or lease
        elif netconf is not None and not fits(netconf, lease.subnet):
            warnings.append('skipping lease %s of %s (store key %s): not a /%d inside network %s'
                            % (lease.subnet, lease.public_ip, lease.key, netconf.subnet_len, netconf.network))
        else:
            peers.append(lease)
    return own, peers, warnings
