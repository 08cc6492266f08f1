# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning tests: observed state as ip -json dicts -> expected operations (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import ipaddress
import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils import dataplane as dp
from ansible_collections.kubeasz.network.plugins.module_utils import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.iproute import Op

NET = ipaddress.IPv4Network('172.20.0.0/16')
OWN = ipaddress.IPv4Network('172.20.1.0/24')
MAC1 = dp.vtep_mac('198.18.0.11', 1)
MAC2 = dp.vtep_mac('198.18.0.12', 1)
MAC3 = dp.vtep_mac('198.18.1.13', 1)


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
            'vtep_mac': dp.vtep_mac(ip, 1) if backend == 'vxlan' else None}


def spec(**kw):
    base = dict(name='flannel.1', vni=1, dev='eth0', local='198.18.0.11', port=0, gbp=False,
                learning=False, mtu=1450, mac=MAC1, address='172.20.1.0', network=NET)
    base.update(kw)
    return dp.VxlanSpec(**base)


# ------------------------------------------------------------------ vtep_mac

def test_vtep_mac_stable_local_unicast():
    mac = dp.vtep_mac('198.18.0.11', 1)
    assert mac == dp.vtep_mac('198.18.0.11', 1)
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert mac != dp.vtep_mac('198.18.0.11', 2) != dp.vtep_mac('198.18.0.12', 1)
    assert dp.check_mac(mac, 'x') == mac


# -------------------------------------------------------- external_interface

def test_external_interface_default_route():
    assert dp.external_interface(observed()) == dp.ExternalInterface('eth0', '198.18.0.11', 1500)


def test_external_interface_public_ip_wins():
    assert dp.external_interface(observed(), iface='eth0', public_ip='203.0.113.5').ip == '203.0.113.5'


