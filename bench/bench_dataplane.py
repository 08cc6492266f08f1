# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark observe -> plan -> apply for 1,000 and 5,000 synthetic peers.

Runs itself inside a fresh network namespace (``unshare --net``) holding one
underlay veth; the host's namespace is never touched.  Prints figures and a summary.

    sudo .venv/bin/python bench/bench_dataplane.py [--sizes 1000,5000] [--ansible] [--repeat 7]

Ends with a summary table of issue 3's goals: no-op rerun under 0.1 s at 1,000
peers, cold apply within 3x raw batch, a process count independent of the
number of peers, each module through ``ansible -m`` under 1 s (Ansible's own
start-up, ``ansible -m ping``, reported apart), module peak RSS under 64 MiB.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, '.cache', 'collections'))
sys.path.insert(0, os.path.join(REPO, 'roles', 'flannel', 'files'))  # the guard's entry point

from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.plan.routes import ROUTE_PROTOCOL  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute  # noqa: E402
from flannel_route_guard import subprocess_runner  # noqa: E402

MARK = 'KUBEASZ_BENCH_IN_NETNS'
NETWORK = '10.0.0.0/8'
OWN = '10.255.255.0/24'


def sh(*argv):
    subprocess.run(argv, check=True)


def setup_underlay():
    sh('ip', 'link', 'set', 'lo', 'up')
    sh('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1')
    sh('ip', 'addr', 'add', '198.18.255.254/15', 'dev', 'eth0')
    sh('ip', 'link', 'set', 'eth0', 'up')
    sh('ip', 'link', 'set', 'eth1', 'up')
    sh('ip', 'route', 'add', 'default', 'via', '198.18.0.1')


def peers(count):
    out = []
    for i in range(count):
        # even peers share the underlay segment (direct with DirectRouting), odd ones sit behind the gateway
        ip = ('198.18.%d.%d' if i % 2 == 0 else '100.64.%d.%d') % (i // 250, i % 250 + 2)
        out.append({'subnet': '10.%d.%d.0/24' % (i // 256, i % 256), 'public_ip': ip,
                    'backend_type': 'vxlan', 'vni': 1, 'vtep_mac': vtep_mac(ip, 1)})
    return out


def params(peer_list, direct_routing):
    link = dict(state='present', vni=1, port=0, gbp=False, learning=False, mtu=None, iface='eth0',
                local_ip=None, address=OWN.split('/', maxsplit=1)[0], network=NETWORK, mac=None,
                direct_routing=direct_routing, peers=peer_list)
    route = dict(state='present', backend='vxlan', direct_routing=direct_routing, vni=1,
                 network=NETWORK, subnet=OWN, iface=None, peers=peer_list)
    return link, route


def run_both(run, link, route, check_mode=False):
    """Both modules' work, as a run without --diff does it."""
    r1 = vxlan_link(run, link, check_mode=check_mode, diff=False)
    r2 = direct_route(run, route, check_mode=check_mode, diff=False)
    return r1, r2


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def teardown():
    subprocess.run(['ip', 'link', 'del', 'flannel.1'], check=False, stderr=subprocess.DEVNULL)
    sh('ip', 'route', 'flush', 'proto', str(ROUTE_PROTOCOL))


def raw_batches(ops_text, tmp):
    """Run the same plan from files with plain ip/bridge -batch (the floor)."""
    files = []
    groups = iproute.batches([iproute.Op(*line.split(' ', 1)) for line in ops_text])
    for n, (tool, lines) in enumerate(groups):
        path = os.path.join(tmp, '%02d.%s' % (n, tool))
        with open(path, 'w') as handle:
            handle.write('\n'.join(lines) + '\n')
        files.append((tool, path))
    start = time.perf_counter()
    for tool, path in files:
        sh(tool, '-batch', path)
    return time.perf_counter() - start, len(files)


def ansible_env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                ANSIBLE_LOCALHOST_WARNING='False', ANSIBLE_INVENTORY_UNPARSED_WARNING='False')


def ansible_adhoc(module, args, vars_file):
    """Wall time of ``ansible localhost -m module`` (args may template {{ bench_peers }})."""
    argv = [os.path.join(REPO, '.venv', 'bin', 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
            '-m', module, '-e', '@' + vars_file, '-e', 'ansible_python_interpreter=%s' % sys.executable]
    if args is not None:
        argv += ['-a', json.dumps(args)]
    elapsed, proc = timed(lambda: subprocess.run(argv, cwd=REPO, env=ansible_env(), capture_output=True,
                                                 text=True, check=False))
    ok = proc.returncode == 0 and '"changed": false' in proc.stdout
    return elapsed, ok, proc.stdout[-400:] + proc.stderr[-400:]


def ansible_figures(peer_list, direct_routing, tmp):
    """Each module alone through `ansible -m` on the converged node, and Ansible's own start-up
    (`ansible -m ping` with the same inventory and vars), best of three."""
    vars_file = os.path.join(tmp, 'vars.json')
    with open(vars_file, 'w') as handle:
        json.dump({'bench_peers': peer_list}, handle)
    link, route = params('{{ bench_peers }}', direct_routing)
    figures = {}
    for key, module, args in (('startup', 'ansible.builtin.ping', None),
                              ('vxlan_link', 'kubeasz.network.vxlan_link', link),
                              ('direct_route', 'kubeasz.network.direct_route', route)):
        runs = [ansible_adhoc(module, args, vars_file) for dummy in range(3)]
        if not all(ok for dummy, ok, dummy2 in runs):
            raise SystemExit('ansible -m %s failed: %s' % (module, runs[0][2]))
        figures[key] = min(elapsed for elapsed, dummy, dummy2 in runs)
    return figures


def module_rss(peer_list, direct_routing, tmp):
    """Peak RSS (MiB) and wall time of each module run as its own process, the way Ansible's
    AnsiballZ runs it (``python <module>.py <args file>``: argument spec included), on the
    converged node."""
    link, route = params(peer_list, direct_routing)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, '.cache', 'collections'))
    peaks = {}
    for name, args in (('vxlan_link', link), ('direct_route', route)):
        path = os.path.join(tmp, name + '.json')
        with open(path, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'plugins', 'modules', name + '.py'), path],
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
            dummy, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
            peaks[name + ' time'] = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read()
        if proc.returncode != 0 or b'"changed": false' not in text:
            raise SystemExit('%s failed: %s' % (name, text[-500:]))
        peaks[name] = usage.ru_maxrss / 1024.0
    return peaks


