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
import subprocess
import tempfile
from collections import namedtuple

# One operation of a plan: ``tool`` is "ip" or "bridge", ``line`` a line of
# ``ip -batch`` / ``bridge -batch`` input, e.g. "route del 10.0.0.0/24".
Op = namedtuple('Op', ['tool', 'line'])

TABLE_ARGV = {
    'link': ['ip', '-json', '-details', 'link', 'show'],
    'addr': ['ip', '-json', 'addr', 'show'],
    'route': ['ip', '-4', '-json', 'route', 'show', 'table', 'main'],
    'neigh': ['ip', '-json', 'neigh', 'show'],
    'fdb': ['bridge', '-json', 'fdb', 'show'],
}

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


def subprocess_runner(prefix=()):
    """A Runner executing argv (prefixed, e.g. ['nsenter', '--net=/proc/1/ns/net'])."""
    prefix = list(prefix)

    def run(argv, data=None):
        proc = subprocess.run(prefix + list(argv), input=data, capture_output=True,
                              text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return run


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


def observe(run, tables, where=None):
    """Return {table: parsed rows} for the given table names (one process each).

    where: {table: [filter argv]} appended to the table's command, e.g.
    {'link': ['type', 'vxlan'], 'neigh': ['dev', 'flannel.1', 'nud', 'permanent']}:
    the kernel filters, so a node with many entries costs less to read.
    """
    result = {}
    for table in tables:
        if table not in TABLE_ARGV:
            raise ValueError('unknown table %r (known: %s)' % (table, ', '.join(sorted(TABLE_ARGV))))
        argv = TABLE_ARGV[table] + list((where or {}).get(table) or [])
        rc, out, err = run(argv)
        if rc != 0:
            raise IprouteError(' '.join(argv), rc, err)
        try:
            result[table] = parse_json(out)
        except ValueError as exc:
            raise IprouteError(' '.join(argv), rc, 'unparsable JSON: %s' % exc)
    return result


def route_get(run, ips):
    """Kernel route lookups for ``ips`` in one ``ip -force -json -batch FILE`` process.

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
        dummy, out, dummy2 = run(['ip', '-force', '-json', '-batch', path])  # unreachable: expected
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
            groups[-1][1].append(op.line)
        else:
            groups.append((op.tool, [op.line]))
    return groups


def failed_index(stderr, lines):
    """Index of the batch line named by "Command failed -:N" in stderr, else None."""
    match = _FAILED_LINE.search(stderr or '')
    if match and 0 < int(match.group(1)) <= len(lines):
        return int(match.group(1)) - 1
    return None


def apply(run, ops):
    """Apply a plan: one ``<tool> -batch -`` process per group of ops."""
    done = []
    for tool, lines in batches(ops):
        if tool not in ('ip', 'bridge'):
            raise ValueError('unknown tool %r' % tool)
        rc, dummy, err = run([tool, '-batch', '-'], '\n'.join(lines) + '\n')
        if rc != 0:
            index = failed_index(err, lines)
            if index is None:   # unknown how far the batch got: maybe some of it ran
                raise IprouteError('%s -batch (%d lines)' % (tool, len(lines)), rc, err, done, partial=True)
            done += ['%s %s' % (tool, line) for line in lines[:index]]
            raise IprouteError('%s %s' % (tool, lines[index]), rc, err, done)
        done += ['%s %s' % (tool, line) for line in lines]