def test_external_interface_regex():
    obs = observed()
    obs['addr'] = [{'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
                   {'ifname': 'ens3', 'mtu': 9000, 'addr_info': []}] + obs['addr']
    assert dp.external_interface(obs, iface_regex='^e').name == 'eth0'
    with pytest.raises(dp.DataplaneError, match='matches iface_regex'):
        dp.external_interface(obs, iface_regex='^wlan')


def test_external_interface_errors():
    with pytest.raises(dp.DataplaneError, match='no default route: set FLANNEL_IFACE'):
        dp.external_interface(observed(routes=[]))
    with pytest.raises(dp.DataplaneError, match='eth9.*does not exist'):
        dp.external_interface(observed(), iface='eth9')
    with pytest.raises(dp.DataplaneError, match='not a valid interface name'):
        dp.external_interface(observed(), iface='eth0; reboot')
    obs = observed()
    obs['addr'][0]['addr_info'] = []
    with pytest.raises(dp.DataplaneError, match='no IPv4 address'):
        dp.external_interface(obs, iface='eth0')


# -------------------------------------------------------------- validation

@pytest.mark.parametrize('bad, message', [
    ({'subnet': '172.20.2.1/24'}, r'peers\[0\] \(198.18.0.12\) subnet.*not an IPv4 network'),
    ({'subnet': 'nonsense'}, 'not an IPv4 network'),
    ({'public_ip': '198.18.0.300'}, r'peers\[0\].*public_ip.*not an IPv4 address'),
    ({'vtep_mac': 'zz:zz'}, 'vtep_mac.*not a MAC'),
    ({'vtep_mac': '01:00:5e:00:00:01'}, 'multicast'),
    ({'vtep_mac': None}, 'needs vtep_mac'),
    ({'vni': 0}, 'not a VNI'),
    ({'subnet': '10.0.0.0/24'}, 'not inside the cluster network'),
    ({'backend_type': 'x y'}, 'not a backend name'),
    ({'vtep_mac': '00:00:00:00:00:00'}, r'peers\[0\].*vtep_mac.*zero MAC'),
    ({'public_ip': '0.0.0.0'}, r'peers\[0\].*public_ip: 0.0.0.0 is a "this network" address'),
    ({'public_ip': '127.0.0.1'}, 'public_ip: 127.0.0.1 is a loopback address'),
    ({'public_ip': '239.1.1.1'}, 'public_ip: 239.1.1.1 is a multicast address'),
    ({'public_ip': '255.255.255.255'}, 'reserved or broadcast'),
])
def test_validate_peer_errors(bad, message):
    raw = peer(2)
    raw.update(bad)
    with pytest.raises(dp.DataplaneError, match=message):
        dp.validate_peers([raw], NET, OWN)


def test_validate_peers_refuses_a_shared_vtep_mac():
    twin = dict(peer(3), vtep_mac=peer(2)['vtep_mac'])
    with pytest.raises(dp.DataplaneError, match=r'peers\[1\] \(198.18.0.13\) vtep_mac: .* is also the '
                       r'VtepMAC of peers\[0\] \(198.18.0.12\)'):
        dp.validate_peers([peer(2), twin], NET, OWN)


def test_validate_peers_overlaps():
    with pytest.raises(dp.DataplaneError, match=r'peers\[1\].*overlaps peers\[0\]'):
        dp.validate_peers([peer(2), peer(2, '198.18.0.40')], NET, OWN)
    with pytest.raises(dp.DataplaneError, match="overlaps this node's subnet"):
        dp.validate_peers([peer(1)], NET, OWN)
    with pytest.raises(dp.DataplaneError, match='must be a dict'):
        dp.validate_peers(['x'], NET)


def test_validate_peers_normalises():
    raw = peer(2)
    raw['vtep_mac'] = raw['vtep_mac'].upper()
    (p,) = dp.validate_peers([raw], NET, OWN)
    assert p.vtep_mac == raw['vtep_mac'].lower() and p.subnet == '172.20.2.0/24'


# ---------------------------------------------------------- classification

def test_classify_peers_direct_routing_rule():
    peers = dp.validate_peers([peer(2), peer(3, '198.18.1.13'), peer(4, '198.18.0.14')], NET)
    lookups = {'198.18.0.12': [{'dst': '198.18.0.12', 'dev': 'eth0'}],
               '198.18.1.13': [{'dst': '198.18.1.13', 'gateway': '198.18.0.1', 'dev': 'eth0'}],
               '198.18.0.14': [{'dst': '198.18.0.14', 'dev': 'eth0'}, {'dst': '198.18.0.14', 'dev': 'eth1'}]}
    direct, vxlan = dp.classify_peers(peers, lookups, direct_routing=True)
    assert [p.public_ip for p in direct] == ['198.18.0.12']
    assert [p.public_ip for p in vxlan] == ['198.18.1.13', '198.18.0.14']
    direct, vxlan = dp.classify_peers(peers, lookups, direct_routing=False)
    assert direct == [] and len(vxlan) == 3


def test_on_link_reasons():
    assert dp.on_link([{'dev': 'eth0'}]) is None
    assert 'gateway' in dp.on_link([{'dev': 'eth0', 'gateway': '1.2.3.4'}])
    assert dp.on_link([]) == 'no route to it'
    assert 'not eth0' in dp.on_link([{'dev': 'eth1'}], 'eth0')
    assert 'local' in dp.on_link([{'dev': 'lo', 'type': 'local'}])


# -------------------------------------------------------------- vxlan link

def test_plan_vxlan_link_create():
    ops, fresh = dp.plan_vxlan_link(observed(), spec())
    assert fresh
    assert ops == [
        Op('ip', 'link add flannel.1 address %s mtu 1450 type vxlan id 1 dev eth0 local 198.18.0.11 '
                 'dstport 8472 ttl 0 nolearning' % MAC1),
        Op('ip', 'addr add 172.20.1.0/32 dev flannel.1'),
        Op('ip', 'link set flannel.1 up')]


def test_plan_vxlan_link_create_gbp_port_learning():
    ops, dummy = dp.plan_vxlan_link(observed(), spec(gbp=True, port=4789, learning=True))
    assert ops[0].line.endswith('dstport 4789 ttl 0 learning gbp')


def test_plan_vxlan_link_in_sync():
    assert dp.plan_vxlan_link(observed([flannel()]), spec()) == ([], False)


@pytest.mark.parametrize('change', [dict(vni=1, dev='eth1'), dict(local='198.18.0.99'),
                                    dict(port=4789), dict(gbp=True), dict(kind='veth')])
def test_plan_vxlan_link_recreate(change):
    ops, fresh = dp.plan_vxlan_link(observed([flannel(**change)]), spec())
    assert fresh and ops[0] == Op('ip', 'link del flannel.1') and ops[1].line.startswith('link add')


def test_plan_vxlan_link_fix_in_place():
    link = flannel(mtu=1400, mac='0e:00:00:00:00:01', learning=True, up=False,
                   addrs=('172.20.7.0/32', '172.20.1.0/24', '10.1.1.1/8'))
    ops, fresh = dp.plan_vxlan_link(observed([link]), spec())
    assert not fresh
    assert ops == [Op('ip', 'link set flannel.1 address %s' % MAC1),
                   Op('ip', 'link set flannel.1 mtu 1450'),
                   Op('ip', 'link set flannel.1 type vxlan nolearning'),
                   Op('ip', 'addr del 172.20.7.0/32 dev flannel.1'),
                   Op('ip', 'addr del 172.20.1.0/24 dev flannel.1'),
                   Op('ip', 'addr add 172.20.1.0/32 dev flannel.1'),
                   Op('ip', 'link set flannel.1 up')]


def test_plan_vxlan_absent():
    assert dp.plan_vxlan_absent(observed([flannel()]), 'flannel.1') == [Op('ip', 'link del flannel.1')]
    assert dp.plan_vxlan_absent(observed(), 'flannel.1') == []


# ---------------------------------------------------------- neighbours/FDB

def neigh(ip, mac, dev='flannel.1', state='PERMANENT'):
    return {'dst': ip, 'dev': dev, 'lladdr': mac, 'state': [state]}


def fdb(mac, dst, dev='flannel.1'):
    return {'mac': mac, 'ifname': dev, 'dst': dst, 'flags': ['self'], 'state': 'permanent'}


def test_plan_peers_fresh_order():
    peers = dp.validate_peers([peer(3), peer(2)], NET)
    ops = dp.plan_vxlan_peers(observed(), 'flannel.1', peers)
    assert ops == [
        Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2),
        Op('ip', 'neigh replace 172.20.3.0 lladdr %s dev flannel.1 nud permanent' % dp.vtep_mac('198.18.0.13', 1)),
        Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.12 self permanent' % MAC2),
        Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.13 self permanent' % dp.vtep_mac('198.18.0.13', 1))]
    assert len(iproute.batches(ops)) == 2


def test_plan_peers_in_sync_and_stale_removed_only_on_device():
    peers = dp.validate_peers([peer(2)], NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.9.0', MAC3),
                          neigh('172.20.8.0', MAC3, state='STALE'),
                          neigh('198.18.0.1', MAC3, dev='eth0'), neigh('fe80::1', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13'),
                        fdb('33:33:00:00:00:01', None, dev='eth0')])
    ops = dp.plan_vxlan_peers(obs, 'flannel.1', peers)
    assert ops == [Op('ip', 'neigh del 172.20.9.0 dev flannel.1'),
                   Op('bridge', 'fdb del %s dev flannel.1 dst 198.18.1.13 self' % MAC3)]


def test_plan_peers_changed_mac_and_ip():
    peers = dp.validate_peers([peer(2)], NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC3)], fdb=[fdb(MAC2, '198.18.0.77')])
    ops = dp.plan_vxlan_peers(obs, 'flannel.1', peers)
    assert ops == [Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2),
                   Op('bridge', 'fdb del %s dev flannel.1 dst 198.18.0.77 self' % MAC2),
                   Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.12 self permanent' % MAC2)]


