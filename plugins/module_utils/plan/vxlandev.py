# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's VXLAN device ``flannel.<VNI>``: its spec, the plan that makes it so,
the removal of other (stale) ``flannel.<n>`` devices, and its ``ip`` text for diffs.

IPv6 (``family``): flanneld's ``flannel-v6.<VNI>`` with ``local <public_ip6>``, the address
``<subnet6 network address>/128`` (EnsureV6AddressOnLink: every other address but link-local goes)
and ``accept_ra`` 0; the kernel's link-local address is left alone.

Reads the 'link' (``ip -details``) and 'addr' tables of ``iproute.observe()``.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.plan.underlay import (
    addr_link, external_interface, ipv4_addrs, links_by_name)
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6, family_named
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import (
    AddrAdd, AddrDel, LinkAdd, LinkDel, LinkSet, LinkUp, Sysctl)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    VXLAN_OVERHEAD, DataplaneError, check_mac, check_vni, vtep_mac)

DEFAULT_VXLAN_PORT = 8472

# family: the Family of the device (IPv4: flannel.<VNI>, IPv6: flannel-v6.<VNI>)
VxlanSpec = namedtuple('VxlanSpec', ['name', 'vni', 'dev', 'local', 'port', 'gbp', 'learning',
                                     'mtu', 'mac', 'address', 'network', 'family'])

_LINK_LOCAL6 = ipv6.parse_net('fe80::/10')


def device_name(vni, family=IPV4):
    """flannel.<VNI>, or flannel-v6.<VNI> for IPv6 (``Family.device``; the IPv4 default is kept
    for node_facts' calls of before the Family, which also give the name)."""
    return family_named(family).device(vni)


def accept_ra_key(name):
    """The sysctl of the device's accept_ra (slash-separated: the name holds a dot)."""
    return 'net/ipv6/conf/%s/accept_ra' % name


def device_ipv6_addrs(link):
    """The IPv6 addresses of the VXLAN device (an ``ip -json addr`` link) but link-local ones: what
    EnsureV6AddressOnLink keeps to one. Not the node's underlay addresses (``underlay.ipv6_addrs``)."""
    return [a for a in link.get('addr_info') or [] if a.get('family') == 'inet6'
            and not ipv6.contains(_LINK_LOCAL6, ipv6.parse_ip(a['local']))]


def family_addrs(link, family):
    return ipv4_addrs(link) if family == 'ipv4' else device_ipv6_addrs(link)


# ----------------------------------------------------------------- attributes

def _info_data(link):
    return (link.get('linkinfo') or {}).get('info_data') or {}


def vxlan_link_attrs(link):
    """The attributes that force a recreation, from an ``ip -details -json`` link."""
    data = _info_data(link)
    return {'kind': (link.get('linkinfo') or {}).get('info_kind'), 'vni': data.get('id'),
            'dev': data.get('link'), 'local': data.get('local') or data.get('local6'),
            'port': data.get('port') or DEFAULT_VXLAN_PORT, 'gbp': bool(data.get('gbp'))}


def spec_attrs(spec):
    return {'kind': 'vxlan', 'vni': spec.vni, 'dev': spec.dev, 'local': spec.local,
            'port': spec.port or DEFAULT_VXLAN_PORT, 'gbp': bool(spec.gbp)}


def _learning(link):
    return bool(_info_data(link).get('learning'))


def flannel_devices(observed, family):
    """Names of every flannel-owned device: a VXLAN device named flannel.<n> (flannel-v6.<n>)."""
    pattern = family.device_pattern
    return sorted(link['ifname'] for link in observed.get('link') or []
                  if pattern.match(link.get('ifname') or '')
                  and (link.get('linkinfo') or {}).get('info_kind') == 'vxlan')


# ----------------------------------------------------------------------- plans

def _fresh_link_ops(spec):
    ops = [LinkAdd(spec.name, spec.mac, spec.mtu, spec.vni, spec.dev, spec.local, spec.port or DEFAULT_VXLAN_PORT,
                   bool(spec.learning), bool(spec.gbp))]
    return ops + _accept_ra_ops(spec) + [AddrAdd(_device_address(spec), spec.name), LinkUp(spec.name)]


