# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flanneld's traffic rules (pkg/trafficmngr) for the ansible dataplane: masquerade of pod
traffic leaving the cluster network and the forward accept rules, in iptables or nftables,
for one address family per call (a Family: IPv4 or IPv6).

observe: one ``iptables-save`` (nat + filter) and one ``nft -j list table ip flannel-ipv4``
         (ipv6: ``ip6tables-save`` and ``nft -j list table ip6 flannel-ipv6``);
plan:    typed operations from the observed and the desired state (``RuleState`` both);
apply:   one ``iptables-restore --noflush`` (ipv6: ``ip6tables-restore``) and/or one
         ``nft -f -`` transaction.

Ours, and the only things ever changed: the chains FLANNEL-POSTRTG (nat) and FLANNEL-FWD
(filter) of the family's iptables, the rules in POSTROUTING / FORWARD that jump to them, and
the family's nft table (``ip flannel-ipv4`` / ``ip6 flannel-ipv6``). The other family is never
read nor changed. A chain of ours whose rules differ (another lease subnet, rules flushed or
edited) is emptied and refilled in flanneld's order. Standard library only (runs on the node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import os
import re
import shutil
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, family_named, family_of_version
from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import text
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError

MODES = ('iptables', 'nftables')
KUBE_PROXY_MARK = 0x4000  # kube-proxy marks what it masquerades itself: never NAT it twice
# go-iptables' HasRandomFully(), which flanneld asks: iptables >= 1.6.2
RANDOM_FULLY_SINCE = (1, 6, 2)
# the arguments of the two transactions (-w: wait for the xtables lock of legacy iptables)
RESTORE_ARGS = ('-w', '5', '--noflush')
NFT_ARGS = ('-f', '-')
EXTRA_PATH = ('/usr/sbin', '/sbin', '/usr/local/sbin')


# What differs between the families is the Family (base/family.py): its iptables tools
# (save/restore: flanneld's go-iptables ProtocolIPv4/IPv6), nft table family (also the address
# match keyword, knftables' "ip"/"ip6"), nft table (flanneld's ipv4Table/ipv6Table) and multicast
# range (never masqueraded); everything else is one code path.
# the IPv4 names of before the families (kept for callers)
MULTICAST = IPV4.multicast
NFT_TABLE = IPV4.nft_table

# What the rules are made from; the route guard's state file keeps it as a dict (family: a
# Family, written as its name; added last, a spec or state file without it is IPv4: rule_spec).
RuleSpec = namedtuple('RuleSpec', ['mode', 'network', 'subnet', 'ip_masq', 'random_fully', 'family'])
RuleSpec.__new__.__defaults__ = (IPV4,)   # a spec of before the families (five fields) is IPv4's

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
# forward_drops: the forward base chains outside ours whose policy is drop, as ForwardDrop
# (kind 'iptables': the family's iptables FORWARD chain, legacy or nft; 'nft': any other table)
RuleState = namedtuple('RuleState', ['iptables', 'nft', 'family', 'forward_drops'])
RuleState.__new__.__defaults__ = (IPV4, ())   # records of before the families are IPv4's
ForwardDrop = namedtuple('ForwardDrop', ['kind', 'table', 'chain'])
IPTABLES_FORWARD = ForwardDrop('iptables', 'filter', 'FORWARD')

# The plan's operations. backend: 'iptables' or 'nft'.
FillChain = namedtuple('FillChain', ['backend', 'table', 'chain', 'rules'])  # create or empty, then fill
DropChain = namedtuple('DropChain', ['backend', 'table', 'chain'])           # empty and delete
AddJump = namedtuple('AddJump', ['table', 'parent', 'spec'])                 # iptables only
DelJump = namedtuple('DelJump', ['table', 'parent', 'spec'])
AddTable = namedtuple('AddTable', ['table'])                                 # nft only
DropTable = namedtuple('DropTable', ['table'])