def test_plan_peers_nonpermanent_entry_replaced():
    peers = dp.validate_peers([peer(2)], NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC2, state='REACHABLE')], fdb=[fdb(MAC2, '198.18.0.12')])
    assert dp.plan_vxlan_peers(obs, 'flannel.1', peers) == [
        Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2)]


# ------------------------------------------------------------------ routes

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


def test_is_owned():
    assert dp.is_owned(route('172.20.2.0/24', '172.20.2.0', 'flannel.1', onlink=True), NET, OWN)
    assert dp.is_owned(route('172.20.2.0/24', '198.18.0.12', proto='159'), NET, OWN)
    assert not dp.is_owned(route('172.20.1.0/24', dev='flannel.1'), NET, OWN)
    assert not dp.is_owned(route('172.20.99.0/24', '198.18.0.1', proto='boot'), NET, OWN)
    assert not dp.is_owned(route('10.9.0.0/16', '198.18.0.1', proto='159'), NET, OWN)
    assert not dp.is_owned(route('default', '198.18.0.1', dev='flannel.1'), NET, OWN)
    assert dp.is_owned(route('172.20.5.7', '198.18.0.5', proto='159'), NET, OWN)


def test_desired_routes_vxlan_and_direct():
    direct = dp.validate_peers([peer(2)], NET)
    vxlan = dp.validate_peers([peer(3, '198.18.1.13')], NET)
    want = dp.desired_routes('vxlan', direct, vxlan, vni=1)
    assert [dp.route_text(r) for r in want] == [
        '172.20.2.0/24 via 198.18.0.12 proto 159',
        '172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159']
    want = dp.desired_routes('host-gw', direct, [], iface='eth0')
    assert [dp.route_text(r) for r in want] == ['172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159']