def _accept_ra_ops(spec, observed=None):
    """IPv6, as flanneld: accept_ra 0 (right after the device is made, before it is up), unless
    ``observed`` says it already is."""
    if spec.family is not IPV6 or (observed is not None and (observed.get('accept_ra') or {}).get(spec.name) == '0'):
        return []
    return [Sysctl(accept_ra_key(spec.name), 0)]


def _device_address(spec):
    """The device's own address: the subnet's network address as a host route (/32, /128)."""
    return '%s/%d' % (spec.address, spec.family.bits)


def _is_own_address(addr, spec):
    fam = spec.family
    return fam.parse_ip(addr['local']) == fam.parse_ip(spec.address) and addr['prefixlen'] == fam.bits


def _stale_addrs(link, spec):
    """IPv4: the device's other addresses inside the cluster network; IPv6: flanneld's
    EnsureV6AddressOnLink, every IPv6 address but ours and link-local ones goes."""
    fam = spec.family
    network = None if spec.network is None else fam.parse_net(spec.network, strict=False)
    return ['%s/%s' % (a['local'], a['prefixlen']) for a in family_addrs(link, fam) if not _is_own_address(a, spec)
            and (fam is IPV6 or network is not None and fam.contains(network, fam.parse_ip(a['local'])))]


def _has_address(addrs, spec):
    return any(_is_own_address(a, spec) for a in family_addrs(addrs, spec.family))


def _fix_in_place(observed, link, spec):
    ops = []
    if link.get('address', '').lower() != spec.mac:
        ops.append(LinkSet(spec.name, 'address', spec.mac))
    if link.get('mtu') != spec.mtu:
        ops.append(LinkSet(spec.name, 'mtu', spec.mtu))
    if _learning(link) != bool(spec.learning):
        ops.append(LinkSet(spec.name, 'type vxlan', 'learning' if spec.learning else 'nolearning'))
    ops += _accept_ra_ops(spec, observed)
    addrs = addr_link(observed, spec.name) or {}
    ops += [AddrDel(cidr, spec.name) for cidr in _stale_addrs(addrs, spec)]
    if not _has_address(addrs, spec):
        ops.append(AddrAdd(_device_address(spec), spec.name))
    if 'UP' not in (link.get('flags') or []):
        ops.append(LinkUp(spec.name))
    return ops


def plan_stale_devices(observed, keep, family):
    """Delete every flannel.<n> (flannel-v6.<n>) VXLAN device except keep (a VNI or port change, a switch)."""
    return [LinkDel(name) for name in flannel_devices(observed, family) if name != keep]


def plan_vxlan_link(observed, spec):
    """(ops, recreated) making flannel.N (flannel-v6.N) match spec (needs 'link' and 'addr', for
    IPv6 'accept_ra' {device: value}); other devices of the family are deleted first."""
    stale = plan_stale_devices(observed, spec.name, spec.family)
    link = links_by_name({'link': observed.get('link')}).get(spec.name)
    if link is not None and vxlan_link_attrs(link) != spec_attrs(spec):
        return stale + [LinkDel(spec.name)] + _fresh_link_ops(spec), True
    if link is None:
        return stale + _fresh_link_ops(spec), True
    return stale + _fix_in_place(observed, link, spec), False


def plan_vxlan_absent(observed, name, family):
    """Delete name and every other flannel.<n> (flannel-v6.<n>) VXLAN device."""
    ops = [LinkDel(name)] if name in links_by_name(observed) else []
    return ops + plan_stale_devices(observed, name, family)


# ------------------------------------------------------------------------ spec

def _check_port(port):
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DataplaneError('port: %r is not a UDP port (0..65535, 0 = kernel default)' % port)
    return port


def _address(value, family):
    try:
        return family.ip_text(family.parse_net(value, strict=False)[0])
    except ValueError as exc:
        raise DataplaneError('address: %r is not an %s network (%s)' % (value, family.label, exc))


