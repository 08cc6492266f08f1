# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address family: one ``Family`` value per family (``IPV4``, ``IPV6``) holding everything that
differs between them, so that the rest of the code is one path for both.

A Family is chosen once, where a module turns its ``family`` option into it
(``family_named('ipv6')``), and passed down; nothing below the entry points defaults one.
It is a ``str`` whose value is its name (``'ipv4'``/``'ipv6'``): what is written in options,
results and the route guard's state file stays that word, and a Family can key the wire
dicts. Its parsing functions are those of ``ipv4``/``ipv6`` (the hot-path integer code).

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv4

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6

# Ranges with a meaning of their own, named in every message about an address value. REFUSED:
# the kernel or the internet's routing treats them specially, so no pod or service network may
# overlap them. NOTED: usable, but not meant for a
# cluster (documentation ranges): named in a warning.
REFUSED = 'refused'
NOTED = 'noted'

# the integer functions each family module has (ipv4.py, ipv6.py): a Family carries them
_PARSING = ('ip_int', 'ip_text', 'parse_ip', 'parse_net', 'parse_cidr', 'net_text', 'last', 'subnet_of',
            'overlaps', 'contains', 'ip_key', 'net_key')


class Family(str):
    """One address family. Its value is its name; its attributes:

    * numbers and parsing: ``label`` (for messages), ``version``, ``bits``, ``masks``, the
      ``ipaddress`` classes ``net_cls``/``addr_cls``/``iface_cls``, and ``ip_int``, ``parse_net``,
      ``net_key``, ... of its integer module;
    * iproute2: ``ip_flag`` (``-4``/``-6``), ``ip_args`` (what an ``ip`` batch runs with: none for
      IPv4, as always, ``-6``), ``inet`` (an ``ip -json addr`` entry's family), ``addr_mark`` (a
      character only this family's address text holds); the kernel's routes: ``kernel_metric``
      (what a route added without a metric gets: IPv4 none, IPv6 1024),
      ``onlink_refused_when_covered`` (IPv6 refuses an onlink gateway another device's route
      covers), ``device_route_in_subnet`` (IPv6: the kernel's route of the device's /128 address
      lies in the node's own subnet), ``vxlan_headroom`` (the headers the kernel keeps room for
      on a VXLAN device over this family's underlay: 50, 70), ``echo_header`` (the IP and ICMP
      echo headers around a ping's payload: 28, 48);
    * flannel: ``device_prefix`` (``flannel.``/``flannel-v6.``), ``device_pattern``, the peer-dict
      keys ``subnet_key``/``public_ip_key``/``vtep_mac_key`` (``suffix``: '' or '6'), the store
      JSON's ``store_public_ip``/``store_backend_data``, subnet.env's ``env_network``/``env_subnet``,
      net-conf.json's keys and numbers (``network_key``, ``len_key``, ``min_key``, ``max_key``,
      ``enable_key``, ``enabled_by_default``, ``max_len``, ``min_prefix``, ``default_len``, ``example``) and the ``NetConf``
      attribute names (``conf_attrs``);
    * kubeasz's config keys: ``cidr_key``, ``node_len_key``, ``subnet_min_key``, ``subnet_max_key``,
      ``service_example``;
    * traffic rules: ``save``/``restore`` (iptables tools), ``nft_family``, ``nft_table``,
      ``multicast`` (never masqueraded);
    * ``special_ranges`` (REFUSED / NOTED) and ``not_unicast`` (no node lives there).
    """

    def __new__(cls, name, module, **attrs):
        self = str.__new__(cls, name)
        self.name = name
        self.module = module
        self.masks = module.MASKS
        for attr in _PARSING:
            setattr(self, attr, getattr(module, attr))
        for key, value in attrs.items():
            setattr(self, key, value)
        self.public_ip_key = 'public_ip' + self.suffix
        self.subnet_key = 'subnet' + self.suffix
        self.vtep_mac_key = 'vtep_mac' + self.suffix
        self.device_pattern = re.compile('^%s\\d+$' % re.escape(self.device_prefix))
        return self

    def __reduce__(self):
        return family_named, (self.name,)

    def device(self, vni):
        """flannel's VXLAN device of ``vni``: flannel.<VNI>, flannel-v6.<VNI>."""
        return '%s%d' % (self.device_prefix, vni)

    def has_address(self, text):
        """True when ``text`` (an address or CIDR) is written in this family."""
        return self.addr_mark in str(text)


