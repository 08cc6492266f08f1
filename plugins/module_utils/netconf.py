# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network config model: flannel's net-conf.json rules (kubeasz's keys: clusterconfig.py,
the CNI documents: cniconf.py).

* ``parse_net_conf(dict) -> NetConf``: flannel's own rules for net-conf.json
  (keys matched case-insensitively, unknown keys ignored, host bits masked,
  SubnetLen/SubnetMin/SubnetMax defaults and checks, backend type lower-cased).
* ``to_net_conf``: the net-conf.json document flannel reads.

Canonical net-conf.json (``to_net_conf``): ``Network`` and ``EnableNFTables``
always; ``SubnetLen``/``SubnetMin``/``SubnetMax`` only when they differ from the
value flannel would derive itself (so a kubeasz default renders the familiar
short document, and flannel reads back exactly the same NetConf); ``Backend``
with ``Type``; for vxlan also ``VNI`` and ``DirectRouting`` always, ``Port`` and
``MTU`` when not 0, ``GBP`` and ``Learning`` when true.

All problems are collected and raised at once (``NetConfError``, with a
``problems`` list). Standard library only: this
file also runs on the managed nodes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ansible_collections.kubeasz.network.plugins.module_utils.lease import BACKENDS, VNI_MAX, VXLAN_OVERHEAD

# Backend types flannel knows but this collection does not deploy.
OTHER_FLANNEL_BACKENDS = ('udp', 'ipip', 'wireguard', 'ipsec', 'alloc', 'extension',
                          'alivpc', 'awsvpc', 'gce', 'tencentvpc')
MIN_IPV4_MTU = 68
MTU_MIN = MIN_IPV4_MTU + VXLAN_OVERHEAD
MTU_MAX = 9216
PORT_MAX = 65535


class NetConfError(ValueError):
    """net-conf.json breaks flannel's rules; ``problems`` lists every one."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(NetConfError, self).__init__('; '.join(self.problems))


@dataclass(frozen=True)
class Backend:
    """flannel's Backend section (vxlan keys are ignored by host-gw)."""

    type: str = 'vxlan'
    vni: int = 1
    port: int = 0
    mtu: int = 0
    gbp: bool = False
    learning: bool = False
    direct_routing: bool = False


@dataclass(frozen=True)
class NetConf:
    """A validated net-conf.json with flannel's defaults filled in.

    ``network``/``subnet_*`` are None when IPv4 is off (IPv6-only); ``ipv6_*`` are None
    (``ipv6_subnet_len`` 0) when IPv6 is off."""

    network: Optional[ipaddress.IPv4Network]
    subnet_len: Optional[int]
    subnet_min: Optional[ipaddress.IPv4Network]
    subnet_max: Optional[ipaddress.IPv4Network]
    backend: Backend = field(default_factory=Backend)
    enable_nftables: bool = False
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    ipv6_network: Optional[ipaddress.IPv6Network] = None
    ipv6_subnet_len: int = 0
    ipv6_subnet_min: Optional[ipaddress.IPv6Network] = None
    ipv6_subnet_max: Optional[ipaddress.IPv6Network] = None

    @property
    def families(self):
        """('ipv4',), ('ipv6',) or ('ipv4', 'ipv6'): the enabled address families, IPv4 first."""
        return tuple(f for f, on in (('ipv4', self.enable_ipv4), ('ipv6', self.enable_ipv6)) if on)


def backend_dict(be):
    """The Backend as snake_case plain data."""
    return {'type': be.type, 'vni': be.vni, 'port': be.port, 'mtu': be.mtu, 'gbp': be.gbp,
            'learning': be.learning, 'direct_routing': be.direct_routing}


# --------------------------------------------------------------------------- flannel's rules

def default_subnet_len(prefixlen):
    """flannel's SubnetLen when unset; None when the network is too small (> /28)."""
    if prefixlen > 28:
        return None
    return 24 if prefixlen <= 22 else prefixlen + 2


def subnet_len_problem(prefixlen, subnet_len):
    """flannel's check of an explicit SubnetLen, as text, or None."""
    if subnet_len > 30:
        return 'SubnetLen must be less than /31'
    if subnet_len < prefixlen + 2:
        return 'Network must be able to accommodate at least four subnets'
    return None


def default_subnet_range(network, subnet_len):
    """(SubnetMin, SubnetMax) flannel derives: the second and the last subnet."""
    size = 1 << (32 - subnet_len)
    first = int(network.network_address)
    last = first + network.num_addresses - size
    return (ipaddress.IPv4Network((first + size, subnet_len)),
            ipaddress.IPv4Network((last, subnet_len)))


def _fold(data):
    """Keys lower-cased like Go's encoding/json match; a later duplicate wins."""
    return dict((str(k).lower(), v) for k, v in data.items()) if isinstance(data, Mapping) else {}


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_net_conf(data):
    """Validate a net-conf.json dict with flannel's rules; NetConfError lists all problems."""
    problems = []
    if not isinstance(data, Mapping):
        raise NetConfError(['net-conf.json must be a JSON object'])
    d = _fold(data)
    if d.get('enableipv6') is True or d.get('ipv6network'):
        problems.append('IPv6 (EnableIPv6/IPv6Network) is not supported by kubeasz.network')
    if d.get('enableipv4', True) is not True:
        problems.append('EnableIPv4 must be true (IPv4-only clusters are supported)')
    network = _parse_network(d.get('network'), problems)
    subnet_len = _parse_subnet_len(d.get('subnetlen', 0), network, problems)
    smin, smax = _parse_subnet_bounds(d, network, subnet_len, problems)
    backend = _parse_backend(d.get('backend'), problems)
    nft = d.get('enablenftables', False)
    if not isinstance(nft, bool):
        problems.append('EnableNFTables must be true or false, not %r' % (nft,))
    if problems:
        raise NetConfError(problems)
    return NetConf(network=network, subnet_len=subnet_len, subnet_min=smin, subnet_max=smax,
                   backend=backend, enable_nftables=nft)


