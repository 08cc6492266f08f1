# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """The descriptions of the module attributes; each module states its own support."""

    # Standard documentation fragment: check_mode and diff_mode
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
'''

    # The node's operating system
    PLATFORM = r'''
options: {}
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
'''

    # A module with an action plugin of the same name
    ACTION = r'''
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
'''

    # An action that runs entirely on the controller (flannel_config; with
    # DOCUMENTATION, PLATFORM and ACTION above)
    CONTROLLER = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: Reads nothing from and writes nothing to any host.
  diff_mode:
    support: none
    details: Nothing changes, so there is nothing to diff.
  action:
    support: full
    details: Runs entirely on the controller.
  platform:
    support: full
    platforms: all
    details: Runs on the controller.
'''

    # The support of vxlan_link and direct_route (with DOCUMENTATION and PLATFORM above)
    DATAPLANE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: RV(plan) lists the commands that were (or would be) run.
  diff_mode:
    support: full
  platform:
    support: full
    platforms: linux
'''
