# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd lease store against a real etcd (Debian's etcd-server).

Store tests: one etcd on 127.0.0.1 with free ports and a temporary data dir, started and
stopped by the ``etcd`` fixture; each test works under its own key prefix.
Lab test: a 3-node lab with etcd running inside node1 (like kubeasz's etcd group) on its node
IP, the kubeasz step 06 with FLANNEL_SUBNET_STORE=etcd, then etcd stopped. The host's own
network namespace is never touched.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, NodePart
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdClient, EtcdError, EtcdStore
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import leases_of
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf

pytestmark = pytest.mark.skipif(not shutil.which('etcd') or not shutil.which('etcdctl'),
                                reason='needs etcd and etcdctl (make deps)')

REPO = Path(__file__).resolve().parents[2]
NET = {'Network': '172.20.0.0/16', 'Backend': {'Type': 'vxlan'}}
FLANNELD_VALUE = ('{"PublicIP":"192.168.2.22","PublicIPv6":null,"BackendType":"vxlan",'
                  '"BackendData":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:01"}}')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def etcd_argv(data_dir, client_url, peer_url):
    return ['etcd', '--name', 'default', '--data-dir', str(data_dir),
            '--listen-client-urls', client_url, '--advertise-client-urls', client_url,
            '--listen-peer-urls', peer_url, '--initial-advertise-peer-urls', peer_url,
            '--initial-cluster', 'default=' + peer_url, '--logger', 'zap', '--log-level', 'error']


def wait_ready(url, timeout=20):
    client = EtcdClient([url], timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.range_prefix('/ready-check')
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Etcd:
    """One etcd member on 127.0.0.1; ``stop()``/``start()`` keep the data dir."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.url = 'http://127.0.0.1:%d' % free_port()
        self.peer = 'http://127.0.0.1:%d' % free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(etcd_argv(self.data_dir, self.url, self.peer),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.url)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ctl(self, *args):
        proc = subprocess.run(['etcdctl', '--endpoints', self.url] + list(args), capture_output=True,
                              text=True, timeout=30, env=dict(os.environ, ETCDCTL_API='3'), check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def keys(self, prefix):
        return sorted(self.ctl('get', '--prefix', '--keys-only', prefix).split())

    def leases(self):
        return [line for line in self.ctl('lease', 'list').splitlines() if line.strip() and 'found' not in line]


@pytest.fixture(scope='module')
def etcd(tmp_path_factory):
    server = Etcd(tmp_path_factory.mktemp('etcd-data'))
    server.start()
    yield server
    server.stop()


def store(url, prefix, **kwargs):
    return EtcdStore(EtcdClient([url]), prefix, **kwargs)


def take(url, prefix, public_ip, net=None, preferred=None):
    netconf = parse_net_conf(net or NET)
    mac = '0e:00:00:00:%02x:%02x' % tuple(int(part) for part in public_ip.split('.')[2:])
    return store(url, prefix).acquire(netconf, Claim('vxlan', 1, {IPV4: NodePart(public_ip, mac, preferred)}), config=net or NET)


def _racer(url, prefix, public_ip, barrier, results):
    barrier.wait()
    try:
        lease = take(url, prefix, public_ip)[0]
        results.put((public_ip, str(lease.subnet)))
    except LeaseError as exc:
        results.put((public_ip, 'error: %s' % exc))


def race(url, prefix, ips):
    """Every ip acquires at the same moment, one process each -> {ip: subnet or error}."""
    ctx = multiprocessing.get_context('fork')
    barrier, results = ctx.Barrier(len(ips)), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(url, prefix, ip, barrier, results)) for ip in ips]
    for proc in procs:
        proc.start()
    out = dict(results.get(timeout=120) for dummy in ips)
    for proc in procs:
        proc.join(30)
    return out


def test_twenty_processes_at_once_get_distinct_subnets_and_keep_them(etcd):
    prefix = '/race/coreos.com/network'
    ips = ['10.0.0.%d' % i for i in range(1, 21)]
    first = race(etcd.url, prefix, ips)
    assert not [v for v in first.values() if v.startswith('error')], first
    assert len(set(first.values())) == 20
    # racers that lost retry among the first 2, 4, 8 ... free subnets: few gaps, all leased in etcd
    assert all(re.match(r'^172\.20\.(\d+)\.0/24$', s) and 1 <= int(s.split('.')[2]) <= 100 for s in first.values())
    leased = [prefix + '/subnets/%s' % s.replace('/', '-') for s in first.values()]
    assert etcd.keys(prefix) == sorted([prefix + '/config'] + leased)
    again = race(etcd.url, prefix, ips)
    assert again == first
    # each lease is bound to an etcd lease of 24 h
    ttl = json.loads(etcd.ctl('get', prefix + '/subnets/172.20.1.0-24', '-w', 'json'))['kvs'][0]['lease']   # the 1st winner
    assert 86000 < int(etcd.ctl('lease', 'timetolive', '%x' % ttl).split('granted with TTL(')[1].split('s')[0]) <= 86400


def test_rerun_reports_no_change_and_renews_the_etcd_lease(etcd):
    prefix = '/renew/coreos.com/network'
    lease, changed, dummy, dummy2, dummy3 = take(etcd.url, prefix, '10.0.1.1')
    assert changed
    kv = json.loads(etcd.ctl('get', prefix + '/subnets/172.20.1.0-24', '-w', 'json'))['kvs'][0]
    time.sleep(2)
    lease2, changed2, dummy, before, after = take(etcd.url, prefix, '10.0.1.1')
    assert lease2 == lease and not changed2 and before == after
    kv2 = json.loads(etcd.ctl('get', prefix + '/subnets/172.20.1.0-24', '-w', 'json'))['kvs'][0]
    assert kv2['mod_revision'] == kv['mod_revision'] and kv2['lease'] == kv['lease']
    remaining = etcd.ctl('lease', 'timetolive', '%x' % kv2['lease'])
    assert int(re.search(r'remaining\((\d+)s\)', remaining).group(1)) >= 86398


def test_flanneld_lease_is_kept_and_never_given_away(etcd):
    prefix = '/flanneld/coreos.com/network'
    grant = etcd.ctl('lease', 'grant', '86400').split()[1]
    etcd.ctl('put', '--lease', grant, prefix + '/subnets/172.20.1.0-24', FLANNELD_VALUE)
    # a flanneld lease holding one of our nodes' IPs: that node keeps its subnet
    ours = FLANNELD_VALUE.replace('192.168.2.22', '10.0.2.7')
    etcd.ctl('put', prefix + '/subnets/172.20.9.0-24', ours)
    got = {ip: str(take(etcd.url, prefix, ip)[0].subnet) for ip in ['10.0.2.%d' % i for i in range(1, 8)]}
    assert '172.20.1.0/24' not in got.values()
    assert got['10.0.2.7'] == '172.20.9.0/24'
    assert len(set(got.values())) == 7
    assert etcd.ctl('get', '--print-value-only', prefix + '/subnets/172.20.1.0-24').strip() == FLANNELD_VALUE
    # ours is one flanneld reads: exactly its JSON field order and spelling
    value = json.loads(etcd.ctl('get', '--print-value-only', prefix + '/subnets/172.20.2.0-24'))
    assert list(value) == ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData']
    assert list(value['BackendData']) == ['VNI', 'VtepMAC']
    assert json.loads(etcd.ctl('get', '--print-value-only', prefix + '/config')) == NET


def test_out_of_subnets_names_the_network_and_leaves_no_partial_state(etcd):
    prefix = '/small/coreos.com/network'
    net = {'Network': '10.10.0.0/22', 'SubnetLen': 24, 'Backend': {'Type': 'vxlan'}}
    for i in range(1, 4):
        take(etcd.url, prefix, '10.0.3.%d' % i, net)
    keys, leases = etcd.keys(prefix), etcd.leases()
    for i in range(4, 6):
        with pytest.raises(LeaseError, match=r'out of subnets: network 10\.10\.0\.0/22 has 3 subnets'):
            take(etcd.url, prefix, '10.0.3.%d' % i, net)
    assert etcd.keys(prefix) == keys and len(keys) == 4
    assert etcd.leases() == leases   # no etcd lease granted and left behind


def test_corrupt_leases_are_skipped_with_a_warning_and_keep_their_subnet(etcd):
    prefix = '/corrupt/coreos.com/network'
    bad = {'172.20.1.0-24': '{"PublicIP": "198.18.0.13", ',                      # bad JSON
           '172.20.2.0-24': FLANNELD_VALUE.replace('192.168.2.22', '198.18.0.13; rm -rf /'),   # bad IP
           '172.20.3.0-24': FLANNELD_VALUE.replace('0e:5a:1c:9f:22:01', '0e:5a:1c:9f:22'),     # bad MAC
           '172.20.4.0-24': FLANNELD_VALUE.replace('0e:5a', '0f:5a')}                           # multicast MAC
    for key, value in bad.items():
        etcd.ctl('put', prefix + '/subnets/' + key, '--', value)
    lease, changed, warnings, dummy, after = take(etcd.url, prefix, '10.0.4.1')
    assert str(lease.subnet) == '172.20.5.0/24'
    for key in bad:
        assert any(key in w and 'skipping corrupt lease' in w for w in warnings), warnings
    assert [str(x.subnet) for x in leases_of(after)] == ['172.20.5.0/24']
    assert all(etcd.ctl('get', '--print-value-only', prefix + '/subnets/' + k).rstrip('\n') == v
               for k, v in bad.items())


def test_dual_stack_leases_in_flannel_s_keys_next_to_flanneld_s(etcd):
    """IPv6 (issue 16): dual-stack keys and values exactly flanneld's, a flanneld dual-stack lease
    honoured, IPv6 switched on for an IPv4 lease (the key replaced, the IPv4 subnet kept), the
    renewal's key, and release by the IPv6 address."""
    import dataclasses
    import ipaddress
    from ansible_collections.kubeasz.network.plugins.module_utils.store import leaserenew
    prefix = '/dual/coreos.com/network'
    net6 = dataclasses.replace(parse_net_conf(NET), enable_ipv6=True, ipv6_network=ipaddress.IPv6Network('fd00:20::/56'),
                               ipv6_subnet_len=64, ipv6_subnet_min=ipaddress.IPv6Network('fd00:20:0:1::/64'),
                               ipv6_subnet_max=ipaddress.IPv6Network('fd00:20:0:ff::/64'))
    flanneld = ('{"PublicIP":"192.168.2.22","PublicIPv6":"fd53::22","BackendType":"vxlan",'
                '"BackendData":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:01"},'
                '"BackendV6Data":{"VNI":1,"VtepMAC":"0e:5a:1c:9f:22:02"}}')
    etcd.ctl('put', prefix + '/subnets/172.20.1.0-24&fd00:20:0:1::-64', flanneld)
    old = take(etcd.url, prefix, '10.0.6.1')[0]           # IPv4 first: 172.20.2.0/24
    etcd_store = store(etcd.url, prefix)

    def take6(i):
        return etcd_store.acquire(net6, Claim('vxlan', 1, {IPV4: NodePart('10.0.6.%d' % i, '0e:00:00:00:06:%02x' % i),
                                                           IPV6: NodePart('fd53::6:%d' % i, '0e:00:00:00:66:%02x' % i)}),
                                  config=NET)
    lease, changed, warnings = take6(1)[:3]
    assert changed and not warnings and (lease.subnet, lease.subnet6) == (old.subnet, 'fd00:20:0:2::/64')
    second = take6(2)[0]
    assert (second.subnet, second.subnet6) == ('172.20.3.0/24', 'fd00:20:0:3::/64')
    assert take6(1)[:2] == (lease, False)
    assert etcd.keys(prefix + '/subnets/') == [prefix + '/subnets/' + key for key in (
        '172.20.1.0-24&fd00:20:0:1::-64', '172.20.2.0-24&fd00:20:0:2::-64', '172.20.3.0-24&fd00:20:0:3::-64')]
    value = etcd.ctl('get', '--print-value-only', prefix + '/subnets/172.20.2.0-24&fd00:20:0:2::-64').strip()
    assert value == ('{"PublicIP":"10.0.6.1","PublicIPv6":"fd53::6:1","BackendType":"vxlan",'
                     '"BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:06:01"},'
                     '"BackendV6Data":{"VNI":1,"VtepMAC":"0e:00:00:00:66:01"}}')
    (peer,) = [x for x in etcd_store.leases()[0] if x.public_ip == '192.168.2.22']
    assert (peer.subnet6, peer.public_ip6, peer.vtep_mac6) == ('fd00:20:0:1::/64', 'fd53::22', '0e:5a:1c:9f:22:02')
    config = {'endpoints': [etcd.url], 'prefix': prefix, 'subnet': lease.subnet, 'subnet6': lease.subnet6}
    assert EtcdClient([etcd.url]).range_prefix(leaserenew.lease_key(config))[0]['lease']   # the key renewal renews
    gone, changed = etcd_store.release({IPV4: None, IPV6: 'fd53::6:1'})
    assert changed and [x.key for x in gone] == ['172.20.2.0-24&fd00:20:0:2::-64']
    assert etcd.ctl('get', '--print-value-only', prefix + '/subnets/172.20.1.0-24&fd00:20:0:1::-64').strip() == flanneld


def test_stopped_etcd_fails_naming_the_endpoint(tmp_path):
    server = Etcd(tmp_path / 'data')
    server.start()
    take(server.url, '/stopped', '10.0.5.1')
    server.stop()
    with pytest.raises(EtcdError) as err:
        take(server.url, '/stopped', '10.0.5.1')
    assert server.url in str(err.value) and 'unreachable' in str(err.value)
    with pytest.raises(EtcdError) as err:
        EtcdStore(EtcdClient([server.url, 'http://127.0.0.1:%d' % free_port()])).leases()
    assert str(err.value).count('http://127.0.0.1:') == 2


# ---------------------------------------------------------------- the lab, the role, a stopped etcd

LAB_ETCD = 'http://198.18.0.11:2379'


def start_lab_etcd(lab, data_dir):
    """etcd inside node1's namespaces on its node IP; every lab node reaches it over eth0."""
    argv = lab.nsenter_argv('node1') + etcd_argv(data_dir, LAB_ETCD, 'http://127.0.0.1:2380')
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while lab.exec('node1', ['etcdctl', '--endpoints', LAB_ETCD, 'endpoint', 'health'],
                   check=False).returncode != 0:
        assert time.monotonic() < deadline and proc.poll() is None, 'etcd did not start in node1'
        time.sleep(0.2)
    return proc


def stop_lab_etcd(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(10)


def run_06(cdir, **config):
    conf = {'FLANNEL_DATAPLANE': 'ansible', 'FLANNEL_SUBNET_STORE': 'etcd', 'NODE_CIDR_LEN': 24,
            'FLANNEL_BACKEND': 'vxlan', 'DIRECT_ROUTING': False, 'FLANNEL_ETCD_ENDPOINTS': LAB_ETCD,
            'flannel_etcd_ca': '', 'flannel_etcd_cert': '', 'flannel_etcd_key': '', **config}
    (cdir / 'config.yml').write_text(yaml.safe_dump(conf), encoding='utf-8')
    bindir = Path(sys.executable).parent
    argv = [str(bindir / 'ansible-playbook'), '-i', str(cdir / 'hosts'), '-e', '@%s' % (cdir / 'config.yml'),
            'playbooks/06.network.yml']
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def snapshot(lab):
    out = {}
    for node in ('node1', 'node2', 'node3'):
        out[node] = [lab.exec(node, argv).stdout for argv in (
            ['ip', '-d', 'link', 'show'], ['ip', 'route', 'show'], ['ip', 'neigh', 'show', 'nud', 'permanent'],
            ['bridge', 'fdb', 'show'], ['sh', '-c', 'cat /run/flannel/subnet.env /etc/cni/net.d/* 2>/dev/null; true'])]
    return out


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason='the lab needs root')
def test_role_on_a_lab_with_etcd_in_node1(tmp_path):
    import labcheck
    from ezctl.lab import Lab
    lab = Lab('it-etcd-%d' % os.getpid())
    data = Path(tempfile.mkdtemp(prefix='kubeasz-etcd-'))
    proc = None
    try:
        lab.up(nodes=3, segments=1)
        cdir = lab.write_cluster(tmp_path, lab.name)
        proc = start_lab_etcd(lab, data)
        ctl = lab.nsenter_argv('node1') + ['etcdctl', '--endpoints', LAB_ETCD]
        prefix = '/coreos.com/network/subnets/'
        subprocess.run(ctl + ['put', prefix + '172.20.1.0-24', FLANNELD_VALUE], check=True, capture_output=True)
        subprocess.run(ctl + ['put', prefix + '172.20.2.0-24', '--',
                              FLANNELD_VALUE.replace('192.168.2.22', '198.18.0.99; ip link del eth0')],
                       check=True, capture_output=True)
        subprocess.run(ctl + ['put', prefix + '172.20.3.0-24', '--', '{"PublicIP":'], check=True, capture_output=True)

        first = run_06(cdir)
        assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
        assert 'skipping corrupt lease: lease 172.20.2.0-24' in first.stderr
        assert 'skipping corrupt lease: lease 172.20.3.0-24' in first.stderr
        views = labcheck.read_lab(lab)
        subnets = set(str(v.subnet) for v in views)
        assert len(subnets) == 3 and not subnets & {'172.20.1.0/24', '172.20.2.0/24', '172.20.3.0/24'}
        for view in views:   # the flanneld lease is a real peer; the corrupt ones reach no table
            assert ('172.20.1.0/24', '172.20.1.0', 'flannel.1', True) in view.routes
            assert not any(r[0] in ('172.20.2.0/24', '172.20.3.0/24') for r in view.routes)
            assert not any('198.18.0.99' in str(entry) for entry in view.fdb | view.neighbours)
        second = run_06(cdir)
        assert second.returncode == 0, second.stdout[-6000:]
        assert set(re.findall(r'changed=(\d+)', second.stdout)) == {'0'}, second.stdout

        before = snapshot(lab)
        stop_lab_etcd(proc)
        down = run_06(cdir)
        assert down.returncode != 0
        assert 'etcd is unreachable' in down.stdout and '%s: ' % LAB_ETCD in down.stdout, down.stdout
        assert snapshot(lab) == before   # subnet.env, CNI config and kernel tables untouched
    finally:
        if proc is not None:
            stop_lab_etcd(proc)
        lab.down()
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------- TLS client certificates

def openssl(*args, cwd):
    subprocess.run(['openssl'] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as kubeasz names them."""
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=kubeasz-test-ca',
            '-keyout', 'ca-key.pem', '-out', 'ca.pem', cwd=directory)
    # etcd's JSON gateway dials etcd itself with the server certificate: it needs clientAuth too
    # (kubeasz's etcd certificates have both usages)
    for name, ext in (('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth'),
                      ('etcd', 'extendedKeyUsage=clientAuth')):
        (directory / (name + '.ext')).write_text(ext + '\n')
        openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=' + name, '-keyout', name + '-key.pem',
                '-out', name + '.csr', cwd=directory)
        openssl('x509', '-req', '-in', name + '.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial',
                '-days', '2', '-extfile', name + '.ext', '-out', name + '.pem', cwd=directory)


@pytest.fixture(scope='module')
def tls_etcd(tmp_path_factory):
    if not shutil.which('openssl'):
        pytest.skip('needs openssl')
    pki = tmp_path_factory.mktemp('ssl')
    make_pki(pki)
    url, peer = 'https://127.0.0.1:%d' % free_port(), 'http://127.0.0.1:%d' % free_port()
    argv = etcd_argv(tmp_path_factory.mktemp('etcd-tls'), url, peer) + [
        '--cert-file', str(pki / 'server.pem'), '--key-file', str(pki / 'server-key.pem'),
        '--client-cert-auth', '--trusted-ca-file', str(pki / 'ca.pem')]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = EtcdClient([url], str(pki / 'ca.pem'), str(pki / 'etcd.pem'), str(pki / 'etcd-key.pem'), timeout=2)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.range_prefix('/ready')
            break
        except EtcdError:
            assert time.monotonic() < deadline and proc.poll() is None, 'etcd with TLS did not start'
            time.sleep(0.2)
    yield url, pki
    proc.terminate()
    proc.wait(10)


def test_tls_client_certificate(tls_etcd):
    url, pki = tls_etcd
    netconf = parse_net_conf(NET)
    good = EtcdStore(EtcdClient([url], str(pki / 'ca.pem'), str(pki / 'etcd.pem'), str(pki / 'etcd-key.pem')), '/tls')
    assert str(good.acquire(netconf, Claim('host-gw', None, {IPV4: NodePart('10.0.6.1')}), config=NET)[0].subnet) == '172.20.1.0/24'
    anonymous = EtcdStore(EtcdClient([url], str(pki / 'ca.pem')), '/tls')
    with pytest.raises(EtcdError, match=r'etcd is unreachable .*%s: ' % re.escape(url)):
        anonymous.leases()


TLS_PLAY = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: lease through the action plugin, TLS files from the "cluster folder" on the controller
      kubeasz.network.flannel_subnet:
        network: {Network: 172.20.0.0/16, Backend: {Type: vxlan}}
        store: etcd
        etcd_endpoints: "{{ url }}"
        etcd_prefix: /play
        etcd_ca: "{{ ssl }}/ca.pem"
        etcd_cert: "{{ ssl }}/etcd.pem"
        etcd_key: "{{ ssl }}/etcd-key.pem"
        iface: lo
        public_ip: 10.0.7.1
        subnet_file: "{{ work }}/subnet.env"
      register: r
    - name: save the result
      ansible.builtin.copy:
        content: "{{ r | to_nice_json }}"
        dest: "{{ work }}/result.json"
        mode: "0600"
'''


@pytest.mark.slow
def test_action_plugin_copies_tls_files_for_the_task_only(tls_etcd, tmp_path):
    """Runs on localhost: the module only reads the host's links (ip -json) and writes in tmp_path."""
    url, pki = tls_etcd
    (tmp_path / 'play.yml').write_text(TLS_PLAY)
    remote_tmp = tmp_path / 'remote-tmp'
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_REMOTE_TMP=str(remote_tmp), ANSIBLE_PIPELINING='0')
    argv = [str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', '-v',
            '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', 'url=%s' % url, '-e', 'ssl=%s' % pki,
            '-e', 'work=%s' % tmp_path, str(tmp_path / 'play.yml')]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / 'result.json').read_text())
    assert result['changed'] and result['lease']['subnet'] == '172.20.1.0/24'
    assert (tmp_path / 'subnet.env').read_text().startswith('FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.1.1/24\n')
    key = (pki / 'etcd-key.pem').read_text()
    assert key.splitlines()[1] not in proc.stdout + proc.stderr + json.dumps(result)
    assert not list(remote_tmp.rglob('*.pem'))   # the copies went with the task's temporary directory
