# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fast IPv4 parsing for the dataplane (plain integers, no objects per address).

``ipaddress`` costs tens of microseconds per address, which dominates a no-op
run with thousands of peers; these helpers parse canonical dotted quads with
``socket.inet_pton`` and fall back to ``ipaddress`` for anything else, so
that errors keep its wording.  Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re
import socket

_pton, _AF_INET, _from_bytes = socket.inet_pton, socket.AF_INET, int.from_bytes
_PREFIX = re.compile(r'^(0|[1-9]\d?)$')
MASKS = tuple((0xffffffff << (32 - n)) & 0xffffffff for n in range(33))


def ip_int(text):
    """'a.b.c.d' -> int, or None when it is not a canonical dotted quad
    (inet_pton: no leading zeros, no short forms, no spaces)."""
    try:
        return _from_bytes(_pton(_AF_INET, text), 'big')
    except (OSError, TypeError, ValueError):
        return None


def ip_text(value):
    return '%d.%d.%d.%d' % (value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)


def parse_ip(value):
    """int of an IPv4 address (text or ipaddress object); ValueError otherwise."""
    found = ip_int(value)
    if found is None:
        found = int(ipaddress.IPv4Address(value if isinstance(value, ipaddress.IPv4Address) else str(value)))
    return found


def _fast_net(text):
    """(ip, prefix) of a canonical 'a.b.c.d[/n]' (host bits not checked), else None."""
    addr, sep, plen = text.partition('/')
    ip = ip_int(addr)
    if ip is None or sep and not (_PREFIX.match(plen) and int(plen) <= 32):
        return None
    return ip, int(plen) if sep else 32


def parse_net(value, strict=True):
    """(network int, prefix length) of 'a.b.c.d[/n]', an IPv4Network or such a
    tuple already; ValueError otherwise."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, ipaddress.IPv4Network):
        return int(value.network_address), value.prefixlen
    text = str(value)
    fast = _fast_net(text)
    if fast is None:
        net = ipaddress.IPv4Network(text, strict=strict)
        return int(net.network_address), net.prefixlen
    ip, length = fast
    if ip & ~MASKS[length] & 0xffffffff:
        if strict:
            raise ValueError('%s has host bits set' % text)
        ip &= MASKS[length]
    return ip, length


def parse_cidr(value):
    """(parsed strict network, canonical 'a.b.c.d/n' text); ValueError otherwise."""
    net = parse_net(value, strict=True)
    if isinstance(value, str) and '/' in value and _fast_net(value) is not None:
        return net, value  # already canonical: no need to format it again
    return net, net_text(net)


def net_text(net):
    return '%s/%d' % (ip_text(net[0]), net[1])


def last(net, masks=MASKS):
    """The last address (broadcast) of a parsed network (``masks``: the family's, ipv6 passes its own)."""
    return net[0] | (~masks[net[1]] & masks[-1])


def subnet_of(inner, outer, masks=MASKS):
    """True when the parsed network inner lies inside outer."""
    return inner[1] >= outer[1] and inner[0] & masks[outer[1]] == outer[0]


def overlaps(one, other, masks=MASKS):
    return one[0] <= last(other, masks) and other[0] <= last(one, masks)


def contains(net, ip, masks=MASKS):
    return ip & masks[net[1]] == net[0]


def ip_key(text, ip_int=ip_int):
    """Sort key for an address in text form (-1 for anything unparsable)."""
    found = ip_int(text)
    return -1 if found is None else found


def net_key(text, ip_key=ip_key, bits=32):
    """Sort key for a CIDR in text form."""
    addr, dummy, plen = text.partition('/')
    return (ip_key(addr), int(plen) if plen.isdigit() else bits)
