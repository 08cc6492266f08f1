#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: vxlan_link
short_description: Program flannel's VXLAN device and its per-peer neighbour and FDB entries
version_added: 0.1.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - Creates or repairs the device C(flannel.<VNI>) exactly as flanneld's vxlan backend does
    (vxlan id VNI, C(dev) the external interface, C(local) the node IP, C(nolearning) unless
    O(learning), C(gbp) if O(gbp), ttl 0), with the lease's VTEP MAC, the lease network address
    as C(/32) and the backend MTU, and sets it up.
  - The device is deleted and recreated only when its type, VNI, underlying device, local
    address, UDP port or GBP differ; MTU, MAC, learning and addresses are fixed in place.
  - For each vxlan peer (peers that are direct with O(direct_routing) are excluded) programs
    C(ip neigh replace <peer subnet .0> lladdr <VtepMAC> dev flannel.<VNI> nud permanent) and
    C(bridge fdb replace <VtepMAC> dev flannel.<VNI> dst <peer IP> self permanent); stale
    permanent IPv4 neighbour and FDB entries on C(flannel.<VNI>) are removed, nothing else.
  - Reads kernel state with one C(ip -json) call per table and writes with one C(ip -batch -)
    and one C(bridge -batch -) process, whatever the number of peers.
  - Routes are programmed by M(kubeasz.network.direct_route).
  - Every other VXLAN device named C(flannel.<n>) is flannel's and stale (left by an old VNI or a
    backend switch) and is deleted in every state, with its neighbour and FDB entries and the
    routes through it. No other device is touched.
  - One call programs one address family (O(family)); a dual-stack node runs the module once per
    family with the same O(peers). With O(family=ipv6) the device is C(flannel-v6.<VNI>) (as
    flanneld's), C(local) is the node's IPv6 address, the address is the lease's IPv6 subnet
    network address as C(/128) (every other IPv6 address but link-local ones is removed, as
    flanneld's EnsureV6AddressOnLink; the kernel's link-local address stays), its C(accept_ra) is
    set to 0, and each vxlan peer gets C(ip -6 neigh replace <peer subnet6 network address> lladdr
    <vtep_mac6> dev flannel-v6.<VNI> nud permanent) and C(bridge fdb replace <vtep_mac6> dev
    flannel-v6.<VNI> dst <peer public_ip6> self permanent). Only C(flannel-v6.<n>) devices are the
    IPv6 call's own; the two families never remove each other's device.
options:
  family:
    description:
      - The address family this call programs. V(ipv4) works on the peers' O(peers[].subnet),
        O(peers[].public_ip) and O(peers[].vtep_mac) and the device C(flannel.<VNI>); V(ipv6) on
        O(peers[].subnet6), O(peers[].public_ip6) and O(peers[].vtep_mac6) and C(flannel-v6.<VNI>).
        A peer without the family is skipped.
      - O(local_ip), O(address), O(network) and O(mac) are of this family (with V(ipv6), the node's
        public IPv6 address, the lease's IPv6 subnet network address, C(IPv6Network), the lease's
        IPv6 VtepMAC).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  state:
    description:
      - V(present) programs C(flannel.<VNI>) and its entries and deletes every other C(flannel.<n>).
      - V(absent) deletes C(flannel.<VNI>) and every other C(flannel.<n>) (a switch to host-gw).
      - V(prune) deletes every C(flannel.<n>) but C(flannel.<VNI>), which it leaves as it is (for
        nodes where flanneld manages C(flannel.<VNI>)).
    type: str
    choices: [present, absent, prune]
    default: present
  vni:
    description: VXLAN network identifier; the device is C(flannel.<VNI>) (C(flannel-v6.<VNI>) with O(family=ipv6)).
    type: int
    default: 1
  port:
    description: UDP destination port; V(0) means the Linux kernel default 8472.
    type: int
    default: 0
  gbp:
    description: Enable VXLAN Group Based Policy.
    type: bool
    default: false
  learning:
    description: Enable source address learning (flannel's C(Learning)); off gives C(nolearning).
    type: bool
    default: false
  mtu:
    description:
      - Device MTU. Default is the external interface MTU minus 50.
      - With O(family=ipv6) the kernel caps a VXLAN device over an IPv6 underlay at the external
        interface MTU minus 70 (its outer headers), and so does the module (flanneld's device gets
        the same cap).
    type: int
  iface:
    description: External (underlay) interface, the device's C(dev). Required with O(state=present).
    type: str
  local_ip:
    description:
      - Local VTEP address (the node's public IP). Default is the first IPv4 address of O(iface).
      - With O(family=ipv6), the node's public IPv6 address; default is the first global IPv6 address
        of O(iface).
    type: str
  address:
    description:
      - The lease subnet's network address (for example V(172.20.1.0)), set on the device as C(/32).
        A CIDR is accepted and reduced to its network address. Required with O(state=present).
      - With O(family=ipv6), the IPv6 subnet's network address (for example V(fd00:20:0:1::)), set as C(/128).
    type: str
  network:
    description:
      - The cluster network (CLUSTER_CIDR). Other addresses inside it on the device are removed and
        every peer subnet must lie inside it.
      - With O(family=ipv6), the IPv6 cluster network (CLUSTER_CIDR_IPV6); every peer's IPv6 subnet
        must lie inside it.
    type: str
  mac:
    description:
      - VTEP MAC address. Default is a stable locally administered unicast MAC derived from
        O(local_ip) and O(vni) (the same value the lease advertises as C(VtepMAC), for IPv6 in
        C(BackendV6Data)).
      - The role passes the lease's C(vtep_mac) (C(vtep_mac6)) that M(kubeasz.network.flannel_subnet)
        returned, which is the MAC of a C(flannel.<VNI>) device already on the node (one flanneld
        made, say) and the derived one otherwise, so a device in place keeps its MAC as with flanneld.
    type: str
  direct_routing:
    description:
      - flannel's C(DirectRouting). A peer whose node IP the kernel routes with exactly one route
        without a gateway is direct and gets no neighbour or FDB entry. The decision is per family
        (with O(family=ipv6), C(ip -6 route get <peer public_ip6>)).
    type: bool
    default: false
extends_documentation_fragment:
  - kubeasz.network.attributes.dataplane
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.peers
requirements:
  - iproute2 with JSON output (C(ip -json), C(bridge -json)).
'''

EXAMPLES = r'''
- name: Program flannel.1 from this node's lease and the peers' leases
  kubeasz.network.vxlan_link:
    vni: 1
    iface: eth0
    address: 172.20.1.0
    network: 172.20.0.0/16
    direct_routing: false
    peers:
      - subnet: 172.20.2.0/24
        public_ip: 198.18.0.12
        backend_type: vxlan
        vni: 1
        vtep_mac: 0e:2b:11:22:33:44

- name: Use the lease returned by flannel_subnet
  kubeasz.network.vxlan_link:
    iface: "{{ subnet.iface }}"
    local_ip: "{{ subnet.public_ip }}"
    address: "{{ subnet.lease.subnet }}"
    network: "{{ CLUSTER_CIDR }}"
    mtu: "{{ subnet.mtu }}"
    peers: "{{ subnet.peers }}"

- name: Remove the device after a switch to host-gw
  kubeasz.network.vxlan_link:
    vni: 1
    state: absent

- name: flanneld manages flannel.2; remove the flannel.1 it left after a VNI change
  kubeasz.network.vxlan_link:
    vni: 2
    state: prune

- name: Dual-stack, the IPv6 half - flannel-v6.1 and its entries (the same peers, whole)
  kubeasz.network.vxlan_link:
    family: ipv6
    iface: eth0
    local_ip: fd53:18:0:1::11
    address: "fd00:20:0:1::"
    network: fd00:20::/56
    peers:
      - subnet: 172.20.2.0/24
        public_ip: 198.18.0.12
        vtep_mac: 0e:2b:11:22:33:44
        subnet6: fd00:20:0:2::/64
        public_ip6: fd53:18:0:1::12
        vtep_mac6: 1a:2b:11:22:33:66
        backend_type: vxlan
        vni: 1

- name: Remove flannel-v6.1 (a node that leaves IPv6)
  kubeasz.network.vxlan_link:
    family: ipv6
    state: absent
'''

RETURN = r'''
device:
  description: Name of the VXLAN device (C(flannel-v6.<VNI>) with O(family=ipv6)).
  returned: always
  type: str
  sample: flannel.1
vtep_mac:
  description: The device's VTEP MAC (the value to advertise in the lease); null when absent.
  returned: always
  type: str
  sample: 0e:2b:8c:51:77:10
removed:
  description: Stale C(flannel.<n>) devices deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [flannel.1]
direct_peers:
  description:
    - Peers reached by a direct route (DirectRouting); they get no neighbour or FDB entry.
    - The decision of this call's family, the peers whole (both families), for
      M(kubeasz.network.direct_route)'s O(kubeasz.network.direct_route#module:direct_peers) of the same family.
  returned: always
  type: list
  elements: dict
  sample: []
vxlan_peers:
  description: Peers reached over the VXLAN device (one neighbour and one FDB entry each).
  returned: always
  type: list
  elements: dict
  sample:
    - subnet: 172.20.2.0/24
      public_ip: 198.18.0.12
      backend_type: vxlan
      vni: 1
      vtep_mac: 0e:2b:11:22:33:44
ignored_peers:
  description: Peers skipped because their backend type is not vxlan (peers without the family are left out).
  returned: always
  type: list
  elements: dict
  sample: []
plan:
  description: The C(ip)/C(bridge) batch commands that were run (or would run in check mode).
  returned: always
  type: list
  elements: str
  sample:
    - ip neigh replace 172.20.2.0 lladdr 0e:2b:11:22:33:44 dev flannel.1 nud permanent
    - bridge fdb replace 0e:2b:11:22:33:44 dev flannel.1 dst 198.18.0.12 self permanent
    - ip -6 neigh replace fd00:20:0:2:: lladdr 1a:2b:11:22:33:66 dev flannel-v6.1 nud permanent
    - sysctl -w net/ipv6/conf/flannel-v6.1/accept_ra=0
diff:
  description: Device, address, neighbour and FDB state before and after, in C(ip) syntax.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: State before the run.
      type: str
      returned: always
    after:
      description: Desired state.
      type: str
      returned: always
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import run_module
from ansible_collections.kubeasz.network.plugins.module_utils.entry.dataplane import vxlan_link
from ansible_collections.kubeasz.network.plugins.module_utils.entry.specs import VXLAN_LINK
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError


def main():
    module = AnsibleModule(supports_check_mode=True, **VXLAN_LINK)
    run_module(module, vxlan_link, DataplaneError)


if __name__ == '__main__':
    main()
