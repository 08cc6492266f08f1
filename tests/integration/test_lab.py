"""The namespace lab (ezctl.lab): needs root; never touches the host's network namespace."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time

import pytest

from ezctl.lab import Lab
from ezctl.labsys import LabError, mounts

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

_seq = itertools.count()

CONFLIST = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "mtu": 1450, "isGateway": True,
         "isDefaultGateway": True, "hairpinMode": True, "ipMasq": False,
         "ipam": {"type": "host-local", "subnet": "172.20.1.0/24",
                  "routes": [{"dst": "172.20.0.0/16"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


def unique_name(tag: str) -> str:
    return f"it-{tag}-{os.getpid()}-{next(_seq)}"


def host_netns() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout.split()


def assert_gone(lab: Lab) -> None:
    prefix = str(lab.dir)
    assert not [m for m in mounts() if m == prefix or m.startswith(prefix + "/")]
    assert not lab.dir.exists()
    assert host_netns() == []


@pytest.fixture
def make_lab():
    """Factory of labs with unique names; every lab made is downed, whatever happens."""
    labs = []

    def make(tag="lab"):
        lab = Lab(unique_name(tag))
        labs.append(lab)
        return lab
    yield make
    for lab in labs:
        lab.down()
        assert_gone(lab)


@pytest.fixture(scope="module")
def lab2():
    """Three nodes, two segments: node1, node2 on 198.18.0.0/24, node3 on 198.18.1.0/24."""
    lab = Lab(unique_name("seg"))
    try:
        lab.up(nodes=3, segments=2)
        yield lab
    finally:
        lab.down()
        assert_gone(lab)


def links(lab, node):
    return sorted(x["ifname"] for x in json.loads(
        lab.exec(node, ["ip", "-json", "link", "show"]).stdout))


def test_state_and_addressing(lab2):
    state = lab2.load_state()
    assert state["segments"] == 2
    assert [(n["name"], n["ip"], n["segment"]) for n in state["nodes"]] == [
        ("node1", "198.18.0.11", 1), ("node2", "198.18.0.12", 1), ("node3", "198.18.1.13", 2)]
    route = lab2.exec("node3", ["ip", "route", "show", "default"]).stdout
    assert "via 198.18.1.1 dev eth0" in route
    assert links(lab2, "fabric") == ["lo", "node1", "node2", "node3", "seg1", "seg2"]
    assert lab2.status()["up"] is True


def test_up_twice_is_harmless(lab2):
    before = {n: links(lab2, n) for n in ("fabric", "node1", "node3")}
    addrs = lab2.exec("node1", ["ip", "-br", "addr", "show", "eth0"]).stdout
    again = lab2.up(nodes=3, segments=2)
    assert [n["ip"] for n in again["nodes"]] == ["198.18.0.11", "198.18.0.12", "198.18.1.13"]
    assert {n: links(lab2, n) for n in before} == before
    assert lab2.exec("node1", ["ip", "-br", "addr", "show", "eth0"]).stdout == addrs
    with pytest.raises(LabError, match="lab down"):
        lab2.up(nodes=5, segments=2)


def test_hostnames(lab2):
    for node in ("node1", "node2", "node3"):
        assert lab2.exec(node, ["hostname"]).stdout.strip() == node
    assert os.uname().nodename not in ("node1", "node2", "node3")


def test_sysfs_is_the_nodes(lab2):
    assert sorted(lab2.exec("node2", ["ls", "/sys/class/net"]).stdout.split()) == ["eth0", "lo"]


def test_ping_same_segment(lab2):
    out = lab2.exec("node1", ["ping", "-c", "1", "-W", "2", "198.18.0.12"]).stdout
    assert "ttl=64" in out


def test_ping_routed_segment(lab2):
    out = lab2.exec("node1", ["ping", "-c", "1", "-W", "2", "198.18.1.13"]).stdout
    assert "ttl=63" in out  # one hop through the fabric


def test_private_run_flannel(lab2):
    marker = f"/run/flannel/marker-{os.getpid()}"
    lab2.exec("node1", ["/bin/sh", "-c", f"echo node1 > {marker}"])
    assert lab2.exec("node1", ["cat", marker]).stdout == "node1\n"
    assert lab2.exec("node2", ["test", "-e", marker], check=False).returncode == 1
    assert not os.path.exists(marker)
    for path in ("/etc/cni/net.d", "/var/lib/cni", "/run/netns"):
        fstype = lab2.exec("node2", ["stat", "-f", "-c", "%T", path]).stdout.strip()
        assert fstype == "tmpfs", path


def test_exec_errors(lab2):
    with pytest.raises(LabError, match="lab node node9 not found"):
        lab2.exec("node9", ["true"])
    assert lab2.exec("node1", ["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(LabError, match="exit code 3"):
        lab2.exec("node1", ["sh", "-c", "exit 3"])


def test_pod_needs_conflist(lab2):
    with pytest.raises(LabError, match="10-flannel.conflist is missing"):
        lab2.pod_add("node2", "p0")
    assert lab2.exec("node2", ["ip", "netns", "list"]).stdout == ""


def test_pod_add_del(lab2):
    lab2.exec("node1", ["/bin/sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
              input=json.dumps(CONFLIST))
    ip1 = lab2.pod_add("node1", "web")
    ip2 = lab2.pod_add("node1", "db")
    assert ip1.startswith("172.20.1.") and ip2.startswith("172.20.1.") and ip1 != ip2
    assert host_netns() == []  # pods live in the node's private /run/netns
    gateway_ping = lab2.exec("node1/web", ["ping", "-c", "1", "-W", "2", "172.20.1.1"])
    assert "ttl=64" in gateway_ping.stdout
    assert lab2.exec("node1/web", ["ping", "-c", "1", "-W", "2", ip2]).returncode == 0
    assert "default via 172.20.1.1" in lab2.exec("node1/web", ["ip", "route"]).stdout
    assert lab2.load_state()["pods"]["node1"]["web"]["ip"] == ip1
    with pytest.raises(LabError, match="already exists"):
        lab2.pod_add("node1", "web")
    lab2.pod_del("node1", "web")
    assert lab2.exec("node1", ["ip", "netns", "list"]).stdout.split()[0] == "db"
    leases = lab2.exec("node1", ["ls", "/var/lib/cni/networks/cbr0"]).stdout.split()
    assert ip1 not in leases and ip2 in leases  # host-local released the IP
    assert "web" not in lab2.load_state()["pods"]["node1"]
    with pytest.raises(LabError, match="not found"):
        lab2.pod_del("node1", "web")


def test_write_cluster(lab2, tmp_path):
    cdir = lab2.write_cluster(tmp_path, "demo")
    hosts = (cdir / "hosts").read_text()
    assert "[kube_node]" in hosts and 'CLUSTER_NETWORK="flannel"' in hosts
    assert f"node3 ansible_connection=kubeasz.network.netns ansible_host=node3 " \
           f"kubeasz_lab_dir={lab2.dir}" in hosts
    assert f'cluster_dir="{cdir}"' in hosts
    assert "FLANNEL_DATAPLANE: ansible" in (cdir / "config.yml").read_text()
    (cdir / "config.yml").write_text("FLANNEL_BACKEND: host-gw\n")
    lab2.write_cluster(tmp_path, "demo")
    assert (cdir / "config.yml").read_text() == "FLANNEL_BACKEND: host-gw\n"


def test_down_removes_everything(make_lab):
    lab = make_lab("down")
    lab.up(nodes=2)
    lab.exec("node1", ["/bin/sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
             input=json.dumps(CONFLIST))
    lab.pod_add("node1", "p1")
    sleepers = [subprocess.Popen(lab.nsenter_argv("node2") + ["sleep", "600"]),
                subprocess.Popen(lab.nsenter_argv("node1")
                                 + ["ip", "netns", "exec", "p1", "sleep", "600"])]
    time.sleep(0.2)
    lab.down()
    for proc in sleepers:
        assert proc.wait(timeout=5) != 0  # killed
    assert_gone(lab)
    lab.down()  # twice is harmless
    assert lab.status()["up"] is False


def test_down_after_half_failed_up(make_lab):
    lab = make_lab("half")
    lab.up(nodes=1)
    # simulate an up that died midway: a node with only some namespace files
    (lab.dir / "lab.json").unlink()
    (lab.dir / "node7.net").touch()
    subprocess.run(["unshare", f"--net={lab.dir / 'node7.net'}", "true"], check=True)
    (lab.dir / "node7.mnt").touch()
    assert lab.status()["up"] is False
    lab.down()
    assert_gone(lab)


def test_down_of_bare_mount(make_lab):
    lab = make_lab("bare")
    lab.dir.mkdir(parents=True)
    subprocess.run(["mount", "--bind", lab.dir, lab.dir], check=True)
    subprocess.run(["mount", "--bind", lab.dir, lab.dir], check=True)  # stacked twice
    lab.down()
    assert_gone(lab)


def test_nodes_hold_no_lab_mounts(lab2, make_lab):
    other = make_lab("other")
    other.up(nodes=1)  # made while lab2 is up: must not copy lab2's namespace files
    for lab, node in ((lab2, "node1"), (other, "node1")):
        inside = lab.exec(node, ["cat", "/proc/self/mounts"]).stdout
        assert str(lab.root) + "/" not in inside


def test_testinfra_backend(lab2):
    import testinfra

    import testinfra_netns
    testinfra_netns.register()
    testinfra_netns.register()  # idempotent
    host = testinfra.get_host(f"netns://{lab2.name}/node3")
    assert host.check_output("hostname") == "node3"
    assert "198.18.1.13" in host.interface("eth0").addresses
    assert host.file("/run/flannel").is_directory
    assert host.run("exit 4").rc == 4
    absolute = testinfra.get_host(f"netns://{lab2.dir}/node2")
    assert absolute.check_output("hostname") == "node2"
    assert testinfra.get_host("local://").check_output("echo ok") == "ok"