# absolute paths or None; iptables_save/iptables_restore are the family's (ip6tables-* for ipv6)
Tools = namedtuple('Tools', ['iptables_save', 'iptables_restore', 'nft', 'family'])
Tools.__new__.__defaults__ = (IPV4,)

_VERSION = re.compile(r'v(\d+)\.(\d+)\.(\d+)')


class TrafficRulesError(DataplaneError):
    """A tool is missing or failed; the message names it (and the package to install)."""


# ------------------------------------------------------------------ the spec (pure)

def family_def(family):
    """The Family of the ``family`` option of the module or the state file: 'ipv4' / 'ipv6' (None:
    ipv4, the option's default and what a state file of before the families holds);
    DataplaneError naming the option otherwise."""
    try:
        return family_named(family or 'ipv4')
    except ValueError as exc:
        raise DataplaneError(str(exc))


def _cidr(value, key, fam):
    """The family's parsed CIDR; the error names the option, and the other family when the
    value is one of its networks."""
    try:
        return fam.parse_cidr(value)
    except (TypeError, ValueError) as exc:
        try:
            other = family_of_version(ipaddress.ip_network(value, strict=False).version)
        except (TypeError, ValueError):
            other = fam
        if other is not fam:
            raise DataplaneError('%s: %r is an %s network, but family is %s (set family: %s for it)'
                                 % (key, value, other.label, fam.name, other.name))
        raise DataplaneError('%s: %r is not an %s network (%s)' % (key, value, fam.label, exc))


def _subnet_of(inner, outer, bits):
    """True when the parsed network inner lies inside outer (both (int, prefix) of one family)."""
    shift = bits - outer[1]
    return inner[1] >= outer[1] and inner[0] >> shift == outer[0] >> shift


def rule_spec(params):
    """Validated RuleSpec from module params or the guard's state file (a dict).

    family (the option; unset: ipv4) decides how network and subnet are read; subnet may be None with
    ip_masq false (only the forward rules need no subnet); random_fully None means "not
    decided yet" (see random_fully_supported)."""
    fam = family_def(params.get('family'))
    mode = params.get('mode') or 'iptables'
    if mode not in MODES:
        raise DataplaneError('mode: %r is not one of %s' % (mode, ', '.join(MODES)))
    network, network_text = _cidr(params.get('network'), 'network', fam)
    subnet_text = None
    if params.get('subnet'):
        subnet, subnet_text = _cidr(params['subnet'], 'subnet', fam)
        if not _subnet_of(subnet, network, fam.bits):
            raise DataplaneError('subnet: %s is not inside network %s' % (subnet_text, network_text))
    ip_masq = bool(params.get('ip_masq', True))
    if ip_masq and subnet_text is None:
        raise DataplaneError('subnet (this node\'s lease subnet) is required when ip_masq is true')
    random_fully = params.get('random_fully')
    return RuleSpec(mode, network_text, subnet_text, ip_masq,
                    None if random_fully is None else bool(random_fully), fam)


# ------------------------------------------------------------------ desired rules (pure)

def iptables_jump(chain_def):
    return '-m comment --comment "%s" -j %s' % (chain_def.comment, chain_def.chain)


def iptables_masq_rules(network, subnet, random_fully, family):
    """FLANNEL-POSTRTG as flanneld fills it (masqRules / masqIP6Rules: the same rules but the
    multicast range) and as iptables-save / ip6tables-save print it."""
    tail = '-m comment --comment "%s" -j ' % IPT_CHAINS[0].comment
    masq = tail + 'MASQUERADE' + (' --random-fully' if random_fully else '')
    return ('-m mark --mark 0x%x/0x%x %sRETURN' % (KUBE_PROXY_MARK, KUBE_PROXY_MARK, tail),
            '-s %s -d %s %sRETURN' % (subnet, network, tail),
            '-s %s -d %s %sRETURN' % (network, subnet, tail),
            '! -s %s -d %s %sRETURN' % (network, subnet, tail),
            '-s %s ! -d %s %s' % (network, family.multicast, masq),
            '! -s %s -d %s %s' % (network, network, masq))


