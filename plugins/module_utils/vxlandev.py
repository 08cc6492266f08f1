# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's VXLAN device ``flannel.<VNI>``: its spec, the plan that makes it so,
the removal of other (stale) ``flannel.<n>`` devices, and its ``ip`` text for diffs.

Reads the 'link' (``ip -details``) and 'addr' tables of ``iproute.observe()``.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4
from ansible_collections.kubeasz.network.plugins.module_utils.extif import (
    addr_link, external_interface, ipv4_addrs, links_by_name)
from ansible_collections.kubeasz.network.plugins.module_utils.iproute import AddrAdd, AddrDel, LinkAdd, LinkDel, LinkSet, LinkUp
from ansible_collections.kubeasz.network.plugins.module_utils.lease import (
    VXLAN_OVERHEAD, DataplaneError, check_mac, check_vni, vtep_mac)

DEFAULT_VXLAN_PORT = 8472

VxlanSpec = namedtuple('VxlanSpec', ['name', 'vni', 'dev', 'local', 'port', 'gbp', 'learning',
                                     'mtu', 'mac', 'address', 'network'])

_FLANNEL_DEV = re.compile(r'^flannel\.\d+$')


def device_name(vni):
    return 'flannel.%d' % vni


# ----------------------------------------------------------------- attributes

def _info_data(link):
    return (link.get('linkinfo') or {}).get('info_data') or {}


def vxlan_link_attrs(link):
    """The attributes that force a recreation, from an ``ip -details -json`` link."""
    data = _info_data(link)
    return {'kind': (link.get('linkinfo') or {}).get('info_kind'), 'vni': data.get('id'),
            'dev': data.get('link'), 'local': data.get('local'),
            'port': data.get('port') or DEFAULT_VXLAN_PORT, 'gbp': bool(data.get('gbp'))}


def spec_attrs(spec):
    return {'kind': 'vxlan', 'vni': spec.vni, 'dev': spec.dev, 'local': spec.local,
            'port': spec.port or DEFAULT_VXLAN_PORT, 'gbp': bool(spec.gbp)}


def _learning(link):
    return bool(_info_data(link).get('learning'))


def flannel_devices(observed):
    """Names of every flannel-owned device: a VXLAN device named flannel.<n>."""
    return sorted(link['ifname'] for link in observed.get('link') or []
                  if _FLANNEL_DEV.match(link.get('ifname') or '')
                  and (link.get('linkinfo') or {}).get('info_kind') == 'vxlan')


# ----------------------------------------------------------------------- plans

def _fresh_link_ops(spec):
    return [LinkAdd(spec.name, spec.mac, spec.mtu, spec.vni, spec.dev, spec.local, spec.port or DEFAULT_VXLAN_PORT,
                    bool(spec.learning), bool(spec.gbp)),
            AddrAdd('%s/32' % spec.address, spec.name), LinkUp(spec.name)]


def _stale_addrs(link, spec):
    keep = '%s/32' % spec.address
    network = None if spec.network is None else ipv4.parse_net(spec.network, strict=False)
    stale = []
    for addr in ipv4_addrs(link):
        cidr = '%s/%s' % (addr['local'], addr['prefixlen'])
        if cidr != keep and network is not None and ipv4.contains(network, ipv4.parse_ip(addr['local'])):
            stale.append(cidr)
    return stale


def _fix_in_place(observed, link, spec):
    ops = []
    if link.get('address', '').lower() != spec.mac:
        ops.append(LinkSet(spec.name, 'address', spec.mac))
    if link.get('mtu') != spec.mtu:
        ops.append(LinkSet(spec.name, 'mtu', spec.mtu))
    if _learning(link) != bool(spec.learning):
        ops.append(LinkSet(spec.name, 'type vxlan', 'learning' if spec.learning else 'nolearning'))
    addrs = addr_link(observed, spec.name) or {}
    ops += [AddrDel(cidr, spec.name) for cidr in _stale_addrs(addrs, spec)]
    if not any(a['local'] == spec.address and a['prefixlen'] == 32 for a in ipv4_addrs(addrs)):
        ops.append(AddrAdd('%s/32' % spec.address, spec.name))
    if 'UP' not in (link.get('flags') or []):
        ops.append(LinkUp(spec.name))
    return ops


def plan_stale_devices(observed, keep=None):
    """Delete every flannel.<n> VXLAN device except keep (a VNI or port change, a switch)."""
    return [LinkDel(name) for name in flannel_devices(observed) if name != keep]


