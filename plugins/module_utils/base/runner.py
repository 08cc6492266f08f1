# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module glue, below everything else: the Runner of an AnsibleModule, the run of an
entry point as a module (``run_module``), and the newline-terminated text of a list of lines
(command input and --diff text).

A Runner is a callable ``run(argv, data=None) -> (rc, stdout, stderr)``: argument lists only,
text in and out. Modules get theirs from ``module_runner``; the route guard, tests and bench
pass their own (module_utils never start a process themselves).
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import IprouteError


def module_runner(module):
    """The Runner of an AnsibleModule: ``module.run_command`` with text stdin and output."""
    def run(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False)
    return run


def text(lines):
    """Lines as text, each ending in a newline ('' for none)."""
    return ''.join(line + '\n' for line in lines)


def run_module(module, entry_point, failures):
    """Run ``entry_point(run, params, check_mode=, diff=)`` for an AnsibleModule and exit with its
    result (its 'warnings' as warnings). ``failures``: the entry point's own exception class(es),
    reported as a failed task with their message; an IprouteError also says whether a half-applied
    plan changed the node and what ran (the next run converges)."""
    try:
        result = entry_point(module_runner(module), module.params, check_mode=module.check_mode, diff=module._diff)
    except IprouteError as exc:
        module.fail_json(msg=str(exc), changed=exc.partial, applied=exc.applied)
    except failures as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)
