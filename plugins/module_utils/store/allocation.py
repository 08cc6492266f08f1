# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""flannel's rules for a node's lease, as pure functions of the network config and the store's
leases: which families the config enables and which subnets it allows (``family_conf``, ``fits``,
``compatible``), ``allocate()`` (flanneld's acquire: deterministic, lowest free subnet), which
leases are the node's (``is_own``, ``stale_leases``) and which are its peers (``split_peers``).

Standard library only: imported on the managed node and on the controller."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import itertools
import random

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES, family_of_version
from ansible_collections.kubeasz.network.plugins.module_utils.model.lease import Lease, LeaseError, LeasePart, check_node_ip, lease_order


def _subnet(value, what, family):
    cls = family.net_cls
    try:
        return cls(value if isinstance(value, (str, cls)) else '<%r>' % (value,))
    except ValueError as exc:
        raise LeaseError('%s: %r is not an %s subnet (%s)' % (what, value, family.label, exc))


def _family(subnet):
    return family_of_version(subnet.version)


def family_conf(netconf, family):
    """(Network, SubnetLen, SubnetMin, SubnetMax) of ``family``, or None when the config does
    not enable it (EnableIPv4 / EnableIPv6; a config without these attributes is IPv4-only)."""
    if not getattr(netconf, family.enable_attr, family.enabled_by_default):
        return None
    return tuple(getattr(netconf, attr) for attr in family.conf_attrs)


def config_families(netconf):
    return tuple(family for family in FAMILIES if family_conf(netconf, family) is not None)


def fits(netconf, subnet):
    """A subnet (IPv4Network or IPv6Network) this network config could have leased: of its
    family's SubnetLen, inside its Network (never, when the config does not enable the family)."""
    conf = family_conf(netconf, _family(subnet))
    return conf is not None and subnet.prefixlen == conf[1] and subnet.subnet_of(conf[0])


def compatible(netconf, subnet):
    """flannel's isSubnetConfigCompat (an IPv6Network: isIPv6SubnetConfigCompat): between the
    family's SubnetMin and SubnetMax, of its SubnetLen."""
    conf = family_conf(netconf, _family(subnet))
    return (conf is not None and subnet.prefixlen == conf[1]
            and conf[2].network_address <= subnet.network_address <= conf[3].network_address)


def lease_compatible(netconf, lease):
    """flannel's isSubnetConfigCompat && isIPv6SubnetConfigCompat: each family the config
    enables is in the lease and compatible, and the lease has no family the config does not
    enable (an IPv4 lease is not compatible once IPv6 is on, a dual-stack one once it is off)."""
    for family in FAMILIES:
        subnet = lease.network_of(family)
        if family_conf(netconf, family) is None:
            if subnet is not None:
                return False
        elif subnet is None or not compatible(netconf, subnet):
            return False
    return True


def subnet_count(netconf, family):
    dummy, subnet_len, smin, smax = family_conf(netconf, family)
    size = 1 << (family.bits - subnet_len)
    return (int(smax.network_address) - int(smin.network_address)) // size + 1


def _free_subnets(netconf, taken, family):
    """Free subnets of SubnetLen in [SubnetMin, SubnetMax] overlapping none of ``taken``, lowest first."""
    dummy, subnet_len, smin, smax = family_conf(netconf, family)
    size = 1 << (family.bits - subnet_len)
    cand = int(smin.network_address)
    last = int(smax.network_address)
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    index = 0
    while cand <= last:
        while index < len(spans) and spans[index][1] < cand:
            index += 1
        if index < len(spans) and spans[index][0] <= cand + size - 1:
            cand = (spans[index][1] + size) // size * size   # first boundary after the taken span
            continue
        yield family.net_cls((cand, subnet_len))
        cand += size


def _overlaps(subnet, taken):
    return any(subnet.overlaps(other) for other in taken)


def is_own(lease, addresses):
    """The lease of the node with these public ``addresses`` ({Family: address}): the same PublicIP
    or the same PublicIPv6."""
    return any(ip is not None and getattr(lease, fam.public_ip_key) == str(ip) for fam, ip in addresses.items())


def _lease_nets(lease):
    return dict((family, lease.network_of(family)) for family in FAMILIES)


def allocate(netconf, leases, claim, reserved=(), spread=1):
    """Pick the lease of the node that makes ``claim`` (a Claim: backend, VNI and, by family, its
    address, VTEP MAC and preferred subnet), following flanneld's acquire rules.

    1. a lease already holding one of its addresses (PublicIP or PublicIPv6) and compatible with the config
       (``lease_compatible``: every enabled family, no other) is kept (backend data updated);
       several such leases (a damaged store): the lowest subnet wins;
    2. else, for each family the config enables: the node's subnet of that family in a lease
       that is not kept (so switching IPv6 on or off keeps the IPv4 subnet), else the part's
       ``preferred`` subnet (subnet.env's), when compatible and free;
    3. else the lowest free compatible subnet (flanneld picks at random among the first 100
       free ones; lowest-first makes runs reproducible); with ``spread`` > 1 one at random among
       the first ``spread`` free ones (a store retrying after a lost race spreads the racers).

    ``leases``: valid leases of the store; ``reserved``: subnets (either family) that are taken
    by entries that could not be parsed. Leases of the node that are not kept are free for reuse
    (the caller removes them). IPv6-only configs (EnableIPv4 false) lease only ``subnet6``.
    Raises LeaseError "out of subnets" / "out of IPv6 subnets".
    """
    families = config_families(netconf)
    for family in families:
        if family not in claim.parts:
            raise LeaseError('the network has %s: the node needs %s' % (family.label, family.public_ip_key))
    addresses = node_ips(claim.addresses)
    what = 'node %s' % next(addresses[fam] for fam in FAMILIES if fam in addresses)
    mine = sorted((lease for lease in leases if is_own(lease, addresses)), key=lease_order)
    # a lease of another size or outside the network cannot be this config's: it blocks nothing
    taken = dict((family, []) for family in FAMILIES)
    for subnet in [net for lease in leases if not is_own(lease, addresses)
                   for net in _lease_nets(lease).values() if net is not None] + list(reserved):
        if fits(netconf, subnet):
            taken[_family(subnet)].append(subnet)

    def lease_of(subnets):
        return Lease.make(claim.backend_type, claim.vni, dict(
            (fam, LeasePart(subnets.get(fam), addresses[fam], part.vtep_mac)) for fam, part in claim.parts.items()), what)

    def free(subnet, family):
        return subnet is not None and compatible(netconf, subnet) and not _overlaps(subnet, taken[family])

    for lease in mine:
        nets = _lease_nets(lease)
        if lease_compatible(netconf, lease) and all(free(nets[family], family) for family in families):
            return lease_of(nets)
    chosen = {}
    for family in families:
        candidates = [_lease_nets(lease)[family] for lease in mine]
        preferred = claim.parts[family].preferred
        if preferred is not None:
            candidates.append(_subnet(preferred, 'preferred ' + family.subnet_key, family))
        chosen[family] = next((subnet for subnet in candidates if free(subnet, family)), None)
        if chosen[family] is None:
            spare = list(itertools.islice(_free_subnets(netconf, taken[family], family), max(1, int(spread))))
            if not spare:
                network, subnet_len, smin, smax = family_conf(netconf, family)
                raise LeaseError(
                    'out of %ssubnets: network %s has %d subnets of /%d between %s and %s and all are leased'
                    % (family.suffix and family.label + ' ', network, subnet_count(netconf, family), subnet_len,
                       smin, smax))
            chosen[family] = random.choice(spare)
    return lease_of(chosen)


def node_ips(addresses):
    """Canonical {Family: address} of a node's ``addresses`` (None ones left out); at least one
    is needed."""
    found = dict((fam, check_node_ip(str(ip), fam.public_ip_key, fam)) for fam, ip in addresses.items() if ip is not None)
    if not found:
        raise LeaseError('public_ip or public_ip6 is needed to find the node\'s lease')
    return found


def stale_leases(leases, lease, netconf=None, former_ips=()):
    """The leases of ``lease``'s node that it replaces (flannel deletes them). ``former_ips``: the
    node's addresses of a family its config no longer has (IPv4-only -> IPv6-only and back): a
    lease of one of them that cannot belong to ``netconf`` is the node's old lease too."""
    former = set(str(ip) for ip in former_ips or ())

    def formerly_own(old):
        return bool(former & {old.public_ip, old.public_ip6}) and netconf is not None and _misfit(netconf, old)
    mine = dict((fam, part.public_ip) for fam, part in lease.parts.items())
    return [old for old in leases if old.key != lease.key and (is_own(old, mine) or formerly_own(old))]


def _misfit(netconf, lease):
    """Why ``lease`` cannot belong to ``netconf`` (a family of the lease the config enables is not
    of its SubnetLen inside its Network), or None. Families the config does not enable are not
    looked at (a peer not yet run with the new config keeps the families both have)."""
    for family in FAMILIES:
        subnet, conf = lease.network_of(family), family_conf(netconf, family)
        if subnet is not None and conf is not None and not fits(netconf, subnet):
            return 'not a /%d inside network %s' % (conf[1], conf[0])
    if not any(family_conf(netconf, family) is not None for family in lease.families):
        return 'no subnet of the network\'s families (%s)' % ', '.join(f.label for f in config_families(netconf))
    return None


def split_peers(leases, addresses, netconf=None):
    """(own lease or None, other leases, warnings): the node's by its ``addresses`` ({Family:
    address}), the others' as they are, but leases that cannot belong to ``netconf``
    (outside its network, or not of its SubnetLen) are skipped with a warning, as flanneld does."""
    own, peers, warnings = None, [], []
    for lease in leases:
        why = None if netconf is None else _misfit(netconf, lease)
        if is_own(lease, addresses):
            own = own or lease
        elif why:
            subnets = ', '.join(subnet for subnet in (lease.subnet, lease.subnet6) if subnet is not None)
            node = ', '.join(ip for ip in (lease.public_ip, lease.public_ip6) if ip is not None)
            warnings.append('skipping lease %s of %s (store key %s): %s' % (subnets, node, lease.key, why))
        else:
            peers.append(lease)
    return own, peers, warnings


def families_compatible(netconf, lease):
    """Every family of ``lease`` that the config enables is compatible (check mode's guess that the
    peer keeps its lease)."""
    return all(compatible(netconf, subnet) for subnet in (lease.network, lease.network6)
               if subnet is not None and family_conf(netconf, _family(subnet)) is not None)
