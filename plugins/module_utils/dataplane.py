# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired dataplane state of a flannel node and plans (pure functions).

Inputs are the tables returned by ``iproute.observe()`` (parsed ``ip -json``)
and validated peers; outputs are ordered lists of ``iproute.Op``.
Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import ipaddress
import re
from collections import namedtuple

from ansible_collections.kubeasz.network.plugins.module_utils.iproute import Op

ROUTE_PROTOCOL = 159
DEFAULT_VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50
MAX_VNI = 16777215
BACKENDS = ('vxlan', 'host-gw')

ExternalInterface = namedtuple('ExternalInterface', ['name', 'ip', 'mtu'])
Peer = namedtuple('Peer', ['subnet', 'public_ip', 'backend_type', 'vni', 'vtep_mac'])
VxlanSpec = namedtuple('VxlanSpec', ['name', 'vni', 'dev', 'local', 'port', 'gbp', 'learning',
                                     'mtu', 'mac', 'address', 'network'])
Route = namedtuple('Route', ['dst', 'gateway', 'dev', 'onlink'])

_IFNAME = re.compile(r'^[^\s/:]{1,15}$')
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')


class DataplaneError(Exception):
    """Invalid input or a state that cannot be programmed; message names the culprit."""


# ---------------------------------------------------------------- validation

def _ipv4(value, what):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise DataplaneError('%s: %r is not an IPv4 address' % (what, value))


def _ipv4_net(value, what):
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise DataplaneError('%s: %r is not an IPv4 network (%s)' % (what, value, exc))


def check_ifname(name, what='iface'):
    if not isinstance(name, str) or not _IFNAME.match(name) or name in ('.', '..'):
        raise DataplaneError('%s: %r is not a valid interface name' % (what, name))
    return name


def check_mac(value, what):
    mac = str(value).lower()
    if not _MAC.match(mac):
        raise DataplaneError('%s: %r is not a MAC address (aa:bb:cc:dd:ee:ff)' % (what, value))
    if int(mac[:2], 16) & 1:
        raise DataplaneError('%s: %r is a multicast MAC address' % (what, value))
    return mac


def check_vni(value, what='vni'):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VNI:
        raise DataplaneError('%s: %r is not a VNI (1..%d)' % (what, value, MAX_VNI))
    return value


def _peer_name(index, raw):
    label = raw.get('public_ip') or raw.get('subnet') if isinstance(raw, dict) else None
    return 'peers[%d]%s' % (index, ' (%s)' % label if label else '')


def validate_peer(index, raw, network=None):
    """One peer dict → Peer; DataplaneError names the peer."""
    name = _peer_name(index, raw)
    if not isinstance(raw, dict):
        raise DataplaneError('%s: a peer must be a dict, got %r' % (name, raw))
    subnet = _ipv4_net(raw.get('subnet'), '%s subnet' % name)
    public_ip = _ipv4(raw.get('public_ip'), '%s public_ip' % name)
    backend = raw.get('backend_type') or 'vxlan'
    if not isinstance(backend, str) or not re.match(r'^[a-z0-9-]{1,32}$', backend):
        raise DataplaneError('%s backend_type: %r is not a backend name' % (name, backend))
    vni = raw.get('vni')
    if vni is not None:
        check_vni(vni, '%s vni' % name)
    mac = raw.get('vtep_mac')
    if mac is not None:
        mac = check_mac(mac, '%s vtep_mac' % name)
    if backend == 'vxlan' and mac is None:
        raise DataplaneError('%s: a vxlan peer needs vtep_mac' % name)
    if network is not None and not subnet.subnet_of(network):
        raise DataplaneError('%s subnet: %s is not inside the cluster network %s'
                             % (name, subnet, network))
    return Peer(str(subnet), str(public_ip), backend, vni, mac)


def validate_peers(peers, network=None, own_subnet=None):
    """Validate every peer before anything changes; reject duplicates and overlaps."""
    result, spans = [], []
    for index, raw in enumerate(peers or []):
        peer = validate_peer(index, raw, network)
        net = ipaddress.IPv4Network(peer.subnet)
        if own_subnet is not None and net.overlaps(own_subnet):
            raise DataplaneError('%s subnet: %s overlaps this node\'s subnet %s'
                                 % (_peer_name(index, raw), net, own_subnet))
        spans.append((int(net.network_address), int(net.broadcast_address), index, raw))
        result.append(peer)
    _check_overlaps(spans)
    return result


