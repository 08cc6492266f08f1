# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel tests of vxlan_link/direct_route with family ipv6 (issue 16, docs/dual-stack.md).

As test_modules_netns.py: every "node" is a throwaway network namespace held by an
``unshare --net sleep`` child, entered with ``nsenter --net``; a ``fabric`` namespace holds the
two L2 segments (bridges br0 = fd53::/64 + 198.18.0.0/24, br1 = fd53:1::/64 + 198.18.1.0/24) and
routes between them. n1 and n2 are on segment 1, n3 on segment 2. Every IPv6 underlay address is
added with ``nodad``. The host's own namespace is never changed; the fixture kills every helper
process, so nothing persists.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, vtep_mac
from ansible_collections.kubeasz.network.tests.integration.test_modules_netns import ANSIBLE, Node, ansible

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('nsenter'),
                       reason='needs root, unshare and nsenter'),
]

NETWORK = '172.20.0.0/16'
NETWORK6 = 'fd00:20::/56'
NODES = ('n1', 'n2', 'n3')


@pytest.fixture
def lab():
    """fabric + n1, n2 on segment 1 and n3 on segment 2, dual-stack underlay."""
    nodes = {}
    try:
        fabric = nodes['fabric'] = Node('fabric')
        fabric.sh('sysctl', '-qw', 'net.ipv4.ip_forward=1')
        fabric.sh('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1')
        for seg in (0, 1):
            fabric.sh('ip', 'link', 'add', 'br%d' % seg, 'type', 'bridge')
            fabric.sh('ip', 'addr', 'add', '198.18.%d.1/24' % seg, 'dev', 'br%d' % seg)
            fabric.sh('ip', 'addr', 'add', 'fd53:%x::1/64' % seg, 'dev', 'br%d' % seg, 'nodad')
            fabric.sh('ip', 'link', 'set', 'br%d' % seg, 'up')
        for i, seg in ((1, 0), (2, 0), (3, 1)):
            node = nodes['n%d' % i] = Node('n%d' % i)
            node.ip, node.sub = '198.18.%d.%d' % (seg, 10 + i), '172.20.%d.0/24' % i
            node.ip6 = str(ipaddress.IPv6Address('fd53:%x::%d' % (seg, 10 + i)))   # canonical text
            node.sub6 = 'fd00:20:0:%d::/64' % i
            node.addr6 = node.sub6.split('/', maxsplit=1)[0]              # flannel-v6.1's address
            node.pod6 = 'fd00:20:0:%d::1' % i                 # the subnet6 gateway on cni0
            node.vtep, node.vtep6 = vtep_mac(node.ip, 1), vtep_mac(node.ip6, 1)
            fabric.sh('ip', 'link', 'add', 'n%d' % i, 'type', 'veth', 'peer', 'name', 'eth0',
                      'netns', str(node.proc.pid))
            fabric.sh('ip', 'link', 'set', 'n%d' % i, 'master', 'br%d' % seg, 'up')
            node.sh('ip', 'link', 'set', 'lo', 'up')
            node.sh('ip', 'addr', 'add', node.ip + '/24', 'dev', 'eth0')
            node.sh('ip', 'addr', 'add', node.ip6 + '/64', 'dev', 'eth0', 'nodad')
            node.sh('ip', 'link', 'set', 'eth0', 'up')
            node.sh('ip', 'route', 'add', 'default', 'via', '198.18.%d.1' % seg)
            node.sh('ip', '-6', 'route', 'add', 'default', 'via', 'fd53:%x::1' % seg)
            # the "pod side": cni0 with the subnets' first host addresses
            node.sh('ip', 'link', 'add', 'cni0', 'type', 'bridge')
            node.sh('ip', 'addr', 'add', '172.20.%d.1/24' % i, 'dev', 'cni0')
            node.sh('ip', 'addr', 'add', node.pod6 + '/64', 'dev', 'cni0', 'nodad')
            node.sh('ip', 'link', 'set', 'cni0', 'up')
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def lease(node, backend='vxlan', v4=True):
    """The node's lease as flannel_subnet returns it: dual-stack (v4=False: IPv6-only)."""
    vxlan = backend == 'vxlan'
    peer = {'backend_type': backend, 'vni': 1 if vxlan else None, 'subnet6': node.sub6, 'public_ip6': node.ip6,
            'vtep_mac6': node.vtep6 if vxlan else None}
    if v4:
        peer.update(subnet=node.sub, public_ip=node.ip, vtep_mac=node.vtep if vxlan else None)
    return peer


