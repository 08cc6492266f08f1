# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubeasz's config keys (hosts and config.yml) -> ClusterConfig: the NetConf plus the settings
net-conf.json does not hold. Every problem names its key and says what to write instead; all are
collected and raised at once as ConfigError.

Standard library only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from ansible_collections.kubeasz.network.plugins.module_utils.cniconf import checksum, cni_conf, dumps
from ansible_collections.kubeasz.network.plugins.module_utils.lease import BACKENDS, VNI_MAX, VXLAN_OVERHEAD, ifname_problem
from ansible_collections.kubeasz.network.plugins.module_utils.netconf import (
    MTU_MAX, MTU_MIN, PORT_MAX, Backend, NetConf, NetConfError,
    is_int, backend_dict, backend_json, default_subnet_len, parse_net_conf, to_net_conf)

DATAPLANES = ('flanneld', 'ansible')
NAMESPACES = ('kube-system', 'kube-flannel')  # kubeasz's, upstream flannel's
STORES = ('file', 'etcd', 'kube')
PROXY_MODES = ('iptables', 'ipvs', 'nftables')
HOSTS_KEYS = ('CLUSTER_NETWORK', 'CLUSTER_CIDR', 'SERVICE_CIDR', 'PROXY_MODE')
# Ranges the kernel treats specially: never a pod or service network.
SPECIAL_NETWORKS = tuple((ipaddress.IPv4Network(net), what) for net, what in (
    ('0.0.0.0/8', '"this network"'), ('127.0.0.0/8', 'the loopback range'),
    ('169.254.0.0/16', 'the link-local range'), ('224.0.0.0/4', 'the multicast range'),
    ('240.0.0.0/4', 'the reserved range')))


