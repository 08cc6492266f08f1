# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The O(peers) option of the dataplane modules (vxlan_link, direct_route)."""

    DOCUMENTATION = r'''
options:
  peers:
    description:
      - The other nodes' leases, as returned by M(kubeasz.network.flannel_subnet) in its C(peers).
      - Peers of the other backend type (V(vxlan) or V(host-gw)) are ignored (as flanneld does) and
        returned in RV(ignored_peers). Every peer is validated before anything changes.
      - Peers are passed whole (both families); a call works on each peer's O(family) part
        (O(peers[].subnet), O(peers[].public_ip), O(peers[].vtep_mac) for V(ipv4);
        O(peers[].subnet6), O(peers[].public_ip6), O(peers[].vtep_mac6) for V(ipv6)) and skips a peer
        without that family. Every field of every peer is validated all the same.
    type: list
    elements: dict
    default: []
    suboptions:
      subnet:
        description:
          - The peer's IPv4 lease subnet, for example V(172.20.2.0/24). A peer has O(peers[].subnet),
            O(peers[].subnet6) or both.
        type: str
      public_ip:
        description: The peer's IPv4 node IP (its VTEP address for vxlan); required with O(peers[].subnet).
        type: str
      backend_type:
        description: The peer lease's backend type.
        type: str
        default: vxlan
      vni:
        description: The peer's VNI (informational).
        type: int
      vtep_mac:
        description: The peer's IPv4 VTEP MAC; required for vxlan peers with O(peers[].subnet).
        type: str
      subnet6:
        description: The peer's IPv6 lease subnet, for example V(fd00:20:0:2::/64).
        type: str
      public_ip6:
        description: The peer's IPv6 node IP (its IPv6 VTEP address); required with O(peers[].subnet6).
        type: str
      vtep_mac6:
        description: The VTEP MAC of the peer's C(flannel-v6.<VNI>); required for vxlan peers with O(peers[].subnet6).
        type: str
'''