def _ranges(cls, entries):
    return tuple((cls(net), what, how) for net, what, how in entries)


def _unicast(module, entries):
    return tuple((module.parse_net(net), why) for net, why in entries)


IPV4 = Family(
    'ipv4', ipv4, label='IPv4', version=4, bits=32, suffix='',
    net_cls=ipaddress.IPv4Network, addr_cls=ipaddress.IPv4Address, iface_cls=ipaddress.IPv4Interface,
    ip_flag='-4', ip_args=(), inet='inet', addr_mark='.', device_prefix='flannel.',
    kernel_metric=0, onlink_refused_when_covered=False, device_route_in_subnet=False, vxlan_headroom=50, echo_header=28,
    store_public_ip='PublicIP', store_backend_data='BackendData',
    env_network='FLANNEL_NETWORK', env_subnet='FLANNEL_SUBNET',
    network_key='Network', len_key='SubnetLen', min_key='SubnetMin', max_key='SubnetMax', enable_key='EnableIPv4',
    max_len=30, min_prefix=28, default_len=24, example='172.20.0.0/16',
    conf_attrs=('network', 'subnet_len', 'subnet_min', 'subnet_max'), enable_attr='enable_ipv4', enabled_by_default=True,
    cidr_key='CLUSTER_CIDR', node_len_key='NODE_CIDR_LEN', subnet_min_key='FLANNEL_SUBNET_MIN',
    subnet_max_key='FLANNEL_SUBNET_MAX', service_example='10.68.0.0/16',
    save='iptables-save', restore='iptables-restore', nft_family='ip', nft_table='flannel-ipv4',
    multicast='224.0.0.0/4',
    special_ranges=_ranges(ipaddress.IPv4Network, (
        ('0.0.0.0/8', '"this network"', REFUSED), ('127.0.0.0/8', 'the loopback range', REFUSED),
        ('169.254.0.0/16', 'the link-local range', REFUSED), ('224.0.0.0/4', 'the multicast range', REFUSED),
        ('240.0.0.0/4', 'the reserved range', REFUSED),
        ('192.0.2.0/24', 'the documentation range TEST-NET-1 (RFC 5737)', NOTED),
        ('198.51.100.0/24', 'the documentation range TEST-NET-2 (RFC 5737)', NOTED),
        ('203.0.113.0/24', 'the documentation range TEST-NET-3 (RFC 5737)', NOTED))),
    # where no node can live: "this" network, loopback, multicast and the reserved/broadcast range
    not_unicast=_unicast(ipv4, (
        ('0.0.0.0/8', 'a "this network" address'), ('127.0.0.0/8', 'a loopback address'),
        ('224.0.0.0/4', 'a multicast address'), ('240.0.0.0/4', 'a reserved or broadcast address'))))

