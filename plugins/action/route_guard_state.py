# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for kubeasz.network.route_guard_state: the route guard's state document from
this run's results, and what of the guard differs on the node; runs on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.routeguard.guard import guard_decision
from ansible_collections.kubeasz.network.plugins.modules.route_guard_state import ARGUMENT_SPEC
from ansible_collections.kubeasz.network.plugins.plugin_utils.controller_action import ControllerAction


class ActionModule(ControllerAction):
    """Build the route guard's state from the modules' results; never touches a host."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def decide(self, args, task_vars):
        return guard_decision(args)
