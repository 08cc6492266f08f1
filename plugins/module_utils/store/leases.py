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

from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift_of_diffs
from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv4

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, LABEL
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    Lease, LeaseError, check_node_ip, subnets_from_key)

SUBNET_ENV_PATH = '/run/flannel/subnet.env'
SUBNET_ENV_KEYS = ('FLANNEL_NETWORK', 'FLANNEL_SUBNET', 'FLANNEL_IPV6_NETWORK',
                   'FLANNEL_IPV6_SUBNET', 'FLANNEL_MTU', 'FLANNEL_IPMASQ')


def _subnet(value, what, family='ipv4'):
    cls = ipaddress.IPv6Network if family == 'ipv6' else ipaddress.IPv4Network
    try:
        return cls(value if isinstance(value, (str, cls)) else '<%r>' % (value,))
    except ValueError as exc:
        raise LeaseError('%s: %r is not an %s subnet (%s)' % (what, value, LABEL[family], exc))


def lease_order(lease):
    """Sort key of leases: by IPv4 subnet, IPv6-only leases last (by IPv6 subnet)."""
    return (lease.subnet is None, ipv4.net_key(lease.subnet) if lease.subnet is not None else (0, 0),
            ipv6.net_key(lease.subnet6) if lease.subnet6 is not None else (-1, 0))


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


# ---------------------------------------------------------------- allocation

_NETWORK = {'ipv4': ipaddress.IPv4Network, 'ipv6': ipaddress.IPv6Network}
_BITS = {'ipv4': 32, 'ipv6': 128}


def _family(subnet):
    return 'ipv6' if subnet.version == 6 else 'ipv4'


def family_conf(netconf, family):
    """(Network, SubnetLen, SubnetMin, SubnetMax) of ``family``, or None when the config does
    not enable it (EnableIPv4 / EnableIPv6; a config without these attributes is IPv4-only)."""
    if family == 'ipv4':
        if not getattr(netconf, 'enable_ipv4', True):
            return None
        return netconf.network, netconf.subnet_len, netconf.subnet_min, netconf.subnet_max
    if not getattr(netconf, 'enable_ipv6', False):
        return None
    return netconf.ipv6_network, netconf.ipv6_subnet_len, netconf.ipv6_subnet_min, netconf.ipv6_subnet_max


def config_families(netconf):
    return tuple(family for family in FAMILIES if family_conf(netconf, family) is not None)


def fits(netconf, subnet):
    """A subnet (IPv4Network or IPv6Network) this network config could have leased: of its
    family's SubnetLen, inside its Network (never, when the config does not enable the family)."""
    conf = family_conf(netconf, _family(subnet))
    return conf is not None and subnet.prefixlen == conf[1] and subnet.subnet_of(conf[0])


def compatible(netconf, subnet):
    """flannel's isSubnetConfigCompat (an IPv6Network: isIPv6SubnetConfigCompat): between the
    family's SubnetMin and SubnetMax, of its SubnetLen."""
    conf = family_conf(netconf, _family(subnet))
    return (conf is not None and subnet.prefixlen == conf[1]
            and conf[2].network_address <= subnet.network_address <= conf[3].network_address)


def lease_compatible(netconf, lease):
    """flannel's isSubnetConfigCompat && isIPv6SubnetConfigCompat: each family the config
    enables is in the lease and compatible, and the lease has no family the config does not
    enable (an IPv4 lease is not compatible once IPv6 is on, a dual-stack one once it is off)."""
    for family, subnet in (('ipv4', lease.network), ('ipv6', lease.network6)):
        if family_conf(netconf, family) is None:
            if subnet is not None:
                return False
        elif subnet is None or not compatible(netconf, subnet):
            return False
    return True


def subnet_count(netconf, family='ipv4'):
    dummy, subnet_len, smin, smax = family_conf(netconf, family)
    size = 1 << (_BITS[family] - subnet_len)
    return (int(smax.network_address) - int(smin.network_address)) // size + 1


def _free_subnets(netconf, taken, family='ipv4'):
    """Free subnets of SubnetLen in [SubnetMin, SubnetMax] overlapping none of ``taken``, lowest first."""
    dummy, subnet_len, smin, smax = family_conf(netconf, family)
    size = 1 << (_BITS[family] - subnet_len)
    cand = int(smin.network_address)
    last = int(smax.network_address)
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    index = 0
    while cand <= last:
        while index < len(spans) and spans[index][1] < cand:
            index += 1
        if index < len(spans) and spans[index][0] <= cand + size - 1:
            cand = (spans[index][1] + size) // size * size   # first boundary after the taken span
            continue
        yield _NETWORK[family]((cand, subnet_len))
        cand += size


def _overlaps(subnet, taken):
    return any(subnet.overlaps(other) for other in taken)


