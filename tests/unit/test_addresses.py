# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every address value goes through one parser (ipfamily.parse_address and the ipv4/ipv6 fast
paths below it): zones are refused, special ranges are named (issue 24, defect 1)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.clusterconfig import ConfigError, load_cluster_config
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import (
    NOTED, REFUSED, parse_address, special_range)
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import LeaseError, check_net, check_node_ip
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import NetConfError, parse_net_conf

DUAL = {'CLUSTER_NETWORK': 'flannel', 'CLUSTER_CIDR': '172.20.0.0/16', 'CLUSTER_CIDR_IPV6': 'fd00:20::/56',
        'SERVICE_CIDR': '10.68.0.0/16,fd00:10::/108', 'PROXY_MODE': 'ipvs'}


def problems(**override):
    cfg = dict(DUAL)
    cfg.update(override)
    with pytest.raises(ConfigError) as exc:
        load_cluster_config(cfg)
    return exc.value.problems


@pytest.mark.parametrize('key, value, fix', [
    ('CLUSTER_CIDR_IPV6', 'fd00:20::%eth0/56', 'write "fd00:20::/56"'),
    ('SERVICE_CIDR', '10.68.0.0/16,fd00:10::%lo/108', 'write "fd00:10::/108"'),
    ('FLANNEL_SUBNET_MIN_IPV6', 'fd00:20:0:1::%eth0', 'write "fd00:20:0:1::"'),
])
def test_a_zone_in_a_config_address_is_refused_naming_key_and_fix(key, value, fix):
    found = problems(**{key: value})
    assert len(found) == 1, found
    assert found[0].startswith('%s: ' % key)
    assert 'carries the zone %' in found[0] and fix in found[0]


def test_a_zone_in_net_conf_is_refused():
    with pytest.raises(NetConfError, match='IPv6Network .* carries the zone %eth0'):
        parse_net_conf({'Network': '172.20.0.0/16', 'EnableIPv6': True, 'IPv6Network': 'fd00:20::%eth0/56',
                        'Backend': {'Type': 'vxlan'}})


@pytest.mark.parametrize('call', [
    lambda: check_node_ip('fd53:18:0:1::11%eth0', 'public_ip6', IPV6),
    lambda: check_net('fd00:20:0:1::%eth0/64', 'subnet6', IPV6),
])
def test_a_zone_in_a_lease_is_refused(call):
    with pytest.raises(LeaseError, match='zone %eth0'):
        call()


@pytest.mark.parametrize('value, what', [
    ('fec0::/48', 'the deprecated site-local range'), ('64:ff9b::/96', 'the NAT64 range'),
    ('64:ff9b:1::/56', 'the local-use NAT64 range'), ('2002::/48', 'the 6to4 range'),
])
def test_special_ipv6_ranges_are_refused_by_name(value, what):
    found = problems(CLUSTER_CIDR_IPV6=value)
    assert len(found) == 1 and found[0].startswith("CLUSTER_CIDR_IPV6: '%s' overlaps %s" % (value, what)), found
    assert 'write a private range such as "fd00:20::/56"' in found[0]


@pytest.mark.parametrize('override, what', [
    ({'CLUSTER_CIDR_IPV6': '2001:db8::/56'}, 'CLUSTER_CIDR_IPV6: 2001:db8::/56 overlaps the documentation range'),
    ({'CLUSTER_CIDR': '192.0.2.0/24', 'NODE_CIDR_LEN': 26}, 'CLUSTER_CIDR: 192.0.2.0/24 overlaps the documentation'),
])
def test_documentation_ranges_are_accepted_with_a_warning(override, what):
    cfg = dict(DUAL)
    cfg.update(override)
    warnings = load_cluster_config(cfg).warnings
    assert any(w.startswith(what) for w in warnings), warnings


def test_parse_address_and_special_range():
    assert str(parse_address(' fd00:20::1/56 ', network=True)) == 'fd00:20::/56'
    assert str(parse_address('198.18.0.11')) == '198.18.0.11'
    with pytest.raises(ValueError, match='is not an IPv4 address'):
        parse_address('fd00::1', IPV4)
    with pytest.raises(ValueError, match='carries the zone %lo'):
        parse_address('fe80::1%lo')
    assert special_range(parse_address('fe80::1'))[1:] == ('the link-local range', REFUSED)
    assert special_range(parse_address('2001:db8::/64', network=True))[2] == NOTED
    assert special_range(parse_address('fd00::/8', network=True)) is None
