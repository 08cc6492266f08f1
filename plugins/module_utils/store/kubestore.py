# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's Kubernetes subnet manager (``--kube-subnet-mgr``) as a lease store.

The node's ``spec.podCIDR`` (assigned by kube-controller-manager with ``--allocate-node-cidrs``)
is its lease; flannel's node annotations (prefix ``flannel.alpha.coreos.com/``) carry the rest:
``backend-type``, ``backend-data`` (``{"VNI":1,"VtepMAC":".."}``, ``null`` for host-gw),
``public-ip`` and ``kube-subnet-manager: "true"``; ``public-ip-overwrite`` wins over the
detected IP. With IPv6 (dual-stack, IPv6-only) ``spec.podCIDRs`` holds one subnet per family
and ``public-ipv6`` / ``backend-v6-data`` (vxlan: ``{"VNI":1,"VtepMAC":".."}``, host-gw: ``null``)
carry the IPv6 side, ``public-ipv6-overwrite`` wins over the detected IPv6 address (flannel's
kube.go); IPv6-only leases write no ``public-ip``/``backend-data``, as flanneld's vxlan does.
The API is reached with Ansible's ``open_url`` (token or client certificate).

Imported on the managed node: standard library and ansible.module_utils only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode, urlparse
from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import tls_opener
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6, family_of
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError, LeasePart, NodePart, subnet_key
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import config_families
from ansible_collections.kubeasz.network.plugins.module_utils.store.leasestore import LeaseStore, parse_leases

PREFIX = 'flannel.alpha.coreos.com/'
BACKEND_TYPE = PREFIX + 'backend-type'
BACKEND_DATA = PREFIX + 'backend-data'
BACKEND_V6_DATA = PREFIX + 'backend-v6-data'
PUBLIC_IP = PREFIX + 'public-ip'
PUBLIC_IPV6 = PREFIX + 'public-ipv6'
PUBLIC_IP_OVERWRITE = PREFIX + 'public-ip-overwrite'
PUBLIC_IPV6_OVERWRITE = PREFIX + 'public-ipv6-overwrite'
KUBE_MANAGED = PREFIX + 'kube-subnet-manager'
OWNED = (BACKEND_TYPE, BACKEND_DATA, PUBLIC_IP, KUBE_MANAGED, BACKEND_V6_DATA, PUBLIC_IPV6)
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


def public_ipv6_overwrite(node):
    """``flannel.alpha.coreos.com/public-ipv6-overwrite``, or None."""
    return annotations_of(node).get(PUBLIC_IPV6_OVERWRITE) or None


def pod_cidr_texts(node):
    """``spec.podCIDRs`` (or, on an old API server, ``[spec.podCIDR]``) as given."""
    spec = node.get('spec') or {}
    cidrs = spec.get('podCIDRs') or ([spec['podCIDR']] if spec.get('podCIDR') else [])
    return [str(cidr) for cidr in cidrs]


def _by_family(cidrs):
    """{Family: text}: the first podCIDR of each family (flannel's nodeToLease)."""
    found = {}
    for cidr in cidrs:
        found.setdefault(family_of(cidr), cidr)
    return found


# kube-controller-manager's flags for the families of the network
_KCM = {(IPV4,): '--cluster-cidr=<CLUSTER_CIDR> --node-cidr-mask-size=<NODE_CIDR_LEN>',
        (IPV6,): '--cluster-cidr=<CLUSTER_CIDR_IPV6> --node-cidr-mask-size=<NODE_CIDR_LEN_IPV6>',
        (IPV4, IPV6): '--cluster-cidr=<CLUSTER_CIDR>,<CLUSTER_CIDR_IPV6> --node-cidr-mask-size-ipv4=<NODE_CIDR_LEN> '
                      '--node-cidr-mask-size-ipv6=<NODE_CIDR_LEN_IPV6>'}
# the flag that sets a family's node subnet length (dual-stack: each family's own)
_MASK_FLAG = {IPV4: '--node-cidr-mask-size', IPV6: '--node-cidr-mask-size-ipv6'}


def pod_cidrs(node, netconf=None):
    """The node's lease: (IPv4 subnet or None, IPv6 subnet or None) from ``spec.podCIDRs``, one
    for each family the network has (IPv4 only without ``netconf``), checked against the network
    (clear errors naming the node and the fix)."""
    name = name_of(node)
    families = config_families(netconf) if netconf is not None else (IPV4,)
    kcm = 'kube-controller-manager must run with --allocate-node-cidrs %s' % _KCM[families]
    cidrs = pod_cidr_texts(node)
    if not cidrs:
        raise LeaseError('node %s: podCIDR not assigned (spec.podCIDR is empty): %s' % (name, kcm))
    if len(cidrs) > 2:
        raise LeaseError('node %s: spec.podCIDRs %s holds more than one subnet per family' % (name, ', '.join(cidrs)))
    found = _by_family(cidrs)
    subnets = {}
    for family in families:
        value = found.get(family)
        if value is None:
            raise LeaseError(
                'node %s: spec.podCIDRs (%s) has no %s subnet, and the network has %s: %s; a node keeps the '
                'podCIDRs it registered with, so delete the Node and let its kubelet register it again '
                'after that change' % (name, ', '.join(cidrs), family.label, family.label, kcm))
        try:
            subnet = family.net_cls(value)
        except ValueError as exc:
            raise LeaseError('node %s: podCIDR %r is not an %s subnet (%s)' % (name, value, family.label, exc))
        if netconf is not None:
            network, subnet_len = (getattr(netconf, attr) for attr in family.conf_attrs[:2])
            cidr_key, len_key, mask_flag = family.cidr_key, family.node_len_key, _MASK_FLAG[family]
            if not subnet.subnet_of(network):
                raise LeaseError('node %s: podCIDR %s is not inside the network %s (%s must equal '
                                 'kube-controller-manager --cluster-cidr)' % (name, subnet, network, cidr_key))
            if subnet.prefixlen != subnet_len:
                raise LeaseError('node %s: podCIDR %s is not a /%d (%s must equal kube-controller-manager '
                                 '%s)' % (name, subnet, subnet_len, len_key, mask_flag))
        subnets[family] = subnet
    return subnets.get(IPV4), subnets.get(IPV6)


