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

from ansible_collections.kubeasz.network.plugins.module_utils.base import ipv6
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import (
    FAMILIES, IPV4, IPV6, REFUSED, family_of, parse_address, special_range)
from ansible_collections.kubeasz.network.plugins.module_utils.model.cniconf import checksum, cni_conf, dumps
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import BACKENDS, VNI_MAX, VXLAN_OVERHEAD, ifname_problem
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import (
    MTU_MAX, MTU_MIN, PORT_MAX, Backend, NetConf, NetConfError,
    is_int, backend_dict, backend_json, default_subnet_len, parse_net_conf, to_net_conf)

DATAPLANES = ('flanneld', 'ansible')
NAMESPACES = ('kube-system', 'kube-flannel')  # kubeasz's, upstream flannel's
STORES = ('file', 'etcd', 'kube')
PROXY_MODES = ('iptables', 'ipvs', 'nftables')
# FLANNEL_ENABLE_NFTABLES: true, false (kubeasz's own template: "EnableNFTables": false) or this
# word, which follows PROXY_MODE (nftables when kube-proxy runs in nftables mode)
NFTABLES_FOLLOW = 'PROXY_MODE'
HOSTS_KEYS = ('CLUSTER_NETWORK', 'CLUSTER_CIDR', 'SERVICE_CIDR', 'PROXY_MODE')
# SERVICE_CIDR of a family the pods do not have
_SERVICE_WITHOUT_PODS = {
    IPV6: ('%%s: the IPv6 service range %%s needs IPv6 pods; set CLUSTER_CIDR_IPV6 in config.yml, or write '
           'an IPv4 CIDR such as "%s"' % IPV4.service_example),
    IPV4: ('%%s: the IPv4 service range %%s is unreachable from IPv6-only pods (FLANNEL_ENABLE_IPV4: false); '
           'write an IPv6 CIDR such as "%s"' % IPV6.service_example)}


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
    service_cidr_ipv6: Optional[ipaddress.IPv6Network] = None

    def as_dict(self):
        """Plain data for Ansible results and templates (an absent family's values are None)."""
        nc = self.net_conf
        services = [str(n) for n in (self.service_cidr, self.service_cidr_ipv6) if n is not None]
        return {
            'dataplane': self.dataplane, 'namespace': self.namespace, 'store': self.store,
            'iface': self.iface, 'iface_regex': self.iface_regex, 'ip_masq': self.ip_masq,
            'route_guard': self.route_guard, 'proxy_mode': self.proxy_mode,
            'service_cidr': ','.join(services),
            'network': _text(nc.network), 'subnet_len': nc.subnet_len,
            'subnet_min': _text(nc.subnet_min), 'subnet_max': _text(nc.subnet_max),
            'ipv6_network': _text(nc.ipv6_network), 'ipv6_subnet_len': nc.ipv6_subnet_len or None,
            'ipv6_subnet_min': _text(nc.ipv6_subnet_min), 'ipv6_subnet_max': _text(nc.ipv6_subnet_max),
            'families': [fam.name for fam in nc.families],
            'enable_nftables': nc.enable_nftables,
            'backend': backend_dict(nc.backend),
        }


def _text(value):
    return None if value is None else str(value)


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


