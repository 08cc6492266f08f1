# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Route guard: put flannel's routes back when the kernel dropped them.

A NIC restart (link down/up) deletes every route through that link, and re-creating
``flannel.<VNI>`` deletes the vxlan routes; flanneld never re-adds them. The guard keeps the
node's desired routes (a JSON state file the role writes from ``direct_route``'s result), watches
``ip monitor link route`` and, on a link coming up or a flannel route disappearing, observes the
route table once and re-adds the missing routes with the same plan code as the modules
(``dataplane.plan_routes`` + ``iproute.apply``), debounced, plus a periodic resync.

It only fills holes: a destination that has any route in the main table is left alone (the role,
flanneld or the operator owns it), and it never deletes. While the role changes the routes it
writes a hold file and the guard waits (a hold older than ``HOLD_MAX`` seconds is ignored).

Dual-stack: the state file's IPv6 part (key ``ipv6``) is kept the same way, with ``ip -6``;
the monitor then watches both families.

flanneld's traffic rules (masquerade and forward, ``trafficrules``) are kept too, as flanneld
re-checks its own: every ``RULES_INTERVAL`` seconds the guard reads our chains (or nft table)
once and, when something flushed or changed them, puts them back with the module's own plan.

Standard library only (runs on the node, with or without Ansible).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import ipaddress
import json
import os
import re
import select
import sys
import time
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6

from ansible_collections.kubeasz.network.plugins.module_utils.plan import trafficrules
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError, LeaseError, check_ip, check_net, ifname_problem
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import Route, plan_routes, route_key, route_text
from ansible_collections.kubeasz.network.plugins.module_utils.store.leaserenew import renewal_config

STATE_FILE = '/run/flannel/routes.json'
HOLD_FILE = '/run/flannel/route-guard.hold'
HOLD_MAX = 600.0
INTERVAL = 10.0
RULES_INTERVAL = 1.0
DEBOUNCE = 0.1
RETRY = 0.5
MONITOR_ARGV = ['ip', '-4', '-json', 'monitor', 'link', 'route']
MONITOR_ARGV_DUAL = ['ip', '-json', 'monitor', 'link', 'route']
PROG = 'flannel-route-guard'

# One family's part; ``ipv6`` (of the IPv4 part, the top level of the file) holds the IPv6 part
# or None. IPv6-only: the IPv4 part has no network and no routes.
GuardState = namedtuple('GuardState', ['network', 'subnet', 'backend', 'routes', 'rules', 'ipv6', 'family'])
GuardState.__new__.__defaults__ = (None, IPV4)

_LINK_EVENT = re.compile(r'^(Deleted )?\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>')
_ROUTE_TYPES = ('unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable',
                'prohibit', 'throw', 'nat', 'anycast')


class RouteGuardError(Exception):
    """A state file or route entry the guard cannot use; the message names it."""


# ------------------------------------------------------------------ state file (pure)

def _checked(check, value, what, family):
    """A validator of lease.py, raising RouteGuardError."""
    try:
        return check(value, what, family)
    except LeaseError as exc:
        raise RouteGuardError(str(exc))


def _net(value, what, family):
    return ipaddress.ip_network(_checked(check_net, str(value), what, family)[1])


def route_entry(entry, family):
    """A route of direct_route's ``routes`` (a dict {dst, gateway, dev, onlink}) -> validated Route."""
    if not isinstance(entry, dict):
        raise RouteGuardError('route %r: must be a dict {dst, gateway, dev, onlink}' % (entry,))
    dst = _checked(check_net, str(entry.get('dst')), 'route dst', family)[1]
    gateway = entry.get('gateway')
    gateway = _checked(check_ip, str(gateway), 'route %s gateway' % dst, family) if gateway else None
    dev = entry.get('dev') or None
    if dev is not None and ifname_problem(dev):
        raise RouteGuardError('route %s dev: %r is not an interface name' % (dst, dev))
    onlink = bool(entry.get('onlink'))
    if gateway is None and dev is None:
        raise RouteGuardError('route %s: needs a gateway or a device' % dst)
    if onlink and (gateway is None or dev is None):
        raise RouteGuardError('route %s: onlink needs a gateway and a device' % dst)
    return Route(dst, gateway, dev, onlink)


