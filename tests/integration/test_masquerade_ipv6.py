# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traffic_rules family=ipv6 in the real kernel: flanneld's ip6tables / ``ip6 flannel-ipv6`` rules.

Three throwaway network namespaces (``unshare --net sleep`` children, entered with nsenter):
``node`` (eth0 fd53::11/64 on the fabric, veth to the pod, forwarding on), ``pod``
(fd00:20:0:1::2/64, default route via the node) and ``outside`` (fd53::1/64, no route to the pod
network). The outside answers the pod's ping only when the node masquerades it. The module runs
through ``ansible localhost`` inside the node; the node's IPv4 rules (made by a family=ipv4 run)
and a foreign ip6tables rule must not move. The host's own namespace is never changed, only
read (its rule sets are compared before and after).
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.kubeasz.network.tests.integration.test_modules_netns import ANSIBLE, Node

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in (
        'unshare', 'nsenter', 'ip6tables', 'ip6tables-save', 'ip6tables-restore', 'iptables-save', 'nft')),
        reason='needs root, unshare, nsenter, ip6tables and nft'),
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET6, OWN6, NET4, OWN4 = 'fd00:20::/56', 'fd00:20:0:1::/64', '172.20.0.0/16', '172.20.1.0/24'
POD6, NODE6, OUTSIDE6 = 'fd00:20:0:1::2', 'fd53::11', 'fd53::1'
FOREIGN6 = '-s fd99::/64 -o eth0 -j MASQUERADE'
MASQ, FWD = '-m comment --comment "flanneld masq"', '-m comment --comment "flanneld forward"'


def host_rules():
    """The host's own rule sets (read only), without the save tools' dated comments."""
    out = []
    for argv in (['iptables-save'], ['ip6tables-save'], ['nft', 'list', 'ruleset']):
        text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        out.append(re.sub(r'(?m)^#.*\n', '', text))
    return out


@pytest.fixture(scope='module')
def ns():
    before = host_rules()
    made = {}
    try:
        for name in ('node', 'pod', 'outside'):
            made[name] = Node(name)
        node, pod, outside = made['node'], made['pod'], made['outside']
        node.sh('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', str(outside.proc.pid))
        node.sh('ip', 'link', 'add', 'veth-pod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', str(pod.proc.pid))
        for where, dev, addr in ((outside, 'eth0', OUTSIDE6 + '/64'), (node, 'eth0', NODE6 + '/64'),
                                 (node, 'veth-pod', 'fd00:20:0:1::1/64'), (pod, 'eth0', POD6 + '/64')):
            where.sh('ip', '-6', 'addr', 'add', addr, 'dev', dev, 'nodad')
            where.sh('ip', 'link', 'set', dev, 'up')
            where.sh('ip', 'link', 'set', 'lo', 'up')
        pod.sh('ip', '-6', 'route', 'add', 'default', 'via', 'fd00:20:0:1::1')
        node.sh('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1')
        node.sh('ip6tables', '-t', 'nat', *(['-A', 'POSTROUTING'] + FOREIGN6.split()))
        yield made
    finally:
        for netns in made.values():
            netns.kill()
    assert host_rules() == before, "the host's own iptables/ip6tables/nft rules changed"


def ansible(node, args, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
               ANSIBLE_DEPRECATION_WARNINGS='False', ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='False')
    argv = node.prefix + [ANSIBLE, 'localhost', '-o', '-m', 'kubeasz.network.traffic_rules',
                          '-a', json.dumps(args), '-e', 'ansible_python_interpreter=%s' % sys.executable
                          ] + list(extra)
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)
    match = re.search(r'^localhost \| (\w+!?) => (\{.*\})\s*$', proc.stdout, re.M)
    assert match, proc.stdout + proc.stderr
    return match.group(1), json.loads(match.group(2))


def ours(saved):
    """Our lines in ip(6)tables-save output (chains, jumps, rules)."""
    return [line for line in saved.splitlines() if 'FLANNEL-' in line or 'flanneld' in line]


def nft_table(node, family, table):
    """``nft list table`` of ours ('' when there is none)."""
    return node.sh('nft', 'list', 'table', family, table, check=False)


