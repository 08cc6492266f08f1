#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: flannel_subnet
short_description: Lease a flannel subnet for a node and write /run/flannel/subnet.env
version_added: 0.1.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - Takes a subnet lease for the node the way C(flanneld) does and writes C(subnet.env) exactly
    as C(flanneld) writes it, so that Ansible can be flannel's control plane (C(ansible) dataplane).
  - With O(store=file) the leases live in one JSON file on the controller (O(lease_file)); the
    action plugin of the same name runs there, holds an exclusive lock on the file while it
    allocates (safe with many forks), and runs the module on the node.
  - "Allocation follows flannel: the lease already holding the node's public IP is kept if it is
    still within C(SubnetMin)..C(SubnetMax) and of C(SubnetLen) (its backend data is updated);
    else the subnet of an existing C(subnet.env) if it is free; else the lowest free subnet
    (flanneld picks at random among the first free ones; lowest-first is reproducible)."
  - The node's external interface, public IP and MTU are detected like flanneld
    (O(iface), else O(iface_regex), else the default route's device).
  - "IPv6 (C(EnableIPv6) in O(network), dual-stack or IPv6-only with C(EnableIPv4: false)): the lease
    also gets an IPv6 subnet from C(IPv6SubnetMin)..C(IPv6SubnetMax) (kept across runs, never one of
    another node's), flannel's dual-stack key (C(172.20.1.0-24&fd00:20:0:1::-64)) and JSON
    (C(PublicIPv6), C(BackendV6Data)) are stored, and C(subnet.env) gets C(FLANNEL_IPV6_NETWORK) and
    C(FLANNEL_IPV6_SUBNET). The node's public IPv6 address is O(public_ip6), else the first usable
    global IPv6 address of the external interface (flanneld's order: not deprecated, configured
    before SLAAC/DHCPv6, non-temporary first; link-local ones are not used); without one the task
    fails before anything changes. A lease that no longer fits the config (IPv6 switched on or off,
    another IPv6 network or length) is replaced by a new lease, as flanneld does; the node keeps
    the subnet of the family that still fits (flanneld would pick a new IPv4 subnet too)."
  - Leases of other nodes are validated like user input; a corrupt one is skipped with a warning
    (and its subnet is never handed out again until the operator fixes or removes it).
options:
  state:
    description:
      - V(present) takes (or keeps) the lease and writes O(subnet_file).
      - V(absent) releases the node's lease and removes O(subnet_file) (and O(cni_conf_file)).
      - V(query) changes nothing and returns the node's facts, its lease (if any) and all peers;
        call it once every node holds its lease to get the complete peer list.
    type: str
    choices: [present, absent, query]
    default: present
  network:
    description:
      - The content of flannel's C(net-conf.json) as a dictionary (C(Network), C(SubnetLen),
        C(SubnetMin), C(SubnetMax), C(Backend) ...), validated with flannel's rules.
      - Required unless O(state=absent).
    type: dict
  iface:
    description:
      - Name of the external interface (flanneld C(--iface)). Default is the default route's device.
    type: str
  iface_regex:
    description:
      - Regular expression; the first interface with an IPv4 address whose name matches is the
        external interface (flanneld C(--iface-regex)). Ignored when O(iface) is set.
    type: str
  public_ip:
    description:
      - IP address other nodes reach this node on (flanneld C(--public-ip)); default is the first
        IPv4 address of the external interface. The C(host-gw) backend refuses a public IP that
        is not an address of the external interface (NAT).
    type: str
  public_ip6:
    description:
      - IPv6 address other nodes reach this node on (flanneld C(--public-ipv6)), used when O(network)
        has IPv6; default is the first usable global IPv6 address of the external interface (see above).
        With O(store=kube) the node annotation C(flannel.alpha.coreos.com/public-ipv6-overwrite) is used
        when this is unset. The C(host-gw) backend refuses an address that is not one of the external interface.
      - With O(state=absent), the node's lease is also found by this address (IPv6-only leases have no public IP).
    type: str
  ip_masq:
    description:
      - Value of C(FLANNEL_IPMASQ) in O(subnet_file).
    type: bool
    default: true
  store:
    description:
      - Where leases are kept. V(file) is a JSON file on the controller (O(lease_file)).
      - V(etcd) is flannel's own etcd layout (v3 API) under O(etcd_prefix) - the config at
        C(<prefix>/config), one key C(<prefix>/subnets/<a.b.c.d>-<len>) per lease holding flannel's
        lease JSON - so that flanneld and this module can share it. A new lease is created by a
        transaction that succeeds only if the key is absent (a race lost to another node is retried)
        and is bound to an etcd lease of O(etcd_lease_ttl) seconds that every run renews.
      - V(kube) is flannel's Kubernetes subnet manager - the node's C(spec.podCIDR) (assigned by
        kube-controller-manager) is the lease, and flannel's C(flannel.alpha.coreos.com/) node
        annotations are written for it; C(public-ip-overwrite) wins over the detected public IP.
      - With V(etcd) and V(kube) the module itself talks to the store from the node; the action
        plugin only copies the TLS files named below from the controller for the run.
    type: str
    choices: [file, etcd, kube]
    default: file
  etcd_endpoints:
    description:
      - etcd client URLs for O(store=etcd), tried in order, for example
        V(https://192.168.1.1:2379). A comma-separated string is accepted too.
      - Required when O(store=etcd).
    type: list
    elements: str
  etcd_prefix:
    description:
      - Key prefix of flannel's data in etcd (flanneld C(--etcd-prefix)).
    type: str
    default: /coreos.com/network
  etcd_lease_ttl:
    description:
      - Seconds a lease lives in etcd unless renewed (flanneld uses 24 hours); every run renews it.
        In the C(ansible) dataplane the role's route guard renews it between runs (as flanneld
        does, before it expires); without the guard run the play at least that often, or set
        V(0) for leases that never expire (C(state=absent) releases them).
    type: int
    default: 86400
  etcd_ca:
    description:
      - CA certificate that signed the etcd servers' certificates, a path on the controller
        (kubeasz keeps it as C({{ cluster_dir }}/ssl/ca.pem)). Copied to the node's temporary
        directory for the run only.
    type: path
  etcd_cert:
    description:
      - Client certificate for etcd, a path on the controller (kubeasz C({{ cluster_dir }}/ssl/etcd.pem)).
    type: path
  etcd_key:
    description:
      - Private key of O(etcd_cert), a path on the controller (kubeasz C({{ cluster_dir }}/ssl/etcd-key.pem)).
        Its content is never logged; the copy on the node is removed after the run.
    type: path
  kube_api:
    description:
      - URL of the Kubernetes API server for O(store=kube), for example V(https://192.168.1.1:6443).
      - Required when O(store=kube).
    type: str
  kube_token:
    description:
      - Bearer token for the API server (a ServiceAccount token allowed to get, list and patch nodes).
        Never logged.
    type: str
  kube_ca:
    description:
      - CA certificate of the API server, a path on the controller (kubeasz C({{ cluster_dir }}/ssl/ca.pem)).
    type: path
  kube_cert:
    description:
      - Client certificate for the API server, a path on the controller (instead of O(kube_token)).
    type: path
  kube_key:
    description:
      - Private key of O(kube_cert), a path on the controller; never logged, removed from the node after the run.
    type: path
  node_name:
    description:
      - Name of the node's Node object for O(store=kube); default is the node's host name.
    type: str
  lease_file:
    description:
      - Path on the controller of the lease store for O(store=file), for example
        C({{ cluster_dir }}/flannel-leases.json). Its directory is created if missing; a sidecar
        C(<lease_file>.lock) serialises concurrent runs.
      - Required when O(store=file).
    type: path
  subnet_file:
    description:
      - Path of C(subnet.env) on the node.
    type: path
    default: /run/flannel/subnet.env
  cni_conf_file:
    description:
      - When set, also write the CNI config list that flannel's CNI plugin would hand to the
        standard C(bridge) and C(host-local) plugins for this C(subnet.env) (bridge C(cni0), MTU
        C(FLANNEL_MTU)), for example C(/etc/cni/net.d/10-flannel.conflist), so that no flannel
        binary is needed on the node. Removed by O(state=absent).
    type: path
  subnet:
    description:
      - Internal, set by the action plugin after allocation (the leased subnet, for example
        V(172.20.1.0/24)). Do not set it in a task.
    type: str
  subnet6:
    description:
      - Internal, set by the action plugin after allocation (the leased IPv6 subnet, for example
        V(fd00:20:0:1::/64)). Do not set it in a task.
    type: str
  facts:
    description:
      - The node's facts as M(kubeasz.network.node_check) just read them (its RV(kubeasz.network.node_check#module:facts)).
        With O(store=file) the action plugin then takes the lease with one call to the node instead of two
        (the first only reads these facts). The flannel role passes them.
    type: dict
  node_files:
    description:
      - Whether this task writes subnet.env and the CNI config (O(state=present)).
      - With O(store=file) and O(facts), V(false) takes the lease on the controller alone, with no call to the
        node; the flannel role then writes them in its next task (M(kubeasz.network.node_check)'s
        O(kubeasz.network.node_check#module:apply)). The other stores write them with the lease, whatever this says.
    type: bool
    default: true
notes:
  - In check mode on a fresh store every node is shown the same first free subnet, because no
    lease is saved between them.
  - C(changed) is true only when the lease store, O(subnet_file) or O(cni_conf_file) changed; renewing the
    etcd lease of an unchanged lease is not a change.
  - With O(store=etcd) or O(store=kube) a store that cannot be reached fails the task naming the endpoint,
    before O(subnet_file) is touched.
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.attributes.action
attributes:
  check_mode:
    support: full
    details: The lease file, O(subnet_file) and O(cni_conf_file) are left untouched.
  diff_mode:
    support: full
    details: The node's lease entry and the files' text before and after.
  action:
    support: full
    details: With O(store=file) the lease is taken on the controller.
  platform:
    support: full
    platforms: linux
'''

EXAMPLES = r'''
- name: Take a subnet lease and write subnet.env
  kubeasz.network.flannel_subnet:
    network:
      Network: 172.20.0.0/16
      SubnetLen: 24
      Backend:
        Type: vxlan
    lease_file: "{{ cluster_dir }}/flannel-leases.json"
  register: flannel

- name: After every node holds its lease, fetch the complete peer list
  kubeasz.network.flannel_subnet:
    state: query
    network: "{{ flannel_net_conf }}"
    lease_file: "{{ cluster_dir }}/flannel-leases.json"
  register: flannel_peers

- name: Take the lease in flannel's etcd layout (kubeasz's etcd cluster, TLS files from the cluster folder)
  kubeasz.network.flannel_subnet:
    network: "{{ flannel_net_conf }}"
    store: etcd
    etcd_endpoints:
      - https://192.168.1.1:2379
      - https://192.168.1.2:2379
    etcd_ca: "{{ cluster_dir }}/ssl/ca.pem"
    etcd_cert: "{{ cluster_dir }}/ssl/etcd.pem"
    etcd_key: "{{ cluster_dir }}/ssl/etcd-key.pem"

- name: Use the node's podCIDR as the lease and write flannel's node annotations
  kubeasz.network.flannel_subnet:
    network: "{{ flannel_net_conf }}"
    store: kube
    kube_api: https://192.168.1.1:6443
    kube_ca: "{{ cluster_dir }}/ssl/ca.pem"
    kube_cert: "{{ cluster_dir }}/ssl/admin.pem"
    kube_key: "{{ cluster_dir }}/ssl/admin-key.pem"
    node_name: "{{ inventory_hostname }}"

- name: Give the subnet back
  kubeasz.network.flannel_subnet:
    state: absent
    lease_file: "{{ cluster_dir }}/flannel-leases.json"
'''

RETURN = r'''
lease:
  description:
    - This node's lease as a peer dictionary; null when it holds none (query, absent).
    - With IPv6 it also holds C(subnet6), C(public_ip6) and C(vtep_mac6) (null for host-gw); an
      IPv6-only lease has C(subnet), C(public_ip) and C(vtep_mac) null. The IPv6 keys are left out
      of leases without IPv6.
  returned: always
  type: dict
  sample: {"subnet": "172.20.1.0/24", "public_ip": "198.18.0.11", "backend_type": "vxlan",
           "vni": 1, "vtep_mac": "0e:2b:5c:11:aa:01", "subnet6": "fd00:20:0:1::/64",
           "public_ip6": "fd53:18::11", "vtep_mac6": "8a:51:7d:03:c4:2e"}
peers:
  description:
    - The valid leases of all other nodes, sorted by subnet, in the same shape (a peer that has not
      run with IPv6 yet has no IPv6 keys).
  returned: always
  type: list
  elements: dict
iface:
  description: Name of the external interface.
  returned: unless O(state=absent) with O(public_ip) set
  type: str
  sample: eth0
public_ip:
  description: The node's public IP (the lease's PublicIP); null for IPv6-only.
  returned: unless state=absent with public_ip set
  type: str
  sample: 198.18.0.11
public_ip6:
  description: The node's public IPv6 address (the lease's PublicIPv6), O(public_ip6) or flanneld's choice on the external interface.
  returned: when O(network) has IPv6 (without O(network) - O(state=absent) - when the interface has a global IPv6 address)
  type: str
  sample: fd53:18::11
vtep_mac6:
  description: MAC address of the C(flannel-v6.<VNI>) device, as stored in the lease (C(BackendV6Data)).
  returned: when O(network) has IPv6; null for host-gw
  type: str
previous_subnet6:
  description: The IPv6 subnet named by the subnet.env found on the node before the run (C(FLANNEL_IPV6_SUBNET)), if any.
  returned: when O(network) has IPv6
  type: str
  sample: fd00:20:0:1::/64
former_ips:
  description:
    - The interface's addresses of a family O(network) does not enable (its IPv4 ones when IPv6-only, its
      IPv6 ones when IPv4-only). A lease of one of them that cannot belong to O(network) is the node's lease
      of before a family switch and is replaced by the new one, so nothing is left behind in the store.
  returned: when network is given
  type: list
  elements: str
  sample: [198.18.0.11]
