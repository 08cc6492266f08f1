#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: net_probe
short_description: Probe a flannel network layer by layer and pair by pair, changing nothing
version_added: 0.2.0
author:
  - kubeasz.network developers (@kubeasz)
description:
  - The node side and the verdict of C(ezctl net check) (playbook C(kubeasz.network.net_check)) and of
    step 06's preflight. It never changes a node.
  - O(mode=facts) reads what the node will use (interface, public IPs, MTU, the path MTU to test, as
    flannel chooses them from O(net_conf) and O(iface)/O(iface_regex)), what flannel made already
    (C(/run/flannel/subnet.env), C(flannel.<VNI>)), the first pod of the node's subnet (a network
    namespace), and the iptables-legacy and iptables-nft rules.
  - O(mode=listen) watches the VXLAN port with a packet socket (it sees datagrams whether or not
    flannel's device holds the port) for the probe datagrams of O(expect), until all came, a stop
    datagram came, or O(timeout) seconds passed. Run it with C(async).
  - O(mode=probe) sends the probe datagrams to every peer, then per peer and family pings the public
    IP, pings it with DF at the path MTU, looks the route up (on-link for host-gw and DirectRouting),
    and, where flannel is deployed, checks the route to the peer's subnet and pings its
    C(flannel.<VNI>) address, and from the node's pod the peer's pod and the outside.
  - O(mode=probe) with O(listen=true), when every node runs the task at once, also watches the VXLAN
    port in the same process while the probes run, repeating its probe datagrams until it heard every
    peer and every peer heard it (or O(timeout) seconds); what it heard is returned in C(heard) of
    RV(probe), and no O(mode=listen) job is needed.
  - O(mode=stop) sends the stop datagram to this node's listener.
  - O(mode=preflight) and O(mode=report) run on the controller, in the action plugin (no module
    process), and compute the findings from every node's facts (and probes) - duplicate public IPs,
    subnet capacity, rule backends, and per pair the first failing layer with its likely cause and fix.
options:
  mode:
    description: What to do (see the description).
    type: str
    choices: [facts, listen, probe, stop, preflight, report]
    required: true
  node:
    description: The node's inventory name (O(mode=facts)).
    type: str
  net_conf:
    description: net-conf.json as a dictionary (C(flannel_config)'s C(net_conf)).
    type: dict
  iface:
    description: FLANNEL_IFACE, the interface flannel uses (empty - the default route's).
    type: str
    default: ''
  iface_regex:
    description: FLANNEL_IFACE_REGEX.
    type: str
    default: ''
  outside:
    description: An IPv4 address outside the cluster for the pod to outside probe (default - the node's default gateway).
    type: str
    default: ''
  outside6:
    description: The same for IPv6.
    type: str
    default: ''
  token:
    description: This run's token, carried in the probe datagrams.
    type: str
  expect:
    description: The IPs whose probe datagrams the listener waits for.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the listener waits at most.
    type: float
    default: 10
  listen:
    description:
      - O(mode=probe) - watch the VXLAN port meanwhile (for the vxlan backend, when every node runs
        the task at once), as O(mode=listen) would.
    type: bool
    default: false
  own:
    description: This node's facts (O(mode=probe)).
    type: dict
  peers:
    description: The other nodes' facts (O(mode=probe)).
    type: list
    elements: dict
    default: []
  facts:
    description: Every node's facts by node name (O(mode=preflight), O(mode=report)).
    type: dict
  probes:
    description: Every node's probe result by node name (O(mode=report)).
    type: dict
    default: {}
  heard:
    description:
      - Every node's listener result (senders' IPs) by node name; a node missing - unknown.
      - Not given - each node's C(heard) in O(probes) (O(mode=probe) with O(listen=true)).
    type: dict
  nodes:
    description: How many nodes the inventory holds (subnet capacity).
    type: int
  ip_masq:
    description: FLANNEL_IPMASQ.
    type: bool
    default: true
  cluster:
    description: The cluster's name, for the report's text.
    type: str
    default: cluster
  dest:
    description: O(mode=report) - also write the report, its text and its drawing as JSON to this file on the controller (mode 0600).
    type: path
extends_documentation_fragment:
  - kubeasz.network.attributes
  - kubeasz.network.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
'''

EXAMPLES = r'''
- name: Read what the node will use
  kubeasz.network.net_probe:
    mode: facts
    node: "{{ inventory_hostname }}"
    net_conf: "{{ flannel_config.net_conf }}"
  register: facts
'''

RETURN = r'''
facts:
  description: The node's facts (O(mode=facts)).
  returned: mode is facts
  type: dict
heard:
  description: The senders' IPs the listener heard (O(mode=listen)).
  returned: mode is listen
  type: list
  elements: str
probe:
  description:
    - Per peer and family the result of each layer, and pod to outside (O(mode=probe)).
    - With O(listen=true) also C(heard), the senders' IPs heard on the VXLAN port.
  returned: mode is probe
  type: dict
findings:
  description: Every finding with layer, severity, nodes, family, cause and fix.
  returned: mode is preflight or report
  type: list
  elements: dict
report:
  description: The whole check (pairs with their layers, findings, ok).
  returned: mode is report
  type: dict
text:
  description: The report as a matrix for people.
  returned: mode is preflight or report
  type: str
svg:
  description: The report as an SVG drawing.
  returned: mode is report
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import IprouteError
from ansible_collections.kubeasz.network.plugins.module_utils.check import probe
from ansible_collections.kubeasz.network.plugins.module_utils.check.exchange import Exchange
from ansible_collections.kubeasz.network.plugins.module_utils.check.settings import check_settings

ARGUMENT_SPEC = dict(
    mode=dict(type='str', required=True, choices=['facts', 'listen', 'probe', 'stop', 'preflight', 'report']),
    node=dict(type='str'), net_conf=dict(type='dict'), iface=dict(type='str', default=''),
    iface_regex=dict(type='str', default=''), outside=dict(type='str', default=''),
    outside6=dict(type='str', default=''), token=dict(type='str', no_log=False),
    expect=dict(type='list', elements='str', default=[]), timeout=dict(type='float', default=10),
    listen=dict(type='bool', default=False),
    own=dict(type='dict'), peers=dict(type='list', elements='dict', default=[]),
    facts=dict(type='dict'), probes=dict(type='dict', default={}), heard=dict(type='dict'),
    nodes=dict(type='int'), ip_masq=dict(type='bool', default=True),
    cluster=dict(type='str', default='cluster'), dest=dict(type='path'),
)
REQUIRED_IF = [('mode', 'facts', ['node', 'net_conf']), ('mode', 'listen', ['token']),
               ('mode', 'probe', ['own', 'net_conf', 'token']), ('mode', 'stop', ['token']),
               ('mode', 'preflight', ['facts', 'net_conf', 'nodes']),
               ('mode', 'report', ['facts', 'net_conf', 'nodes'])]
CONTROLLER_MODES = ('preflight', 'report')


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ''


def _probe(run, p, port):
    """mode=probe, with the exchange on the VXLAN port meanwhile when ``listen``."""
    exchange = Exchange(p['token'], p['own'], p['peers'], port, p['timeout']).start() if p['listen'] else None
    result = probe.probe(run, p['own'], p['peers'], p, send=exchange is None)
    if exchange is not None:
        result['heard'] = exchange.wait()
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    p = module.params

    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False)

    mode = p['mode']
    if mode in CONTROLLER_MODES:
        module.fail_json(msg='mode=%s runs in the action plugin kubeasz.network.net_probe on the controller' % mode)
    port = check_settings(p['net_conf'])['port'] if p['net_conf'] else None
    result = {}
    try:
        if mode == 'facts':
            result = {'facts': probe.node_facts(run, _read_text, p)}
        elif mode == 'listen':
            result = {'heard': probe.listen(dict(p, port=port))}
        elif mode == 'probe':
            result = {'probe': _probe(run, p, port)}
        else:
            probe.stop_listener(port, p['token'])
    except (IprouteError, OSError) as exc:   # OSError: no packet socket (CAP_NET_RAW) on the node
        module.fail_json(msg='%s: %s' % (mode, exc))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