def _read_cidr(r, key, fam):
    """The one network of ``fam`` in ``key`` (CLUSTER_CIDR, CLUSTER_CIDR_IPV6), or None."""
    example = fam.example
    value = r.raw(key)
    if value is None:
        r.bad(key, 'is not set; write %s="%s" in %s' % (key, example, _where(key)))
        return None
    text = str(value).strip()
    parts = [p.strip() for p in text.split(',')]
    if len(parts) > 1:
        v4 = [p for p in parts if ':' not in p]
        v6 = [p for p in parts if ':' in p]
        if fam is IPV4 and v4 and v6:
            r.bad(key, '%s holds an IPv4 and an IPv6 network; write the IPv4 one here, %s="%s", and '
                  'the IPv6 one as CLUSTER_CIDR_IPV6: "%s" in config.yml (dual-stack)'
                  % (_show(value), key, v4[0], v6[0]))
        else:
            r.bad(key, '%s holds %d networks; write one %s CIDR such as "%s"'
                  % (_show(value), len(parts), fam.label, example))
        return None
    if fam is IPV4 and ':' in text:
        r.bad(key, '%s is an IPv6 CIDR; write an IPv4 one here, such as "%s", and the IPv6 one as '
              'CLUSTER_CIDR_IPV6: "%s" in config.yml (with FLANNEL_ENABLE_IPV4: false for IPv6-only)'
              % (_show(value), example, text))
        return None
    if fam is IPV6 and ':' not in text:
        r.bad(key, '%s is not an IPv6 CIDR; write one such as "%s" (IPv4 pods take CLUSTER_CIDR)'
              % (_show(value), example))
        return None
    return _check_net(r, key, value, text, fam, example)


def _check_net(r, key, value, text, fam, example):
    """``text`` as a network of ``fam``: a CIDR without zone or host bits, not in a
    special range (family.parse_address, family.special_range)."""
    try:
        net = parse_address(text, fam, network=True)
        address = parse_address(text.split('/')[0], fam)
    except ValueError as exc:
        if '%' in text:
            r.bad(key, '%s %s' % (_show(value), exc))
        else:
            r.bad(key, '%s is not an %s CIDR; write one such as "%s"' % (_show(value), fam.label, example))
        return None
    if '/' not in text:
        r.bad(key, '%s has no prefix length; write a CIDR such as "%s"' % (_show(value), example))
        return None
    special = special_range(net)   # first: Python 3.13 prints IPv4-mapped ranges dotted
    if special is not None and special[2] == REFUSED:
        r.bad(key, '%s overlaps %s %s, which pods and services cannot use; write a private range '
              'such as "%s"' % (_show(value), special[1], special[0], example))
        return None
    if str(net) != text:
        what = 'has host bits set' if address != net.network_address else 'is not in canonical form'
        r.bad(key, '%s %s; write "%s"' % (_show(value), what, net))
        return None
    if special is not None:
        r.warnings.append('%s: %s overlaps %s %s, which is not meant for a network in use; a private '
                          'range such as "%s" is' % (key, net, special[1], special[0], example))
    return net


def _read_service_cidr(r, families):
    """SERVICE_CIDR: one network per family (kube-apiserver --service-cluster-ip-range), each of
    a family the pods have. Returns (IPv4 network or None, IPv6 network or None)."""
    key = 'SERVICE_CIDR'
    value = r.raw(key)
    if value is None:
        return None, None
    parts = [p.strip() for p in str(value).split(',')]
    found = {}
    for part in parts:
        fam = family_of(part)
        if fam in found:
            r.bad(key, '%s holds two %s networks; write at most one network per address family, e.g. '
                  '"10.68.0.0/16,fd00:10::/108"' % (_show(value), fam.label))
            return None, None
        found[fam] = part
    nets = {}
    for fam in FAMILIES:
        part = found.get(fam)
        if part is None:
            continue
        if fam not in families:
            r.bad(key, _SERVICE_WITHOUT_PODS[fam] % (_show(value), part))
            continue
        shown = value if len(parts) == 1 else part
        nets[fam] = _check_net(r, key, shown, part, fam, fam.service_example)
    return nets.get(IPV4), nets.get(IPV6)


