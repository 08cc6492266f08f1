# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a user gets it: the built tarball, installed outside the repository.

`ansible-galaxy collection build` makes the tarball from a copy of the checkout in which a user's
cluster folders, keys and kubeconfigs are planted (none may ship: the tarball is an allowlist),
galaxy-importer runs Galaxy's import checks on it offline, `ansible-galaxy collection install
--offline` puts it into a temporary collections path, and from a folder outside the repository
(no ansible.cfg of ours) `ansible-doc` documents every plugin and the role, every playbook in the
tarball runs by its FQCN, and a playbook of the user's own renders the manifest with the role
`kubeasz.network.flannel`. ansible-builder reads the installed collection's execution environment
requirements and makes a build context from the definition README.md shows. No root needed.
Tools' output is parsed from stdout alone; stderr only explains a failure.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# development artifacts: none may be in the tarball (fnmatch on the member path)
FORBIDDEN = [
    '.ansible', '.ansible/*', '*/.ansible/*', '.cache/*', '.ci/*', '.git', '.git/*', '.gitignore',
    '.pytest_cache*', '*/.pytest_cache/*', '.venv/*', '.yamllint', '.ansible-lint', '.tox/*',
    '*__pycache__*', '*.pyc', '*.egg-info*', '*.tar.gz', 'ansible.cfg', 'Makefile', 'pyproject.toml',
    'bench', 'bench/*', 'ezctl', 'ezctl/*', 'molecule', 'molecule/*', 'extensions/*', 'tests', 'tests/*',
    'docs', 'docs/*', 'clusters/.current', '*/ansible_collections/*',
    'playbooks/[0-9]*', 'playbooks/*-*',  # kubeasz-layout names: no playbook FQCN can name them
]
# a user's secrets and clusters planted in the checkout the tarball is built from: none may ship
PLANTED = [
    'clusters/edge/ssl/ca-key.pem', 'clusters/e2e/hosts', 'clusters/prod/config.yml', 'clusters/k8s-01/hosts',
    'clusters/example/ssl/ca-key.pem', 'clusters/example/kubectl.kubeconfig', 'clusters/.current',
    '.env', 'roles/flannel/files/.env', 'ca-key.pem', 'roles/flannel/files/etcd-key.pem',
    'plugins/module_utils/server.pem', 'kubectl.kubeconfig', 'roles/flannel/templates/kubectl.kubeconfig',
    'playbooks/site-secret.yml.bak', 'meta/secrets.yml', 'roles/flannel/vars/vault.yml.orig',
]
# what a user needs: must be in it
REQUIRED = [
    'README.md', 'COPYING', 'MANIFEST.json', 'FILES.json', 'meta/runtime.yml',
    'meta/execution-environment.yml', 'bindep.txt', 'requirements.txt',
    'playbooks/network.yml', 'playbooks/net_status.yml', 'roles/flannel/meta/argument_specs.yml',
    'roles/flannel/tasks/main.yml', 'roles/flannel/README.md', 'roles/flannel/files/flannel_route_guard.py',
    'plugins/connection/netns.py', 'plugins/doc_fragments/attributes.py',
    'changelogs/changelog.yaml', 'clusters/example/hosts', 'clusters/example/config.yml',
]
USER_INVENTORY = """\
[etcd]
m1
[kube_master]
m1 ansible_host=127.0.0.1 ansible_port=1
[kube_node]
n1 ansible_host=127.0.0.1 ansible_port=1
[all:vars]
CLUSTER_NETWORK="flannel"
CLUSTER_CIDR="172.20.0.0/16"
SERVICE_CIDR="10.68.0.0/16"
base_dir="/etc/kubeasz"
ansible_python_interpreter=/usr/bin/python3
"""
USER_PLAYBOOK = """\
---
- name: My cluster's pod network
  hosts: kube_master:kube_node
  gather_facts: false
  roles:
    - role: kubeasz.network.flannel
      vars:
        FLANNEL_BACKEND: vxlan
        DIRECT_ROUTING: true
"""


def run(argv, cwd, env, timeout=300):
    """stdout of argv, which must succeed; stderr (warnings of the day's packages) is not parsed."""
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, '%s\nstdout:\n%s\nstderr:\n%s' % (' '.join(argv), proc.stdout, proc.stderr)
    return proc.stdout


def checkout_with_secrets(dest):
    """A copy of the checkout's files (as git lists them) with PLANTED added."""
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(os.path.dirname(os.path.join(str(dest), name)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), os.path.join(str(dest), name))
    for name in PLANTED:
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('-----BEGIN PRIVATE KEY-----\nplanted by the test\n')
    return dest


@pytest.fixture(scope='module')
def user(tmp_path_factory):
    """(tarball, collections path, a user's folder, env without any of the repository's settings)."""
    top = tmp_path_factory.mktemp('user')
    build, collections, home = top / 'build', top / 'collections', top / 'project'
    for path in (build, collections, home):
        path.mkdir()
    checkout = checkout_with_secrets(top / 'checkout')
    (home / 'ansible.cfg').write_text('[defaults]\nretry_files_enabled = False\n')
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    env.update(PATH=BIN + os.pathsep + env.get('PATH', ''), ANSIBLE_CONFIG=str(home / 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_LOCAL_TEMP=str(top / 'tmp'), ANSIBLE_HOME=str(top / 'ansible-home'))
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(build), str(checkout)],
        cwd=str(home), env=env)
    tarballs = sorted(build.glob('kubeasz-network-*.tar.gz'))
    assert len(tarballs) == 1
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(collections),
         str(tarballs[0])], cwd=str(home), env=env)
    return tarballs[0], collections, home, env


def test_tarball_holds_no_development_artifact(user):
    with tarfile.open(str(user[0])) as tar:
        names = [m.name.rstrip('/') for m in tar.getmembers()]
    leaked = sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in FORBIDDEN) or n in PLANTED)
    assert leaked == []
    assert sorted(n for n in names if n.startswith('clusters/')) == [
        'clusters/example', 'clusters/example/config.yml', 'clusters/example/hosts']
    assert sorted(set(REQUIRED) - set(names)) == []
    files = json.loads(tar_member(user[0], 'FILES.json'))['files']
    assert sorted(f['name'] for f in files if f['ftype'] == 'file') == sorted(
        n for n in names if n not in ('MANIFEST.json', 'FILES.json') and not tar_isdir(user[0], n))


def tar_member(tarball, name):
    with tarfile.open(str(tarball)) as tar:
        return tar.extractfile(name).read().decode('utf-8')


def tar_isdir(tarball, name):
    with tarfile.open(str(tarball)) as tar:
        return tar.getmember(name).isdir() if name in tar.getnames() else tar.getmember(name + '/').isdir()


def installed(user):
    return user[1] / 'ansible_collections' / 'kubeasz' / 'network'


def test_manifest_metadata(user):
    info = json.loads(tar_member(user[0], 'MANIFEST.json'))['collection_info']
    assert info['license'] == ['GPL-3.0-or-later']
    assert not any('example.invalid' in str(v) for v in info.values())
    role_meta = yaml.safe_load((installed(user) / 'roles' / 'flannel' / 'meta' / 'main.yml').read_text())
    assert role_meta['galaxy_info']['license'] == 'GPL-3.0-or-later'


def test_ansible_doc_for_every_plugin_and_the_role(user):
    _tarball, _collections, home, env = user
    plugins = installed(user) / 'plugins'
    modules = sorted(p.stem for p in (plugins / 'modules').glob('*.py'))
    connections = sorted(p.stem for p in (plugins / 'connection').glob('*.py'))
    assert 'vxlan_link' in modules and connections == ['netns']
    ansible_doc = os.path.join(BIN, 'ansible-doc')
    listed = json.loads(run([ansible_doc, '-t', 'module', '-l', '-j', 'kubeasz.network'], cwd=str(home), env=env))
    assert sorted(listed) == ['kubeasz.network.' + m for m in modules]
    docs = json.loads(run([ansible_doc, '-j'] + ['kubeasz.network.' + m for m in modules], cwd=str(home), env=env))
    for name, doc in docs.items():
        attributes = doc['doc']['attributes']
        assert set(attributes) >= {'check_mode', 'diff_mode', 'platform'}, name
        assert all(a.get('description') and a.get('support') for a in attributes.values()), name
        diff = doc['return'].get('diff')
        assert diff is None or diff['returned'] == 'in diff mode', name
    for connection in connections:
        out = run([ansible_doc, '-t', 'connection', 'kubeasz.network.' + connection], cwd=str(home), env=env)
        assert 'lab' in out
    out = run([ansible_doc, '-t', 'role', 'kubeasz.network.flannel'], cwd=str(home), env=env)
    assert 'FLANNEL_BACKEND' in out


def test_every_playbook_in_the_tarball_runs_by_fqcn(user):
    _tarball, _collections, home, env = user
    (home / 'hosts').write_text(USER_INVENTORY)
    playbooks = sorted(p.stem for p in (installed(user) / 'playbooks').iterdir())
    assert playbooks == ['addnode', 'delnode', 'net_check', 'net_status', 'network', 'network_reset']
    for playbook in playbooks:
        out = run([os.path.join(BIN, 'ansible-playbook'), '-i', 'hosts', 'kubeasz.network.' + playbook,
                   '--syntax-check'], cwd=str(home), env=env)
        assert str(installed(user) / 'playbooks' / (playbook + '.yml')) in out


def test_galaxy_importer_passes_with_no_warning(user):
    """The checks Galaxy runs on an upload (metadata, docs, ansible-lint), offline."""
    tarball, _collections, home, env = user
    config = home / 'galaxy-importer.cfg'
    config.write_text('[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nOFFLINE_ANSIBLE_LINT = True\n'
                      'RUN_ANSIBLE_DOC = True\nRUN_ANSIBLE_LINT = True\nCHECK_CHANGELOG = True\n')
    # a HOME of its own: the importer's ansible-lint installs the collection into ~/.ansible, where
    # it would shadow the work tree's copy for every later ansible-lint run of the user
    importer_home = home.parent / 'importer-home'
    importer_home.mkdir(exist_ok=True)
    out = run([sys.executable, '-m', 'galaxy_importer.main', str(tarball)], cwd=str(home),
              env=dict(env, GALAXY_IMPORTER_CONFIG=str(config), HOME=str(importer_home)), timeout=600)
    assert 'Importer processing completed successfully' in out
    problems = [line for line in out.splitlines() if line.startswith(('WARNING', 'ERROR'))]
    assert problems == []


def test_users_playbook_renders_the_manifest(user):
    _tarball, _collections, home, env = user
    (home / 'hosts').write_text(USER_INVENTORY)
    (home / 'site.yml').write_text(USER_PLAYBOOK)
    cluster_dir = home / 'cluster'
    run([os.path.join(BIN, 'ansible-playbook'), '-i', 'hosts', '-e', 'cluster_dir=%s' % cluster_dir,
         '--tags', 'manifest', 'site.yml'], cwd=str(home), env=env)
    docs = [d for d in yaml.safe_load_all((cluster_dir / 'yml' / 'flannel.yaml').read_text()) if d]
    daemonset = next(d for d in docs if d['kind'] == 'DaemonSet')
    assert daemonset['metadata'] == dict(daemonset['metadata'], name='kube-flannel-ds', namespace='kube-system')
    net_conf = json.loads(next(d for d in docs if d['kind'] == 'ConfigMap')['data']['net-conf.json'])
    assert net_conf['Network'] == '172.20.0.0/16'
    assert net_conf['Backend'] == dict(net_conf['Backend'], Type='vxlan', DirectRouting=True)


def readme_ee_definition():
    """The execution environment definition README.md shows (the YAML block naming the file)."""
    with open(os.path.join(REPO, 'README.md')) as f:
        blocks = f.read().split('```')
    found = [b[len('yaml'):] for b in blocks if b.startswith('yaml\n# execution-environment.yml')]
    assert len(found) == 1, 'README.md: one ```yaml block starting with "# execution-environment.yml"'
    return found[0].lstrip('\n')


def test_execution_environment(user):
    """ansible-builder (offline): the installed collection's requirements, and a build context."""
    _tarball, collections, home, env = user
    builder = os.path.join(BIN, 'ansible-builder')
    out = run([builder, 'introspect', str(collections)], cwd=str(home), env=env)
    assert 'kubeasz.network' in out and 'openssh-client' in out
    ee_dir = home / 'ee'
    ee_dir.mkdir()
    (ee_dir / 'execution-environment.yml').write_text(readme_ee_definition())
    shutil.copy(str(user[0]), str(ee_dir / user[0].name))  # the tarball as the build names it
    run([builder, 'create', '-f', 'execution-environment.yml', '-c', 'context'], cwd=str(ee_dir), env=env)
    context = ee_dir / 'context'
    containerfile = next(context.glob('[CD]*file')).read_text()  # Containerfile (podman) or Dockerfile
    assert 'ansible-galaxy collection install' in containerfile and 'introspect' in containerfile
    requirements = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert requirements['collections'][0]['name'].endswith('/' + user[0].name)
    # ansible-builder only warns ("No matches for ...") when a source is missing: look inside
    assert (context / '_build' / 'collections' / user[0].name).is_file()
