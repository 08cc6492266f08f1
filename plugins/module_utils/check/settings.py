# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``ezctl net check`` needs of net-conf.json, as plain data (standard library only)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import parse_net_conf
from ansible_collections.kubeasz.network.plugins.module_utils.check.texts import VXLAN_PORT, overhead


def check_settings(net_conf):
    """{families, backend, vni, port, direct_routing, backend_mtu} of a net-conf.json dict."""
    nc = parse_net_conf(net_conf)
    be = nc.backend
    return {'families': list(nc.families), 'backend': be.type, 'vni': be.vni, 'port': be.port or VXLAN_PORT,
            'direct_routing': bool(be.direct_routing) and be.type == 'vxlan', 'backend_mtu': be.mtu}


def path_mtu(settings, iface_mtu, device_mtu=None):
    """{family: bytes the underlay path must carry}: FLANNEL_MTU + the backend's overhead, where
    FLANNEL_MTU is the flannel device's MTU when it exists, else what flannel would set
    ((Backend MTU or the interface's MTU) - overhead)."""
    out = {}
    for family in settings['families']:
        extra = overhead(settings['backend'], family)
        mtu = (device_mtu or {}).get(family)
        if mtu is None:
            mtu = (settings['backend_mtu'] or iface_mtu or 0) - extra
        out[family] = mtu + extra if mtu > 0 else None
    return out