IPV6 = Family(
    'ipv6', ipv6, label='IPv6', version=6, bits=128, suffix='6',
    net_cls=ipaddress.IPv6Network, addr_cls=ipaddress.IPv6Address, iface_cls=ipaddress.IPv6Interface,
    ip_flag='-6', ip_args=('-6',), inet='inet6', addr_mark=':', device_prefix='flannel-v6.',
    kernel_metric=1024, onlink_refused_when_covered=True, device_route_in_subnet=True, vxlan_headroom=70, echo_header=48,
    store_public_ip='PublicIPv6', store_backend_data='BackendV6Data',
    env_network='FLANNEL_IPV6_NETWORK', env_subnet='FLANNEL_IPV6_SUBNET',
    network_key='IPv6Network', len_key='IPv6SubnetLen', min_key='IPv6SubnetMin', max_key='IPv6SubnetMax',
    enable_key='EnableIPv6', max_len=126, min_prefix=124, default_len=64, example='fd00:20::/56',
    conf_attrs=('ipv6_network', 'ipv6_subnet_len', 'ipv6_subnet_min', 'ipv6_subnet_max'), enable_attr='enable_ipv6',
    enabled_by_default=False,
    cidr_key='CLUSTER_CIDR_IPV6', node_len_key='NODE_CIDR_LEN_IPV6', subnet_min_key='FLANNEL_SUBNET_MIN_IPV6',
    subnet_max_key='FLANNEL_SUBNET_MAX_IPV6', service_example='fd00:10::/108',
    save='ip6tables-save', restore='ip6tables-restore', nft_family='ip6', nft_table='flannel-ipv6',
    multicast='ff00::/8',
    special_ranges=_ranges(ipaddress.IPv6Network, (
        ('::/128', 'the unspecified address', REFUSED), ('::1/128', 'the loopback address', REFUSED),
        ('::ffff:0:0/96', 'the IPv4-mapped range', REFUSED), ('fe80::/10', 'the link-local range', REFUSED),
        ('ff00::/8', 'the multicast range', REFUSED),
        ('fec0::/10', 'the deprecated site-local range (RFC 3879)', REFUSED),
        ('64:ff9b::/96', 'the NAT64 range (RFC 6052)', REFUSED),
        ('64:ff9b:1::/48', 'the local-use NAT64 range (RFC 8215)', REFUSED),
        ('2002::/16', 'the 6to4 range (RFC 3056)', REFUSED),
        ('2001:db8::/32', 'the documentation range (RFC 3849)', NOTED))),
    # IPv6 also refuses link-local (a VXLAN underlay or a gateway needs a global address)
    not_unicast=_unicast(ipv6, (
        ('::/128', 'the unspecified address'), ('::1/128', 'a loopback address'),
        ('::ffff:0:0/96', 'an IPv4-mapped address'), ('fe80::/10', 'a link-local address'),
        ('ff00::/8', 'a multicast address'))))

FAMILIES = (IPV4, IPV6)
_BY_NAME = dict((fam.name, fam) for fam in FAMILIES)


def family_named(name, what='family'):
    """The Family called ``name`` ('ipv4' or 'ipv6'; a Family is itself). ValueError naming
    ``what`` (the option) otherwise: for the entry points, which turn their option into it."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError('%s: %r is not one of %s' % (what, name, ', '.join(FAMILIES)))


def family_of(text):
    """The Family an address or CIDR text is written in (IPv6 when it holds ':')."""
    return IPV6 if IPV6.has_address(text) else IPV4


def family_of_version(version):
    """The Family of an ``ipaddress`` version number (4, 6)."""
    return IPV6 if version == 6 else IPV4


def parse_address(value, family=None, network=False):
    """The one parser of an address value given by the user or read from a store: an
    ``ipaddress`` address, or with ``network`` a network (host bits masked; ``/n`` optional, the
    caller checks what it requires). ``family``: a Family, or None: either. ValueError with a
    reason that names the problem: not an address of the family, or a zone (``%eth0``), which
    ``ipaddress`` keeps but iproute2, Go and the CNI plugins refuse."""
    text = str(value).strip()
    fam = family or family_of(text)
    zone = ipv6.zone_problem(text)
    if zone:
        raise ValueError(zone)
    try:
        if network:
            return fam.net_cls(text, strict=False)
        return fam.addr_cls(text)
    except ValueError:
        raise ValueError('is not an %s %s' % (fam.label, 'CIDR' if network else 'address'))


def special_range(value):
    """(range, name, REFUSED or NOTED) of the first special range an address or network
    (``ipaddress`` object) lies in or overlaps, else None."""
    for net, what, how in family_of_version(value.version).special_ranges:
        if (value.overlaps(net) if hasattr(value, 'prefixlen') else value in net):
            return net, what, how
    return None