def _check_overlaps(spans):
    """Sweep sorted address ranges: O(n log n) instead of comparing every pair."""
    reach = None
    for first, last, index, raw in sorted(spans, key=lambda s: (s[0], -s[1], s[2])):
        if reach is not None and first <= reach[0]:
            later, earlier = sorted([(index, raw), reach[1:]], key=lambda x: x[0])[::-1]
            raise DataplaneError('%s subnet: %s overlaps %s' % (
                _peer_name(later[0], later[1]), later[1].get('subnet'), _peer_name(earlier[0], earlier[1])))
        if reach is None or last > reach[0]:
            reach = (last, index, raw)


def split_by_backend(peers, backend):
    """(peers of this backend, ignored peers): flannel ignores other backends' leases."""
    return ([p for p in peers if p.backend_type == backend],
            [p for p in peers if p.backend_type != backend])


# ------------------------------------------------------------ small helpers

def vtep_mac(public_ip, vni):
    """Deterministic locally administered unicast MAC for (node IP, VNI)."""
    digest = bytearray(hashlib.sha256(('%s/%d' % (public_ip, int(vni))).encode('ascii')).digest())
    digest[0] = (digest[0] & 0xfe) | 0x02
    return ':'.join('%02x' % b for b in digest[:6])


def device_name(vni):
    return 'flannel.%d' % vni


def first_ip(subnet):
    """The lease's network address: the peer's flannel.N address ("subnet .0")."""
    return str(ipaddress.IPv4Network(subnet).network_address)


def links_by_name(observed):
    return dict((link.get('ifname'), link) for link in observed.get('link') or observed.get('addr') or [])


def _ipv4_addrs(link):
    return [a for a in link.get('addr_info') or [] if a.get('family') == 'inet']


def _addr_link(observed, name):
    for link in observed.get('addr') or observed.get('link') or []:
        if link.get('ifname') == name:
            return link
    return None


def _default_route_dev(observed):
    for route in observed.get('route') or []:
        if route.get('dst') == 'default' and route.get('dev'):
            return route['dev']
    return None


def external_interface(observed, iface=None, iface_regex=None, public_ip=None):
    """flannel's choice of the external interface: iface, else the first name
    matching iface_regex, else the default route's device; ip = public_ip or
    the interface's first IPv4 address.  Needs the 'addr' table (and 'route'
    when neither iface nor iface_regex is given)."""
    if iface:
        name = check_ifname(iface)
        if _addr_link(observed, name) is None:
            raise DataplaneError('interface %s (FLANNEL_IFACE) does not exist' % name)
    elif iface_regex:
        try:
            pattern = re.compile(iface_regex)
        except re.error as exc:
            raise DataplaneError('iface_regex %r is not a regular expression: %s' % (iface_regex, exc))
        names = [link.get('ifname') for link in observed.get('addr') or []
                 if pattern.search(link.get('ifname') or '') and _ipv4_addrs(link)]
        if not names:
            raise DataplaneError('no interface with an IPv4 address matches iface_regex %r' % iface_regex)
        name = names[0]
    else:
        name = _default_route_dev(observed)
        if not name:
            raise DataplaneError('no default route: set FLANNEL_IFACE')
    link = _addr_link(observed, name) or {}
    addrs = _ipv4_addrs(link)
    if public_ip:
        ip = str(_ipv4(public_ip, 'public_ip'))
    elif addrs:
        ip = addrs[0]['local']
    else:
        raise DataplaneError('interface %s has no IPv4 address: set FLANNEL_IFACE or public_ip' % name)
    mtu = link.get('mtu') or links_by_name(observed).get(name, {}).get('mtu')
    if not mtu:
        raise DataplaneError('interface %s: MTU unknown' % name)
    return ExternalInterface(name, ip, int(mtu))


# ------------------------------------------------------- direct routing