def _read_subnet_len(r, network, fam):
    prefix = network.prefixlen if network is not None else None
    lo = (prefix + 2) if prefix is not None else 1
    hi = fam.max_len
    ctx = (' for %s %s' % (fam.cidr_key, network)) if network is not None else ''
    value = r.raw(fam.node_len_key)
    if value is None:
        if prefix is None:
            return None
        sl = default_subnet_len(prefix, fam)
        if sl is None:
            r.bad(fam.cidr_key, '%s is too small for flannel (the prefix must be /%d or shorter); '
                  'write a larger network such as "%s"' % (network, fam.min_prefix, fam.example))
        return sl
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not is_int(value):
        r.bad(fam.node_len_key, '%s is not an integer; write a value between %d and %d%s'
              % (_show(value), lo, hi, ctx))
        return None
    if value > hi:
        r.bad(fam.node_len_key, '%d is too long for flannel (at most %d); write a value between %d '
              'and %d%s' % (value, hi, lo, hi, ctx))
        return None
    if prefix is not None and value < lo:
        if lo > hi:
            r.bad(fam.cidr_key, '%s is too small for flannel: it must hold at least four node '
                  'subnets of at most /%d; write a /%d or larger network' % (network, hi, fam.min_prefix))
        else:
            r.bad(fam.node_len_key, '%d leaves room for fewer than four node subnets in '
                  '%s %s; write a value between %d and %d' % (value, fam.cidr_key, network, lo, hi))
        return None
    return value


def _read_bound(r, key, network, subnet_len, fam):
    value = r.raw(key)
    if value is None or network is None:
        return None
    text = str(value).strip()
    try:
        ip = parse_address(text.split('/', maxsplit=1)[0], fam)
        net = parse_address(text if '/' in text else '%s/%d' % (text, subnet_len or fam.bits), fam,
                            network=True)
    except ValueError:
        if '%' in text:
            r.bad(key, '%s %s' % (_show(value), ipv6.zone_problem(text)))
            return None
        r.bad(key, '%s is not an %s address; write the first address of a node subnet inside '
              '%s %s' % (_show(value), fam.label, fam.cidr_key, network))
        return None
    if subnet_len is None:   # NODE_CIDR_LEN is wrong (reported): check what does not depend on it
        if ip not in network:
            r.bad(key, '%s is outside %s %s; write an address inside it' % (_show(value), fam.cidr_key, network))
        return None
    size = 1 << (fam.bits - subnet_len)
    if net.prefixlen != subnet_len:
        r.bad(key, '%s has prefix /%d but %s is %d; write "%s"'
              % (_show(value), net.prefixlen, fam.node_len_key, subnet_len,
                 fam.net_cls((int(ip) & ~(size - 1), subnet_len))))
        return None
    if ip not in network:
        r.bad(key, '%s is outside %s %s; write an address inside it' % (_show(value), fam.cidr_key, network))
        return None
    if int(ip) % size:
        r.bad(key, '%s is not on a /%d boundary (%s); write "%s"'
              % (_show(value), subnet_len, fam.node_len_key, fam.addr_cls(int(ip) & ~(size - 1))))
        return None
    return fam.net_cls((int(ip), subnet_len))


def _read_family(r, network, fam):
    """(subnet_len, subnet_min, subnet_max) of one family's pod network."""
    subnet_len = _read_subnet_len(r, network, fam)
    smin = _read_bound(r, fam.subnet_min_key, network, subnet_len, fam)
    smax = _read_bound(r, fam.subnet_max_key, network, subnet_len, fam)
    if smin is not None and smax is not None and smin.network_address > smax.network_address:
        r.bad(fam.subnet_min_key, '%s is above %s %s; swap them: write %s: "%s" and %s: "%s"'
              % (smin.network_address, fam.subnet_max_key, smax.network_address, fam.subnet_min_key, smax.network_address,
                 fam.subnet_max_key, smin.network_address))
    return subnet_len, smin, smax


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
    """Inventory node addresses inside a pod or service network (CLUSTER_CIDR, CLUSTER_CIDR_IPV6,
    SERVICE_CIDR): pod or service routes would
    capture the nodes' own traffic. ``addresses``: {host: address text} (non-IPs are skipped)."""
    for host, text in sorted((addresses or {}).items()):
        try:
            address = parse_address(text)
        except ValueError:
            continue
        for key, net in nets:   # per family: an IPv4 address is never in an IPv6 network
            if net is not None and address in net:
                r.bad(key, '%s holds the address %s of node %s; write a range outside the node '
                      'network in %s' % (net, address, host, _where(key)))


