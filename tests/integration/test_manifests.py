# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kube-flannel manifests rendered by the real playbook (``--tags manifest``, no host touched).

Each manifest is validated with kubernetes-validate (strict) against Kubernetes 1.30.0 and the
newest version the package knows; its documents, ConfigMap JSON, checksum annotation and
flanneld arguments are checked. One is rendered from a kubeasz 3.7 cluster folder
(fixtures/kubeasz-3.7: hosts and config.yml as `ezctl new` writes them) and must apply over the
objects kubeasz's own flannel role creates.
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

from ansible_collections.kubeasz.network.plugins.module_utils.model.cniconf import checksum, cni_conf

from test_config_errors import INVENTORY, REPO, ansible_env  # noqa: E402 pylint: disable=import-error

PLAYBOOK = os.path.join(REPO, 'playbooks', '06.network.yml')
CONFIG = os.path.join(REPO, 'clusters', 'example', 'config.yml')
KUBEASZ_FOLDER = os.path.join(REPO, 'tests', 'integration', 'fixtures', 'kubeasz-3.7')
ANNOTATION = 'kubeasz.network/config-checksum'
MATRIX = dict(('%s-dr%s-%s' % (b, str(dr).lower(), ns),
               {'FLANNEL_BACKEND': b, 'DIRECT_ROUTING': dr, 'FLANNEL_NAMESPACE': ns})
              for b, dr, ns in itertools.product(['vxlan', 'host-gw'], [False, True], ['kube-flannel', 'kube-system']))
EXTRA = {
    'iface': {'FLANNEL_IFACE': 'eth1'},
    'iface-regex': {'FLANNEL_IFACE_REGEX': '^(eth|ens)[0-9]+$'},
    'vni7': {'FLANNEL_VNI': 7},
    'no-masq-nft': {'FLANNEL_IPMASQ': False, 'PROXY_MODE': 'nftables', 'FLANNEL_ENABLE_NFTABLES': 'PROXY_MODE'},
    'upstream-registry': {'local_registry': ''},
    'flannel-v0.26.7': {'flannel_ver': 'v0.26.7'},
    'flannel-v0.28.5': {'flannel_ver': 'v0.28.5'},
    'flannelVer': {'flannel_ver': '{{ flannelVer }}', 'flannelVer': 'v0.27.4'},
}
CASES = dict(MATRIX, **EXTRA)
KINDS_KUBE_FLANNEL = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ServiceAccount', 'ConfigMap', 'DaemonSet']
# kubeasz 3.7.0 (roles/flannel/templates/kube-flannel.yaml.j2, ezdown): what its own flannel role
# leaves on a cluster, which our manifest must apply over
KUBEASZ_NAMESPACE = 'kube-system'
KUBEASZ_NAMES = {'ClusterRole': 'flannel', 'ClusterRoleBinding': 'flannel', 'ServiceAccount': 'flannel',
                 'ConfigMap': 'kube-flannel-cfg', 'DaemonSet': 'kube-flannel-ds'}
KUBEASZ_SELECTOR = {'app': 'flannel', 'k8s-app': 'flannel'}
KUBEASZ_LABELS = {'tier': 'node', 'app': 'flannel', 'k8s-app': 'flannel'}
KUBEASZ_FLANNEL_IMAGE = 'easzlab.io.local:5000/flannel/flannel:v0.28.9'
KUBEASZ_CNI_PLUGIN_IMAGE = 'easzlab.io.local:5000/flannel/flannel-cni-plugin:v1.9.1-flannel3'
FLANNELD_ARGS = ['--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081']


def newest_k8s():
    from kubernetes_validate.utils import latest_version
    return latest_version()


def render(workdir, name, extra, hosts=None, config=CONFIG):
    """Render one manifest; hosts and config default to the test inventory and the example config.yml."""
    case_dir = os.path.join(workdir, name)
    os.makedirs(case_dir)
    if hosts is None:
        hosts = os.path.join(case_dir, 'hosts')
        with open(hosts, 'w') as f:
            f.write(INVENTORY)
    cluster_dir = os.path.join(case_dir, 'cluster')
    with open(os.path.join(case_dir, 'extra.json'), 'w') as f:
        json.dump(dict(extra, cluster_dir=cluster_dir), f)
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
            '-i', hosts, '-e', '@' + config,
            '-e', '@' + os.path.join(case_dir, 'extra.json'), '--tags', 'manifest', PLAYBOOK]
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, os.path.join(cluster_dir, 'yml', 'flannel.yaml')