def is_own(lease, public_ip, public_ip6=None):
    """The lease of the node with these public addresses: same PublicIP or same PublicIPv6."""
    return ((public_ip is not None and lease.public_ip == str(public_ip))
            or (public_ip6 is not None and lease.public_ip6 == str(public_ip6)))


def _lease_nets(lease):
    return {'ipv4': lease.network, 'ipv6': lease.network6}


def allocate(netconf, leases, public_ip, backend_type, vni=None, vtep_mac=None, preferred=None, reserved=(),
             spread=1, public_ip6=None, vtep_mac6=None, preferred6=None):
    """Pick this node's lease following flanneld's acquire rules.

    1. a lease already holding ``public_ip`` (or ``public_ip6``) and compatible with the config
       (``lease_compatible``: every enabled family, no other) is kept (backend data updated);
       several such leases (a damaged store): the lowest subnet wins;
    2. else, for each family the config enables: the node's subnet of that family in a lease
       that is not kept (so switching IPv6 on or off keeps the IPv4 subnet), else ``preferred``
       / ``preferred6`` (the subnets of an existing subnet.env), when compatible and free;
    3. else the lowest free compatible subnet (flanneld picks at random among the first 100
       free ones; lowest-first makes runs reproducible); with ``spread`` > 1 one at random among
       the first ``spread`` free ones (a store retrying after a lost race spreads the racers).

    ``leases``: valid leases of the store; ``reserved``: subnets (either family) that are taken
    by entries that could not be parsed. Leases of the node that are not kept are free for reuse
    (the caller removes them). IPv6-only configs (EnableIPv4 false) lease only ``subnet6``.
    Raises LeaseError "out of subnets" / "out of IPv6 subnets".
    """
    families = config_families(netconf)
    addresses = {'ipv4': public_ip, 'ipv6': public_ip6}
    for family in families:
        if addresses[family] is None:
            raise LeaseError('the network has %s: the node needs public_ip%s'
                             % (LABEL[family], '6' if family == 'ipv6' else ''))
    public_ip = None if public_ip is None else check_node_ip(str(public_ip), 'public_ip')
    public_ip6 = None if public_ip6 is None else check_node_ip(str(public_ip6), 'public_ip6', 'ipv6')
    what = 'node %s' % (public_ip if public_ip is not None else public_ip6)
    mine = sorted((lease for lease in leases if is_own(lease, public_ip, public_ip6)), key=lease_order)
    # a lease of another size or outside the network cannot be this config's: it blocks nothing
    taken = dict((family, []) for family in FAMILIES)
    for subnet in [net for lease in leases if not is_own(lease, public_ip, public_ip6)
                   for net in (lease.network, lease.network6) if net is not None] + list(reserved):
        if fits(netconf, subnet):
            taken[_family(subnet)].append(subnet)

    def lease_of(subnets):
        return Lease.make(subnets.get('ipv4'), public_ip, backend_type, vni, vtep_mac, what,
                          subnets.get('ipv6'), public_ip6, vtep_mac6)

    def free(subnet, family):
        return subnet is not None and compatible(netconf, subnet) and not _overlaps(subnet, taken[family])

    for lease in mine:
        nets = _lease_nets(lease)
        if lease_compatible(netconf, lease) and all(free(nets[family], family) for family in families):
            return lease_of(nets)
    chosen = {}
    wanted = {'ipv4': preferred, 'ipv6': preferred6}
    for family in families:
        candidates = [_lease_nets(lease)[family] for lease in mine]
        if wanted[family] is not None:
            candidates.append(_subnet(wanted[family], 'preferred subnet%s' % ('6' if family == 'ipv6' else ''),
                                      family))
        chosen[family] = next((subnet for subnet in candidates if free(subnet, family)), None)
        if chosen[family] is None:
            spare = list(itertools.islice(_free_subnets(netconf, taken[family], family), max(1, int(spread))))
            if not spare:
                network, subnet_len, smin, smax = family_conf(netconf, family)
                raise LeaseError(
                    'out of %ssubnets: network %s has %d subnets of /%d between %s and %s and all are leased'
                    % ('IPv6 ' if family == 'ipv6' else '', network, subnet_count(netconf, family), subnet_len,
                       smin, smax))
            chosen[family] = random.choice(spare)
    return lease_of(chosen)


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
        os.makedirs(directory, dir_mode, exist_ok=True)   # nodes of one run create it at once
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
                preferred=None, config=None, check_mode=False, public_ip6=None, vtep_mac6=None,
                preferred6=None, former_ips=()):
        """Allocate or keep the node's lease -> (lease, changed, warnings, before, after).
        ``public_ip6``/``vtep_mac6``/``preferred6``: the IPv6 twins (when the config has IPv6);
        ``former_ips``: see ``stale_leases``."""
        raise NotImplementedError

    def release(self, public_ip, check_mode=False, public_ip6=None):
        """Remove the node's leases (by PublicIP or PublicIPv6) -> (released leases, changed)."""
        raise NotImplementedError


