# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeasz.network.flannel_subnet (action plugin + module) through ansible-playbook.

Runs on localhost inside a fresh network namespace (``unshare --net``) holding one veth
with 198.18.0.11/24 and a default route; store=file and subnet_file live in a tmp dir.
Needs root; the host's own namespace is never touched.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, '.venv', 'bin')


PLAYBOOK = textwrap.dedent('''\
    - hosts: localhost
      gather_facts: false
      vars:
        net:
          Network: 172.20.0.0/16
          Backend: {Type: vxlan}
      tasks:
        - name: flannel_subnet
          kubeasz.network.flannel_subnet:
            state: "{{ state }}"
            network: "{{ omit if state == 'absent' else net }}"
            lease_file: "{{ work }}/cluster/flannel-leases.json"
            subnet_file: "{{ work }}/run/flannel/subnet.env"
            cni_conf_file: "{{ work }}/etc/cni/net.d/10-flannel.conflist"
          register: r
        - name: save the result
          ansible.builtin.copy:
            content: "{{ r | to_nice_json }}"
            dest: "{{ work }}/out/{{ stage }}.json"
          check_mode: false
    ''')

MANY = textwrap.dedent('''\
    - hosts: all
      gather_facts: false
      tasks:
        - name: flannel_subnet, many hosts in parallel forks
          kubeasz.network.flannel_subnet:
            network: {Network: 172.20.0.0/16, Backend: {Type: vxlan}}
            public_ip: "{{ node_ip }}"
            lease_file: "{{ work }}/cluster/many.json"
            subnet_file: "{{ work }}/run/{{ inventory_hostname }}/subnet.env"
          register: r
        - name: save the result
          ansible.builtin.copy:
            content: "{{ r | to_nice_json }}"
            dest: "{{ work }}/out/{{ stage }}-{{ inventory_hostname }}.json"
          check_mode: false
    ''')
HOSTS = 12

