# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the etcd lease store: leases for 1,000 nodes against a real etcd.

Starts Debian's etcd on 127.0.0.1 (free ports, temporary data dir), stops it at the end.

    .venv/bin/python bench/bench_etcd.py [--nodes 1000] [--workers 20]

Figures: 1,000 nodes one after another (each acquire is a range of every lease, a grant and a
create-if-absent transaction), the same with ``--workers`` processes at once (races lost and
retried included), a rerun of every node (range + keepalive, no write), and the HTTP calls per
acquire.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, '.cache', 'collections'))

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, NodePart  # noqa: E402
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import (  # noqa: E402
    EtcdClient, EtcdError, EtcdStore, tls_opener)
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf  # noqa: E402

NET = {'Network': '10.128.0.0/9', 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}}


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_etcd(data_dir):
    url, peer = 'http://127.0.0.1:%d' % free_port(), 'http://127.0.0.1:%d' % free_port()
    proc = subprocess.Popen(['etcd', '--name', 'bench', '--data-dir', data_dir, '--listen-client-urls', url,
                             '--advertise-client-urls', url, '--listen-peer-urls', peer,
                             '--initial-advertise-peer-urls', peer, '--initial-cluster', 'bench=' + peer,
                             '--logger', 'zap', '--log-level', 'error'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            EtcdClient([url], timeout=1).range_prefix('/ready')
            return proc, url
        except EtcdError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)


class Counting:
    """An opener that counts HTTP calls."""

    def __init__(self):
        self.calls = 0
        self.open = tls_opener()

    def __call__(self, *args):
        self.calls += 1
        return self.open(*args)


def node_ip(i):
    return '10.%d.%d.%d' % (i // 62500 % 250, i // 250 % 250, i % 250 + 1)


def acquire_range(url, prefix, first, count, counting=None):
    netconf = parse_net_conf(NET)
    store = EtcdStore(EtcdClient([url], opener=counting), prefix)
    for i in range(first, first + count):
        store.acquire(netconf, Claim('vxlan', 1, {IPV4: NodePart(node_ip(i), '0e:00:00:%02x:%02x:%02x' % (i >> 16 & 255, i >> 8 & 255, i & 255))}), config=NET)


def _worker(args):
    url, prefix, first, count = args
    acquire_range(url, prefix, first, count)


def parallel(url, prefix, nodes, workers):
    per = nodes // workers
    chunks = [(url, prefix, 1 + w * per, per if w < workers - 1 else nodes - per * (workers - 1))
              for w in range(workers)]
    with multiprocessing.get_context('fork').Pool(workers) as pool:
        pool.map(_worker, chunks)


def count_keys(url, prefix):
    return len(EtcdClient([url]).range_prefix(prefix + '/subnets/'))


def timed(func, *args):
    start = time.monotonic()
    func(*args)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--nodes', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=5, help="processes at once (Ansible's default forks: 5)")
    opts = parser.parse_args()
    if not shutil.which('etcd'):
        sys.exit('etcd not found: make deps (Debian etcd-server)')
    data = tempfile.mkdtemp(prefix='bench-etcd-')
    proc, url = start_etcd(data)
    try:
        seq = timed(acquire_range, url, '/seq', 1, opts.nodes)
        assert count_keys(url, '/seq') == opts.nodes
        rerun = timed(acquire_range, url, '/seq', 1, opts.nodes)
        counting = Counting()
        acquire_range(url, '/calls', 1, 1, counting)   # the first node also writes <prefix>/config
        first_calls, counting.calls = counting.calls, 0
        acquire_range(url, '/calls', 2, 1, counting)
        new_calls, counting.calls = counting.calls, 0
        acquire_range(url, '/calls', 2, 1, counting)
        par = timed(parallel, url, '/par', opts.nodes, opts.workers)
        assert count_keys(url, '/par') == opts.nodes
        print('etcd %s (%s), network %s, /%d per node'
              % (subprocess.run(['etcd', '--version'], capture_output=True, text=True, check=False).stdout.split('\n')[0],
                 url, NET['Network'], NET['SubnetLen']))
        print('  %d nodes one after another:     %7.2f s  (%.1f ms per node)' % (opts.nodes, seq, 1000 * seq / opts.nodes))
        print('  %d nodes, %d processes at once: %7.2f s  (%.1f ms per node)'
              % (opts.nodes, opts.workers, par, 1000 * par / opts.nodes))
        print('  rerun of %d nodes (renew only): %7.2f s  (%.1f ms per node)' % (opts.nodes, rerun, 1000 * rerun / opts.nodes))
        print('  HTTP calls per acquire: new lease %d (range, grant, create txn; the first node +%d for the config), '
              'rerun %d (range, keepalive)' % (new_calls, first_calls - new_calls, counting.calls))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == '__main__':
    main()
