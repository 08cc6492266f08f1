# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark observe -> plan -> apply for 1,000 and 5,000 synthetic peers.

Runs itself inside a fresh network namespace (``unshare --net``) holding one
underlay veth; the host's namespace is never touched.  Prints figures only.

    sudo .venv/bin/python bench/bench_dataplane.py [--sizes 1000,5000] [--ansible]
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

from ansible_collections.kubeasz.network.plugins.module_utils import dataplane as dp  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils import iproute  # noqa: E402

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
                    'backend_type': 'vxlan', 'vni': 1, 'vtep_mac': dp.vtep_mac(ip, 1)})
    return out


def params(peer_list, direct_routing):
    link = dict(state='present', vni=1, port=0, gbp=False, learning=False, mtu=None, iface='eth0',
                local_ip=None, address=OWN.split('/', maxsplit=1)[0], network=NETWORK, mac=None,
                direct_routing=direct_routing, peers=peer_list)
    route = dict(state='present', backend='vxlan', direct_routing=direct_routing, vni=1,
                 network=NETWORK, subnet=OWN, iface=None, peers=peer_list)
    return link, route


def run_both(run, link, route, check_mode=False):
    r1 = dp.vxlan_link(run, link, check_mode=check_mode)
    r2 = dp.direct_route(run, route, check_mode=check_mode)
    return r1, r2


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def teardown():
    subprocess.run(['ip', 'link', 'del', 'flannel.1'], check=False, stderr=subprocess.DEVNULL)
    sh('ip', 'route', 'flush', 'proto', str(dp.ROUTE_PROTOCOL))


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


def ansible_run(peer_list, direct_routing, tmp):
    link, route = params(peer_list, direct_routing)
    play = [{'hosts': 'localhost', 'gather_facts': False, 'connection': 'local',
             'tasks': [{'kubeasz.network.vxlan_link': link}, {'kubeasz.network.direct_route': route}]}]
    path = os.path.join(tmp, 'play.json')  # JSON is YAML
    with open(path, 'w') as handle:
        json.dump(play, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
               ANSIBLE_LOCALHOST_WARNING='False', ANSIBLE_INVENTORY_UNPARSED_WARNING='False')
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(REPO, '.venv', 'bin', 'ansible-playbook'), '-i', 'localhost,', path,
                           '-e', 'ansible_python_interpreter=%s' % sys.executable],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    recap = [line for line in proc.stdout.splitlines() if line.startswith('localhost ')]
    return elapsed, proc.returncode, (recap[-1].split(':', 1)[1].split() if recap else proc.stderr[-300:])


def bench(count, direct_routing, with_ansible):
    peer_list = peers(count)
    link, route = params(peer_list, direct_routing)
    tag = '%d peers, DirectRouting=%s' % (count, direct_routing)
    teardown()

    # memory first (tracemalloc slows Python down, so it gets its own cold run)
    tracemalloc.start()
    run_both(iproute.subprocess_runner(), link, route)
    dummy, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    teardown()

    run = iproute.counting_runner(iproute.subprocess_runner())
    cold, (r1, r2) = timed(lambda: run_both(run, link, route))
    cold_calls = len(run.calls)
    plan = r1['plan'] + r2['plan']

    run = iproute.counting_runner(iproute.subprocess_runner())
    noop, (n1, n2) = timed(lambda: run_both(run, link, route))
    assert not n1['changed'] and not n2['changed'], (n1['plan'][:3], n2['plan'][:3])
    noop_calls = len(run.calls)

    run = iproute.counting_runner(iproute.subprocess_runner())
    check, dummy = timed(lambda: run_both(run, link, route, check_mode=True))

    with tempfile.TemporaryDirectory() as tmp:
        teardown()
        raw, raw_procs = raw_batches(plan, tmp)
        ansible_figures = None
        if with_ansible:
            teardown()
            cold_a = ansible_run(peer_list, direct_routing, tmp)
            noop_a = ansible_run(peer_list, direct_routing, tmp)
            ansible_figures = (cold_a, noop_a)

    print('== %s' % tag)
    print('  plan: %d ops (%d vxlan peers, %d direct)' % (len(plan), len(r1['vxlan_peers']), len(r1['direct_peers'])))
    print('  cold apply  (observe+plan+apply): %8.3f s  processes: %d' % (cold, cold_calls))
    print('  no-op rerun (observe+empty plan): %8.3f s  processes: %d' % (noop, noop_calls))
    print('  check mode on a converged node:   %8.3f s' % check)
    print('  raw ip/bridge -batch from files:  %8.3f s  processes: %d' % (raw, raw_procs))
    print('  ratio cold/raw: %.2f   no-op/raw: %.2f' % (cold / raw if raw else 0, noop / raw if raw else 0))
    print('  peak Python allocations during a cold run (tracemalloc): %.1f MiB' % (peak / 2.0 ** 20))
    if ansible_figures:
        for label, (elapsed, rc, recap) in zip(('cold', 'no-op'), ansible_figures):
            print('  ansible-playbook %-5s (2 tasks): %8.3f s  rc=%d  %s' % (label, elapsed, rc, ' '.join(recap)))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='1000,5000')
    parser.add_argument('--ansible', action='store_true', help='also time the modules through ansible-playbook')
    parser.add_argument('--direct-routing', default='false,true',
                        help='DirectRouting settings to run, e.g. "false" or "false,true"')
    args = parser.parse_args()
    args.direct_routing = [v.strip().lower() in ('1', 'true', 'yes') for v in args.direct_routing.split(',')]
    if os.environ.get(MARK) != '1':
        env = dict(os.environ, **{MARK: '1'})
        return subprocess.call(['unshare', '--net', sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    setup_underlay()
    for count in [int(s) for s in args.sizes.split(',')]:
        for direct_routing in args.direct_routing:
            bench(count, direct_routing, args.ansible)
    print('peak RSS of this process: %.1f MiB' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
    print('peak RSS of children (ip/bridge): %.1f MiB' % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
