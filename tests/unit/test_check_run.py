# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode of a whole run previews every node's run from the leases all nodes will hold
(file store: the run's private copy of the lease file; issue 24, defect 9)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, NodePart
from ansible_collections.kubeasz.network.plugins.action.flannel_subnet import RunCopy
from ansible_collections.kubeasz.network.plugins.module_utils.store.filestore import FileStore
from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf

NETCONF = parse_net_conf({'Network': '172.20.0.0/16', 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}})


def facts(i):
    ip = '198.18.0.%d' % (10 + i)
    return dict(public_ip=ip, backend_type='vxlan', vni=1, vtep_mac=vtep_mac(ip, 1))


def preview(store, i, state='present'):
    return lease_state(store, state, NETCONF, facts(i), lambda lease: (False, [], {}), None, check_mode=True)


def test_each_node_of_a_check_run_is_planned_with_the_others_leases(tmp_path):
    real = FileStore(str(tmp_path / 'flannel-leases.json'))
    before = None
    seen = []
    for i in (1, 2, 3):   # one RunCopy per task and host, as the action plugin makes them
        out = preview(RunCopy(real, 4242, str(tmp_path)), i)
        assert out['changed'] and out['diff'][0]['before'] == ''
        seen.append(out['lease']['subnet'])
        assert [p['subnet'] for p in out['peers']] == seen[:-1]
    assert seen == ['172.20.1.0/24', '172.20.2.0/24', '172.20.3.0/24']
    assert read(real) == before   # the real file is not made


def test_a_released_peer_is_gone_for_the_others_of_the_run_and_kept_leases_are_no_change(tmp_path):
    real = FileStore(str(tmp_path / 'flannel-leases.json'))
    for i in (1, 2, 3):
        with real.locked():
            real.acquire(NETCONF, Claim('vxlan', 1, {IPV4: NodePart(facts(i)['public_ip'], facts(i)['vtep_mac'])}))
    stored = read(real)
    gone = preview(RunCopy(real, 4243, str(tmp_path)), 2, state='absent')
    assert gone['changed']
    out = preview(RunCopy(real, 4243, str(tmp_path)), 1)
    assert not out['changed'] and [p['public_ip'] for p in out['peers']] == ['198.18.0.13']
    assert read(real) == stored


def test_copies_of_runs_that_ended_are_removed(tmp_path):
    real = FileStore(str(tmp_path / 'flannel-leases.json'))
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True,
                          text=True, check=True).stdout.strip()
    old = RunCopy(real, int(dead), str(tmp_path))
    mine = RunCopy(real, os.getpid(), str(tmp_path))
    assert not os.path.exists(old.path) and os.path.exists(mine.path)
    assert RunCopy(real, os.getpid() + 0, str(tmp_path)).path == mine.path


def read(store):
    try:
        with open(store.path) as handle:
            return json.load(handle)
    except OSError:
        return None
