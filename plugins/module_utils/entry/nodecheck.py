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

import contextlib
import hashlib
import os
import shutil

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import drop, put, remove_file
from ansible_collections.kubeasz.network.plugins.module_utils.base.drift import drift_of_diffs
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.check.verdict import preflight_result
from ansible_collections.kubeasz.network.plugins.module_utils.entry.fastpath import (
    PARTS, converge, dataplane_only, families_results, guard_of, node_plan, subnet_view)
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import node_facts, write_env
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, Lease
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import files_to_write
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import ROUTE_PROTOCOL
from ansible_collections.kubeasz.network.plugins.module_utils.plan.trafficrules import EXTRA_PATH, IPT_CHAINS
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.cli import ensure, guard_pids, read_pid

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


@contextlib.contextmanager
def holding(params, check_mode):
    """The route guard held while the node changes (not in check mode), and released after."""
    held = params.get('hold') and not check_mode
    if held:
        hold(params['hold'])
    try:
        yield
    finally:
        if held:
            remove_file(params['hold'])


def node_check(run, params, check_mode=False, diff=False):
    """The look at the node and, with ``plan``, whether it is in plan (fastpath.node_plan); with
    ``plan['converge']`` a node whose dataplane alone differs is brought to plan here (in check mode:
    what that would change), the route guard held meanwhile (fastpath.converge). Then the hold for
    the full path, unless check mode or the node is in plan. With ``apply`` (the full path's last
    call, the lease taken): the node brought to plan (apply_plan), the route guard held meanwhile."""
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
    if params.get('apply') and not params.get('join'):   # the full path's call after the lease: no look at the store
        with holding(params, check_mode):
            return apply_plan(run, params['plan'], look, params['apply'], params, check_mode, diff)
    if params.get('plan'):
        look.update(node_plan(run, params['plan'], look))
        # add-node's joining node (the file store): programmed in this call, unless it is in plan or
        # was not read whole (the role's path then takes its lease and reports what is wrong)
        if (params.get('join') and not look['in_plan'] and look['lease'] and not look.get('reason')
                and (look.get('probe') is not None or not params['plan'].get('probe'))):
            return join(run, params, look, check_mode, diff)
        if params['plan'].get('converge') and dataplane_only(look):
            with holding(params, check_mode):
                converge(run, params['plan'], look, params['guard_state'], check_mode, diff)
        look.pop('guard_decision', None)   # the route guard's decision: internal
    if params.get('hold') and not check_mode and not look['in_plan']:
        hold(params['hold'])
    return look


def join(run, params, look, check_mode=False, diff=False):
    """add-node's joining node in one call (``join``, the file store): the lease its look planned
    from the lease file (the lease its lease task would take), the preflight's checks of the node
    (``plan['probe']``; a failure stops the call before anything changes), then apply_plan with
    that lease, the route guard held meanwhile. The action plugin then writes the lease to the
    file, and calls again with the lease it wrote if another node took that one meanwhile."""
    plan, lease_result = params['plan'], look['lease']
    look.pop('guard_decision', None)   # apply_plan decides again, with what it programmed
    if plan.get('probe'):
        checked = preflight_result({plan['probe']['node']: look['probe']}, plan['network'], params['join']['nodes'])
        if checked.get('failed'):
            raise DataplaneError(checked['msg'])
        look['warnings'] = list(look.get('warnings') or []) + list(checked.get('warnings') or [])
    given = dict(params['apply'], lease=lease_result, peers=lease_result['peers'])
    with holding(params, check_mode):
        out = apply_plan(run, plan, look, given, params, check_mode, diff)
    out['joined'] = True
    return out


def write_files(items, check_mode=False):
    """Write each file of ``items`` ({path, content, mode, diff}) that differs, atomically, its
    directory made (not in check mode). Returns ``changed``, ``written`` (the paths) and the --diff
    of those with ``diff``."""
    written, diffs = [], []
    for item in items:
        changed, diff = put(item['path'], item['content'], check_mode, int(item.get('mode') or '0644', 8))
        if changed:
            written.append(item['path'])
            if item.get('diff'):
                diffs.append(diff)
    return dict(changed=bool(written), written=written, diff=diffs)


