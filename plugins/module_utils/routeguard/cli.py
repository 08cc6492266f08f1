# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``flannel-route-guard`` command: serve (the event loop of ``routeguard.Guard``), and for
nodes without systemd ensure/status/stop of a background guard with a pid file, plus ``once``.
``serve --background`` forks once its imports are done, so a background guard costs one Python
start (node_check starts it so); ``ensure`` starts ``serve`` as a process of its own.

Standard library only (runs on the node, with or without Ansible).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import os
import signal
import sys
import time
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.store import leaserenew
from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import (
    HOLD_FILE, INTERVAL, DEBOUNCE, MONITOR_ARGV, PROG, RULES_INTERVAL, STATE_FILE, Guard, RouteGuardError)

PID_FILE = '/run/flannel/route-guard.pid'
LOG_FILE = '/run/flannel/route-guard.log'
# How the guard starts processes, given by its entry point (roles/flannel/files/flannel_route_guard.py):
# run, a Runner (iproute); spawn(argv), a process whose stdout is read; detach(argv, log_fd);
# fork(log_fd), this process forked (0 in the child, in a session of its own, its output to log_fd).
Processes = namedtuple('Processes', 'run spawn detach fork')


def out(text, stream=None):
    """One line of command output."""
    stream = stream or sys.stdout
    stream.write(text + '\n')
    stream.flush()


def read_pid(pid_file):
    try:
        with open(pid_file) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def is_guard(pid):
    """pid is a running guard (``flannel-route-guard serve``) in our network namespace."""
    if not pid:
        return False
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            argv = handle.read().split(b'\0')
        same_net = os.stat('/proc/%d/ns/net' % pid).st_ino == os.stat('/proc/self/ns/net').st_ino
    except OSError:
        return False
    return same_net and b'serve' in argv and any(arg.endswith(PROG.encode()) for arg in argv)


def guard_pids():
    """Every guard of this network namespace, found by its command line: a pid file under
    /run/flannel is lost with that directory, the guard is not."""
    return sorted(int(name) for name in os.listdir('/proc')
                  if name.isdigit() and int(name) != os.getpid() and is_guard(int(name)))


