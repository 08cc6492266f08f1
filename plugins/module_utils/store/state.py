# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel_subnet's one state machine (present / query / absent), for every ``LeaseStore``.

Standard library only: imported on the managed node and on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift_of_diffs
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, node_addresses
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import families_compatible, split_peers
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import leases_of, store_diff


def lease_state(store, state, netconf, facts, env, config=None, check_mode=False, peers_after_run=None):
    """flannel_subnet's one state machine, for any ``LeaseStore``.

    present: acquire (or keep) the node's lease, then ``env(lease)`` writes subnet.env;
    query: the node's lease and the peers, nothing changes;
    absent: release the node's leases, then ``env(None)`` removes subnet.env.
    facts: the node's facts, the flat dict of the module's result (``public_ip``, with IPv6
    ``public_ip6`` (``public_ip`` None for IPv6-only); with present also ``backend_type``, ``vni``,
    ``vtep_mac``, ``vtep_mac6``, ``previous_subnet``, ``previous_subnet6``), turned here into the
    node's addresses and its ``Claim`` by family; env returns (changed, diffs, facts to report).
    ``peers_after_run`` (default: check mode): the peers as they will be once every node ran.
    Returns the module result, with ``warnings``. The file store is locked around its
    read-modify-write, not around ``env``.
    """
    addresses = node_addresses(facts)
    result = dict(facts, changed=False, lease=None)
    if state == 'query':
        with store.locked(shared=True, create=False):
            leases, warnings = store.leases()
    elif state == 'absent':
        with store.locked(create=not check_mode):
            gone, result['changed'] = store.release(addresses, check_mode=check_mode)
            leases, warnings = store.leases()
        leases = [lease for lease in leases if lease not in gone]
        changed, diffs, more = env(None)
        before = {'config': None, 'leases': dict((g.key, json.loads(g.to_store()[1])) for g in gone)}
        result.update(more, subnet_env={}, lease=gone[0].as_peer() if gone else None,
                      diff=[store_diff(store.label, before, {}, addresses)] + diffs)
        result.update((fam.public_ip_key, ip) for fam, ip in addresses.items())
        result.setdefault('public_ip', None)
    else:
        with store.locked(create=not check_mode):
            lease, result['changed'], warnings, before, after = store.acquire(
                netconf, Claim.of_facts(facts), config=config, check_mode=check_mode)
        leases = leases_of(after)
        changed, diffs, more = env(lease)
        result.update(more, lease=lease.as_peer(),
                      diff=[store_diff(store.label, before, after, addresses)] + diffs)
    own, peers, skipped = split_peers(leases, addresses, netconf)
    if (check_mode if peers_after_run is None else peers_after_run) and netconf is not None and state != 'absent':
        # the real run's peers hold the new backend once every node has run: so plan with them
        peers = [peer.after_run(netconf.backend) if families_compatible(netconf, peer) else peer for peer in peers]
    if state == 'query':
        result['lease'] = own.as_peer() if own else None
    else:
        result['changed'] = bool(result['changed'] or changed)
    result.update(peers=[peer.as_peer() for peer in peers], warnings=list(warnings) + skipped,
                  drift=drift_of_diffs(result.get('diff') or []) if check_mode and result['changed'] else [])
    return result
