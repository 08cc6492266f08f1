# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One node's lease (to every other node: a peer), the one model of it, its validators and
the constants they share.

A ``Lease`` holds canonical text (``subnet`` a strict CIDR, so its network address is the text
before the slash), whichever store it came from and whichever module reads it: in flannel's
store format (key ``172.20.1.0-24``, value ``{"PublicIP":..,"PublicIPv6":null,"BackendType":..,
"BackendData":..}``) and as the peer dict modules exchange (docs/architecture.md). Validation
is int based (``ipv4``/``ipv6``: thousands of peers per run); ``network`` gives the ``ipaddress``
view. IPv6 (dual-stack, IPv6-only) is carried by the optional fields ``subnet6``, ``public_ip6``
and ``vtep_mac6``; ``view(family)`` gives one family's lease in the IPv4 field names, which is
all the dataplane code reads (docs/dual-stack.md).

Standard library only (runs on the managed node and on the controller).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6, family_named

BACKENDS = ('vxlan', 'host-gw')
VNI_MAX = (1 << 24) - 1
VXLAN_OVERHEAD = 50

IFNAMSIZ = 16
_BAD_IFNAME_CHARS = re.compile(r'[/:\s]')
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
_KEY = re.compile(r'^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$')
_KEY6 = re.compile(r'^([0-9a-f:]+)-(\d{1,3})$')


class DataplaneError(Exception):
    """Invalid input or a state that cannot be programmed; message names the culprit."""


class LeaseError(DataplaneError, ValueError):
    """A lease is invalid, or no subnet can be leased."""


# ---------------------------------------------------------------- single values

def check_ip(value, what, family=IPV4):
    """Canonical text of an address of ``family`` (a Family; the name is taken too, and the
    IPv4 default kept, for extif's calls of before the Family)."""
    fam = family_named(family)
    if fam is IPV4 and fam.ip_int(value) is not None:
        return value  # inet_pton accepts canonical dotted quads only
    try:
        return fam.ip_text(fam.parse_ip(value))
    except ValueError:
        zone = ipv6.zone_problem(value) if isinstance(value, str) else None
        raise LeaseError('%s: %r %s' % (what, value, zone or 'is not an %s address' % fam.label))


def check_net(value, what, family):
    """((int, prefix), canonical text) of a strict network of ``family``."""
    try:
        return family.parse_cidr(value)
    except ValueError as exc:
        raise LeaseError('%s: %r is not an %s network (%s)' % (what, value, family.label, exc))


def ifname_problem(name):
    """Why ``name`` is not a valid Linux interface name (kernel dev_valid_name), or None."""
    if not isinstance(name, str) or not name:
        return 'is empty or not a string'
    if len(name) >= IFNAMSIZ:
        return 'is %d characters long (at most %d)' % (len(name), IFNAMSIZ - 1)
    if name in ('.', '..'):
        return 'is not allowed as a name'
    if _BAD_IFNAME_CHARS.search(name):
        return "contains '/', ':' or whitespace"
    return None


def check_ifname(name, what='iface'):
    problem = ifname_problem(name)
    if problem:
        raise LeaseError('%s: %r is not a valid interface name (it %s)' % (what, name, problem))
    return name


def check_mac(value, what):
    mac = str(value).lower()
    if not _MAC.match(mac):
        raise LeaseError('%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)' % (what, value))
    if int(mac[:2], 16) & 1:
        raise LeaseError('%s: %r is a multicast MAC address' % (what, value))
    if mac == '00:00:00:00:00:00':
        raise LeaseError('%s: %r is the zero MAC address, which the kernel refuses in the FDB'
                         % (what, value))
    return mac


def check_node_ip(value, what, family):
    """Canonical text of a node address that can carry VXLAN and routes (unicast, not loopback,
    for IPv6 not link-local: ``Family.not_unicast``)."""
    fam = family_named(family)
    text = check_ip(value, what, fam)
    ip = fam.parse_ip(text)
    for net, why in fam.not_unicast:
        if fam.contains(net, ip):
            raise LeaseError('%s: %s is %s, not a node address' % (what, text, why))
    return text


def check_vni(value, what='vni'):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= VNI_MAX:
        raise LeaseError('%s: %r is not a VNI (1..%d)' % (what, value, VNI_MAX))
    return value


def vtep_mac(public_ip, vni):
    """The VtepMAC of (node IP, VNI): deterministic, locally administered unicast, stable across runs."""
    digest = bytearray(hashlib.sha256(('%s/%d' % (public_ip, int(vni))).encode('ascii')).digest())
    digest[0] = (digest[0] & 0xfe) | 0x02
    return ':'.join('%02x' % b for b in digest[:6])