def load_state(text):
    """The state file's JSON text -> GuardState; RouteGuardError names what is wrong.

    ``{"version": 1, "network": "172.20.0.0/16", "subnet": "172.20.1.0/24",
    "backend": "vxlan", "routes": [{"dst": "172.20.2.0/24", "gateway": "198.18.0.12", "dev": null,
    "onlink": false}, ...],
    "rules": {"mode": "iptables", "network": ..., "subnet": ..., "ip_masq": true,
    "random_fully": true}}`` (routes: direct_route's ``routes``, as it returns them;
    rules is traffic_rules' ``spec``, absent or empty when there are none to keep).
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RouteGuardError('not JSON: %s' % exc)
    if not isinstance(doc, dict):
        raise RouteGuardError('must be a JSON object')
    backend = str(doc.get('backend') or '')
    part6 = doc.get('ipv6')
    if part6 is not None and not isinstance(part6, dict):
        raise RouteGuardError('ipv6: must be a JSON object')
    ipv6 = _load_part(part6, backend, IPV6, 'ipv6.') if part6 else None
    return _load_part(doc, backend, IPV4, '', ipv6)


def state_doc(backend, parts, lease_renewal=None):
    """The state file's document, which load_state reads back, from the modules' results.

    ``parts``: {family: {'network', 'subnet', 'routes' (direct_route's), 'rules' (traffic_rules'
    spec)}} of the families that are on; the IPv4 part at the top level, as before dual-stack
    (IPv6-only: without network, subnet and routes), the IPv6 part under ``ipv6``.
    ``lease_renewal``: leaserenew's settings (etcd store), else None."""
    def part(values):
        return {'network': values.get('network'), 'subnet': values.get('subnet'),
                'routes': list(values.get('routes') or []), 'rules': values.get('rules') or {}}
    doc = dict(part(parts.get('ipv4') or {}), version=1, backend=backend, lease_renewal=lease_renewal)
    if 'ipv6' in parts:
        doc['ipv6'] = part(parts['ipv6'])
    return doc


def state_text(doc):
    """The state file's text: sorted, indented JSON and a newline (compared by its SHA-1)."""
    return json.dumps(doc, indent=4, sort_keys=True, separators=(',', ': '), ensure_ascii=False) + '\n'


def guard_parts(families, lease, results):
    """{family: state part} of the families that are on (state_doc: IPv4's at the top level), from
    a run's lease and its results per family (``link``, ``routes``, ``rules``)."""
    parts = {}
    for family, settings in sorted(families.items()):
        if settings.get('on'):
            mine = results.get(family) or {}
            parts[family] = {'network': settings.get('network'), 'subnet': lease.get(settings['lease_keys']['subnet']),
                             'routes': (mine.get('routes') or {}).get('routes'),
                             'rules': (mine.get('rules') or {}).get('spec')}
    return parts


def guard_decision(args):
    """What of the route guard differs on the node: ``args`` - ``wanted``, ``runner``, ``guard_sha1``,
    ``unit_sha1``, ``backend``, ``families``, ``lease``, ``results`` (per family the dataplane's
    link, routes and rules), ``store``, ``lease_renewal``; ``node`` node_check's look at the node."""
    node = args['node']
    if not args['wanted']:   # removed wherever a file of it is left
        return {'todo': bool(node.get('found')), 'differs': {}, 'state': None, 'state_text': ''}
    if args['results'] is None:   # the flanneld dataplane: no routes of ours to keep
        return {'todo': False, 'differs': {}, 'state': None, 'state_text': ''}
    renewal = None
    if args['store'] == 'etcd':   # the guard's process renews the etcd lease
        renewal = args['lease_renewal']
        renewal = renewal_config(renewal.get('endpoints'), renewal.get('prefix'), args['lease'],
                                 renewal.get('ca'), renewal.get('cert'), renewal.get('key'))
    doc = state_doc(args['backend'], guard_parts(args['families'], args['lease'], args['results']), renewal)
    text = state_text(doc)
    differs = {
        'guard': node.get('guard') != args['guard_sha1'],
        'state': node.get('state') != hashlib.sha1(text.encode('utf-8')).hexdigest(),
        'unit': args['runner'] == 'systemd' and node.get('unit') != args['unit_sha1'],
        'stopped': not node.get('running'),
    }
    return {'todo': any(differs.values()), 'differs': differs, 'state': doc, 'state_text': text}


def files_to_write(args, decision):
    """node_check's files to write for the guard (write_files): each file that differs and has a path."""
    differs, out = decision['differs'], []
    if differs.get('guard') and args['guard_file'] and args['guard_text'] is not None:
        out.append(dict(path=args['guard_file'], content=args['guard_text'], mode='0644', diff=False))
    if differs.get('state') and args['state_file']:
        out.append(dict(path=args['state_file'], content=decision['state_text'], mode='0644', diff=True))
    if differs.get('unit') and args['unit_file'] and args['unit_text'] is not None:
        out.append(dict(path=args['unit_file'], content=args['unit_text'], mode='0644', diff=True))
    return out