def _parse_network(value, problems):
    if not value or not isinstance(value, str):
        problems.append('Network is required: an IPv4 CIDR such as "172.20.0.0/16"')
        return None
    try:
        return ipaddress.IPv4Network(value, strict=False)   # flannel masks host bits
    except ValueError as exc:
        problems.append('Network %r is not an IPv4 CIDR: %s' % (value, exc))
        return None


def _parse_subnet_len(value, network, problems):
    if not is_int(value) or value < 0:
        problems.append('SubnetLen must be a non-negative integer, not %r' % (value,))
        return None
    if network is None:
        return value or None
    if value == 0:
        sl = default_subnet_len(network.prefixlen)
        if sl is None:
            problems.append('Network is too small. Minimum useful network prefix is /28')
        return sl
    err = subnet_len_problem(network.prefixlen, value)
    if err:
        problems.append(err)
        return None
    return value


def _parse_subnet_bounds(d, network, subnet_len, problems):
    if network is None or subnet_len is None:
        return None, None
    dmin, dmax = default_subnet_range(network, subnet_len)
    bounds = []
    for key, name, default in (('subnetmin', 'SubnetMin', dmin), ('subnetmax', 'SubnetMax', dmax)):
        value = d.get(key)
        if value in (None, '', '0.0.0.0'):
            bounds.append(default)
            continue
        try:
            ip = ipaddress.IPv4Address(value)
        except ValueError:
            problems.append('%s %r is not an IPv4 address' % (name, value))
            bounds.append(None)
            continue
        if ip not in network:
            problems.append('%s is not in the range of the Network' % name)
        elif int(ip) % (1 << (32 - subnet_len)):
            problems.append('%s is not on a SubnetLen boundary: %s' % (name, ip))
        bounds.append(ipaddress.IPv4Network((int(ip) & ~((1 << (32 - subnet_len)) - 1), subnet_len)))
    smin, smax = bounds
    if smin is not None and smax is not None and smin.network_address > smax.network_address:
        problems.append('SubnetMin %s is above SubnetMax %s' % (smin.network_address, smax.network_address))
    return smin, smax


def _parse_backend(value, problems):
    if value is None:
        problems.append("Backend is missing: flannel would fall back to the removed 'udp' backend; "
                        "set Backend.Type to vxlan or host-gw")
        return None
    if not isinstance(value, Mapping):
        problems.append('Backend must be an object, not %r' % (value,))
        return None
    b = _fold(value)
    btype = b.get('type', 'udp')
    btype = btype.lower() if isinstance(btype, str) else btype
    if btype not in BACKENDS:
        known = 'is not deployed by kubeasz.network' if btype in OTHER_FLANNEL_BACKENDS else 'is unknown'
        problems.append('Backend.Type %r %s; use one of %s' % (btype, known, ', '.join(BACKENDS)))
        return None
    if btype == 'host-gw':
        return Backend(type='host-gw')
    start = len(problems)
    vni = _net_int(b, 'vni', 'VNI', 1, 1, VNI_MAX, problems)
    port = _net_int(b, 'port', 'Port', 0, 0, PORT_MAX, problems)
    mtu = _net_int(b, 'mtu', 'MTU', 0, 0, MTU_MAX, problems)
    if mtu and mtu < MTU_MIN:
        problems.append('MTU %d is too small for vxlan (at least %d)' % (mtu, MTU_MIN))
    flags = {}
    for key, name in (('gbp', 'GBP'), ('learning', 'Learning'), ('directrouting', 'DirectRouting')):
        flags[key] = b.get(key, False)
        if not isinstance(flags[key], bool):
            problems.append('%s must be true or false, not %r' % (name, flags[key]))
    if len(problems) > start:
        return None
    return Backend(type='vxlan', vni=vni, port=port, mtu=mtu, gbp=flags['gbp'],
                   learning=flags['learning'], direct_routing=flags['directrouting'])


def _net_int(b, key, name, default, lo, hi, problems):
    value = b.get(key, default)
    if not is_int(value) or not lo <= value <= hi:
        problems.append('%s must be an integer between %d and %d, not %r' % (name, lo, hi, value))
        return default
    return value


def to_net_conf(nc):
    """The canonical net-conf.json dict (see the module docstring for the shape)."""
    out = {'Network': str(nc.network)}
    if nc.subnet_len != default_subnet_len(nc.network.prefixlen):
        out['SubnetLen'] = nc.subnet_len
    dmin, dmax = default_subnet_range(nc.network, nc.subnet_len)
    if nc.subnet_min != dmin:
        out['SubnetMin'] = str(nc.subnet_min.network_address)
    if nc.subnet_max != dmax:
        out['SubnetMax'] = str(nc.subnet_max.network_address)
    out['EnableNFTables'] = nc.enable_nftables
    out['Backend'] = backend_json(nc.backend)
    return out


def backend_json(be):
    """The canonical net-conf.json Backend object."""
    backend = {'Type': be.type}
    if be.type == 'vxlan':
        backend['VNI'] = be.vni
        if be.port:
            backend['Port'] = be.port
        if be.mtu:
            backend['MTU'] = be.mtu
        if be.gbp:
            backend['GBP'] = True
        if be.learning:
            backend['Learning'] = True
        backend['DirectRouting'] = be.direct_routing
    return backend
