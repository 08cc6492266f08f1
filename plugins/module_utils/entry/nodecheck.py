# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_check module: one look at a node before step 06 changes it, and the route guard's
hold. It reports what the role's later tasks need to know, so that they run only when there is
something to change: kubeasz's default CNI config, the route guard's files (their SHA-1) and
whether it runs, and which address families have flannel state to keep or remove.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import shutil

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import needs_write, read_text, remove_file, write_atomic
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.entry.fastpath import converge, dataplane_only, node_plan
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import ROUTE_PROTOCOL
from ansible_collections.kubeasz.network.plugins.module_utils.plan.trafficrules import EXTRA_PATH, IPT_CHAINS
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.cli import guard_pids, read_pid

GUARD_UNIT = 'flannel-route-guard.service'
GUARD_FILE = 'flannel-route-guard'
OLD_LAYOUT = 'ansible_collections'   # the guard was a script beside a copy of module_utils
HOLD_TEXT = 'held by kubeasz.network.flannel during 06\n'


def sha1(path):
    """The SHA-1 of a file, '' when there is none."""
    try:
        with open(path, 'rb') as handle:
            return hashlib.sha1(handle.read()).hexdigest()
    except (IOError, OSError):
        return ''


def _which(name):
    return shutil.which(name, path=os.pathsep.join([os.environ.get('PATH', '')] + list(EXTRA_PATH)))


def _ok(run, argv):
    return argv[0] is not None and run(argv)[0] == 0


def ipv6_state(run):
    """Whether flannel's IPv6 state is on the node: a flannel-v6.<n> device, an IPv6 route of
    flannel's protocol, or its ip6 rules (nft table or ip6tables chain)."""
    if any(IPV6.device_pattern.match(link.get('ifname') or '') for link in iproute.observe(run, ['link'])['link']):
        return True
    try:
        if iproute.observe(run, ['route'], {'route': ['proto', str(ROUTE_PROTOCOL)]}, IPV6)['route']:
            return True
    except iproute.IprouteError:   # a kernel without IPv6 has no IPv6 state
        pass
    return (_ok(run, [_which('nft'), 'list', 'table', IPV6.nft_family, IPV6.nft_table])
            or _ok(run, [_which('ip6tables'), '-w', '5', '-t', IPT_CHAINS[0].table, '-S', IPT_CHAINS[0].chain]))


def guard_running(run, params):
    """Exactly one guard runs: the systemd unit active and enabled, or the one process of this
    network namespace that the pid file names."""
    if params['runner'] == 'systemd':
        return all(run(['systemctl', verb, '--quiet', GUARD_UNIT])[0] == 0 for verb in ('is-active', 'is-enabled'))
    pid = read_pid(params['guard_pid_file'])
    return pid is not None and guard_pids() == [pid]


def guard_files(params):
    """The route guard's files on a node (the unit only with systemd)."""
    return (([params['guard_unit']] if params['runner'] == 'systemd' else [])
            + [params['guard_dir'], params['guard_state'], params['guard_pid_file'], params['guard_log_file']])


def hold(path):
    """Write the route guard's hold: it waits while the role changes the routes."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory)
    with open(path, 'w') as handle:
        handle.write(HOLD_TEXT)


def node_check(run, params, check_mode=False, diff=False):
    """The look at the node and, with ``plan``, whether it is in plan (fastpath.node_plan); with
    ``plan['converge']`` a node whose dataplane alone differs is brought to plan here (in check mode:
    what that would change), the route guard held meanwhile (fastpath.converge). Then the hold for
    the full path, unless check mode or the node is in plan."""
    families = [f for f in FAMILIES if f in (params.get('families') or [])]
    # a family that is off is removed: IPv4 always (its removal is cheap), IPv6 when it is there
    ipv6 = IPV6 in families or ipv6_state(run)
    look = dict(
        changed=False,
        families=[IPV4] + ([IPV6] if ipv6 else []),
        default_cni_conf=os.path.exists(params['default_cni_conf']),
        old_layout=os.path.exists(os.path.join(params['guard_dir'], OLD_LAYOUT)),
        guard=sha1(os.path.join(params['guard_dir'], GUARD_FILE)),
        unit=sha1(params['guard_unit']),
        state=sha1(params['guard_state']),
        running=guard_running(run, params),
        found=[path for path in guard_files(params) if os.path.exists(path)],
        in_plan=False,
    )
    if params.get('plan'):
        look.update(node_plan(run, params['plan'], look))
        if params['plan'].get('converge') and dataplane_only(look):
            held = params.get('hold') and not check_mode
            if held:
                hold(params['hold'])
            try:
                converge(run, params['plan'], look, params['guard_state'], check_mode, diff)
            finally:
                if held:
                    remove_file(params['hold'])
        look.pop('guard_decision', None)   # route_guard_state's decision: internal
    if params.get('hold') and not check_mode and not look['in_plan']:
        hold(params['hold'])
    return look


def write_files(run, params, check_mode=False, diff=False):
    """route_guard_state's node side: write each file of ``params['write']`` ({path, content, mode,
    diff}) that differs, atomically, its directory made (not in check mode). Returns the result:
    ``written`` (the paths) and the --diff of those with ``diff``."""
    written, diffs = [], []
    for item in params['write']:
        path, content, mode = item['path'], item['content'], int(item.get('mode') or '0644', 8)
        if not needs_write(path, content, mode=mode):
            continue
        before = read_text(path) if item.get('diff') else None
        if not check_mode:
            write_atomic(path, content, mode=mode, dir_mode=0o755)
        written.append(path)
        if item.get('diff'):
            diffs.append(dict(before=before or '', after=content, before_header=path, after_header=path))
    return dict(changed=bool(written), written=written, diff=diffs)
