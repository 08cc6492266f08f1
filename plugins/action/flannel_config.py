# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.flannel_config: validate config on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.kubeasz.network.plugins.module_utils.clusterconfig import ConfigError, render

ARGUMENT_SPEC = {
    'config': {'type': 'dict', 'required': True},
}


class ActionModule(ActionBase):
    """Validate the kubeasz config and render flannel's JSON documents; never touches a host."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no remote temp dir: this plugin never connects to the host
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            rendered = render(dict(args['config']))
        except ConfigError as exc:
            result.update(failed=True, changed=False, problems=exc.problems, msg=str(exc))
            return result
        warnings = rendered.pop('warnings')
        if warnings:
            result['warnings'] = warnings
        result.update(rendered)
        result['changed'] = False
        return result
