# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubestore.py against Node payloads of a real API server (tests/unit/fixtures/*.json).

No API server can run on this machine: the fixtures are a k3s server's recorded
``GET /api/v1/nodes`` answer and copies of it edited as each file's ``_fixture`` says; a small
fake serves them and applies merge patches.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import io
import json
import os

import pytest

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import parse_qs, urlparse
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Claim, LeasePart, NodePart
from ansible_collections.kubeasz.network.plugins.module_utils.store import kubestore
from ansible_collections.kubeasz.network.plugins.module_utils.store.kubestore import KubeClient, KubeError, KubeStore
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
RECORDED = 'komal-hp-probook-430-g8-notebook-pc'
API = 'https://192.168.1.1:6443'
K3S_NET = parse_net_conf({'Network': '10.42.0.0/16', 'Backend': {'Type': 'vxlan'}})


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


class FakeAPI:
    """GET /api/v1/nodes[/<name>] (paged by ``limit``) and merge-patch PATCH of a node."""

    def __init__(self, nodes):
        self.nodes = dict((n['metadata']['name'], copy.deepcopy(n)) for n in nodes)
        self.requests = []
        self.unreachable = False

    def __call__(self, method, url, data=None, headers=None):
        if self.unreachable:
            raise URLError(ConnectionRefusedError(111, 'Connection refused'))
        self.requests.append((method, url, json.loads(data) if data else None, dict(headers or {})))
        parsed = urlparse(url)
        name = parsed.path[len('/api/v1/nodes/'):] if parsed.path.startswith('/api/v1/nodes/') else None
        if name is not None and name not in self.nodes:
            status = {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                      'message': 'nodes "%s" not found' % name, 'reason': 'NotFound', 'code': 404}
            raise HTTPError(url, 404, 'Not Found', {}, io.BytesIO(json.dumps(status).encode()))
        if method == 'PATCH':
            notes = self.nodes[name]['metadata'].setdefault('annotations', {})
            for key, value in json.loads(data)['metadata']['annotations'].items():
                if value is None:
                    notes.pop(key, None)
                else:
                    notes[key] = value
        if name is not None:
            return io.BytesIO(json.dumps(self.nodes[name]).encode())
        query = parse_qs(parsed.query)
        names = sorted(self.nodes)
        start = int(query.get('continue', ['0'])[0])
        limit = int(query['limit'][0])
        page = {'kind': 'NodeList', 'apiVersion': 'v1', 'metadata': {'resourceVersion': '119763'},
                'items': [self.nodes[n] for n in names[start:start + limit]]}
        if start + limit < len(names):
            page['metadata']['continue'] = str(start + limit)
        return io.BytesIO(json.dumps(page).encode())


def store_for(nodes, name=RECORDED, **kwargs):
    api = FakeAPI(nodes)
    return KubeStore(KubeClient(API, opener=api, **kwargs), name), api


# ---------------------------------------------------------------- podCIDR rules

def test_recorded_node_podcidr_is_the_lease():
    assert str(kubestore.pod_cidr(fixture('node-with-podcidr.json'), K3S_NET)) == '10.42.0.0/24'


def test_podcidr_not_assigned_is_a_clear_error():
    with pytest.raises(LeaseError, match=r'node %s: podCIDR not assigned .*--allocate-node-cidrs' % RECORDED):
        kubestore.pod_cidr(fixture('node-without-podcidr.json'), K3S_NET)


def test_podcidr_outside_the_network_is_a_clear_error():
    net = parse_net_conf({'Network': '172.20.0.0/16', 'Backend': {'Type': 'vxlan'}})
    with pytest.raises(LeaseError, match=r'node 192\.168\.1\.3: podCIDR 10\.244\.1\.0/24 is not inside the network '
                                         r'172\.20\.0\.0/16'):
        kubestore.pod_cidr(fixture('node-podcidr-outside.json'), net)


def test_podcidr_of_another_length_than_node_cidr_len_is_refused():
    net = parse_net_conf({'Network': '10.42.0.0/16', 'SubnetLen': 25, 'Backend': {'Type': 'vxlan'}})
    with pytest.raises(LeaseError, match=r'is not a /25 \(NODE_CIDR_LEN must equal .*--node-cidr-mask-size'):
        kubestore.pod_cidr(fixture('node-with-podcidr.json'), net)


# ---------------------------------------------------------------- annotations as flanneld writes them

def test_our_annotations_for_the_recorded_lease_equal_flanneld_s():
    node = fixture('node-with-podcidr.json')
    lease = Lease.make('vxlan', 1, {IPV4: LeasePart('10.42.0.0/24', '192.168.241.250', '02:d3:a3:f6:bb:b4')})
    notes = node['metadata']['annotations']
    assert kubestore.wanted_annotations(lease) == dict((k, notes[k]) for k in kubestore.OWNED if k in notes)


