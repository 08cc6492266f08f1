"""Verify a lab cluster networked by the flannel role, against FLANNEL.md."""
import ipaddress

import labcheck
from ezctl import reach


def test_subnet_env_file(host):
    env = host.file("/run/flannel/subnet.env")
    assert env.is_file and env.mode == 0o644 and env.user == "root"
    assert host.file("/run/flannel").mode == 0o755
    keys = [line.split("=", 1)[0] for line in env.content_string.splitlines()]
    assert keys == ["FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"]


def test_subnets_unique_inside_cluster_cidr(views):
    subnets = [view.subnet for view in views]
    assert len(set(subnets)) == len(subnets)
    for view in views:
        assert view.subnet.subnet_of(ipaddress.ip_network("172.20.0.0/16"))
        assert view.subnet.prefixlen == 24


def test_flannel_device(host, backend, views):
    name = host.backend.target
    view = next(v for v in views if v.name == name)
    if backend[0] != "vxlan":
        assert not host.interface("flannel.1").exists
        assert view.mtu == 1500
        return
    link = host.interface("flannel.1")
    assert link.exists
    assert [a for a in link.addresses if ":" not in a] == [str(view.subnet.network_address)]
    details = labcheck.vxlan_details(host.run("ip -d -json link show flannel.1").stdout)
    assert details == {"id": 1, "local": view.public_ip, "link": "eth0", "port": 8472,
                       "learning": False, "ttl": 0, "mtu": 1450, "mac": view.vtep_mac}
    assert view.mtu == 1450


def test_tables_match_flannel(views, backend):
    assert labcheck.table_mismatches(views, *backend) == []


def test_every_pod_pings_every_pod(lab, pods):
    matrix = reach.ping_matrix(lambda src, ip: reach.ping(lab, src, ip), pods)
    assert all(matrix.values()), reach.format_matrix(matrix, list(pods))


def test_traceroute_hops(lab, pods, views, backend):
    by_name = {v.name: v for v in views}
    src, dst = "node2", "node1"
    hops = reach.traceroute(lab, f"{src}/pod-{src}", pods[f"{dst}/pod-{dst}"])
    assert hops == labcheck.expected_hops(by_name[src], by_name[dst], pods[f"{dst}/pod-{dst}"], *backend)


def test_every_pod_reaches_the_outside(lab, pods):
    """The fabric has no route to the pods: only the node's masquerade brings the reply back."""
    assert [p for p in pods if not reach.ping(lab, p, "198.18.0.1")] == []
