# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.flannel_config: validate config on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import yaml

from ansible_collections.kubeasz.network.plugins.module_utils.entry.roleconfig import role_values
from ansible_collections.kubeasz.network.plugins.module_utils.model.clusterconfig import (
    ConfigError, load_cluster_config, render_config, unknown_key_warnings)
from ansible_collections.kubeasz.network.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = {
    'config': {'type': 'dict', 'required': True},
}
ROLE_SPEC = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'flannel', 'meta', 'argument_specs.yml')


def role_keys():
    """The variables the flannel role documents (its meta/argument_specs.yml)."""
    try:
        with open(ROLE_SPEC) as handle:
            return set(yaml.safe_load(handle)['argument_specs']['main']['options'])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return set()


def node_addresses(task_vars):
    """{host: address} of the play's hosts, as the inventory reaches them."""
    hostvars = task_vars.get('hostvars') or {}
    return dict((host, (hostvars.get(host) or {}).get('ansible_host') or host)
                for host in task_vars.get('ansible_play_hosts_all') or [])


class ActionModule(ControllerAction):
    """Validate the kubeasz config and render flannel's JSON documents; never touches a host."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def decide(self, args, task_vars):
        config = dict(args['config'])
        try:
            cc = load_cluster_config(config, node_addresses(task_vars))
        except ConfigError as exc:
            return dict(failed=True, problems=exc.problems, msg=str(exc))
        result = render_config(cc)
        # plain JSON types: a Family (a str subclass) is not a type Ansible's variables store
        result.update(json.loads(json.dumps(role_values(cc))))
        warnings = result.pop('warnings') + unknown_key_warnings(task_vars, role_keys() | set(config))
        if warnings:
            result['warnings'] = warnings
        return result
