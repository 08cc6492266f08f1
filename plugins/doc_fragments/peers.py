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
    type: list
    elements: dict
    default: []
    suboptions:
      subnet:
        description: The peer's lease subnet, for example V(172.20.2.0/24).
        type: str
        required: true
      public_ip:
        description: The peer's node IP (its VTEP address for vxlan).
        type: str
        required: true
      backend_type:
        description: The peer lease's backend type.
        type: str
        default: vxlan
      vni:
        description: The peer's VNI (informational).
        type: int
      vtep_mac:
        description: The peer's VTEP MAC; required for vxlan peers.
        type: str
'''