def on_link(routes, iface=None):
    """None when a route lookup result means "same L2 segment", else the reason."""
    if not routes:
        return 'no route to it'
    if len(routes) != 1:
        return '%d routes to it' % len(routes)
    route = routes[0]
    if route.get('type', 'unicast') != 'unicast':
        return 'route type %s' % route.get('type')
    if route.get('gateway'):
        return 'reached through gateway %s' % route['gateway']
    if iface and route.get('dev') != iface:
        return 'reached through %s, not %s' % (route.get('dev'), iface)
    return None


def classify_peers(peers, lookups, direct_routing=True):
    """(direct, vxlan): with DirectRouting a peer whose node IP's route lookup
    returns exactly one route without a gateway is direct (flannel's rule).

    peers: Peer tuples (or peer dicts); lookups: iproute.route_get() output.
    """
    if not direct_routing:
        return [], list(peers)
    direct, vxlan = [], []
    for peer in peers:
        ip = peer['public_ip'] if isinstance(peer, dict) else peer.public_ip
        (vxlan if on_link(lookups.get(ip)) else direct).append(peer)
    return direct, vxlan


# -------------------------------------------------------------- vxlan link

def vxlan_link_attrs(link):
    """The attributes that force a recreation, from an ``ip -details -json`` link."""
    info = link.get('linkinfo') or {}
    data = info.get('info_data') or {}
    return {'kind': info.get('info_kind'), 'vni': data.get('id'), 'dev': data.get('link'),
            'local': data.get('local'), 'port': data.get('port') or DEFAULT_VXLAN_PORT,
            'gbp': bool(data.get('gbp'))}


def spec_attrs(spec):
    return {'kind': 'vxlan', 'vni': spec.vni, 'dev': spec.dev, 'local': spec.local,
            'port': spec.port or DEFAULT_VXLAN_PORT, 'gbp': bool(spec.gbp)}


def _learning(link):
    data = (link.get('linkinfo') or {}).get('info_data') or {}
    return bool(data.get('learning'))


def link_add_line(spec):
    line = ('link add %s address %s mtu %d type vxlan id %d dev %s local %s dstport %d ttl 0 %s'
            % (spec.name, spec.mac, spec.mtu, spec.vni, spec.dev, spec.local,
               spec.port or DEFAULT_VXLAN_PORT, 'learning' if spec.learning else 'nolearning'))
    return line + (' gbp' if spec.gbp else '')


def _stale_addrs(link, spec):
    keep = '%s/32' % spec.address
    stale = []
    for addr in _ipv4_addrs(link):
        cidr = '%s/%s' % (addr['local'], addr['prefixlen'])
        if cidr == keep:
            continue
        if spec.network is not None and ipaddress.IPv4Address(addr['local']) in spec.network:
            stale.append(cidr)
    return stale


def plan_vxlan_link(observed, spec):
    """(ops, recreated) making flannel.N match spec (needs 'link' and 'addr')."""
    link = links_by_name({'link': observed.get('link')}).get(spec.name)
    if link is not None and vxlan_link_attrs(link) != spec_attrs(spec):
        return [Op('ip', 'link del %s' % spec.name)] + _fresh_link_ops(spec), True
    if link is None:
        return _fresh_link_ops(spec), True
    ops = []
    if link.get('address', '').lower() != spec.mac:
        ops.append(Op('ip', 'link set %s address %s' % (spec.name, spec.mac)))
    if link.get('mtu') != spec.mtu:
        ops.append(Op('ip', 'link set %s mtu %d' % (spec.name, spec.mtu)))
    if _learning(link) != bool(spec.learning):
        ops.append(Op('ip', 'link set %s type vxlan %s'
                      % (spec.name, 'learning' if spec.learning else 'nolearning')))
    addr_link = _addr_link(observed, spec.name) or {}
    for cidr in _stale_addrs(addr_link, spec):
        ops.append(Op('ip', 'addr del %s dev %s' % (cidr, spec.name)))
    if not any(a['local'] == spec.address and a['prefixlen'] == 32 for a in _ipv4_addrs(addr_link)):
        ops.append(Op('ip', 'addr add %s/32 dev %s' % (spec.address, spec.name)))
    if 'UP' not in (link.get('flags') or []):
        ops.append(Op('ip', 'link set %s up' % spec.name))
    return ops, False


