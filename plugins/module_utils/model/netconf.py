# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network config model: flannel's net-conf.json rules (kubeasz's keys: clusterconfig.py,
the CNI documents: cniconf.py).

* ``parse_net_conf(dict) -> NetConf``: flannel's own rules for net-conf.json
  (keys matched case-insensitively, unknown keys ignored, host bits masked,
  SubnetLen/SubnetMin/SubnetMax defaults and checks, backend type lower-cased), and
  their IPv6 twins (``EnableIPv4``, default true; ``EnableIPv6``; ``IPv6Network``;
  ``IPv6SubnetLen``/``IPv6SubnetMin``/``IPv6SubnetMax``, flannel's CheckNetworkConfig).
  A family that is not enabled is ignored, as flannel ignores it: IPv6-only
  (``EnableIPv4: false``) needs no ``Network`` and leaves ``network``/``subnet_*`` None.
* ``to_net_conf``: the net-conf.json document flannel reads.

Canonical net-conf.json (``to_net_conf``): ``Network`` (with IPv4) and ``EnableNFTables``
always; ``SubnetLen``/``SubnetMin``/``SubnetMax`` only when they differ from the
value flannel would derive itself (so a kubeasz default renders the familiar
short document, and flannel reads back exactly the same NetConf); ``EnableIPv4: false``
only for IPv6-only; with IPv6 ``EnableIPv6: true`` and ``IPv6Network``, and
``IPv6SubnetLen``/``IPv6SubnetMin``/``IPv6SubnetMax`` under the same rule as the IPv4
keys; ``Backend`` with ``Type``; for vxlan also ``VNI`` when not 1, ``Port`` and ``MTU``
when not 0, ``GBP``, ``Learning`` and ``DirectRouting`` when true (flannel's defaults left
out, so kubeasz's defaults render the very document kubeasz's own template writes).

All problems are collected and raised at once (``NetConfError``, with a
``problems`` list). Standard library only: this
file also runs on the managed nodes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
from dataclasses import dataclass, field
from typing import Mapping, Optional

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6, parse_address
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import BACKENDS, VNI_MAX, VXLAN_OVERHEAD

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
        """(IPV4,), (IPV6,) or (IPV4, IPV6): the enabled address families, IPv4 first."""
        return tuple(fam for fam in FAMILIES if getattr(self, fam.enable_attr))


def backend_dict(be):
    """The Backend as snake_case plain data."""
    return {'type': be.type, 'vni': be.vni, 'port': be.port, 'mtu': be.mtu, 'gbp': be.gbp,
            'learning': be.learning, 'direct_routing': be.direct_routing}


# --------------------------------------------------------------------------- flannel's rules

def default_subnet_len(prefixlen, fam):
    """flannel's SubnetLen (IPv6SubnetLen with the IPv6 Family) when unset; None when the network
    is too small (IPv4: > /28, IPv6: > /124)."""
    if prefixlen > fam.min_prefix:
        return None
    return fam.default_len if prefixlen <= fam.default_len - 2 else prefixlen + 2


def subnet_len_problem(prefixlen, subnet_len, fam):
    """flannel's check of an explicit SubnetLen (IPv6SubnetLen with the IPv6 Family), as text, or None."""
    if subnet_len > fam.max_len:
        return '%s must be less than /%d' % (fam.len_key, fam.max_len + 1)
    if subnet_len < prefixlen + 2:
        return '%s must be able to accommodate at least four subnets' % fam.network_key
    return None


def default_subnet_range(network, subnet_len):
    """(SubnetMin, SubnetMax) flannel derives: the second and the last subnet (IPv4 or IPv6)."""
    cls = type(network)
    size = 1 << (network.max_prefixlen - subnet_len)
    first = int(network.network_address)
    last = first + network.num_addresses - size
    return cls((first + size, subnet_len)), cls((last, subnet_len))


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
    enable = {}
    for key, name, default in (('enableipv4', 'EnableIPv4', True), ('enableipv6', 'EnableIPv6', False)):
        enable[key] = d.get(key, default)
        if not isinstance(enable[key], bool):
            problems.append('%s must be true or false, not %r' % (name, enable[key]))
            enable[key] = default
    v4, v6 = enable['enableipv4'], enable['enableipv6']
    if not v4 and not v6:
        problems.append('EnableIPv4 and EnableIPv6 are both false: enable at least one address family')
    network = subnet_len = smin = smax = None
    if v4:   # flannel ignores Network and the Subnet* keys of IPv4-less configs
        network = _parse_network(d, IPV4, problems)
        subnet_len = _parse_subnet_len(d, IPV4, network, problems)
        smin, smax = _parse_subnet_bounds(d, IPV4, network, subnet_len, problems)
    network6 = smin6 = smax6 = None
    subnet_len6 = 0
    if v6:   # and the IPv6 keys without EnableIPv6
        network6 = _parse_network(d, IPV6, problems)
        subnet_len6 = _parse_subnet_len(d, IPV6, network6, problems)
        smin6, smax6 = _parse_subnet_bounds(d, IPV6, network6, subnet_len6, problems)
    backend = _parse_backend(d.get('backend'), problems)
    nft = d.get('enablenftables', False)
    if not isinstance(nft, bool):
        problems.append('EnableNFTables must be true or false, not %r' % (nft,))
    if problems:
        raise NetConfError(problems)
    return NetConf(network=network, subnet_len=subnet_len, subnet_min=smin, subnet_max=smax,
                   backend=backend, enable_nftables=nft, enable_ipv4=v4, enable_ipv6=v6,
                   ipv6_network=network6, ipv6_subnet_len=subnet_len6 if v6 else 0,
                   ipv6_subnet_min=smin6, ipv6_subnet_max=smax6)


def _parse_network(d, fam, problems):
    value = d.get(fam.network_key.lower())
    if not value or not isinstance(value, str):
        if fam is IPV4:
            problems.append('Network is required: an IPv4 CIDR such as "172.20.0.0/16"')
        else:
            problems.append('IPv6Network is required with EnableIPv6: an IPv6 CIDR such as "%s"' % fam.example)
        return None
    try:
        return parse_address(value, fam, network=True)   # flannel masks host bits
    except ValueError as exc:
        problems.append('%s %r is not an %s CIDR: %s' % (fam.network_key, value, fam.label, exc))
        return None


def _parse_subnet_len(d, fam, network, problems):
    name = fam.len_key
    value = d.get(name.lower(), 0)
    if not is_int(value) or value < 0:
        problems.append('%s must be a non-negative integer, not %r' % (name, value))
        return None
    if network is None:
        return value or None
    if value == 0:
        sl = default_subnet_len(network.prefixlen, fam)
        if sl is None:
            problems.append('%s is too small. Minimum useful network prefix is /%d'
                            % (fam.network_key, fam.min_prefix))
        return sl
    err = subnet_len_problem(network.prefixlen, value, fam)
    if err:
        problems.append(err)
        return None
    return value


def _parse_subnet_bounds(d, fam, network, subnet_len, problems):
    if network is None or subnet_len is None:
        return None, None
    dmin, dmax = default_subnet_range(network, subnet_len)
    unset = (None, '', str(fam.addr_cls(0)))
    host_mask = (1 << (fam.bits - subnet_len)) - 1
    bounds = []
    for name, default in ((fam.min_key, dmin), (fam.max_key, dmax)):
        value = d.get(name.lower())
        if value in unset:
            bounds.append(default)
            continue
        try:
            ip = parse_address(value, fam)
        except ValueError as exc:
            problems.append('%s %r is not an %s address: %s' % (name, value, fam.label, exc))
            bounds.append(None)
            continue
        if ip not in network:
            problems.append('%s is not in the range of the %s' % (name, fam.network_key))
        elif int(ip) & host_mask:
            problems.append('%s is not on a SubnetLen boundary: %s' % (name, ip))
        bounds.append(fam.net_cls((int(ip) & ~host_mask, subnet_len)))
    smin, smax = bounds
    if smin is not None and smax is not None and smin.network_address > smax.network_address:
        problems.append('%s %s is above %s %s' % (fam.min_key, smin.network_address,
                                                  fam.max_key, smax.network_address))
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
    out = {}
    if nc.enable_ipv4:
        out['Network'] = str(nc.network)
        _family_keys(out, IPV4, nc.network, nc.subnet_len, nc.subnet_min, nc.subnet_max)
    else:
        out['EnableIPv4'] = False
    if nc.enable_ipv6:
        out['EnableIPv6'] = True
        out['IPv6Network'] = str(nc.ipv6_network)
        _family_keys(out, IPV6, nc.ipv6_network, nc.ipv6_subnet_len, nc.ipv6_subnet_min, nc.ipv6_subnet_max)
    out['EnableNFTables'] = nc.enable_nftables
    out['Backend'] = backend_json(nc.backend)
    return out


def _family_keys(out, fam, network, subnet_len, smin, smax):
    """SubnetLen/SubnetMin/SubnetMax (or their IPv6 twins) where they differ from flannel's own."""
    if subnet_len != default_subnet_len(network.prefixlen, fam):
        out[fam.len_key] = subnet_len
    dmin, dmax = default_subnet_range(network, subnet_len)
    if smin != dmin:
        out[fam.min_key] = str(smin.network_address)
    if smax != dmax:
        out[fam.max_key] = str(smax.network_address)


def backend_json(be):
    """The canonical net-conf.json Backend object."""
    backend = {'Type': be.type}
    if be.type == 'vxlan':
        if be.vni != 1:   # flannel's default VNI: kubeasz's template leaves it out
            backend['VNI'] = be.vni
        if be.port:
            backend['Port'] = be.port
        if be.mtu:
            backend['MTU'] = be.mtu
        if be.gbp:
            backend['GBP'] = True
        if be.learning:
            backend['Learning'] = True
        if be.direct_routing:   # kubeasz's template writes it only when true
            backend['DirectRouting'] = True
    return backend
