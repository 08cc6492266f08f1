# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flanneld's traffic rules (pkg/trafficmngr) for the ansible dataplane: masquerade of pod
traffic leaving the cluster network and the forward accept rules, in iptables or nftables.

observe: one ``iptables-save`` (nat + filter) and one ``nft -j list table ip flannel-ipv4``;
plan:    typed operations from the observed and the desired state (``RuleState`` both);
apply:   one ``iptables-restore --noflush`` and/or one ``nft -f -`` transaction.

Ours, and the only things ever changed: the iptables chains FLANNEL-POSTRTG (nat) and
FLANNEL-FWD (filter), the rules in POSTROUTING / FORWARD that jump to them, and the nft table
``ip flannel-ipv4``. A chain of ours whose rules differ (another lease subnet, rules flushed or
edited) is emptied and refilled in flanneld's order. Standard library only (runs on the node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import shutil
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4
from ansible_collections.kubeasz.network.plugins.module_utils.dataplane import text
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError

MODES = ('iptables', 'nftables')
KUBE_PROXY_MARK = 0x4000  # kube-proxy marks what it masquerades itself: never NAT it twice
MULTICAST = '224.0.0.0/4'
NFT_TABLE = 'flannel-ipv4'
# go-iptables' HasRandomFully(), which flanneld asks: iptables >= 1.6.2
RANDOM_FULLY_SINCE = (1, 6, 2)
# the arguments of the two transactions (-w: wait for the xtables lock of legacy iptables)
RESTORE_ARGS = ('-w', '5', '--noflush')
NFT_ARGS = ('-f', '-')
EXTRA_PATH = ('/usr/sbin', '/sbin', '/usr/local/sbin')

# What the rules are made from; the route guard's state file keeps it as a dict.
RuleSpec = namedtuple('RuleSpec', ['mode', 'network', 'subnet', 'ip_masq', 'random_fully'])

IptChainDef = namedtuple('IptChainDef', ['table', 'chain', 'parent', 'comment'])
IPT_CHAINS = (IptChainDef('nat', 'FLANNEL-POSTRTG', 'POSTROUTING', 'flanneld masq'),
              IptChainDef('filter', 'FLANNEL-FWD', 'FORWARD', 'flanneld forward'))
# head: (type, hook, priority as the kernel reports it); priority_name: as nft -f takes it
NftChainDef = namedtuple('NftChainDef', ['chain', 'head', 'priority_name', 'comment'])
NFT_CHAINS = (NftChainDef('postrtg', ('nat', 'postrouting', 100), 'srcnat',
                          'chain to manage traffic masquerading by flannel'),
              NftChainDef('forward', ('filter', 'forward', 0), 'filter',
                          'chain to accept flannel traffic'))
NFT_HEADS = dict((d.chain, d) for d in NFT_CHAINS)

# State of what is ours. iptables: {chain: IptChain} (rules None: the chain does not exist;
# jumps: the rules of the parent chain that jump to it). nft: None (no table) or
# {chain: NftChain} with head (type, hook, priority) and rules in `nft list` syntax.
IptChain = namedtuple('IptChain', ['jumps', 'rules'])
NftChain = namedtuple('NftChain', ['head', 'rules'])
RuleState = namedtuple('RuleState', ['iptables', 'nft'])

# The plan's operations. backend: 'iptables' or 'nft'.
FillChain = namedtuple('FillChain', ['backend', 'table', 'chain', 'rules'])  # create or empty, then fill
DropChain = namedtuple('DropChain', ['backend', 'table', 'chain'])           # empty and delete
AddJump = namedtuple('AddJump', ['table', 'parent', 'spec'])                 # iptables only
DelJump = namedtuple('DelJump', ['table', 'parent', 'spec'])
AddTable = namedtuple('AddTable', ['table'])                                 # nft only
DropTable = namedtuple('DropTable', ['table'])

