# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel tests for iproute/dataplane and the vxlan_link/direct_route modules.

Every "node" is a throwaway network namespace held by an ``unshare --net sleep``
child; commands enter it with ``nsenter --net=/proc/PID/ns/net``.  A ``fabric``
namespace holds the L2 segments (bridges br0 = 198.18.0.0/24, br1 = 198.18.1.0/24)
and routes between them.  The host's own namespace is never changed; the
fixtures kill every helper process, so nothing persists.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac
from flannel_route_guard import subprocess_runner  # roles/flannel/files, on sys.path (tests/conftest.py)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('nsenter'),
                       reason='needs root, unshare and nsenter'),
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE = os.path.join(REPO, '.venv', 'bin', 'ansible')
NETWORK = '172.20.0.0/16'


class Node:
    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen(['unshare', '--net', 'sleep', 'infinity'])
        self.netns = '/proc/%d/ns/net' % self.proc.pid
        # wait until the child has entered its own namespace
        for dummy in range(200):
            if os.path.exists(self.netns) and os.readlink(self.netns) != os.readlink('/proc/self/ns/net'):
                break
            time.sleep(0.01)
        else:
            raise RuntimeError('namespace of %s did not appear' % name)
        self.prefix = ['nsenter', '--net=%s' % self.netns]
        self.run = subprocess_runner(self.prefix)
        self.ip = self.sub = self.vtep = None

    def sh(self, *argv, **kw):
        """Run argv inside the node; returns stdout (raises on failure unless check=False)."""
        check = kw.pop('check', True)
        proc = subprocess.run(self.prefix + list(argv), capture_output=True, text=True, check=False, **kw)
        if check and proc.returncode != 0:
            raise AssertionError('%s: %s failed: %s' % (self.name, ' '.join(argv), proc.stderr))
        return proc.stdout

    def ipj(self, *argv):
        return json.loads(self.sh('ip', '-json', *argv) or '[]')

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def lab():
    """fabric + n1, n2 on segment 1 and n3 on segment 2 (198.18.1.0/24)."""
    nodes = {}
    try:
        fabric = nodes['fabric'] = Node('fabric')
        fabric.sh('sysctl', '-qw', 'net.ipv4.ip_forward=1')
        for seg in (0, 1):
            fabric.sh('ip', 'link', 'add', 'br%d' % seg, 'type', 'bridge')
            fabric.sh('ip', 'addr', 'add', '198.18.%d.1/24' % seg, 'dev', 'br%d' % seg)
            fabric.sh('ip', 'link', 'set', 'br%d' % seg, 'up')
        for i, seg in ((1, 0), (2, 0), (3, 1)):
            node = nodes['n%d' % i] = Node('n%d' % i)
            node.ip, node.sub = '198.18.%d.%d' % (seg, 10 + i), '172.20.%d.0/24' % i
            node.vtep = vtep_mac(node.ip, 1)
            fabric.sh('ip', 'link', 'add', 'n%d' % i, 'type', 'veth', 'peer', 'name', 'eth0',
                      'netns', str(node.proc.pid))
            fabric.sh('ip', 'link', 'set', 'n%d' % i, 'master', 'br%d' % seg, 'up')
            node.sh('ip', 'link', 'set', 'lo', 'up')
            node.sh('ip', 'addr', 'add', node.ip + '/24', 'dev', 'eth0')
            node.sh('ip', 'link', 'set', 'eth0', 'up')
            node.sh('ip', 'route', 'add', 'default', 'via', '198.18.%d.1' % seg)
            # the "pod side": cni0 with the subnet's first host address
            node.sh('ip', 'link', 'add', 'cni0', 'type', 'bridge')
            node.sh('ip', 'addr', 'add', str(ipaddress.IPv4Network(node.sub)[1]) + '/24', 'dev', 'cni0')
            node.sh('ip', 'link', 'set', 'cni0', 'up')
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def lease(node, backend='vxlan'):
    return {'subnet': node.sub, 'public_ip': node.ip, 'backend_type': backend,
            'vni': 1 if backend == 'vxlan' else None, 'vtep_mac': node.vtep if backend == 'vxlan' else None}


def peers_of(lab, name, backend='vxlan'):
    return [lease(lab[n], backend) for n in ('n1', 'n2', 'n3') if n != name]


def link_params(lab, name, **kw):
    node = lab[name]
    params = dict(state='present', vni=1, port=0, gbp=False, learning=False, mtu=None, iface='eth0',
                  local_ip=None, address=node.sub.split('/')[0], network=NETWORK, mac=None,
                  direct_routing=False, peers=peers_of(lab, name))
    params.update(kw)
    return params