def _overlap(r, service, network, fam, examples):
    if network is not None and service is not None and network.overlaps(service):
        r.bad('SERVICE_CIDR', '%s overlaps %s %s; write a range outside it, e.g. "%s"'
              % (service, fam.cidr_key, network, examples[0] if not network.overlaps(ipaddress.ip_network(examples[0]))
                 else examples[1]))


def _read_families(r):
    """(IPv4 network or None, IPv6 network or None, families): FLANNEL_ENABLE_IPV4, CLUSTER_CIDR
    and CLUSTER_CIDR_IPV6 together."""
    enable4 = r.boolean('FLANNEL_ENABLE_IPV4', True)
    has6 = r.raw('CLUSTER_CIDR_IPV6') is not None
    network6 = _read_cidr(r, 'CLUSTER_CIDR_IPV6', IPV6) if has6 else None
    network = None
    if enable4 is False:
        cidr = r.raw('CLUSTER_CIDR')
        if not has6:
            hint = str(cidr).strip() if cidr is not None and ':' in str(cidr) else IPV6.example
            r.bad('FLANNEL_ENABLE_IPV4', 'false (IPv6-only) needs an IPv6 pod network; write '
                  'CLUSTER_CIDR_IPV6: "%s" in config.yml, or FLANNEL_ENABLE_IPV4: true' % hint)
        elif cidr is not None and str(cidr).strip() != str(r.raw('CLUSTER_CIDR_IPV6')).strip():
            r.warnings.append('CLUSTER_CIDR %s is ignored: FLANNEL_ENABLE_IPV4 is false (IPv6-only), the pod '
                              'network is CLUSTER_CIDR_IPV6' % _show(cidr))
        for key in ('FLANNEL_SUBNET_MIN', 'FLANNEL_SUBNET_MAX'):
            if r.raw(key) is not None:
                r.warnings.append('%s is ignored: FLANNEL_ENABLE_IPV4 is false (IPv6-only)' % key)
    elif enable4 or r.raw('CLUSTER_CIDR') is not None:   # a bad FLANNEL_ENABLE_IPV4 (reported) reads it if set
        network = _read_cidr(r, 'CLUSTER_CIDR', IPV4)
    if not has6:
        for key in ('FLANNEL_SUBNET_MIN_IPV6', 'FLANNEL_SUBNET_MAX_IPV6'):
            if r.raw(key) is not None:
                r.warnings.append('%s is ignored: CLUSTER_CIDR_IPV6 is not set (no IPv6 pods)' % key)
    families = tuple(fam for fam, on in ((IPV4, enable4 is not False), (IPV6, has6)) if on)
    return network, network6, families


def _read_nftables(r, proxy):
    """FLANNEL_ENABLE_NFTABLES -> net-conf EnableNFTables: false by default, as kubeasz's own
    template writes it whatever PROXY_MODE says; true; or "PROXY_MODE": true when PROXY_MODE is
    nftables."""
    key = 'FLANNEL_ENABLE_NFTABLES'
    value = r.cfg.get(key)
    if value is None or value == '':
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() == NFTABLES_FOLLOW:
        return proxy == 'nftables'
    r.bad(key, '%s is not valid; write false (flannel masquerades with iptables, as kubeasz renders it), '
          'true (nftables) or "%s" (nftables when PROXY_MODE is "nftables") in %s'
          % (_show(value), NFTABLES_FOLLOW, _where(key)))
    return None


