#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: traffic_rules
short_description: flanneld's masquerade and forward rules (pod egress), in iptables or nftables
version_added: 0.1.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - Installs the rules flanneld installs with C(--ip-masq), so that pods reach addresses outside
    the cluster network with the node's IP as their source, and cross-node pod traffic is
    forwarded whatever the FORWARD policy.
  - O(mode=iptables) (flanneld's default) - table C(nat), chain C(FLANNEL-POSTRTG) jumped to from
    C(POSTROUTING) (comment C(flanneld masq)), in flanneld's order - RETURN for kube-proxy's mark
    C(0x4000/0x4000), RETURN for O(subnet) to O(network), O(network) to O(subnet) and not
    O(network) to O(subnet); MASQUERADE for O(network) to anything but C(224.0.0.0/4) and for
    not O(network) to O(network). Table C(filter), chain C(FLANNEL-FWD) jumped to from C(FORWARD)
    (comment C(flanneld forward)) - ACCEPT C(-s) O(network) and C(-d) O(network).
  - O(mode=nftables) (net-conf.json C(EnableNFTables)) - table C(ip flannel-ipv4) with the chains
    C(postrtg) (type nat, hook postrouting, priority srcnat) and C(forward) (type filter, hook
    forward, priority filter) holding flanneld's nft rules (the same, except that flanneld's fourth
    rule there reads C(ip saddr != <subnet> ip daddr <network> return)), and no iptables chains of ours.
    O(mode=iptables) in turn removes that table.
  - O(family=ipv6) does the same for IPv6, as flanneld does for C(EnableIPv6) - C(ip6tables) chains
    C(FLANNEL-POSTRTG) and C(FLANNEL-FWD) with the same rules (flanneld's C(masqIP6Rules) and
    C(forwardRules)) but the multicast range C(ff00::/8), or the nft table C(ip6 flannel-ipv6) with the
    same chains and C(ip6 saddr) / C(ip6 daddr) matches. O(network) and O(subnet) are then IPv6
    networks (flannel C(IPv6Network) and the lease's IPv6 subnet). Each run reads and changes one
    family only; dual-stack nodes need one task per family.
  - O(ip_masq=false) removes the masquerade rules; the forward rules stay, as in flanneld.
  - MASQUERADE uses C(--random-fully) (nft C(fully-random)) where supported, decided as flanneld
    does - iptables (ip6tables for O(family=ipv6)) 1.6.2 or later, or C(nft --check) accepting it;
    O(random_fully) overrides.
  - Reads the node once (C(iptables-save) and C(nft -j list table ip flannel-ipv4); C(ip6tables-save) and
    C(nft -j list table ip6 flannel-ipv6) for O(family=ipv6)) and applies the difference in one
    C(iptables-restore --noflush) (C(ip6tables-restore)) and/or one C(nft -f -) transaction. A chain
    of ours whose rules differ (a new lease subnet, rules flushed or edited) is emptied and refilled.
    Rules and chains that are not ours, and those of the other family, are never touched.
options:
  state:
    description:
      - V(present) installs the rules; V(absent) removes every chain, jump and table of ours.
      - V(prune) removes only what is ours in the other backend than O(mode) (with O(mode=nftables) the
        iptables chains and jumps, with O(mode=iptables) the nft table) and leaves the rules of O(mode)
        as they are - for nodes where flanneld owns the rules of O(mode) but, after C(EnableNFTables)
        changed, never removes those of the other backend.
    type: str
    choices: [present, absent, prune]
    default: present
  mode:
    description: V(iptables), or V(nftables) when net-conf.json has C(EnableNFTables) (FLANNEL_ENABLE_NFTABLES).
    type: str
    choices: [iptables, nftables]
    default: iptables
  family:
    description:
      - The address family of the rules - V(ipv4) (iptables, nft table C(ip flannel-ipv4)) or V(ipv6)
        (ip6tables, nft table C(ip6 flannel-ipv6)).
      - O(network) and O(subnet) must be networks of this family; O(state=absent) removes this family's
        rules only.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  network:
    description:
      - The cluster network (CLUSTER_CIDR, flannel C(Network)); with O(family=ipv6) the IPv6 one
        (CLUSTER_CIDR_IPV6, flannel C(IPv6Network)). Required with O(state=present).
    type: str
  subnet:
    description:
      - This node's lease subnet (of O(family)). Required when O(state=present) and O(ip_masq=true).
    type: str
  ip_masq:
    description: Masquerade pod traffic leaving O(network) (C(FLANNEL_IPMASQ), flanneld C(--ip-masq)).
    type: bool
    default: true
  random_fully:
    description: Use C(--random-fully); unset means detect it on the node.
    type: bool
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
attributes:
  check_mode:
    support: full
    details: RV(plan) is the transaction input that would be applied.
  diff_mode:
    support: full
    details: The diff shows our rules as C(iptables-save) and C(nft list table) print them.
  platform:
    support: full
    platforms: linux
notes:
  - The node needs the Debian package C(iptables) (mode iptables) or C(nftables) (mode nftables);
    without it the task fails before anything changes, naming the package.
requirements:
  - iptables (iptables-save, iptables-restore; ip6tables-save, ip6tables-restore for O(family=ipv6))
    or nftables (nft with JSON output).
'''

EXAMPLES = r'''
- name: flanneld's masquerade and forward rules for this node's lease
  kubeasz.network.traffic_rules:
    network: 172.20.0.0/16
    subnet: 172.20.1.0/24

- name: The same in nftables (EnableNFTables), without masquerade
  kubeasz.network.traffic_rules:
    mode: nftables
    network: 172.20.0.0/16
    ip_masq: false

- name: The IPv6 rules of a dual-stack node (ip6tables)
  kubeasz.network.traffic_rules:
    family: ipv6
    network: fd00:20::/56
    subnet: "fd00:20:0:1::/64"

- name: Every family of the cluster (flannel_config's cluster.families), one task each
  kubeasz.network.traffic_rules:
    family: "{{ item }}"
    mode: nftables
    network: "{{ (item == 'ipv6') | ternary('fd00:20::/56', '172.20.0.0/16') }}"
    subnet: "{{ (item == 'ipv6') | ternary('fd00:20:0:1::/64', '172.20.1.0/24') }}"
  loop: [ipv4, ipv6]

- name: Remove every IPv4 rule of ours
  kubeasz.network.traffic_rules:
    state: absent

- name: Remove every IPv6 rule of ours
  kubeasz.network.traffic_rules:
    state: absent
    family: ipv6

- name: flanneld switched to nftables - remove the iptables chains it left, keep its nft table
  kubeasz.network.traffic_rules:
    state: prune
    mode: nftables
'''

RETURN = r'''
mode:
  description: The backend the rules are in.
  returned: always
  type: str
  sample: iptables
family:
  description: The address family of the rules.
  returned: always
  type: str
  sample: ipv4
random_fully:
  description: Whether MASQUERADE uses C(--random-fully) (null with O(state=absent)).
  returned: always
  type: bool
  sample: true
spec:
  description: What the rules were made from (the route guard keeps it to put them back).
  returned: always
  type: dict
  sample: {"mode": "iptables", "network": "172.20.0.0/16", "subnet": "172.20.1.0/24",
           "ip_masq": true, "random_fully": true, "family": "ipv4"}
plan:
  description: Each transaction's command line (as a C(#) comment) followed by its input lines.
  returned: always
  type: list
  elements: str
  sample:
    - "# iptables-restore -w 5 --noflush"
    - "*nat"
    - ":FLANNEL-POSTRTG - [0:0]"
diff:
  description: Our rules before and after, as C(iptables-save) / C(nft list table) print them.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Our chains, jumps and table (of O(family)) before the run.
      type: str
      returned: always
    after:
      description: Our chains, jumps and table (of O(family)) after the run.
      type: str
      returned: always
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import run_module
from ansible_collections.kubeasz.network.plugins.module_utils.entry.specs import TRAFFIC_RULES
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.plan.trafficrules import traffic_rules


def main():
    module = AnsibleModule(supports_check_mode=True, **TRAFFIC_RULES)
    run_module(module, traffic_rules, DataplaneError)


if __name__ == '__main__':
    main()
