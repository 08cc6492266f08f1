#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_check
short_description: Look at a node before flannel's step 06 changes it, and hold the route guard
version_added: 0.1.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - Reports what the flannel role's later tasks need to know, so that they run only when there is
    something to change - whether kubeasz's default CNI config is there, the SHA-1 of the route
    guard, its unit and its state file, whether exactly one guard runs, which of its files are
    there, and the address families with flannel state to keep or remove.
  - With O(plan), also says whether the node already is what step 06 would make of it (RV(in_plan)),
    by running the checks of M(kubeasz.network.flannel_subnet), M(kubeasz.network.vxlan_link),
    M(kubeasz.network.direct_route) and M(kubeasz.network.traffic_rules) in check mode in this one call,
    with the options the role would give them, and comparing the route guard with what it should be.
    The role skips the module tasks on a node in plan when no node of the play changes its lease
    (RV(store_stable)) - step 06's fast path.
  - With C(plan.converge), a node whose dataplane alone differs - the VXLAN device,
    its entries, the routes, the rules, the route guard's state file; not the lease, subnet.env, the
    CNI config or the guard's own files - is brought to plan in this call, by the same entry points
    the modules run, the route guard held meanwhile (RV(converged); C(changed) and C(--diff) show it;
    in check mode what it would change, as the real run will then do it).
  - With O(hold), writes the route guard's hold for the role's later tasks (not in check mode, not
    when the node is in plan) - the guard waits while the role changes the routes.
  - Changes nothing else (the hold is a transient marker of the run, not a change).
