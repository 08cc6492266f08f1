# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared kernel state of the dataplane unit tests: ip -json dicts, peers, a fake kernel."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import VxlanSpec
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac

NET = ipaddress.IPv4Network('172.20.0.0/16')
OWN = ipaddress.IPv4Network('172.20.1.0/24')
MAC1 = vtep_mac('198.18.0.11', 1)
MAC2 = vtep_mac('198.18.0.12', 1)
MAC3 = vtep_mac('198.18.1.13', 1)


def eth0(mtu=1500):
    return {'ifname': 'eth0', 'mtu': mtu, 'flags': ['UP'], 'address': 'be:c7:8f:c6:79:7f',
            'addr_info': [{'family': 'inet', 'local': '198.18.0.11', 'prefixlen': 24},
                          {'family': 'inet', 'local': '198.18.0.99', 'prefixlen': 24},
                          {'family': 'inet6', 'local': 'fe80::1', 'prefixlen': 64}]}


def flannel(vni=1, dev='eth0', local='198.18.0.11', port=8472, gbp=False, learning=False,
            mtu=1450, mac=MAC1, up=True, kind='vxlan', addrs=('172.20.1.0/32',)):
    data = {'id': vni, 'local': local, 'link': dev, 'port': port, 'learning': learning, 'ttl': 0}
    if gbp:
        data['gbp'] = True
    return {'ifname': 'flannel.%d' % vni, 'mtu': mtu, 'address': mac,
            'flags': ['BROADCAST', 'MULTICAST'] + (['UP', 'LOWER_UP'] if up else []),
            'linkinfo': {'info_kind': kind, 'info_data': data},
            'addr_info': [{'family': 'inet', 'local': a.partition('/')[0], 'prefixlen': int(a.partition('/')[2])}
                          for a in addrs]}


def observed(links=(), routes=None, neigh=(), fdb=()):
    links = [eth0()] + list(links)
    return {'link': links, 'addr': links,
            'route': routes if routes is not None else [
                {'dst': 'default', 'gateway': '198.18.0.1', 'dev': 'eth0', 'flags': []},
                {'dst': '198.18.0.0/24', 'dev': 'eth0', 'protocol': 'kernel', 'scope': 'link',
                 'prefsrc': '198.18.0.11', 'flags': []}],
            'neigh': list(neigh), 'fdb': list(fdb)}


def peer(i, public_ip=None, backend='vxlan'):
    ip = public_ip or '198.18.0.%d' % (10 + i)
    return {'subnet': '172.20.%d.0/24' % i, 'public_ip': ip, 'backend_type': backend,
            'vni': 1 if backend == 'vxlan' else None,
            'vtep_mac': vtep_mac(ip, 1) if backend == 'vxlan' else None}


def spec(**kw):
    base = dict(name='flannel.1', vni=1, dev='eth0', local='198.18.0.11', port=0, gbp=False,
                learning=False, mtu=1450, mac=MAC1, address='172.20.1.0', network=NET, family=IPV4)
    base.update(kw)
    return VxlanSpec(**base)


def neigh(ip, mac, dev='flannel.1', state='PERMANENT'):
    return {'dst': ip, 'dev': dev, 'lladdr': mac, 'state': [state]}


def fdb(mac, dst, dev='flannel.1'):
    return {'mac': mac, 'ifname': dev, 'dst': dst, 'flags': ['self'], 'state': 'permanent'}


def route(dst, gw=None, dev='eth0', proto=None, onlink=False, **kw):
    r = {'dst': dst, 'dev': dev, 'flags': ['onlink'] if onlink else []}
    if gw:
        r['gateway'] = gw
    if proto is not None:
        r['protocol'] = proto
    r.update(kw)
    return r


BASE_ROUTES = [route('default', '198.18.0.1'),
               route('198.18.0.0/24', proto='kernel', scope='link'),
               route('172.20.1.0/24', dev='cni0', proto='kernel', scope='link'),
               route('172.20.99.0/24', '198.18.0.1', proto='boot')]        # foreign, inside


