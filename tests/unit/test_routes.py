# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes: ownership, desired routes, plans (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import Op
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import validate_peers
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import desired_routes, is_owned, observed_route_text, plan_routes, route_text
from ansible_collections.kubeasz.network.tests.unit.netstate import raw, NET, OWN, observed, peer, route, BASE_ROUTES
from ansible_collections.kubeasz.network.tests.unit.netstate import BASE_ROUTES6, NET6, OWN6, observed6, peer6, route6
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import route_key


def test_is_owned():
    assert is_owned(route('172.20.2.0/24', '172.20.2.0', 'flannel.1', onlink=True), NET, OWN, IPV4)
    assert is_owned(route('172.20.2.0/24', '198.18.0.12', proto='159'), NET, OWN, IPV4)
    assert not is_owned(route('172.20.1.0/24', dev='flannel.1'), NET, OWN, IPV4)
    assert not is_owned(route('172.20.99.0/24', '198.18.0.1', proto='boot'), NET, OWN, IPV4)
    assert is_owned(route('10.9.0.0/16', '198.18.0.1', proto='159'), NET, OWN, IPV4)   # ours in any network
    assert not is_owned(route('10.9.0.0/16', '10.9.0.0', 'flannel.1', onlink=True), NET, OWN, IPV4)
    assert not is_owned(route('default', '198.18.0.1', dev='flannel.1'), NET, OWN, IPV4)
    assert is_owned(route('172.20.5.7', '198.18.0.5', proto='159'), NET, OWN, IPV4)


def test_desired_routes_vxlan_and_direct():
    direct = validate_peers([peer(2)], IPV4, NET)
    vxlan = validate_peers([peer(3, '198.18.1.13')], IPV4, NET)
    want = desired_routes('vxlan', direct, vxlan, IPV4, 1)
    assert [route_text(r) for r in want] == [
        '172.20.2.0/24 via 198.18.0.12 proto 159',
        '172.20.3.0/24 via 172.20.3.0 dev flannel.1 onlink proto 159']
    want = desired_routes('host-gw', direct, [], IPV4, iface='eth0')
    assert [route_text(r) for r in want] == ['172.20.2.0/24 via 198.18.0.12 dev eth0 proto 159']


def test_plan_routes_add_then_noop():
    want = desired_routes('vxlan', [], validate_peers([peer(2)], IPV4, NET), IPV4)
    ops = plan_routes(observed(routes=list(BASE_ROUTES)), want, NET, OWN, IPV4)
    assert raw(ops) == [Op('ip', 'route replace 172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink proto 159')]
    now = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)]
    assert plan_routes(observed(routes=now), want, NET, OWN, IPV4) == []


def test_plan_routes_stale_removed_foreign_kept():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True),
                            route('172.20.4.0/24', '172.20.4.0', 'flannel.1', 'boot', onlink=True),
                            route('172.20.5.0/24', '198.18.0.15', proto='159', metric=100)]
    ops = plan_routes(observed(routes=routes), [], NET, OWN, IPV4)
    assert raw(ops) == [Op('ip', 'route del 172.20.2.0/24 via 172.20.2.0 dev flannel.1 table main'),
                        Op('ip', 'route del 172.20.4.0/24 via 172.20.4.0 dev flannel.1 table main'),
                        Op('ip', 'route del 172.20.5.0/24 via 198.18.0.15 dev eth0 metric 100 table main')]


def test_plan_routes_switch_vxlan_to_direct_is_one_replace():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)]
    want = desired_routes('vxlan', validate_peers([peer(2)], IPV4, NET), [], IPV4)
    assert raw(plan_routes(observed(routes=routes), want, NET, OWN, IPV4)) == [
        Op('ip', 'route replace 172.20.2.0/24 via 198.18.0.12 proto 159')]


def test_plan_routes_flanneld_route_taken_over():
    routes = BASE_ROUTES + [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', 'boot', onlink=True)]
    want = desired_routes('vxlan', [], validate_peers([peer(2)], IPV4, NET), IPV4)
    assert raw(plan_routes(observed(routes=routes), want, NET, OWN, IPV4)) == [
        Op('ip', 'route replace 172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink proto 159')]


def test_observed_route_text():
    assert observed_route_text(route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True)) == \
        '172.20.2.0/24 via 172.20.2.0 dev flannel.1 proto 159 onlink'


# ------------------------------------------------------------------ IPv6

def test_is_owned6():
    assert is_owned(route6('fd00:20:0:2::/64', 'fd00:20:0:2::', 'flannel-v6.1', onlink=True), NET6, OWN6, IPV6)
    assert is_owned(route6('fd00:20:0:2::/64', 'fd53::12', proto='159'), NET6, OWN6, IPV6)
    assert is_owned(route6('fd00:20:0:5::7', 'fd53::5', proto='159'), NET6, OWN6, IPV6)
    # the kernel's route of the device's own /128 address, and anything else in the own subnet
    assert not is_owned(route6('fd00:20:0:1::', dev='flannel-v6.1', proto='kernel', metric=256), NET6, OWN6, IPV6)
    assert not is_owned(route6('fd00:20:0:1::/64', dev='cni0', proto='159'), NET6, OWN6, IPV6)
    assert not is_owned(route6('fe80::/64', dev='flannel-v6.1', proto='kernel'), NET6, OWN6, IPV6)
    assert not is_owned(route6('fd00:20:0:99::/64', 'fd53::1', proto='boot'), NET6, OWN6, IPV6)
    assert is_owned(route6('fd00:99::/64', 'fd53::1', proto='159'), NET6, OWN6, IPV6)   # ours in any network
    # the IPv4 device is not the IPv6 call's own
    assert not is_owned(route6('fd00:20:0:2::/64', 'fe80::1', 'flannel.1'), NET6, OWN6, IPV6)


