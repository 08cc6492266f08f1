# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The underlay: the node's external interface and its addresses, chosen the way flanneld
chooses them (``LookupExtIface``), for both families, by every module that needs them
(flannel_subnet's facts, vxlan_link's device, direct_route's host-gw routes).

Reads tables of ``iproute.observe()``: 'addr' (and 'link') for the interfaces, 'route' (IPv4)
and 'route6' (IPv6, an IPv6 ``observe``'s 'route') for the default route.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    DataplaneError, check_ifname, check_ip, check_node_ip)

# ip6: the public IPv6 address (None without IPv6); ip is None for IPv6-only
ExternalInterface = namedtuple('ExternalInterface', ['name', 'ip', 'mtu', 'ip6'], defaults=(None,))


def links_by_name(observed):
    return dict((link.get('ifname'), link) for link in observed.get('link') or observed.get('addr') or [])


def addr_link(observed, name):
    for link in observed.get('addr') or observed.get('link') or []:
        if link.get('ifname') == name:
            return link
    return None


def ipv4_addrs(link):
    return [a for a in link.get('addr_info') or [] if a.get('family') == 'inet']


def ipv6_addrs(link):
    """The interface's IPv6 addresses a node can be reached on, best first, as flanneld's
    ``GetInterfaceIP6Addrs``: deprecated ones skipped, permanent (configured) before dynamic
    (SLAAC, DHCPv6), non-temporary before temporary (privacy) ones, else kernel order. Unlike
    flanneld, only global scope and node addresses (``check_node_ip``: no IPv4-mapped, loopback
    or multicast one): a link-local address (flanneld's last resort) needs a zone, which neither
    VXLAN nor a route via a peer can carry; ``dadfailed`` ones are skipped too (a duplicate
    never becomes usable)."""
    addrs = [a for a in link.get('addr_info') or []
             if a.get('family') == 'inet6' and a.get('scope', 'global') == 'global' and _node_ip6(a.get('local'))
             and not a.get('deprecated') and not a.get('dadfailed')]
    return sorted(addrs, key=lambda a: (bool(a.get('dynamic')), bool(a.get('temporary'))))


def link_ips(link, family):
    """Every address of ``family`` the link has, as canonical text (whatever its scope or flags):
    what the node answers on, e.g. to tell whether a public IP is the interface's own."""
    if family == 'ipv4':
        return [a.get('local') for a in ipv4_addrs(link)]
    return [ipv6.ip_text(ipv6.ip_int(str(a['local']))) for a in link.get('addr_info') or []
            if a.get('family') == 'inet6' and ipv6.ip_int(str(a.get('local'))) is not None]


def _node_ip6(text):
    try:
        return check_node_ip(str(text), 'address', 'ipv6')
    except DataplaneError:
        return None


def default_route_dev(observed, table='route'):
    """The device of the first default route of ``table`` ('route': IPv4, 'route6': IPv6)."""
    for route in observed.get(table) or []:
        if route.get('dst') == 'default' and route.get('dev'):
            return route['dev']
    return None


_LISTS = {'ipv4': ipv4_addrs, 'ipv6': ipv6_addrs}


def _regex_iface(observed, iface_regex, families):
    try:
        pattern = re.compile(iface_regex)
    except re.error as exc:
        raise DataplaneError('iface_regex %r is not a regular expression: %s' % (iface_regex, exc))
    names = [link.get('ifname') for link in observed.get('addr') or []
             if pattern.search(link.get('ifname') or '') and all(_LISTS[f](link) for f in families)]
    if not names:
        raise DataplaneError('no interface with %s matches iface_regex %r'
                             % (' and '.join({'ipv4': 'an IPv4 address', 'ipv6': 'a global IPv6 address'}[f]
                                             for f in families), iface_regex))
    return names[0]


def interface_name(observed, iface=None, iface_regex=None, families=('ipv4',)):
    """flanneld's interface: iface (it must exist), else the first name matching iface_regex
    (with an address of each family), else the default route's device (IPv6-only: the IPv6
    default route's, from 'route6')."""
    if iface:
        name = check_ifname(iface)
        if addr_link(observed, name) is None:
            raise DataplaneError('interface %s (FLANNEL_IFACE) does not exist' % name)
        return name
    if iface_regex:
        return _regex_iface(observed, iface_regex, families)
    if 'ipv4' not in families:   # IPv6-only: the IPv6 default route, as flanneld
        name = default_route_dev(observed, 'route6')
        if not name:
            raise DataplaneError('no IPv6 default route: set FLANNEL_IFACE')
        return name
    name = default_route_dev(observed)
    if not name:
        raise DataplaneError('no default route: set FLANNEL_IFACE')
    return name


def external_interface(observed, iface=None, iface_regex=None, public_ip=None, families=('ipv4',),
                       public_ip6=None, options=('public_ip', 'public_ip6')):
    """flannel's choice of the external interface (``interface_name``) and its public address(es):
    ip = public_ip or the interface's first IPv4 address (None for IPv6-only); with 'ipv6' in
    ``families`` ip6 = public_ip6 or the interface's best global IPv6 address (``ipv6_addrs``).
    ``options``: the names of the two public IP options in messages (vxlan_link: local_ip).
    Needs the 'addr' table (and 'route' / 'route6' when neither iface nor iface_regex is given)."""
    name = interface_name(observed, iface, iface_regex, families)
    link = addr_link(observed, name) or {}
    ip = ip6 = None
    if 'ipv4' in families:
        addrs = ipv4_addrs(link)
        if public_ip:
            ip = check_ip(public_ip, options[0])
        elif addrs:
            ip = addrs[0]['local']
        else:
            raise DataplaneError('interface %s has no IPv4 address: set FLANNEL_IFACE or %s' % (name, options[0]))
    if 'ipv6' in families:
        addrs6 = ipv6_addrs(link)
        if public_ip6:
            ip6 = check_node_ip(public_ip6, options[1], 'ipv6')
        elif addrs6:
            ip6 = _node_ip6(addrs6[0]['local'])
        else:
            raise DataplaneError('interface %s has no global IPv6 address and the network has IPv6 '
                                 '(CLUSTER_CIDR_IPV6): add an IPv6 address to %s, or set FLANNEL_IFACE to an '
                                 'interface that has one (or %s)' % (name, name, options[1]))
    mtu = link.get('mtu') or links_by_name(observed).get(name, {}).get('mtu')
    if not mtu:
        raise DataplaneError('interface %s: MTU unknown' % name)
    return ExternalInterface(name, ip, int(mtu), ip6)