def ipv4_side(node):
    """Everything IPv4 of the node's rules: iptables-save (undated) and the ip nft table."""
    return re.sub(r'(?m)^#.*\n', '', node.sh('iptables-save')), nft_table(node, 'ip', 'flannel-ipv4')


def expected_ip6tables(random_fully):
    """flanneld's forwardRules + masqIP6Rules (pkg/trafficmngr/iptables/iptables.go) as
    ip6tables-save prints them (filter table first)."""
    n, s, rnd = NET6, OWN6, ' --random-fully' if random_fully else ''
    return [':FLANNEL-FWD - [0:0]',
            '-A FORWARD %s -j FLANNEL-FWD' % FWD,
            '-A FLANNEL-FWD -s %s %s -j ACCEPT' % (n, FWD),
            '-A FLANNEL-FWD -d %s %s -j ACCEPT' % (n, FWD),
            ':FLANNEL-POSTRTG - [0:0]',
            '-A POSTROUTING %s -j FLANNEL-POSTRTG' % MASQ,
            '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 %s -j RETURN' % MASQ,
            '-A FLANNEL-POSTRTG -s %s -d %s %s -j RETURN' % (s, n, MASQ),
            '-A FLANNEL-POSTRTG -s %s -d %s %s -j RETURN' % (n, s, MASQ),
            '-A FLANNEL-POSTRTG ! -s %s -d %s %s -j RETURN' % (n, s, MASQ),
            '-A FLANNEL-POSTRTG -s %s ! -d ff00::/8 %s -j MASQUERADE%s' % (n, MASQ, rnd),
            '-A FLANNEL-POSTRTG ! -s %s -d %s %s -j MASQUERADE%s' % (n, n, MASQ, rnd)]


def expected_nft6(random_fully):
    """flanneld's ip6 table (pkg/trafficmngr/nftables/nftables.go: initTable, SetupAndEnsure*,
    addMasqRules with family ip6) as nft 1.0 lists it."""
    n, s, masq = NET6, OWN6, 'masquerade fully-random' if random_fully else 'masquerade'
    return '\n'.join([
        'table ip6 flannel-ipv6 {',
        '\tcomment "rules for flannel-ipv6"',
        '\tchain postrtg {',
        '\t\tcomment "chain to manage traffic masquerading by flannel"',
        '\t\ttype nat hook postrouting priority srcnat; policy accept;',
        '\t\tmeta mark 0x00004000 return',
        '\t\tip6 saddr %s ip6 daddr %s return' % (s, n),
        '\t\tip6 saddr %s ip6 daddr %s return' % (n, s),
        '\t\tip6 saddr != %s ip6 daddr %s return' % (s, n),
        '\t\tip6 saddr %s ip6 daddr != ff00::/8 %s' % (n, masq),
        '\t\tip6 saddr != %s ip6 daddr %s %s' % (n, n, masq),
        '\t}',
        '',
        '\tchain forward {',
        '\t\tcomment "chain to accept flannel traffic"',
        '\t\ttype filter hook forward priority filter; policy accept;',
        '\t\tip6 saddr %s accept' % n,
        '\t\tip6 daddr %s accept' % n,
        '\t}',
        '}', ''])


def pod_reaches_outside(ns):
    return ns['pod'].sh('ping', '-6', '-n', '-c', '1', '-W', '2', OUTSIDE6, check=False).count(' 0% packet loss') == 1


V6 = dict(family='ipv6', network=NET6, subnet=OWN6)


@pytest.fixture(scope='module')
def ipv4_rules(ns):
    """The node's IPv4 rules, made first by a family=ipv4 run (iptables): they must never move."""
    status, res = ansible(ns['node'], dict(network=NET4, subnet=OWN4))
    assert status == 'CHANGED' and res['family'] == 'ipv4', res
    before = ipv4_side(ns['node'])
    assert len(ours(before[0])) == 12 and before[1] == ''
    return before


def test_without_rules_the_outside_cannot_answer(ns):
    assert not pod_reaches_outside(ns)