class ConfigError(ValueError):
    """The kubeasz cluster config has problems; each names its key."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(ConfigError, self).__init__(format_problems(self.problems))


def format_problems(problems):
    """'config.yml has N problem(s):' followed by one '- ' line per problem."""
    lines = ['config.yml has %d problem(s):' % len(problems)]
    lines.extend('- %s' % p for p in problems)
    return '\n'.join(lines)


@dataclass(frozen=True)
class ClusterConfig:
    """kubeasz config: the NetConf plus the settings net-conf.json does not hold."""

    net_conf: NetConf
    dataplane: str = 'flanneld'
    namespace: str = 'kube-system'
    store: str = 'kube'
    iface: str = ''
    iface_regex: str = ''
    ip_masq: bool = True
    route_guard: bool = True
    proxy_mode: str = 'ipvs'
    service_cidr: Optional[ipaddress.IPv4Network] = None
    warnings: Tuple[str, ...] = ()

    def as_dict(self):
        """Plain data for Ansible results and templates."""
        nc = self.net_conf
        return {
            'dataplane': self.dataplane, 'namespace': self.namespace, 'store': self.store,
            'iface': self.iface, 'iface_regex': self.iface_regex, 'ip_masq': self.ip_masq,
            'route_guard': self.route_guard, 'proxy_mode': self.proxy_mode,
            'service_cidr': str(self.service_cidr) if self.service_cidr else '',
            'network': str(nc.network), 'subnet_len': nc.subnet_len,
            'subnet_min': str(nc.subnet_min), 'subnet_max': str(nc.subnet_max),
            'enable_nftables': nc.enable_nftables,
            'backend': backend_dict(nc.backend),
        }


def _where(key):
    return 'clusters/<name>/hosts [all:vars]' if key in HOSTS_KEYS else 'config.yml'


def _show(value):
    if isinstance(value, str):
        return "'%s'" % value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return str(value)


class _Reader:
    """Reads kubeasz keys from a mapping, collecting problems instead of raising."""

    def __init__(self, cfg):
        self.cfg = cfg if isinstance(cfg, Mapping) else {}
        self.problems = []
        self.warnings = []

    def raw(self, key):
        value = self.cfg.get(key)
        return None if value is None or value == '' else value

    def bad(self, key, text):
        self.problems.append('%s: %s' % (key, text))

    def choice(self, key, choices, default):
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        self.bad(key, '%s is not supported; write one of %s in %s'
                 % (_show(value), ', '.join('"%s"' % c for c in choices), _where(key)))
        return None

    def boolean(self, key, default):
        value = self.cfg.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        hint = 'true' if str(value).strip().lower() in ('yes', 'on', '1', 'true', 'y') else 'false'
        self.bad(key, '%s is not a boolean; write %s: %s (a YAML boolean, no quotes) in %s'
                 % (_show(value), key, hint, _where(key)))
        return None

    def integer(self, key, default, lo, hi, extra=''):
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not is_int(value) or not lo <= value <= hi:
            self.bad(key, '%s is not valid; write an integer between %d and %d%s'
                     % (_show(value), lo, hi, extra))
            return None
        return value


def _read_cidr(r, key, example):
    value = r.raw(key)
    if value is None:
        r.bad(key, 'is not set; write %s="%s" in %s' % (key, example, _where(key)))
        return None
    text = str(value).strip()
    parts = [p.strip() for p in text.split(',')]
    v4 = [p for p in parts if ':' not in p]
    if len(parts) > 1 or not v4:
        hint = ('write the IPv4 part "%s"' % v4[0]) if v4 else 'write an IPv4 CIDR such as "%s"' % example
        r.bad(key, '%s: IPv6 and dual-stack are not supported by flannel here; %s'
              % (_show(value), hint))
        return None
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        r.bad(key, '%s is not an IPv4 CIDR; write one such as "%s"' % (_show(value), example))
        return None
    if '/' not in text:
        r.bad(key, '%s has no prefix length; write a CIDR such as "%s"' % (_show(value), example))
        return None
    if str(net) != text:
        r.bad(key, '%s has host bits set; write "%s"' % (_show(value), net))
        return None
    for special, what in SPECIAL_NETWORKS:
        if net.overlaps(special):
            r.bad(key, '%s overlaps %s %s, which pods and services cannot use; write a private range '
                  'such as "%s"' % (_show(value), what, special, example))
            return None
    return net


def _read_subnet_len(r, network):
    prefix = network.prefixlen if network is not None else None
    lo = (prefix + 2) if prefix is not None else 1
    ctx = (' for CLUSTER_CIDR %s' % network) if network is not None else ''
    value = r.raw('NODE_CIDR_LEN')
    if value is None:
        if prefix is None:
            return None
        sl = default_subnet_len(prefix)
        if sl is None:
            r.bad('CLUSTER_CIDR', '%s is too small for flannel (the prefix must be /28 or shorter); '
                  'write a larger network such as "172.20.0.0/16"' % network)
        return sl
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not is_int(value):
        r.bad('NODE_CIDR_LEN', '%s is not an integer; write a value between %d and 30%s'
              % (_show(value), lo, ctx))
        return None
    if value > 30:
        r.bad('NODE_CIDR_LEN', '%d is too long for flannel (at most 30); write a value between %d '
              'and 30%s' % (value, lo, ctx))
        return None
    if prefix is not None and value < lo:
        if lo > 30:
            r.bad('CLUSTER_CIDR', '%s is too small for flannel: it must hold at least four node '
                  'subnets of at most /30; write a /28 or larger network' % network)
        else:
            r.bad('NODE_CIDR_LEN', '%d leaves room for fewer than four node subnets in '
                  'CLUSTER_CIDR %s; write a value between %d and 30' % (value, network, lo))
        return None
    return value


def _read_bound(r, key, network, subnet_len):
    value = r.raw(key)
    if value is None or network is None:
        return None
    text = str(value).strip()
    try:
        ip = ipaddress.IPv4Address(text.split('/', maxsplit=1)[0])
        net = ipaddress.IPv4Network(text if '/' in text else '%s/%d' % (text, subnet_len or 32), strict=False)
    except ValueError:
        r.bad(key, '%s is not an IPv4 address; write the first address of a node subnet inside '
              'CLUSTER_CIDR %s' % (_show(value), network))
        return None
    if subnet_len is None:   # NODE_CIDR_LEN is wrong (reported): check what does not depend on it
        if ip not in network:
            r.bad(key, '%s is outside CLUSTER_CIDR %s; write an address inside it' % (_show(value), network))
        return None
    size = 1 << (32 - subnet_len)
    if net.prefixlen != subnet_len:
        r.bad(key, '%s has prefix /%d but NODE_CIDR_LEN is %d; write "%s"'
              % (_show(value), net.prefixlen, subnet_len, ipaddress.IPv4Network((int(ip) & ~(size - 1), subnet_len))))
        return None
    if ip not in network:
        r.bad(key, '%s is outside CLUSTER_CIDR %s; write an address inside it' % (_show(value), network))
        return None
    if int(ip) % size:
        r.bad(key, '%s is not on a /%d boundary (NODE_CIDR_LEN); write "%s"'
              % (_show(value), subnet_len, ipaddress.IPv4Address(int(ip) & ~(size - 1))))
        return None
    return ipaddress.IPv4Network((int(ip), subnet_len))


def _read_iface(r):
    iface = r.raw('FLANNEL_IFACE')
    regex = r.raw('FLANNEL_IFACE_REGEX')
    if iface is not None:
        err = ifname_problem(iface)
        if err:
            r.bad('FLANNEL_IFACE', '%s %s; write the node interface name, e.g. "eth0", or leave it '
                  'empty to use the default route interface' % (_show(iface), err))
            iface = None
    if regex is not None:
        try:
            re.compile(str(regex))
        except re.error as exc:
            r.bad('FLANNEL_IFACE_REGEX', '%s is not a valid regular expression (%s); write one such as '
                  '"^(eth|ens)[0-9]+$"' % (_show(regex), exc))
            regex = None
    if iface is not None and regex is not None:
        r.bad('FLANNEL_IFACE', 'FLANNEL_IFACE and FLANNEL_IFACE_REGEX are both set; keep one: write '
              'FLANNEL_IFACE_REGEX: "" to use FLANNEL_IFACE, or FLANNEL_IFACE: "" to use the regex')
    return (iface or ''), (str(regex) if regex is not None else '')


def _read_backend(r):
    btype = r.choice('FLANNEL_BACKEND', BACKENDS, 'vxlan')
    direct = r.boolean('DIRECT_ROUTING', False)
    vni = r.integer('FLANNEL_VNI', 1, 1, VNI_MAX)
    port = r.integer('FLANNEL_PORT', 0, 0, PORT_MAX, ' (0 = kernel default 8472)')
    mtu = r.integer('FLANNEL_MTU', 0, 0, MTU_MAX, ' (0 = the interface MTU)')
    if mtu and mtu < MTU_MIN:
        r.bad('FLANNEL_MTU', '%d is too small for vxlan (it carries %d bytes of headers); write 0 '
              '(the interface MTU) or a value between %d and %d' % (mtu, VXLAN_OVERHEAD, MTU_MIN, MTU_MAX))
        mtu = None
    gbp = r.boolean('FLANNEL_GBP', False)
    learning = r.boolean('FLANNEL_LEARNING', False)
    if btype == 'host-gw':
        if direct:
            r.warnings.append('DIRECT_ROUTING is ignored with FLANNEL_BACKEND host-gw '
                              '(host-gw always routes directly)')
        return Backend(type='host-gw')
    if None in (btype, direct, vni, port, mtu, gbp, learning):
        return None
    return Backend(type=btype, vni=vni, port=port, mtu=mtu, gbp=gbp, learning=learning,
                   direct_routing=direct)


def _check_node_addresses(r, addresses, nets):
    """Inventory node addresses inside CLUSTER_CIDR or SERVICE_CIDR: pod or service routes would
    capture the nodes' own traffic. ``addresses``: {host: address text} (non-IPs are skipped)."""
    for host, text in sorted((addresses or {}).items()):
        try:
            address = ipaddress.IPv4Address(str(text))
        except ValueError:
            continue
        for key, net in nets:
            if net is not None and address in net:
                r.bad(key, '%s holds the address %s of node %s; write a range outside the node '
                      'network in %s' % (net, address, host, _where(key)))


