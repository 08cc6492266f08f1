# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer validation and the direct/vxlan decision (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import classify_peers, decide_direct, on_link, validate_peers
from ansible_collections.kubeasz.network.tests.unit.netstate import NET, OWN, peer, LOOKUPS
from ansible_collections.kubeasz.network.tests.unit.netstate import FakeKernel, LOOKUPS6, NET6, OWN6, peer6


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
    with pytest.raises(DataplaneError, match=message):
        validate_peers([raw], IPV4, NET, OWN)


def test_validate_peers_refuses_a_shared_vtep_mac():
    twin = dict(peer(3), vtep_mac=peer(2)['vtep_mac'])
    with pytest.raises(DataplaneError, match=r'peers\[1\] \(198.18.0.13\) vtep_mac: .* is also the '
                       r'VtepMAC of peers\[0\] \(198.18.0.12\)'):
        validate_peers([peer(2), twin], IPV4, NET, OWN)


def test_validate_peers_overlaps():
    with pytest.raises(DataplaneError, match=r'peers\[1\].*overlaps peers\[0\]'):
        validate_peers([peer(2), peer(2, '198.18.0.40')], IPV4, NET, OWN)
    with pytest.raises(DataplaneError, match="overlaps this node's subnet"):
        validate_peers([peer(1)], IPV4, NET, OWN)
    with pytest.raises(DataplaneError, match='must be a dict'):
        validate_peers(['x'], IPV4, NET)


def test_validate_peers_normalises():
    raw = peer(2)
    raw['vtep_mac'] = raw['vtep_mac'].upper()
    (p,) = validate_peers([raw], IPV4, NET, OWN)
    assert p.vtep_mac == raw['vtep_mac'].lower() and p.subnet == '172.20.2.0/24'


# ---------------------------------------------------------- classification

def test_classify_peers_direct_routing_rule():
    peers = validate_peers([peer(2), peer(3, '198.18.1.13'), peer(4, '198.18.0.14')], IPV4, NET)
    lookups = {'198.18.0.12': [{'dst': '198.18.0.12', 'dev': 'eth0'}],
               '198.18.1.13': [{'dst': '198.18.1.13', 'gateway': '198.18.0.1', 'dev': 'eth0'}],
               '198.18.0.14': [{'dst': '198.18.0.14', 'dev': 'eth0'}, {'dst': '198.18.0.14', 'dev': 'eth1'}]}
    direct, vxlan = classify_peers(peers, lookups, direct_routing=True)
    assert [p.public_ip for p in direct] == ['198.18.0.12']
    assert [p.public_ip for p in vxlan] == ['198.18.1.13', '198.18.0.14']
    direct, vxlan = classify_peers(peers, lookups, direct_routing=False)
    assert direct == [] and len(vxlan) == 3


def test_on_link_reasons():
    assert on_link([{'dev': 'eth0'}]) is None
    assert 'gateway' in on_link([{'dev': 'eth0', 'gateway': '1.2.3.4'}])
    assert on_link([]) == 'no route to it'
    assert 'not eth0' in on_link([{'dev': 'eth1'}], 'eth0')
    assert 'local' in on_link([{'dev': 'lo', 'type': 'local'}])


def test_classify_accepts_peer_dicts():
    direct, vxlan = classify_peers([peer(2)], LOOKUPS, True)
    assert direct == [peer(2)] and vxlan == []


def test_decide_direct_takes_a_given_decision_without_lookups():
    peers = validate_peers([peer(2), peer(3, '198.18.1.13')], IPV4, NET)
    calls = []

    def run(argv, data=None):
        calls.append(argv)
        return 0, '', ''
    direct, vxlan = decide_direct(run, peers, True, IPV4, [peer(3, '198.18.1.13')])
    assert [p.public_ip for p in direct] == ['198.18.1.13'] and [p.public_ip for p in vxlan] == ['198.18.0.12']
    assert decide_direct(run, peers, False, IPV4, [peer(2)]) == ([], peers) and calls == []


# ------------------------------------------------------------------ IPv6

def test_validate_peers6_views_skips_and_wholes():
    raws = [peer6(2), peer(3), peer6(4, v4=False)]
    wholes = {}
    views = validate_peers(raws, IPV6, NET6, OWN6, wholes)
    assert [(v.subnet, v.public_ip) for v in views] == [('fd00:20:0:2::/64', 'fd53::12'), ('fd00:20:0:4::/64', 'fd53::14')]
    assert wholes[views[0]].subnet == '172.20.2.0/24' and wholes[views[1]].subnet is None
    # the IPv4 call: the IPv6-only peer is skipped, the dual-stack one is its IPv4 view
    v4 = validate_peers(raws, IPV4, NET, OWN, {})
    assert [v.subnet for v in v4] == ['172.20.2.0/24', '172.20.3.0/24'] and v4[0].subnet6 is None


@pytest.mark.parametrize('bad, message', [
    ({'subnet6': 'fd00:20:0:2::1/64'}, r'peers\[0\] \(fd53::12\) subnet6.*not an IPv6 network'),
    ({'subnet6': 'fd00:30::/64'}, r'subnet6: fd00:30::/64 is not inside the cluster network fd00:20::/56'),
    ({'subnet6': 'fd00:20:0:1::/64'}, r"subnet6: fd00:20:0:1::/64 overlaps this node's subnet fd00:20:0:1::/64"),
    ({'public_ip6': 'fe80::12'}, 'public_ip6: fe80::12 is a link-local address'),
    ({'public_ip6': None}, 'needs public_ip6'),
    ({'vtep_mac6': None}, 'needs vtep_mac6'),
    ({'public_ip': 'x'}, r'public_ip.*not an IPv4 address')])   # the other family is validated too
def test_validate_peers6_refuses(bad, message):
    raw = peer6(2)
    raw.update(bad)
    with pytest.raises(DataplaneError, match=message):
        validate_peers([raw], IPV6, NET6, OWN6)


def test_validate_peers6_overlaps_and_macs():
    twin = peer6(3, 'fd53::13')
    twin['vtep_mac6'] = peer6(2)['vtep_mac6']
    with pytest.raises(DataplaneError, match=r'peers\[1\] \(fd53::13\) vtep_mac6: .* also the VtepMAC of peers\[0\]'):
        validate_peers([peer6(2), twin], IPV6, NET6)
    other = peer6(3, 'fd53::13')
    other['subnet6'] = 'fd00:20:0:2::/64'
    with pytest.raises(DataplaneError, match=r'peers\[1\] \(fd53::13\) subnet6: fd00:20:0:2::/64 overlaps peers\[0\]'):
        validate_peers([peer6(2), other], IPV6, NET6)


def test_decide_direct6():
    peers = validate_peers([peer6(2), peer6(3, 'fd53:1::13')], IPV6, NET6)
    kernel = FakeKernel({}, LOOKUPS6)
    direct, vxlan = decide_direct(kernel, peers, True, IPV6)
    assert [p.public_ip for p in direct] == ['fd53::12'] and [p.public_ip for p in vxlan] == ['fd53:1::13']
    assert kernel.calls[0][:5] == ['ip', '-6', '-force', '-json', '-batch']
    # given: whole peer dicts, matched by public_ip6
    kernel = FakeKernel({})
    assert decide_direct(kernel, peers, True, IPV6, [peer6(3, 'fd53:1::13')]) == (peers[1:], peers[:1])
    assert kernel.calls == []
