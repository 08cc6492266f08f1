"""The leases the role took are in etcd in flannel's own layout (molecule scenario etcd)."""
import ipaddress
import json
import os

from ezctl.lab import Lab

PREFIX = "/coreos.com/network"


def etcdctl(lab, *args):
    argv = ["etcdctl", "--endpoints", os.environ["KUBEASZ_ETCD"], *args]
    return lab.exec("node1", argv).stdout


def test_every_node_lease_is_a_flannel_key_bound_to_a_24h_etcd_lease():
    lab = Lab(os.environ["KUBEASZ_LAB"])
    kvs = json.loads(etcdctl(lab, "get", "--prefix", PREFIX + "/", "-w", "json"))["kvs"]
    import base64
    stored = {base64.b64decode(kv["key"]).decode(): (json.loads(base64.b64decode(kv["value"])), kv.get("lease", 0))
              for kv in kvs}
    assert stored[PREFIX + "/config"][0]["Network"] == "172.20.0.0/16"
    for node in lab.status()["nodes"]:
        env = dict(line.split("=", 1) for line in
                   lab.exec(node["name"], ["cat", "/run/flannel/subnet.env"]).stdout.splitlines())
        subnet = ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network
        value, lease = stored[f"{PREFIX}/subnets/{subnet.network_address}-{subnet.prefixlen}"]
        assert list(value) == ["PublicIP", "PublicIPv6", "BackendType", "BackendData"]
        assert value["PublicIP"] == node["ip"] and value["BackendType"] == "vxlan"
        ttl = etcdctl(lab, "lease", "timetolive", "%x" % lease)
        assert "granted with TTL(86400s)" in ttl
    assert len([k for k in stored if "/subnets/" in k]) == len(lab.status()["nodes"])