def _fresh_link_ops(spec):
    return [Op('ip', link_add_line(spec)),
            Op('ip', 'addr add %s/32 dev %s' % (spec.address, spec.name)),
            Op('ip', 'link set %s up' % spec.name)]


def plan_vxlan_absent(observed, name):
    return [Op('ip', 'link del %s' % name)] if name in links_by_name(observed) else []


# ------------------------------------------------------ neighbours and FDB

def _is_permanent(entry):
    state = entry.get('state')
    states = state if isinstance(state, list) else [state]
    return any(str(s).upper() == 'PERMANENT' for s in states if s)


def device_neighbours(observed, dev):
    """{ip: lladdr} of the permanent IPv4 neighbours on dev."""
    return dict((n['dst'], (n.get('lladdr') or '').lower()) for n in observed.get('neigh') or []
                if n.get('dev') == dev and _is_permanent(n) and '.' in n.get('dst', ''))


def device_fdb(observed, dev):
    """Set of (mac, dst) permanent FDB entries on dev."""
    return set(((f.get('mac') or '').lower(), f.get('dst')) for f in observed.get('fdb') or []
               if f.get('ifname') == dev and _is_permanent(f))


def plan_vxlan_peers(observed, dev, peers, fresh=False):
    """neigh/FDB ops for the vxlan peers; stale permanent entries on dev removed.
    ip ops (neighbours) come before bridge ops (FDB): one process each."""
    have_neigh = {} if fresh else device_neighbours(observed, dev)
    have_fdb = set() if fresh else device_fdb(observed, dev)
    want_neigh = dict((first_ip(p.subnet), p.vtep_mac) for p in peers)
    want_fdb = set((p.vtep_mac, p.public_ip) for p in peers)
    ops = [Op('ip', 'neigh del %s dev %s' % (ip, dev)) for ip in sorted(have_neigh, key=_ip_key) if ip not in want_neigh]
    ops += [Op('ip', 'neigh replace %s lladdr %s dev %s nud permanent' % (ip, mac, dev))
            for ip, mac in _sorted_items(want_neigh) if have_neigh.get(ip) != mac]
    ops += [Op('bridge', 'fdb del %s dev %s dst %s self' % (mac, dev, dst))
            for mac, dst in _sorted_fdb(have_fdb - want_fdb)]
    ops += [Op('bridge', 'fdb replace %s dev %s dst %s self permanent' % (mac, dev, dst))
            for mac, dst in _sorted_fdb(want_fdb - have_fdb)]
    return ops


def _ip_key(ip):
    try:
        return int(ipaddress.IPv4Address(ip))
    except ValueError:
        return -1


def _fdb_key(entry):
    mac, dst = entry
    try:
        return (int(ipaddress.IPv4Address(dst)), mac)
    except ValueError:
        return (-1, mac)


def _sorted_fdb(entries):
    return sorted(entries, key=_fdb_key)


def _sorted_items(mapping):
    return sorted(mapping.items(), key=lambda kv: ipaddress.IPv4Address(kv[0]))


# ------------------------------------------------------------------ routes

def desired_routes(backend, direct, vxlan, vni=1, iface=None):
    """Routes flannel programs for the classified peers."""
    routes = [Route(p.subnet, p.public_ip, iface if backend == 'host-gw' else None, False)
              for p in direct]
    routes += [Route(p.subnet, first_ip(p.subnet), device_name(vni), True) for p in vxlan]
    return sorted(routes, key=lambda r: ipaddress.IPv4Network(r.dst))


def _proto_ours(route):
    return str(route.get('protocol')) == str(ROUTE_PROTOCOL)


def is_owned(route, network, own_subnet=None):
    """Flannel-owned: dst inside network (not the own subnet), dev flannel.* or proto 159."""
    dst = route.get('dst')
    if not dst or dst == 'default':
        return False
    try:
        net = ipaddress.IPv4Network(dst if '/' in dst else dst + '/32', strict=False)
    except ValueError:
        return False
    if not net.subnet_of(network) or (own_subnet is not None and net == own_subnet):
        return False
    return (route.get('dev') or '').startswith('flannel.') or _proto_ours(route)