def decoded(value):
    """A store value as an object when it is JSON text, else unchanged."""
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def own_entries(doc, public_ip, public_ip6=None):
    """The store entries of ``public_ip`` or ``public_ip6`` (and the config) as text, for --diff."""
    mine = {}
    for key, value in sorted((doc.get('leases') or {}).items()):
        value = decoded(value)
        if isinstance(value, dict) and ((public_ip is not None and value.get('PublicIP') == str(public_ip))
                                        or (public_ip6 is not None and value.get('PublicIPv6') == str(public_ip6))):
            mine[key] = value
    if not mine:
        return ''
    return json.dumps({'config': doc.get('config'), 'leases': mine}, indent=2, sort_keys=True) + '\n'


def store_diff(label, before, after, public_ip, public_ip6=None):
    """--diff entry of the node's lease in a store."""
    header = '%s (%s)' % (label, ', '.join(str(ip) for ip in (public_ip, public_ip6) if ip is not None))
    return dict(before=own_entries(before, public_ip, public_ip6), after=own_entries(after, public_ip, public_ip6),
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
        os.makedirs(directory, 0o755, exist_ok=True)   # the forks of one run race to create it
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
                preferred=None, config=None, check_mode=False, public_ip6=None, vtep_mac6=None,
                preferred6=None, former_ips=()):
        """Allocate/keep this node's lease and store it. Call inside ``locked()``.

        Returns (lease, changed, warnings, before, after) where before/after are the store
        documents (for --diff); nothing is written in check mode.
        """
        before = self.load()
        leases, warnings, reserved = parse_leases(before['leases'])
        lease = allocate(netconf, leases, public_ip, backend_type, vni, vtep_mac, preferred, reserved,
                         public_ip6=public_ip6, vtep_mac6=vtep_mac6, preferred6=preferred6)
        after = {'config': before['config'] if config is None else config, 'leases': dict(before['leases'])}
        for old in stale_leases(leases, lease, netconf, former_ips):
            del after['leases'][old.key]   # flannel deletes our incompatible lease
        key, value = lease.to_store()
        after['leases'][key] = json.loads(value)
        changed = self.dumps(after) != read_text(self.path)
        if changed and not check_mode:
            self.save(after)
        return lease, changed, warnings, before, after

    def release(self, public_ip, check_mode=False, public_ip6=None):
        """Remove every valid lease of ``public_ip`` or ``public_ip6``. Call inside ``locked()``.

        Returns (released leases, changed).
        """
        public_ip, public_ip6 = node_ips(public_ip, public_ip6)
        data = self.load()
        leases, dummy, dummy2 = parse_leases(data['leases'])
        gone = [lease for lease in leases if is_own(lease, public_ip, public_ip6)]
        for lease in gone:
            del data['leases'][lease.key]
        if gone and not check_mode:
            self.save(data)
        return gone, bool(gone)


def node_ips(public_ip, public_ip6=None):
    """Canonical (public_ip, public_ip6) of a node; at least one of them is needed."""
    if public_ip is None and public_ip6 is None:
        raise LeaseError('public_ip or public_ip6 is needed to find the node\'s lease')
    return (None if public_ip is None else check_node_ip(str(public_ip), 'public_ip'),
            None if public_ip6 is None else check_node_ip(str(public_ip6), 'public_ip6', 'ipv6'))


def stale_leases(leases, lease, netconf=None, former_ips=()):
    """The leases of ``lease``'s node that it replaces (flannel deletes them). ``former_ips``: the
    node's addresses of a family its config no longer has (IPv4-only -> IPv6-only and back): a
    lease of one of them that cannot belong to ``netconf`` is the node's old lease too."""
    former = set(str(ip) for ip in former_ips or ())

    def formerly_own(old):
        return bool(former & {old.public_ip, old.public_ip6}) and netconf is not None and _misfit(netconf, old)
    return [old for old in leases if old.key != lease.key
            and (is_own(old, lease.public_ip, lease.public_ip6) or formerly_own(old))]


def _misfit(netconf, lease):
    """Why ``lease`` cannot belong to ``netconf`` (a family of the lease the config enables is not
    of its SubnetLen inside its Network), or None. Families the config does not enable are not
    looked at (a peer not yet run with the new config keeps the families both have)."""
    for family, subnet in (('ipv4', lease.network), ('ipv6', lease.network6)):
        conf = family_conf(netconf, family)
        if subnet is not None and conf is not None and not fits(netconf, subnet):
            return 'not a /%d inside network %s' % (conf[1], conf[0])
    if not any(family_conf(netconf, family) is not None for family in lease.families):
        return 'no subnet of the network\'s families (%s)' % ', '.join(LABEL[f] for f in config_families(netconf))
    return None


