# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observe and apply kernel network state through iproute2.

observe: one ``ip -json`` (or ``bridge -json``) process per table.
apply:   one ``ip -batch -`` / ``bridge -batch -`` process per run of
         consecutive operations for the same tool.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import tempfile
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, family_named


def _op(name, fields, tool, fmt):
    """A typed operation of a plan: a namedtuple whose ``-batch`` line is ``fmt % self``, or
    ``fmt(self)`` when fmt is a function."""
    def batch_line(self):
        return fmt % self
    attrs = {'__slots__': (), 'batch_line': fmt if callable(fmt) else batch_line}
    if tool:   # Op has tool as a field
        attrs['tool'] = tool
    return type(name, (namedtuple(name, fields),), attrs)


def route_words(dst, gateway=None, dev=None, onlink=False, protocol=None, metric=None, rtype=None):
    """A route in ``ip route`` syntax (batch lines and --diff text alike)."""
    text = dst if rtype in (None, 'unicast') else '%s %s' % (rtype, dst)
    text += (' via %s' % gateway if gateway else '') + (' dev %s' % dev if dev else '')
    text += (' proto %s' % protocol if protocol not in (None, '') else '')
    text += (' metric %s' % metric if metric not in (None, '') else '')
    return text + (' onlink' if onlink else '')


def route_spec(op):
    """A RouteReplace (or a desired Route and its protocol) in ``ip route`` syntax."""
    return '%s proto %d' % (route_words(*op[:4]), op.protocol)


# The operations of a plan: data, rendered to ip/bridge -batch text only by batch_line() (apply,
# op_text). Op is a raw line ("ip"/"bridge" and one line of its -batch input).
Op = _op('Op', ['tool', 'line'], None, lambda op: op.line)
LinkAdd = _op('LinkAdd', ['name', 'mac', 'mtu', 'vni', 'dev', 'local', 'port', 'learning', 'gbp'], 'ip', lambda op: (
    'link add %s address %s mtu %d type vxlan id %d dev %s local %s dstport %d ttl 0 %s%s'
    % (op[:7] + ('learning' if op.learning else 'nolearning', ' gbp' if op.gbp else ''))))
LinkDel = _op('LinkDel', ['dev'], 'ip', 'link del %s')
LinkUp = _op('LinkUp', ['dev'], 'ip', 'link set %s up')
LinkSet = _op('LinkSet', ['dev', 'attr', 'value'], 'ip', 'link set %s %s %s')   # address, mtu, type vxlan
AddrAdd = _op('AddrAdd', ['cidr', 'dev'], 'ip', 'addr add %s dev %s')
AddrDel = _op('AddrDel', ['cidr', 'dev'], 'ip', 'addr del %s dev %s')
NeighReplace = _op('NeighReplace', ['ip', 'mac', 'dev'], 'ip', 'neigh replace %s lladdr %s dev %s nud permanent')
NeighDel = _op('NeighDel', ['ip', 'dev'], 'ip', 'neigh del %s dev %s')
FdbReplace = _op('FdbReplace', ['mac', 'dev', 'dst'], 'bridge', 'fdb replace %s dev %s dst %s self permanent')
FdbDel = _op('FdbDel', ['mac', 'dev', 'dst'], 'bridge', 'fdb del %s dev %s dst %s self')
RouteReplace = _op('RouteReplace', ['dst', 'gateway', 'dev', 'onlink', 'protocol'], 'ip',
                   lambda op: 'route replace ' + route_spec(op))
RouteDel = _op('RouteDel', ['dst', 'gateway', 'dev', 'metric', 'rtype'], 'ip', lambda op: 'route del %s table main'
               % route_words(op.dst, op.gateway, op.dev, metric=op.metric, rtype=op.rtype))
# a sysctl of the node's (network namespace's) own, e.g. net/ipv6/conf/flannel-v6.1/accept_ra: one
# ``sysctl -q -w`` process per op (slash-separated, so a device name may hold dots)
Sysctl = _op('Sysctl', ['key', 'value'], 'sysctl', '-w %s=%s')


def table_argv(family):
    """The command of each table ``observe()`` reads, for ``family``: routes of the family
    (``ip -4``/``ip -6``), neighbours of IPv6 with ``-6`` (IPv4: every neighbour, as always);
    link, addr and FDB are the same for both."""
    return {
        'link': ['ip', '-json', '-details', 'link', 'show'],
        'addr': ['ip', '-json', 'addr', 'show'],
        'route': ['ip', family.ip_flag, '-json', 'route', 'show', 'table', 'main'],
        'neigh': ['ip'] + list(family.ip_args) + ['-json', 'neigh', 'show'],
        'fdb': ['bridge', '-json', 'fdb', 'show'],
    }


TABLE_ARGV = table_argv(IPV4)

_FAILED_LINE = re.compile(r'Command failed (?:-|\S+):(\d+)')


class IprouteError(Exception):
    """An iproute2 command failed; ``command`` is the failing command text."""

    def __init__(self, command, rc, stderr, applied=(), partial=False):
        self.command = command
        self.rc = rc
        self.stderr = (stderr or '').strip()
        # a batch stops at its first failure: what ran before it stays applied
        self.applied = list(applied)
        self.partial = bool(partial or self.applied)
        super(IprouteError, self).__init__(
            '%s failed (rc=%s): %s' % (command, rc, self.stderr or 'no error output'))


