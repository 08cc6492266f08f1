# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's Kubernetes subnet manager (``--kube-subnet-mgr``) as a lease store.

The node's ``spec.podCIDR`` (assigned by kube-controller-manager with ``--allocate-node-cidrs``)
is its lease; flannel's node annotations (prefix ``flannel.alpha.coreos.com/``) carry the rest:
``backend-type``, ``backend-data`` (``{"VNI":1,"VtepMAC":".."}``, ``null`` for host-gw),
``public-ip`` and ``kube-subnet-manager: "true"``; ``public-ip-overwrite`` wins over the
detected IP. The API is reached with Ansible's ``open_url`` (token or client certificate).

Imported on the managed node: standard library and ansible.module_utils only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import json
import socket

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode, urlparse
from ansible_collections.kubeasz.network.plugins.module_utils.etcd import tls_opener
from ansible_collections.kubeasz.network.plugins.module_utils.lease import Lease, LeaseError, subnet_key
from ansible_collections.kubeasz.network.plugins.module_utils.leases import LeaseStore, parse_leases

PREFIX = 'flannel.alpha.coreos.com/'
BACKEND_TYPE = PREFIX + 'backend-type'
BACKEND_DATA = PREFIX + 'backend-data'
PUBLIC_IP = PREFIX + 'public-ip'
PUBLIC_IP_OVERWRITE = PREFIX + 'public-ip-overwrite'
KUBE_MANAGED = PREFIX + 'kube-subnet-manager'
OWNED = (BACKEND_TYPE, BACKEND_DATA, PUBLIC_IP, KUBE_MANAGED)
TIMEOUT = 10
PAGE = 500


class KubeError(LeaseError):
    """The API server could not be reached or refused a request (the message names it)."""


# ---------------------------------------------------------------- the client

class KubeClient:
    """Just the Node calls flannel needs. ``ca``/``cert``/``key`` are file paths."""

    def __init__(self, api, token=None, ca=None, cert=None, key=None, timeout=TIMEOUT, opener=None):
        parsed = urlparse(api if isinstance(api, str) else '')
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise KubeError('kube_api %r is not of the form https://host:6443' % (api,))
        self.api = api.rstrip('/')
        self.headers = {'Accept': 'application/json'}
        if token:
            self.headers['Authorization'] = 'Bearer %s' % token
        self.opener = opener or tls_opener(ca, cert, key, timeout, use_proxy=True)

    def call(self, method, path, body=None, content_type='application/json'):
        headers = dict(self.headers)
        if body is not None:
            headers['Content-Type'] = content_type
        try:
            text = self.opener(method, self.api + path, None if body is None else json.dumps(body), headers).read()
        except HTTPError as exc:
            raise KubeError('Kubernetes API %s: %s %s: HTTP %s %s'
                            % (self.api, method, path, exc.code, _status_message(exc)))
        except (URLError, socket.error, ValueError) as exc:
            raise KubeError('Kubernetes API %s is unreachable (%s %s): %s'
                            % (self.api, method, path, getattr(exc, 'reason', None) or exc))
        try:
            return json.loads(text)
        except ValueError:
            raise KubeError('Kubernetes API %s: %s %s: the answer is not JSON' % (self.api, method, path))

    def node(self, name):
        return self.call('GET', '/api/v1/nodes/%s' % quote(name, safe=''))

    def nodes(self):
        """Every Node (paged)."""
        items, token = [], None
        while True:
            query = {'limit': PAGE}
            if token:
                query['continue'] = token
            answer = self.call('GET', '/api/v1/nodes?' + urlencode(query))
            items.extend(answer.get('items') or [])
            token = (answer.get('metadata') or {}).get('continue')
            if not token:
                return items

    def annotate(self, name, annotations):
        """Merge-patch the node's annotations (a value None removes the annotation)."""
        return self.call('PATCH', '/api/v1/nodes/%s' % quote(name, safe=''),
                         {'metadata': {'annotations': annotations}}, 'application/merge-patch+json')


def _status_message(exc):
    try:
        status = json.loads(exc.read())
        return status.get('message') or status.get('reason') or ''
    except (ValueError, TypeError, AttributeError, OSError):
        return str(getattr(exc, 'reason', '') or '')


# ---------------------------------------------------------------- Node objects

def name_of(node):
    return (node.get('metadata') or {}).get('name') or '?'


def annotations_of(node):
    return dict((node.get('metadata') or {}).get('annotations') or {})


def public_ip_overwrite(node):
    """``flannel.alpha.coreos.com/public-ip-overwrite``, or None."""
    return annotations_of(node).get(PUBLIC_IP_OVERWRITE) or None


