"""ezctl add-node / del-node / reset-net / net status without root: checks, hosts file, argv."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ezctl import cli, nodes, status

REPO = Path(__file__).resolve().parents[2]

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
        self.rc = []   # the exit codes of the calls, in order (0 when exhausted)
        self.meanwhile = None   # what else happens while a playbook runs: f(argv)

    def __call__(self, argv, cwd):
        self.calls.append(list(argv))
        if self.meanwhile:
            self.meanwhile(argv)
        return self.rc.pop(0) if self.rc else 0


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
    # ansible-playbook's arguments: refused, naming the way to preview a join
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.4", "--", "--check", "--diff"],
                    runner=runner) == 1
    err = capsys.readouterr().err
    assert "add-node takes no ansible-playbook arguments (got --check --diff)" in err
    assert "playbooks/22.addnode.yml -e NODE_TO_ADD=192.168.1.4 --check --diff" in err
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


def test_a_host_var_with_a_newline_is_refused(base, capsys):
    """$'k8s_nodename=n5\\n' used to pass (a "$" matches before a final newline) and put the
    connection vars on a line of their own (issue 24, defect 10)."""
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.4", "k8s_nodename=n5\n"], runner=runner) == 1
    assert "KEY=VALUE without spaces or newlines" in capsys.readouterr().err
    assert cli.main(["--base", str(base), "add-node", "k1\n", "192.168.1.4"], runner=runner) == 1
    assert not runner.calls and (base / "clusters" / "k1" / "hosts").read_text() == HOSTS


def test_a_failed_add_node_is_rolled_back(base, capsys):
    """The join fails (rc 4: unreachable, or 2): 32.delnode.yml takes the node off again and the
    hosts file gets its old text back (issue 24, defect 7)."""
    runner = FakeRunner()
    runner.rc = [4, 0]
    assert cli.main(["--base", str(base), "add-node", "--lab-root", str(base / "none"), "k1", "192.168.1.4"],
                    runner=runner) == 4
    assert [call[5] for call in runner.calls] == ["playbooks/22.addnode.yml", "playbooks/32.delnode.yml"]
    assert runner.calls[1][-6:] == ["-e", "NODE_TO_DEL=192.168.1.4", "-e", "CLUSTER=k1", "-e", "FLANNEL_ROLLBACK=true"]
    assert (base / "clusters" / "k1" / "hosts").read_text() == HOSTS
    assert "rolled back" in capsys.readouterr().err


def test_a_rollback_takes_off_only_its_own_line(base, capsys):
    """Another add-node wrote its line while this one ran: the rollback removes this node's line
    only (it used to write back the whole text it read first)."""
    runner, hosts = FakeRunner(), base / "clusters" / "k1" / "hosts"

    def other_add_node(argv):
        if argv[5] == "playbooks/22.addnode.yml":
            hosts.write_text(nodes.add_host_line(hosts.read_text(), "192.168.1.9"))
    runner.meanwhile = other_add_node
    runner.rc = [2, 0]
    assert cli.main(["--base", str(base), "add-node", "--lab-root", str(base / "none"), "k1", "192.168.1.4"],
                    runner=runner) == 2
    assert hosts.read_text() == nodes.add_host_line(HOSTS, "192.168.1.9")


def test_add_node_refuses_cluster_settings_and_addresses_no_node_has(base, capsys):
    """A cluster setting as a host var of the new node would change every node (the role reads the
    config from the play's first host, the new node) or be ignored; refused before anything runs."""
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "add-node", "k1", "192.168.1.4", "FLANNEL_VNI=2", "k8s_nodename=w4"],
                    runner=runner) == 1
    err = capsys.readouterr().err
    assert "FLANNEL_VNI: a cluster setting, not a host var" in err and "config.yml" in err
    for ip in ("127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255"):
        assert cli.main(["--base", str(base), "add-node", "k1", ip], runner=runner) == 1
        assert "is not a node's address" in capsys.readouterr().err
    assert not runner.calls and (base / "clusters" / "k1" / "hosts").read_text() == HOSTS


def test_a_failed_rollback_keeps_the_line_and_says_what_to_do(base, capsys):
    runner = FakeRunner()
    runner.rc = [2, 2]
    assert cli.main(["--base", str(base), "add-node", "--lab-root", str(base / "none"), "k1", "192.168.1.4"],
                    runner=runner) == 1
    assert "192.168.1.4" in (base / "clusters" / "k1" / "hosts").read_text()
    assert "ezctl del-node k1 192.168.1.4" in capsys.readouterr().err