def test_a_family_mismatch_fails_naming_the_option(ns, ipv4_rules):
    status, res = ansible(ns['node'], dict(V6, network=NET4))
    assert status == 'FAILED!'
    assert "network: '172.20.0.0/16' is an IPv4 network, but family is ipv6" in res['msg']
    assert ours(ns['node'].sh('ip6tables-save')) == [] and ipv4_side(ns['node']) == ipv4_rules


@pytest.mark.parametrize('mode', ['iptables', 'nftables'])
def test_ipv6_rules_are_flanneld_s_and_idempotent(ns, ipv4_rules, mode, capsys):
    node = ns['node']
    args = dict(V6, mode=mode)
    status, res = ansible(node, args, '--check')
    assert status == 'CHANGED' and res['plan'], res
    status, res = ansible(node, args)
    assert status == 'CHANGED' and res['family'] == 'ipv6' and res['mode'] == mode, res
    assert res['spec'] == dict(mode=mode, network=NET6, subnet=OWN6, ip_masq=True,
                               random_fully=res['random_fully'], family='ipv6')
    saved6 = node.sh('ip6tables-save')
    listed = nft_table(node, 'ip6', 'flannel-ipv6')
    if mode == 'iptables':
        assert res['plan'][0] == '# ip6tables-restore -w 5 --noflush'
        assert ours(saved6) == expected_ip6tables(res['random_fully'])
        assert listed == ''
    else:
        assert listed == expected_nft6(res['random_fully'])
        assert ours(saved6) == []  # the switch removed the ip6tables chains of ours
    assert '-A POSTROUTING ' + FOREIGN6 in saved6
    status, res = ansible(node, args)
    assert status == 'SUCCESS' and res['changed'] is False and res['plan'] == [], res
    assert ipv4_side(node) == ipv4_rules, 'an ipv6 run changed IPv4 rules'
    assert pod_reaches_outside(ns), 'the pod\'s IPv6 ping was not masqueraded'
    with capsys.disabled():
        print('\n[traffic rules ipv6, %s, random_fully=%s]\n  %s' % (
            mode, res['random_fully'], '\n  '.join(ours(saved6) if mode == 'iptables' else listed.splitlines())))


def test_a_flushed_ipv6_chain_is_refilled(ns, ipv4_rules):
    node = ns['node']
    assert ansible(node, V6)[0] in ('CHANGED', 'SUCCESS')
    want = ours(node.sh('ip6tables-save'))
    node.sh('ip6tables', '-t', 'nat', '-F', 'FLANNEL-POSTRTG')
    status, res = ansible(node, V6)
    assert status == 'CHANGED' and ours(node.sh('ip6tables-save')) == want
    assert ipv4_side(node) == ipv4_rules


def test_ipv6_absent_removes_the_ipv6_rules_only(ns, ipv4_rules):
    node = ns['node']
    assert ansible(node, dict(V6, mode='nftables'))[0] in ('CHANGED', 'SUCCESS')
    status, res = ansible(node, dict(state='absent', family='ipv6'))
    assert status == 'CHANGED'
    assert nft_table(node, 'ip6', 'flannel-ipv6') == '' and ours(node.sh('ip6tables-save')) == []
    assert '-A POSTROUTING ' + FOREIGN6 in node.sh('ip6tables-save')
    assert ipv4_side(node) == ipv4_rules
    assert ansible(node, dict(state='absent', family='ipv6'))[0] == 'SUCCESS'
    assert not pod_reaches_outside(ns)


def test_ipv6_runs_leave_the_ipv4_nft_table_alone(ns):
    """IPv4 in nftables mode (table ip flannel-ipv4): neither ipv6 mode nor an ipv6 absent touches it."""
    node = ns['node']
    status, res = ansible(node, dict(network=NET4, subnet=OWN4, mode='nftables'))
    assert status in ('CHANGED', 'SUCCESS') and res['family'] == 'ipv4'
    before = ipv4_side(node)
    assert ours(before[0]) == [] and 'table ip flannel-ipv4 {' in before[1]
    for args in (dict(V6, mode='nftables'), dict(V6, mode='iptables'), dict(state='absent', family='ipv6')):
        assert ansible(node, args)[0] == 'CHANGED'
        assert ipv4_side(node) == before, 'an ipv6 run (%s) changed IPv4 rules' % args