def pod_cidr(node, netconf=None):
    """The node's IPv4 lease: ``spec.podCIDR``, checked against the network (clear errors)."""
    return pod_cidrs(node, netconf)[0]


def _json_text(data):
    return json.dumps(data, separators=(',', ':')) if data is not None else 'null'


def wanted_annotations(lease):
    """flannel's annotations for ``lease`` (backend-data / backend-v6-data as flanneld marshals
    them: host-gw ``null``); the IPv4 ones only with an IPv4 subnet, the IPv6 ones only with an
    IPv6 subnet."""
    notes = {BACKEND_TYPE: lease.backend_type}
    if lease.subnet is not None:
        notes.update({BACKEND_DATA: _json_text(lease.backend_data(IPV4)), PUBLIC_IP: str(lease.public_ip)})
    notes[KUBE_MANAGED] = 'true'
    if lease.subnet6 is not None:
        notes.update({BACKEND_V6_DATA: _json_text(lease.backend_data(IPV6)), PUBLIC_IPV6: str(lease.public_ip6)})
    return notes


def _decoded(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text   # left as text: Lease.from_store reports it


def store_entry(node, families=FAMILIES):
    """(lease key, flannel lease value) of a node flannel manages, or None (not yet managed).

    Each of ``families`` for which the node has a podCIDR and flannel's public-ip / public-ipv6
    annotation is in the lease (a peer that has not run with IPv6 yet is an IPv4 lease).
    """
    notes = annotations_of(node)
    cidrs = pod_cidr_texts(node)
    found = _by_family(cidrs)
    use = dict((family, family in families and family in found and address in notes)
               for family, address in ((IPV4, PUBLIC_IP), (IPV6, PUBLIC_IPV6)))
    if BACKEND_TYPE not in notes or not (use[IPV4] or use[IPV6]):
        return None
    try:
        key = subnet_key(*(family.net_cls(found[family]) if use[family] else None for family in FAMILIES))
    except ValueError:
        key = 'node %s podCIDR %s' % (name_of(node), ','.join(cidrs))   # reported as corrupt
    value = {'PublicIP': notes.get(PUBLIC_IP) if use[IPV4] else '0.0.0.0',
             'PublicIPv6': notes.get(PUBLIC_IPV6) if use[IPV6] else None,
             'BackendType': notes.get(BACKEND_TYPE)}
    for family, data in ((IPV4, BACKEND_DATA), (IPV6, BACKEND_V6_DATA)):
        if use[family]:
            value[family.store_backend_data] = _decoded(notes.get(data))
    return key, value


def document(nodes, families=FAMILIES):
    """Store document of the flannel-managed nodes."""
    doc = {'config': None, 'leases': {}}
    for node in nodes:
        entry = store_entry(node, families)
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

    def public_ip_overwrites(self):
        """(public-ip-overwrite, public-ipv6-overwrite) of the node, in one request."""
        node = self.client.node(self.node_name)
        return public_ip_overwrite(node), public_ipv6_overwrite(node)

    def leases(self):
        leases, warnings, dummy = parse_leases(document(self.client.nodes())['leases'])
        return leases, warnings

    def _own(self, nodes):
        for node in nodes:
            if name_of(node) == self.node_name:
                return node
        raise KubeError('%s: node %s is not registered (kubelet must have joined the cluster first)'
                        % (self.client.api, self.node_name))

    def acquire(self, netconf, claim, config=None, check_mode=False):
        nodes = self.client.nodes()
        node = self._own(nodes)
        parts = {}
        for fam, subnet in zip(FAMILIES, pod_cidrs(node, netconf)):
            part = claim.parts.get(fam) or NodePart()
            parts[fam] = LeasePart(subnet, part.public_ip, part.vtep_mac)
        lease = Lease.make(claim.backend_type, claim.vni, parts)
        current = annotations_of(node)
        patch = dict((k, v) for k, v in wanted_annotations(lease).items() if current.get(k) != v)
        families = config_families(netconf)
        before = document(nodes, families)
        leases, warnings, dummy = parse_leases(before['leases'])
        after = {'config': None, 'leases': dict(before['leases'])}
        mine = store_entry(node, families)
        if mine:
            after['leases'].pop(mine[0], None)
        after['leases'][lease.key] = json.loads(lease.to_store()[1])
        if patch and not check_mode:
            self.client.annotate(self.node_name, patch)
        return lease, bool(patch), warnings, before, after

    def release(self, addresses=None, check_mode=False):
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
