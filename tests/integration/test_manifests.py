# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-flannel manifests rendered by the real playbook (``--tags manifest``, no host touched).

Each manifest is validated with kubernetes-validate (strict) against Kubernetes 1.30.0 and the
newest version the package knows; its documents, ConfigMap JSON, checksum annotation and
flanneld arguments are checked.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from ansible_collections.kubeasz.network.plugins.module_utils.cniconf import checksum, cni_conf

from test_config_errors import INVENTORY, REPO, ansible_env  # noqa: E402 pylint: disable=import-error

PLAYBOOK = os.path.join(REPO, 'playbooks', '06.network.yml')
CONFIG = os.path.join(REPO, 'clusters', 'example', 'config.yml')
ANNOTATION = 'kubeasz.network/config-checksum'
MATRIX = dict(('%s-dr%s-%s' % (b, str(dr).lower(), ns),
               {'FLANNEL_BACKEND': b, 'DIRECT_ROUTING': dr, 'FLANNEL_NAMESPACE': ns})
              for b, dr, ns in itertools.product(['vxlan', 'host-gw'], [False, True], ['kube-flannel', 'kube-system']))
EXTRA = {
    'iface': {'FLANNEL_IFACE': 'eth1'},
    'iface-regex': {'FLANNEL_IFACE_REGEX': '^(eth|ens)[0-9]+$'},
    'vni7': {'FLANNEL_VNI': 7},
    'no-masq-nft': {'FLANNEL_IPMASQ': False, 'PROXY_MODE': 'nftables'},
    'registry': {'local_registry': 'easzlab.io.local:5000'},
}
CASES = dict(MATRIX, **EXTRA)
KINDS_KUBE_FLANNEL = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ServiceAccount', 'ConfigMap', 'DaemonSet']


def newest_k8s():
    from kubernetes_validate.utils import latest_version
    return latest_version()


def render(workdir, name, extra):
    case_dir = os.path.join(workdir, name)
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, 'hosts'), 'w') as f:
        f.write(INVENTORY)
    cluster_dir = os.path.join(case_dir, 'cluster')
    with open(os.path.join(case_dir, 'extra.json'), 'w') as f:
        json.dump(dict(extra, cluster_dir=cluster_dir), f)
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
            '-i', os.path.join(case_dir, 'hosts'), '-e', '@' + CONFIG,
            '-e', '@' + os.path.join(case_dir, 'extra.json'), '--tags', 'manifest', PLAYBOOK]
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, os.path.join(cluster_dir, 'yml', 'flannel.yaml')


@pytest.fixture(scope='module')
def manifests(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('manifests'))
    with ThreadPoolExecutor(max_workers=max(4, 4 * (os.cpu_count() or 1))) as pool:
        futures = dict((name, pool.submit(render, workdir, name, extra)) for name, extra in CASES.items())
        out = {}
        for name, fut in futures.items():
            rc, log, path = fut.result()
            assert rc == 0, log
            assert 'UNREACHABLE' not in log, log
            assert oct(os.stat(path).st_mode & 0o777) == '0o644'
            with open(path) as f:
                text = f.read()
            out[name] = (path, text, [d for d in yaml.safe_load_all(text) if d])
        return out


def docs_by_kind(docs):
    return dict((d['kind'], d) for d in docs)


def daemonset_args(docs):
    return docs_by_kind(docs)['DaemonSet']['spec']['template']['spec']['containers'][0]['args']


@pytest.mark.slow
@pytest.mark.parametrize('version', ['1.30.0', 'newest'])
def test_kubernetes_validate_strict(manifests, version):
    version = newest_k8s() if version == 'newest' else version
    paths = [path for path, dummy, dummy2 in manifests.values()]
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'kubernetes-validate'),
                           '--strict', '-k', version] + paths,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout
    ndocs = sum(len(docs) for dummy, dummy2, docs in manifests.values())
    assert proc.stdout.count(' passed for resource ') == ndocs, proc.stdout
    assert 'ERROR' not in proc.stdout and 'WARN' not in proc.stdout, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(MATRIX))
