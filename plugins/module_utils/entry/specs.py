# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument specs of the dataplane modules (vxlan_link, direct_route, traffic_rules), in one
place for the modules and for step 06's fast path (fastpath.py), which calls their entry points
with the parameters the modules would get (``module_params``: defaults filled, types converted).

Standard library and ansible.module_utils only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError

# one peer, shared by vxlan_link and direct_route (a peer has subnet and public_ip, subnet6 and
# public_ip6, or both: Lease.parse_peer checks)
PEER_OPTIONS = dict(
    subnet=dict(type='str'),
    public_ip=dict(type='str'),
    backend_type=dict(type='str', default='vxlan'),
    vni=dict(type='int'),
    vtep_mac=dict(type='str'),
    subnet6=dict(type='str'),
    public_ip6=dict(type='str'),
    vtep_mac6=dict(type='str'),
)

# AnsibleModule(**SPEC, supports_check_mode=True)
VXLAN_LINK = dict(
    argument_spec=dict(
        state=dict(type='str', choices=['present', 'absent', 'prune'], default='present'),
        family=dict(type='str', choices=['ipv4', 'ipv6'], default='ipv4'),
        vni=dict(type='int', default=1),
        port=dict(type='int', default=0),
        gbp=dict(type='bool', default=False),
        learning=dict(type='bool', default=False),
        mtu=dict(type='int'),
        iface=dict(type='str'),
        local_ip=dict(type='str'),
        address=dict(type='str'),
        network=dict(type='str'),
        mac=dict(type='str'),
        direct_routing=dict(type='bool', default=False),
        peers=dict(type='list', elements='dict', default=[], options=PEER_OPTIONS),
    ),
    required_if=[('state', 'present', ('iface', 'address'))],
)

DIRECT_ROUTE = dict(
    argument_spec=dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        family=dict(type='str', choices=['ipv4', 'ipv6'], default='ipv4'),
        backend=dict(type='str', choices=['vxlan', 'host-gw'], default='vxlan'),
        direct_routing=dict(type='bool', default=False),
        vni=dict(type='int', default=1),
        network=dict(type='str', required=True),
        subnet=dict(type='str'),
        iface=dict(type='str'),
        peers=dict(type='list', elements='dict', default=[], options=PEER_OPTIONS),
        direct_peers=dict(type='list', elements='dict', options=PEER_OPTIONS),
    ),
    required_if=[('state', 'present', ('subnet',))],
)

TRAFFIC_RULES = dict(
    argument_spec=dict(
        state=dict(type='str', choices=['present', 'absent', 'prune'], default='present'),
        mode=dict(type='str', choices=['iptables', 'nftables'], default='iptables'),
        family=dict(type='str', choices=['ipv4', 'ipv6'], default='ipv4'),
        network=dict(type='str'),
        subnet=dict(type='str'),
        ip_masq=dict(type='bool', default=True),
        random_fully=dict(type='bool'),
    ),
    required_if=[('state', 'present', ('network',))],
)


def module_params(spec, params, what):
    """``params`` (None values left out) as the module of ``spec`` gets them; DataplaneError
    naming ``what`` when they are not valid for it."""
    given = dict((key, value) for key, value in params.items() if value is not None)
    result = ArgumentSpecValidator(spec['argument_spec'], required_if=spec['required_if']).validate(given)
    if result.error_messages:
        raise DataplaneError('%s: %s' % (what, '; '.join(result.error_messages)))
    return result.validated_parameters