def peers_of(lab, name, backend='vxlan', names=NODES):
    return [lease(lab[n], backend) for n in names if n != name]


def link_params(lab, name, family='ipv6', **kw):
    node = lab[name]
    params = dict(state='present', family=family, vni=1, port=0, gbp=False, learning=False, mtu=None,
                  iface='eth0', local_ip=node.ip6 if family == 'ipv6' else node.ip,
                  address=(node.addr6 if family == 'ipv6' else node.sub.split('/', maxsplit=1)[0]),
                  network=NETWORK6 if family == 'ipv6' else NETWORK, mac=None, direct_routing=False,
                  peers=peers_of(lab, name))
    params.update(kw)
    return params


def route_params(lab, name, family='ipv6', **kw):
    node = lab[name]
    params = dict(state='present', family=family, backend='vxlan', direct_routing=False, vni=1,
                  network=NETWORK6 if family == 'ipv6' else NETWORK,
                  subnet=node.sub6 if family == 'ipv6' else node.sub, iface=None, peers=peers_of(lab, name))
    params.update(kw)
    return params


def program(lab, name, family='ipv6', direct_routing=False):
    """vxlan_link then direct_route with vxlan_link's DirectRouting decision, as the role does."""
    node = lab[name]
    r1 = vxlan_link(node.run, link_params(lab, name, family, direct_routing=direct_routing))
    r2 = direct_route(node.run, route_params(lab, name, family, direct_routing=direct_routing,
                                             direct_peers=r1['direct_peers']))
    return r1, r2


