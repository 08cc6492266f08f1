# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.flannel_config: validate config on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import yaml

from ansible.plugins.action import ActionBase

from ansible_collections.kubeasz.network.plugins.module_utils.entry.roleconfig import role_values
from ansible_collections.kubeasz.network.plugins.module_utils.model.clusterconfig import (
    ConfigError, load_cluster_config, render_config, unknown_key_warnings)

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


class ActionModule(ActionBase):
    """Validate the kubeasz config and render flannel's JSON documents; never touches a host."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no remote temp dir: this plugin never connects to the host
        task_vars = task_vars or {}
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        config = dict(args['config'])
        try:
            cc = load_cluster_config(config, node_addresses(task_vars))
        except ConfigError as exc:
            result.update(failed=True, changed=False, problems=exc.problems, msg=str(exc))
            return result
        rendered = render_config(cc)
        rendered.update(role_values(cc))
        warnings = rendered.pop('warnings') + unknown_key_warnings(task_vars, role_keys() | set(config))
        if warnings:
            result['warnings'] = warnings
        result.update(rendered)
        result['changed'] = False
        return result
