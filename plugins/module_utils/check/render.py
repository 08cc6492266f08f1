# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ezctl net check``'s report as a per-pair matrix for people and as an SVG drawing (no
Graphviz: plain SVG text, nodes on a circle, failing pairs red and labelled with their layer).

Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math

from ansible_collections.kubeasz.network.plugins.module_utils.check.texts import PAIR_LAYERS

SHORT = {'underlay': 'UNDERLAY', 'mtu': 'MTU', 'transport': 'TRANSPORT', 'overlay': 'OVERLAY', 'pod': 'POD'}


def _matrix(nodes, pairs, family):
    cells = dict((tuple(p['nodes']), p) for p in pairs if p['family'] == family)
    width = max([len(n) for n in nodes] + [9]) + 1
    lines = [('%-*s' % (width, '') + ''.join('%-*s' % (width, n) for n in nodes)).rstrip()]
    for a in nodes:
        row = '%-*s' % (width, a)
        for b in nodes:
            pair = cells.get(tuple(sorted((a, b))))
            cell = '-' if a == b else '?' if pair is None else SHORT.get(pair['failed'], 'ok')
            row += '%-*s' % (width, cell)
        lines.append(row.rstrip())
    return lines


def _layer_counts(pairs, family):
    parts = []
    for layer in PAIR_LAYERS:
        states = [p['layers'].get(layer) for p in pairs if p['family'] == family]
        passed, failed, skipped = states.count('pass'), states.count('fail'), states.count('skip')
        text = '%s %d/%d' % (layer, passed, len(states))
        if failed:
            text += ' (%d FAIL)' % failed
        elif skipped == len(states):
            text = '%s skipped' % layer
        parts.append(text)
    return ', '.join(parts)


def text(cluster, rep, params):
    nodes = sorted(rep['nodes'])
    lines = ['cluster %s: %d node(s), backend %s%s: %s' % (
        cluster, len(nodes), params['backend'], '+DirectRouting' if params.get('direct_routing') else '',
        'every pair passes every layer' if rep['ok'] else 'FAILED: ' + ', '.join(rep['failed']))]
    if rep['not_deployed']:
        lines.append('flannel not deployed on %s: layers %s skipped' % (
            ', '.join(rep['not_deployed']), ', '.join(rep['skipped_layers'])))
    for family in params['families']:
        lines.append('')
        lines.append('pairs, %s (each cell: the first failing layer, ok when every layer passes or is skipped)'
                     % family.replace('ip', 'IP'))
        lines += ['  ' + line for line in _matrix(nodes, rep['pairs'], family)]
        lines.append('  layers: ' + _layer_counts(rep['pairs'], family))
    if rep['egress']:
        lines.append('pod to outside: ' + ', '.join(
            '%s %s' % (n, '/'.join('%s %s' % (f, v) for f, v in sorted(fam.items())))
            for n, fam in sorted(rep['egress'].items())))
    for f in rep['findings']:
        where = '-'.join(f['nodes']) or 'cluster'
        lines.append('%s %s %s%s: %s' % (f['severity'].upper(), where, f['layer'],
                                         ' (%s)' % f['family'] if f['family'] else '', f['cause']))
        lines.append('     fix: %s' % f['fix'])
    return '\n'.join(lines)


def _esc(value):
    return str(value).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')


def svg(cluster, rep):
    """The nodes on a circle; a line per pair: green when it passes, red and labelled with its
    first failing layer (and family) when not; nodes with a finding of their own are red."""
    nodes = sorted(rep['nodes'])
    size, radius = 560, 200
    centre = size / 2.0
    pos = {}
    for i, node in enumerate(nodes):
        angle = 2 * math.pi * i / max(len(nodes), 1) - math.pi / 2
        pos[node] = (centre + radius * math.cos(angle), centre + 30 + radius * math.sin(angle))
    bad_nodes = set(n for f in rep['findings'] if f['layer'] not in PAIR_LAYERS and f['severity'] == 'fail'
                    for n in f['nodes'])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="Helvetica" '
           'font-size="12">' % (size, size + 60),
           '<text x="10" y="20" font-size="15">net check of %s: %s</text>' % (
               _esc(cluster), 'ok' if rep['ok'] else _esc('FAILED: ' + ', '.join(rep['failed'])))]
    failing = {}
    for pair in rep['pairs']:
        if pair['failed']:
            failing.setdefault(tuple(pair['nodes']), []).append('%s %s' % (pair['failed'], pair['family']))
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            labels = failing.get((a, b))
            colour = '#c0392b' if labels else '#2e8b57'
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%d"%s/>' % (
                x1, y1, x2, y2, colour, 3 if labels else 1, '' if labels else ' stroke-opacity="0.6"'))
            if labels:
                out.append('<text x="%.1f" y="%.1f" fill="#c0392b" text-anchor="middle">%s</text>' % (
                    (x1 + x2) / 2, (y1 + y2) / 2 - 4, _esc(', '.join(labels))))
    for node in nodes:
        x, y = pos[node]
        info = rep['nodes'][node]
        fill = '#f4b6b6' if node in bad_nodes else '#d5e8d4'
        out.append('<rect x="%.1f" y="%.1f" width="120" height="40" rx="8" fill="%s" stroke="black"/>' % (
            x - 60, y - 20, fill))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>' % (x, y - 4, _esc(node)))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>' % (
            x, y + 10, _esc(info.get('public_ip') or info.get('public_ip6') or '?')))
    out.append('</svg>')
    return '\n'.join(out) + '\n'