def apply_plan(run, plan, look, given, params, check_mode=False, diff=False):
    """The full path's one call on a node whose lease is taken: everything the role's module tasks
    did after the lease, by the same entry points - kubeasz's default CNI config removed, subnet.env
    and the CNI config written (flannel_subnet's write_env), per family the device with its entries,
    the routes and the rules, then the route guard's files written and the guard started or
    restarted (guard_decision). ``given``: node_check's ``apply`` option (the lease
    as flannel_subnet returned it, the peers' leases, the guard's texts and how it runs); ``look``:
    node_check's look at the node; ``params``: node_check's. In check mode it changes nothing and
    says what the real run will do. Returns the result's keys (``look`` updated)."""
    lease_result = dict(given['lease'], peers=given['peers'])
    lease = Lease.from_peer(lease_result['lease'], 'apply.lease.lease')
    netconf = parse_net_conf(plan['network'])
    changed, cni_diff = drop(params['default_cni_conf'], check_mode)
    diffs = [cni_diff] if changed else []
    if look['old_layout']:   # the guard was a script beside a copy of module_utils
        if not check_mode:
            shutil.rmtree(os.path.join(params['guard_dir'], OLD_LAYOUT), ignore_errors=True)
        changed = True
    view = subnet_view(run, plan, check_mode)
    facts = node_facts(view, netconf)[0]
    env_changed, env_diffs, dummy = write_env(view, netconf, facts, dict(
        (fam, part.subnet) for fam, part in lease.parts.items()))
    diffs.extend(item for item in env_diffs if item.get('before') != item.get('after'))
    if check_mode:   # `ezctl net status` reads the node's files' drift with the lease, as flannel_subnet gives it
        lease_result['drift'] = list(lease_result.get('drift') or []) + drift_of_diffs(diffs)
    results, family_diffs = families_results(run, plan, look['families'], lease_result, check_mode, diff)
    diffs.extend(family_diffs)
    decision = guard_of(plan, look, lease_result['lease'], results, given.get('lease_renewal'))
    guard = start_guard(run, params, given, decision, check_mode)
    diffs.extend(guard.pop('diff'))
    changed = bool(changed or env_changed or guard['changed']
                   or any(results[f][part].get('changed') for f in look['families'] for part in PARTS))
    # in plan now, with the lease the store holds (add-node: the joining node beside its peers' looks)
    look.update(guard, in_plan=True, store_stable=True, applied=True, changed=changed, lease=lease_result,
                dataplane=results, public_ips=[ip for ip in (lease_result.get('public_ip'), lease_result.get('public_ip6')) if ip])
    if diff:
        look['diff'] = diffs
    return look


def start_guard(run, params, given, decision, check_mode=False):
    """The route guard's files that differ written (guard, state, unit), then the guard started,
    or restarted when its script or unit changed. Removal is left to the role (route_guard.yml).
    Returns ``changed``, ``written``, ``restart``, ``started`` and ``diff``."""
    guard_file = os.path.join(params['guard_dir'], GUARD_FILE)
    systemd = params['runner'] == 'systemd'
    write = files_to_write(dict(guard_file=guard_file, guard_text=given.get('guard_text'), state_file=params['guard_state'],
                                unit_file=params['guard_unit'] if systemd else None, unit_text=given.get('unit_text')),
                           decision)
    out = write_files(write, check_mode)
    out['restart'] = bool(set(out['written']) & set([guard_file, params['guard_unit']]))
    out['started'] = False
    if not decision['differs'] or not (out['restart'] or decision['differs'].get('stopped')):
        return out
    out.update(changed=True, started=True)
    if check_mode:
        return out
    if not systemd:   # exactly one guard: one Python start, which forks once it is ready to serve
        try:
            ensure(params['guard_pid_file'], out['restart'], lambda: _started_pid(_run_guard(run, [
                given['python'], guard_file, 'serve', '--background', '--state', params['guard_state'],
                '--hold', params['hold'], '--interval', str(given['interval']), '--pid-file', params['guard_pid_file'],
                '--log-file', params['guard_log_file']])))
        except OSError as exc:   # stopping the guard that ran
            raise DataplaneError('the route guard did not restart: %s' % exc)
        return out
    for argv in ([['systemctl', 'daemon-reload']] if params['guard_unit'] in out['written'] else []) + [
            ['systemctl', 'enable', GUARD_UNIT], ['systemctl', 'restart' if out['restart'] else 'start', GUARD_UNIT]]:
        _run_guard(run, argv)
    return out


def _started_pid(text):
    """The pid that ``serve --background`` printed ('started <pid>')."""
    words = text.split()
    if len(words) != 2 or words[0] != 'started' or not words[1].isdigit():
        raise DataplaneError('the route guard did not start: it said %r' % text.strip())
    return int(words[1])


def _run_guard(run, argv):
    """One step of starting the route guard; its output."""
    rc, stdout, stderr = run(argv)
    if rc != 0:
        raise DataplaneError('the route guard did not start: %s exited %d: %s'
                             % (' '.join(argv), rc, (stderr or stdout).strip()))
    return stdout