def plan_vxlan_link(observed, spec):
    """(ops, recreated) making flannel.N match spec (needs 'link' and 'addr');
    other flannel.<n> devices are deleted first."""
    stale = plan_stale_devices(observed, spec.name)
    link = links_by_name({'link': observed.get('link')}).get(spec.name)
    if link is not None and vxlan_link_attrs(link) != spec_attrs(spec):
        return stale + [LinkDel(spec.name)] + _fresh_link_ops(spec), True
    if link is None:
        return stale + _fresh_link_ops(spec), True
    return stale + _fix_in_place(observed, link, spec), False


def plan_vxlan_absent(observed, name):
    """Delete name and every other flannel.<n> VXLAN device."""
    ops = [LinkDel(name)] if name in links_by_name(observed) else []
    return ops + plan_stale_devices(observed, name)


# ------------------------------------------------------------------------ spec

def _check_port(port):
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DataplaneError('port: %r is not a UDP port (0..65535, 0 = kernel default)' % port)
    return port


def _address(value):
    try:
        return ipv4.ip_text(ipv4.parse_net(value, strict=False)[0])
    except ValueError as exc:
        raise DataplaneError('address: %r is not an IPv4 network (%s)' % (value, exc))


def vxlan_link_spec(observed, params):
    """VxlanSpec from module params and the observed 'addr' table."""
    vni = check_vni(params.get('vni', 1))
    port = _check_port(params.get('port') or 0)
    if not params.get('iface'):
        raise DataplaneError('iface (the external interface) is required with state=present')
    if not params.get('address'):
        raise DataplaneError('address (the lease subnet network IP) is required with state=present')
    address = _address(params['address'])
    ext = external_interface(observed, iface=params['iface'], public_ip=params.get('local_ip'))
    mtu = params.get('mtu') or ext.mtu - VXLAN_OVERHEAD
    if not 68 <= mtu <= 65535:
        raise DataplaneError('mtu: %r is out of range (68..65535)' % mtu)
    if mtu > ext.mtu - VXLAN_OVERHEAD:
        raise DataplaneError('mtu: %d does not fit %s (MTU %d) with VXLAN\'s %d bytes of headers; '
                             'write at most %d, or raise the MTU of %s'
                             % (mtu, ext.name, ext.mtu, VXLAN_OVERHEAD, ext.mtu - VXLAN_OVERHEAD, ext.name))
    mac = check_mac(params['mac'], 'mac') if params.get('mac') else vtep_mac(ext.ip, vni)
    return VxlanSpec(device_name(vni), vni, ext.name, ext.ip, port, bool(params.get('gbp')),
                     bool(params.get('learning')), mtu, mac, address, params.get('network'))


# ----------------------------------------------------------------------- diffs

def link_text(link, addrs=None):
    """A vxlan device (observed) in ``ip link`` syntax, plus its IPv4 addresses."""
    if link is None:
        return []
    attrs = vxlan_link_attrs(link)
    line = ('link %s type %s id %s dev %s local %s dstport %s %s%s mtu %s address %s %s'
            % (link.get('ifname'), attrs['kind'], attrs['vni'], attrs['dev'], attrs['local'],
               attrs['port'], 'learning' if _learning(link) else 'nolearning',
               ' gbp' if attrs['gbp'] else '', link.get('mtu'), link.get('address'),
               'up' if 'UP' in (link.get('flags') or []) else 'down'))
    lines = [line]
    for addr in ipv4_addrs(addrs or {}):
        lines.append('addr %s/%s dev %s' % (addr['local'], addr['prefixlen'], link.get('ifname')))
    return lines


def devices_text(observed, names):
    """link_text of several observed devices."""
    links = links_by_name({'link': observed.get('link')})
    lines = []
    for name in names:
        lines += link_text(links.get(name), addr_link(observed, name))
    return lines


def spec_text(spec):
    return ['link %s type vxlan id %d dev %s local %s dstport %d %s%s mtu %d address %s up'
            % (spec.name, spec.vni, spec.dev, spec.local, spec.port or DEFAULT_VXLAN_PORT,
               'learning' if spec.learning else 'nolearning', ' gbp' if spec.gbp else '',
               spec.mtu, spec.mac),
            'addr %s/32 dev %s' % (spec.address, spec.name)]
