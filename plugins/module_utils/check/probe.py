# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of ``ezctl net check``: read what the node will use, and probe its peers.

Nothing here changes the node: facts are read with ``ip -json`` and the *-save tools, probes are
pings (``ping``, ``ip netns exec <pod> ping``), route lookups and UDP datagrams; the VXLAN port
listener is a packet socket inside this process that ends with it. Processes only through the
runner ``run(argv, data=None) -> (rc, out, err)``.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import socket
import struct
import time

from ansible_collections.kubeasz.network.plugins.module_utils.base import iproute
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import DataplaneError
from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, IPV4, IPV6
from ansible_collections.kubeasz.network.plugins.module_utils.model.subnetenv import parse_subnet_env
from ansible_collections.kubeasz.network.plugins.module_utils.plan.underlay import (
    addr_link, external_interface, ipv4_addrs, ipv6_addrs)
from ansible_collections.kubeasz.network.plugins.module_utils.check.settings import check_settings, path_mtu
from ansible_collections.kubeasz.network.plugins.module_utils.check.texts import VXLAN_PORT

SUBNET_ENV = '/run/flannel/subnet.env'
# the probe datagram: 8 zero bytes first, so a VXLAN socket on the port drops it (no I flag)
MAGIC = b'\0' * 8 + b'kubeasz-net-check '
STOP = b'stop'
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SAVE_TOOLS = {'legacy': ['iptables-legacy-save'], 'nft': ['iptables-nft-save']}
SAVE_TOOLS6 = {'legacy6': ['ip6tables-legacy-save'], 'nft6': ['ip6tables-nft-save']}


# --------------------------------------------------------------------------- facts

def _iface(observed, params, families):
    try:
        ext = external_interface(observed, iface=params.get('iface') or None,
                                 iface_regex=params.get('iface_regex') or None, families=families)
    except DataplaneError as exc:
        return {'error': str(exc)}
    link = addr_link(observed, ext.name) or {}
    return {'iface': ext.name, 'public_ip': ext.ip, 'public_ip6': ext.ip6, 'mtu': ext.mtu,
            'candidates': [a['local'] for a in ipv4_addrs(link)] if IPV4 in families else [],
            'candidates6': [a['local'] for a in ipv6_addrs(link)] if IPV6 in families else []}


def _devices(observed, vni):
    """({family: address of flannel's device}, {family: its MTU}) of the devices that exist."""
    found, mtus = {}, {}
    for family in FAMILIES:
        link = addr_link(observed, family.device(vni))
        if link is not None:
            addrs = ipv6_addrs(link) if family is IPV6 else ipv4_addrs(link)
            found[family] = addrs[0]['local'] if addrs else None
            mtus[family] = link.get('mtu')
    return found, mtus


def _network(text):
    return str(ipaddress.ip_interface(text).network) if text else None


def _gateway(routes):
    for route in routes or []:
        if route.get('dst') == 'default' and route.get('gateway'):
            return route['gateway']
    return None


def _pod(run, env):
    """(netns name, {family: ip}) of the first pod of this node's subnet, or (None, {})."""
    rc, out, dummy = run(['ip', '-json', 'netns', 'list'])
    names = [n.get('name') for n in iproute.parse_json(out)] if rc == 0 and out.strip() else []
    nets = {}
    for family in FAMILIES:
        if env.get(family.env_subnet):
            nets[family] = ipaddress.ip_interface(env[family.env_subnet]).network
    for name in sorted(n for n in names if n):
        rc, out, dummy = run(['ip', '-n', name, '-json', 'addr', 'show'])
        if rc != 0:
            continue
        ips = {}
        for link in iproute.parse_json(out):
            for addr in link.get('addr_info') or []:
                for family, net in nets.items():
                    if family not in ips and ipaddress.ip_address(addr.get('local', '0.0.0.0')) in net:
                        ips[family] = addr['local']
        if ips:
            return name, ips
    return None, {}


def rule_backends(run, families=(IPV4,)):
    """{backend: {'rules': n of -A lines, 'forward_drop': bool, 'ours': FLANNEL-FWD jumped to}}
    of iptables-legacy and iptables-nft, and with IPv6 in ``families`` of ip6tables-legacy and
    ip6tables-nft too (keys legacy6, nft6); a tool that is missing gives nothing."""
    tools = dict(SAVE_TOOLS)
    if IPV6 in families:
        tools.update(SAVE_TOOLS6)
    found = {}
    for backend, argv in sorted(tools.items()):
        try:
            rc, out, dummy = run(argv)
        except (OSError, ValueError):
            continue
        if rc != 0:
            continue
        lines = out.splitlines()
        found[backend] = {'rules': sum(1 for line in lines if line.startswith('-A ')),
                          'forward_drop': any(line.startswith(':FORWARD DROP') for line in lines),
                          'ours': any(line.startswith('-A FORWARD') and 'FLANNEL-FWD' in line for line in lines)}
    return found


