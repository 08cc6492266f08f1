# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's drift from its plan, as data: what a module run in check mode would change, one
record per object (``what``), with the lines present but not planned (``stale``) and those planned
but not present (``missing``), as the module's diff shows them. ``ezctl net status`` reads these
records; no one parses the diff text back.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


def drift(what, before, after):
    """The drift record of one object from its before and after lines."""
    had, wants = set(before), set(after)
    return {'what': what, 'stale': [line for line in before if line not in wants],
            'missing': [line for line in after if line not in had]}


def drift_of_diffs(diffs):
    """drift() of each file diff ({before, after, before_header}) that differs."""
    return [drift(d.get('before_header') or 'file', (d.get('before') or '').splitlines(),
                  (d.get('after') or '').splitlines())
            for d in diffs if isinstance(d, dict) and d.get('before') != d.get('after')]
