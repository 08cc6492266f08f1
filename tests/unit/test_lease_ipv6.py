"""The lease model with IPv6: dual-stack and IPv6-only leases, flannel's keys and JSON."""

import json

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeasePart
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    Lease, LeaseError, check_node_ip, subnet_key, subnets_from_key, vtep_mac)

MAC, MAC6 = '0e:00:00:00:00:01', '0e:00:00:00:00:02'


def dual(**kw):
    args = dict(subnet='172.20.1.0/24', public_ip='198.18.0.11', backend_type='vxlan', vni=1,
                vtep_mac=MAC, subnet6='fd00:20:0:1::/64', public_ip6='fd53:18:0:1::11', vtep_mac6=MAC6)
    args.update(kw)
    return Lease.make(args['backend_type'], args['vni'], {
        IPV4: LeasePart(args['subnet'], args['public_ip'], args['vtep_mac']),
        IPV6: LeasePart(args['subnet6'], args['public_ip6'], args['vtep_mac6'])})


def test_ipv6_text_is_rfc5952():
    assert ipv6.ip_text(ipv6.parse_ip('FD00:0020:0000:0001:0000:0000:0000:0000')) == 'fd00:20:0:1::'
    assert ipv6.parse_cidr('fd00:20:0:1::/64') == ((ipv6.parse_ip('fd00:20:0:1::'), 64), 'fd00:20:0:1::/64')
    with pytest.raises(ValueError, match='host bits'):
        ipv6.parse_net('fd00:20::1/64')


def test_dual_stack_store_format_is_flannels():
    key, value = dual().to_store()
    assert key == '172.20.1.0-24&fd00:20:0:1::-64'
    assert json.loads(value) == {
        'PublicIP': '198.18.0.11', 'PublicIPv6': 'fd53:18:0:1::11', 'BackendType': 'vxlan',
        'BackendData': {'VNI': 1, 'VtepMAC': MAC}, 'BackendV6Data': {'VNI': 1, 'VtepMAC': MAC6}}
    assert Lease.from_store(key, value) == dual()


def test_host_gw_and_ipv6_only():
    hg = dual(backend_type='host-gw')
    assert 'BackendV6Data' not in hg.to_store()[1] and hg.vtep_mac6 is None
    only6 = Lease.make('vxlan', 1, {IPV4: LeasePart(None, None, None), IPV6: LeasePart('fd00:20:0:1::/64', 'fd53:18:0:1::11', MAC6)})
    assert only6.key == 'fd00:20:0:1::-64' and only6.families == ('ipv6',)
    assert only6.view(IPV4) is None
    assert Lease.from_store(*only6.to_store()) == only6


def test_view_is_one_family_in_ipv4_names():
    v6 = dual().view(IPV6)
    assert (v6.subnet, v6.public_ip, v6.vtep_mac, v6.subnet6) == (
        'fd00:20:0:1::/64', 'fd53:18:0:1::11', MAC6, None)
    assert dual().view(IPV4) == Lease('172.20.1.0/24', '198.18.0.11', 'vxlan', 1, MAC)
    peer, net = Lease.parse_peer(dual().as_peer(), family=IPV6)
    assert peer == dual() and net == ipv6.parse_net('fd00:20:0:1::/64')


@pytest.mark.parametrize('key', ['172.20.1.0-24&fd00:20:0:1:0::-64', 'fd00:20::1-64', '&', ''])
def test_bad_keys(key):
    with pytest.raises(LeaseError):
        subnets_from_key(key)


def test_keys_round_trip():
    assert subnets_from_key('172.20.1.0-24&fd00:20:0:1::-64') == ('172.20.1.0/24', 'fd00:20:0:1::/64')
    assert subnet_key('172.20.1.0/24', 'fd00:20:0:1::/64') == '172.20.1.0-24&fd00:20:0:1::-64'


@pytest.mark.parametrize('addr, why', [('fe80::1', 'link-local'), ('ff02::1', 'multicast'),
                                       ('::1', 'loopback'), ('198.18.0.1', 'not an IPv6')])
def test_bad_node_ipv6(addr, why):
    with pytest.raises(LeaseError, match=why):
        check_node_ip(addr, 'public_ip6', IPV6)


def test_missing_ipv6_parts_are_named():
    with pytest.raises(LeaseError, match='needs public_ip6'):
        dual(public_ip6=None)
    with pytest.raises(LeaseError, match='needs vtep_mac6'):
        dual(vtep_mac6=None)


def test_after_run_gives_both_macs():
    switched = dual(backend_type='host-gw').after_run(type('B', (), {'type': 'vxlan', 'vni': 2})())
    assert switched.vtep_mac == vtep_mac('198.18.0.11', 2)
    assert switched.vtep_mac6 == vtep_mac('fd53:18:0:1::11', 2)