def iptables_forward_rules(network):
    tail = '-m comment --comment "%s" -j ACCEPT' % IPT_CHAINS[1].comment
    return ('-s %s %s' % (network, tail), '-d %s %s' % (network, tail))


def nft_masq_rules(network, subnet, random_fully, family):
    """chain postrtg as flanneld fills it (addMasqRules; ``ip6`` matches and ff00::/8 in the
    ip6 table) and as ``nft list`` prints it, but the mark's zeros.

    The fourth rule is flanneld's own (saddr != own subnet, daddr cluster): unlike its
    iptables twin, it returns before the last rule can match; kept as flanneld has it."""
    fam = family
    masq = 'masquerade' + (' fully-random' if random_fully else '')
    ip = fam.nft_family
    return ('meta mark 0x%x return' % KUBE_PROXY_MARK,
            '%s saddr %s %s daddr %s return' % (ip, subnet, ip, network),
            '%s saddr %s %s daddr %s return' % (ip, network, ip, subnet),
            '%s saddr != %s %s daddr %s return' % (ip, subnet, ip, network),
            '%s saddr %s %s daddr != %s %s' % (ip, network, ip, fam.multicast, masq),
            '%s saddr != %s %s daddr %s %s' % (ip, network, ip, network, masq))


def nft_forward_rules(network, family):
    ip = family.nft_family
    return ('%s saddr %s accept' % (ip, network), '%s daddr %s accept' % (ip, network))


def pruned_state(observed, mode):
    """The observed state without anything of ours in the other mode's backend (state prune):
    the mode's own rules stay exactly as they are (flanneld's, whatever they hold)."""
    if mode == 'nftables':
        return observed._replace(iptables={})
    return observed._replace(nft=None)


def forward_drop_problem(spec, drops):
    """Why nftables mode cannot forward the cluster's traffic under ``drops`` (a forward base chain
    of another nft table with policy drop: an accept in our table does not override a drop there),
    naming the chain and the fix; None when it can."""
    others = [d for d in drops if d.kind == 'nft']
    if spec is None or spec.mode != 'nftables' or not others:
        return None
    fam = spec.family
    names = ', '.join('%s chain %s' % (d.table, d.chain) for d in others)
    return ('nftables mode: the forward chain of another table has policy drop (%s), which drops the pod '
            'traffic that table %s %s accepts (an accept in one nftables table does not override a drop in '
            'another); accept the cluster network in that chain, e.g. nft insert rule %s %s %s daddr %s accept '
            'and the same with saddr, or turn nftables off (FLANNEL_ENABLE_NFTABLES: false). Nothing was changed'
            % (names, fam.nft_family, fam.nft_table, others[0].table, others[0].chain, fam.nft_family, spec.network))


def desired_state(spec, state='present', drops=()):
    """The RuleState a spec asks for (in the spec's family): one backend's rules, nothing of
    ours in the other; but in nftables mode under an iptables FORWARD policy of drop
    (``drops``: observed ForwardDrops) also the iptables forward chain FLANNEL-FWD, which is what
    accepts the cluster's traffic there (flanneld does not; see forward_drop_problem)."""
    family = spec.family if spec is not None else IPV4   # no spec: the IPv4 records of before the families
    if state == 'absent':
        return RuleState({}, None, family)
    masq, forward = IPT_CHAINS
    if spec.mode == 'nftables':
        chains = {'forward': NftChain(NFT_HEADS['forward'].head, nft_forward_rules(spec.network, family))}
        if spec.ip_masq:
            chains['postrtg'] = NftChain(NFT_HEADS['postrtg'].head, nft_masq_rules(
                spec.network, spec.subnet, spec.random_fully, family))
        ipt = {}
        if IPTABLES_FORWARD in drops:
            ipt[forward.chain] = IptChain((iptables_jump(forward),), iptables_forward_rules(spec.network))
        return RuleState(ipt, chains, family)
    chains = {forward.chain: IptChain((iptables_jump(forward),), iptables_forward_rules(spec.network))}
    if spec.ip_masq:
        chains[masq.chain] = IptChain((iptables_jump(masq),), iptables_masq_rules(
            spec.network, spec.subnet, spec.random_fully, family))
    return RuleState(chains, None, family)


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