mtu:
  description: C(FLANNEL_MTU). For vxlan the backend MTU (or the interface MTU) minus 50; for host-gw the interface MTU.
  returned: when network is given
  type: int
  sample: 1450
vtep_mac:
  description: MAC address of the C(flannel.<VNI>) device, as stored in the lease (vxlan only).
  returned: when the backend is vxlan
  type: str
subnet_env:
  description: The content of subnet.env as a dictionary (after the change; for query the current file).
  returned: always
  type: dict
  sample: {"FLANNEL_NETWORK": "172.20.0.0/16", "FLANNEL_SUBNET": "172.20.1.1/24",
           "FLANNEL_IPV6_NETWORK": "fd00:20::/56", "FLANNEL_IPV6_SUBNET": "fd00:20:0:1::1/64",
           "FLANNEL_MTU": "1450", "FLANNEL_IPMASQ": "true"}
renewed:
  description:
    - store=file, when the node's lease was last taken or kept by a run (UTC, ISO 8601); null
      when the file store has no record of it.
  returned: with store=file, unless state=absent
  type: str
  sample: "2026-11-29T17:02:50Z"
previous_subnet:
  description: The subnet named by the subnet.env found on the node before the run, if any.
  returned: unless state=absent with public_ip set
  type: str
  sample: 172.20.1.0/24
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubeasz.network.plugins.module_utils.entry.subnetnode import run_flannel_subnet