def _load_part(doc, backend, family, where, ipv6=None):
    """One family's part of the state file -> GuardState (``where`` prefixes the keys in errors;
    the IPv6 part is there only for an IPv6 network, so it must name it)."""
    network = _net(doc.get('network'), where + 'network', family) if doc.get('network') or family is IPV6 \
        or doc.get('routes') else None
    subnet = _net(doc['subnet'], where + 'subnet', family) if doc.get('subnet') else None
    routes = doc.get('routes')
    routes = [] if routes is None else routes
    if not isinstance(routes, list):
        raise RouteGuardError('%sroutes: must be a list' % where)
    result = []
    for index, raw in enumerate(routes):
        try:
            route = route_entry(raw, family)
        except RouteGuardError as exc:
            raise RouteGuardError('%sroutes[%d]: %s' % (where, index, exc))
        net = ipaddress.ip_network(route.dst)
        if not net.subnet_of(network) or (subnet is not None and net.overlaps(subnet)):
            raise RouteGuardError('%sroutes[%d]: %s is not a peer subnet inside %s'
                                  % (where, index, route.dst, network))
        result.append(route)
    rules = _rules(doc.get('rules'))
    if rules is not None and rules.family != family:
        raise RouteGuardError('%srules: family %s in the %s part' % (where, rules.family, family))
    return GuardState(network, subnet, backend, result, rules, ipv6, family)


def parts(state):
    """The family parts of a state (IPv4 first; a part without a network is left out)."""
    if state is None:
        return []
    return [part for part in (state, state.ipv6) if part is not None and part.network is not None]


def _rules(doc):
    """The state file's traffic rule spec -> decided RuleSpec, or None."""
    if not doc:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get('random_fully'), bool):
        raise RouteGuardError('rules: must be traffic_rules\' spec (a dict with random_fully decided)')
    try:
        return trafficrules.rule_spec(doc)
    except DataplaneError as exc:
        raise RouteGuardError('rules: %s' % exc)


# ------------------------------------------------------------------ events (pure)

def _in_network(dst, state):
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return False
    for part in parts(state):
        if net.version == part.network.version and net.subnet_of(part.network) \
                and not (part.subnet is not None and net == part.subnet):
            return True
    return False


def classify_event(line, state):
    """Why an ``ip monitor`` line calls for a resync, or None.

    Triggers: a link that is up (a NIC back, flannel.N re-created), a route inside the
    cluster network deleted, a connected route appearing (a gateway became reachable).
    A JSON line (newer iproute2) triggers on any link event or route deletion.
    """
    line = (line or '').rstrip()
    if not line or line[0] in ' \t':
        return None
    if line[0] in '[{':
        return _classify_json(line, state)
    match = _LINK_EVENT.match(line)
    if match:
        deleted, name, flags = match.groups()
        flags = flags.split(',')
        return None if deleted or 'UP' not in flags or 'LOWER_UP' not in flags else 'link %s up' % name
    deleted = line.startswith('Deleted ')
    words = line.split()[1 if deleted else 0:]
    if words and words[0] in _ROUTE_TYPES:
        if words[0] != 'unicast':
            return None
        words = words[1:]
    if not words or state is None:
        return None
    if deleted and _in_network(words[0], state):
        return 'route %s deleted' % words[0]
    if not deleted and 'via' not in words and 'kernel' in words and 'link' in words:
        return 'route %s added' % words[0]
    return None


def _classify_json(line, state):
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    for item in doc if isinstance(doc, list) else [doc]:
        if not isinstance(item, dict):
            continue
        if item.get('ifname') and 'UP' in (item.get('flags') or []):
            return 'link %s up' % item['ifname']
        if item.get('deleted') and state is not None and _in_network(str(item.get('dst', '')), state):
            return 'route %s deleted' % item.get('dst')
    return None


# ------------------------------------------------------------------ plan (pure)

def _up_links(observed):
    return set(link.get('ifname') for link in observed.get('link') or []
               if 'UP' in (link.get('flags') or []) and 'NO-CARRIER' not in (link.get('flags') or []))