def wait_dad(node, dev='flannel-v6.1', timeout=10.0):
    """The device's /128 address goes through DAD (as flanneld's does): wait until usable."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not node.sh('ip', '-6', 'addr', 'show', 'dev', dev, 'tentative').strip():
            return
        time.sleep(0.1)
    raise AssertionError('%s: %s still tentative' % (node.name, dev))


def ping(node, src, dst, flag='-6', tries=3):
    """One echo answered within ``tries`` attempts: the first one may meet neighbour discovery
    of a freshly made underlay (the kernel's link-local addresses are still in DAD)."""
    for dummy in range(tries):
        proc = subprocess.run(node.prefix + ['ping', flag, '-c', '1', '-W', '2', '-I', src, dst],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return True
        time.sleep(0.2)
    return False


def ping6(node, src, dst):
    return ping(node, src, dst, '-6')


def ping4(node, src, dst):
    return ping(node, src, dst, '-4')


def routes6(node):
    return sorted(line.replace(' linkdown', '').strip() for line in node.sh('ip', '-6', 'route', 'show').splitlines())


def tables6(node):
    """The node's IPv6 routes, IPv6 neighbours and FDB of flannel-v6.1, as an operator sees them."""
    return {'route': node.sh('ip', '-6', 'route', 'show'),
            'neigh': node.sh('ip', '-6', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent'),
            'fdb': node.sh('bridge', 'fdb', 'show', 'dev', 'flannel-v6.1')}


def test_vxlan6_device_attributes_and_idempotence(lab):
    n1 = lab['n1']
    result = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert result['changed'] and result['device'] == 'flannel-v6.1' and result['vtep_mac'] == n1.vtep6
    assert 'sysctl -w net/ipv6/conf/flannel-v6.1/accept_ra=0' in result['plan']
    (link,) = n1.ipj('-d', 'link', 'show', 'flannel-v6.1')
    data = link['linkinfo']['info_data']
    assert link['linkinfo']['info_kind'] == 'vxlan'
    assert (data['id'], data['local6'], data['link'], data['port']) == (1, n1.ip6, 'eth0', 8472)
    assert data['learning'] is False and not data.get('gbp') and data['ttl'] == 0
    # the kernel caps the MTU over an IPv6 underlay at 1500 - 70
    assert link['mtu'] == 1430 and link['address'] == n1.vtep6 and 'UP' in link['flags']
    (addr,) = n1.ipj('-6', 'addr', 'show', 'dev', 'flannel-v6.1')
    got = sorted((a['local'], a['prefixlen'], a['scope']) for a in addr['addr_info'])
    assert got[0] == (n1.addr6, 128, 'global') and len(got) == 2 and got[1][0].startswith('fe80::')
    assert n1.sh('sysctl', '-n', 'net/ipv6/conf/flannel-v6.1/accept_ra').strip() == '0'
    assert n1.sh('ip', 'link', 'show', 'flannel.1', check=False) == ''   # IPv6 only: no IPv4 device
    again = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert not again['changed'] and again['plan'] == []
    assert again['diff']['before'] == again['diff']['after']
    # fixed in place: MTU, accept_ra, a stray address (also outside the network); link-local kept
    index = link['ifindex']
    n1.sh('ip', 'link', 'set', 'flannel-v6.1', 'mtu', '1300')
    n1.sh('sysctl', '-qw', 'net/ipv6/conf/flannel-v6.1/accept_ra=1')
    n1.sh('ip', 'addr', 'add', 'fd00:20:0:77::/128', 'dev', 'flannel-v6.1', 'nodad')
    n1.sh('ip', 'addr', 'add', '2001:db8::1/64', 'dev', 'flannel-v6.1', 'nodad')
    fixed = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert fixed['plan'][:2] == ['ip -6 link set flannel-v6.1 mtu 1430',
                                 'sysctl -w net/ipv6/conf/flannel-v6.1/accept_ra=0']
    assert sorted(fixed['plan'][2:]) == ['ip -6 addr del 2001:db8::1/64 dev flannel-v6.1',   # the kernel's order
                                         'ip -6 addr del fd00:20:0:77::/128 dev flannel-v6.1']
    (link,) = n1.ipj('-d', 'link', 'show', 'flannel-v6.1')
    assert link['ifindex'] == index and link['mtu'] == 1430
    assert not vxlan_link(n1.run, link_params(lab, 'n1'))['changed']
    # recreated on a port change, with its entries
    result = vxlan_link(n1.run, link_params(lab, 'n1', port=4789))
    assert result['plan'][0] == 'ip -6 link del flannel-v6.1'
    assert len(n1.ipj('-6', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent')) == 2
    assert not vxlan_link(n1.run, link_params(lab, 'n1', port=4789))['changed']


def test_tables_exact_ipv6_with_direct_routing(lab, capsys):
    n1, n2, n3 = lab['n1'], lab['n2'], lab['n3']
    n1.sh('ip', '-6', 'route', 'add', 'fd00:20:0:99::/64', 'via', 'fd53::1')   # foreign, inside network
    n1.sh('ip', '-6', 'route', 'add', 'fd00:99::/64', 'via', 'fd53::1')        # foreign, outside
    r1, r2 = program(lab, 'n1', direct_routing=True)
    assert [p['public_ip6'] for p in r1['direct_peers']] == [n2.ip6]
    assert [p['public_ip6'] for p in r1['vxlan_peers']] == [n3.ip6]
    assert r1['direct_peers'][0]['public_ip'] == n2.ip   # returned whole
    neigh = n1.ipj('-6', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent')
    assert [(n['dst'], n['lladdr'], n['state']) for n in neigh] == [(n3.addr6, n3.vtep6, ['PERMANENT'])]
    fdb = json.loads(n1.sh('bridge', '-json', 'fdb', 'show', 'dev', 'flannel-v6.1'))
    assert [(f['mac'], f['dst'], f['state']) for f in fdb] == [(n3.vtep6, n3.ip6, 'permanent')]
    want = [
        'default via fd53::1 dev eth0 metric 1024 pref medium',
        'fd00:20:0:1:: dev flannel-v6.1 proto kernel metric 256 pref medium',
        'fd00:20:0:1::/64 dev cni0 proto kernel metric 256 pref medium',
        'fd00:20:0:2::/64 via fd53::12 dev eth0 proto 159 metric 1024 pref medium',
        'fd00:20:0:3::/64 via fd00:20:0:3:: dev flannel-v6.1 proto 159 metric 1024 onlink pref medium',
        'fd00:20:0:99::/64 via fd53::1 dev eth0 metric 1024 pref medium',
        'fd00:99::/64 via fd53::1 dev eth0 metric 1024 pref medium',
        'fd53::/64 dev eth0 proto kernel metric 256 pref medium']
    got = [line for line in routes6(n1) if not line.startswith('fe80::')]
    assert got == sorted(want)
    with capsys.disabled():   # the node's tables, for the record
        print('\n---- n1 (DirectRouting: n2 direct, n3 over flannel-v6.1)')
        for name, text in sorted(tables6(n1).items()):
            print('$ %s\n%s' % ({'route': 'ip -6 route', 'neigh': 'ip -6 neigh show dev flannel-v6.1 nud permanent',
                                 'fdb': 'bridge fdb show dev flannel-v6.1'}[name], text.rstrip()))
    # second run: nothing to do
    r1, r2 = program(lab, 'n1', direct_routing=True)
    assert not r1['changed'] and not r2['changed']
    # DirectRouting off: n2 moves to the vxlan path, nothing stale is left
    r1, r2 = program(lab, 'n1', direct_routing=False)
    assert r1['changed'] and r2['changed']
    assert len(n1.ipj('-6', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent')) == 2
    assert 'fd00:20:0:2::/64 via fd00:20:0:2:: dev flannel-v6.1 proto 159 metric 1024 onlink pref medium' in routes6(n1)
    # n3 leaves: its neighbour, FDB entry and route go, foreign routes stay
    peers = [lease(n2)]
    assert vxlan_link(n1.run, link_params(lab, 'n1', peers=peers))['changed']
    assert direct_route(n1.run, route_params(lab, 'n1', peers=peers))['changed']
    assert [n['dst'] for n in n1.ipj('-6', 'neigh', 'show', 'dev', 'flannel-v6.1', 'nud', 'permanent')] == [n2.addr6]
    assert [f['dst'] for f in json.loads(n1.sh('bridge', '-json', 'fdb', 'show', 'dev', 'flannel-v6.1'))] == [n2.ip6]
    assert not any(line.startswith('fd00:20:0:3::') for line in routes6(n1))
    # state=absent: only owned routes and the IPv6 device go
    assert direct_route(n1.run, dict(state='absent', family='ipv6', network=NETWORK6, subnet=n1.sub6))['changed']
    assert vxlan_link(n1.run, dict(state='absent', family='ipv6', vni=1))['changed']
    assert [line for line in routes6(n1) if not line.startswith('fe80::')] == sorted([
        'default via fd53::1 dev eth0 metric 1024 pref medium',
        'fd00:20:0:1::/64 dev cni0 proto kernel metric 256 pref medium',
        'fd00:20:0:99::/64 via fd53::1 dev eth0 metric 1024 pref medium',
        'fd00:99::/64 via fd53::1 dev eth0 metric 1024 pref medium',
        'fd53::/64 dev eth0 proto kernel metric 256 pref medium'])
    assert n1.sh('ip', 'link', 'show', 'flannel-v6.1', check=False) == ''


@pytest.mark.skipif(not shutil.which('ping'), reason='needs ping')
@pytest.mark.parametrize('direct_routing', [False, True])
def test_ping6_across_the_overlay(lab, direct_routing):
    results = [program(lab, name, direct_routing=direct_routing) for name in NODES]
    for name in NODES:
        wait_dad(lab[name])
    n1, n2, n3 = lab['n1'], lab['n2'], lab['n3']
    assert ping6(n1, n1.pod6, n2.pod6) and ping6(n1, n1.pod6, n3.pod6) and ping6(n3, n3.pod6, n2.pod6)
    # the nodes' flannel-v6.1 addresses (n1 <-> n3 always over the VXLAN)
    assert ping6(n1, n1.addr6, n3.addr6) and ping6(n3, n3.addr6, n1.addr6)
    if not direct_routing:
        assert ping6(n1, n1.addr6, n2.addr6)
    rx = int(n3.ipj('-s', 'link', 'show', 'flannel-v6.1')[0]['stats64']['rx']['packets'])
    assert rx > 0   # it did cross the VXLAN
    # a rerun changes nothing
    for name, (r1, r2) in zip(NODES, results):
        assert r1['changed'] and r2['changed']
        again = program(lab, name, direct_routing=direct_routing)
        assert not again[0]['changed'] and not again[1]['changed'], name


@pytest.mark.skipif(not shutil.which('ping'), reason='needs ping')
def test_host_gw6_on_one_segment(lab):
    n1, n2 = lab['n1'], lab['n2']
    for name in ('n1', 'n2'):
        peers = peers_of(lab, name, 'host-gw', ('n1', 'n2'))
        result = direct_route(lab[name].run, route_params(lab, name, backend='host-gw', peers=peers))
        assert result['changed'] and len(result['routes']) == 1
        assert not direct_route(lab[name].run, route_params(lab, name, backend='host-gw', peers=peers))['changed']
    assert 'fd00:20:0:2::/64 via fd53::12 dev eth0 proto 159 metric 1024 pref medium' in routes6(n1)
    assert ping6(n1, n1.pod6, n2.pod6)
    # an off-link peer fails naming it, and nothing changes
    before = routes6(n1)
    with pytest.raises(DataplaneError) as err:
        direct_route(n1.run, route_params(lab, 'n1', backend='host-gw', peers=peers_of(lab, 'n1', 'host-gw')))
    assert 'fd53:1::13' in str(err.value) and 'gateway fd53::1' in str(err.value)
    assert routes6(n1) == before


@pytest.mark.skipif(not shutil.which('ping'), reason='needs ping')
def test_dual_stack_keeps_both_devices(lab):
    """family ipv4 then ipv6 with the same (whole) peers: both devices, both families' routes."""
    for name in NODES:
        for family in ('ipv4', 'ipv6'):
            r1, r2 = program(lab, name, family)
            assert r1['changed'] and r2['changed'] and not r1['removed'], (name, family)
    for name in NODES:
        node = lab[name]
        names = sorted(link['ifname'] for link in node.ipj('-d', 'link', 'show', 'type', 'vxlan'))
        assert names == ['flannel-v6.1', 'flannel.1']
        wait_dad(node)
    n1, n2, n3 = lab['n1'], lab['n2'], lab['n3']
    assert ping4(n1, '172.20.1.1', '172.20.3.1') and ping4(n3, '172.20.3.1', '172.20.2.1')
    assert ping6(n1, n1.pod6, n3.pod6) and ping6(n3, n3.pod6, n2.pod6)
    for name in NODES:
        for family in ('ipv4', 'ipv6'):
            r1, r2 = program(lab, name, family)
            assert not r1['changed'] and not r2['changed'], (name, family)
    # the IPv6 half goes (absent), the IPv4 one stays
    assert direct_route(n1.run, dict(state='absent', family='ipv6', network=NETWORK6, subnet=n1.sub6))['changed']
    assert vxlan_link(n1.run, dict(state='absent', family='ipv6', vni=1))['removed'] == ['flannel-v6.1']
    assert sorted(link['ifname'] for link in n1.ipj('link', 'show', 'type', 'vxlan')) == ['flannel.1']
    assert ping4(n1, '172.20.1.1', '172.20.3.1')


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason='needs the .venv ansible')
def test_modules6_through_ansible(lab):
    """The argument spec: family, and peers with subnet6/public_ip6/vtep_mac6 (IPv6-only ones too)."""
    n1 = lab['n1']
    peers = [lease(lab['n2']), lease(lab['n3'], v4=False)]
    largs = {k: v for k, v in link_params(lab, 'n1', peers=peers).items() if v is not None}
    rargs = {k: v for k, v in route_params(lab, 'n1', peers=peers).items() if v is not None}
    status, res = ansible(n1, 'vxlan_link', largs)
    assert status == 'CHANGED' and res['device'] == 'flannel-v6.1' and len(res['vxlan_peers']) == 2
    status, res = ansible(n1, 'vxlan_link', largs)
    assert status == 'SUCCESS' and res['changed'] is False
    status, res = ansible(n1, 'direct_route', rargs)
    assert status == 'CHANGED' and res['plan'][0].startswith('ip -6 route replace fd00:20:0:2::/64')
    status, res = ansible(n1, 'direct_route', rargs)
    assert status == 'SUCCESS' and res['changed'] is False
    status, res = ansible(n1, 'vxlan_link', dict(largs, peers=[dict(lease(lab['n2']), vtep_mac6='nonsense')]))
    assert status == 'FAILED!' and 'peers[0] (fd53::12) vtep_mac6' in res['msg']
