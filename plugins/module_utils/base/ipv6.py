# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPv6 twin of ``ipv4``: the same functions on 128-bit integers (the network arithmetic is
ipv4's with this family's masks), so the dataplane code takes
either module for a family (``family.Family`` carries its functions). Text is RFC 5952 (``inet_ntop``), as Go
and iproute2 print it. Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re
import socket

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv4

_pton, _ntop, _AF_INET6, _from_bytes = socket.inet_pton, socket.inet_ntop, socket.AF_INET6, int.from_bytes
_PREFIX = re.compile(r'^(0|[1-9]\d{0,2})$')
BITS = 128
ALL = (1 << BITS) - 1
MASKS = tuple((ALL << (BITS - n)) & ALL for n in range(BITS + 1))


def ip_int(text):
    """IPv6 text -> int, or None when it is not an IPv6 address (no zone, no prefix)."""
    try:
        return _from_bytes(_pton(_AF_INET6, text), 'big')
    except (OSError, TypeError, ValueError):
        return None


def zone_problem(text):
    """Why ``text`` (an address or CIDR) cannot be used because it carries a zone (``%eth0``:
    ``ipaddress`` keeps it, iproute2, the CNI plugins and Go refuse it), as text; None without one."""
    addr, pct, zone = str(text).partition('/')[0].partition('%')
    if not pct:
        return None
    plen = str(text).partition('/')[2]
    return 'carries the zone %%%s, which flannel, iproute2 and the CNI plugins cannot use; write "%s"' % (
        zone, addr + ('/' + plen if plen else ''))


def ip_text(value):
    return _ntop(_AF_INET6, value.to_bytes(16, 'big'))


def parse_ip(value):
    """int of an IPv6 address (text or ipaddress object); ValueError otherwise."""
    # scope_id: Python 3.9+ (older ones refuse a zone when parsing, so there is none)
    if isinstance(value, ipaddress.IPv6Address) and not getattr(value, 'scope_id', None):
        return int(value)
    found = ip_int(value) if isinstance(value, str) else None
    if found is None:
        if zone_problem(value):
            raise ValueError('%s %s' % (value, zone_problem(value)))
        found = int(ipaddress.IPv6Address(str(value)))
    return found


def parse_net(value, strict=True):
    """(network int, prefix length) of 'addr[/n]', an IPv6Network or such a tuple; ValueError otherwise."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, ipaddress.IPv6Network) and not getattr(value.network_address, 'scope_id', None):
        return int(value.network_address), value.prefixlen
    text = str(value)
    if zone_problem(text):
        raise ValueError('%s %s' % (text, zone_problem(text)))
    addr, sep, plen = text.partition('/')
    ip = ip_int(addr)
    if ip is None or sep and not (_PREFIX.match(plen) and int(plen) <= BITS):
        net = ipaddress.IPv6Network(text, strict=strict)
        return int(net.network_address), net.prefixlen
    length = int(plen) if sep else BITS
    if ip & ~MASKS[length] & ALL:
        if strict:
            raise ValueError('%s has host bits set' % text)
        ip &= MASKS[length]
    return ip, length


def net_text(net):
    return '%s/%d' % (ip_text(net[0]), net[1])


def parse_cidr(value):
    """(parsed strict network, canonical 'addr/n' text); ValueError otherwise."""
    net = parse_net(value, strict=True)
    return net, net_text(net)


def last(net):
    return ipv4.last(net, MASKS)


def subnet_of(inner, outer):
    return ipv4.subnet_of(inner, outer, MASKS)


def overlaps(one, other):
    return ipv4.overlaps(one, other, MASKS)


def contains(net, ip):
    return ipv4.contains(net, ip, MASKS)


def ip_key(text):
    return ipv4.ip_key(text, ip_int)


def net_key(text):
    return ipv4.net_key(text, ip_key, BITS)