options:
  plan:
    description:
      - What the role's later tasks would give the modules (internal to the role) -
        C(network) (net-conf.json), C(iface), C(iface_regex), C(ip_masq), C(cni_conf_file), C(store),
        C(lease_file), C(backend) (flannel_config's), C(rules_mode), C(families) (flannel_config's
        per-family values), C(guard) (C(wanted), C(runner), C(guard_sha1), C(unit_sha1)), C(probe)
        (C(node), C(outside), C(outside6) - a node that is not in plan also reads the preflight's facts)
        and C(converge) (bring a node whose dataplane alone differs to plan).
      - The action plugin adds the lease file's text (C(store=file); it is the controller's). Other
        stores always take the full path.
    type: dict
  apply:
    description:
      - The full path's call after the node's lease is taken (internal to the role) - C(lease) (the node's
        lease as M(kubeasz.network.flannel_subnet) returned it), C(peers) (the other leases of the store),
        C(guard_text) and C(unit_text) (the route guard and its systemd unit), C(python) and C(interval)
        (how the guard process runs), C(lease_renewal) (the etcd lease the guard renews).
      - With O(plan), brings the node to plan in this call, by the entry points the modules run - kubeasz's
        default CNI config removed, subnet.env and the CNI config written, per family the VXLAN device with
        its entries, the routes and the rules, the route guard's files written and the guard started, or
        restarted when its script or unit changed (RV(applied)), the route guard held meanwhile (O(hold)).
        The guard's removal is left to the role.
      - The role's add-node (C(flannel_add_node)) makes this call for the joining node in the round in which
        every other node looks at itself and learns the new lease.
      - With O(join), C(lease) and C(peers) are not given - the lease is the one the look plans.
    type: dict
  join:
    description:
      - add-node's joining node in one call, with O(plan) on the file store (internal to the role) - C(nodes)
        (the inventory's node count, for the preflight's subnet capacity).
      - When the node is not in plan, its lease is the one its look plans from the lease file (the lease its
        lease task would take), the preflight's checks run on the node's facts (C(plan.probe); duplicate
        public IPs or too few subnets fail the call before anything changes), and the node is brought to plan
        with that lease as with O(apply) (RV(joined)). The action plugin then writes the lease to the file
        (the run's copy in check mode) and, when another node took it meanwhile, calls again with O(apply)
        and the lease it wrote.
    type: dict
  joined:
    description:
      - The joining node's result of its O(join) call in this run (internal to the role) - returned by the action
        plugin as this task's result, unchanged, with no call to the node.
    type: dict
  hold:
    description: The route guard's hold file to write; unset, nothing is held.
    type: path
  families:
    description:
      - The address families of the pod network. The result's RV(families) holds these, C(ipv4)
        always (a family that is off is removed) and C(ipv6) when flannel's IPv6 state is on the node
        (a C(flannel-v6.<n>) device, an IPv6 route of flannel's protocol 159, its ip6 rules).
    type: list
    elements: str
    choices: [ipv4, ipv6]
    default: [ipv4]
  default_cni_conf:
    description: kubeasz's default CNI config.
    type: path
    required: true
  runner:
    description: How the route guard runs - a systemd unit, or a process inside the node (the lab).
    type: str
    choices: [systemd, process]
    default: systemd
  guard_dir:
    description: The route guard's directory (holding the file C(flannel-route-guard)).
    type: path
    required: true
  guard_unit:
    description: The route guard's systemd unit file.
    type: path
    required: true
  guard_state:
    description: The route guard's state file.
    type: path
    required: true
  guard_pid_file:
    description: The route guard process's pid file.
    type: path
    required: true
  guard_log_file:
    description: The route guard process's log file.
    type: path
    required: true
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.attributes.action
attributes:
  check_mode:
    support: full
    details: Looks only, and shows what C(plan.converge) or O(apply) would change; the hold is not written.
  action:
    support: full
    details: The action plugin reads the lease file on the controller and notes the lease's renewal when the node is in plan;
      with O(join) it writes the joining node's lease.
  diff_mode:
    support: full
    details: What C(plan.converge) or O(apply) changed, as the modules show it.
  platform:
    support: full
    platforms: posix
notes:
  - Reads the node with C(ip -json link), C(ip -6 -json route), C(nft list table ip6 flannel-ipv6),
    C(ip6tables -S FLANNEL-POSTRTG) (the last three only when IPv6 is off), C(systemctl is-active)
    and C(is-enabled) (systemd), C(/proc) (process).
'''

EXAMPLES = r'''
- name: Look at the node and bring its dataplane to plan
  kubeasz.network.node_check:
    hold: /run/flannel/route-guard.hold
    families: [ipv4]
    default_cni_conf: /etc/cni/net.d/10-default.conf
    guard_dir: /run/flannel/route-guard
    guard_unit: /etc/systemd/system/flannel-route-guard.service
    guard_state: /run/flannel/routes.json
    guard_pid_file: /run/flannel/route-guard.pid
    guard_log_file: /run/flannel/route-guard.log
  register: flannel_node
'''

RETURN = r'''
families:
  description: The address families whose flannel state the run programs or removes, IPv4 first.
  returned: always
  type: list
  elements: str
  sample: [ipv4, ipv6]
default_cni_conf:
  description: Whether kubeasz's default CNI config is there.
  returned: always
  type: bool
old_layout:
  description: Whether the route guard's old layout (a script beside a copy of module_utils) is there.
  returned: always
  type: bool
guard:
  description: The SHA-1 of the route guard, empty when there is none.
  returned: always
  type: str
unit:
  description: The SHA-1 of the route guard's unit file, empty when there is none.
  returned: always
  type: str
state:
  description: The SHA-1 of the route guard's state file, empty when there is none.
  returned: always
  type: str
running:
  description: Whether exactly one route guard runs (systemd - the unit is active and enabled).
  returned: always
  type: bool
found:
  description: The route guard's files that are there (for its removal).
  returned: always
  type: list
  elements: str
converged:
  description: Whether this call brought the node's dataplane to plan (C(plan.converge)).
  returned: when it did
  type: bool
applied:
  description: Whether this call brought the node to plan after its lease (O(apply)).
  returned: with O(apply)
  type: bool
joined:
  description: Whether this call brought the joining node to plan with the lease its look planned (O(join)).
  returned: when it did
  type: bool
written:
  description: The route guard's files that O(apply) wrote.
  returned: with O(apply)
  type: list
  elements: str
restart:
  description: Whether O(apply) restarted the route guard (its script or unit changed).
  returned: with O(apply)
  type: bool
started:
  description: Whether O(apply) started or restarted the route guard.
  returned: with O(apply)
  type: bool
in_plan:
  description: Whether the node is (now) what the role's module tasks would make of it (O(plan) given).
  returned: always
  type: bool
config_pending:
  description: Whether the lease file's config is this run's to write and was not written (the first play host is
    not in plan), so that the node's lease task writes it.
  returned: when it is so (O(plan), the file store)
  type: bool
store_stable:
  description: Whether the node's lease stays as the store holds it (no write to the store); with O(apply), true
    (the node is programmed with the lease the store holds).
  returned: when O(plan) is given
  type: bool
public_ips:
  description: The node's public IPs (IPv4, IPv6) that its lease holds.
  returned: when O(plan) is given
  type: list
  elements: str
drift:
  description: What the role's tasks would change on the node, one record per object (C(what), C(stale), C(missing)).
  returned: when O(plan) is given
  type: list
  elements: dict
reason:
  description: Why the node could not be checked against the plan (the full path then runs and reports it).
  returned: when the check could not run
  type: str
facts:
  description: The node's facts as M(kubeasz.network.flannel_subnet) reads them (C(iface), C(public_ip), C(mtu),
    C(vtep_mac), ...); the role's lease task takes them instead of reading them again.
  returned: when O(plan) is given and the node's interface could be chosen
  type: dict
probe:
  description: The preflight's facts of the node, as M(kubeasz.network.net_probe) O(kubeasz.network.net_probe#module:mode=facts)
    returns them (with C(plan.probe), when the node is not in plan).
  returned: when the node is not in plan and C(plan.probe) is given
  type: dict
lease:
  description: The result M(kubeasz.network.flannel_subnet) would return (C(lease), C(peers), C(iface), C(mtu), ...).
  returned: when O(plan) is given
  type: dict
dataplane:
  description: Per family, the check-mode results of M(kubeasz.network.vxlan_link) (C(link)),
    M(kubeasz.network.direct_route) (C(routes)) and M(kubeasz.network.traffic_rules) (C(rules)).
  returned: when O(plan) is given
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import run_module
from ansible_collections.kubeasz.network.plugins.module_utils.entry.nodecheck import node_check
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            plan=dict(type='dict'),
            apply=dict(type='dict'),
            join=dict(type='dict'),
            joined=dict(type='dict'),
            hold=dict(type='path'),
            families=dict(type='list', elements='str', choices=['ipv4', 'ipv6'], default=['ipv4']),
            default_cni_conf=dict(type='path', required=True),
            runner=dict(type='str', choices=['systemd', 'process'], default='systemd'),
            guard_dir=dict(type='path', required=True),
            guard_unit=dict(type='path', required=True),
            guard_state=dict(type='path', required=True),
            guard_pid_file=dict(type='path', required=True),
            guard_log_file=dict(type='path', required=True),
        ),
        supports_check_mode=True,
    )
    run_module(module, node_check, DataplaneError)


if __name__ == '__main__':
    main()
