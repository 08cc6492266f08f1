# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Neighbour and FDB entries on flannel.<VNI> (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import Op
from ansible_collections.kubeasz.network.plugins.module_utils.plan.neighfdb import plan_vxlan_peers
from ansible_collections.kubeasz.network.plugins.module_utils.plan.peers import validate_peers
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac
from ansible_collections.kubeasz.network.tests.unit.netstate import raw, NET, MAC2, MAC3, observed, peer, neigh, fdb
from ansible_collections.kubeasz.network.tests.unit.netstate import MAC62, MAC63, NET6, peer6


def test_plan_peers_fresh_order():
    peers = validate_peers([peer(3), peer(2)], IPV4, NET)
    ops = plan_vxlan_peers(observed(), 'flannel.1', peers, IPV4)
    assert raw(ops) == [
        Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2),
        Op('ip', 'neigh replace 172.20.3.0 lladdr %s dev flannel.1 nud permanent' % vtep_mac('198.18.0.13', 1)),
        Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.12 self permanent' % MAC2),
        Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.13 self permanent' % vtep_mac('198.18.0.13', 1))]
    assert len(iproute.batches(ops)) == 2


def test_plan_peers_in_sync_and_stale_removed_only_on_device():
    peers = validate_peers([peer(2)], IPV4, NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC2), neigh('172.20.9.0', MAC3),
                          neigh('172.20.8.0', MAC3, state='STALE'),
                          neigh('198.18.0.1', MAC3, dev='eth0'), neigh('fe80::1', MAC3)],
                   fdb=[fdb(MAC2, '198.18.0.12'), fdb(MAC3, '198.18.1.13'),
                        fdb('33:33:00:00:00:01', None, dev='eth0')])
    ops = plan_vxlan_peers(obs, 'flannel.1', peers, IPV4)
    assert raw(ops) == [Op('ip', 'neigh del 172.20.9.0 dev flannel.1'),
                        Op('bridge', 'fdb del %s dev flannel.1 dst 198.18.1.13 self' % MAC3)]


def test_plan_peers_changed_mac_and_ip():
    peers = validate_peers([peer(2)], IPV4, NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC3)], fdb=[fdb(MAC2, '198.18.0.77')])
    ops = plan_vxlan_peers(obs, 'flannel.1', peers, IPV4)
    assert raw(ops) == [Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2),
                        Op('bridge', 'fdb del %s dev flannel.1 dst 198.18.0.77 self' % MAC2),
                        Op('bridge', 'fdb replace %s dev flannel.1 dst 198.18.0.12 self permanent' % MAC2)]


def test_plan_peers_nonpermanent_entry_replaced():
    peers = validate_peers([peer(2)], IPV4, NET)
    obs = observed(neigh=[neigh('172.20.2.0', MAC2, state='REACHABLE')], fdb=[fdb(MAC2, '198.18.0.12')])
    assert raw(plan_vxlan_peers(obs, 'flannel.1', peers, IPV4)) == [
        Op('ip', 'neigh replace 172.20.2.0 lladdr %s dev flannel.1 nud permanent' % MAC2)]


# ------------------------------------------------------------------ IPv6

def test_plan_peers6_fresh_and_stale():
    peers = validate_peers([peer6(3, 'fd53:1::13'), peer6(2), peer(4)], IPV6, NET6)
    assert [p.subnet for p in peers] == ['fd00:20:0:3::/64', 'fd00:20:0:2::/64']   # peer(4): no IPv6
    ops = plan_vxlan_peers({}, 'flannel-v6.1', peers, IPV6, True)
    assert raw(ops) == [
        Op('ip', 'neigh replace fd00:20:0:2:: lladdr %s dev flannel-v6.1 nud permanent' % MAC62),
        Op('ip', 'neigh replace fd00:20:0:3:: lladdr %s dev flannel-v6.1 nud permanent' % MAC63),
        Op('bridge', 'fdb replace %s dev flannel-v6.1 dst fd53::12 self permanent' % MAC62),
        Op('bridge', 'fdb replace %s dev flannel-v6.1 dst fd53:1::13 self permanent' % MAC63)]
    assert iproute.op_text(ops[:1], IPV6) == [
        'ip -6 neigh replace fd00:20:0:2:: lladdr %s dev flannel-v6.1 nud permanent' % MAC62]
    # in sync (the kernel's text), plus a stale neighbour and FDB entry, and an IPv4 row to ignore
    obs = {'neigh': [neigh('fd00:20:0:2::', MAC62, 'flannel-v6.1'), neigh('fd00:20:0:3::', MAC63, 'flannel-v6.1'),
                     neigh('fd00:20:0:9::', MAC2, 'flannel-v6.1'), neigh('172.20.9.0', MAC2, 'flannel-v6.1')],
           'fdb': [fdb(MAC62, 'fd53::12', 'flannel-v6.1'), fdb(MAC63, 'fd53:1::13', 'flannel-v6.1'),
                   fdb(MAC2, 'fd53::99', 'flannel-v6.1')]}
    assert raw(plan_vxlan_peers(obs, 'flannel-v6.1', peers, IPV6)) == [
        Op('ip', 'neigh del fd00:20:0:9:: dev flannel-v6.1'),
        Op('bridge', 'fdb del %s dev flannel-v6.1 dst fd53::99 self' % MAC2)]