def load_cluster_config(cfg, node_addresses=None):
    """kubeasz keys -> ClusterConfig; ConfigError names every bad key at once.

    node_addresses: {inventory host: address} to check against CLUSTER_CIDR and SERVICE_CIDR."""
    r = _Reader(cfg)
    cn = r.raw('CLUSTER_NETWORK')
    if cn is None or str(cn).strip().lower() != 'flannel':
        r.bad('CLUSTER_NETWORK', '%s is not flannel; write CLUSTER_NETWORK="flannel" in %s '
              '(this role deploys flannel only)' % (_show(cn), _where('CLUSTER_NETWORK')))
    network = _read_cidr(r, 'CLUSTER_CIDR', '172.20.0.0/16')
    service = _read_cidr(r, 'SERVICE_CIDR', '10.68.0.0/16') if r.raw('SERVICE_CIDR') is not None else None
    if network is not None and service is not None and network.overlaps(service):
        r.bad('SERVICE_CIDR', '%s overlaps CLUSTER_CIDR %s; write a range outside it, e.g. "%s"'
              % (service, network, '10.68.0.0/16' if not network.overlaps(ipaddress.IPv4Network('10.68.0.0/16'))
                 else '192.168.252.0/22'))
    _check_node_addresses(r, node_addresses, [('CLUSTER_CIDR', network), ('SERVICE_CIDR', service)])
    subnet_len = _read_subnet_len(r, network)
    smin = _read_bound(r, 'FLANNEL_SUBNET_MIN', network, subnet_len)
    smax = _read_bound(r, 'FLANNEL_SUBNET_MAX', network, subnet_len)
    if smin is not None and smax is not None and smin.network_address > smax.network_address:
        r.bad('FLANNEL_SUBNET_MIN', '%s is above FLANNEL_SUBNET_MAX %s; swap them: write '
              'FLANNEL_SUBNET_MIN: "%s" and FLANNEL_SUBNET_MAX: "%s"'
              % (smin.network_address, smax.network_address, smax.network_address, smin.network_address))
    backend = _read_backend(r)
    iface, iface_regex = _read_iface(r)
    dataplane = r.choice('FLANNEL_DATAPLANE', DATAPLANES, 'flanneld')
    namespace = r.choice('FLANNEL_NAMESPACE', NAMESPACES, 'kube-system')
    store = r.choice('FLANNEL_SUBNET_STORE', STORES, None)
    if store is None and r.raw('FLANNEL_SUBNET_STORE') is None:
        store = 'file' if dataplane == 'ansible' else 'kube'
    if dataplane == 'flanneld' and store in ('file', 'etcd'):
        r.bad('FLANNEL_SUBNET_STORE', '%s works only with FLANNEL_DATAPLANE "ansible"; flanneld uses '
              'the Kubernetes API here: write "kube" or leave it empty' % _show(store))
    proxy = r.choice('PROXY_MODE', PROXY_MODES, 'ipvs')
    ip_masq = r.boolean('FLANNEL_IPMASQ', True)
    route_guard = r.boolean('FLANNEL_ROUTE_GUARD', True)
    if r.problems:
        raise ConfigError(r.problems)
    data = {'Network': str(network), 'SubnetLen': subnet_len, 'EnableNFTables': proxy == 'nftables',
            'Backend': backend_json(backend)}
    if smin is not None:
        data['SubnetMin'] = str(smin.network_address)
    if smax is not None:
        data['SubnetMax'] = str(smax.network_address)
    try:
        nc = parse_net_conf(data)
    except NetConfError as exc:   # not expected: the key checks above mirror flannel's rules
        raise ConfigError(['net-conf.json: %s' % p for p in exc.problems])
    return ClusterConfig(net_conf=nc, dataplane=dataplane, namespace=namespace, store=store,
                         iface=iface, iface_regex=iface_regex, ip_masq=ip_masq,
                         route_guard=route_guard, proxy_mode=proxy, service_cidr=service,
                         warnings=tuple(r.warnings))