def _connected(observed, gateway, dev, up):
    """A route without a gateway covering ``gateway`` (on ``dev`` when given) on an up link."""
    ip = ipaddress.ip_address(gateway)
    for route in observed.get('route') or []:
        dst = route.get('dst')
        if route.get('gateway') or not dst or dst == 'default' or route.get('dev') not in up:
            continue
        if dev is not None and route.get('dev') != dev:
            continue
        try:
            if ip in ipaddress.ip_network(dst, strict=False):
                return True
        except ValueError:
            continue
    return False


def applicable(route, observed):
    """Whether the kernel would accept the route now (needs the 'link' and 'route' tables)."""
    up = _up_links(observed)
    if route.dev is not None and route.dev not in up:
        return False
    if route.onlink or route.gateway is None:
        return True
    return _connected(observed, route.gateway, route.dev, up)


def missing_routes(observed, state):
    """Desired routes whose destination has no route at all in the main table."""
    present = set(route_key(r, state.family) for r in observed.get('route') or [])
    return [r for r in state.routes if r.dst not in present]


def plan_missing(observed, state):  # state: one family's part
    """(ops, waiting): ops re-add the missing routes the kernel accepts now, with
    ``dataplane.plan_routes``; waiting lists the missing ones it would refuse (link down,
    gateway not reachable). Never deletes, never replaces an existing route."""
    missing = missing_routes(observed, state)
    ready = [r for r in missing if applicable(r, observed)]
    waiting = [r for r in missing if r not in ready]
    return plan_routes(observed, ready, state.network, state.subnet, state.family, prune=False), waiting


def hold_active(mtime, now, hold_max=HOLD_MAX):
    """A hold file written ``now - mtime`` seconds ago holds the guard (None: no file)."""
    return mtime is not None and -5.0 <= now - mtime <= hold_max


# ------------------------------------------------------------------ the guard (impure)

def log(message, stream=None):
    stream = stream or sys.stderr
    now = time.time()
    stamp = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(now)) + '.%03d' % int(now % 1 * 1000)
    stream.write('%s %s[%d]: %s\n' % (stamp, PROG, os.getpid(), message))
    stream.flush()


