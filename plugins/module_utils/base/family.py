# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two address families, and the ``ipv4``/``ipv6`` module that parses each.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv4

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6

FAMILIES = ('ipv4', 'ipv6')
_MODULES = {'ipv4': ipv4, 'ipv6': ipv6}
# iproute2's family switch, and the name of a family in messages
IP_FLAG = {'ipv4': '-4', 'ipv6': '-6'}
LABEL = {'ipv4': 'IPv4', 'ipv6': 'IPv6'}


def module_for(family):
    """The parsing module of ``family`` (``ipv4`` or ``ipv6``)."""
    try:
        return _MODULES[family]
    except KeyError:
        raise ValueError('family: %r is not one of %s' % (family, ', '.join(FAMILIES)))


def family_of(text):
    """'ipv6' when the address or CIDR text is IPv6, else 'ipv4'."""
    return 'ipv6' if ':' in str(text) else 'ipv4'


# Ranges with a meaning of their own, named in every message about an address value. REFUSED:
# the kernel or the internet's routing treats them specially, so no pod or service network may
# overlap them. NOTED: usable, but not meant for a
# cluster (documentation ranges): named in a warning.
REFUSED = 'refused'
NOTED = 'noted'
SPECIAL_RANGES = {
    'ipv4': tuple((ipaddress.IPv4Network(net), what, how) for net, what, how in (
        ('0.0.0.0/8', '"this network"', REFUSED), ('127.0.0.0/8', 'the loopback range', REFUSED),
        ('169.254.0.0/16', 'the link-local range', REFUSED), ('224.0.0.0/4', 'the multicast range', REFUSED),
        ('240.0.0.0/4', 'the reserved range', REFUSED),
        ('192.0.2.0/24', 'the documentation range TEST-NET-1 (RFC 5737)', NOTED),
        ('198.51.100.0/24', 'the documentation range TEST-NET-2 (RFC 5737)', NOTED),
        ('203.0.113.0/24', 'the documentation range TEST-NET-3 (RFC 5737)', NOTED))),
    'ipv6': tuple((ipaddress.IPv6Network(net), what, how) for net, what, how in (
        ('::/128', 'the unspecified address', REFUSED), ('::1/128', 'the loopback address', REFUSED),
        ('::ffff:0:0/96', 'the IPv4-mapped range', REFUSED), ('fe80::/10', 'the link-local range', REFUSED),
        ('ff00::/8', 'the multicast range', REFUSED),
        ('fec0::/10', 'the deprecated site-local range (RFC 3879)', REFUSED),
        ('64:ff9b::/96', 'the NAT64 range (RFC 6052)', REFUSED),
        ('64:ff9b:1::/48', 'the local-use NAT64 range (RFC 8215)', REFUSED),
        ('2002::/16', 'the 6to4 range (RFC 3056)', REFUSED),
        ('2001:db8::/32', 'the documentation range (RFC 3849)', NOTED)))}


def parse_address(value, family=None, network=False):
    """The one parser of an address value given by the user or read from a store: an
    ``ipaddress`` address, or with ``network`` a network (host bits masked; ``/n`` optional, the
    caller checks what it requires). ``family`` ('ipv4'/'ipv6'/None: either). ValueError with a
    reason that names the problem: not an address of the family, or a zone (``%eth0``), which
    ``ipaddress`` keeps but iproute2, Go and the CNI plugins refuse."""
    text = str(value).strip()
    fam = family or family_of(text)
    module_for(fam)
    zone = ipv6.zone_problem(text)
    if zone:
        raise ValueError(zone)
    try:
        if network:
            cls = ipaddress.IPv6Network if fam == 'ipv6' else ipaddress.IPv4Network
            return cls(text, strict=False)
        cls = ipaddress.IPv6Address if fam == 'ipv6' else ipaddress.IPv4Address
        return cls(text)
    except ValueError:
        raise ValueError('is not an %s %s' % (LABEL[fam], 'CIDR' if network else 'address'))


def special_range(value):
    """(range, name, REFUSED or NOTED) of the first special range an address or network
    (``ipaddress`` object) lies in or overlaps, else None."""
    family = 'ipv6' if value.version == 6 else 'ipv4'
    for net, what, how in SPECIAL_RANGES[family]:
        if (value.overlaps(net) if hasattr(value, 'prefixlen') else value in net):
            return net, what, how
    return None