@pytest.mark.parametrize("hosts, ip, why", [
    (HOSTS.replace("[kube_node]\n", "[kube_node]\n192.168.1.1\n"), "192.168.1.1", "is also in [kube_master] and [etcd]"),
    ("[kube_master]\n[kube_node]\n192.168.1.3\n", "192.168.1.3", "is the cluster's last node"),
])
def test_del_node_of_a_master_or_the_last_node_is_refused(base, capsys, hosts, ip, why):
    (base / "clusters" / "k1" / "hosts").write_text(hosts)
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "del-node", "k1", ip], runner=runner) == 1
    err = capsys.readouterr().err
    assert why in err and "nothing was changed" in err and not runner.calls


def test_reset_net_nodes_that_match_nothing_are_refused(base, capsys):
    """--nodes nosuchnode used to run the playbook on no host and exit 0 (issue 24, defect 11)."""
    runner = FakeRunner()
    assert cli.main(["--base", str(base), "reset-net", "k1", "--nodes", "node7,nosuchnode"], runner=runner) == 1
    assert "nosuchnode matches no node or group" in capsys.readouterr().err and not runner.calls
    assert cli.main(["--base", str(base), "reset-net", "k1", "--nodes", "198.18.0.17,kube_master"], runner=runner) == 0
    assert runner.calls[0][-2:] == ["-e", "NODES_TO_RESET=node7,kube_master"]


def _ansible_replace(task: dict, node: str, text: str) -> str:
    """ansible.builtin.replace with after/before, as its module does it."""
    args = task["ansible.builtin.replace"]
    regexp = args["regexp"].replace("{{ NODE_TO_DEL | regex_escape }}", re.escape(node))
    match = re.search("%s(?P<subsection>.*?)%s" % (args["after"], args["before"]), text, re.DOTALL)
    assert match, "the section pattern does not match"
    section = re.sub(re.compile(regexp, re.MULTILINE), args["replace"], match.group("subsection"))
    return text[:match.start("subsection")] + section + text[match.end("subsection"):]


@pytest.mark.parametrize("text", [
    "[kube_master]\nm1\n\n[kube_node]\nm1\nn2 a=b\nn3\n",            # [kube_node] last
    "[kube_master]\nm1\n\n[kube_node]\nm1\nn2 a=b\nn3",              # no final newline
    "[kube_node]\nm1\nn2 a=b\nn3\n[harbor]\nn2\n",                    # a section follows at once
])
def test_delnode_removes_the_line_wherever_kube_node_is(text):
    """The playbook's replace used to need a section after [kube_node] (issue 24, defect 6)."""
    plays = yaml.safe_load((REPO / "playbooks" / "delnode.yml").read_text())
    task = next(t for t in plays[-1]["tasks"] if "ansible.builtin.replace" in t)
    after = _ansible_replace(task, "n2", text)
    kube_node = after.split("[kube_node]")[1].split("[harbor]")[0]
    assert "n2" not in kube_node and "m1" in kube_node and "n3" in kube_node
    assert after.endswith("[harbor]\nn2\n") == text.endswith("[harbor]\nn2\n")


def test_remove_host_line_only_in_its_group():
    text = nodes.remove_host_line(HOSTS, "192.168.1.1", group="kube_master")
    assert "[etcd]\n192.168.1.1\n" in text and "k8s_nodename='master-01'" not in text


LEASE = {"lease": {"subnet": "172.20.1.0/24", "public_ip": "10.0.0.1", "backend_type": "vxlan"},
         "public_ip": "10.0.0.1", "iface": "eth0"}
ROUTES = {"routes": [{"dst": "172.20.2.0/24", "gateway": "172.20.2.0", "dev": "flannel.1", "onlink": True},
                     {"dst": "172.20.3.0/24", "gateway": "10.0.0.3", "dev": "eth0", "onlink": False}], "drift": []}