@pytest.fixture(scope='module')
def manifests(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('manifests'))
    with ThreadPoolExecutor(max_workers=max(4, 4 * (os.cpu_count() or 1))) as pool:
        futures = dict((name, pool.submit(render, workdir, name, extra)) for name, extra in CASES.items())
        futures['kubeasz-3.7'] = pool.submit(render, workdir, 'kubeasz-3.7', {},
                                             os.path.join(KUBEASZ_FOLDER, 'hosts'),
                                             os.path.join(KUBEASZ_FOLDER, 'config.yml'))
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


def pod_spec(docs):
    return docs_by_kind(docs)['DaemonSet']['spec']['template']['spec']


def images(docs):
    """Image of each container, init containers first: install-cni-plugin, install-cni, kube-flannel."""
    spec = pod_spec(docs)
    return dict((c['name'], c['image']) for c in spec['initContainers'] + spec['containers'])


@pytest.mark.slow
@pytest.mark.parametrize('version', ['1.30.0', 'newest'])
def test_kubernetes_validate_strict(manifests, version):
    version = newest_k8s() if version == 'newest' else version
    paths = [path for path, dummy, dummy2 in manifests.values()]
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'kubernetes-validate'),
                           '--strict', '-k', version] + paths,
                          capture_output=True, text=True, check=False)
    report = proc.stdout + proc.stderr  # the report is stdout; stderr only explains a failure
    assert proc.returncode == 0, report
    ndocs = sum(len(docs) for dummy, dummy2, docs in manifests.values())
    assert proc.stdout.count(' passed for resource ') == ndocs, report
    assert 'ERROR' not in proc.stdout and 'WARN' not in proc.stdout, report


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
        # as kubeasz's template: DirectRouting only when true, flannel's default VNI left out
        assert net_conf['Backend'] == dict({'Type': 'vxlan'}, **({'DirectRouting': True} if case['DIRECT_ROUTING'] else {}))
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
    install_cni = spec['initContainers'][1]
    assert install_cni['command'] == ['/opt/bin/install-conf']
    assert install_cni['args'] == ['/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']
    main = spec['containers'][0]
    assert main['args'] == FLANNELD_ARGS
    assert main['ports'] == [{'name': 'healthz', 'containerPort': 8081, 'protocol': 'TCP'}]
    assert main['livenessProbe'] == {'httpGet': {'path': '/healthz', 'port': 'healthz'},
                                     'initialDelaySeconds': 10, 'periodSeconds': 30}
    assert main['readinessProbe'] == {'httpGet': {'path': '/readyz', 'port': 'healthz'},
                                      'initialDelaySeconds': 5, 'periodSeconds': 10}
    assert main['securityContext'] == {'privileged': False, 'capabilities': {'add': ['NET_ADMIN', 'NET_RAW']}}
    assert [(e['name'], e.get('value')) for e in main['env']] == [
        ('POD_NAME', None), ('POD_NAMESPACE', None), ('EVENT_QUEUE_DEPTH', '5000'), ('CONT_WHEN_CACHE_NOT_READY', 'false')]
    assert main['resources']['requests'] == {'cpu': '100m', 'memory': '50Mi'}
    volumes = dict((v['name'], v) for v in spec['volumes'])
    assert volumes['run']['hostPath']['path'] == '/run/flannel'
    assert volumes['cni-plugin']['hostPath']['path'] == '/opt/cni/bin'
    assert volumes['cni']['hostPath']['path'] == '/etc/cni/net.d'
    assert volumes['flannel-cfg']['configMap']['name'] == 'kube-flannel-cfg'
    assert volumes['xtables-lock']['hostPath'] == {'path': '/run/xtables.lock', 'type': 'FileOrCreate'}
    assert docs_by_kind(docs)['DaemonSet']['spec']['selector']['matchLabels'] == KUBEASZ_SELECTOR
    assert images(docs) == {'install-cni-plugin': KUBEASZ_CNI_PLUGIN_IMAGE, 'install-cni': KUBEASZ_FLANNEL_IMAGE,
                            'kube-flannel': KUBEASZ_FLANNEL_IMAGE}


@pytest.mark.slow
def test_checksum_changes_with_config(manifests):
    def annotation(name):
        docs = manifests[name][2]
        return docs_by_kind(docs)['DaemonSet']['spec']['template']['metadata']['annotations'][ANNOTATION]
    vxlan = [annotation(n) for n in MATRIX if n.startswith('vxlan') and n.endswith('kube-system')]
    host_gw = annotation('host-gw-drfalse-kube-system')
    assert len(set(vxlan + [host_gw, annotation('vni7')])) == 4
    # the namespace is not part of net-conf.json: same config, same checksum
    assert annotation('vxlan-drfalse-kube-flannel') == annotation('vxlan-drfalse-kube-system')