def route_params(lab, name, **kw):
    params = dict(state='present', backend='vxlan', direct_routing=False, vni=1, network=NETWORK,
                  subnet=lab[name].sub, iface=None, peers=peers_of(lab, name))
    params.update(kw)
    return params


def program(lab, name, direct_routing=False):
    node = lab[name]
    r1 = vxlan_link(node.run, link_params(lab, name, direct_routing=direct_routing))
    r2 = direct_route(node.run, route_params(lab, name, direct_routing=direct_routing))
    return r1, r2


def snapshot(node):
    """The configuration-level state (no timers, counters or NUD transitions)."""
    links = [(l['ifname'], l['mtu'], l.get('address'), 'UP' in l['flags'],
              (l.get('linkinfo') or {}).get('info_kind'),
              json.dumps((l.get('linkinfo') or {}).get('info_data'), sort_keys=True)
              if (l.get('linkinfo') or {}).get('info_kind') == 'vxlan' else None)
             for l in node.ipj('-d', 'link', 'show')]
    addrs = sorted((l['ifname'], a['local'], a['prefixlen']) for l in node.ipj('-4', 'addr', 'show')
                   for a in l['addr_info'])
    neigh = [n for n in node.ipj('neigh', 'show') if 'PERMANENT' in n.get('state', [])]
    fdb = json.loads(node.sh('bridge', '-json', 'fdb', 'show') or '[]')
    return {'link': links, 'addr': addrs, 'route': node.ipj('route', 'show', 'table', 'all'),
            'neigh': neigh, 'fdb': fdb}


def routes_text(node):
    return sorted(line.replace(' linkdown', '').strip() for line in node.sh('ip', 'route', 'show').splitlines())


def test_vxlan_device_attributes_and_idempotence(lab):
    n1 = lab['n1']
    result = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert result['changed'] and result['vtep_mac'] == n1.vtep
    (link,) = n1.ipj('-d', 'link', 'show', 'flannel.1')
    data = link['linkinfo']['info_data']
    assert link['linkinfo']['info_kind'] == 'vxlan'
    assert (data['id'], data['local'], data['link'], data['port']) == (1, '198.18.0.11', 'eth0', 8472)
    assert data['learning'] is False and not data.get('gbp') and data['ttl'] == 0
    assert link['mtu'] == 1450 and link['address'] == n1.vtep and 'UP' in link['flags']
    (addr,) = n1.ipj('-4', 'addr', 'show', 'dev', 'flannel.1')
    assert [(a['local'], a['prefixlen']) for a in addr['addr_info']] == [('172.20.1.0', 32)]
    again = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert not again['changed'] and again['plan'] == []
    assert again['diff']['before'] == again['diff']['after']


def test_vxlan_fix_in_place_vs_recreate(lab):
    n1 = lab['n1']
    vxlan_link(n1.run, link_params(lab, 'n1'))
    index = n1.ipj('link', 'show', 'flannel.1')[0]['ifindex']
    n1.sh('ip', 'addr', 'add', '172.20.77.0/32', 'dev', 'flannel.1')
    n1.sh('ip', 'addr', 'add', '10.99.0.1/32', 'dev', 'flannel.1')       # outside the network: kept
    n1.sh('ip', 'link', 'set', 'flannel.1', 'mtu', '1300', 'address', '0e:00:00:00:00:01', 'down')
    n1.sh('ip', 'link', 'set', 'flannel.1', 'type', 'vxlan', 'learning')
    result = vxlan_link(n1.run, link_params(lab, 'n1'))
    assert result['changed'] and 'ip link del flannel.1' not in result['plan']
    (link,) = n1.ipj('-d', 'link', 'show', 'flannel.1')
    assert link['ifindex'] == index and link['mtu'] == 1450 and link['address'] == n1.vtep
    assert link['linkinfo']['info_data']['learning'] is False and 'UP' in link['flags']
    addrs = [a['local'] for a in n1.ipj('-4', 'addr', 'show', 'dev', 'flannel.1')[0]['addr_info']]
    assert sorted(addrs) == ['10.99.0.1', '172.20.1.0']
    result = vxlan_link(n1.run, link_params(lab, 'n1', port=4789, gbp=True))
    assert result['plan'][0] == 'ip link del flannel.1'
    (link,) = n1.ipj('-d', 'link', 'show', 'flannel.1')
    assert link['ifindex'] != index and link['linkinfo']['info_data']['port'] == 4789
    assert link['linkinfo']['info_data'].get('gbp') is True
    # entries were recreated with the device
    assert len(n1.ipj('neigh', 'show', 'dev', 'flannel.1')) == 2
    assert not vxlan_link(n1.run, link_params(lab, 'n1', port=4789, gbp=True))['changed']