def _kill(pid, timeout=5.0):
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_guard(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_guard(pid):
        os.kill(pid, signal.SIGKILL)


def stop(pid_file):
    """Stop every guard of this namespace; True when one was running."""
    pids = guard_pids()
    for pid in pids:
        _kill(pid)
    _unlink(pid_file)
    return bool(pids)


def _write_pid(pid_file, pid):
    with open(pid_file + '.tmp', 'w') as handle:
        handle.write('%d\n' % pid)
    os.rename(pid_file + '.tmp', pid_file)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _started(pid, exited, pid_file, log_file):
    """Wait until the guard ``pid`` wrote its pid file (it is ready); ``exited()``: its exit code,
    None while it runs."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and exited() is None:
        if read_pid(pid_file) == pid:
            return pid
        time.sleep(0.005)
    raise RouteGuardError('the guard did not start (rc %s): see %s' % (exited(), log_file))


def daemonize(argv, pid_file, log_file, detach):
    """Start ``argv`` detached (``detach``: new session, stdio to log_file); wait for its pid file."""
    _unlink(pid_file)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        proc = detach(argv + ['--pid-file', pid_file], log_fd)
    finally:
        os.close(log_fd)
    return _started(proc.pid, proc.poll, pid_file, log_file)


def _exit_code(pid):
    """exited() of a forked child for _started: its exit code once it exited, else None (kept: a
    child is reaped once)."""
    codes = []

    def exited():
        if not codes:
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                return None
            codes.append(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
        return codes[0]
    return exited


def _background(args, processes):
    """``serve --background``: fork; the child serves, the parent returns once it is ready."""
    _unlink(args.pid_file)
    log_fd = os.open(args.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = processes.fork(log_fd)
    finally:
        os.close(log_fd)
    if pid == 0:   # the guard; its output goes to the log file
        code = 1
        try:
            code = _serve(args, processes)
        except Exception as exc:   # the parent reports the exit, the log says why
            out('%s: %s' % (PROG, exc), sys.stderr)
        finally:
            os._exit(code)
    out('started %d' % _started(pid, _exit_code(pid), args.pid_file, args.log_file))
    return 0


def _serve(args, processes):
    guard = Guard(args.state, args.hold, processes.run, processes.spawn, interval=args.interval,
                  debounce=args.debounce, rules_interval=args.rules_interval)

    def on_signal(signum, frame):
        guard.stopping = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # select() resumes after a handler until its timeout (PEP 475): a signal wakes it through a pipe,
    # so a stop or restart waits milliseconds, not up to a second
    guard.wake_fd, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    if args.pid_file:
        _write_pid(args.pid_file, os.getpid())
    leaserenew.start(args.state, guard.log, lambda: guard.stopping)  # store=etcd: keep the lease alive
    guard.log('watching %s (resync every %gs, traffic rules every %gs)' % (
        ' '.join(MONITOR_ARGV), args.interval, args.rules_interval))
    try:
        guard.serve()
    finally:
        if args.pid_file and read_pid(args.pid_file) == os.getpid():
            _unlink(args.pid_file)
    return 0


def ensure(pid_file, restart, start):
    """Keep exactly one guard running as a background process (``restart``: a new one);
    ``start()`` starts it and returns its pid. Returns ('running', 'started' or 'restarted', pid)."""
    running = guard_pids()
    if len(running) == 1 and not restart:
        if read_pid(pid_file) != running[0]:
            _write_pid(pid_file, running[0])
        return 'running', running[0]
    stop(pid_file)
    return 'restarted' if running else 'started', start()


def _ensure(args, script, processes):
    argv = [sys.executable, script, 'serve', '--state', args.state, '--hold', args.hold,
            '--interval', str(args.interval), '--debounce', str(args.debounce),
            '--rules-interval', str(args.rules_interval)]
    out('%s %d' % ensure(args.pid_file, args.restart,
                         lambda: daemonize(argv, args.pid_file, args.log_file, processes.detach)))
    return 0


def _once(args, processes):
    guard = Guard(args.state, args.hold, processes.run, logger=out)
    waiting = guard.resync('once')
    guard.heal_rules('once')
    if waiting:
        out('waiting (not accepted by the kernel now): %s' % ', '.join(r.dst for r in waiting))
    return 0


def parser():
    p = argparse.ArgumentParser(prog=PROG, description='Re-add flannel routes the kernel dropped.')
    sub = p.add_subparsers(dest='command')
    sub.required = True
    for name in ('serve', 'ensure', 'once', 'status', 'stop'):
        s = sub.add_parser(name)
        s.add_argument('--state', default=STATE_FILE)
        s.add_argument('--hold', default=HOLD_FILE)
        s.add_argument('--interval', type=float, default=INTERVAL)
        s.add_argument('--debounce', type=float, default=DEBOUNCE)
        s.add_argument('--rules-interval', type=float, default=RULES_INTERVAL)
        s.add_argument('--pid-file', default=None if name == 'serve' else PID_FILE)
        s.add_argument('--log-file', default=LOG_FILE)
        if name == 'ensure':
            s.add_argument('--restart', action='store_true')
        if name == 'serve':
            s.add_argument('--background', action='store_true',
                           help='fork once ready to serve; needs --pid-file (the parent waits for it)')
    return p


def main(processes, argv=None, script=None):
    """Entry point of the ``flannel-route-guard`` script. ``processes`` (run, spawn, detach)
    starts processes: module_utils may not (Ansible's modules use run_command instead)."""
    args = parser().parse_args(argv)
    script = script or os.path.abspath(sys.argv[0])
    try:
        if args.command == 'serve':
            if args.background and not args.pid_file:
                raise RouteGuardError('serve --background needs --pid-file')
            return _background(args, processes) if args.background else _serve(args, processes)
        if args.command == 'ensure':
            return _ensure(args, script, processes)
        if args.command == 'once':
            return _once(args, processes)
        if args.command == 'stop':
            out('stopped' if stop(args.pid_file) else 'not running')
            return 0
        pids = guard_pids()
        out('running %s' % ' '.join(str(pid) for pid in pids) if pids else 'not running')
        return 0 if pids else 3
    except (RouteGuardError, OSError) as exc:
        out('%s: %s' % (PROG, exc), sys.stderr)
        return 1