def split_peers(leases, public_ip, netconf=None, public_ip6=None):
    """(own lease or None, other leases, warnings); leases that cannot belong to ``netconf``
    (outside its network, or not of its SubnetLen) are skipped with a warning, as flanneld does."""
    own, peers, warnings = None, [], []
    for lease in leases:
        why = None if netconf is None else _misfit(netconf, lease)
        if is_own(lease, public_ip, public_ip6):
            own = own or lease
        elif why:
            subnets = ', '.join(subnet for subnet in (lease.subnet, lease.subnet6) if subnet is not None)
            node = ', '.join(ip for ip in (lease.public_ip, lease.public_ip6) if ip is not None)
            warnings.append('skipping lease %s of %s (store key %s): %s' % (subnets, node, lease.key, why))
        else:
            peers.append(lease)
    return own, peers, warnings


def families_compatible(netconf, lease):
    """Every family of ``lease`` that the config enables is compatible (check mode's guess that the
    peer keeps its lease)."""
    return all(compatible(netconf, subnet) for subnet in (lease.network, lease.network6)
               if subnet is not None and family_conf(netconf, _family(subnet)) is not None)


# ---------------------------------------------------------------- flannel_subnet's states

def lease_state(store, state, netconf, facts, env, config=None, check_mode=False):
    """flannel_subnet's one state machine, for any ``LeaseStore``.

    present: acquire (or keep) the node's lease, then ``env(lease)`` writes subnet.env;
    query: the node's lease and the peers, nothing changes;
    absent: release the node's leases, then ``env(None)`` removes subnet.env.
    facts: the node's facts (``public_ip``, with IPv6 ``public_ip6`` (``public_ip`` None for
    IPv6-only); with present also ``backend_type``, ``vni``, ``vtep_mac``, ``vtep_mac6``,
    ``previous_subnet``, ``previous_subnet6``); env returns (changed, diffs, facts to report).
    Returns the module result, with ``warnings``. The file store is locked around its
    read-modify-write, not around ``env``.
    """
    public_ip, public_ip6 = facts.get('public_ip'), facts.get('public_ip6')
    public_ip = None if public_ip is None else str(public_ip)
    public_ip6 = None if public_ip6 is None else str(public_ip6)
    result = dict(facts, changed=False, lease=None)
    if state == 'query':
        with store.locked(shared=True, create=False):
            leases, warnings = store.leases()
    elif state == 'absent':
        with store.locked(create=not check_mode):
            gone, result['changed'] = store.release(public_ip, check_mode=check_mode, public_ip6=public_ip6)
            leases, warnings = store.leases()
        leases = [lease for lease in leases if lease not in gone]
        changed, diffs, more = env(None)
        before = {'config': None, 'leases': dict((g.key, json.loads(g.to_store()[1])) for g in gone)}
        result.update(more, subnet_env={}, public_ip=public_ip, lease=gone[0].as_peer() if gone else None,
                      diff=[store_diff(store.label, before, {}, public_ip, public_ip6)] + diffs)
        if public_ip6 is not None:
            result['public_ip6'] = public_ip6
    else:
        with store.locked(create=not check_mode):
            lease, result['changed'], warnings, before, after = store.acquire(
                netconf, public_ip, facts['backend_type'], facts.get('vni'), facts.get('vtep_mac'),
                preferred=facts.get('previous_subnet'), config=config, check_mode=check_mode,
                public_ip6=public_ip6, vtep_mac6=facts.get('vtep_mac6'), preferred6=facts.get('previous_subnet6'),
                former_ips=facts.get('former_ips') or ())
        leases = leases_of(after)
        changed, diffs, more = env(lease)
        result.update(more, lease=lease.as_peer(),
                      diff=[store_diff(store.label, before, after, public_ip, public_ip6)] + diffs)
    own, peers, skipped = split_peers(leases, public_ip, netconf, public_ip6)
    if check_mode and netconf is not None and state != 'absent':
        # the real run's peers hold the new backend once every node has run: so plan with them
        peers = [peer.after_run(netconf.backend) if families_compatible(netconf, peer) else peer for peer in peers]
    if state == 'query':
        result['lease'] = own.as_peer() if own else None
    else:
        result['changed'] = bool(result['changed'] or changed)
    result.update(peers=[peer.as_peer() for peer in peers], warnings=list(warnings) + skipped,
                  drift=drift_of_diffs(result.get('diff') or []) if check_mode and result['changed'] else [])
    return result