def test_tables_exact_with_direct_routing(lab):
    n1, n2, n3 = lab['n1'], lab['n2'], lab['n3']
    n1.sh('ip', 'route', 'add', '172.20.99.0/24', 'via', '198.18.0.1')   # foreign, inside network
    n1.sh('ip', 'route', 'add', '10.96.0.0/12', 'via', '198.18.0.1')     # foreign, outside
    r1, r2 = program(lab, 'n1', direct_routing=True)
    assert [p['public_ip'] for p in r1['direct_peers']] == [n2.ip]
    assert [p['public_ip'] for p in r1['vxlan_peers']] == [n3.ip]
    neigh = n1.ipj('neigh', 'show', 'dev', 'flannel.1')
    assert [(n['dst'], n['lladdr'], n['state']) for n in neigh] == [('172.20.3.0', n3.vtep, ['PERMANENT'])]
    fdb = json.loads(n1.sh('bridge', '-json', 'fdb', 'show', 'dev', 'flannel.1'))
    assert [(f['mac'], f['dst'], f['state']) for f in fdb] == [(n3.vtep, n3.ip, 'permanent')]
    assert routes_text(n1) == sorted([
        'default via 198.18.0.1 dev eth0',
        '10.96.0.0/12 via 198.18.0.1 dev eth0',
        '172.20.1.0/24 dev cni0 proto kernel scope link src 172.20.1.1',
        '172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159',
        '172.20.3.0/24 via 172.20.3.0 dev flannel.1 proto 159 onlink',
        '172.20.99.0/24 via 198.18.0.1 dev eth0',
        '198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.11'])
    # second run: nothing to do
    r1, r2 = program(lab, 'n1', direct_routing=True)
    assert not r1['changed'] and not r2['changed']
    # switch DirectRouting off: n2 moves to the vxlan path, nothing stale is left
    r1, r2 = program(lab, 'n1', direct_routing=False)
    assert r1['changed'] and r2['changed']
    assert len(n1.ipj('neigh', 'show', 'dev', 'flannel.1')) == 2
    assert '172.20.2.0/24 via 172.20.2.0 dev flannel.1 proto 159 onlink' in routes_text(n1)
    # n3 leaves the cluster: its neighbour, FDB entry and route go, foreign routes stay
    params = link_params(lab, 'n1', peers=[lease(n2)])
    assert vxlan_link(n1.run, params)['changed']
    assert direct_route(n1.run, route_params(lab, 'n1', peers=[lease(n2)]))['changed']
    assert [n['dst'] for n in n1.ipj('neigh', 'show', 'dev', 'flannel.1')] == ['172.20.2.0']
    fdb = json.loads(n1.sh('bridge', '-json', 'fdb', 'show', 'dev', 'flannel.1'))
    assert [f['dst'] for f in fdb] == [n2.ip]
    text = routes_text(n1)
    assert not any(line.startswith('172.20.3.0') for line in text)
    assert '172.20.99.0/24 via 198.18.0.1 dev eth0' in text and '10.96.0.0/12 via 198.18.0.1 dev eth0' in text
    # state=absent: only owned routes and the device go
    assert direct_route(n1.run, dict(state='absent', network=NETWORK, subnet=n1.sub))['changed']
    assert vxlan_link(n1.run, dict(state='absent', vni=1))['changed']
    assert routes_text(n1) == sorted([
        'default via 198.18.0.1 dev eth0', '10.96.0.0/12 via 198.18.0.1 dev eth0',
        '172.20.1.0/24 dev cni0 proto kernel scope link src 172.20.1.1',
        '172.20.99.0/24 via 198.18.0.1 dev eth0',
        '198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.11'])
    assert n1.sh('ip', 'link', 'show', 'flannel.1', check=False) == ''


def test_check_mode_changes_nothing(lab):
    n1 = lab['n1']
    before = snapshot(n1)
    r1 = vxlan_link(n1.run, link_params(lab, 'n1'), check_mode=True)
    assert r1['changed'] and r1['plan']
    assert snapshot(n1) == before
    vxlan_link(n1.run, link_params(lab, 'n1'))
    before = snapshot(n1)
    r2 = direct_route(n1.run, route_params(lab, 'n1'), check_mode=True)
    assert r2['changed'] and len(r2['plan']) == 2
    r3 = vxlan_link(n1.run, link_params(lab, 'n1', mtu=1400, peers=[]), check_mode=True)
    assert r3['changed']
    assert snapshot(n1) == before