def iptables_forward_drops(text):
    """(IPTABLES_FORWARD,) when ``iptables-save`` output has the filter FORWARD policy DROP, else ()."""
    table = None
    for line in (text or '').splitlines():
        if line.startswith('*'):
            table = line[1:].strip()
        elif table == 'filter' and line.split()[:2] == [':FORWARD', 'DROP']:
            return (IPTABLES_FORWARD,)
    return ()


def nft_forward_drops(text, family):
    """The forward base chains with policy drop in ``nft -j list chains`` output that see the
    family's traffic (its table family, and inet), but our own table and iptables-nft's filter
    FORWARD (iptables_forward_drops sees that one)."""
    fam = family
    drops = []
    for item in json.loads(text or '{}').get('nftables', []):
        c = item.get('chain') if isinstance(item, dict) else None
        if not isinstance(c, dict) or c.get('hook') != 'forward' or c.get('policy') != 'drop':
            continue
        if c.get('family') not in (fam.nft_family, 'inet') or c.get('table') == fam.nft_table and \
                c.get('family') == fam.nft_family:
            continue
        if c.get('family') == fam.nft_family and (c.get('table'), c.get('name')) == ('filter', 'FORWARD'):
            continue
        drops.append(ForwardDrop('nft', '%s %s' % (c.get('family'), c.get('table')), c.get('name')))
    return tuple(drops)


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
    """The table of ``nft -j list table ip flannel-ipv4`` (or ``ip6 flannel-ipv6``) -> {chain: NftChain}."""
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


def _plan_nft(have, want, table):
    if want is None:
        return [DropTable(table)] if have is not None else []
    ops = [AddTable(table)] if have is None else []
    have = have or {}
    ops += [DropChain('nft', table, name) for name in sorted(set(have) - set(want))]
    for d in NFT_CHAINS:
        got, wanted = have.get(d.chain), want.get(d.chain)
        if wanted is None:
            continue
        if got is not None and got.head != wanted.head:
            ops.append(DropChain('nft', table, d.chain))  # a chain's hook cannot change in place
            got = None
        if got is None or got.rules != wanted.rules:
            ops.append(FillChain('nft', table, d.chain, wanted.rules))
    return ops


def plan(observed, desired):
    """Operations that turn the observed RuleState into the desired one (ours only, both of
    the desired state's family)."""
    if observed.family != desired.family:
        raise DataplaneError('cannot plan %s rules from an observed %s state' % (desired.family, observed.family))
    ops = []
    for d in IPT_CHAINS:
        ops += _plan_iptables_chain(d, observed.iptables.get(d.chain), desired.iptables.get(d.chain))
    return ops + _plan_nft(observed.nft, desired.nft, desired.family.nft_table)


# ------------------------------------------------------------------ text (pure)

def iptables_restore_input(ops):
    """The iptables ops as ``iptables-restore --noflush`` input ('' when none); the same text
    for ``ip6tables-restore``."""
    lines = []
    for table in ('nat', 'filter'):
        mine = [op for op in ops if op.table == table]  # nft ops are in table flannel-ipv4/6
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


def _nft_chain_add(name, table, nft_family='ip'):
    d = NFT_HEADS[name]
    return 'add chain %s %s %s { type %s hook %s priority %s ; comment "%s" ; }' % (
        nft_family, table, name, d.head[0], d.head[1], d.priority_name, d.comment)