ARGUMENT_SPEC = dict(
    state=dict(type='str', choices=['present', 'absent', 'query'], default='present'),
    network=dict(type='dict'),
    iface=dict(type='str'),
    iface_regex=dict(type='str'),
    public_ip=dict(type='str'),
    public_ip6=dict(type='str'),
    ip_masq=dict(type='bool', default=True),
    store=dict(type='str', choices=['file', 'etcd', 'kube'], default='file'),
    etcd_endpoints=dict(type='list', elements='str'),
    etcd_prefix=dict(type='str', default='/coreos.com/network'),
    etcd_lease_ttl=dict(type='int', default=86400),
    etcd_ca=dict(type='path'),
    etcd_cert=dict(type='path'),
    etcd_key=dict(type='path', no_log=False),
    kube_api=dict(type='str'),
    kube_token=dict(type='str', no_log=True),
    kube_ca=dict(type='path'),
    kube_cert=dict(type='path'),
    kube_key=dict(type='path', no_log=False),
    node_name=dict(type='str'),
    lease_file=dict(type='path'),
    subnet_file=dict(type='path', default='/run/flannel/subnet.env'),
    cni_conf_file=dict(type='path'),
    subnet=dict(type='str'),
    subnet6=dict(type='str'),
    facts=dict(type='dict'),
    node_files=dict(type='bool', default=True),
)
# The module's own checks; the action plugin adds ACTION_REQUIRED_IF (query needs the network
# there to filter peers, while the module's query also serves state=absent without one).
REQUIRED_IF = [('state', 'present', ['network']), ('store', 'file', ['lease_file']),
               ('store', 'etcd', ['etcd_endpoints']), ('store', 'kube', ['kube_api'])]
# TLS files named on the controller; the action plugin copies them to the node for the run.
TLS_FILES = ('etcd_ca', 'etcd_cert', 'etcd_key', 'kube_ca', 'kube_cert', 'kube_key')
ACTION_REQUIRED_IF = REQUIRED_IF + [('state', 'query', ['network'])]


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    run_flannel_subnet(module)


if __name__ == '__main__':
    main()
