# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flanneld against our modules on the same leases: for N peer leases in etcd, the time from start
to every peer's route, neighbour and FDB entry programmed on a node.

A lab of one node with the lab's etcd in the fabric namespace (nothing outside the lab). Per N:
N leases (vxlan, off-link public IPs) are written to etcd; then, in the same run,
- flanneld v0.28.9 (tests/realbin/build.sh) starts in the node: the clock runs from its start to
  the first poll (every 0.05 s) that finds N routes on flannel.1, N neighbours and N FDB entries;
- the device is deleted (its entries and routes go with it) and a Python process in the node
  reads the leases from etcd (``EtcdStore.leases()``, as ``flannel_subnet`` does) and runs
  ``vxlan_link`` and ``direct_route`` on them: the clock runs from its start to the same check.
Both include their process start and their read of etcd. The ratio flanneld / ours is printed.

    sudo .venv/bin/python bench/bench_flanneld.py [--sizes 100,1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, 'tests', 'helpers'), os.path.join(REPO, '.cache', 'collections')]

from ezctl.lab import Lab  # noqa: E402
import realflannel  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import vtep_mac  # noqa: E402

NETWORK = '10.0.0.0/8'
CONFIG = {'Network': NETWORK, 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}}

PUT_LEASES = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdClient
client = EtcdClient([sys.argv[2]])
for key, value in json.load(sys.stdin).items():
    client.put(key, value)
'''

OURS = r'''
import json, sys, time
t0 = time.monotonic()
sys.path.insert(0, sys.argv[1])
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdClient, EtcdStore
from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route, vxlan_link
import subprocess
def run(argv, data=None):
    p = subprocess.run(argv, input=data, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr
own = sys.argv[3]
t1 = time.monotonic()
leases, _w = EtcdStore(EtcdClient([sys.argv[2]])).leases()
peers = [l.as_peer() for l in leases if l.as_peer()['subnet'] != own]
vxlan_link(run, dict(state='present', vni=1, port=0, gbp=False, learning=False, mtu=None, iface='eth0',
                     local_ip=None, address=own.split('/')[0], network=sys.argv[4], mac=None,
                     direct_routing=False, peers=peers), diff=False)
t2 = time.monotonic()
direct_route(run, dict(state='present', backend='vxlan', direct_routing=False, vni=1, network=sys.argv[4],
                       subnet=own, iface=None, peers=peers), diff=False)
print(json.dumps({'imports': t1 - t0, 'etcd read + vxlan_link': t2 - t1, 'direct_route': time.monotonic() - t2}))
'''


def lease_docs(count):
    docs = {}
    for i in range(count):
        ip = '198.19.%d.%d' % (i // 250, i % 250 + 2)   # off-link: plain vxlan peers
        subnet = '10.%d.%d.0' % (1 + i // 256, i % 256)
        docs['%s/subnets/%s-24' % (realflannel.PREFIX, subnet)] = json.dumps(
            {'PublicIP': ip, 'PublicIPv6': None, 'BackendType': 'vxlan',
             'BackendData': {'VNI': 1, 'VtepMAC': vtep_mac(ip, 1)}}, separators=(',', ':'))
    return docs


def counts(lab):
    def n(argv):
        return len(json.loads(lab.exec('node1', argv).stdout or '[]'))
    return (n(['ip', '-json', 'route', 'show', 'dev', 'flannel.1']),
            n(['ip', '-json', 'neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent']),
            n(['bridge', '-json', 'fdb', 'show', 'dev', 'flannel.1']))


def wait_programmed(lab, count, start, proc=None, limit=600.0):
    while True:
        link = lab.exec('node1', ['ip', 'link', 'show', 'flannel.1'], check=False).returncode == 0
        if link and all(c >= count for c in counts(lab)):
            return time.monotonic() - start
        if proc is not None and proc.poll() not in (None, 0):
            raise RuntimeError('process ended with %s' % proc.returncode)
        if time.monotonic() - start > limit:
            raise RuntimeError('not programmed after %.0f s: %s' % (limit, counts(lab)))
        time.sleep(0.05)


def reset_node(lab):
    lab.exec('node1', ['ip', 'link', 'del', 'flannel.1'], check=False)
    lab.exec('node1', ['rm', '-f', '/run/flannel/subnet.env'], check=False)


def bench(lab, etcd, bins, count, repeat):
    etcd.ctl('del', '--prefix', realflannel.PREFIX + '/')
    etcd.put(realflannel.PREFIX + '/config', json.dumps(CONFIG))
    subprocess.run(lab.nsenter_argv('fabric') + [sys.executable, '-c', PUT_LEASES, os.path.join(REPO, '.cache', 'collections'),
                                                 realflannel.ETCD_URL],
                   input=json.dumps(lease_docs(count)), text=True, check=True)
    flanneld_times, ours_times, phases = [], [], []
    for _round in range(repeat):
        reset_node(lab)
        start = time.monotonic()
        proc = realflannel.Flanneld(lab, 'node1', bins['flanneld'], ip_masq=False)
        flanneld_times.append(wait_programmed(lab, count, start, proc.proc))
        own = proc.wait_ready()['FLANNEL_SUBNET'].replace('.1/', '.0/')
        proc.stop()
        reset_node(lab)
        start = time.monotonic()
        child = subprocess.run(lab.nsenter_argv('node1') + [sys.executable, '-c', OURS,
                                                            os.path.join(REPO, '.cache', 'collections'),
                                                            realflannel.ETCD_URL, own, NETWORK],
                               capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError('our modules failed: ' + child.stderr[-2000:])
        ours_times.append(wait_programmed(lab, count, start))
        phases.append(json.loads(child.stdout))
    work = statistics.median(p['etcd read + vxlan_link'] + p['direct_route'] for p in phases)
    return statistics.median(flanneld_times), statistics.median(ours_times), work


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='100,1000')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('needs root (the lab builds namespaces)')
    flanneld = realflannel.cache_dir() / ('flannel-%s' % realflannel.FLANNEL_VERSION) / 'bin' / 'flannel'
    if not flanneld.exists():
        subprocess.run(['bash', str(realflannel.BUILD)], check=True)
    bins = {'flanneld': str(flanneld)}
    lab = Lab('bench-flanneld-%d' % os.getpid())
    etcd = None
    rows = []
    try:
        lab.up(nodes=1)
        etcd = realflannel.LabEtcd(lab)
        for count in [int(s) for s in args.sizes.split(',')]:
            theirs, ours, work = bench(lab, etcd, bins, count, args.repeat)
            rows.append((count, theirs, ours, work))
            print('%5d leases: flanneld %.2f s, vxlan_link + direct_route %.2f s (their work without '
                  'Python start-up and imports %.2f s), flanneld / ours %.2fx (%.2fx)'
                  % (count, theirs, ours, work, theirs / ours, theirs / work), flush=True)
    finally:
        if etcd is not None:
            etcd.stop()
        lab.down()
    print('\n| leases | flanneld | ours (process start to programmed) | ours (etcd read + modules) '
          '| flanneld / ours | flanneld / ours (work) |')
    print('|---:|---:|---:|---:|---:|---:|')
    for count, theirs, ours, work in rows:
        print('| %d | %.2f s | %.2f s | %.2f s | %.2fx | %.2fx |'
              % (count, theirs, ours, work, theirs / ours, theirs / work))


if __name__ == '__main__':
    main()
