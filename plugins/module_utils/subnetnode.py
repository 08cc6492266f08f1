# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of kubeasz.network.flannel_subnet: the node's interface facts and FLANNEL_MTU,
subnet.env and the CNI config, and the stores a node reaches itself (etcd, kube).

Standard library and ansible.module_utils only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import socket

from ansible_collections.kubeasz.network.plugins.module_utils.extif import addr_link, external_interface, ipv4_addrs
from ansible_collections.kubeasz.network.plugins.module_utils.lease import VXLAN_OVERHEAD, DataplaneError, Lease, LeaseError, vtep_mac
from ansible_collections.kubeasz.network.plugins.module_utils.etcd import EtcdClient, EtcdStore
from ansible_collections.kubeasz.network.plugins.module_utils.iproute import IprouteError, observe
from ansible_collections.kubeasz.network.plugins.module_utils.kubestore import KubeClient, KubeStore
from ansible_collections.kubeasz.network.plugins.module_utils.leases import (
    lease_state, needs_write, parse_subnet_env, read_text, remove_file, subnet_env_text, subnet_of_env,
    write_atomic)
from ansible_collections.kubeasz.network.plugins.module_utils.cniconf import delegate_conflist, dumps
from ansible_collections.kubeasz.network.plugins.module_utils.netconf import NetConfError, parse_net_conf


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
    if ext.ip is not None and ipaddress.IPv4Address(ext.ip) in netconf.network:
        raise DataplaneError('CLUSTER_CIDR: %s holds this node\'s address %s (%s); pod subnets '
                             'would capture node traffic: choose a CLUSTER_CIDR outside the node network'
                             % (netconf.network, ext.ip, ext.name))


def node_facts(module, netconf, public_ip=None):
    """Observe once; the external interface, public IP, MTU, VTEP MAC and current subnet.env."""
    params = module.params

    def runner(argv, data=None):
        return module.run_command(argv, data=data, binary_data=False)

    observed = observe(runner, ['link', 'addr', 'route'])
    ext = external_interface(observed, params['iface'], params['iface_regex'], public_ip or params['public_ip'])
    text = read_text(params['subnet_file'])
    env = parse_subnet_env(text) if text is not None else {}
    previous = subnet_of_env(env) if env else None
    facts = dict(iface=ext.name, public_ip=ext.ip, subnet_env=env,
                 previous_subnet=str(previous) if previous else None)
    if netconf is not None:
        backend = netconf.backend
        check_node_fits(netconf, ext)
        if backend.type == 'host-gw' and ext.ip not in [a.get('local') for a in ipv4_addrs(addr_link(observed, ext.name) or {})]:
            raise DataplaneError('public_ip %s is not an address of %s: the host-gw backend does not '
                                 'support NAT (a public IP differing from the interface IP)' % (ext.ip, ext.name))
        facts.update(mtu=flannel_mtu(backend, ext.mtu), backend_type=backend.type,
                     vni=backend.vni if backend.type == 'vxlan' else None,
                     vtep_mac=vtep_mac(ext.ip, backend.vni) if backend.type == 'vxlan' else None)
    return facts, text


def file_diff(path, before, after):
    return dict(before=before or '', after=after or '', before_header=path, after_header=path)


def put(module, path, text):
    """Write ``text`` to ``path`` (atomic, 0644, only if different); (changed, diff)."""
    before = read_text(path)
    if module.check_mode:
        changed = needs_write(path, text, mode=0o644)
    else:
        changed = write_atomic(path, text, mode=0o644, dir_mode=0o755)
    return changed, file_diff(path, before, text)


def write_env(module, netconf, facts, subnet):
    """state=present: write subnet.env (and the CNI conflist) for the leased ``subnet``;
    (changed, diffs, facts to report)."""
    params = module.params
    subnet = ipaddress.IPv4Network(subnet)
    if not subnet.subnet_of(netconf.network) or subnet.prefixlen != netconf.subnet_len:
        raise LeaseError('subnet %s is not a /%d inside network %s' % (subnet, netconf.subnet_len, netconf.network))
    lease = Lease.make(subnet, facts['public_ip'], facts['backend_type'], facts['vni'], facts['vtep_mac'])
    env = subnet_env_text(netconf, lease, facts['mtu'], params['ip_masq'])
    changed, diff = put(module, params['subnet_file'], env)
    diffs = [diff]
    if params['cni_conf_file']:
        cni_changed, diff = put(module, params['cni_conf_file'], dumps(delegate_conflist(parse_subnet_env(env))))
        changed = changed or cni_changed
        diffs.append(diff)
    return changed, diffs, dict(subnet_env=parse_subnet_env(env), lease=lease.as_peer())


def remove(module):
    """state=absent: remove subnet.env (and the CNI conflist); (changed, diffs)."""
    changed, diffs = False, []
    for path in (module.params['subnet_file'], module.params['cni_conf_file']):
        before = read_text(path) if path else None
        if before is None:
            continue
        if not module.check_mode:
            remove_file(path)
        changed = True
        diffs.append(file_diff(path, before, ''))
    return changed, diffs


# ------------------------------------------------------------ stores the node talks to (etcd, kube)

def open_store(params):
    """The EtcdStore or KubeStore that the parameters describe."""
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
    public_ip = params['public_ip']
    if params['store'] == 'kube' and not public_ip and params['state'] != 'absent':
        public_ip = store.public_ip_overwrite()
    if params['state'] == 'absent':
        facts = dict(public_ip=public_ip or node_facts(module, None)[0]['public_ip'])
    else:
        facts = node_facts(module, netconf, public_ip)[0]

    def env(lease):
        if lease is None:
            return remove(module) + ({},)
        return write_env(module, netconf, facts, lease.subnet)
    return lease_state(store, params['state'], netconf, facts, env, params['network'], module.check_mode)


def run_flannel_subnet(module):
    """The module's whole run for an AnsibleModule built from its argument spec."""
    params = module.params
    try:
        netconf = parse_net_conf(params['network']) if params['network'] is not None else None
        if params['store'] != 'file' and params['subnet'] is None:
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
        if params['subnet'] is None:
            module.fail_json(msg='subnet is set by the kubeasz.network.flannel_subnet action plugin '
                                 'after allocation (store=%s); run the module through it' % params['store'])
        changed, diffs, more = write_env(module, netconf, facts, params['subnet'])
        facts.update(more)
    except NetConfError as exc:
        module.fail_json(msg='network: %s' % exc)
    except (DataplaneError, IprouteError, LeaseError, ValueError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, diff=diffs, **facts)