def test_acquire_on_a_node_flanneld_annotated_changes_nothing():
    store, api = store_for([fixture('node-with-podcidr.json')])
    lease, changed, warnings, before, after = store.acquire(K3S_NET, Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4')}))
    assert str(lease.subnet) == '10.42.0.0/24' and not changed and not warnings and before == after
    assert [r[0] for r in api.requests] == ['GET']


def test_acquire_writes_the_annotations_with_a_merge_patch():
    store, api = store_for([fixture('node-with-podcidr.json')], token='s3cret')
    lease, changed = store.acquire(K3S_NET, Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '0e:11:22:33:44:55')}))[:2]
    assert changed
    method, url, body, headers = api.requests[-1]
    assert (method, url) == ('PATCH', API + '/api/v1/nodes/' + RECORDED)
    assert headers['Content-Type'] == 'application/merge-patch+json' and headers['Authorization'] == 'Bearer s3cret'
    assert body == {'metadata': {'annotations': {kubestore.BACKEND_DATA: '{"VNI":1,"VtepMAC":"0e:11:22:33:44:55"}'}}}


def test_check_mode_does_not_patch():
    store, api = store_for([fixture('node-with-podcidr.json')])
    assert store.acquire(K3S_NET, Claim('host-gw', None, {IPV4: NodePart('192.168.241.9')}), check_mode=True)[1] is True
    assert [r[0] for r in api.requests] == ['GET']


def test_host_gw_backend_data_is_null_as_flanneld_marshals_it():
    lease = Lease.make('host-gw', None, {IPV4: LeasePart('10.42.1.0/24', '192.168.241.251', None)})
    assert kubestore.wanted_annotations(lease)[kubestore.BACKEND_DATA] == 'null'


