#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: flannel_config
short_description: Validate a kubeasz flannel config and render net-conf.json
version_added: 0.1.0
description:
  - Checks the kubeasz cluster keys (from C(clusters/<name>/hosts) and C(config.yml)) that
    describe flannel pod networking, with flannel's own net-conf.json rules.
  - Reports B(every) problem at once; each problem names the key and says what to write instead.
  - On success returns the canonical C(net-conf.json) and C(cni-conf.json) texts for the
    C(kube-flannel-cfg) ConfigMap, their checksum for the DaemonSet pod template, and the
    settings that are not part of net-conf.json.
  - This is an action plugin. It runs on the controller only and never connects to the host,
    so it is safe to run before anything else touches a node.
  - C(net-conf.json) always holds C(EnableNFTables), and C(Network) with IPv4; C(SubnetLen), C(SubnetMin)
    and C(SubnetMax) only when they differ from what flannel would derive itself; C(EnableIPv4) only
    when false (IPv6-only); with IPv6 C(EnableIPv6) and C(IPv6Network), and C(IPv6SubnetLen),
    C(IPv6SubnetMin) and C(IPv6SubnetMax) under the same rule as their IPv4 twins; C(Backend.Type)
    always, for vxlan also C(VNI) and C(DirectRouting), C(Port) and C(MTU) when not 0,
    C(GBP) and C(Learning) when true.
author:
  - kubeasz.network developers (@kubeasz)