class Guard(object):
    """Keeps the state, resyncs on demand; ``serve()`` is the event loop."""

    def __init__(self, state_file, hold_file, run, spawn=None, logger=log,
                 interval=INTERVAL, debounce=DEBOUNCE, clock=time.monotonic,
                 rules_interval=RULES_INTERVAL, which=None):
        self.state_file = state_file
        self.hold_file = hold_file
        self.run = run  # a Runner (iproute)
        self.spawn = spawn  # argv -> a process with a readable stdout: serve() needs it
        self.log = logger
        self.interval = interval
        self.rules_interval = rules_interval
        self.which = which
        self.debounce = debounce
        self.clock = clock
        self.state = None
        self._stamp = None
        self._held = False
        self.stopping = False
        self.wake_fd = None   # serve() wakes when it is readable (signal.set_wakeup_fd)

    def reload(self, force=False):
        """Read the state file when it changed; a broken file keeps nothing to guard."""
        try:
            st = os.stat(self.state_file)
            stamp = (st.st_ino, st.st_mtime, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        if stamp is None:
            self.state = None
            self.log('no state file %s: nothing to guard until the role writes it' % self.state_file)
            return True
        try:
            with open(self.state_file) as handle:
                self.state = load_state(handle.read())
        except (OSError, RouteGuardError) as exc:
            self.state = None
            self.log('state file %s unusable, guarding nothing: %s' % (self.state_file, exc))
            return True
        for part in parts(self.state):
            self.log('guarding %d routes in %s (subnet %s, backend %s)%s' % (
                len(part.routes), part.network, part.subnet, part.backend or '?',
                ' and the %s traffic rules' % part.rules.mode if part.rules else ''))
        return True

    def monitor_argv(self):
        """``ip monitor`` of IPv4, or of both families when the state has an IPv6 part."""
        return MONITOR_ARGV_DUAL if self.state is not None and self.state.ipv6 is not None else MONITOR_ARGV

    def held(self):
        try:
            mtime = os.stat(self.hold_file).st_mtime
        except OSError:
            mtime = None
        held = hold_active(mtime, time.time())
        if held != self._held:
            self.log('held while the role changes routes (%s)' % self.hold_file if held else 'hold released')
            self._held = held
        return held

    def hold_released(self):
        """True once, when a hold has just ended: what was lost while the run held the guard is
        looked at at once, not at the next periodic resync."""
        was = self._held
        return was and not self.held()

    def resync(self, reason):
        """Observe once per family and re-add missing routes; returns the routes still waiting."""
        self.reload()
        guarded = [part for part in parts(self.state) if part.routes]
        if not guarded or self.held():
            return []
        waiting = []
        for part in guarded:
            start = self.clock()
            try:
                observed = iproute.observe(self.run, ['link', 'route'], family=part.family)
                ops, still = plan_missing(observed, part)
                if ops:
                    iproute.apply(self.run, ops, family=part.family)
            except (iproute.IprouteError, OSError, ValueError) as exc:
                self.log('%s: could not re-add routes: %s' % (reason, exc))
                waiting.extend(part.routes)
                continue
            waiting.extend(still)
            if ops:
                self.log('%s: re-added %d route(s) in %.0f ms: %s' % (
                    reason, len(ops), (self.clock() - start) * 1000,
                    '; '.join(route_text(op) for op in ops)))
        return waiting

    def heal_rules(self, reason):
        """Read our traffic rules once per family; put them back when something removed or changed them."""
        self.reload()
        ruled = [part.rules for part in parts(self.state) if part.rules is not None]
        if not ruled or self.held():
            return
        for rules in ruled:
            start = self.clock()
            try:
                tools = trafficrules.mode_tools(trafficrules.find_tools(self.which, rules.family), rules.mode)
                ops = trafficrules.sync(self.run, rules, tools)[2]
            except (DataplaneError, OSError, ValueError) as exc:
                self.log('%s: could not check the traffic rules: %s' % (reason, exc))
                continue
            if ops:
                self.log('%s: restored the traffic rules in %.0f ms: %s' % (
                    reason, (self.clock() - start) * 1000, '; '.join(trafficrules.op_summary(op) for op in ops)))

    # --------------------------------------------------------------- event loop
    def _start_monitor(self):
        argv = self.monitor_argv()
        try:
            proc = self.spawn(argv)
        except OSError as exc:
            self.log('cannot start %s: %s' % (' '.join(argv), exc))
            return None
        proc.argv = argv
        return proc

    def serve(self):
        """Run until SIGTERM/SIGINT: monitor events, debounce, resync, periodic safety net."""
        self.reload(force=True)
        monitor, buf = self._start_monitor(), b''
        due, reasons = self.clock(), ['start']
        periodic = self.clock() + self.interval
        rules_due = self.clock()
        restart_at = None
        try:
            while not self.stopping:
                now = self.clock()
                if monitor is None and restart_at is not None and now >= restart_at:
                    monitor, buf, restart_at = self._start_monitor(), b'', None
                    due, reasons = now, reasons + ['monitor restarted']
                if self.hold_released():
                    due, reasons, rules_due = now, reasons + ['hold released'], now
                if now >= periodic:
                    periodic = now + self.interval
                    if due is None:
                        due, reasons = now, ['periodic resync']
                if due is not None and now >= due:
                    if self.reload():
                        reasons.append('state file changed')
                    waiting = self.resync(', '.join(dict.fromkeys(reasons)))
                    due, reasons = (now + RETRY, ['retry']) if waiting else (None, [])
                elif self.reload():
                    due, reasons = now, reasons + ['state file changed']
                if monitor is not None and monitor.argv != self.monitor_argv():  # IPv6 turned on or off
                    monitor.terminate()
                    monitor.wait()
                    monitor, buf = self._start_monitor(), b''
                if now >= rules_due:
                    rules_due = now + self.rules_interval
                    self.heal_rules('rules check')
                wake = min(x for x in (due, periodic, restart_at, rules_due, now + 1.0) if x is not None)
                fds = ([monitor.stdout] if monitor is not None else []) + ([self.wake_fd] if self.wake_fd is not None else [])
                try:
                    ready = select.select(fds, [], [], max(0.0, wake - self.clock()))[0]
                except (OSError, ValueError, select.error):
                    ready = []
                if self.wake_fd in ready:   # a signal: SIGTERM stops the guard now, not after the wait
                    os.read(self.wake_fd, 512)
                    continue
                if not ready:
                    continue
                chunk = os.read(monitor.stdout.fileno(), 65536)
                if not chunk:
                    self.log('%s exited (rc %s): restarting it' % (' '.join(monitor.argv), monitor.wait()))
                    monitor, restart_at = None, self.clock() + 1.0
                    continue
                buf += chunk
                lines = buf.split(b'\n')
                buf = lines.pop()
                for raw in lines:
                    reason = classify_event(raw.decode('utf-8', 'replace'), self.state)
                    if reason:
                        reasons.append(reason)
                        if due is None:
                            due = self.clock() + self.debounce
        finally:
            if monitor is not None:
                monitor.terminate()
                monitor.wait()
        self.log('stopped')
