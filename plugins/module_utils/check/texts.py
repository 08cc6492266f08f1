# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layers of ``ezctl net check`` in order, and the likely cause and fix of a failure of each.

Standard library only (also runs on the controller inside net_probe's report mode).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import family_named

# per pair of nodes, in the order a packet needs them
PAIR_LAYERS = ('underlay', 'mtu', 'transport', 'overlay', 'pod')
# per node (pod to outside) and per cluster
NODE_LAYERS = ('egress', 'public-ip', 'rules')
CLUSTER_LAYERS = ('capacity',)
# the layers that need flannel deployed (skipped before)
NEEDS_FLANNEL = ('overlay', 'pod', 'egress')

VXLAN_PORT = 8472

CAUSES = {
    'underlay': ("{dst}'s address {ip} does not answer ping from {src}: the nodes cannot reach each other "
                 "(routing, a firewall or security group dropping ICMP, a wrong public IP)",
                 "make the nodes' public IPs reach each other (ip route get {ip} on {src}); if the wrong "
                 "interface was chosen, set FLANNEL_IFACE"),
    'mtu': ("a {size}-byte packet with DF set from {src} does not reach {dst} although small ones do: the "
            "path MTU is below FLANNEL_MTU {mtu} + {overhead} bytes of {backend} overhead",
            "lower FLANNEL_MTU in config.yml to the path MTU - {overhead} (or raise the MTU of every link "
            "between the nodes), then run ezctl setup <cluster> 06"),
    'transport-vxlan': ("UDP port {port} (VXLAN) from {src} is not delivered to {dst} while ping passes: a "
                        "firewall between them drops it (VMware NSX drops 8472, flannel #2388; cloud security "
                        "groups; the node's INPUT chain)",
                        "allow UDP {port} between all nodes, or set FLANNEL_PORT to a port the network passes "
                        "(4789 where NSX owns 8472)"),
    'transport-onlink': ("{dst} ({ip}) is not on-link from {src} (ip route get {ip} goes via {via}): {backend} "
                         "needs the nodes on one L2 segment (kubeasz #76)",
                         "put the nodes on one L2 segment, or use FLANNEL_BACKEND: vxlan with DIRECT_ROUTING: "
                         "true (direct where on-link, VXLAN elsewhere)"),
    'overlay': ("{src} does not reach {dst}'s pod subnet {subnet} over flannel ({why})",
                "run ezctl setup <cluster> 06 again (it re-adds routes and entries; the route guard keeps "
                "them); look at ip route and ip neigh show dev flannel.<VNI> on {src}"),
    'pod': ("a pod on {src} ({ip_src}) cannot reach a pod on {dst} ({ip}) although the nodes' overlay works: "
            "forwarding is dropped on a node (FORWARD policy DROP without flannel's rules) or a pod's route",
            "run ezctl setup <cluster> 06 (it installs flannel's FLANNEL-FWD accept rules), or accept the "
            "cluster network in FORWARD on both nodes"),
    'egress': ("a pod on {src} ({ip_src}) cannot reach {ip} outside the cluster: forwarding is dropped "
               "on {src} or flannel's masquerade rules (FLANNEL-POSTRTG) are missing",
               "run ezctl setup <cluster> 06 (it installs flannel's masquerade and forward rules); look at "
               "iptables-save -t nat on {src}"),
    'egress-nomasq': ("a pod on {src} ({ip_src}) cannot reach {ip} outside the cluster: FLANNEL_IPMASQ is false, "
                      "so pod traffic leaves with the pod's address and the outside has no route back",
                      "set FLANNEL_IPMASQ: true (flannel masquerades pod traffic leaving the cluster network), "
                      "or route the pod network on the outside"),
}


def cause_fix(key, **values):
    """(cause, fix) texts of a layer's failure with the details filled in."""
    cause, fix = CAUSES[key]
    return cause.format(**values), fix.format(**values)


def overhead(backend, family):
    """The backend's bytes on top of FLANNEL_MTU (the path MTU the underlay must carry) for
    ``family`` (a Family or its name, as a report read back from JSON holds it)."""
    return family_named(family).vxlan_headroom if backend == 'vxlan' else 0