@pytest.mark.slow
def test_iface_args(manifests):
    assert daemonset_args(manifests['iface'][2]) == ['--ip-masq', '--kube-subnet-mgr', '--iface=eth1', '--healthz-port=8081']
    assert daemonset_args(manifests['iface-regex'][2]) == [
        '--ip-masq', '--kube-subnet-mgr', '--iface-regex=^(eth|ens)[0-9]+$', '--healthz-port=8081']
    assert all(not a.startswith('--iface') for a in daemonset_args(manifests['vxlan-drfalse-kube-system'][2]))


@pytest.mark.slow
def test_no_ip_masq_and_nftables(manifests):
    docs = manifests['no-masq-nft'][2]
    assert daemonset_args(docs) == ['--kube-subnet-mgr', '--healthz-port=8081']
    assert json.loads(docs_by_kind(docs)['ConfigMap']['data']['net-conf.json'])['EnableNFTables'] is True


@pytest.mark.slow
def test_no_local_registry_pulls_from_ghcr(manifests):
    assert images(manifests['upstream-registry'][2]) == {
        'install-cni-plugin': 'ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3',
        'install-cni': 'ghcr.io/flannel-io/flannel:v0.28.9', 'kube-flannel': 'ghcr.io/flannel-io/flannel:v0.28.9'}


@pytest.mark.slow
@pytest.mark.parametrize('name, flannel, cni_plugin, install_cni, readiness', [
    ('flannel-v0.26.7', 'v0.26.7', 'v1.6.2-flannel1', ['cp', '-f'], '/healthz'),
    ('flannel-v0.28.5', 'v0.28.5', 'v1.9.1-flannel1', ['cp', '-f'], '/healthz'),
    ('flannelVer', 'v0.27.4', 'v1.8.0-flannel1', ['cp', '-f'], '/healthz'),
])
def test_older_flannel_gets_its_cni_plugin_and_what_its_image_has(manifests, name, flannel, cni_plugin,
                                                                  install_cni, readiness):
    docs = manifests[name][2]
    assert images(docs) == {
        'install-cni-plugin': 'easzlab.io.local:5000/flannel/flannel-cni-plugin:' + cni_plugin,
        'install-cni': 'easzlab.io.local:5000/flannel/flannel:' + flannel,
        'kube-flannel': 'easzlab.io.local:5000/flannel/flannel:' + flannel}
    install = pod_spec(docs)['initContainers'][1]
    assert install['command'] + install['args'][:1] == install_cni  # no /opt/bin/install-conf before v0.28.6
    assert pod_spec(docs)['containers'][0]['readinessProbe']['httpGet']['path'] == readiness  # /readyz: v0.28.9


@pytest.mark.slow
def test_kubeasz_cluster_folder_applies_over_kubeasz_flannel(manifests):
    docs = manifests['kubeasz-3.7'][2]
    assert [d['kind'] for d in docs] == KINDS_KUBE_FLANNEL[1:]  # kube-system exists: no Namespace
    kinds = docs_by_kind(docs)
    assert dict((kind, kinds[kind]['metadata']['name']) for kind in KUBEASZ_NAMES) == KUBEASZ_NAMES
    for kind in ('ServiceAccount', 'ConfigMap', 'DaemonSet'):
        assert kinds[kind]['metadata']['namespace'] == KUBEASZ_NAMESPACE
    assert kinds['ClusterRoleBinding']['subjects'] == [
        {'kind': 'ServiceAccount', 'name': 'flannel', 'namespace': KUBEASZ_NAMESPACE}]
    daemonset = kinds['DaemonSet']
    assert daemonset['spec']['selector']['matchLabels'] == KUBEASZ_SELECTOR
    assert daemonset['metadata']['labels'] == KUBEASZ_LABELS
    assert daemonset['spec']['template']['metadata']['labels'] == KUBEASZ_LABELS
    assert images(docs) == {'install-cni-plugin': KUBEASZ_CNI_PLUGIN_IMAGE, 'install-cni': KUBEASZ_FLANNEL_IMAGE,
                            'kube-flannel': KUBEASZ_FLANNEL_IMAGE}
    assert daemonset_args(docs) == FLANNELD_ARGS
    # kubeasz's own template: "EnableNFTables": false whatever PROXY_MODE (here "nftables") says
    assert json.loads(kinds['ConfigMap']['data']['net-conf.json']) == {
        'Network': '172.20.0.0/16', 'EnableNFTables': False, 'Backend': {'Type': 'vxlan'}}


@pytest.mark.slow
def test_rendering_is_deterministic(manifests, tmp_path):
    digest = hashlib.sha256(manifests['vxlan-drfalse-kube-system'][1].encode()).hexdigest()
    rc, log, path = render(str(tmp_path), 'again', MATRIX['vxlan-drfalse-kube-system'])
    assert rc == 0, log
    with open(path) as f:
        assert hashlib.sha256(f.read().encode()).hexdigest() == digest