Tools = namedtuple('Tools', ['iptables_save', 'iptables_restore', 'nft'])  # absolute paths or None

_VERSION = re.compile(r'v(\d+)\.(\d+)\.(\d+)')


class TrafficRulesError(DataplaneError):
    """A tool is missing or failed; the message names it (and the package to install)."""


# ------------------------------------------------------------------ the spec (pure)

def _cidr(value, key):
    try:
        return ipv4.parse_cidr(value)
    except (TypeError, ValueError) as exc:
        raise DataplaneError('%s: %r is not an IPv4 network (%s)' % (key, value, exc))


def rule_spec(params):
    """Validated RuleSpec from module params or the guard's state file (a dict).

    subnet may be None with ip_masq false (only the forward rules need no subnet);
    random_fully None means "not decided yet" (see random_fully_supported)."""
    mode = params.get('mode') or 'iptables'
    if mode not in MODES:
        raise DataplaneError('mode: %r is not one of %s' % (mode, ', '.join(MODES)))
    network, network_text = _cidr(params.get('network'), 'network')
    subnet_text = None
    if params.get('subnet'):
        subnet, subnet_text = _cidr(params['subnet'], 'subnet')
        if not ipv4.subnet_of(subnet, network):
            raise DataplaneError('subnet: %s is not inside network %s' % (subnet_text, network_text))
    ip_masq = bool(params.get('ip_masq', True))
    if ip_masq and subnet_text is None:
        raise DataplaneError('subnet (this node\'s lease subnet) is required when ip_masq is true')
    random_fully = params.get('random_fully')
    return RuleSpec(mode, network_text, subnet_text, ip_masq,
                    None if random_fully is None else bool(random_fully))


# ------------------------------------------------------------------ desired rules (pure)

def iptables_jump(chain_def):
    return '-m comment --comment "%s" -j %s' % (chain_def.comment, chain_def.chain)


def iptables_masq_rules(network, subnet, random_fully):
    """FLANNEL-POSTRTG as flanneld fills it (and as iptables-save prints it)."""
    tail = '-m comment --comment "%s" -j ' % IPT_CHAINS[0].comment
    masq = tail + 'MASQUERADE' + (' --random-fully' if random_fully else '')
    return ('-m mark --mark 0x%x/0x%x %sRETURN' % (KUBE_PROXY_MARK, KUBE_PROXY_MARK, tail),
            '-s %s -d %s %sRETURN' % (subnet, network, tail),
            '-s %s -d %s %sRETURN' % (network, subnet, tail),
            '! -s %s -d %s %sRETURN' % (network, subnet, tail),
            '-s %s ! -d %s %s' % (network, MULTICAST, masq),
            '! -s %s -d %s %s' % (network, network, masq))


def iptables_forward_rules(network):
    tail = '-m comment --comment "%s" -j ACCEPT' % IPT_CHAINS[1].comment
    return ('-s %s %s' % (network, tail), '-d %s %s' % (network, tail))


def nft_masq_rules(network, subnet, random_fully):
    """chain postrtg as flanneld fills it (and as ``nft list`` prints it, but the mark's zeros).

    The fourth rule is flanneld's own (saddr != own subnet, daddr cluster): unlike its
    iptables twin, it returns before the last rule can match; kept as flanneld has it."""
    masq = 'masquerade' + (' fully-random' if random_fully else '')
    return ('meta mark 0x%x return' % KUBE_PROXY_MARK,
            'ip saddr %s ip daddr %s return' % (subnet, network),
            'ip saddr %s ip daddr %s return' % (network, subnet),
            'ip saddr != %s ip daddr %s return' % (subnet, network),
            'ip saddr %s ip daddr != %s %s' % (network, MULTICAST, masq),
            'ip saddr != %s ip daddr %s %s' % (network, network, masq))


def nft_forward_rules(network):
    return ('ip saddr %s accept' % network, 'ip daddr %s accept' % network)


