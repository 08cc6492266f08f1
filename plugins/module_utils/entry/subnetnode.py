# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of kubeasz.network.flannel_subnet: the node's interface facts and FLANNEL_MTU,
subnet.env and the CNI config, and the stores a node reaches itself (etcd, kube).

With IPv6 (``NetConf.families``) the facts also hold ``public_ip6`` (flanneld's choice, or the
``public_ip6`` option), ``vtep_mac6`` and ``previous_subnet6`` (subnet.env's FLANNEL_IPV6_SUBNET),
and subnet.env gets flannel's FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET lines.

Standard library and ansible.module_utils only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import socket

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV6, family_of
from ansible_collections.kubeasz.network.plugins.module_utils.base.runner import module_runner
from ansible_collections.kubeasz.network.plugins.module_utils.plan.underlay import addr_link, external_interface, link_ips
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import (
    VXLAN_OVERHEAD, DataplaneError, Lease, LeaseError, LeasePart, kept_vtep_mac, vtep_mac)
from ansible_collections.kubeasz.network.plugins.module_utils.base.iproute import AddrDel, IprouteError, apply, observe, parse_json
from ansible_collections.kubeasz.network.plugins.module_utils.base.atomicfile import drop, put, read_text
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import parse_subnet_env, subnet6_of_env, subnet_env_text, subnet_of_env
from ansible_collections.kubeasz.network.plugins.module_utils.store.allocation import config_families
from ansible_collections.kubeasz.network.plugins.module_utils.store.state import lease_state
from ansible_collections.kubeasz.network.plugins.module_utils.model.cniconf import BRIDGE, delegate_conflist, dumps
from ansible_collections.kubeasz.network.plugins.module_utils.model.netconf import NetConfError, parse_net_conf
from ansible_collections.kubeasz.network.plugins.module_utils.plan.vxlandev import device_name


def flannel_mtu(backend, iface_mtu):
    """FLANNEL_MTU: vxlan (Backend.MTU or interface MTU) - 50; host-gw the interface MTU."""
    if backend.type == 'vxlan':
        return (getattr(backend, 'mtu', None) or iface_mtu) - VXLAN_OVERHEAD
    return iface_mtu


def check_node_fits(netconf, ext):
    """Refuse, before any write, a node the config cannot work on (names the key to fix)."""
    backend = netconf.backend
    if backend.type == 'vxlan' and backend.mtu and backend.mtu > ext.mtu:
        raise DataplaneError('FLANNEL_MTU: %d is more than the MTU of %s (%d), which VXLAN packets '
                             'must fit; write FLANNEL_MTU: 0 (use the interface MTU) or at most %d'
                             % (backend.mtu, ext.name, ext.mtu, ext.mtu))
    if ext.ip is not None and netconf.network is not None and ipaddress.IPv4Address(ext.ip) in netconf.network:
        raise DataplaneError('CLUSTER_CIDR: %s holds this node\'s address %s (%s); pod subnets '
                             'would capture node traffic: choose a CLUSTER_CIDR outside the node network'
                             % (netconf.network, ext.ip, ext.name))
    network6 = getattr(netconf, 'ipv6_network', None)
    if ext.ip6 is not None and network6 is not None and ipaddress.IPv6Address(ext.ip6) in network6:
        raise DataplaneError('CLUSTER_CIDR_IPV6: %s holds this node\'s address %s (%s); pod subnets '
                             'would capture node traffic: choose a CLUSTER_CIDR_IPV6 outside the node network'
                             % (network6, ext.ip6, ext.name))


def _interface(observed, params, families, public_ip, public_ip6, ipv6_routes):
    """external_interface() for ``families``; None (no network: absent, query): the families the
    interface has (IPv4 and IPv6, else IPv4, else IPv6), so the node's lease is found either way.
    ``ipv6_routes()`` adds the IPv6 default route ('route6') when an IPv6-only choice needs it."""
    args = (observed, params['iface'], params['iface_regex'], public_ip)
    by_route = not params['iface'] and not params['iface_regex']
    if families is not None:
        if by_route and 'ipv4' not in families:
            ipv6_routes()
        return external_interface(*args, families=families, public_ip6=public_ip6)
    problems = []
    for tried in (('ipv4', 'ipv6'), ('ipv4',), ('ipv6',)):
        try:
            if by_route and tried == ('ipv6',):
                ipv6_routes()
            return external_interface(*args, families=tried, public_ip6=public_ip6)
        except DataplaneError as exc:
            problems.append(exc)
    raise problems[1]   # the IPv4 one, as without IPv6


def node_facts(module, netconf, public_ip=None, public_ip6=None):
    """Observe once; the external interface, public IP(s), MTU, VTEP MAC(s) and current subnet.env.

    The IPv6 facts (``public_ip6``, ``vtep_mac6``, ``previous_subnet6``) are there when the
    network has IPv6 (without a network: ``public_ip6`` when the interface has one)."""
    params = module.params
    runner = module_runner(module)
    families = config_families(netconf) if netconf is not None else None
    observed = observe(runner, ['link', 'addr', 'route'])

    def ipv6_routes():   # the IPv6 default route(s), as the chooser reads them ('route6')
        observed['route6'] = observe(runner, ['route'], {'route': ['default']}, 'ipv6')['route']
    ext = _interface(observed, params, families, public_ip or params['public_ip'],
                     public_ip6 or params.get('public_ip6'), ipv6_routes)
    text = read_text(params['subnet_file'])
    env = parse_subnet_env(text) if text is not None else {}
    previous = subnet_of_env(env) if env else None
    facts = dict(iface=ext.name, public_ip=ext.ip, subnet_env=env,
                 previous_subnet=str(previous) if previous else None)
    if ext.ip6 is not None:
        facts['public_ip6'] = ext.ip6
    if families is not None and 'ipv6' in families:
        previous6 = subnet6_of_env(env) if env else None
        facts['previous_subnet6'] = str(previous6) if previous6 else None
    if netconf is not None:
        backend = netconf.backend
        check_node_fits(netconf, ext)
        link = addr_link(observed, ext.name) or {}
        if backend.type == 'host-gw' and ext.ip is not None and ext.ip not in link_ips(link, 'ipv4'):
            raise DataplaneError('public_ip %s is not an address of %s: the host-gw backend does not '
                                 'support NAT (a public IP differing from the interface IP)' % (ext.ip, ext.name))
        if backend.type == 'host-gw' and ext.ip6 is not None and ext.ip6 not in link_ips(link, 'ipv6'):
            raise DataplaneError('public_ip6 %s is not an address of %s: the host-gw backend does not '
                                 'support NAT (a public IP differing from the interface IP)' % (ext.ip6, ext.name))
        vxlan = backend.type == 'vxlan'
        facts.update(mtu=flannel_mtu(backend, ext.mtu), backend_type=backend.type,
                     vni=backend.vni if vxlan else None,
                     vtep_mac=(kept_vtep_mac(addr_link(observed, device_name(backend.vni)))
                               or vtep_mac(ext.ip, backend.vni)) if vxlan and ext.ip is not None else None)
        if 'ipv6' in families:
            facts['vtep_mac6'] = (kept_vtep_mac(addr_link(observed, device_name(backend.vni, 'ipv6')))
                                  or vtep_mac(ext.ip6, backend.vni)) if vxlan else None
        # the node's addresses of a family the config does not have: its lease of before a family
        # switch (IPv4-only <-> IPv6-only) carries one of them and is replaced (leases.stale_leases)
        facts['former_ips'] = (([] if 'ipv4' in families else link_ips(link, 'ipv4'))
                               + ([] if 'ipv6' in families else link_ips(link, 'ipv6')))
    return facts, text


def _check_fits(netconf, subnets):
    """The leased ``subnets`` ({Family: subnet}) are this network's (IPv4 and/or IPv6, as the
    network has them); those of the network's families, by family."""
    families = config_families(netconf)
    for family in families:
        value = subnets.get(family)
        if value is None:
            raise LeaseError('the network has %s but the lease has no %s subnet' % (family.label, family.label))
        network, subnet_len = (getattr(netconf, attr) for attr in family.conf_attrs[:2])
        net = family.net_cls(value)
        if not net.subnet_of(network) or net.prefixlen != subnet_len:
            raise LeaseError('%s %s is not a /%d inside network %s' % (family.subnet_key, net, subnet_len, network))
    return dict((family, subnets[family]) for family in families)


def lease_gateways(lease):
    """The pods' gateway addresses of a lease (first address of each subnet, as CIDR text)."""
    gateways = set()
    for fam, part in lease.parts.items():
        net = fam.parse_net(part.subnet)
        gateways.add('%s/%d' % (fam.ip_text(net[0] + 1), net[1]))
    return gateways


def stale_bridge_addrs(links, lease):
    """Global addresses on the pods' bridge that are not the lease's gateways: left by an earlier
    lease or by a family that is off. The bridge plugin refuses to add a pod while the bridge
    holds another address, so they go (a pod's ADD puts the right one back)."""
    keep = lease_gateways(lease)
    return sorted('%s/%d' % (a['local'], a['prefixlen']) for link in links if link.get('ifname') == BRIDGE
                  for a in link.get('addr_info') or []
                  if a.get('scope') == 'global' and '%s/%d' % (a.get('local'), a.get('prefixlen')) not in keep)


def clean_bridge(module, lease):
    """Remove the stale addresses of the pods' bridge; (changed, diff or None)."""
    runner = module_runner(module)
    rc, out, err = runner(['ip', '-json', 'addr', 'show', 'dev', BRIDGE])
    stale = stale_bridge_addrs(parse_json(out), lease) if rc == 0 else []   # rc 1: no bridge yet
    if not stale:
        return False, None
    if not module.check_mode:
        for family in FAMILIES:
            fam_stale = [a for a in stale if family_of(a) is family]
            if fam_stale:
                apply(runner, [AddrDel(cidr, BRIDGE) for cidr in fam_stale], family)
    header = '%s addresses' % BRIDGE
    return True, dict(before=''.join('%s\n' % a for a in stale), after='', before_header=header, after_header=header)


def write_env(module, netconf, facts, subnets):
    """state=present: write subnet.env (and the CNI conflist) for the leased ``subnets``
    ({Family: subnet}); (changed, diffs, facts to report)."""
    params = module.params
    lease = Lease.make(facts['backend_type'], facts['vni'], dict(
        (fam, LeasePart(subnet, facts.get(fam.public_ip_key), facts.get(fam.vtep_mac_key)))
        for fam, subnet in _check_fits(netconf, subnets).items()))
    env = subnet_env_text(netconf, lease, facts['mtu'], params['ip_masq'])
    changed, diff = put(params['subnet_file'], env, module.check_mode)
    diffs = [diff]
    if params['cni_conf_file']:
        cni_changed, diff = put(params['cni_conf_file'], dumps(delegate_conflist(parse_subnet_env(env))), module.check_mode)
        changed = changed or cni_changed
        diffs.append(diff)
    bridge_changed, diff = clean_bridge(module, lease)
    if bridge_changed:
        changed = True
        diffs.append(diff)
    return changed, diffs, dict(subnet_env=parse_subnet_env(env), lease=lease.as_peer())


def remove(module):
    """state=absent: remove subnet.env (and the CNI conflist); (changed, diffs)."""
    dropped = [drop(path, module.check_mode) for path in (module.params['subnet_file'], module.params['cni_conf_file'])]
    return any(changed for changed, dummy in dropped), [diff for changed, diff in dropped if changed]


# ------------------------------------------------------------ stores the node talks to (etcd, kube)

def open_store(params):
    """The EtcdStore or KubeStore that the parameters describe (imported here: their HTTP clients
    cost every other caller of this module a tenth of a second)."""
    from ansible_collections.kubeasz.network.plugins.module_utils.store.etcd import EtcdClient, EtcdStore
    from ansible_collections.kubeasz.network.plugins.module_utils.store.kubestore import KubeClient, KubeStore
    if params['store'] == 'etcd':
        client = EtcdClient(params['etcd_endpoints'], params['etcd_ca'], params['etcd_cert'], params['etcd_key'])
        return EtcdStore(client, params['etcd_prefix'], params['etcd_lease_ttl'])
    client = KubeClient(params['kube_api'], params['kube_token'], params['kube_ca'], params['kube_cert'],
                        params['kube_key'])
    return KubeStore(client, params['node_name'] or socket.gethostname())


def on_node(module, netconf):
    """store=etcd|kube: the module reads and writes the store itself. Returns the result."""
    params = module.params
    store = open_store(params)
    public_ip, public_ip6 = params['public_ip'], params.get('public_ip6')
    ipv6_on = netconf is not None and IPV6 in config_families(netconf)
    if params['store'] == 'kube' and (not public_ip or (ipv6_on and not public_ip6)) and params['state'] != 'absent':
        overwrite, overwrite6 = store.public_ip_overwrites()
        public_ip, public_ip6 = public_ip or overwrite, public_ip6 or (overwrite6 if ipv6_on else None)
    if params['state'] == 'absent':
        found = {} if public_ip or public_ip6 else node_facts(module, None)[0]
        facts = dict(public_ip=public_ip or found.get('public_ip'))
        if public_ip6 or found.get('public_ip6'):
            facts['public_ip6'] = public_ip6 or found['public_ip6']
    else:
        facts = node_facts(module, netconf, public_ip, public_ip6)[0]

    def env(lease):
        if lease is None:
            return remove(module) + ({},)
        return write_env(module, netconf, facts, dict((fam, part.subnet) for fam, part in lease.parts.items()))
    return lease_state(store, params['state'], netconf, facts, env, params['network'], module.check_mode)


def run_flannel_subnet(module):
    """The module's whole run for an AnsibleModule built from its argument spec."""
    params = module.params
    try:
        netconf = parse_net_conf(params['network']) if params['network'] is not None else None
        if params['store'] != 'file' and params['subnet'] is None and params.get('subnet6') is None:
            result = on_node(module, netconf)
            for warning in result.pop('warnings'):
                module.warn(warning)
            module.exit_json(**result)
        if params['state'] == 'absent':
            changed, diffs = remove(module)
            module.exit_json(changed=changed, subnet_env={}, diff=diffs)
        facts, dummy = node_facts(module, netconf)
        if params['state'] == 'query':
            module.exit_json(changed=False, **facts)
        if params['subnet'] is None and params.get('subnet6') is None:
            module.fail_json(msg='subnet is set by the kubeasz.network.flannel_subnet action plugin '
                                 'after allocation (store=%s); run the module through it' % params['store'])
        changed, diffs, more = write_env(module, netconf, facts, dict(
            (fam, params.get(fam.subnet_key)) for fam in FAMILIES if params.get(fam.subnet_key) is not None))
        facts.update(more)
    except NetConfError as exc:
        module.fail_json(msg='network: %s' % exc)
    except (DataplaneError, IprouteError, LeaseError, ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, diff=diffs, **facts)