def test_matrix_documents(manifests, name):
    dummy, dummy2, docs = manifests[name]
    case = MATRIX[name]
    ns = case['FLANNEL_NAMESPACE']
    expected = KINDS_KUBE_FLANNEL if ns == 'kube-flannel' else KINDS_KUBE_FLANNEL[1:]
    assert [d['kind'] for d in docs] == expected
    kinds = docs_by_kind(docs)
    if ns == 'kube-flannel':
        assert kinds['Namespace']['metadata']['labels']['pod-security.kubernetes.io/enforce'] == 'privileged'
    for kind in ('ServiceAccount', 'ConfigMap', 'DaemonSet'):
        assert kinds[kind]['metadata']['namespace'] == ns
    assert kinds['ClusterRoleBinding']['subjects'][0]['namespace'] == ns
    data = kinds['ConfigMap']['data']
    net_conf = json.loads(data['net-conf.json'])
    assert net_conf['Network'] == '172.20.0.0/16'
    if case['FLANNEL_BACKEND'] == 'vxlan':
        assert net_conf['Backend'] == {'Type': 'vxlan', 'VNI': 1, 'DirectRouting': case['DIRECT_ROUTING']}
    else:
        assert net_conf['Backend'] == {'Type': 'host-gw'}
    assert json.loads(data['cni-conf.json']) == cni_conf()
    tmpl = kinds['DaemonSet']['spec']['template']
    assert tmpl['metadata']['annotations'][ANNOTATION] == checksum(data['net-conf.json'], data['cni-conf.json'])
    spec = tmpl['spec']
    assert spec['hostNetwork'] is True
    assert spec['priorityClassName'] == 'system-node-critical'
    assert {'operator': 'Exists', 'effect': 'NoSchedule'} in spec['tolerations']
    assert [c['name'] for c in spec['initContainers']] == ['install-cni-plugin', 'install-cni']
    main = spec['containers'][0]
    assert main['args'] == ['--ip-masq', '--kube-subnet-mgr']
    assert main['securityContext'] == {'privileged': False, 'capabilities': {'add': ['NET_ADMIN', 'NET_RAW']}}
    assert [e['name'] for e in main['env']] == ['POD_NAME', 'POD_NAMESPACE', 'EVENT_QUEUE_DEPTH']
    assert main['resources']['requests'] == {'cpu': '100m', 'memory': '50Mi'}
    volumes = dict((v['name'], v) for v in spec['volumes'])
    assert volumes['run']['hostPath']['path'] == '/run/flannel'
    assert volumes['cni-plugin']['hostPath']['path'] == '/opt/cni/bin'
    assert volumes['cni']['hostPath']['path'] == '/etc/cni/net.d'
    assert volumes['flannel-cfg']['configMap']['name'] == 'kube-flannel-cfg'
    assert volumes['xtables-lock']['hostPath'] == {'path': '/run/xtables.lock', 'type': 'FileOrCreate'}
    assert main['image'] == 'docker.io/flannel/flannel:v0.26.7'


@pytest.mark.slow
def test_checksum_changes_with_config(manifests):
    def annotation(name):
        docs = manifests[name][2]
        return docs_by_kind(docs)['DaemonSet']['spec']['template']['metadata']['annotations'][ANNOTATION]
    vxlan = [annotation(n) for n in MATRIX if n.startswith('vxlan') and n.endswith('kube-flannel')]
    host_gw = annotation('host-gw-drfalse-kube-flannel')
    assert len(set(vxlan + [host_gw, annotation('vni7')])) == 4
    # the namespace is not part of net-conf.json: same config, same checksum
    assert annotation('vxlan-drfalse-kube-flannel') == annotation('vxlan-drfalse-kube-system')


@pytest.mark.slow
def test_iface_args(manifests):
    assert daemonset_args(manifests['iface'][2]) == ['--ip-masq', '--kube-subnet-mgr', '--iface=eth1']
    assert daemonset_args(manifests['iface-regex'][2]) == [
        '--ip-masq', '--kube-subnet-mgr', '--iface-regex=^(eth|ens)[0-9]+$']
    assert all(not a.startswith('--iface') for a in daemonset_args(manifests['vxlan-drfalse-kube-flannel'][2]))


@pytest.mark.slow
def test_no_ip_masq_and_nftables(manifests):
    docs = manifests['no-masq-nft'][2]
    assert daemonset_args(docs) == ['--kube-subnet-mgr']
    assert json.loads(docs_by_kind(docs)['ConfigMap']['data']['net-conf.json'])['EnableNFTables'] is True


@pytest.mark.slow
def test_local_registry(manifests):
    spec = docs_by_kind(manifests['registry'][2])['DaemonSet']['spec']['template']['spec']
    assert spec['containers'][0]['image'] == 'easzlab.io.local:5000/flannel/flannel:v0.26.7'
    assert spec['initContainers'][0]['image'] == 'easzlab.io.local:5000/flannel/flannel-cni-plugin:v1.6.2-flannel1'


@pytest.mark.slow
def test_rendering_is_deterministic(manifests, tmp_path):
    digest = hashlib.sha256(manifests['vxlan-drfalse-kube-flannel'][1].encode()).hexdigest()
    rc, log, path = render(str(tmp_path), 'again', MATRIX['vxlan-drfalse-kube-flannel'])
    assert rc == 0, log
    with open(path) as f:
        assert hashlib.sha256(f.read().encode()).hexdigest() == digest