def test_desired_and_planned_routes6():
    direct = validate_peers([peer6(2)], IPV6, NET6)
    vxlan = validate_peers([peer6(3, 'fd53:1::13')], IPV6, NET6)
    want = desired_routes('vxlan', direct, vxlan, IPV6, 1)
    assert [route_text(r) for r in want] == ['fd00:20:0:2::/64 via fd53::12 proto 159',
                                             'fd00:20:0:3::/64 via fd00:20:0:3:: dev flannel-v6.1 onlink proto 159']
    hostgw = desired_routes('host-gw', direct + vxlan, [], IPV6, iface='eth0')
    assert [route_text(r) for r in hostgw] == ['fd00:20:0:2::/64 via fd53::12 dev eth0 proto 159',
                                               'fd00:20:0:3::/64 via fd53:1::13 dev eth0 proto 159']
    ops = plan_routes(observed6(routes=list(BASE_ROUTES6)), want, NET6, OWN6, IPV6)
    assert raw(ops) == [Op('ip', 'route replace ' + route_text(w)) for w in want]
    # as the kernel shows them (metric 1024, dev added to the direct route): in sync
    now = BASE_ROUTES6 + [route6('fd00:20:0:2::/64', 'fd53::12', 'eth0', '159'),
                          route6('fd00:20:0:3::/64', 'fd00:20:0:3::', 'flannel-v6.1', '159', onlink=True)]
    assert plan_routes(observed6(routes=now), want, NET6, OWN6, IPV6) == []
    # a stale owned one goes with its metric; one with a metric of its own is replaced and deleted
    stale = now + [route6('fd00:20:0:4::/64', 'fd00:20:0:4::', 'flannel-v6.1', '159', onlink=True),
                   route6('fd00:20:0:2::/64', 'fd53::12', 'eth0', '159', metric=50)]
    assert raw(plan_routes(observed6(routes=stale), want, NET6, OWN6, IPV6)) == [
        Op('ip', 'route del fd00:20:0:4::/64 via fd00:20:0:4:: dev flannel-v6.1 metric 1024 table main'),
        Op('ip', 'route del fd00:20:0:2::/64 via fd53::12 dev eth0 metric 50 table main')]


def test_route_key_infers_the_family():
    assert route_key({'dst': '172.20.5.7'}, IPV4) == '172.20.5.7/32'
    assert route_key({'dst': 'fd00:20:0:1::'}, IPV6) == 'fd00:20:0:1::/128'
    assert route_key({'dst': 'fd00:20:0:1::/64'}, IPV6) == 'fd00:20:0:1::/64'


def test_plan_routes6_deletes_a_direct_route_before_its_vxlan_route():
    """IPv6 refuses the onlink gateway while the direct route covers it: delete, then add."""
    want = desired_routes('vxlan', [], validate_peers([peer6(2)], IPV6, NET6), IPV6)
    routes = BASE_ROUTES6 + [route6('fd00:20:0:2::/64', 'fd53::12', 'eth0', '159')]
    assert raw(plan_routes(observed6(routes=routes), want, NET6, OWN6, IPV6)) == [
        Op('ip', 'route del fd00:20:0:2::/64 via fd53::12 dev eth0 metric 1024 table main'),
        Op('ip', 'route replace fd00:20:0:2::/64 via fd00:20:0:2:: dev flannel-v6.1 onlink proto 159')]


def test_a_changed_cluster_network_leaves_no_route_of_the_old_one():
    """CLUSTER_CIDR 172.20.0.0/16 -> 172.30.0.0/16 (and the IPv6 twin): every proto 159 route of the
    old network goes, whatever network it was in; foreign routes there stay (issue 24, defect 8)."""
    old4 = [route('172.20.2.0/24', '172.20.2.0', 'flannel.1', '159', onlink=True),
            route('172.20.3.0/24', '198.18.0.13', proto='159'),
            route('172.20.9.0/24', '198.18.0.1', proto='boot')]
    want = desired_routes('vxlan', [], validate_peers([dict(peer(2), subnet='172.30.2.0/24')], IPV4, '172.30.0.0/16'), IPV4)
    ops = plan_routes(observed(routes=BASE_ROUTES + old4), want, '172.30.0.0/16', '172.30.1.0/24', IPV4)
    assert raw(ops) == [Op('ip', 'route del 172.20.2.0/24 via 172.20.2.0 dev flannel.1 table main'),
                        Op('ip', 'route del 172.20.3.0/24 via 198.18.0.13 dev eth0 table main'),
                        Op('ip', 'route replace 172.30.2.0/24 via 172.30.2.0 dev flannel.1 onlink proto 159')]
    old6 = [route6('fd00:20:0:2::/64', 'fd00:20:0:2::', 'flannel-v6.1', '159', onlink=True),
            route6('fd00:20:0:9::/64', 'fd53::1', proto='boot')]
    ops6 = plan_routes(observed6(routes=BASE_ROUTES6 + old6), [], 'fd00:30::/56', 'fd00:30:0:1::/64', IPV6)
    assert raw(ops6) == [Op('ip', 'route del fd00:20:0:2::/64 via fd00:20:0:2:: dev flannel-v6.1 metric 1024 table main')]