def test_plan_routes_add_then_noop():
    want = dp.desired_routes('vxlan', [], dp.validate_peers([peer(2)], NET))
    ops = dp.plan_routes(observed(routes=list(BASE_ROUTES)), want, NET, OWN)
    assert ops == [Op('ip', 'route replace 172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink proto 159')]
    now = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)]
    assert dp.plan_routes(observed(routes=now), want, NET, OWN) == []


def test_plan_routes_stale_removed_foreign_kept():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True),
                            route('172.20.4.0/24', '172.20.4.0', 'flannel.1', 'boot', onlink=True),
                            route('172.20.5.0/24', '198.18.0.15', proto='159', metric=100)]
    ops = dp.plan_routes(observed(routes=routes), [], NET, OWN)
    assert ops == [Op('ip', 'route del 172.20.2.0/24 via 172.20.2.0 dev flannel.1 table main'),
                   Op('ip', 'route del 172.20.4.0/24 via 172.20.4.0 dev flannel.1 table main'),
                   Op('ip', 'route del 172.20.5.0/24 via 198.18.0.15 dev eth0 metric 100 table main')]


def test_plan_routes_switch_vxlan_to_direct_is_one_replace():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)]
    want = dp.desired_routes('vxlan', dp.validate_peers([peer(2)], NET), [])
    assert dp.plan_routes(observed(routes=routes), want, NET, OWN) == [
        Op('ip', 'route replace 172.20.2.0/24 via 198.18.0.12 proto 159')]


def test_plan_routes_flanneld_route_taken_over():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', 'boot', onlink=True)]
    want = dp.desired_routes('vxlan', [], dp.validate_peers([peer(2)], NET))
    assert dp.plan_routes(observed(routes=routes), want, NET, OWN) == [
        Op('ip', 'route replace 172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink proto 159')]


def test_observed_route_text():
    assert dp.observed_route_text(route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)) == \
        '172.20.2.0/24 via 172.20.2.0 dev flannel.1 proto 159 onlink'


# ------------------------------------------------- entry points (fake kernel)

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


def test_vxlan_link_entry_point_processes_and_result():
    kernel = FakeKernel(observed(), LOOKUPS)
    result = dp.vxlan_link(kernel, link_params(direct_routing=True))
    assert result['changed'] and result['device'] == 'flannel.1' and result['vtep_mac'] == MAC1
    assert [p['public_ip'] for p in result['direct_peers']] == ['198.18.0.12']
    assert [p['public_ip'] for p in result['vxlan_peers']] == ['198.18.1.13']
    assert [w[0] for w in kernel.writes] == ['ip', 'bridge']
    assert len(kernel.calls) == 2 + 1 + 2  # link+addr (no device yet: no neigh/fdb), route get, 2 batches
    assert 'neigh 172.20.3.0 lladdr %s dev flannel.1 nud permanent' % MAC3 in result['diff']['after']
    assert result['diff']['before'] == ''


def test_vxlan_link_check_mode_writes_nothing():
    kernel = FakeKernel(observed())
    result = dp.vxlan_link(kernel, link_params(), check_mode=True)
    assert result['changed'] and result['plan'] and kernel.writes == []


def test_vxlan_link_in_sync_is_unchanged():
    obs = observed([flannel()], neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.3.0', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13')])
    kernel = FakeKernel(obs)
    result = dp.vxlan_link(kernel, link_params())
    assert not result['changed'] and result['plan'] == [] and kernel.writes == []
    assert result['diff']['before'] == result['diff']['after']