options:
  config:
    description:
      - The cluster keys. Unknown keys are ignored; missing optional keys take the defaults below.
      - C(CLUSTER_NETWORK) must be C(flannel).
      - C(CLUSTER_CIDR) (required unless C(FLANNEL_ENABLE_IPV4) is false) IPv4 pod network in CIDR
        form, no host bits, /28 or larger.
      - C(CLUSTER_CIDR_IPV6) optional IPv6 pod network (flannel C(IPv6Network)), no host bits, /124 or
        larger; set, the cluster is dual-stack (or IPv6-only with C(FLANNEL_ENABLE_IPV4) false).
      - C(NODE_CIDR_LEN_IPV6) prefix length of each node's IPv6 subnet (flannel C(IPv6SubnetLen)), between
        the C(CLUSTER_CIDR_IPV6) prefix + 2 and 126; default as flannel (64, or prefix + 2 for networks
        smaller than /62). C(FLANNEL_SUBNET_MIN_IPV6), C(FLANNEL_SUBNET_MAX_IPV6) as their IPv4 twins.
      - C(FLANNEL_ENABLE_IPV4) boolean, default true; false is IPv6-only (needs C(CLUSTER_CIDR_IPV6),
        refused with the C(etcd) store, whose keys are IPv4 subnets).
      - C(SERVICE_CIDR) optional, one CIDR per address family (comma-separated), each of a family the pods
        have, not overlapping the pod network of its family.
      - C(NODE_CIDR_LEN) prefix length of each node's pod subnet (flannel C(SubnetLen)),
        between the C(CLUSTER_CIDR) prefix + 2 and 30; default as flannel (24, or prefix + 2 for
        networks smaller than /22).
      - C(FLANNEL_SUBNET_MIN), C(FLANNEL_SUBNET_MAX) optional first and last node subnet
        (an address on a C(NODE_CIDR_LEN) boundary inside C(CLUSTER_CIDR)).
      - C(FLANNEL_BACKEND) C(vxlan) (default) or C(host-gw).
      - C(DIRECT_ROUTING) boolean (a real YAML boolean), vxlan only.
      - C(FLANNEL_VNI) 1..16777215 (default 1); C(FLANNEL_PORT) 0..65535 (0 = kernel default 8472);
        C(FLANNEL_MTU) 0 (interface MTU) or 118..9216; C(FLANNEL_GBP), C(FLANNEL_LEARNING) booleans.
      - C(FLANNEL_IFACE) a Linux interface name (1..15 characters, no C(/), C(:) or whitespace) or
        C(FLANNEL_IFACE_REGEX) a regular expression; not both.
      - C(FLANNEL_DATAPLANE) C(flanneld) (default) or C(ansible).
      - C(FLANNEL_NAMESPACE) C(kube-system) (default, as kubeasz) or C(kube-flannel) (upstream flannel).
      - C(FLANNEL_SUBNET_STORE) C(file), C(etcd) or C(kube); empty means C(kube) with the flanneld
        dataplane and C(file) with the ansible dataplane; flanneld accepts only C(kube).
      - C(PROXY_MODE) C(iptables), C(ipvs) (default) or C(nftables).
      - C(FLANNEL_ENABLE_NFTABLES) (C(EnableNFTables)) C(false) (default, as kubeasz's own template), C(true), or
        the string C(PROXY_MODE) (true when C(PROXY_MODE) is C(nftables)).
      - C(FLANNEL_IPMASQ), C(FLANNEL_ROUTE_GUARD) booleans, default true.
    type: dict
    required: true
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.attributes.action
  - kubeasz.network.attributes.controller
notes:
  - Use it with C(run_once) and C(delegate_to=localhost) as the first task of a play with
    C(gather_facts=false), so that a bad config fails before any host is touched.
seealso:
  - name: flannel net-conf.json
    description: flannel's configuration reference.
    link: https://github.com/flannel-io/flannel/blob/master/Documentation/configuration.md
'''

EXAMPLES = r'''
- name: Validate the flannel config
  kubeasz.network.flannel_config:
    config:
      CLUSTER_NETWORK: "{{ CLUSTER_NETWORK }}"
      CLUSTER_CIDR: "{{ CLUSTER_CIDR }}"
      NODE_CIDR_LEN: "{{ NODE_CIDR_LEN }}"
      FLANNEL_BACKEND: "{{ FLANNEL_BACKEND }}"
      DIRECT_ROUTING: "{{ DIRECT_ROUTING }}"
  run_once: true
  delegate_to: localhost
  register: flannel_config

- name: Show net-conf.json
  ansible.builtin.debug:
    msg: "{{ flannel_config.net_conf_json }}"
'''

RETURN = r'''
net_conf:
  description: The canonical net-conf.json as a dictionary.
  returned: success
  type: dict
  sample: {"Network": "172.20.0.0/16", "EnableNFTables": false,
           "Backend": {"Type": "vxlan", "VNI": 1, "DirectRouting": false}}
net_conf_json:
  description: net-conf.json text (2-space indented JSON, trailing newline) for the ConfigMap.
  returned: success
  type: str
cni_conf_json:
  description: cni-conf.json text (flannel's 10-flannel.conflist) for the ConfigMap.
  returned: success
  type: str
checksum:
  description: sha256 of net_conf_json and cni_conf_json, for the DaemonSet pod template annotation.
  returned: success
  type: str
  sample: 5f0c6e1c0f7b4d0e9a2d3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80
cluster:
  description: The validated settings, including those net-conf.json does not hold.
  returned: success
  type: dict
  contains:
    dataplane:
      description: C(flanneld) or C(ansible).
      type: str
      returned: success
    namespace:
      description: Namespace of the flannel objects.
      type: str
      returned: success
    store:
      description: Where leases live (C(kube), C(file) or C(etcd)).
      type: str
      returned: success
    iface:
      description: Interface flannel uses, empty for the default route interface.
      type: str
      returned: success
    iface_regex:
      description: Regular expression selecting the interface, or empty.
      type: str
      returned: success
    ip_masq:
      description: Whether flannel masquerades traffic leaving the cluster network.
      type: bool
      returned: success
    route_guard:
      description: Whether the route guard re-applies routes after a link comes back.
      type: bool
      returned: success
    proxy_mode:
      description: kube-proxy mode.
      type: str
      returned: success
    service_cidr:
      description: Service network (IPv4 first when there are two, comma-separated), empty when not given.
      type: str
      returned: success
    network:
      description: IPv4 pod network; null when IPv6-only.
      type: str
      returned: success
    subnet_len:
      description: Prefix length of IPv4 node subnets; null when IPv6-only.
      type: int
      returned: success
    subnet_min:
      description: First IPv4 node subnet a lease may take; null when IPv6-only.
      type: str
      returned: success
    subnet_max:
      description: Last IPv4 node subnet a lease may take; null when IPv6-only.
      type: str
      returned: success
    ipv6_network:
      description: IPv6 pod network; null without IPv6.
      type: str
      returned: success
      sample: fd00:20::/56
    ipv6_subnet_len:
      description: Prefix length of IPv6 node subnets; null without IPv6.
      type: int
      returned: success
    ipv6_subnet_min:
      description: First IPv6 node subnet a lease may take; null without IPv6.
      type: str
      returned: success
    ipv6_subnet_max:
      description: Last IPv6 node subnet a lease may take; null without IPv6.
      type: str
      returned: success
    families:
      description: The address families of the pod network, IPv4 first.
      type: list
      elements: str
      returned: success
      sample: [ipv4, ipv6]
    enable_nftables:
      description: Whether flannel uses nftables.
      type: bool
      returned: success
    backend:
      description: Backend settings (type, vni, port, mtu, gbp, learning, direct_routing).
      type: dict
      returned: success
family:
  description:
    - Per address family (C(ipv4) and C(ipv6), on or off), what the role's tasks pass to the
      modules; a family that is off has every module's state C(absent).
  returned: success
  type: dict
  contains:
    ipv4:
      description: The IPv4 settings (the same keys for C(ipv6)).
      type: dict
      returned: success
      contains:
        family:
          description: C(ipv4) or C(ipv6).
          type: str
          returned: success
        "on":
          description: Whether the pod network has this family.
          type: bool
          returned: success
        network:
          description: The family's pod network; null when off.
          type: str
          returned: success
        route_network:
          description: C(direct_route)'s network, C(0.0.0.0/0) or C(::/0) when off (every route of flannel's protocol or device).
          type: str
          returned: success
        state:
          description: C(present) when on, else C(absent) (C(direct_route), C(traffic_rules)).
          type: str
          returned: success
        link_state:
          description: C(vxlan_link)'s state in the ansible dataplane, C(present) only for vxlan with the family on.
          type: str
          returned: success
        device:
          description: The family's VXLAN device, C(flannel.<VNI>) or C(flannel-v6.<VNI>).
          type: str
          returned: success
        lease_keys:
          description: The keys of the family's part of a lease (C(subnet), C(public_ip), C(vtep_mac) and their C(6) twins).
          type: dict
          returned: success
  sample: {"ipv4": {"family": "ipv4", "on": true, "network": "172.20.0.0/16", "route_network": "172.20.0.0/16",
                    "state": "present", "link_state": "present", "device": "flannel.1",
                    "lease_keys": {"subnet": "subnet", "public_ip": "public_ip", "vtep_mac": "vtep_mac"}}}
rules_mode:
  description: C(traffic_rules)' mode, C(nftables) with EnableNFTables, else C(iptables).
  returned: success
  type: str
host_gw:
  description: Whether the backend is host-gw (the known peers' reachability is checked before any change).
  returned: success
  type: bool
flanneld:
  description: What the flanneld dataplane checks on each node.
  returned: success
  type: dict
  contains:
    link_state:
      description: C(vxlan_link)'s state after flanneld ran, C(prune) for vxlan (flannel.<VNI> is flanneld's), else C(absent).
      type: str
      returned: success
    device:
      description: The VXLAN device whose MTU subnet.env names (IPv6-only C(flannel-v6.<VNI>)); null for host-gw.
      type: str
      returned: success
    mtu:
      description: The FLANNEL_MTU every node reports when the config fixes it (vxlan Backend.MTU less 50), else null.
      type: int
      returned: success
    subnet_env_regex:
      description: A multi-line regular expression the subnet.env flanneld writes with this config matches.
      type: str
      returned: success
    subnet_env_summary:
      description: The same in words, for the message of a node whose subnet.env does not match.
      type: str
      returned: success
problems:
  description: Every problem found, each naming its key.
  returned: failure
  type: list
  elements: str
  sample: ["NODE_CIDR_LEN: 31 is too long for flannel (at most 30); write a value between 18 and 30 for CLUSTER_CIDR 172.20.0.0/16"]
'''

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={'config': {'type': 'dict', 'required': True}},
                           supports_check_mode=True)
    module.fail_json(msg='kubeasz.network.flannel_config is an action plugin that runs on the '
                         'controller; it cannot run as a module on a host')


if __name__ == '__main__':
    main()