def load_cluster_config(cfg, node_addresses=None):
    """kubeasz keys -> ClusterConfig; ConfigError names every bad key at once.

    node_addresses: {inventory host: address} to check against the pod and service networks
    (each address against the networks of its family)."""
    r = _Reader(cfg)
    cn = r.raw('CLUSTER_NETWORK')
    if cn is None or str(cn).strip().lower() != 'flannel':
        r.bad('CLUSTER_NETWORK', '%s is not flannel; write CLUSTER_NETWORK="flannel" in %s '
              '(this role deploys flannel only)' % (_show(cn), _where('CLUSTER_NETWORK')))
    network, network6, families = _read_families(r)
    service, service6 = _read_service_cidr(r, families)
    _overlap(r, service, network, IPV4, ('10.68.0.0/16', '192.168.252.0/22'))
    _overlap(r, service6, network6, IPV6, ('fd00:10::/108', 'fd00:ffff::/108'))
    _check_node_addresses(r, node_addresses, [('CLUSTER_CIDR', network), ('CLUSTER_CIDR_IPV6', network6),
                                              ('SERVICE_CIDR', service), ('SERVICE_CIDR', service6)])
    subnet_len = smin = smax = None
    if IPV4 in families:
        subnet_len, smin, smax = _read_family(r, network, IPV4)
    subnet_len6 = smin6 = smax6 = None
    if IPV6 in families:
        subnet_len6, smin6, smax6 = _read_family(r, network6, IPV6)
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
    elif store == 'etcd' and families == (IPV6,):
        r.bad('FLANNEL_SUBNET_STORE', '"etcd" cannot hold IPv6-only leases with FLANNEL_ENABLE_IPV4: false '
              "(flannel's etcd registry keys every lease by its IPv4 subnet); write FLANNEL_SUBNET_STORE: "
              '"file" or "kube", or FLANNEL_ENABLE_IPV4: true with an IPv4 CLUSTER_CIDR (dual-stack)')
    proxy = r.choice('PROXY_MODE', PROXY_MODES, 'ipvs')
    nftables = _read_nftables(r, proxy)
    ip_masq = r.boolean('FLANNEL_IPMASQ', True)
    route_guard = r.boolean('FLANNEL_ROUTE_GUARD', True)
    if r.problems:
        raise ConfigError(r.problems)
    data = {}
    if IPV4 in families:
        data.update(Network=str(network), SubnetLen=subnet_len)
        if smin is not None:
            data['SubnetMin'] = str(smin.network_address)
        if smax is not None:
            data['SubnetMax'] = str(smax.network_address)
    else:
        data['EnableIPv4'] = False
    if IPV6 in families:
        data.update(EnableIPv6=True, IPv6Network=str(network6), IPv6SubnetLen=subnet_len6)
        if smin6 is not None:
            data['IPv6SubnetMin'] = str(smin6.network_address)
        if smax6 is not None:
            data['IPv6SubnetMax'] = str(smax6.network_address)
    data.update(EnableNFTables=nftables, Backend=backend_json(backend))
    try:
        nc = parse_net_conf(data)
    except NetConfError as exc:   # not expected: the key checks above mirror flannel's rules
        raise ConfigError(['net-conf.json: %s' % p for p in exc.problems])
    return ClusterConfig(net_conf=nc, dataplane=dataplane, namespace=namespace, store=store,
                         iface=iface, iface_regex=iface_regex, ip_masq=ip_masq,
                         route_guard=route_guard, proxy_mode=proxy, service_cidr=service,
                         service_cidr_ipv6=service6, warnings=tuple(r.warnings))


def from_cluster_config(cfg):
    """kubeasz keys -> NetConf (see load_cluster_config for the other settings)."""
    return load_cluster_config(cfg).net_conf


def render(cfg, node_addresses=None):
    """Everything the role needs from one config: dict with net_conf, JSON texts, checksum, cluster."""
    return render_config(load_cluster_config(cfg, node_addresses))


def render_config(cc):
    """render() of a loaded ClusterConfig."""
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
