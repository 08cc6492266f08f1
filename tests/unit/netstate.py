# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared kernel state of the dataplane unit tests: ip -json dicts, peers, a fake kernel."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json

from ansible_collections.kubeasz.network.plugins.module_utils import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.vxlandev import VxlanSpec
from ansible_collections.kubeasz.network.plugins.module_utils.lease import vtep_mac

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
                learning=False, mtu=1450, mac=MAC1, address='172.20.1.0', network=NET)
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
               route('172.20.99.0/24', '198.18.0.1', proto='boot'),        # foreign, inside
               route('10.9.0.0/16', '198.18.0.1', proto='159')]            # ours by proto, outside


class FakeKernel:
    """A runner answering observe/route_get from a fixture and recording writes."""

    def __init__(self, obs, lookups=None):
        self.obs = obs
        self.lookups = lookups or {}
        self.calls = []
        self.writes = []

    def __call__(self, argv, data=None):
        self.calls.append(list(argv))
        for table, table_argv in iproute.TABLE_ARGV.items():
            if list(argv[:len(table_argv)]) == table_argv:
                return 0, json.dumps(self.rows(table, list(argv[len(table_argv):]))), ''
        if argv[:4] == ['ip', '-force', '-json', '-batch']:
            with open(argv[4]) as handle:
                lines = handle.read().splitlines()
            out = ''.join(json.dumps(self.lookups[line.split()[-1]]) + '\n'
                          for line in lines if line.split()[-1] in self.lookups)
            return 0, out, ''
        self.writes.append((argv[0], data))
        return 0, '', ''

    def rows(self, table, where):
        """The fixture's table, filtered as the kernel filters `type vxlan` and `dev X`."""
        rows = self.obs.get(table, [])
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