def node_facts(run, read_text, params):
    """What the node will use (interface, public IPs, MTU) and what flannel made on it already."""
    settings = check_settings(params['net_conf'])
    families = tuple(settings['families'])
    observed = iproute.observe(run, ['addr', 'route'])
    if IPV6 in families:
        observed['route6'] = iproute.observe(run, ['route'], family=IPV6)['route']
    facts = _iface(observed, params, families)
    env = parse_subnet_env(read_text(SUBNET_ENV))
    devices, mtus = _devices(observed, settings['vni'])
    pod, pod_ips = _pod(run, env)
    facts.update({
        'node': params['node'], 'subnet_env': env,
        'flannel_mtu': int(env['FLANNEL_MTU']) if env.get('FLANNEL_MTU', '').isdigit() else None,
        'subnet': _network(env.get('FLANNEL_SUBNET')), 'subnet6': _network(env.get('FLANNEL_IPV6_SUBNET')),
        'device_ips': devices, 'deployed': bool(env) and (settings['backend'] == 'host-gw' or bool(devices)),
        'path_mtu': path_mtu(settings, facts.get('mtu'), mtus),
        'pod': pod, 'pod_ips': pod_ips,
        'outside': {'ipv4': params.get('outside') or _gateway(observed.get('route')),
                    'ipv6': params.get('outside6') or _gateway(observed.get('route6'))},
        'rules': rule_backends(run, families),
    })
    return facts


# --------------------------------------------------------------------------- the VXLAN port

def datagram(token, node):
    return MAGIC + ('%s %s' % (token, node)).encode('ascii', 'replace')