def nft_input(ops, family):
    """The nft ops as ``nft -f -`` input ('' when none), in the family's table family."""
    f = family.nft_family
    lines = []
    for op in ops:
        if isinstance(op, AddTable):
            lines.append('add table %s %s { comment "rules for %s" ; }' % (f, op.table, op.table))
        elif isinstance(op, DropTable):
            lines.append('delete table %s %s' % (f, op.table))
        elif isinstance(op, DropChain) and op.backend == 'nft':
            lines += ['flush chain %s %s %s' % (f, op.table, op.chain),
                      'delete chain %s %s %s' % (f, op.table, op.chain)]
        elif isinstance(op, FillChain) and op.backend == 'nft':
            lines += [_nft_chain_add(op.chain, op.table, f), 'flush chain %s %s %s' % (f, op.table, op.chain)]
            lines += ['add rule %s %s %s %s' % (f, op.table, op.chain, rule) for rule in op.rules]
    return text(lines)


def op_summary(op):
    """An op in a few words for a log line, e.g. 'FillChain nat/FLANNEL-POSTRTG'."""
    return '%s %s/%s' % (type(op).__name__, op.table, getattr(op, 'chain', getattr(op, 'parent', op.table)))


def plan_lines(ops, family):
    """The plan as run: each tool's command line, then its input lines."""
    lines = []
    for argv, text in (([family.restore] + list(RESTORE_ARGS), iptables_restore_input(ops)),
                       (['nft'] + list(NFT_ARGS), nft_input(ops, family))):
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
        fam = state.family
        lines.append('table %s %s {' % (fam.nft_family, fam.nft_table))
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

def find_tools(which, family):
    """Absolute paths of the family's iptables-save and iptables-restore (ip6tables-save and
    ip6tables-restore for ipv6) and nft (None when missing); sbin directories are searched
    too (a module's PATH may lack them)."""
    fam = family
    path = os.pathsep.join([os.environ.get('PATH', '')] + list(EXTRA_PATH))
    which = which or (lambda name: shutil.which(name, path=path))
    save, restore = which(fam.save), which(fam.restore)
    both = bool(save and restore)  # one without the other is no working iptables
    return Tools(save if both else None, restore if both else None, which('nft'), fam)


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
        fam = tools.family
        raise TrafficRulesError('%s/%s not found: install the package iptables, '
                                'or use nftables (FLANNEL_ENABLE_NFTABLES: true, net-conf EnableNFTables)'
                                % (fam.save, fam.restore))
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
    """Decided as flanneld does: the family's iptables >= 1.6.2 (go-iptables HasRandomFully of
    iptables / ip6tables), or nft accepts a fully-random masquerade (``nft --check``: validated
    by the kernel, nothing is changed; flanneld's checkRandomfully probes in its ip table for
    both families, and so does this)."""
    if mode == 'iptables':
        match = _VERSION.search(_run_checked(run, [tools.iptables_save, '--version']))
        return bool(match) and tuple(int(n) for n in match.groups()) >= RANDOM_FULLY_SINCE
    probe = ('add table ip flannel-probe\nadd chain ip flannel-probe c { type nat hook postrouting '
             'priority srcnat ; }\nadd rule ip flannel-probe c masquerade fully-random\n')
    return run([tools.nft, '--check', '-f', '-'], probe)[0] == 0