def from_cluster_config(cfg):
    """kubeasz keys -> NetConf (see load_cluster_config for the other settings)."""
    return load_cluster_config(cfg).net_conf


def render(cfg, node_addresses=None):
    """Everything the role needs from one config: dict with net_conf, JSON texts, checksum, cluster."""
    cc = load_cluster_config(cfg, node_addresses)
    net_conf = to_net_conf(cc.net_conf)
    net_json, cni_json = dumps(net_conf), dumps(cni_conf())
    return {'net_conf': net_conf, 'net_conf_json': net_json, 'cni_conf_json': cni_json,
            'checksum': checksum(net_json, cni_json), 'cluster': cc.as_dict(),
            'warnings': list(cc.warnings)}


def unknown_key_warnings(names, known):
    """Warnings for variables that look like ours but are not: an unknown FLANNEL_* key, or a
    near miss of a known upper-case key (FLANNEL_BACKNED, DIRECT_ROUTNG), naming the nearest."""
    upper = sorted(k for k in known if k.isupper())
    warnings = []
    for name in sorted(set(names) - set(known)):
        if not isinstance(name, str) or not name.isupper():
            continue
        near = difflib.get_close_matches(name, upper, n=1, cutoff=0.85)
        if near or name.startswith('FLANNEL_'):
            hint = ('did you mean %s?' % near[0]) if near else 'known FLANNEL_* keys are listed in ' \
                'ansible-doc -t role kubeasz.network.flannel'
            warnings.append('%s is not a key of kubeasz.network.flannel and is ignored; %s' % (name, hint))
    return warnings
