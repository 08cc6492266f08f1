"""ezctl add-node / del-node / reset-net / net status without root: checks, hosts file, argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from ezctl import cli, nodes, status

HOSTS = """[etcd]
192.168.1.1

[kube_master]
192.168.1.1 k8s_nodename='master-01'

[kube_node]
192.168.1.3 k8s_nodename='worker-01'
node7 ansible_host=node7 kubeasz_node_ip=198.18.0.17

[harbor]

[all:vars]
CLUSTER_NETWORK="flannel"
"""


class FakeRunner:
    def __init__(self):
        self.calls = []

    def __call__(self, argv, cwd):
        self.calls.append(list(argv))
        return 0


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    for name in ("22.addnode.yml", "32.delnode.yml", "99.network-reset.yml", "net_status.yml"):
        (tmp_path / "playbooks" / name).write_text("---\n")
    cdir = tmp_path / "clusters" / "k1"
    cdir.mkdir(parents=True)
    (cdir / "hosts").write_text(HOSTS)
    (cdir / "config.yml").write_text("FLANNEL_DATAPLANE: ansible\n")
    return tmp_path


def test_add_node_checks_and_writes_the_line_first_in_kube_node(base, tmp_path, capsys):
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.300"], runner=runner) == 1
    assert "invalid IP address '192.168.1.300'" in capsys.readouterr().err
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.3"], runner=runner) == 1
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.4", "bad var"], runner=runner) == 1
    assert not runner.calls
    assert cli.main(["--base", str(base), "add-node", "--lab-root", str(tmp_path / "none"), "k1", "192.168.1.4",
                     "k8s_nodename=worker-02"], runner=runner) == 0
    hosts = (base / "clusters" / "k1" / "hosts").read_text()
    assert "[kube_node]\n192.168.1.4 k8s_nodename=worker-02\n192.168.1.3" in hosts
    assert runner.calls[0][-3:] == ["playbooks/22.addnode.yml", "-e", "NODE_TO_ADD=192.168.1.4"]


def test_del_node_needs_the_node_in_kube_node(base, capsys):
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "del-node", "k1", "192.168.1.1"], runner=runner) == 1
    assert "not in [kube_node]" in capsys.readouterr().err
    assert cli.main(["--base", str(base), "del-node", "k1", "198.18.0.17"], runner=runner) == 0
    assert runner.calls[0][-4:] == ["-e", "NODE_TO_DEL=node7", "-e", "CLUSTER=k1"]


def test_reset_net_nodes_and_extra_args(base, capsys):
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "reset-net", "k1", "--nodes", "node7,192.168.1.3", "--", "--check"],
                    runner=runner) == 0
    assert runner.calls[0][-4:] == ["playbooks/99.network-reset.yml", "-e",
                                    "NODES_TO_RESET=node7,192.168.1.3", "--check"]
    assert cli.main(["--base", str(base), "reset-net", "k1", "--nodes", "a b"], runner=runner) == 1
    assert "--nodes" in capsys.readouterr().err


def test_remove_host_line_only_in_its_group():
    text = nodes.remove_host_line(HOSTS, "192.168.1.1", group="kube_master")
    assert "[etcd]\n192.168.1.1\n" in text and "k8s_nodename='master-01'" not in text


RECORDS = [
    {"task": "Acquire the node's subnet lease and write subnet.env and the CNI config", "status": "ok", "result": {
        "lease": {"subnet": "172.20.1.0/24", "public_ip": "10.0.0.1", "backend_type": "vxlan"},
        "public_ip": "10.0.0.1", "iface": "eth0"}},
    {"task": "Program the VXLAN device and its peer entries", "status": "changed", "result": {"diff": [
        {"before": "neigh 172.20.2.0 lladdr 0e:00:00:00:00:02 dev flannel.1 nud permanent\n"
                   "neigh 172.20.9.0 lladdr 0e:00:00:00:00:09 dev flannel.1 nud permanent\n",
         "after": "neigh 172.20.2.0 lladdr 0e:00:00:00:00:02 dev flannel.1 nud permanent\n"
                  "neigh 172.20.3.0 lladdr 0e:00:00:00:00:03 dev flannel.1 nud permanent\n"}]}},
    {"task": "Program the routes to the peers' subnets", "status": "ok", "result": {
        "routes": ["172.20.2.0/24 via 172.20.2.0 dev flannel.1 onlink", "172.20.3.0/24 via 10.0.0.3 dev eth0"]}},
    {"task": "Read the underlay interface's addresses", "status": "ok", "result": {
        "stdout": '[{"addr_info": [{"local": "10.0.0.1", "prefixlen": 24}]}]'}},
    {"task": "Ask the route guard process whether it runs", "status": "ok", "result": {"rc": 0}},
]


def test_status_view_from_check_mode_records():
    view = status.cluster_view({"n1": RECORDS, "n2": RECORDS[:1] + RECORDS[2:]})
    n1, n2 = view["nodes"]
    assert view["drifted"] == ["n1"]
    assert n1["drift"][0]["stale"] == ["neigh 172.20.9.0 lladdr 0e:00:00:00:00:09 dev flannel.1 nud permanent"]
    assert n1["drift"][0]["missing"] == ["neigh 172.20.3.0 lladdr 0e:00:00:00:00:03 dev flannel.1 nud permanent"]
    assert n2["segment"] == "10.0.0.0/24" and n2["guard"] == "running" and not n2["drifted"]
    assert n2["paths"] == {"172.20.2.0/24": "vxlan", "172.20.3.0/24": "direct"}
    text = status.format_text("k1", view)
    assert "drifted: n1" in text and "+ neigh 172.20.3.0" in text