def test_acquire_without_podcidr_or_outside_the_network_fails_before_any_patch():
    for name, node in (('node-without-podcidr.json', RECORDED), ('node-podcidr-outside.json', '192.168.1.3')):
        store, api = store_for([fixture(name)], name=node)
        with pytest.raises(LeaseError, match='podCIDR'):
            store.acquire(K3S_NET, Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4')}))
        assert all(r[0] == 'GET' for r in api.requests)


def test_unregistered_node_is_named():
    store, dummy = store_for([fixture('node-with-podcidr.json')], name='node9')
    with pytest.raises(KubeError, match='node node9 is not registered'):
        store.acquire(K3S_NET, Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4')}))


# ---------------------------------------------------------------- peers

def test_peers_from_a_node_list_skip_corrupt_and_unmanaged_nodes(monkeypatch):
    monkeypatch.setattr(kubestore, 'PAGE', 2)   # and follow the list's continue token
    store, api = store_for(fixture('nodes.json')['items'])
    leases, warnings = store.leases()
    assert [(str(x.subnet), x.backend_type, str(x.public_ip), x.vtep_mac) for x in leases] == [
        ('10.42.0.0/24', 'vxlan', '192.168.241.250', '02:d3:a3:f6:bb:b4'),
        ('10.42.1.0/24', 'host-gw', '192.168.241.251', None)]
    assert len(warnings) == 1 and '10.42.2.0-24' in warnings[0] and 'MAC' in warnings[0]
    assert len([r for r in api.requests if r[0] == 'GET']) == 2


def test_public_ip_overwrite_wins():
    node = fixture('node-with-podcidr.json')
    node['metadata']['annotations'][kubestore.PUBLIC_IP_OVERWRITE] = '203.0.113.7'
    store, dummy = store_for([node])
    assert store.public_ip_overwrite() == '203.0.113.7'
    assert kubestore.public_ip_overwrite(fixture('node-with-podcidr.json')) is None


# ---------------------------------------------------------------- release and errors

def test_release_removes_flannel_annotations_only():
    store, api = store_for([fixture('node-with-podcidr.json')])
    gone, changed = store.release()
    assert changed and [str(x.subnet) for x in gone] == ['10.42.0.0/24']
    notes = api.nodes[RECORDED]['metadata']['annotations']
    assert not [k for k in notes if k.startswith('flannel.')] and 'k3s.io/hostname' in notes
    assert api.nodes[RECORDED]['spec']['podCIDR'] == '10.42.0.0/24'
    assert store.release() == ([], False)


def test_api_errors_name_the_server():
    store, api = store_for([fixture('node-with-podcidr.json')], name='gone')
    with pytest.raises(KubeError, match=r'Kubernetes API https://192.168.1.1:6443: GET /api/v1/nodes/gone: '
                                        r'HTTP 404 nodes "gone" not found'):
        store.public_ip_overwrite()
    api.unreachable = True
    with pytest.raises(KubeError, match=r'Kubernetes API https://192.168.1.1:6443 is unreachable .*refused'):
        store.leases()


@pytest.mark.parametrize('api', ['192.168.1.1:6443', 'ftp://x', ''])
def test_bad_api_url_is_refused(api):
    with pytest.raises(KubeError, match='kube_api'):
        KubeClient(api, opener=FakeAPI([]))


# ---------------------------------------------------------------- IPv6: podCIDRs and the v6 annotations (issue 16)

V6_NET = 'fd00:42::/56'
MAC6 = '0e:11:22:33:44:66'


def k3s_net6(ipv4=True):
    """K3S_NET with IPv6 fd00:42::/56 (/64s), built directly (net-conf's IPv6 keys: netconf.py)."""
    import dataclasses
    import ipaddress
    extra = dict(enable_ipv6=True, ipv6_network=ipaddress.IPv6Network(V6_NET), ipv6_subnet_len=64,
                 ipv6_subnet_min=ipaddress.IPv6Network('fd00:42:0:1::/64'),
                 ipv6_subnet_max=ipaddress.IPv6Network('fd00:42:0:ff::/64'))
    if not ipv4:
        extra.update(enable_ipv4=False, network=None, subnet_len=None, subnet_min=None, subnet_max=None)
    return dataclasses.replace(K3S_NET, **extra)


def dual_node(cidrs=('10.42.0.0/24', 'fd00:42:0:5::/64'), **notes):
    node = fixture('node-with-podcidr.json')
    node['spec']['podCIDR'] = cidrs[0]
    node['spec']['podCIDRs'] = list(cidrs)
    node['metadata']['annotations'].update(notes)
    return node


def test_pod_cidrs_hold_one_subnet_per_family():
    assert [str(x) for x in kubestore.pod_cidrs(dual_node(), k3s_net6())] == ['10.42.0.0/24', 'fd00:42:0:5::/64']
    assert kubestore.pod_cidrs(dual_node(('fd00:42:0:5::/64',)), k3s_net6(ipv4=False))[0] is None
    assert str(kubestore.pod_cidr(dual_node(), K3S_NET)) == '10.42.0.0/24'      # IPv4-only: the IPv6 one unused


def test_pod_cidrs_without_the_ipv6_subnet_is_a_clear_error_before_any_patch():
    store, api = store_for([fixture('node-with-podcidr.json')])
    with pytest.raises(LeaseError, match=r'node %s: spec.podCIDRs \(10\.42\.0\.0/24\) has no IPv6 subnet, and the '
                                         r'network has IPv6: kube-controller-manager must run with '
                                         r'--allocate-node-cidrs --cluster-cidr=<CLUSTER_CIDR>,<CLUSTER_CIDR_IPV6> '
                                         r'--node-cidr-mask-size-ipv4=<NODE_CIDR_LEN> '
                                         r'--node-cidr-mask-size-ipv6=<NODE_CIDR_LEN_IPV6>; .*delete the Node' % RECORDED):
        store.acquire(k3s_net6(), Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4'), IPV6: NodePart('fd53::250', MAC6)}))
    assert [r[0] for r in api.requests] == ['GET']
    with pytest.raises(LeaseError, match=r'podCIDR not assigned .*--cluster-cidr=<CLUSTER_CIDR_IPV6> '
                                         r'--node-cidr-mask-size=<NODE_CIDR_LEN_IPV6>'):
        kubestore.pod_cidrs(fixture('node-without-podcidr.json'), k3s_net6(ipv4=False))


def test_ipv6_pod_cidr_outside_the_ipv6_network_or_of_another_length_is_refused():
    with pytest.raises(LeaseError, match=r'podCIDR fd00:99::/64 is not inside the network fd00:42::/56 '
                                         r'\(CLUSTER_CIDR_IPV6 must equal'):
        kubestore.pod_cidrs(dual_node(('10.42.0.0/24', 'fd00:99::/64')), k3s_net6())
    with pytest.raises(LeaseError, match=r'is not a /64 \(NODE_CIDR_LEN_IPV6 must equal kube-controller-manager '
                                         r'--node-cidr-mask-size-ipv6\)'):
        kubestore.pod_cidrs(dual_node(('10.42.0.0/24', 'fd00:42:0:5::/80')), k3s_net6())
    with pytest.raises(LeaseError, match='more than one subnet per family'):
        kubestore.pod_cidrs(dual_node(('10.42.0.0/24', 'fd00:42:0:5::/64', '10.42.1.0/24')), k3s_net6())


def test_v6_annotations_as_flanneld_writes_them():
    lease = Lease.make('vxlan', 1, {IPV4: LeasePart('10.42.0.0/24', '192.168.241.250', '02:d3:a3:f6:bb:b4'),
                                    IPV6: LeasePart('fd00:42:0:5::/64', 'fd53::250', MAC6)})
    notes = kubestore.wanted_annotations(lease)
    assert notes[kubestore.BACKEND_V6_DATA] == '{"VNI":1,"VtepMAC":"0e:11:22:33:44:66"}'
    assert notes[kubestore.PUBLIC_IPV6] == 'fd53::250' and notes[kubestore.PUBLIC_IP] == '192.168.241.250'
    hostgw = Lease.make('host-gw', None, {IPV4: LeasePart('10.42.0.0/24', '192.168.241.250', None), IPV6: LeasePart('fd00:42:0:5::/64', 'fd53::250', None)})
    assert kubestore.wanted_annotations(hostgw)[kubestore.BACKEND_V6_DATA] == 'null'
    only6 = Lease.make('vxlan', 1, {IPV4: LeasePart(None, None, None), IPV6: LeasePart('fd00:42:0:5::/64', 'fd53::250', MAC6)})
    assert sorted(kubestore.wanted_annotations(only6)) == sorted([
        kubestore.BACKEND_TYPE, kubestore.KUBE_MANAGED, kubestore.BACKEND_V6_DATA, kubestore.PUBLIC_IPV6])


def test_dual_stack_acquire_patches_the_v6_annotations_and_keys_the_lease_flannels_way():
    peer = dual_node(('10.42.1.0/24', 'fd00:42:0:6::/64'))
    peer['metadata']['name'] = 'peer'
    peer['metadata']['annotations'][kubestore.PUBLIC_IP] = '192.168.241.251'   # has not run with IPv6 yet
    store, api = store_for([dual_node(), peer])
    lease, changed, warnings, before, after = store.acquire(k3s_net6(), Claim('vxlan', 1, {
        IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4'), IPV6: NodePart('fd53::250', MAC6)}))
    assert changed and not warnings and lease.key == '10.42.0.0-24&fd00:42:0:5::-64'
    assert api.requests[-1][2] == {'metadata': {'annotations': {
        kubestore.BACKEND_V6_DATA: '{"VNI":1,"VtepMAC":"0e:11:22:33:44:66"}', kubestore.PUBLIC_IPV6: 'fd53::250'}}}
    assert sorted(before['leases']) == ['10.42.0.0-24', '10.42.1.0-24']
    assert sorted(after['leases']) == ['10.42.0.0-24&fd00:42:0:5::-64', '10.42.1.0-24']
    leases, warnings = store.leases()
    assert [(x.subnet, x.subnet6, x.public_ip6, x.vtep_mac6) for x in leases] == [
        ('10.42.0.0/24', 'fd00:42:0:5::/64', 'fd53::250', MAC6), ('10.42.1.0/24', None, None, None)]
    again = store.acquire(k3s_net6(), Claim('vxlan', 1, {IPV4: NodePart('192.168.241.250', '02:d3:a3:f6:bb:b4'), IPV6: NodePart('fd53::250', MAC6)}))
    assert again[0] == lease and again[1] is False and again[3] == again[4]


def test_ipv6_only_and_host_gw_and_corrupt_v6_annotations():
    store, api = store_for([dual_node(('fd00:42:0:5::/64',))])
    lease, changed = store.acquire(k3s_net6(ipv4=False), Claim('host-gw', None, {IPV4: NodePart(None), IPV6: NodePart('fd53::250')}))[:2]
    assert changed and (lease.subnet, lease.subnet6, lease.key) == (None, 'fd00:42:0:5::/64', 'fd00:42:0:5::-64')
    patch = api.requests[-1][2]['metadata']['annotations']
    assert patch[kubestore.BACKEND_V6_DATA] == 'null' and patch[kubestore.BACKEND_TYPE] == 'host-gw'
    assert store.leases()[0] == [lease]
    bad = dual_node(**{kubestore.PUBLIC_IPV6: 'fd53::250', kubestore.BACKEND_V6_DATA: '{"VNI":1,"VtepMAC":"zz"}'})
    leases, warnings = store_for([bad])[0].leases()
    assert leases == [] and len(warnings) == 1 and '10.42.0.0-24&fd00:42:0:5::-64' in warnings[0]


def test_release_removes_the_v6_annotations_and_overwrites_are_read_in_one_request():
    node = dual_node(**{kubestore.PUBLIC_IPV6: 'fd53::250', kubestore.BACKEND_V6_DATA: '{"VNI":1,"VtepMAC":"%s"}' % MAC6,
                        kubestore.PUBLIC_IPV6_OVERWRITE: 'fd53::7'})
    store, api = store_for([node])
    assert store.public_ip_overwrites() == (None, 'fd53::7') and len(api.requests) == 1
    gone, changed = store.release({IPV4: None, IPV6: 'fd53::250'})
    assert changed and [x.key for x in gone] == ['10.42.0.0-24&fd00:42:0:5::-64']
    notes = api.nodes[RECORDED]['metadata']['annotations']
    assert not [k for k in notes if k.startswith('flannel.') and 'overwrite' not in k]
