#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: route_guard_state
short_description: Build the route guard's state from a run's results and tell what of the guard differs
version_added: 0.1.0
description:
  - Builds the route guard's state document (the routes C(direct_route) returned, the C(spec)
    C(traffic_rules) returned, per address family; the etcd lease's renewal settings) and its
    text, and compares the guard's files and process on the node (as C(node_check) reported them)
    with what they should be.
  - With O(guard_file), O(state_file) (and O(unit_file) for systemd), it also writes the files that
    differ on the node, in one call (atomically, the directory made; not in check mode, where
    C(--diff) still shows the state and unit files' change).
  - The decision is taken by the action plugin on the controller; the module part only writes the
    files the action names.
author:
  - kubeasz.network developers (@kubeasz)
options:
  wanted:
    description: Whether the route guard should run on the node; false, it is to be removed where a file of it is left.
    type: bool
    required: true
  node:
    description: C(node_check)'s result for the node.
    type: dict
    required: true
  runner:
    description: How the route guard runs (a systemd unit, or a process inside the node).
    type: str
    choices: [systemd, process]
    default: systemd
  guard_sha1:
    description: The SHA-1 of the route guard file as it should be (unset, the SHA-1 of O(guard_text)).
    type: str
    default: ''
  guard_text:
    description: The route guard file as it should be (written to O(guard_file) when it differs).
    type: str
  guard_file:
    description: Where the route guard file goes on the node; unset, no file is written.
    type: path
  state_file:
    description: Where the route guard's state file goes on the node (written when it differs).
    type: path
  unit_text:
    description: The route guard's systemd unit as it should be (O(runner=systemd)).
    type: str
  unit_file:
    description: Where the route guard's systemd unit goes on the node (O(runner=systemd)).
    type: path
  write:
    description: Internal, set by the action plugin - the files to write on the node. Do not set it in a task.
    type: list
    elements: dict
  unit_sha1:
    description: The SHA-1 of the route guard's unit file as it should be (systemd).
    type: str
    default: ''
  backend:
    description: The backend type (C(vxlan), C(host-gw)).
    type: str
  families:
    description: C(flannel_config)'s return value C(family) (per family whether it is on, its network and lease keys).
    type: dict
    default: {}
  lease:
    description: The node's lease (C(flannel_subnet)'s C(lease)).
    type: dict
    default: {}
  results:
    description:
      - Per address family (C(ipv4), C(ipv6)) the registered results of the family's tasks - C(routes)
        (C(direct_route)), C(rules) (C(traffic_rules)). Unset (the flanneld dataplane), no guard is installed.
    type: dict
  store:
    description: The lease store; with C(etcd) the guard renews the node's lease.
    type: str
    default: file
  lease_renewal:
    description: The etcd store's C(endpoints) (a list or comma-separated), C(prefix), and the node's C(ca), C(cert), C(key) paths.
    type: dict
    default: {}
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
  - kubeasz.network.attributes.action
attributes:
  check_mode:
    support: full
    details: Decides, and shows what it would write; writes nothing.
  diff_mode:
    support: full
    details: The state file's and the unit's before and after (not the route guard file, the whole module_utils).
  action:
    support: full
    details: Decides on the controller; the node is called only when a file differs.
  platform:
    support: full
    platforms: posix
'''

EXAMPLES = r'''
- name: Decide what the route guard needs on the node
  kubeasz.network.route_guard_state:
    wanted: true
    node: "{{ flannel_node }}"
    guard_sha1: "{{ flannel_route_guard_text | hash('sha1') }}"
    backend: "{{ flannel_config.cluster.backend.type }}"
    families: "{{ flannel_config.family }}"
    lease: "{{ flannel_lease.lease }}"
    results: "{{ flannel_results }}"
  register: flannel_guard
'''

RETURN = r'''
todo:
  description: Whether anything of the guard is to be done on the node (install, restart, or remove).
  returned: always
  type: bool
differs:
  description: What differs from what should be (empty when the guard is not wanted or keeps nothing).
  returned: always
  type: dict
  contains:
    guard:
      description: The route guard file.
      type: bool
      returned: when wanted
    state:
      description: The state file.
      type: bool
      returned: when wanted
    unit:
      description: The systemd unit file (always false with the process runner).
      type: bool
      returned: when wanted
    stopped:
      description: No guard (or not exactly one) runs.
      type: bool
      returned: when wanted
state:
  description: The state document (null when there is none to keep).
  returned: always
  type: dict
state_text:
  description: The state file's text (empty when there is none to keep).
  returned: always
  type: str
written:
  description: The files written on the node (check mode - that would be written).
  returned: when a file was written
  type: list
  elements: str
restart:
  description: Whether a file the running guard was started from changed (the guard or its unit), so it restarts.
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import run_module
from ansible_collections.kubeasz.network.plugins.module_utils.entry.nodecheck import write_files
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError

ARGUMENT_SPEC = dict(
    wanted=dict(type='bool', required=True),
    node=dict(type='dict', required=True),
    runner=dict(type='str', choices=['systemd', 'process'], default='systemd'),
    guard_sha1=dict(type='str', default=''),
    unit_sha1=dict(type='str', default=''),
    backend=dict(type='str'),
    families=dict(type='dict', default={}),
    lease=dict(type='dict', default={}),
    results=dict(type='dict'),
    store=dict(type='str', default='file'),
    lease_renewal=dict(type='dict', default={}),
    guard_text=dict(type='str'),
    guard_file=dict(type='path'),
    state_file=dict(type='path'),
    unit_text=dict(type='str'),
    unit_file=dict(type='path'),
    write=dict(type='list', elements='dict'),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params['write'] is None:
        module.fail_json(msg='kubeasz.network.route_guard_state runs through its action plugin, which '
                             'decides on the controller what to write; it cannot run as a module alone')
    run_module(module, write_files, DataplaneError)


if __name__ == '__main__':
    main()
