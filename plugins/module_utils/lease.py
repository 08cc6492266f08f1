# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One node's lease (to every other node: a peer), the one model of it, its validators and
the constants they share.

A ``Lease`` holds canonical text (``subnet`` a strict CIDR, so its network address is the text
before the slash), whichever store it came from and whichever module reads it: in flannel's
store format (key ``172.20.1.0-24``, value ``{"PublicIP":..,"PublicIPv6":null,"BackendType":..,
"BackendData":..}``) and as the peer dict modules exchange (docs/architecture.md). Validation
is int based (``ipv4``: thousands of peers per run); ``network`` gives the ``ipaddress`` view.
IPv6 fits in later as further optional fields (``subnet6``, ``public_ip6``) of the same type.

Standard library only (runs on the managed node and on the controller).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import ipaddress
import json
import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4

BACKENDS = ('vxlan', 'host-gw')
VNI_MAX = (1 << 24) - 1
VXLAN_OVERHEAD = 50

IFNAMSIZ = 16
_BAD_IFNAME_CHARS = re.compile(r'[/:\s]')
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
_KEY = re.compile(r'^(\d{1,3}(?:\.\d{1,3}){3})-(\d{1,2})$')


class DataplaneError(Exception):
    """Invalid input or a state that cannot be programmed; message names the culprit."""


class LeaseError(DataplaneError, ValueError):
    """A lease is invalid, or no subnet can be leased."""


# ---------------------------------------------------------------- single values

def check_ip(value, what):
    """Canonical text of an IPv4 address."""
    if ipv4.ip_int(value) is not None:
        return value  # inet_pton accepts canonical dotted quads only
    try:
        return ipv4.ip_text(ipv4.parse_ip(value))
    except ValueError:
        raise LeaseError('%s: %r is not an IPv4 address' % (what, value))


def check_net(value, what):
    """((int, prefix), canonical text) of a strict IPv4 network."""
    try:
        return ipv4.parse_cidr(value)
    except ValueError as exc:
        raise LeaseError('%s: %r is not an IPv4 network (%s)' % (what, value, exc))


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


# Where no node can live: "this" network, loopback, multicast and the reserved/broadcast range.
_NOT_UNICAST = tuple((ipv4.parse_net(net), why) for net, why in (
    ('0.0.0.0/8', 'a "this network" address'), ('127.0.0.0/8', 'a loopback address'),
    ('224.0.0.0/4', 'a multicast address'), ('240.0.0.0/4', 'a reserved or broadcast address')))


def check_node_ip(value, what):
    """Canonical text of a node address that can carry VXLAN and routes (unicast, not loopback)."""
    text = check_ip(value, what)
    ip = ipv4.parse_ip(text)
    for net, why in _NOT_UNICAST:
        if ipv4.contains(net, ip):
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


def subnet_from_key(key):
    """``"172.20.1.0-24"`` -> canonical CIDR text; LeaseError unless a canonical subnet key."""
    match = _KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise LeaseError('lease key %r is not of the form a.b.c.d-len' % (key,))
    try:
        text = ipv4.net_text(ipv4.parse_net('%s/%s' % match.groups()))
    except ValueError as exc:
        raise LeaseError('lease key %r: %s' % (key, exc))
    if subnet_key(text) != key:
        raise LeaseError('lease key %r is not canonical (expected %s)' % (key, subnet_key(text)))
    return text


def subnet_key(subnet):
    """A subnet (CIDR text or IPv4Network) -> flannel's key ``"172.20.1.0-24"``."""
    return str(subnet).replace('/', '-')


# ---------------------------------------------------------------- the lease

class Lease(namedtuple('Lease', ['subnet', 'public_ip', 'backend_type', 'vni', 'vtep_mac'])):
    """One node's lease; canonical text. ``vni``/``vtep_mac`` are None for host-gw."""

    __slots__ = ()

    @classmethod
    def make(cls, subnet, public_ip, backend_type, vni=None, vtep_mac=None, what=None):
        """Validate a lease given as text or ipaddress objects (``what`` names it in errors)."""
        return cls.parse(subnet, public_ip, backend_type, vni, vtep_mac, what)[0]

    @classmethod
    def parse(cls, subnet, public_ip, backend_type, vni=None, vtep_mac=None, what=None):
        """(validated lease, its subnet as ipv4's (int, prefix)): ``make`` for callers that need both."""
        what = what or 'lease %s' % (subnet,)
        net, subnet = check_net(str(subnet) if isinstance(subnet, ipaddress.IPv4Network) else subnet,
                                what + ' subnet')
        public_ip = check_node_ip(str(public_ip) if isinstance(public_ip, ipaddress.IPv4Address)
                                  else public_ip, what + ' public_ip')
        if backend_type not in BACKENDS:
            raise LeaseError('%s backend_type: %r is not a backend name (one of %s)'
                             % (what, backend_type, ', '.join(BACKENDS)))
        if backend_type != 'vxlan':
            return cls(subnet, public_ip, backend_type, None, None), net
        if vtep_mac is None:
            raise LeaseError('%s: a vxlan peer needs vtep_mac' % what)
        return cls(subnet, public_ip, backend_type, vni if vni is None else check_vni(vni, what + ' vni'),
                   check_mac(vtep_mac, what + ' vtep_mac')), net

    def after_run(self, backend):
        """This lease once its node has run flannel_subnet with ``backend`` (a netconf Backend):
        check mode's view of a peer that switches backend with the same run."""
        vni = backend.vni if backend.type == 'vxlan' else None
        if (self.backend_type, self.vni) == (backend.type, vni):
            return self
        return self._replace(backend_type=backend.type, vni=vni, vtep_mac=vni and vtep_mac(self.public_ip, vni))

    @property
    def network(self):
        """The subnet as an IPv4Network (allocation, subnet.env)."""
        return ipaddress.IPv4Network(self.subnet)

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
        value = {'PublicIP': self.public_ip, 'PublicIPv6': None, 'BackendType': self.backend_type}
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
        data = value.get('BackendData')
        if value.get('BackendType') == 'vxlan' and not isinstance(data, dict):
            raise LeaseError('%s: vxlan lease without BackendData' % what)
        data = data if isinstance(data, dict) else {}
        return cls.make(subnet, value.get('PublicIP'), value.get('BackendType'), data.get('VNI'),
                        data.get('VtepMAC'), what)

    def as_peer(self):
        """The peer dict of docs/architecture.md."""
        return self._asdict()

    @classmethod
    def from_peer(cls, peer, what='peer'):
        """Validate a peer dict (as passed between modules) into a Lease."""
        return cls.parse_peer(peer, what)[0]

    @classmethod
    def parse_peer(cls, peer, what='peer'):
        """from_peer -> (Lease, its subnet as ipv4's (int, prefix))."""
        if not isinstance(peer, dict):
            raise LeaseError('%s: a peer must be a dict, got %r' % (what, peer))
        return cls.parse(peer.get('subnet'), peer.get('public_ip'), peer.get('backend_type') or 'vxlan',
                         peer.get('vni'), peer.get('vtep_mac'), what)