def test_host_gw_off_link_fails_and_changes_nothing(lab):
    n1, n2 = lab['n1'], lab['n2']
    n1.sh('ip', 'route', 'add', '172.20.50.0/24', 'via', '198.18.0.50', 'proto', '159')  # stale, owned
    before = snapshot(n1)
    with pytest.raises(DataplaneError) as err:
        direct_route(n1.run, route_params(lab, 'n1', backend='host-gw', peers=peers_of(lab, 'n1', 'host-gw')))
    assert '198.18.1.13' in str(err.value) and '172.20.3.0/24' in str(err.value)
    assert 'gateway 198.18.0.1' in str(err.value)
    assert snapshot(n1) == before
    # the on-link peer alone works, and the stale owned route goes
    result = direct_route(n1.run, route_params(lab, 'n1', backend='host-gw', peers=[lease(n2, 'host-gw')]))
    assert result['routes'] == [{'dst': '172.20.2.0/24', 'gateway': '198.18.0.12', 'dev': 'eth0', 'onlink': False}]
    assert '172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159' in routes_text(n1)
    assert not any(line.startswith('172.20.50.0') for line in routes_text(n1))


def ping(node, src, dst):
    proc = subprocess.run(node.prefix + ['ping', '-c', '1', '-W', '2', '-I', src, dst],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0


@pytest.mark.skipif(not shutil.which('ping'), reason='needs ping')
@pytest.mark.parametrize('direct_routing', [False, True])
def test_ping_across_the_overlay(lab, direct_routing):
    for name in ('n1', 'n2', 'n3'):
        program(lab, name, direct_routing=direct_routing)
    assert ping(lab['n1'], '172.20.1.1', '172.20.2.1')
    assert ping(lab['n1'], '172.20.1.1', '172.20.3.1')
    assert ping(lab['n3'], '172.20.3.1', '172.20.2.1')


@pytest.mark.skipif(not shutil.which('ping') or not shutil.which('tcpdump'), reason='needs tcpdump')
def test_host_gw_ping_on_one_segment(lab):
    for name in ('n1', 'n2'):
        peer = 'n2' if name == 'n1' else 'n1'
        direct_route(lab[name].run, route_params(lab, name, backend='host-gw',
                                                 peers=[lease(lab[peer], 'host-gw')]))
    assert ping(lab['n1'], '172.20.1.1', '172.20.2.1')


# ------------------------------------------------------ the modules through ansible

def ansible(node, module, args, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
               ANSIBLE_DEPRECATION_WARNINGS='False', ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='False')
    argv = node.prefix + [ANSIBLE, 'localhost', '-o', '-m', 'kubeasz.network.' + module,
                          '-a', json.dumps(args), '-e', 'ansible_python_interpreter=%s' % sys.executable
                          ] + list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120, check=False)
    match = re.search(r'^localhost \| (\w+!?) => (\{.*\})\s*$', proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return match.group(1), json.loads(match.group(2))


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason='needs the .venv ansible')
def test_modules_through_ansible(lab):
    n1 = lab['n1']
    largs = {k: v for k, v in link_params(lab, 'n1').items() if v is not None}
    rargs = {k: v for k, v in route_params(lab, 'n1').items() if v is not None}
    status, res = ansible(n1, 'vxlan_link', largs, '--check')
    assert status == 'CHANGED' and res['changed'] and n1.sh('ip', 'link', 'show', 'flannel.1', check=False) == ''
    status, res = ansible(n1, 'vxlan_link', largs)
    assert status == 'CHANGED' and res['vtep_mac'] == n1.vtep and len(res['vxlan_peers']) == 2
    status, res = ansible(n1, 'vxlan_link', largs)
    assert status == 'SUCCESS' and res['changed'] is False
    status, res = ansible(n1, 'direct_route', rargs)
    assert status == 'CHANGED' and len(res['routes']) == 2
    status, res = ansible(n1, 'direct_route', rargs)
    assert status == 'SUCCESS' and res['changed'] is False
    before = snapshot(n1)
    bad = dict(rargs, backend='host-gw', peers=peers_of(lab, 'n1', 'host-gw'))
    status, res = ansible(n1, 'direct_route', bad)
    assert status == 'FAILED!' and '198.18.1.13' in res['msg'] and 'nothing was changed' in res['msg']
    bad = dict(largs, peers=[dict(lease(lab['n2']), vtep_mac='nonsense')])
    status, res = ansible(n1, 'vxlan_link', bad)
    assert status == 'FAILED!' and 'peers[0] (198.18.0.12) vtep_mac' in res['msg']
    assert snapshot(n1) == before