def kept_vtep_mac(link):
    """The MAC of a flannel device already on the node (an ``ip -json`` link dict, or None): the
    VtepMAC to keep, as flanneld keeps an existing device's MAC (one flanneld made is random), so
    taking a node over changes no peer's entries. None when there is no device or its MAC is not
    a locally administered unicast one."""
    mac = str((link or {}).get('address') or '').lower()
    if not re.match(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$', mac):
        return None
    first = int(mac[:2], 16)
    return mac if first & 2 and not first & 1 else None


def _key_part(key, pattern, fam, form):
    match = pattern.match(key)
    if not match:
        raise LeaseError('lease key %r is not of the form %s' % (key, form))
    try:
        return fam.net_text(fam.parse_net('%s/%s' % match.groups()))
    except ValueError as exc:
        raise LeaseError('lease key %r: %s' % (key, exc))


def subnets_from_key(key):
    """flannel's key -> (IPv4 subnet or None, IPv6 subnet or None) as canonical CIDR text:
    ``172.20.1.0-24``, ``172.20.1.0-24&fd00:20:0:1::-64`` or (IPv6-only, file store) ``fd00:20:0:1::-64``.
    LeaseError unless a canonical key."""
    if not isinstance(key, str):
        raise LeaseError('lease key %r is not a string' % (key,))
    four, amp, six = key.partition('&')
    if not amp and ':' in four:
        four, six = '', four
    subnet = _key_part(four, _KEY, IPV4, 'a.b.c.d-len') if four else None
    subnet6 = _key_part(six, _KEY6, IPV6, 'a.b.c.d-len&ipv6-len') if six else None
    if subnet is None and subnet6 is None:
        raise LeaseError('lease key %r is empty' % (key,))
    if subnet_key(subnet, subnet6) != key:
        raise LeaseError('lease key %r is not canonical (expected %s)' % (key, subnet_key(subnet, subnet6)))
    return subnet, subnet6


def subnet_from_key(key):
    """``"172.20.1.0-24"`` -> canonical CIDR text; LeaseError unless a canonical IPv4 subnet key."""
    subnet, subnet6 = subnets_from_key(key)
    if subnet is None or subnet6 is not None:
        raise LeaseError('lease key %r is not of the form a.b.c.d-len' % (key,))
    return subnet


def subnet_key(subnet, subnet6=None):
    """Subnets (CIDR text or networks) -> flannel's key ``"172.20.1.0-24"``, dual-stack
    ``"172.20.1.0-24&fd00:20:0:1::-64"`` (MakeSubnetKey), IPv6-only ``"fd00:20:0:1::-64"``."""
    parts = [str(net).replace('/', '-') for net in (subnet, subnet6) if net is not None]
    return '&'.join(parts)


# ---------------------------------------------------------------- the lease

def lease_order(lease):
    """Sort key of leases: by IPv4 subnet, IPv6-only leases last (by IPv6 subnet)."""
    return (lease.subnet is None, IPV4.net_key(lease.subnet) if lease.subnet is not None else (0, 0),
            IPV6.net_key(lease.subnet6) if lease.subnet6 is not None else (-1, 0))


_V6_FIELDS = ('subnet6', 'public_ip6', 'vtep_mac6')
# one family's part of a lease: its subnet, the node's address and VTEP MAC in that family
LeasePart = namedtuple('LeasePart', ['subnet', 'public_ip', 'vtep_mac'])
LeasePart.__new__.__defaults__ = (None,)
# what a node brings to a store for one family: its address, its VTEP MAC and the subnet it had
# (subnet.env's), which it keeps when it can
NodePart = namedtuple('NodePart', ['public_ip', 'vtep_mac', 'preferred'])
NodePart.__new__.__defaults__ = (None, None, None)


class Claim(namedtuple('Claim', ['backend_type', 'vni', 'parts', 'former_ips'])):
    """A node asking a store for its lease: backend type, VNI, its ``parts`` by family ({Family:
    NodePart} of every family it has an address of) and ``former_ips`` (its addresses of a family
    the config no longer has: see ``allocation.stale_leases``)."""

    __slots__ = ()

    def __new__(cls, backend_type, vni=None, parts=None, former_ips=()):
        parts = dict((fam, part) for fam, part in (parts or {}).items() if part is not None and part.public_ip is not None)
        return super(Claim, cls).__new__(cls, backend_type, vni, parts, tuple(former_ips or ()))

    @classmethod
    def of_facts(cls, facts):
        """The claim of flannel_subnet's node facts (the flat dict of its result: ``public_ip``,
        ``vtep_mac``, ``previous_subnet`` and their ``6`` twins, ``backend_type``, ``vni``)."""
        parts = dict((fam, NodePart(str(facts[fam.public_ip_key]), facts.get(fam.vtep_mac_key),
                                    facts.get('previous_' + fam.subnet_key)))
                     for fam in FAMILIES if facts.get(fam.public_ip_key) is not None)
        return cls(facts['backend_type'], facts.get('vni'), parts, facts.get('former_ips') or ())

    @property
    def addresses(self):
        """{Family: the node's address}."""
        return dict((fam, part.public_ip) for fam, part in self.parts.items())


def node_addresses(facts):
    """{Family: address} of flannel_subnet's node facts (``public_ip``, ``public_ip6``), as text."""
    return dict((fam, str(facts[fam.public_ip_key])) for fam in FAMILIES if facts.get(fam.public_ip_key) is not None)


class Lease(namedtuple('Lease', ['subnet', 'public_ip', 'backend_type', 'vni', 'vtep_mac'] + list(_V6_FIELDS))):
    """One node's lease; canonical text. ``vni``/``vtep_mac(6)`` are None for host-gw; the IPv6
    fields are None without IPv6, ``subnet``/``public_ip``/``vtep_mac`` None for IPv6-only."""

    __slots__ = ()

    def __new__(cls, subnet, public_ip, backend_type, vni=None, vtep_mac=None,
                subnet6=None, public_ip6=None, vtep_mac6=None):
        return super(Lease, cls).__new__(cls, subnet, public_ip, backend_type, vni, vtep_mac,
                                         subnet6, public_ip6, vtep_mac6)

    @classmethod
    def make(cls, backend_type, vni, parts, what=None):
        """Validate a lease given by family (``parts``: {Family: LeasePart}, text or ipaddress
        objects; a part without a subnet is none); ``what`` names it in errors."""
        return cls.parse(backend_type, vni, parts, what)[0]

    @classmethod
    def parse(cls, backend_type, vni, parts, what=None, family=None):
        """(validated lease, its ``family`` subnet as (int, prefix) or None when it has none or
        no ``family`` is asked): ``make`` for callers that need both."""
        parts = dict((fam, part) for fam, part in parts.items() if part is not None and part.subnet is not None)
        what = what or 'lease %s' % (next((parts[fam].subnet for fam in FAMILIES if fam in parts), None),)
        if backend_type not in BACKENDS:
            raise LeaseError('%s backend_type: %r is not a backend name (one of %s)'
                             % (what, backend_type, ', '.join(BACKENDS)))
        if not parts:
            raise LeaseError('%s: a lease needs subnet (IPv4) or subnet6 (IPv6)' % what)
        vxlan = backend_type == 'vxlan'
        if vxlan and vni is not None:
            vni = check_vni(vni, what + ' vni')
        nets, fields = {}, {}
        for fam in FAMILIES:
            if fam not in parts:
                continue
            sub, pub, mac = parts[fam]
            nets[fam], sub = check_net(str(sub), what + ' ' + fam.subnet_key, fam)
            if pub is None:
                raise LeaseError('%s: %s %s needs %s' % (what, fam.subnet_key, sub, fam.public_ip_key))
            pub = check_node_ip(str(pub), what + ' ' + fam.public_ip_key, fam)
            if vxlan:
                if mac is None:
                    raise LeaseError('%s: a vxlan peer needs %s' % (what, fam.vtep_mac_key))
                mac = check_mac(mac, what + ' ' + fam.vtep_mac_key)
            fields[fam] = (sub, pub, mac if vxlan else None)
        (sub4, pub4, mac4), (sub6, pub6, mac6) = (fields.get(fam, (None, None, None)) for fam in FAMILIES)
        return cls(sub4, pub4, backend_type, vni if vxlan else None, mac4, sub6, pub6, mac6), nets.get(family)

    def after_run(self, backend):
        """This lease once its node has run flannel_subnet with ``backend`` (a netconf Backend):
        check mode's view of a peer that switches backend with the same run."""
        vni = backend.vni if backend.type == 'vxlan' else None
        if (self.backend_type, self.vni) == (backend.type, vni):
            return self
        return self._replace(backend_type=backend.type, vni=vni,
                             vtep_mac=vni and self.public_ip and vtep_mac(self.public_ip, vni),
                             vtep_mac6=vni and self.public_ip6 and vtep_mac(self.public_ip6, vni))

    @property
    def families(self):
        """The Families this lease has a part of, IPv4 first."""
        return tuple(fam for fam in FAMILIES if getattr(self, fam.subnet_key) is not None)

    def part(self, family):
        """This lease's part of ``family``: (subnet, public_ip, vtep_mac), or None without it."""
        subnet = getattr(self, family.subnet_key)
        if subnet is None:
            return None
        return LeasePart(subnet, getattr(self, family.public_ip_key), getattr(self, family.vtep_mac_key))

    @property
    def parts(self):
        """{Family: LeasePart} of the families the lease has."""
        return dict((fam, self.part(fam)) for fam in self.families)

    def view(self, family):
        """This lease in one family, in the IPv4 field names (None when it has no such family):
        what the per-family dataplane code reads."""
        if family is IPV4 and self.subnet6 is None:
            return self if self.subnet is not None else None
        part = self.part(family)
        return None if part is None else Lease(part.subnet, part.public_ip, self.backend_type, self.vni, part.vtep_mac)

    def network_of(self, family):
        """The subnet of ``family`` as an ``ipaddress`` network (allocation, subnet.env), or None."""
        subnet = getattr(self, family.subnet_key)
        return None if subnet is None else family.net_cls(subnet)

    @property
    def network(self):
        """The IPv4 subnet as an IPv4Network; None for IPv6-only."""
        return self.network_of(IPV4)

    @property
    def network6(self):
        """The IPv6 subnet as an IPv6Network, or None."""
        return self.network_of(IPV6)

    @property
    def key(self):
        return subnet_key(self.subnet, self.subnet6)

    def backend_data(self, family):
        """flannel's BackendData / BackendV6Data (None for host-gw, which omits it)."""
        mac = getattr(self, family.vtep_mac_key)
        if self.backend_type == 'vxlan' and mac is not None:
            return {'VNI': self.vni, 'VtepMAC': mac}
        return None

    def to_store(self):
        """(key, value): exactly what flanneld writes (Go's json.Marshal of LeaseAttrs).

        PublicIP is a value (IPv4-only leases: the node's IPv4; IPv6-only: "0.0.0.0");
        PublicIPv6 a pointer without omitempty (``null`` without IPv6); BackendData and
        BackendV6Data are ``omitempty``: host-gw sets none, so they are left out.
        """
        value = {'PublicIP': self.public_ip or '0.0.0.0', 'PublicIPv6': self.public_ip6,
                 'BackendType': self.backend_type}
        for fam in FAMILIES:
            data = self.backend_data(fam)
            if data is not None:
                value[fam.store_backend_data] = data
        return self.key, json.dumps(value, separators=(',', ':'))

    @classmethod
    def from_store(cls, key, value):
        """Parse and validate a stored lease (value: JSON text or the decoded object)."""
        subnet, subnet6 = subnets_from_key(key)
        what = 'lease %s' % key
        if isinstance(value, (bytes, str)):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise LeaseError('%s: value is not JSON (%s)' % (what, exc))
        if not isinstance(value, dict):
            raise LeaseError('%s: value is not a JSON object' % what)
        vxlan = value.get('BackendType') == 'vxlan'
        data, data6 = value.get('BackendData'), value.get('BackendV6Data')
        if vxlan and subnet is not None and not isinstance(data, dict):
            raise LeaseError('%s: vxlan lease without BackendData' % what)
        if vxlan and subnet6 is not None and not isinstance(data6, dict):
            raise LeaseError('%s: vxlan lease with an IPv6 subnet without BackendV6Data' % what)
        data = data if isinstance(data, dict) else {}
        data6 = data6 if isinstance(data6, dict) else {}
        found = {IPV4: (subnet, data), IPV6: (subnet6, data6)}
        parts = dict((fam, LeasePart(sub, value.get(fam.store_public_ip), fam_data.get('VtepMAC')))
                     for fam, (sub, fam_data) in found.items() if sub is not None)
        return cls.make(value.get('BackendType'), data.get('VNI', data6.get('VNI')), parts, what)

    def as_peer(self):
        """The peer dict of docs/architecture.md (every key, null where the lease has no value)."""
        return self._asdict()

    @classmethod
    def from_peer(cls, peer, what='peer'):
        """Validate a peer dict (as passed between modules) into a Lease."""
        return cls.parse_peer(peer, what)[0]

    @classmethod
    def parse_peer(cls, peer, what='peer', family=None):
        """from_peer -> (Lease, its ``family`` subnet as (int, prefix) or None)."""
        if not isinstance(peer, dict):
            raise LeaseError('%s: a peer must be a dict, got %r' % (what, peer))
        parts = dict((fam, LeasePart(peer.get(fam.subnet_key), peer.get(fam.public_ip_key), peer.get(fam.vtep_mac_key)))
                     for fam in FAMILIES)
        return cls.parse(peer.get('backend_type') or 'vxlan', peer.get('vni'), parts, what, family)
