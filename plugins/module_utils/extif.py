# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's external (underlay) interface, chosen the way flanneld chooses it.

Reads the 'addr' table (and 'route' for the default route) of ``iproute.observe()``.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError, check_ip, check_ifname

ExternalInterface = namedtuple('ExternalInterface', ['name', 'ip', 'mtu'])


def links_by_name(observed):
    return dict((link.get('ifname'), link) for link in observed.get('link') or observed.get('addr') or [])


def ipv4_addrs(link):
    return [a for a in link.get('addr_info') or [] if a.get('family') == 'inet']


def addr_link(observed, name):
    for link in observed.get('addr') or observed.get('link') or []:
        if link.get('ifname') == name:
            return link
    return None


def _default_route_dev(observed):
    for route in observed.get('route') or []:
        if route.get('dst') == 'default' and route.get('dev'):
            return route['dev']
    return None


def _regex_iface(observed, iface_regex):
    try:
        pattern = re.compile(iface_regex)
    except re.error as exc:
        raise DataplaneError('iface_regex %r is not a regular expression: %s' % (iface_regex, exc))
    names = [link.get('ifname') for link in observed.get('addr') or []
             if pattern.search(link.get('ifname') or '') and ipv4_addrs(link)]
    if not names:
        raise DataplaneError('no interface with an IPv4 address matches iface_regex %r' % iface_regex)
    return names[0]


def _iface_name(observed, iface, iface_regex):
    if iface:
        name = check_ifname(iface)
        if addr_link(observed, name) is None:
            raise DataplaneError('interface %s (FLANNEL_IFACE) does not exist' % name)
        return name
    if iface_regex:
        return _regex_iface(observed, iface_regex)
    name = _default_route_dev(observed)
    if not name:
        raise DataplaneError('no default route: set FLANNEL_IFACE')
    return name


def external_interface(observed, iface=None, iface_regex=None, public_ip=None):
    """flannel's choice of the external interface: iface, else the first name
    matching iface_regex, else the default route's device; ip = public_ip or
    the interface's first IPv4 address.  Needs the 'addr' table (and 'route'
    when neither iface nor iface_regex is given)."""
    name = _iface_name(observed, iface, iface_regex)
    link = addr_link(observed, name) or {}
    addrs = ipv4_addrs(link)
    if public_ip:
        ip = check_ip(public_ip, 'public_ip')
    elif addrs:
        ip = addrs[0]['local']
    else:
        raise DataplaneError('interface %s has no IPv4 address: set FLANNEL_IFACE or public_ip' % name)
    mtu = link.get('mtu') or links_by_name(observed).get(name, {}).get('mtu')
    if not mtu:
        raise DataplaneError('interface %s: MTU unknown' % name)
    return ExternalInterface(name, ip, int(mtu))
