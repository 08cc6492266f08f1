# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two address families, and the ``ipv4``/``ipv6`` module that parses each.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils import ipv4, ipv6

FAMILIES = ('ipv4', 'ipv6')
_MODULES = {'ipv4': ipv4, 'ipv6': ipv6}
# iproute2's family switch, and the name of a family in messages
IP_FLAG = {'ipv4': '-4', 'ipv6': '-6'}
LABEL = {'ipv4': 'IPv4', 'ipv6': 'IPv6'}


def module_for(family):
    """The parsing module of ``family`` (``ipv4`` or ``ipv6``)."""
    try:
        return _MODULES[family]
    except KeyError:
        raise ValueError('family: %r is not one of %s' % (family, ', '.join(FAMILIES)))


def family_of(text):
    """'ipv6' when the address or CIDR text is IPv6, else 'ipv4'."""
    return 'ipv6' if ':' in str(text) else 'ipv4'
