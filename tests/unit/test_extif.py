# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The external interface choice (no root)."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.extif import ExternalInterface, external_interface
from ansible_collections.kubeasz.network.plugins.module_utils.lease import DataplaneError
from ansible_collections.kubeasz.network.tests.unit.netstate import observed


# -------------------------------------------------------- external_interface

def test_external_interface_default_route():
    assert external_interface(observed()) == ExternalInterface('eth0', '198.18.0.11', 1500)


def test_external_interface_public_ip_wins():
    assert external_interface(observed(), iface='eth0', public_ip='203.0.113.5').ip == '203.0.113.5'


def test_external_interface_regex():
    obs = observed()
    obs['addr'] = [{'ifname': 'lo', 'mtu': 65536, 'addr_info': [{'family': 'inet', 'local': '127.0.0.1', 'prefixlen': 8}]},
                   {'ifname': 'ens3', 'mtu': 9000, 'addr_info': []}] + obs['addr']
    assert external_interface(obs, iface_regex='^e').name == 'eth0'
    with pytest.raises(DataplaneError, match='matches iface_regex'):
        external_interface(obs, iface_regex='^wlan')


def test_external_interface_errors():
    with pytest.raises(DataplaneError, match='no default route: set FLANNEL_IFACE'):
        external_interface(observed(routes=[]))
    with pytest.raises(DataplaneError, match='eth9.*does not exist'):
        external_interface(observed(), iface='eth9')
    with pytest.raises(DataplaneError, match='not a valid interface name'):
        external_interface(observed(), iface='eth0; reboot')
    obs = observed()
    obs['addr'][0]['addr_info'] = []
    with pytest.raises(DataplaneError, match='no IPv4 address'):
        external_interface(obs, iface='eth0')