class FakeKernel:
    """A runner answering observe/route_get from a fixture and recording writes."""

    def __init__(self, obs, lookups=None, sysctl=None):
        self.obs = obs
        self.lookups = lookups or {}
        self.sysctl = sysctl if sysctl is not None else {}
        self.calls = []
        self.writes = []

    def __call__(self, argv, data=None):
        self.calls.append(list(argv))
        for argvs, six in ((iproute.table_argv(IPV4), False), (iproute.table_argv(IPV6), True)):
            for table, table_argv in argvs.items():
                if list(argv[:len(table_argv)]) == table_argv:
                    return 0, json.dumps(self.rows(table, list(argv[len(table_argv):]), six)), ''
        lookup = argv[:4] == ['ip', '-force', '-json', '-batch'] or argv[:5] == ['ip', '-6', '-force', '-json', '-batch']
        if lookup:
            with open(argv[-1]) as handle:
                lines = handle.read().splitlines()
            out = ''.join(json.dumps(self.lookups[line.split()[-1]]) + '\n'
                          for line in lines if line.split()[-1] in self.lookups)
            return 0, out, ''
        if argv[:2] == ['sysctl', '-n']:
            if argv[2] in self.sysctl:
                return 0, '%s\n' % self.sysctl[argv[2]], ''
            return 255, '', 'sysctl: cannot stat /proc/sys/%s: No such file or directory' % argv[2]
        if argv[0] == 'sysctl':
            self.writes.append(('sysctl', ' '.join(argv[1:])))
            return 0, '', ''
        self.writes.append((' '.join(argv[:-2]), data))
        return 0, '', ''

    def rows(self, table, where, six=False):
        """The fixture's table, filtered as the kernel filters `type vxlan` and `dev X` (IPv6
        reads take 'route6' / 'neigh6' when the fixture has them)."""
        rows = self.obs.get(table + '6', self.obs.get(table, [])) if six else self.obs.get(table, [])
        if where[:2] == ['type', 'vxlan']:
            rows = [r for r in rows if (r.get('linkinfo') or {}).get('info_kind') == 'vxlan']
        if where[:1] == ['dev']:
            rows = [r for r in rows if where[1] in (r.get('dev'), r.get('ifname'))]
        return rows


def link_params(**kw):
    params = dict(state='present', vni=1, port=0, gbp=False, learning=False, mtu=None, iface='eth0',
                  local_ip=None, address='172.20.1.0', network='172.20.0.0/16', mac=None,
                  direct_routing=False, peers=[peer(2), peer(3, '198.18.1.13')])
    params.update(kw)
    return params


LOOKUPS = {'198.18.0.12': [{'dst': '198.18.0.12', 'dev': 'eth0'}],
           '198.18.1.13': [{'dst': '198.18.1.13', 'gateway': '198.18.0.1', 'dev': 'eth0'}]}


LOOKUPS = {'198.18.0.12': [{'dst': '198.18.0.12', 'dev': 'eth0'}],
           '198.18.1.13': [{'dst': '198.18.1.13', 'gateway': '198.18.0.1', 'dev': 'eth0'}]}


def route_params(**kw):
    params = dict(state='present', backend='vxlan', direct_routing=False, vni=1, network='172.20.0.0/16',
                  subnet='172.20.1.0/24', iface=None, peers=[peer(2), peer(3, '198.18.1.13')])
    params.update(kw)
    return params


def raw(ops):
    """A plan as raw ``Op(tool, batch line)`` values, to compare with the expected lines."""
    return [iproute.Op(op.tool, op.batch_line()) for op in ops]


# ------------------------------------------------------------------ IPv6 (dual-stack)

NET6 = ipaddress.IPv6Network('fd00:20::/56')
OWN6 = ipaddress.IPv6Network('fd00:20:0:1::/64')
MAC61 = vtep_mac('fd53::11', 1)
MAC62 = vtep_mac('fd53::12', 1)
MAC63 = vtep_mac('fd53:1::13', 1)