SCRIPT = textwrap.dedent('''\
    set -eu
    ip link set lo up
    ip link add veth0 type veth peer name veth1
    ip addr add 198.18.0.11/24 dev veth0
    ip link set veth0 up
    ip link set veth1 up
    ip route add default via 198.18.0.1 dev veth0
    snap() {
        mkdir -p "$W/snap/$1"
        cp "$W/cluster/flannel-leases.json" "$W/snap/$1/" 2>/dev/null || true
        cp "$W/run/flannel/subnet.env" "$W/snap/$1/" 2>/dev/null || true
        cp "$W/etc/cni/net.d/10-flannel.conflist" "$W/snap/$1/" 2>/dev/null || true
        ls -A "$W/cluster" "$W/run" > "$W/snap/$1.ls" 2>&1 || true
    }
    play() {  # stage state [extra ansible-playbook args]
        stage=$1; state=$2; shift 2
        ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PY" \\
            -e "work=$W" -e "state=$state" -e "stage=$stage" "$@" "$W/play.yml" > "$W/log/$stage.txt" 2>&1
        snap "$stage"
    }
    mkdir -p "$W/out" "$W/log"
    play check1 present --check --diff
    play run1 present --diff
    play run2 present
    play check2 present --check --diff
    python3 - "$W/cluster/flannel-leases.json" <<'EOF'
    import json, sys
    doc = json.load(open(sys.argv[1]))
    doc["leases"]["172.20.2.0-24"] = {"PublicIP": "198.18.0.12", "PublicIPv6": None, "BackendType": "vxlan",
                                       "BackendData": {"VNI": 1, "VtepMAC": "0e:00:00:00:00:12"}}
    doc["leases"]["172.20.3.0-24"] = {"PublicIP": "198.18.0.13; rm -rf /"}
    json.dump(doc, open(sys.argv[1], "w"))
    EOF
    play query query
    play absent_check absent --check
    play absent absent
    play absent2 absent
    for stage in many1 many2; do
        ansible-playbook -i "$W/hosts" -f 20 -e "ansible_python_interpreter=$PY" -e "work=$W" \\
            -e "stage=$stage" "$W/many.yml" > "$W/log/$stage.txt" 2>&1
    done
    ''')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('ip'):
        pytest.skip('needs root, unshare and ip')
    work = str(tmp_path_factory.mktemp('flannel_subnet'))
    with open(os.path.join(work, 'play.yml'), 'w') as handle:
        handle.write(PLAYBOOK)
    with open(os.path.join(work, 'many.yml'), 'w') as handle:
        handle.write(MANY)
    with open(os.path.join(work, 'hosts'), 'w') as handle:
        handle.write('\n'.join('n%02d ansible_connection=local node_ip=198.18.5.%d' % (i, i + 10)
                               for i in range(HOSTS)) + '\n')
    env = dict(os.environ, W=work, PY=sys.executable, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'),
               PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run(['unshare', '--net', 'bash', '-c', SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    logs = ''
    for name in sorted(os.listdir(os.path.join(work, 'log'))) if os.path.isdir(os.path.join(work, 'log')) else []:
        with open(os.path.join(work, 'log', name)) as handle:
            logs += '==== %s\n%s' % (name, handle.read())
    assert proc.returncode == 0, proc.stdout + proc.stderr + logs

    class Runs:
        def result(self, stage):
            with open(os.path.join(work, 'out', stage + '.json')) as handle:
                return json.load(handle)

        def files(self, stage):
            snap = os.path.join(work, 'snap', stage)
            return sorted(os.listdir(snap)) if os.path.isdir(snap) else []

        def text(self, stage, name):
            with open(os.path.join(work, 'snap', stage, name)) as handle:
                return handle.read()

        def listing(self, stage):
            with open(os.path.join(work, 'snap', stage + '.ls')) as handle:
                return handle.read()

        def log(self, stage):
            with open(os.path.join(work, 'log', stage + '.txt')) as handle:
                return handle.read()
    return Runs()


@pytest.mark.kernel
@pytest.mark.slow
def test_check_mode_on_fresh_store_writes_nothing(runs):
    r = runs.result('check1')
    assert r['changed'] is True
    assert r['lease']['subnet'] == '172.20.1.0/24'
    assert runs.files('check1') == []
    assert 'No such file' in runs.listing('check1')     # not even the lock file or a directory
    assert '+FLANNEL_SUBNET=172.20.1.1/24' in runs.log('check1')


@pytest.mark.kernel
@pytest.mark.slow
def test_first_run_takes_lease_and_writes_subnet_env(runs):
    r = runs.result('run1')
    assert r['changed'] is True
    assert r['iface'] == 'veth0' and r['public_ip'] == '198.18.0.11' and r['mtu'] == 1450
    assert r['lease']['subnet'] == '172.20.1.0/24' and r['lease']['backend_type'] == 'vxlan'
    assert r['lease']['vtep_mac'] == r['vtep_mac']
    assert r['peers'] == []
    assert runs.text('run1', 'subnet.env') == ('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\n'
                                               'FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n')
    conflist = json.loads(runs.text('run1', '10-flannel.conflist'))
    bridge = conflist['plugins'][0]
    assert bridge['bridge'] == 'cni0' and bridge['mtu'] == 1450 and bridge['ipMasq'] is False
    assert bridge['ipam']['ranges'] == [[{'subnet': '172.20.1.0/24', 'gateway': '172.20.1.1'}]]
    doc = json.loads(runs.text('run1', 'flannel-leases.json'))
    assert doc['leases'] == {'172.20.1.0-24': {'PublicIP': '198.18.0.11', 'PublicIPv6': None, 'BackendType': 'vxlan',
                                               'BackendData': {'VNI': 1, 'VtepMAC': r['vtep_mac']}}}


@pytest.mark.kernel
@pytest.mark.slow
def test_second_run_and_check_mode_report_no_change(runs):
    assert runs.result('run2')['changed'] is False
    assert runs.result('run2')['lease'] == runs.result('run1')['lease']
    assert runs.result('check2')['changed'] is False


@pytest.mark.kernel
@pytest.mark.slow
def test_query_returns_peers_and_skips_corrupt_leases(runs):
    r = runs.result('query')
    assert r['changed'] is False
    assert r['lease']['subnet'] == '172.20.1.0/24'
    assert r['peers'] == [{'subnet': '172.20.2.0/24', 'public_ip': '198.18.0.12', 'backend_type': 'vxlan',
                           'vni': 1, 'vtep_mac': '0e:00:00:00:00:12',
                           'subnet6': None, 'public_ip6': None, 'vtep_mac6': None}]
    assert any('172.20.3.0-24' in w for w in r['warnings'])


@pytest.mark.kernel
@pytest.mark.slow
def test_absent_releases_lease_and_removes_subnet_env(runs):
    check = runs.result('absent_check')
    assert check['changed'] is True and 'subnet.env' in runs.files('absent_check')
    assert '10-flannel.conflist' in runs.files('absent_check')
    r = runs.result('absent')
    assert r['changed'] is True and r['lease']['subnet'] == '172.20.1.0/24'
    assert [p['subnet'] for p in r['peers']] == ['172.20.2.0/24']
    assert runs.files('absent') == ['flannel-leases.json']
    assert sorted(json.loads(runs.text('absent', 'flannel-leases.json'))['leases']) == ['172.20.2.0-24', '172.20.3.0-24']
    assert runs.result('absent2')['changed'] is False


@pytest.mark.kernel
@pytest.mark.slow
def test_parallel_forks_get_distinct_subnets_and_keep_them(runs):
    first = [runs.result('many1-n%02d' % i) for i in range(HOSTS)]
    second = [runs.result('many2-n%02d' % i) for i in range(HOSTS)]
    assert all(r['changed'] for r in first)
    assert not any(r['changed'] for r in second)
    subnets = [r['lease']['subnet'] for r in first]
    assert len(set(subnets)) == HOSTS
    assert sorted(subnets) == sorted('172.20.%d.0/24' % i for i in range(1, HOSTS + 1))
    assert [r['lease'] for r in second] == [r['lease'] for r in first]
    assert len(second[0]['peers']) == HOSTS - 1