def route_matches(have, want):
    dst = have.get('dst', '')
    return ((dst if '/' in dst else dst + '/32') == want.dst
            and have.get('gateway') == want.gateway
            and (want.dev is None or have.get('dev') == want.dev)
            and ('onlink' in (have.get('flags') or [])) == want.onlink
            and _proto_ours(have) and not have.get('metric')
            and have.get('type', 'unicast') == 'unicast')


def route_text(route):
    """A Route (desired) in ``ip route`` syntax."""
    text = route.dst + (' via %s' % route.gateway if route.gateway else '')
    text += (' dev %s' % route.dev if route.dev else '') + (' onlink' if route.onlink else '')
    return text + ' proto %d' % ROUTE_PROTOCOL


def observed_route_text(route):
    """An observed route (ip -json dict) in ``ip route`` syntax."""
    parts = [route['type']] if route.get('type', 'unicast') != 'unicast' else []
    parts.append(route.get('dst'))
    for key, word in (('gateway', 'via'), ('dev', 'dev'), ('protocol', 'proto'), ('metric', 'metric')):
        if route.get(key) not in (None, ''):
            parts.append('%s %s' % (word, route[key]))
    if 'onlink' in (route.get('flags') or []):
        parts.append('onlink')
    return ' '.join(str(p) for p in parts)


def _route_del_line(route):
    parts = [route['type']] if route.get('type', 'unicast') != 'unicast' else []
    parts.append(route.get('dst'))
    for key, word in (('gateway', 'via'), ('dev', 'dev'), ('metric', 'metric')):
        if route.get(key) not in (None, ''):
            parts.append('%s %s' % (word, route[key]))
    return 'route del %s table main' % ' '.join(str(p) for p in parts)


def owned_routes(observed, network, own_subnet=None):
    return [r for r in observed.get('route') or [] if is_owned(r, network, own_subnet)]


def _route_key(route):
    dst = route.get('dst', '')
    return dst if '/' in dst else dst + '/32'


def plan_routes(observed, want, network, own_subnet=None):
    """Replace missing/different desired routes, delete stale owned ones."""
    by_dst = {}
    for route in observed.get('route') or []:
        by_dst.setdefault(_route_key(route), []).append(route)
    wanted = dict((w.dst, w) for w in want)
    ops = []
    for route in owned_routes(observed, network, own_subnet):
        w = wanted.get(_route_key(route))
        if w is not None and (route_matches(route, w) or not route.get('metric')):
            continue  # in sync, or overwritten by "route replace" (same dst, metric 0)
        ops.append(Op('ip', _route_del_line(route)))
    for w in want:
        if not any(route_matches(r, w) for r in by_dst.get(w.dst, [])):
            ops.append(Op('ip', 'route replace %s' % route_text(w)))
    return ops


# ----------------------------------------------------------------- diffs

def link_text(link, addr_link=None):
    """A vxlan device (observed) in ``ip link`` syntax, plus its IPv4 addresses."""
    if link is None:
        return []
    attrs = vxlan_link_attrs(link)
    line = ('link %s type %s id %s dev %s local %s dstport %s %s%s mtu %s address %s %s'
            % (link.get('ifname'), attrs['kind'], attrs['vni'], attrs['dev'], attrs['local'],
               attrs['port'], 'learning' if _learning(link) else 'nolearning',
               ' gbp' if attrs['gbp'] else '', link.get('mtu'), link.get('address'),
               'up' if 'UP' in (link.get('flags') or []) else 'down'))
    lines = [line]
    for addr in _ipv4_addrs(addr_link or {}):
        lines.append('addr %s/%s dev %s' % (addr['local'], addr['prefixlen'], link.get('ifname')))
    return lines


def spec_text(spec):
    return ['link %s type vxlan id %d dev %s local %s dstport %d %s%s mtu %d address %s up'
            % (spec.name, spec.vni, spec.dev, spec.local, spec.port or DEFAULT_VXLAN_PORT,
               'learning' if spec.learning else 'nolearning', ' gbp' if spec.gbp else '',
               spec.mtu, spec.mac),
            'addr %s/32 dev %s' % (spec.address, spec.name)]


