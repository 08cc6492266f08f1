# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-peer entries on ``flannel.<VNI>``: the permanent neighbour (peer subnet .0 ->
VtepMAC) and FDB (VtepMAC -> peer node IP) entries, planned from the 'neigh' and
'fdb' tables of ``iproute.observe()``; IPv6 (``family``): the same on ``flannel-v6.<VNI>`` from
the peers' IPv6 views (subnet6 network address -> vtep_mac6 -> public_ip6).  Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import FdbDel, FdbReplace, NeighDel, NeighReplace


def _is_permanent(entry):
    state = entry.get('state')
    if state == 'permanent' or state == ['PERMANENT']:
        return True  # bridge -json / ip -json: the common cases, without a loop
    states = state if isinstance(state, list) else [state]
    return any(str(s).upper() == 'PERMANENT' for s in states if s)


def device_neighbours(observed, dev, family):
    """{ip: lladdr} of the permanent IPv4 (IPv6) neighbours on dev (rows without 'dev'
    come from ``ip neigh show dev <dev>`` and belong to it; an IPv4 table read without a family
    has both, so the family's mark in the address text picks its own)."""
    mark = family.addr_mark
    return dict((n['dst'], (n.get('lladdr') or '').lower()) for n in observed.get('neigh') or []
                if n.get('dev', dev) == dev and mark in n.get('dst', '') and _is_permanent(n))


def device_fdb(observed, dev):
    """Set of (mac, dst) permanent FDB entries on dev."""
    return set(((f.get('mac') or '').lower(), f.get('dst')) for f in observed.get('fdb') or []
               if f.get('ifname', dev) == dev and _is_permanent(f))


def wanted_entries(peers):
    """({neighbour ip: mac}, {(mac, node ip)}) for the vxlan peers (validated Peers)."""
    neigh = dict((p.subnet.partition('/')[0], p.vtep_mac) for p in peers)
    return neigh, set((p.vtep_mac, p.public_ip) for p in peers)


def plan_vxlan_peers(observed, dev, peers, family, fresh=False):
    """neigh/FDB ops for the vxlan peers (views of ``family``); stale permanent entries of the
    family on dev removed. ip ops (neighbours) come before bridge ops (FDB): one process each."""
    have_neigh = {} if fresh else device_neighbours(observed, dev, family)
    have_fdb = set() if fresh else device_fdb(observed, dev)
    want_neigh, want_fdb = wanted_entries(peers)
    ops = [NeighDel(ip, dev) for ip in sorted(have_neigh, key=family.ip_key) if ip not in want_neigh]
    ops += [NeighReplace(ip, mac, dev) for ip, mac in sorted_items(want_neigh, family) if have_neigh.get(ip) != mac]
    ops += [FdbDel(mac, dev, dst) for mac, dst in sorted_fdb(have_fdb - want_fdb, family)]
    ops += [FdbReplace(mac, dev, dst) for mac, dst in sorted_fdb(want_fdb - have_fdb, family)]
    return ops


def sorted_fdb(entries, family):
    ip_key = family.ip_key
    return sorted(entries, key=lambda e: (ip_key(e[1]), e[0]))


def sorted_items(mapping, family):
    ip_key = family.ip_key
    return sorted(mapping.items(), key=lambda kv: ip_key(kv[0]))


def entries_text(neigh, fdb, dev, family):
    lines = ['neigh %s lladdr %s dev %s nud permanent' % (ip, mac, dev) for ip, mac in sorted_items(neigh, family)]
    lines += ['fdb %s dev %s dst %s self permanent' % (mac, dev, dst) for mac, dst in sorted_fdb(fdb, family)]
    return lines