def parse_udp(packet, port):
    """(source IP, payload) of an IPv4/IPv6 UDP packet to ``port``, else None."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20 and packet[9] == 17:
        start = (packet[0] & 0x0f) * 4
        src = socket.inet_ntop(socket.AF_INET, packet[12:16])
    elif version == 6 and len(packet) >= 40 and packet[6] == 17:
        start = 40
        src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    else:
        return None
    if len(packet) < start + 8 or struct.unpack('!H', packet[start + 2:start + 4])[0] != port:
        return None
    return src, packet[start + 8:]


def listen(params, sock=None, clock=time.time):
    """Watch for probe datagrams to the VXLAN port (a packet socket: it sees them whether or not
    flannel's VXLAN device holds the port, before any firewall of the node) until every expected
    sender was heard, a stop datagram came, or ``timeout`` s passed. Returns the senders' IPs heard."""
    port, token = params.get('port') or VXLAN_PORT, params['token'].encode('ascii')
    expected = set(params.get('expect') or [])
    heard = set()
    if not expected:
        return []
    if sock is None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    deadline = clock() + float(params.get('timeout') or 10)
    try:
        while clock() < deadline:
            sock.settimeout(max(0.01, min(0.2, deadline - clock())))
            try:
                packet, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            found = parse_udp(bytearray(packet), port)
            if not found or not found[1].startswith(MAGIC + token):
                continue
            rest = found[1][len(MAGIC + token):].strip()
            if rest == STOP:
                break
            heard.add(found[0])
            if expected and expected <= heard:
                break
    finally:
        sock.close()
    return sorted(heard)


def send_datagrams(targets, port, payload, repeat=3, pause=0.05, sockets=None):
    """Send ``payload`` to each target IP (IPv4 or IPv6) ``repeat`` times; errors are ignored
    (an unreachable peer shows in the listener's result)."""
    sockets = sockets or {}
    try:
        for round_ in range(repeat):
            for ip in targets:
                family = socket.AF_INET6 if ':' in ip else socket.AF_INET
                if family not in sockets:
                    sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sockets[family].sendto(payload, (ip, port))
                except (OSError, socket.error):
                    pass
            if round_ + 1 < repeat:
                time.sleep(pause)
    finally:
        for sock in sockets.values():
            sock.close()


def stop_listener(port, token):
    send_datagrams(['127.0.0.1'], port or VXLAN_PORT, MAGIC + token.encode('ascii') + b' ' + STOP, repeat=2)


# --------------------------------------------------------------------------- probes

def ping(run, ip, size=None, netns=None, timeout=1):
    """True when ``ip`` answers one echo (``size`` bytes of payload with DF set), from ``netns``."""
    argv = (['ip', 'netns', 'exec', netns] if netns else []) + ['ping', '-n', '-q', '-c', '1', '-W', str(timeout)]
    if ':' in ip:
        argv.append('-6')
    if size:
        argv += ['-M', 'do', '-s', str(size)]
    rc, dummy, dummy2 = run(argv + [ip])
    return rc == 0


def _route_path(routes):
    """(on-link, gateway, device) of ``ip route get``'s answer."""
    if not routes:
        return None, None, None
    route = routes[0]
    return not route.get('gateway'), route.get('gateway'), route.get('dev')


def _first_ip(subnet):
    return str(ipaddress.ip_network(subnet).network_address + 1) if subnet else None


def _overlay(peer, family, gets, params, direct, run):
    """(ok, why) of the flannel path to ``peer``'s subnet, None when it cannot be probed."""
    subnet = peer.get(family.subnet_key)
    target = _first_ip(subnet)
    if not target:
        return None, 'no lease'
    onlink, gateway, dev = _route_path(gets.get(target))
    wanted_dev = family.device(params['vni'])
    public = peer.get(family.public_ip_key)
    if direct:
        if gateway != public:
            return False, 'route to %s goes %s, not via %s' % (subnet, 'via %s' % gateway if gateway else
                                                               'dev %s' % dev, public)
        return True, 'direct via %s' % public
    if dev != wanted_dev:
        return False, 'no route to %s over %s (the kernel picks %s)' % (
            subnet, wanted_dev, 'via %s dev %s' % (gateway, dev) if gateway else 'dev %s' % dev)
    vtep = (peer.get('device_ips') or {}).get(family)
    if vtep and not ping(run, vtep):
        return False, "%s's %s address %s does not answer" % (peer['node'], wanted_dev, vtep)
    return True, 'over %s' % wanted_dev


def probe_peer(run, own, peer, family, gets, params):
    """One direction, one family: {layer: True/False/None} and notes."""
    public = peer.get(family.public_ip_key)
    res = {'peer': peer['node'], 'family': family, 'target': public, 'notes': {}}
    if not public:
        return res
    backend = params['backend']
    res['underlay'] = ping(run, public)
    mtu = params['path_mtu'].get(family)
    if res['underlay'] and mtu:
        res['size'] = mtu - family.echo_header
        res['mtu'] = ping(run, public, size=res['size'])
    onlink, gateway, dummy = _route_path(gets.get(public))
    res['onlink'], res['via'] = onlink, gateway
    direct = backend == 'host-gw' or (params.get('direct_routing') and onlink)
    res['direct'] = bool(direct)
    if own.get('deployed') and peer.get('deployed'):
        res['overlay'], res['notes']['overlay'] = _overlay(peer, family, gets, params, direct, run)
        netns, src, dst = own.get('pod'), (own.get('pod_ips') or {}).get(family), (peer.get('pod_ips') or {}).get(family)
        if netns and src and dst:
            res['pod'], res['pod_src'], res['pod_dst'] = ping(run, dst, netns=netns), src, dst
    return res


def probe(run, own, peers, params, send=True):
    """Send the VXLAN datagrams first (the listeners are waiting; not with ``send`` false: an
    exchange.Exchange sends them), then probe each peer in turn.
    params: net_conf, token; own and peers: node_facts() of this node and of the others."""
    params = dict(check_settings(params['net_conf']), token=params['token'], path_mtu=own.get('path_mtu') or {})
    if params['backend'] == 'vxlan' and send:
        targets = [p.get(k) for p in peers for k in ('public_ip', 'public_ip6') if p.get(k)]
        send_datagrams(targets, params.get('port') or VXLAN_PORT, datagram(params['token'], own['node']))
    results = []
    for family in params['families']:
        lookups = [p.get(family.public_ip_key) for p in peers]
        lookups += [_first_ip(p.get(family.subnet_key)) for p in peers]
        gets = iproute.route_get(run, [ip for ip in lookups if ip], family=family)
        results += [probe_peer(run, own, peer, family, gets, params) for peer in peers]
    egress = {}
    for family in params['families']:
        src, outside = (own.get('pod_ips') or {}).get(family), (own.get('outside') or {}).get(family)
        if own.get('deployed') and own.get('pod') and src and outside:
            egress[family] = {'ok': ping(run, outside, netns=own['pod']), 'src': src, 'target': outside}
    return {'pairs': results, 'egress': egress}
