# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.route_guard_state: the route guard's state document from
this run's results, and what of the guard differs on the node; runs on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib

from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import state_doc, state_text
from ansible_collections.kubeasz.network.plugins.modules.route_guard_state import ARGUMENT_SPEC
from ansible_collections.kubeasz.network.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.kubeasz.network.plugins.module_utils.store.leaserenew import renewal_config


def guard_parts(families, lease, results):
    """{family: state part} of the families that are on (state_doc: IPv4's at the top level)."""
    parts = {}
    for family, settings in sorted(families.items()):
        if settings.get('on'):
            mine = results.get(family) or {}
            parts[family] = {'network': settings.get('network'), 'subnet': lease.get(settings['lease_keys']['subnet']),
                             'routes': (mine.get('routes') or {}).get('routes'),
                             'rules': (mine.get('rules') or {}).get('spec')}
    return parts


def decide(args):
    """route_guard_state's result (without changed)."""
    node = args['node']
    if not args['wanted']:   # removed wherever a file of it is left
        return {'todo': bool(node.get('found')), 'differs': {}, 'state': None, 'state_text': ''}
    if args['results'] is None:   # the flanneld dataplane: no routes of ours to keep
        return {'todo': False, 'differs': {}, 'state': None, 'state_text': ''}
    renewal = None
    if args['store'] == 'etcd':   # the guard's process renews the etcd lease
        renewal = args['lease_renewal']
        renewal = renewal_config(renewal.get('endpoints'), renewal.get('prefix'), args['lease'],
                                 renewal.get('ca'), renewal.get('cert'), renewal.get('key'))
    doc = state_doc(args['backend'], guard_parts(args['families'], args['lease'], args['results']),
                    renewal)
    text = state_text(doc)
    differs = {
        'guard': node.get('guard') != args['guard_sha1'],
        'state': node.get('state') != hashlib.sha1(text.encode('utf-8')).hexdigest(),
        'unit': args['runner'] == 'systemd' and node.get('unit') != args['unit_sha1'],
        'stopped': not node.get('running'),
    }
    return {'todo': any(differs.values()), 'differs': differs, 'state': doc, 'state_text': text}


class ActionModule(ControllerAction):
    """Build the route guard's state from the modules' results; never touches a host."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def decide(self, args, task_vars):
        return decide(args)
