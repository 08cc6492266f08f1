# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad configs through the real playbooks/06.network.yml: every one fails on the controller.

The inventory's hosts point at a closed loopback port (ssh to 127.0.0.1:1), so touching a host
would show UNREACHABLE. Without pytest-xdist all playbooks of this module run concurrently up
front; under pytest-xdist each worker runs only the cases it was given.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, 'playbooks', '06.network.yml')
CONFIG = os.path.join(REPO, 'clusters', 'example', 'config.yml')
INVENTORY = """\
[etcd]
m1
[kube_master]
m1 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1
[kube_node]
n1 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1
n2 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1
[all:vars]
CLUSTER_NETWORK="flannel"
CLUSTER_CIDR="172.20.0.0/16"
SERVICE_CIDR="10.68.0.0/16"
PROXY_MODE="ipvs"
CONTAINER_RUNTIME="containerd"
bin_dir="/opt/kube/bin"
base_dir="/etc/kubeasz"
ansible_python_interpreter=/usr/bin/python3
"""

# (key the message must name, extra vars)
CASES = [
    ('CLUSTER_NETWORK', {'CLUSTER_NETWORK': 'calico'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': 'fd00::/48'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.0.0/16,fd00::/48'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '172.20.1.0/16'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '10.0.0.0/30', 'NODE_CIDR_LEN': 30}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 31}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 16}),
    ('NODE_CIDR_LEN', {'NODE_CIDR_LEN': 'big'}),
    ('FLANNEL_SUBNET_MIN', {'FLANNEL_SUBNET_MIN': '172.21.0.0'}),
    ('FLANNEL_SUBNET_MAX', {'FLANNEL_SUBNET_MAX': '172.20.3.7'}),
    ('FLANNEL_BACKEND', {'FLANNEL_BACKEND': 'wireguard'}),
    ('DIRECT_ROUTING', {'DIRECT_ROUTING': 'yes'}),
    ('DIRECT_ROUTING', {'DIRECT_ROUTING': 'false'}),
    ('FLANNEL_VNI', {'FLANNEL_VNI': 0}),
    ('FLANNEL_VNI', {'FLANNEL_VNI': 16777216}),
    ('FLANNEL_PORT', {'FLANNEL_PORT': 70000}),
    ('FLANNEL_MTU', {'FLANNEL_MTU': 100}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'a-very-long-interface-name'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'eth/0'}),
    ('FLANNEL_IFACE', {'FLANNEL_IFACE': 'eth0', 'FLANNEL_IFACE_REGEX': '^eth'}),
    ('FLANNEL_IFACE_REGEX', {'FLANNEL_IFACE_REGEX': '(eth'}),
    ('FLANNEL_DATAPLANE', {'FLANNEL_DATAPLANE': 'cilium'}),
    ('FLANNEL_NAMESPACE', {'FLANNEL_NAMESPACE': 'default'}),
    ('FLANNEL_SUBNET_STORE', {'FLANNEL_SUBNET_STORE': 'file'}),
    ('PROXY_MODE', {'PROXY_MODE': 'userspace'}),
    ('FLANNEL_ENABLE_NFTABLES', {'FLANNEL_ENABLE_NFTABLES': 'nftables'}),
    ('FLANNEL_IPMASQ', {'FLANNEL_IPMASQ': 'true'}),
    ('FLANNEL_ROUTE_GUARD', {'FLANNEL_ROUTE_GUARD': 'no'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '172.20.128.0/20'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '10.68.0.0/99'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '127.0.0.0/16'}),
    ('CLUSTER_CIDR', {'CLUSTER_CIDR': '224.0.0.0/16'}),
    ('SERVICE_CIDR', {'SERVICE_CIDR': '169.254.0.0/16'}),
    ('flannel_cni_plugin_ver', {'flannel_ver': 'v0.29.0'}),
    ('flannel_migrate_namespace', {'flannel_migrate_namespace': 'maybe'}),
    ('cluster_dir', {'cluster_dir': '{{ base_dir }}/clusters/_cluster_name_'}),  # kubeasz's placeholder
]
IDS = ['%02d-%s' % (i, key) for i, (key, dummy) in enumerate(CASES)]
MULTI = {'NODE_CIDR_LEN': 31, 'DIRECT_ROUTING': 'yes', 'FLANNEL_VNI': 'abc', 'FLANNEL_PORT': 70000,
         'FLANNEL_IFACE': 'a/b', 'SERVICE_CIDR': '172.20.0.0/24'}


def ansible_env():
    env = dict(os.environ)
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', ANSIBLE_RETRY_FILES_ENABLED='0')
    return env


def run_case(workdir, name, extra):
    """Run 06.network.yml with config.yml + ``extra``; return (rc, output, cluster_dir)."""
    case_dir = os.path.join(workdir, name)
    os.makedirs(case_dir)
    cluster_dir = os.path.join(case_dir, 'cluster')
    with open(os.path.join(case_dir, 'hosts'), 'w') as f:
        f.write(INVENTORY)
    extra = dict({'cluster_dir': cluster_dir}, **extra)
    with open(os.path.join(case_dir, 'extra.json'), 'w') as f:
        json.dump(extra, f)
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
            '-i', os.path.join(case_dir, 'hosts'), '-e', '@' + CONFIG,
            '-e', '@' + os.path.join(case_dir, 'extra.json'), PLAYBOOK]
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, cluster_dir


class Results(dict):
    """case name -> (rc, output, cluster_dir); a missing case is run on first use."""

    def __init__(self, workdir):
        super(Results, self).__init__()
        self.workdir = workdir

    def __missing__(self, name):
        extra = MULTI if name == 'multi' else CASES[IDS.index(name)][1]
        self[name] = run_case(self.workdir, name, extra)
        return self[name]


@pytest.fixture(scope='module')
def results(request, tmp_path_factory):
    """Without pytest-xdist, run the collected cases' playbooks concurrently up front; under
    xdist (which spreads the cases over its workers) each case runs when its test asks."""
    res = Results(str(tmp_path_factory.mktemp('config-errors')))
    if os.environ.get('PYTEST_XDIST_WORKER'):
        return res
    names = [item.callspec.id for item in request.session.items
             if item.module is request.module and hasattr(item, 'callspec')]
    if any(item.name == 'test_all_problems_at_once' for item in request.session.items):
        names.append('multi')
    with ThreadPoolExecutor(max_workers=max(4, 4 * (os.cpu_count() or 1))) as pool:
        futures = dict((name, pool.submit(run_case, res.workdir, name, MULTI if name == 'multi'
                                          else CASES[IDS.index(name)][1])) for name in names)
        for name, fut in futures.items():
            res[name] = fut.result()
    return res


def assert_failed_on_controller(rc, out, cluster_dir):
    assert rc != 0, out
    assert 'UNREACHABLE' not in out, out
    assert not os.path.exists(cluster_dir) or not os.listdir(cluster_dir), out


@pytest.mark.slow
@pytest.mark.parametrize('key, extra', CASES, ids=IDS)
def test_bad_config_fails_before_any_host(results, request, key, extra):
    rc, out, cluster_dir = results[request.node.callspec.id]
    assert_failed_on_controller(rc, out, cluster_dir)
    assert key in out, out


@pytest.mark.slow
def test_all_problems_at_once(results):
    rc, out, cluster_dir = results['multi']
    assert_failed_on_controller(rc, out, cluster_dir)
    assert 'config.yml has 6 problem(s)' in out, out
    for key in MULTI:
        assert key in out
    assert 'argument_spec' not in out  # only the problems, not the role's spec