def vxlan_link_spec(observed, params, family):
    """VxlanSpec from module params and the observed 'addr' table.

    IPv6: ``local_ip`` is the node's public_ip6, ``address`` the subnet6 network address,
    ``network`` the IPv6 cluster network; the same VNI, port, learning, GBP and MTU rules, and
    the MTU capped at the underlay's MTU - 70 as the kernel caps it."""
    vni = check_vni(params.get('vni', 1))
    port = _check_port(params.get('port') or 0)
    if not params.get('iface'):
        raise DataplaneError('iface (the external interface) is required with state=present')
    if not params.get('address'):
        raise DataplaneError('address (the lease subnet network IP) is required with state=present')
    address = _address(params['address'], family)
    # the one chooser flannel_subnet uses too: the same interface and address for the same node
    ext = external_interface(observed, iface=params['iface'], public_ip=params.get('local_ip'), families=(family,),
                             public_ip6=params.get('local_ip'), options=('local_ip', 'local_ip'))
    local = getattr(ext, 'ip' + family.suffix)   # ip, ip6
    mtu = params.get('mtu') or ext.mtu - VXLAN_OVERHEAD
    if not 68 <= mtu <= 65535:
        raise DataplaneError('mtu: %r is out of range (68..65535)' % mtu)
    if mtu > ext.mtu - VXLAN_OVERHEAD:
        raise DataplaneError('mtu: %d does not fit %s (MTU %d) with VXLAN\'s %d bytes of headers; '
                             'write at most %d, or raise the MTU of %s'
                             % (mtu, ext.name, ext.mtu, VXLAN_OVERHEAD, ext.mtu - VXLAN_OVERHEAD, ext.name))
    # the kernel keeps the underlay's headroom: over IPv6 (70) it caps the MTU below flanneld's - 50
    mtu = min(mtu, ext.mtu - family.vxlan_headroom)
    mac = check_mac(params['mac'], 'mac') if params.get('mac') else vtep_mac(local, vni)
    return VxlanSpec(device_name(vni, family), vni, ext.name, local, port, bool(params.get('gbp')),
                     bool(params.get('learning')), mtu, mac, address, params.get('network'), family)


# ----------------------------------------------------------------------- diffs

def link_text(link, addrs, family, accept_ra=None):
    """A vxlan device (observed) in ``ip link`` syntax, plus its addresses of ``family`` (IPv6:
    not link-local) and, when known, its accept_ra."""
    if link is None:
        return []
    attrs = vxlan_link_attrs(link)
    line = ('link %s type %s id %s dev %s local %s dstport %s %s%s mtu %s address %s %s'
            % (link.get('ifname'), attrs['kind'], attrs['vni'], attrs['dev'], attrs['local'],
               attrs['port'], 'learning' if _learning(link) else 'nolearning',
               ' gbp' if attrs['gbp'] else '', link.get('mtu'), link.get('address'),
               'up' if 'UP' in (link.get('flags') or []) else 'down'))
    lines = [line]
    for addr in family_addrs(addrs or {}, family):
        lines.append('addr %s/%s dev %s' % (addr['local'], addr['prefixlen'], link.get('ifname')))
    if accept_ra is not None:
        lines.append('sysctl %s=%s' % (accept_ra_key(link.get('ifname')), accept_ra))
    return lines


def devices_text(observed, names, family):
    """link_text of several observed devices."""
    links = links_by_name({'link': observed.get('link')})
    accept_ra = observed.get('accept_ra') or {}
    lines = []
    for name in names:
        lines += link_text(links.get(name), addr_link(observed, name), family, accept_ra.get(name))
    return lines


def spec_text(spec):
    lines = ['link %s type vxlan id %d dev %s local %s dstport %d %s%s mtu %d address %s up'
             % (spec.name, spec.vni, spec.dev, spec.local, spec.port or DEFAULT_VXLAN_PORT,
                'learning' if spec.learning else 'nolearning', ' gbp' if spec.gbp else '',
                spec.mtu, spec.mac),
             'addr %s dev %s' % (_device_address(spec), spec.name)]
    return lines + ['sysctl %s=%s' % (op.key, op.value) for op in _accept_ra_ops(spec)]