def test_vxlan_link_ignores_other_backends_and_validates_first():
    kernel = FakeKernel(observed())
    result = dp.vxlan_link(kernel, link_params(peers=[peer(2), peer(4, backend='host-gw')]), check_mode=True)
    assert [p['subnet'] for p in result['ignored_peers']] == ['172.20.4.0/24']
    bad = peer(3)
    bad['public_ip'] = 'x'
    kernel = FakeKernel(observed())
    with pytest.raises(dp.DataplaneError, match=r'peers\[1\]'):
        dp.vxlan_link(kernel, link_params(peers=[peer(2), bad]))
    assert kernel.calls == []


@pytest.mark.parametrize('kw, message', [
    (dict(iface=None), 'iface'), (dict(address=None), 'address'), (dict(vni=0), 'VNI'),
    (dict(port=70000), 'port'), (dict(mac='01:02:03:04:05:06'), 'multicast'),
    (dict(mtu=20), 'mtu'), (dict(peers=[peer(1)]), "node's address"),
    (dict(mtu=9000), r'mtu: 9000 does not fit eth0 \(MTU 1500\).*at most 1450'),
    (dict(peers=[peer(2, '198.18.0.11')]), r"peer 198.18.0.11 .*public_ip is this node's own address")])
def test_vxlan_link_bad_params(kw, message):
    kernel = FakeKernel(observed())
    with pytest.raises(dp.DataplaneError, match=message):
        dp.vxlan_link(kernel, link_params(**kw))
    assert kernel.writes == []


def test_vxlan_link_absent():
    kernel = FakeKernel(observed([flannel()]))
    result = dp.vxlan_link(kernel, dict(state='absent', vni=1))
    assert result['plan'] == ['ip link del flannel.1'] and kernel.writes == [('ip', 'link del flannel.1\n')]
    kernel = FakeKernel(observed())
    assert not dp.vxlan_link(kernel, dict(state='absent', vni=1))['changed']


def route_params(**kw):
    params = dict(state='present', backend='vxlan', direct_routing=False, vni=1, network='172.20.0.0/16',
                  subnet='172.20.1.0/24', iface=None, peers=[peer(2), peer(3, '198.18.1.13')])
    params.update(kw)
    return params


def test_direct_route_vxlan_with_direct_routing():
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES)), LOOKUPS)
    result = dp.direct_route(kernel, route_params(direct_routing=True))
    assert result['routes'] == ['172.20.2.0/24 via 198.18.0.12 proto 159',
                                '172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159']
    assert kernel.writes == [('ip', 'route replace 172.20.2.0/24 via 198.18.0.12 proto 159\n'
                                    'route replace 172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159\n')]


@pytest.mark.parametrize('kw', [dict(direct_routing=True), dict(
    backend='host-gw', iface='eth0', peers=[peer(2, backend='host-gw'), peer(3, '198.18.0.13', backend='host-gw')])])
def test_direct_route_refuses_a_peer_with_this_nodes_address(kw):
    lookups = dict(LOOKUPS, **{'198.18.0.12': [{'type': 'local', 'dst': '198.18.0.12', 'dev': 'lo'}]})
    kernel = FakeKernel(observed([flannel()], routes=list(BASE_ROUTES)), lookups)
    with pytest.raises(dp.DataplaneError, match=r"peer 198.18.0.12 \(subnet 172.20.2.0/24\): public_ip is this "
                                                r"node's own address"):
        dp.direct_route(kernel, route_params(**kw))
    assert kernel.writes == []


def test_direct_route_needs_device_for_vxlan_peers():
    kernel = FakeKernel(observed(routes=list(BASE_ROUTES)))
    with pytest.raises(dp.DataplaneError, match='flannel.1 does not exist'):
        dp.direct_route(kernel, route_params())
    result = dp.direct_route(kernel, route_params(), check_mode=True)
    assert result['changed'] and 'flannel.1 does not exist' in result['warnings'][0]
    assert kernel.writes == []


def test_direct_route_host_gw_off_link_changes_nothing():
    peers = [peer(2, backend='host-gw'), peer(3, '198.18.1.13', backend='host-gw')]
    kernel = FakeKernel(observed(routes=list(BASE_ROUTES)), LOOKUPS)
    with pytest.raises(dp.DataplaneError, match=r'peer 198.18.1.13 \(subnet 172.20.3.0/24\).*gateway 198.18.0.1'):
        dp.direct_route(kernel, route_params(backend='host-gw', peers=peers))
    assert kernel.writes == []