def desired_state(spec, state='present'):
    """The RuleState a spec asks for: one backend's rules, nothing of ours in the other."""
    if state == 'absent':
        return RuleState({}, None)
    masq, forward = IPT_CHAINS
    if spec.mode == 'nftables':
        chains = {'forward': NftChain(NFT_HEADS['forward'].head, nft_forward_rules(spec.network))}
        if spec.ip_masq:
            chains['postrtg'] = NftChain(NFT_HEADS['postrtg'].head,
                                         nft_masq_rules(spec.network, spec.subnet, spec.random_fully))
        return RuleState({}, chains)
    chains = {forward.chain: IptChain((iptables_jump(forward),), iptables_forward_rules(spec.network))}
    if spec.ip_masq:
        chains[masq.chain] = IptChain((iptables_jump(masq),),
                                      iptables_masq_rules(spec.network, spec.subnet, spec.random_fully))
    return RuleState(chains, None)


# ------------------------------------------------------------------ observed state (pure)

def parse_iptables_save(text):
    """{table: {chain: [rule spec, ...]}} from ``iptables-save`` output."""
    tables, chains = {}, None
    for line in (text or '').splitlines():
        if line.startswith('*'):
            chains = tables.setdefault(line[1:].strip(), {})
        elif chains is None:
            continue
        elif line.startswith(':'):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith('-A '):
            chain, dummy, spec = line[3:].partition(' ')
            chains.setdefault(chain, []).append(spec)
    return tables


def jumps_to(spec, chain):
    words = spec.split()
    return any(words[i] in ('-j', '-g') and words[i + 1] == chain for i in range(len(words) - 1))


def iptables_state(tables):
    """Our chains in parsed iptables-save tables: {chain: IptChain} for those present."""
    state = {}
    for d in IPT_CHAINS:
        chains = tables.get(d.table, {})
        jumps = tuple(s for s in chains.get(d.parent, ()) if jumps_to(s, d.chain))
        rules = tuple(chains[d.chain]) if d.chain in chains else None
        if jumps or rules is not None:
            state[d.chain] = IptChain(jumps, rules)
    return state