def observe(run, tools, mode='iptables'):
    """The RuleState of what is ours on the node in the tools' family (one process per tool
    present).

    A backend that is not the mode's and cannot even be read (an nft binary on a kernel
    without nf_tables) cannot hold rules of ours: it counts as empty."""
    fam = tools.family
    ipt, nft, drops = {}, None, ()
    if tools.iptables_save:
        argv = [tools.iptables_save]
        rc, out, err = run(argv)
        if rc == 0:
            ipt = iptables_state(parse_iptables_save(out))
            drops = iptables_forward_drops(out) if mode == 'nftables' else ()
        elif mode == 'iptables':
            raise _failed(argv, rc, err)
    if tools.nft:
        argv = [tools.nft, '-j', 'list', 'table', fam.nft_family, fam.nft_table]
        rc, out, err = run(argv)
        if rc == 0:
            try:
                nft = parse_nft_table(out)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise TrafficRulesError('%s: unparsable output (%s)' % (' '.join(argv), exc))
        elif mode == 'nftables' and 'No such file or directory' not in (err or ''):
            raise _failed(argv, rc, err)
        if mode == 'nftables':   # what other tables decide about forwarded traffic
            argv = [tools.nft, '-j', 'list', 'chains']
            rc, out, err = run(argv)
            if rc != 0:
                raise _failed(argv, rc, err)
            try:
                drops += nft_forward_drops(out, fam)
            except (ValueError, AttributeError) as exc:
                raise TrafficRulesError('%s: unparsable output (%s)' % (' '.join(argv), exc))
    return RuleState(ipt, nft, fam, drops)


def apply(run, tools, ops, mode='iptables'):
    """One transaction per tool: the mode's own first, then the other one's clean-up
    (pods are never without rules while the mode switches)."""
    steps = [([tools.iptables_restore] + list(RESTORE_ARGS), iptables_restore_input(ops)),
             ([tools.nft] + list(NFT_ARGS), nft_input(ops, tools.family))]
    if mode == 'nftables':
        steps.reverse()
    for argv, text in steps:
        if text:
            _run_checked(run, argv, text)


def sync(run, spec, tools, check_mode=False, state='present'):
    """observe -> plan -> apply for a decided spec: (observed, desired, ops).
    tools must be the spec's family's (find_tools(which, spec.family)). state: present, absent
    (nothing of ours in either backend) or prune (nothing of ours in the backend that is not
    spec.mode's; the mode's own rules are left as they are)."""
    if tools.family != spec.family:
        raise TrafficRulesError('the rules are %s but the tools found are for %s (find_tools family=%s)'
                                % (spec.family, tools.family, spec.family))
    observed = observe(run, tools, spec.mode)
    if state == 'present':
        problem = forward_drop_problem(spec, observed.forward_drops)
        if problem:
            raise TrafficRulesError(problem)
    # the iptables chain only where it can be read and written (the route guard reads one backend)
    drops = observed.forward_drops if tools.iptables_save else ()
    desired = pruned_state(observed, spec.mode) if state == 'prune' else desired_state(spec, state, drops)
    ops = plan(observed, desired)
    if ops and not check_mode:
        apply(run, tools, ops, spec.mode)
    return observed, desired, ops


def traffic_rules(run, params, check_mode=False, diff=True, which=None):
    """Entry point of the traffic_rules module."""
    state = params.get('state') or 'present'
    if state in ('absent', 'prune'):
        spec = RuleSpec(params.get('mode') or 'iptables', None, None, False, None,
                        family_def(params.get('family')))
    else:
        spec = rule_spec(params)
    tools = find_tools(which, spec.family)
    if state == 'present':
        check_tools(tools, spec.mode)
        if spec.random_fully is None:
            spec = spec._replace(random_fully=random_fully_supported(run, tools, spec.mode))
    observed, desired, ops = sync(run, spec, tools, check_mode, state)
    result = dict(changed=bool(ops), plan=plan_lines(ops, spec.family), mode=spec.mode, family=spec.family,
                  random_fully=spec.random_fully,
                  spec=dict(spec._asdict()) if state == 'present' else {})
    result['drift'] = []
    if diff or (ops and check_mode):
        before, after = state_text(observed), state_text(desired)
        if diff:
            result['diff'] = dict(before=text(before), after=text(after))
        if ops and check_mode:
            result['drift'] = [drift('%s %s rules' % (family_def(spec.family).label, spec.mode), before, after)]
    return result