def pod_cidr(node, netconf=None):
    """The node's lease: ``spec.podCIDR``, checked against the network (clear errors)."""
    name = name_of(node)
    value = (node.get('spec') or {}).get('podCIDR')
    if not value:
        raise LeaseError(
            'node %s: podCIDR not assigned (spec.podCIDR is empty): kube-controller-manager must run with '
            '--allocate-node-cidrs --cluster-cidr=<CLUSTER_CIDR> --node-cidr-mask-size=<NODE_CIDR_LEN>' % name)
    try:
        subnet = ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise LeaseError('node %s: podCIDR %r is not an IPv4 subnet (%s)' % (name, value, exc))
    if netconf is not None:
        if not subnet.subnet_of(netconf.network):
            raise LeaseError('node %s: podCIDR %s is not inside the network %s (CLUSTER_CIDR must equal '
                             'kube-controller-manager --cluster-cidr)' % (name, subnet, netconf.network))
        if subnet.prefixlen != netconf.subnet_len:
            raise LeaseError('node %s: podCIDR %s is not a /%d (NODE_CIDR_LEN must equal kube-controller-manager '
                             '--node-cidr-mask-size)' % (name, subnet, netconf.subnet_len))
    return subnet


def wanted_annotations(lease):
    """flannel's annotations for ``lease`` (backend-data as flanneld marshals it)."""
    data = lease.backend_data()
    return {BACKEND_TYPE: lease.backend_type,
            BACKEND_DATA: json.dumps(data, separators=(',', ':')) if data is not None else 'null',
            PUBLIC_IP: str(lease.public_ip), KUBE_MANAGED: 'true'}


def store_entry(node):
    """(lease key, flannel lease value) of a node flannel manages, or None (not yet managed)."""
    notes = annotations_of(node)
    podcidr = (node.get('spec') or {}).get('podCIDR')
    if not podcidr or BACKEND_TYPE not in notes or PUBLIC_IP not in notes:
        return None
    try:
        key = subnet_key(ipaddress.IPv4Network(podcidr))
    except ValueError:
        key = 'node %s podCIDR %s' % (name_of(node), podcidr)   # reported as corrupt
    data = notes.get(BACKEND_DATA)
    try:
        data = json.loads(data) if data else None
    except ValueError:
        pass   # left as text: Lease.from_store reports it
    return key, {'PublicIP': notes.get(PUBLIC_IP), 'PublicIPv6': None,
                 'BackendType': notes.get(BACKEND_TYPE), 'BackendData': data}


def document(nodes):
    """Store document of the flannel-managed nodes."""
    doc = {'config': None, 'leases': {}}
    for node in nodes:
        entry = store_entry(node)
        if entry:
            doc['leases'][entry[0]] = entry[1]
    return doc


# ---------------------------------------------------------------- the store

class KubeStore(LeaseStore):
    """Node podCIDRs and flannel annotations, for the node called ``node_name``."""

    def __init__(self, client, node_name):
        if not node_name:
            raise KubeError('node_name is required with store=kube')
        self.client = client
        self.node_name = node_name
        self.label = 'Kubernetes API %s node %s' % (client.api, node_name)

    def public_ip_overwrite(self):
        return public_ip_overwrite(self.client.node(self.node_name))

    def leases(self):
        leases, warnings, dummy = parse_leases(document(self.client.nodes())['leases'])
        return leases, warnings

    def _own(self, nodes):
        for node in nodes:
            if name_of(node) == self.node_name:
                return node
        raise KubeError('%s: node %s is not registered (kubelet must have joined the cluster first)'
                        % (self.client.api, self.node_name))

    def acquire(self, netconf, public_ip, backend_type, vni=None, vtep_mac=None,
                preferred=None, config=None, check_mode=False):
        nodes = self.client.nodes()
        node = self._own(nodes)
        lease = Lease.make(pod_cidr(node, netconf), public_ip, backend_type, vni, vtep_mac)
        current = annotations_of(node)
        patch = dict((k, v) for k, v in wanted_annotations(lease).items() if current.get(k) != v)
        before = document(nodes)
        leases, warnings, dummy = parse_leases(before['leases'])
        after = {'config': None, 'leases': dict(before['leases'])}
        after['leases'][lease.key] = json.loads(lease.to_store()[1])
        if patch and not check_mode:
            self.client.annotate(self.node_name, patch)
        return lease, bool(patch), warnings, before, after

    def release(self, public_ip=None, check_mode=False):
        """Remove flannel's annotations (the podCIDR belongs to kube-controller-manager)."""
        node = self.client.node(self.node_name)
        current = annotations_of(node)
        gone = []
        entry = store_entry(node)
        if entry:
            gone = parse_leases({entry[0]: entry[1]})[0]
        patch = dict((k, None) for k in OWNED if k in current)
        if patch and not check_mode:
            self.client.annotate(self.node_name, patch)
        return gone, bool(patch)