def test_direct_route_host_gw_routes_and_cleanup():
    routes = BASE_ROUTES + [route('172.20.3.0/24', '172.20.3.0', 'flannel.1', '159', onlink=True)]
    kernel = FakeKernel(observed(routes=routes), LOOKUPS)
    result = dp.direct_route(kernel, route_params(backend='host-gw', peers=[peer(2, backend='host-gw')]))
    assert result['plan'] == ['ip route del 172.20.3.0/24 via 172.20.3.0 dev flannel.1 table main',
                              'ip route replace 172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159']
    assert result['direct_peers'][0]['subnet'] == '172.20.2.0/24'


def test_direct_route_absent_removes_only_owned():
    routes = BASE_ROUTES + [route('172.20.3.0/24', '172.20.3.0', 'flannel.1', '159', onlink=True)]
    kernel = FakeKernel(observed(routes=routes))
    result = dp.direct_route(kernel, dict(state='absent', network='172.20.0.0/16', subnet='172.20.1.0/24'))
    assert result['plan'] == ['ip route del 172.20.3.0/24 via 172.20.3.0 dev flannel.1 table main']
    assert '172.20.3.0/24 via 172.20.3.0 dev flannel.1 proto 159 onlink' in result['diff']['before']


@pytest.mark.parametrize('kw, message', [
    (dict(backend='ipip'), 'backend'), (dict(network=None), 'network is required'),
    (dict(subnet=None), 'subnet'), (dict(subnet='10.0.0.0/24'), 'not inside network')])
def test_direct_route_bad_params(kw, message):
    kernel = FakeKernel(observed())
    with pytest.raises(dp.DataplaneError, match=message):
        dp.direct_route(kernel, route_params(**kw))
    assert kernel.calls == []


def test_inputs_not_mutated():
    params = route_params()
    before = copy.deepcopy(params)
    dp.direct_route(FakeKernel(observed([flannel()], routes=list(BASE_ROUTES))), params, check_mode=True)
    assert params == before


def test_classify_accepts_peer_dicts():
    direct, vxlan = dp.classify_peers([peer(2)], LOOKUPS, True)
    assert direct == [peer(2)] and vxlan == []


# ------------------------------------------------- stale flannel.<n> devices

def test_vni_change_removes_the_old_device():
    kernel = FakeKernel(observed([flannel(vni=1)]))
    result = dp.vxlan_link(kernel, link_params(vni=2), check_mode=True)
    assert result['plan'][:2] == ['ip link del flannel.1', 'ip link add flannel.2 address %s mtu 1450 type vxlan '
                                  'id 2 dev eth0 local 198.18.0.11 dstport 8472 ttl 0 nolearning'
                                  % dp.vtep_mac('198.18.0.11', 2)]
    assert result['removed'] == ['flannel.1']
    assert 'link flannel.1 type vxlan id 1' in result['diff']['before']


def test_absent_removes_every_flannel_device_but_nothing_else():
    other = flannel(vni=7)
    other['ifname'] = 'vxlan7'  # not flannel's
    kernel = FakeKernel(observed([flannel(vni=1), flannel(vni=3), other]))
    result = dp.vxlan_link(kernel, dict(state='absent', vni=1))
    assert result['plan'] == ['ip link del flannel.1', 'ip link del flannel.3']
    assert result['removed'] == ['flannel.1', 'flannel.3'] and result['diff']['after'] == ''
    kernel = FakeKernel(observed([flannel(vni=3)]))
    assert dp.vxlan_link(kernel, dict(state='absent', vni=1))['plan'] == ['ip link del flannel.3']


def test_prune_keeps_the_current_device():
    kernel = FakeKernel(observed([flannel(vni=1), flannel(vni=2)]))
    result = dp.vxlan_link(kernel, dict(state='prune', vni=2))
    assert result['plan'] == ['ip link del flannel.1'] and result['removed'] == ['flannel.1']
    assert 'flannel.2' in result['diff']['after'] and 'flannel.1' not in result['diff']['after']
    kernel = FakeKernel(observed([flannel(vni=2)]))
    assert not dp.vxlan_link(kernel, dict(state='prune', vni=2))['changed']


def test_unknown_state_is_refused():
    with pytest.raises(dp.DataplaneError, match='state'):
        dp.vxlan_link(FakeKernel(observed()), dict(state='gone', vni=1))