def _nft_operand(value, key=None):
    if isinstance(value, dict) and 'payload' in value:
        return '%s %s' % (value['payload'].get('protocol'), value['payload'].get('field'))
    if isinstance(value, dict) and 'meta' in value:
        return 'meta %s' % value['meta'].get('key')
    if isinstance(value, dict) and 'prefix' in value:
        return '%s/%s' % (value['prefix'].get('addr'), value['prefix'].get('len'))
    if isinstance(value, int) and key == 'meta mark':
        return '0x%x' % value
    if isinstance(value, (str, int)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _nft_statement(expr):
    """One expression of ``nft -j`` in ``nft list`` words; anything else as JSON (never ours)."""
    if isinstance(expr, dict) and len(expr) == 1:
        (key, value), = expr.items()
        if key == 'match' and isinstance(value, dict):
            left = _nft_operand(value.get('left'))
            op = '' if value.get('op') in ('==', 'in') else value.get('op') + ' '
            return '%s %s%s' % (left, op, _nft_operand(value.get('right'), left))
        if key in ('return', 'accept', 'drop') and value is None:
            return key
        if key == 'masquerade' and (value is None or isinstance(value, dict) and set(value) <= {'flags'}):
            flags = (value or {}).get('flags') or []
            return ' '.join(['masquerade'] + ([flags] if isinstance(flags, str) else list(flags)))
    return json.dumps(expr, sort_keys=True)


def parse_nft_table(text):
    """The table of ``nft -j list table ip flannel-ipv4`` -> {chain: NftChain}."""
    chains, rules = {}, {}
    for item in json.loads(text).get('nftables', []):
        if 'chain' in item:
            c = item['chain']
            chains[c['name']] = (c.get('type'), c.get('hook'), c.get('prio'))
            if c.get('policy', 'accept') != 'accept':
                chains[c['name']] += (c['policy'],)  # never ours: makes it differ
        elif 'rule' in item:
            r = item['rule']
            rules.setdefault(r['chain'], []).append(' '.join(_nft_statement(e) for e in r.get('expr', [])))
    return dict((name, NftChain(head, tuple(rules.get(name, ())))) for name, head in chains.items())


# ------------------------------------------------------------------ plan (pure)

def _plan_iptables_chain(d, have, want):
    ops = []
    if want is None:
        ops += [DelJump(d.table, d.parent, spec) for spec in (have.jumps if have else ())]
        if have is not None and have.rules is not None:
            ops.append(DropChain('iptables', d.table, d.chain))
        return ops
    if have is None or have.rules != want.rules:
        ops.append(FillChain('iptables', d.table, d.chain, want.rules))
    extra = list(have.jumps) if have else []
    for jump in want.jumps:
        if jump in extra:
            extra.remove(jump)  # the first one stays, duplicates go
        else:
            ops.append(AddJump(d.table, d.parent, jump))
    return ops + [DelJump(d.table, d.parent, spec) for spec in extra]


def _plan_nft(have, want):
    if want is None:
        return [DropTable(NFT_TABLE)] if have is not None else []
    ops = [AddTable(NFT_TABLE)] if have is None else []
    have = have or {}
    ops += [DropChain('nft', NFT_TABLE, name) for name in sorted(set(have) - set(want))]
    for d in NFT_CHAINS:
        got, wanted = have.get(d.chain), want.get(d.chain)
        if wanted is None:
            continue
        if got is not None and got.head != wanted.head:
            ops.append(DropChain('nft', NFT_TABLE, d.chain))  # a chain's hook cannot change in place
            got = None
        if got is None or got.rules != wanted.rules:
            ops.append(FillChain('nft', NFT_TABLE, d.chain, wanted.rules))
    return ops


def plan(observed, desired):
    """Operations that turn the observed RuleState into the desired one (ours only)."""
    ops = []
    for d in IPT_CHAINS:
        ops += _plan_iptables_chain(d, observed.iptables.get(d.chain), desired.iptables.get(d.chain))
    return ops + _plan_nft(observed.nft, desired.nft)


# ------------------------------------------------------------------ text (pure)

def iptables_restore_input(ops):
    """The iptables ops as ``iptables-restore --noflush`` input ('' when none)."""
    lines = []
    for table in ('nat', 'filter'):
        mine = [op for op in ops if op.table == table]  # nft ops are in table flannel-ipv4
        if not mine:
            continue
        fills = [op for op in mine if isinstance(op, FillChain)]
        drops = [op for op in mine if isinstance(op, DropChain)]
        lines += ['*' + table] + [':%s - [0:0]' % op.chain for op in fills]
        lines += ['-D %s %s' % (op.parent, op.spec) for op in mine if isinstance(op, DelJump)]
        for op in fills:
            lines += ['-F ' + op.chain] + ['-A %s %s' % (op.chain, rule) for rule in op.rules]
        lines += ['-A %s %s' % (op.parent, op.spec) for op in mine if isinstance(op, AddJump)]
        for op in drops:
            lines += ['-F ' + op.chain, '-X ' + op.chain]
        lines.append('COMMIT')
    return text(lines)


def _nft_chain_add(name):
    d = NFT_HEADS[name]
    return 'add chain ip %s %s { type %s hook %s priority %s ; comment "%s" ; }' % (
        NFT_TABLE, name, d.head[0], d.head[1], d.priority_name, d.comment)


def nft_input(ops):
    """The nft ops as ``nft -f -`` input ('' when none)."""
    lines = []
    for op in ops:
        if isinstance(op, AddTable):
            lines.append('add table ip %s { comment "rules for %s" ; }' % (op.table, op.table))
        elif isinstance(op, DropTable):
            lines.append('delete table ip %s' % op.table)
        elif isinstance(op, DropChain) and op.backend == 'nft':
            lines += ['flush chain ip %s %s' % (op.table, op.chain), 'delete chain ip %s %s' % (op.table, op.chain)]
        elif isinstance(op, FillChain) and op.backend == 'nft':
            lines += [_nft_chain_add(op.chain), 'flush chain ip %s %s' % (op.table, op.chain)]
            lines += ['add rule ip %s %s %s' % (op.table, op.chain, rule) for rule in op.rules]
    return text(lines)


def op_summary(op):
    """An op in a few words for a log line, e.g. 'FillChain nat/FLANNEL-POSTRTG'."""
    return '%s %s/%s' % (type(op).__name__, op.table, getattr(op, 'chain', getattr(op, 'parent', op.table)))


def plan_lines(ops):
    """The plan as run: each tool's command line, then its input lines."""
    lines = []
    for argv, text in ((['iptables-restore'] + list(RESTORE_ARGS), iptables_restore_input(ops)),
                       (['nft'] + list(NFT_ARGS), nft_input(ops))):
        if text:
            lines += ['# ' + ' '.join(argv)] + text.splitlines()
    return lines


def state_text(state):
    """A RuleState as ``iptables-save`` / ``nft list table`` show it (ours only): --diff text."""
    lines = []
    for table in ('nat', 'filter'):
        mine = [(d, state.iptables[d.chain]) for d in IPT_CHAINS
                if d.table == table and d.chain in state.iptables]
        if mine:
            lines += ['*' + table] + [':%s - [0:0]' % d.chain for d, c in mine if c.rules is not None]
            for d, chain in mine:
                lines += ['-A %s %s' % (d.parent, jump) for jump in chain.jumps]
                lines += ['-A %s %s' % (d.chain, rule) for rule in chain.rules or ()]
            lines.append('COMMIT')
    if state.nft is not None:
        lines.append('table ip %s {' % NFT_TABLE)
        order = [d.chain for d in NFT_CHAINS]
        for name in sorted(state.nft, key=lambda n: (order.index(n) if n in order else len(order), n)):
            head = state.nft[name].head
            known = NFT_HEADS.get(name)
            priority = known.priority_name if known and known.head == head else head[2]
            lines += ['\tchain %s {' % name, '\t\ttype %s hook %s priority %s;' % (head[0], head[1], priority)]
            lines += ['\t\t' + rule for rule in state.nft[name].rules] + ['\t}']
        lines.append('}')
    return lines


# ------------------------------------------------------------------ the node (impure)

def find_tools(which=None):
    """Absolute paths of iptables-save, iptables-restore and nft (None when missing);
    sbin directories are searched too (a module's PATH may lack them)."""
    path = os.pathsep.join([os.environ.get('PATH', '')] + list(EXTRA_PATH))
    which = which or (lambda name: shutil.which(name, path=path))
    save, restore = which('iptables-save'), which('iptables-restore')
    both = bool(save and restore)  # one without the other is no working iptables
    return Tools(save if both else None, restore if both else None, which('nft'))


def mode_tools(tools, mode):
    """Only the mode's own tool: the route guard reads one backend per check."""
    if mode == 'nftables':
        return tools._replace(iptables_save=None, iptables_restore=None)
    return tools._replace(nft=None)


def check_tools(tools, mode):
    """Fail before any change when the mode's tool is missing, naming the package."""
    if tools.iptables_save is None and tools.nft is None:
        raise TrafficRulesError('neither iptables nor nft found on the node: install the Debian/Ubuntu '
                                'package %s (or your distribution\'s equivalent)'
                                % ('nftables' if mode == 'nftables' else 'iptables'))
    if mode == 'iptables' and tools.iptables_save is None:
        raise TrafficRulesError('iptables-save/iptables-restore not found: install the package iptables, '
                                'or use nftables (PROXY_MODE nftables, net-conf EnableNFTables)')
    if mode == 'nftables' and tools.nft is None:
        raise TrafficRulesError('nft not found: install the package nftables (EnableNFTables is on)')


def _failed(argv, rc, err):
    return TrafficRulesError('%s failed (rc=%s): %s' % (' '.join(argv), rc, (err or '').strip()))


def _run_checked(run, argv, data=None):
    rc, out, err = run(argv, data)
    if rc != 0:
        raise _failed(argv, rc, err or out)
    return out


def random_fully_supported(run, tools, mode):
    """Decided as flanneld does: iptables >= 1.6.2, or nft accepts a fully-random masquerade
    (``nft --check``: validated by the kernel, nothing is changed)."""
    if mode == 'iptables':
        match = _VERSION.search(_run_checked(run, [tools.iptables_save, '--version']))
        return bool(match) and tuple(int(n) for n in match.groups()) >= RANDOM_FULLY_SINCE
    probe = ('add table ip flannel-probe\nadd chain ip flannel-probe c { type nat hook postrouting '
             'priority srcnat ; }\nadd rule ip flannel-probe c masquerade fully-random\n')
    return run([tools.nft, '--check', '-f', '-'], probe)[0] == 0


def observe(run, tools, mode='iptables'):
    """The RuleState of what is ours on the node (one process per tool present).

    A backend that is not the mode's and cannot even be read (an nft binary on a kernel
    without nf_tables) cannot hold rules of ours: it counts as empty."""
    ipt, nft = {}, None
    if tools.iptables_save:
        argv = [tools.iptables_save]
        rc, out, err = run(argv)
        if rc == 0:
            ipt = iptables_state(parse_iptables_save(out))
        elif mode == 'iptables':
            raise _failed(argv, rc, err)
    if tools.nft:
        argv = [tools.nft, '-j', 'list', 'table', 'ip', NFT_TABLE]
        rc, out, err = run(argv)
        if rc == 0:
            try:
                nft = parse_nft_table(out)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise TrafficRulesError('%s: unparsable output (%s)' % (' '.join(argv), exc))
        elif mode == 'nftables' and 'No such file or directory' not in (err or ''):
            raise _failed(argv, rc, err)
    return RuleState(ipt, nft)


def apply(run, tools, ops, mode='iptables'):
    """One transaction per tool: the mode's own first, then the other one's clean-up
    (pods are never without rules while the mode switches)."""
    steps = [([tools.iptables_restore] + list(RESTORE_ARGS), iptables_restore_input(ops)),
             ([tools.nft] + list(NFT_ARGS), nft_input(ops))]
    if mode == 'nftables':
        steps.reverse()
    for argv, text in steps:
        if text:
            _run_checked(run, argv, text)


def sync(run, spec, tools, check_mode=False, state='present'):
    """observe -> plan -> apply for a decided spec: (observed, desired, ops)."""
    observed = observe(run, tools, spec.mode)
    desired = desired_state(spec, state)
    ops = plan(observed, desired)
    if ops and not check_mode:
        apply(run, tools, ops, spec.mode)
    return observed, desired, ops


def traffic_rules(run, params, check_mode=False, diff=True, which=None):
    """Entry point of the traffic_rules module."""
    state = params.get('state') or 'present'
    if state == 'absent':
        spec = RuleSpec(params.get('mode') or 'iptables', None, None, False, None)
    else:
        spec = rule_spec(params)
    tools = find_tools(which)
    if state == 'present':
        check_tools(tools, spec.mode)
        if spec.random_fully is None:
            spec = spec._replace(random_fully=random_fully_supported(run, tools, spec.mode))
    observed, desired, ops = sync(run, spec, tools, check_mode, state)
    result = dict(changed=bool(ops), plan=plan_lines(ops), mode=spec.mode, random_fully=spec.random_fully,
                  spec=dict(spec._asdict()) if state == 'present' else {})
    if diff:
        result['diff'] = dict(before=text(state_text(observed)), after=text(state_text(desired)))
    return result
