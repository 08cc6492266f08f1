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
  - O(mode=stop) sends the stop datagram to this node's listener.
  - O(mode=preflight) and O(mode=report) run on the controller and compute the findings from every
    node's facts (and probes) - duplicate public IPs, subnet capacity, rule backends, and per pair the
    first failing layer with its likely cause and fix.
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
    description: Every node's listener result (senders' IPs) by node name; a node missing - unknown.
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
  description: Per peer and family the result of each layer, and pod to outside (O(mode=probe)).
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
from ansible_collections.kubeasz.network.plugins.module_utils.check import probe, verdict
from ansible_collections.kubeasz.network.plugins.module_utils.check.render import svg, text
from ansible_collections.kubeasz.network.plugins.module_utils.check.settings import check_settings


def _read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return ''


def _controller(module, p):
    if p['mode'] == 'preflight':
        findings = verdict.preflight(p['facts'], p['net_conf'], p['nodes'], stop_on_rules=False)
        lines = ['%s %s: %s; fix: %s' % (f['severity'].upper(), f['layer'], f['cause'], f['fix']) for f in findings]
        if any(f['severity'] == 'fail' for f in findings):
            module.fail_json(msg='preflight: ' + ' | '.join(lines), findings=findings)
        for line in lines:
            module.warn(line)
        return {'findings': findings, 'text': '\n'.join(lines)}
    params = verdict.report_params(p['net_conf'], p['facts'], p['ip_masq'])
    rep = verdict.report(p['facts'], p['probes'], p['heard'], p['net_conf'], p['nodes'], params)
    return {'report': rep, 'text': text(p['cluster'], rep, params), 'svg': svg(p['cluster'], rep)}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type='str', required=True, choices=['facts', 'listen', 'probe', 'stop', 'preflight', 'report']),
            node=dict(type='str'), net_conf=dict(type='dict'), iface=dict(type='str', default=''),
            iface_regex=dict(type='str', default=''), outside=dict(type='str', default=''),
            outside6=dict(type='str', default=''), token=dict(type='str', no_log=False),
            expect=dict(type='list', elements='str', default=[]), timeout=dict(type='float', default=10),
            own=dict(type='dict'), peers=dict(type='list', elements='dict', default=[]),
            facts=dict(type='dict'), probes=dict(type='dict', default={}), heard=dict(type='dict'),
            nodes=dict(type='int'), ip_masq=dict(type='bool', default=True),
            cluster=dict(type='str', default='cluster'),
        ),
        required_if=[('mode', 'facts', ['node', 'net_conf']), ('mode', 'listen', ['token']),
                     ('mode', 'probe', ['own', 'net_conf', 'token']), ('mode', 'stop', ['token']),
                     ('mode', 'preflight', ['facts', 'net_conf', 'nodes']),
                     ('mode', 'report', ['facts', 'net_conf', 'nodes'])],
        supports_check_mode=True,
    )
    p = module.params

    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False)

    mode = p['mode']
    port = check_settings(p['net_conf'])['port'] if p['net_conf'] else None
    if mode == 'facts':
        try:
            result = {'facts': probe.node_facts(run, _read_text, p)}
        except IprouteError as exc:
            module.fail_json(msg=str(exc))
    elif mode == 'listen':
        result = {'heard': probe.listen(dict(p, port=port))}
    elif mode == 'probe':
        result = {'probe': probe.probe(run, p['own'], p['peers'], p)}
    elif mode == 'stop':
        probe.stop_listener(port, p['token'])
        result = {}
    else:
        result = _controller(module, p)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