def counting_runner(run):
    """Wrap a Runner; ``wrapped.calls`` lists every argv (for tests and bench)."""
    def counted(argv, data=None):
        counted.calls.append(list(argv))
        return run(argv, data)
    counted.calls = []
    return counted


def parse_json(text):
    """Parse ``ip -json`` output: empty output means an empty table."""
    text = (text or '').strip()
    return json.loads(text) if text else []


def parse_json_lines(text):
    """Parse ``ip -json -batch`` output: one JSON array per command (one json.loads in all)."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    return json.loads('[%s]' % ','.join(lines)) if lines else []


def observe(run, tables, where=None, family=None):
    """Return {table: parsed rows} for the given table names (one process each).

    where: {table: [filter argv]} appended to the table's command, e.g.
    {'link': ['type', 'vxlan'], 'neigh': ['dev', 'flannel.1', 'nud', 'permanent']}:
    the kernel filters, so a node with many entries costs less to read.
    family: the Family whose routes and neighbours are read (``ip -6 -json`` for IPv6; its name is
    taken too, for node_facts' call); None for the tables of no family (link, addr, fdb) and, as
    before the families, IPv4's routes.
    """
    argvs = TABLE_ARGV if family is None else table_argv(family_named(family))
    result = {}
    for table in tables:
        if table not in argvs:
            raise ValueError('unknown table %r (known: %s)' % (table, ', '.join(sorted(argvs))))
        argv = argvs[table] + list((where or {}).get(table) or [])
        rc, out, err = run(argv)
        if rc != 0:
            raise IprouteError(' '.join(argv), rc, err)
        try:
            result[table] = parse_json(out)
        except ValueError as exc:
            raise IprouteError(' '.join(argv), rc, 'unparsable JSON: %s' % exc)
    return result


def sysctl_get(run, key):
    """The value of a sysctl (``sysctl -n``, slash-separated key) as text, None when unreadable."""
    rc, out, dummy = run(['sysctl', '-n', key])
    return out.strip() if rc == 0 else None


def route_get(run, ips, family):
    """Kernel route lookups for ``ips`` in one ``ip [-6] -force -json -batch FILE`` process.

    Returns {ip: [route, ...]}; an address the kernel cannot route maps to [].
    The commands go through a temporary file, not stdin: a runner that writes
    all of stdin before reading stdout (AnsibleModule.run_command does) would
    deadlock once the output outgrows the pipe buffer (a few hundred peers).
    """
    ips = list(dict.fromkeys(ips))
    if not ips:
        return {}
    fd, path = tempfile.mkstemp(prefix='kubeasz-route-get-', suffix='.batch')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(''.join('route get %s\n' % ip for ip in ips))
        argv = ['ip'] + list(family.ip_args) + ['-force', '-json', '-batch', path]
        dummy, out, dummy2 = run(argv)  # unreachable: expected
    finally:
        os.unlink(path)
    found = dict((ip, []) for ip in ips)
    for routes in parse_json_lines(out):
        if routes and routes[0].get('dst') in found:
            found[routes[0]['dst']] = routes
    return found


def batches(ops):
    """Group consecutive ops of the same tool: [(tool, [line, ...]), ...]."""
    groups = []
    for op in ops:
        if groups and groups[-1][0] == op.tool:
            groups[-1][1].append(op.batch_line())
        else:
            groups.append((op.tool, [op.batch_line()]))
    return groups


def failed_index(stderr, lines):
    """Index of the batch line named by "Command failed -:N" in stderr, else None."""
    match = _FAILED_LINE.search(stderr or '')
    if match and 0 < int(match.group(1)) <= len(lines):
        return int(match.group(1)) - 1
    return None


def _command(tool, family):
    """The command a tool's batch runs under: ``ip -6`` for the IPv6 family."""
    return [tool] + list(family.ip_args) if tool == 'ip' else [tool]


def op_text(ops, family):
    """A plan as commands, e.g. ["ip route del ...", "bridge fdb replace ..."] (the modules' ``plan``);
    IPv6: "ip -6 route replace ..."."""
    return ['%s %s' % (' '.join(_command(op.tool, family)), op.batch_line()) for op in ops]


def _sysctl(run, lines, done):
    for line in lines:
        rc, dummy, err = run(['sysctl', '-q'] + line.split())
        if rc != 0:
            raise IprouteError('sysctl %s' % line, rc, err, done)
        done.append('sysctl %s' % line)


def apply(run, ops, family):
    """Apply a plan: one ``<tool> -batch -`` process per group of ops (``ip -6 -batch -`` for
    the IPv6 family), one ``sysctl`` process per Sysctl op."""
    done = []
    for tool, lines in batches(ops):
        if tool == 'sysctl':
            _sysctl(run, lines, done)
            continue
        if tool not in ('ip', 'bridge'):
            raise ValueError('unknown tool %r' % tool)
        command = _command(tool, family)
        name = ' '.join(command)
        rc, dummy, err = run(command + ['-batch', '-'], '\n'.join(lines) + '\n')
        if rc != 0:
            index = failed_index(err, lines)
            if index is None:   # unknown how far the batch got: maybe some of it ran
                raise IprouteError('%s -batch (%d lines)' % (name, len(lines)), rc, err, done, partial=True)
            done += ['%s %s' % (name, line) for line in lines[:index]]
            raise IprouteError('%s %s' % (name, lines[index]), rc, err, done)
        done += ['%s %s' % (name, line) for line in lines]