STATUS = {
    "lease": LEASE,
    "addresses": [{"addr_info": [{"local": "10.0.0.1", "prefixlen": 24}]}],
    "guard": {"rc": 0, "changed": False},
    "results": {"ipv4": {"link": {"drift": []}, "routes": ROUTES, "rules": {"drift": []}}},
    "pruned": [],
}
DRIFT = {"what": "flannel.1",
         "stale": ["neigh 172.20.9.0 lladdr 0e:00:00:00:00:09 dev flannel.1 nud permanent"],
         "missing": ["neigh 172.20.3.0 lladdr 0e:00:00:00:00:03 dev flannel.1 nud permanent"]}


def status_records(drift=(), **changes):
    """The records of one node: a module task and the role's status task (the dict it hands over),
    ``drift`` the dataplane's link result's."""
    status = dict(STATUS, **changes)
    if drift:
        status["results"] = {"ipv4": dict(STATUS["results"]["ipv4"], link={"drift": list(drift)})}
    return [{"task": "Program the node's dataplane and keep it with the route guard", "action": "kubeasz.network.node_check",
             "status": "changed" if drift else "ok", "result": {}},
            {"task": "Report the node's status", "action": "ansible.builtin.set_fact", "status": "ok",
             "result": {"ansible_facts": {"flannel_status": status}}}]


def test_status_view_from_check_mode_records():
    view = status.cluster_view({"n1": status_records(drift=[DRIFT]), "n2": status_records()})
    n1, n2 = view["nodes"]
    assert view["drifted"] == ["n1"]
    assert n1["drift"][0]["stale"] == ["neigh 172.20.9.0 lladdr 0e:00:00:00:00:09 dev flannel.1 nud permanent"]
    assert n1["drift"][0]["missing"] == ["neigh 172.20.3.0 lladdr 0e:00:00:00:00:03 dev flannel.1 nud permanent"]
    assert n2["segment"] == "10.0.0.0/24" and n2["guard"] == "running" and not n2["drifted"]
    assert n2["paths"] == {"172.20.2.0/24": "vxlan", "172.20.3.0/24": "direct"}
    text = status.format_text("k1", view)
    assert "drifted: n1" in text and "+ neigh 172.20.3.0" in text


def test_status_names_a_changed_task_of_another_module_as_drift():
    """A file or the route guard's files that a run would change: the task itself is the drift."""
    records = status_records() + [{"task": "Write the routes the guard keeps", "action": "ansible.builtin.copy",
                                   "status": "changed", "result": {}}]
    view = status.cluster_view({"n1": records})
    assert view["drifted"] == ["n1"] and view["nodes"][0]["drift"] == [
        {"what": "Write the routes the guard keeps", "stale": [], "missing": []}]


def test_status_of_an_ipv6_only_node_shows_its_address_and_segment():
    """net status read only `ip -4 addr` and printed no public IP for IPv6-only (issue 24, defect 14)."""
    records = status_records(lease={
        "lease": {"subnet": None, "subnet6": "fd00:20:0:1::/64", "public_ip": None, "public_ip6": "fd53:18:0:1::11",
                  "backend_type": "vxlan"},
        "public_ip": None, "public_ip6": "fd53:18:0:1::11", "iface": "eth0"}, addresses=[{"addr_info": [
            {"family": "inet", "local": "198.18.0.11", "prefixlen": 24},
            {"family": "inet6", "local": "fd53:18:0:1::11", "prefixlen": 64}]}], results={}, guard={"skipped": True})
    view = status.cluster_view({"n1": records})
    assert view["nodes"][0]["segment"] == "fd53:18:0:1::/64"
    row = status.format_text("k1", view).splitlines()[2].split()
    assert row[:3] == ["n1", "fd53:18:0:1::11", "fd00:20:0:1::/64"]
    task = yaml.safe_load((REPO / "roles" / "flannel" / "tasks" / "status.yml").read_text())[0]
    assert "-4" not in task["ansible.builtin.command"]["argv"]


def test_status_shows_the_lease_task_warnings():
    """A corrupt lease in the store was skipped with a warning that net status hid (issue 24, unclear)."""
    records = status_records(lease=dict(LEASE, warnings=[
        "skipping lease 172.20.0.0/16 of 198.18.0.19 (store key 172.20.0.0-16): not a /24 inside network"]))
    text = status.format_text("k1", status.cluster_view({"n1": records}))
    assert "    warning: skipping lease 172.20.0.0/16 of 198.18.0.19" in text