def noop_times(run, link, route, repeat):
    """(median, best) wall time and best CPU time (this process + its ip/bridge children)
    of `repeat` no-op reruns: on a loaded machine the best wall time is the fair figure."""
    times, cpus = [], []
    for dummy in range(repeat):
        before = cpu_time()
        elapsed, (n1, n2) = timed(lambda: run_both(run, link, route))
        cpus.append(cpu_time() - before)
        assert not n1['changed'] and not n2['changed'], (n1['plan'][:3], n2['plan'][:3])
        times.append(elapsed)
    times.sort()
    return times[len(times) // 2], times[0], min(cpus)


def cpu_time():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench(count, direct_routing, with_ansible, repeat):
    peer_list = peers(count)
    link, route = params(peer_list, direct_routing)
    fig = {'count': count, 'dr': direct_routing}
    teardown()

    # memory first (tracemalloc slows Python down, so it gets its own cold run)
    tracemalloc.start()
    run_both(subprocess_runner(), link, route)
    fig['tracemalloc'] = tracemalloc.get_traced_memory()[1] / 2.0 ** 20
    tracemalloc.stop()
    teardown()

    colds = []
    for dummy in range(3):
        teardown()
        run = iproute.counting_runner(subprocess_runner())
        elapsed, (r1, r2) = timed(lambda: run_both(run, link, route))
        colds.append(elapsed)
    fig['cold'], fig['cold_procs'] = min(colds), len(run.calls)
    plan = r1['plan'] + r2['plan']
    fig.update(ops=len(plan), vxlan_peers=len(r1['vxlan_peers']), direct_peers=len(r1['direct_peers']))

    run = iproute.counting_runner(subprocess_runner())
    run_both(run, link, route)
    fig['noop_procs'] = len(run.calls)
    fig['noop'], fig['noop_best'], fig['noop_cpu'] = noop_times(subprocess_runner(), link, route, repeat)
    fig['check'], dummy = timed(lambda: run_both(subprocess_runner(), link, route, check_mode=True))

    with tempfile.TemporaryDirectory() as tmp:
        fig['rss'] = module_rss(peer_list, direct_routing, tmp)
        if with_ansible:
            fig['ansible'] = ansible_figures(peer_list, direct_routing, tmp)
        raws = []
        for dummy in range(3):
            teardown()
            raws.append(raw_batches(plan, tmp))
        fig['raw'], fig['raw_procs'] = min(raws)
    print_case(fig)
    return fig


def print_case(fig):
    print('== %d peers, DirectRouting=%s: plan of %d ops (%d vxlan peers, %d direct)'
          % (fig['count'], fig['dr'], fig['ops'], fig['vxlan_peers'], fig['direct_peers']))
    print('  cold apply  (observe+plan+apply): %8.3f s  (best of 3)  processes: %d' % (fig['cold'], fig['cold_procs']))
    print('  no-op rerun (observe+empty plan): %8.3f s  (median; best %.3f, CPU %.3f s)  processes: %d'
          % (fig['noop'], fig['noop_best'], fig['noop_cpu'], fig['noop_procs']))
    print('  check mode on a converged node:   %8.3f s' % fig['check'])
    print('  raw ip/bridge -batch from files:  %8.3f s  (best of 3)  processes: %d' % (fig['raw'], fig['raw_procs']))
    print('  ratio cold/raw: %.2f' % (fig['cold'] / fig['raw']))
    rss = fig['rss']
    print('  module process alone (python module.py args.json, no-op): vxlan_link %.3f s, %.1f MiB peak RSS;'
          ' direct_route %.3f s, %.1f MiB' % (rss['vxlan_link time'], rss['vxlan_link'],
                                              rss['direct_route time'], rss['direct_route']))
    print('  tracemalloc peak of a cold run: %.1f MiB' % fig['tracemalloc'])
    if 'ansible' in fig:
        a = fig['ansible']
        print('  ansible -m ping (start-up): %.3f s; vxlan_link %.3f s (module %.3f); direct_route %.3f s (module %.3f)'
              % (a['startup'], a['vxlan_link'], a['vxlan_link'] - a['startup'],
                 a['direct_route'], a['direct_route'] - a['startup']))
    sys.stdout.flush()


def summary(figs):
    """One table: each goal of issue 3, the worst case measured, the ratio to the goal."""
    rows = []

    def row(goal, limit, value, unit, where):
        rows.append((goal, '%.3f %s' % (value, unit) if isinstance(value, float) else str(value),
                     limit, where, 'ok' if value is not None and value <= limit[0] else 'MISSED'))

    thousand = [f for f in figs if f['count'] == 1000] or figs
    worst = max(thousand, key=lambda f: f['noop_best'])
    row('no-op rerun at 1,000 peers (best of N)', (0.1, '0.1 s'), worst['noop_best'], 's', _where(worst))
    worst = max(thousand, key=lambda f: f['noop_cpu'])
    row('  same, CPU time incl. ip/bridge', (0.1, '0.1 s'), worst['noop_cpu'], 's', _where(worst))
    worst = max(figs, key=lambda f: f['cold'] / f['raw'])
    row('cold apply / raw batch (best of 3 each)', (3.0, '3x'), worst['cold'] / worst['raw'], 'x', _where(worst))
    procs = sorted(set((f['cold_procs'], f['noop_procs'], f['dr']) for f in figs))
    flat = len(set((c, n) for c, n, dr in procs)) == len(set(dr for c, n, dr in procs))
    rows.append(('processes independent of peers', '-', 'same count', ', '.join(
        'DR=%s: cold %d, no-op %d' % (dr, c, n) for c, n, dr in procs), 'ok' if flat else 'MISSED'))
    big = max(figs, key=lambda f: f['count'])
    worst_rss = max(big['rss']['vxlan_link'], big['rss']['direct_route'])
    row('module peak RSS at %d peers' % big['count'], (64.0, '64 MiB'), worst_rss, 'MiB', _where(big))
    worst = max(thousand, key=lambda f: max(f['rss']['vxlan_link time'], f['rss']['direct_route time']))
    row('one module process alone at 1,000 peers', (1.0, '1 s'),
        max(worst['rss']['vxlan_link time'], worst['rss']['direct_route time']), 's', _where(worst))
    with_ansible = [f for f in thousand if 'ansible' in f]
    if with_ansible:
        worst = max(with_ansible, key=lambda f: max(f['ansible']['vxlan_link'], f['ansible']['direct_route']))
        a = worst['ansible']
        module = max(a['vxlan_link'], a['direct_route']) - a['startup']
        row('one module through `ansible -m` at 1,000 peers, minus start-up', (1.0, '1 s'), module, 's',
            _where(worst))
        row('one module through `ansible -m`, whole command', (1.0, '1 s'),
            max(a['vxlan_link'], a['direct_route']), 's', _where(worst))
        rows.append(('  (Ansible start-up, `ansible -m ping`)', '-', '%.3f s' % a['startup'], _where(worst), 'info'))
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(5)]
    print('\nSummary (goals of issue 3)')
    for r in [HEADER] + rows:
        print('  ' + '  '.join(str(c if not isinstance(c, tuple) else c[1]).ljust(w) for c, w in zip(r, widths)))


HEADER = ('goal', 'measured', 'limit', 'case', 'result')


def _where(fig):
    return '%d peers, DR=%s' % (fig['count'], fig['dr'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='1000,5000')
    parser.add_argument('--ansible', action='store_true', help='also time each module through `ansible -m`')
    parser.add_argument('--direct-routing', default='false,true',
                        help='DirectRouting settings to run, e.g. "false" or "false,true"')
    parser.add_argument('--repeat', type=int, default=7, help='no-op reruns per case (the median is reported)')
    args = parser.parse_args()
    args.direct_routing = [v.strip().lower() in ('1', 'true', 'yes') for v in args.direct_routing.split(',')]
    if os.environ.get(MARK) != '1':
        env = dict(os.environ, **{MARK: '1'})
        return subprocess.call(['unshare', '--net', sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    setup_underlay()
    figs = [bench(int(count), dr, args.ansible, args.repeat)
            for count in args.sizes.split(',') for dr in args.direct_routing]
    summary(figs)
    print('load average at the end: %.2f (2 cores; wall times grow with it)' % os.getloadavg()[0])
    return 0


if __name__ == '__main__':
    sys.exit(main())
