#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: direct_route
short_description: Program flannel's routes to the other nodes' pod subnets
version_added: 0.1.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - Programs, in the main table, the routes flanneld would program for the peers' subnets, each
    with C(proto 159).
  - O(backend=vxlan) gives C(<peer subnet> via <peer subnet .0> dev flannel.<VNI> onlink) per vxlan
    peer and, with O(direct_routing), C(<peer subnet> via <peer IP>) for peers on the same L2
    segment (the kernel's route lookup for the peer IP returns exactly one route without a gateway).
  - O(backend=host-gw) gives C(<peer subnet> via <peer IP> dev <iface>) for every peer. A peer that
    is not on-link fails the task, naming the peer and the reason, and nothing is changed.
  - Stale flannel-owned routes are removed. A route is owned when its protocol is 159, in whatever
    network it lies (after a change of O(network) the old network's routes go too), or when its
    destination lies inside O(network) and its device is C(flannel.*); O(subnet) is never owned.
    No other route is ever touched.
  - Reads with one C(ip -json route) call (plus one C(ip -json -batch) of route lookups when needed)
    and writes with one C(ip -batch -) process, whatever the number of peers.
  - One call programs one address family (O(family)); a dual-stack node runs the module once per
    family with the same O(peers). With O(family=ipv6) the routes are IPv6 ones (C(ip -6)),
    C(<peer subnet6> via <peer subnet6 network address> dev flannel-v6.<VNI> onlink) per vxlan peer,
    C(<peer subnet6> via <peer public_ip6>) (DirectRouting) and C(<peer subnet6> via <peer public_ip6>
    dev <iface>) (host-gw); owned are those of protocol 159 and those inside O(network) with device
    C(flannel-v6.*), and never one inside O(subnet) (the kernel's route of the device's own address).
options:
  family:
    description:
      - The address family this call programs. V(ipv4) works on the peers' O(peers[].subnet) and
        O(peers[].public_ip); V(ipv6) on O(peers[].subnet6) and O(peers[].public_ip6), and the IPv6
        routing table. A peer without the family is skipped.
      - O(network) and O(subnet) are of this family (with V(ipv6), C(IPv6Network) and the lease's IPv6 subnet).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  state:
    description: V(present) programs the routes; V(absent) removes every owned route.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: flannel backend type.
    type: str
    choices: [vxlan, host-gw]
    default: vxlan
  direct_routing:
    description:
      - flannel's C(DirectRouting) for the vxlan backend, decided per family (C(ip -6 route get) for V(ipv6)).
    type: bool
    default: false
  vni:
    description: VXLAN network identifier; vxlan routes use C(flannel.<VNI>) (C(flannel-v6.<VNI>) with O(family=ipv6)).
    type: int
    default: 1
  network:
    description: The cluster network (CLUSTER_CIDR); defines which routes are owned.
    type: str
    required: true
  subnet:
    description: This node's lease subnet (never treated as owned). Required with O(state=present).
    type: str
  iface:
    description:
      - External interface for host-gw routes. Default is the interface of the default route.
    type: str
  direct_peers:
    description:
      - The peers M(kubeasz.network.vxlan_link) decided are direct (its RV(kubeasz.network.vxlan_link#module:direct_peers)),
        with O(backend=vxlan) and O(direct_routing). The routes then follow the device's entries
        exactly and no route lookup runs; a peer of O(peers) is direct when its C(public_ip) is
        in this list.
      - It is the decision of one family; with O(family=ipv6) pass the direct_peers of the V(ipv6)
        call of M(kubeasz.network.vxlan_link) (peers are matched by C(public_ip6)).
      - Unset, the module decides with the same function and inputs as M(kubeasz.network.vxlan_link)
        (one C(ip route get) per peer node IP).
    type: list
    elements: dict
    suboptions:
      subnet:
        description: The peer's IPv4 lease subnet.
        type: str
      public_ip:
        description: The peer's IPv4 node IP.
        type: str
      backend_type:
        description: The peer's backend type.
        type: str
        default: vxlan
      vni:
        description: The peer's VNI.
        type: int
      vtep_mac:
        description: The peer's IPv4 VTEP MAC.
        type: str
      subnet6:
        description: The peer's IPv6 lease subnet.
        type: str
      public_ip6:
        description: The peer's IPv6 node IP.
        type: str
      vtep_mac6:
        description: The peer's IPv6 VTEP MAC.
        type: str
extends_documentation_fragment:
  - kubeasz.network.attributes.dataplane
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.peers
notes:
  - With O(backend=vxlan) and vxlan peers, C(flannel.<VNI>) (C(flannel-v6.<VNI>)) must exist (M(kubeasz.network.vxlan_link));
    in check mode a missing device is only a warning, so that a check run of both modules works.
requirements:
  - iproute2 with JSON output (C(ip -json)).
'''

EXAMPLES = r'''
- name: vxlan routes (DirectRouting for peers on this L2 segment)
  kubeasz.network.direct_route:
    backend: vxlan
    direct_routing: true
    network: 172.20.0.0/16
    subnet: 172.20.1.0/24
    peers: "{{ subnet.peers }}"

- name: host-gw routes
  kubeasz.network.direct_route:
    backend: host-gw
    iface: eth0
    network: 172.20.0.0/16
    subnet: 172.20.1.0/24
    peers:
      - subnet: 172.20.2.0/24
        public_ip: 198.18.0.12
        backend_type: host-gw

- name: Remove every flannel-owned route
  kubeasz.network.direct_route:
    state: absent
    network: 172.20.0.0/16
    subnet: 172.20.1.0/24

- name: Dual-stack, the IPv6 half - routes over flannel-v6.1, with vxlan_link's IPv6 decision
  kubeasz.network.direct_route:
    family: ipv6
    direct_routing: true
    network: fd00:20::/56
    subnet: fd00:20:0:1::/64
    peers: "{{ subnet.peers }}"
    direct_peers: "{{ link6.direct_peers }}"

- name: Remove every flannel-owned IPv6 route
  kubeasz.network.direct_route:
    family: ipv6
    state: absent
    network: fd00:20::/56
    subnet: fd00:20:0:1::/64
'''

RETURN = r'''
routes:
  description:
    - The desired routes, as data (the route guard keeps them as they are; C(plan) and the diff
      show them in C(ip route) syntax). Each carries flannel's route protocol (159).
  returned: always
  type: list
  elements: dict
  contains:
    dst:
      description: The peer's subnet.
      type: str
      returned: always
    gateway:
      description: The next hop (the peer's node IP, or its subnet address through the VXLAN device).
      type: str
      returned: always
    dev:
      description: The device (C(flannel.<VNI>), C(flannel-v6.<VNI>), the host-gw interface), null for a direct route.
      type: str
      returned: always
    onlink:
      description: Whether the gateway is taken as on-link (the VXLAN device's routes).
      type: bool
      returned: always
  sample:
    - {dst: 172.20.2.0/24, gateway: 172.20.2.0, dev: flannel.1, onlink: true}
    - {dst: 172.20.3.0/24, gateway: 198.18.0.13, dev: null, onlink: false}
direct_peers:
  description: Peers routed directly through their node IP (host-gw, or DirectRouting), whole.
  returned: always
  type: list
  elements: dict
  sample: []
vxlan_peers:
  description: Peers routed over C(flannel.<VNI>).
  returned: always
  type: list
  elements: dict
  sample: []
ignored_peers:
  description: Peers skipped because their backend type differs from O(backend).
  returned: always
  type: list
  elements: dict
  sample: []
plan:
  description: The C(ip) batch commands that were run (or would run in check mode).
  returned: always
  type: list
  elements: str
  sample:
    - ip route replace 172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink proto 159
diff:
  description: Owned routes before and desired routes after, in C(ip route) syntax.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Owned routes before the run.
      type: str
      returned: always
    after:
      description: Desired routes.
      type: str
      returned: always
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import run_module
from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import direct_route
from ansible_collections.kubeasz.network.plugins.module_utils.entry.specs import DIRECT_ROUTE
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError


def main():
    module = AnsibleModule(supports_check_mode=True, **DIRECT_ROUTE)
    run_module(module, direct_route, DataplaneError)


if __name__ == '__main__':
    main()