def entries_text(neigh, fdb, dev):
    lines = ['neigh %s lladdr %s dev %s nud permanent' % (ip, mac, dev) for ip, mac in _sorted_items(neigh)]
    lines += ['fdb %s dev %s dst %s self permanent' % (mac, dev, dst) for mac, dst in _sorted_fdb(fdb)]
    return lines


def text(lines):
    return ''.join(line + '\n' for line in lines)


def op_text(ops):
    """A plan as shell-like commands, e.g. ["ip route del ...", "bridge fdb replace ..."]."""
    return ['%s %s' % (op.tool, op.line) for op in ops]


# ---------------------------------------------------------- module entry points
# Called by the vxlan_link and direct_route modules with their validated
# params; ``apply`` is iproute.apply (injected so planning stays testable).

def _cidr(value, what, strict=False):
    if not value:
        raise DataplaneError('%s is required' % what)
    try:
        return ipaddress.IPv4Network(str(value), strict=strict)
    except ValueError as exc:
        raise DataplaneError('%s: %r is not an IPv4 network (%s)' % (what, value, exc))


def _peers_out(peers):
    return [dict(p._asdict()) for p in peers]


def vxlan_link_spec(observed, params):
    """VxlanSpec from module params and the observed 'addr'/'route' tables."""
    vni = check_vni(params.get('vni', 1))
    port = params.get('port') or 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DataplaneError('port: %r is not a UDP port (0..65535, 0 = kernel default)' % port)
    if not params.get('iface'):
        raise DataplaneError('iface (the external interface) is required with state=present')
    if not params.get('address'):
        raise DataplaneError('address (the lease subnet network IP) is required with state=present')
    address = str(_cidr(params['address'], 'address').network_address)
    network = _cidr(params['network'], 'network') if params.get('network') else None
    ext = external_interface(observed, iface=params['iface'], public_ip=params.get('local_ip'))
    mtu = params.get('mtu') or ext.mtu - VXLAN_OVERHEAD
    if not 68 <= mtu <= 65535:
        raise DataplaneError('mtu: %r is out of range (68..65535)' % mtu)
    mac = check_mac(params['mac'], 'mac') if params.get('mac') else vtep_mac(ext.ip, vni)
    return VxlanSpec(device_name(vni), vni, ext.name, ext.ip, port, bool(params.get('gbp')),
                     bool(params.get('learning')), mtu, mac, address, network)


def _check_peers_vs_address(peers, address):
    for peer in peers:
        if ipaddress.IPv4Address(address) in ipaddress.IPv4Network(peer.subnet):
            raise DataplaneError('peer %s: subnet %s holds this node\'s address %s'
                                 % (peer.public_ip, peer.subnet, address))


def vxlan_link(run, params, check_mode=False, apply=None):
    """Make flannel.<VNI> and its neighbour/FDB entries match params."""
    from ansible_collections.kubeasz.network.plugins.module_utils import iproute
    apply = apply or iproute.apply
    name = device_name(check_vni(params.get('vni', 1)))
    if params.get('state', 'present') == 'absent':
        observed = iproute.observe(run, ['link', 'addr'])
        link = links_by_name(observed).get(name)
        ops = plan_vxlan_absent(observed, name)
        before, after = link_text(link, _addr_link(observed, name)), []
        result = dict(device=name, vtep_mac=link.get('address') if link else None,
                      direct_peers=[], vxlan_peers=[], ignored_peers=[])
    else:
        network = _cidr(params['network'], 'network') if params.get('network') else None
        peers = validate_peers(params.get('peers'), network)
        observed = iproute.observe(run, ['link', 'addr', 'neigh', 'fdb'])
        spec = vxlan_link_spec(observed, params)
        _check_peers_vs_address(peers, spec.address)
        wanted, ignored = split_by_backend(peers, 'vxlan')
        lookups = {}
        if params.get('direct_routing') and wanted:
            lookups = iproute.route_get(run, [p.public_ip for p in wanted])
        direct, vxlan = classify_peers(wanted, lookups, params.get('direct_routing'))
        link_ops, fresh = plan_vxlan_link(observed, spec)
        ops = link_ops + plan_vxlan_peers(observed, name, vxlan, fresh)
        link = links_by_name(observed).get(name)
        before = link_text(link, _addr_link(observed, name)) + entries_text(
            device_neighbours(observed, name), device_fdb(observed, name), name)
        after = spec_text(spec) + entries_text(
            dict((first_ip(p.subnet), p.vtep_mac) for p in vxlan),
            set((p.vtep_mac, p.public_ip) for p in vxlan), name)
        result = dict(device=name, vtep_mac=spec.mac, direct_peers=_peers_out(direct),
                      vxlan_peers=_peers_out(vxlan), ignored_peers=_peers_out(ignored))
    if ops and not check_mode:
        apply(run, ops)
    result.update(changed=bool(ops), plan=op_text(ops),
                  diff=dict(before=text(before), after=text(after)))
    return result