def eth0_6(mtu=1500):
    """eth0 of a dual-stack node: IPv4, a global IPv6 address and the link-local one."""
    link = eth0(mtu)
    link['addr_info'] = link['addr_info'][:2] + [
        {'family': 'inet6', 'local': 'fd53::11', 'prefixlen': 64, 'scope': 'global'},
        {'family': 'inet6', 'local': 'fe80::1', 'prefixlen': 64, 'scope': 'link'}]
    return link


def flannel6(vni=1, dev='eth0', local='fd53::11', port=8472, gbp=False, learning=False,
             mtu=1430, mac=MAC61, up=True, addrs=('fd00:20:0:1::/128',)):
    link = flannel(vni, dev, None, port, gbp, learning, mtu, mac, up, addrs=())
    link['ifname'] = 'flannel-v6.%d' % vni
    data = link['linkinfo']['info_data']
    del data['local']
    data['local6'] = local
    link['addr_info'] = [{'family': 'inet6', 'local': a.partition('/')[0], 'prefixlen': int(a.partition('/')[2]),
                          'scope': 'global'} for a in addrs]
    link['addr_info'].append({'family': 'inet6', 'local': 'fe80::c00:ff:fe00:11', 'prefixlen': 64, 'scope': 'link'})
    return link


def peer6(i, public_ip6=None, backend='vxlan', v4=True):
    """A dual-stack peer (v4=False: IPv6-only)."""
    ip6 = public_ip6 or ('fd53::%d' % (10 + i))
    raw = peer(i, backend=backend) if v4 else {'backend_type': backend, 'vni': 1 if backend == 'vxlan' else None}
    raw.update({'subnet6': 'fd00:20:0:%x::/64' % i, 'public_ip6': ip6,
                'vtep_mac6': vtep_mac(ip6, 1) if backend == 'vxlan' else None})
    return raw


def observed6(links=(), routes=None, neigh=(), fdb=()):
    links = [eth0_6()] + list(links)
    return {'link': links, 'addr': links,
            'route': routes if routes is not None else [
                {'dst': 'default', 'gateway': 'fd53::1', 'dev': 'eth0', 'metric': 1024, 'flags': []},
                {'dst': 'fd53::/64', 'dev': 'eth0', 'protocol': 'kernel', 'metric': 256, 'flags': []}],
            'neigh': list(neigh), 'fdb': list(fdb)}


def route6(dst, gw=None, dev='eth0', proto=None, onlink=False, metric=1024, **kw):
    return route(dst, gw, dev, proto, onlink, metric=metric, **kw)


BASE_ROUTES6 = [route6('default', 'fd53::1'),
                route6('fd53::/64', proto='kernel', metric=256),
                route6('fd00:20:0:1::/64', dev='cni0', proto='kernel', metric=256),
                route6('fd00:20:0:1::', dev='flannel-v6.1', proto='kernel', metric=256),  # own /128
                route6('fe80::/64', dev='flannel-v6.1', proto='kernel', metric=256),
                route6('fd00:20:0:99::/64', 'fd53::1', proto='boot')]        # foreign, inside

LOOKUPS6 = {'fd53::12': [{'dst': 'fd53::12', 'dev': 'eth0', 'metric': 256}],
            'fd53:1::13': [{'dst': 'fd53:1::13', 'gateway': 'fd53::1', 'dev': 'eth0', 'metric': 1024}]}
ACCEPT_RA = 'net/ipv6/conf/flannel-v6.1/accept_ra'


def link_params6(**kw):
    params = link_params(family='ipv6', address='fd00:20:0:1::', network='fd00:20::/56',
                         peers=[peer6(2), peer6(3, 'fd53:1::13')])
    params.update(kw)
    return params


def route_params6(**kw):
    params = route_params(family='ipv6', network='fd00:20::/56', subnet='fd00:20:0:1::/64',
                          peers=[peer6(2), peer6(3, 'fd53:1::13')])
    params.update(kw)
    return params