def host_gw_problems(peers, lookups, iface):
    """Why each off-link peer cannot be reached by a host-gw route (empty: all fine)."""
    problems = []
    for peer in peers:
        reason = on_link(lookups.get(peer.public_ip), iface)
        if reason:
            problems.append('peer %s (subnet %s) is not on-link on %s: %s'
                            % (peer.public_ip, peer.subnet, iface, reason))
    return problems


def _classify_for_routes(run, observed, params, peers, route_get, warnings, check_mode=False):
    backend = params.get('backend') or 'vxlan'
    vni = check_vni(params.get('vni', 1))
    if backend == 'host-gw':
        iface = external_interface(observed, iface=params.get('iface')).name
        problems = host_gw_problems(peers, route_get(run, [p.public_ip for p in peers]) if peers else {},
                                    iface)
        if problems:
            raise DataplaneError('host-gw needs every peer on the same L2 segment; nothing was '
                                 'changed: ' + '; '.join(problems))
        return peers, [], desired_routes(backend, peers, [], vni, iface)
    lookups = {}
    if params.get('direct_routing') and peers:
        lookups = route_get(run, [p.public_ip for p in peers])
    direct, vxlan = classify_peers(peers, lookups, params.get('direct_routing'))
    if vxlan and device_name(vni) not in links_by_name(observed):
        message = 'device %s does not exist: run vxlan_link first' % device_name(vni)
        if not check_mode:
            raise DataplaneError(message)
        warnings.append(message + ' (check mode: it would be created by vxlan_link)')
    return direct, vxlan, desired_routes(backend, direct, vxlan, vni)


def direct_route(run, params, check_mode=False, apply=None):
    """Make the flannel-owned routes of the main table match params."""
    from ansible_collections.kubeasz.network.plugins.module_utils import iproute
    apply = apply or iproute.apply
    backend = params.get('backend') or 'vxlan'
    if backend not in BACKENDS:
        raise DataplaneError('backend: %r is not one of %s' % (backend, ', '.join(BACKENDS)))
    network = _cidr(params.get('network'), 'network')
    own = _cidr(params['subnet'], 'subnet') if params.get('subnet') else None
    result = dict(direct_peers=[], vxlan_peers=[], ignored_peers=[], routes=[], warnings=[])
    if params.get('state', 'present') == 'absent':
        observed = iproute.observe(run, ['route'])
        want = []
    else:
        if own is None:
            raise DataplaneError('subnet (this node\'s lease subnet) is required with state=present')
        if not own.subnet_of(network):
            raise DataplaneError('subnet: %s is not inside network %s' % (own, network))
        peers, ignored = split_by_backend(validate_peers(params.get('peers'), network, own), backend)
        observed = iproute.observe(run, ['link', 'addr', 'route'])
        direct, vxlan, want = _classify_for_routes(run, observed, params, peers, iproute.route_get,
                                                   result['warnings'], check_mode)
        result.update(direct_peers=_peers_out(direct), vxlan_peers=_peers_out(vxlan),
                      ignored_peers=_peers_out(ignored), routes=[route_text(r) for r in want])
    ops = plan_routes(observed, want, network, own)
    if ops and not check_mode:
        apply(run, ops)
    before = [observed_route_text(r) for r in owned_routes(observed, network, own)]
    result.update(changed=bool(ops), plan=op_text(ops),
                  diff=dict(before=text(before), after=text(route_text(r) for r in want)))
    return result
