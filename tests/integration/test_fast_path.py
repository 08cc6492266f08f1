"""Step 06's fast path on a real lab: a rerun that finds every node in plan runs no module task,
and one planted difference of each kind is repaired: in the dataplane alone (device, entries,
routes, rules, the route guard's state) by node_check's own call on that node, anything else (a
file, the route guard's files or process, a lease in the store) by the full path on the right
nodes. Check mode shows the same, in the same task, and changes nothing.

One 3-node lab for the whole file (ansible dataplane, file store). The route guard is off for the
dataplane kinds (it would put a deleted route or rule back before the run sees it) and on for its
own kinds at the end."""
from __future__ import annotations

import json
import re

import pytest

from labplay import assert_ok, lab_cluster, recap, run_06

NODES = ("node1", "node2", "node3")
CONFIG = {"FLANNEL_ROUTE_GUARD": False}


def full_path(proc) -> set:
    """The hosts that took the full path (converge.yml included for them)."""
    hosts = set()
    for names in re.findall(r"^included: \S+/converge\.yml for (.+)$", proc.stdout, re.M):
        hosts.update(name.strip() for name in names.split(","))
    return hosts


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with lab_cluster("fast", tmp_path_factory.mktemp("fast"), nodes=3) as (lab, cdir):
        assert_ok(run_06(cdir, **CONFIG))
        yield lab, cdir


def sh(lab, node, script):
    return lab.exec(node, ["sh", "-c", script]).stdout


def rerun(cdir, *extra, **config):
    proc = run_06(cdir, *extra, **{**CONFIG, **config})
    assert_ok(proc)
    return proc


def assert_fast(cdir, **config):
    proc = rerun(cdir, **config)
    assert full_path(proc) == set(), proc.stdout
    assert all(c["changed"] == 0 for c in recap(proc).values()), proc.stdout
    assert "Program the node's dataplane" not in proc.stdout


def test_a_rerun_takes_the_fast_path(cluster):
    lab, cdir = cluster
    assert_fast(cdir)


def first_neighbour(lab, node):
    neigh = json.loads(sh(lab, node, "ip -json neigh show dev flannel.1"))
    return neigh[0]["dst"], neigh[0]["lladdr"]


# each kind: (what, a shell script planted in node1)
DATAPLANE_KINDS = [
    ("device mtu", "ip link set flannel.1 mtu 1300"),
    ("device gone", "ip link del flannel.1"),
    ("device address", "ip addr flush dev flannel.1"),
    ("neighbour entry", "ip neigh del {neigh_ip} dev flannel.1"),
    ("fdb entry", "bridge fdb del {neigh_mac} dev flannel.1"),
    ("route to a peer", "ip route del {peer_subnet}"),
    ("stale route of flannel's", "ip route add 172.20.250.0/24 via 172.20.250.0 dev flannel.1 onlink proto 159"),
    ("masquerade rules", "iptables -t nat -F FLANNEL-POSTRTG"),
    ("forward rules", "iptables -t filter -F FLANNEL-FWD"),
]
FILE_KINDS = [
    ("subnet.env", "sed -i 's/FLANNEL_MTU=.*/FLANNEL_MTU=1000/' /run/flannel/subnet.env"),
    ("CNI config", "echo '{{}}' > /etc/cni/net.d/10-flannel.conflist"),
    ("kubeasz's default CNI config", "mkdir -p /etc/cni/net.d && echo '{{}}' > /etc/cni/net.d/10-default.conf"),
]
NODE_CHECK = "kubeasz.network.flannel : Look at the node and bring its dataplane to plan"
STATE = "ip -json link show dev flannel.1; ip route; iptables-save; cat /run/flannel/subnet.env"
NOISE = re.compile(r"^#.*$|\[\d+:\d+\]|\"ifindex\":\d+,|\"link_index\":\d+,", re.M)


def plant(lab, script):
    neigh_ip, neigh_mac = first_neighbour(lab, "node1")
    peer_subnet = re.search(r"^(172\.20\.\d+\.0/24) via", sh(lab, "node1", "ip route"), re.M).group(1)
    sh(lab, "node1", script.format(neigh_ip=neigh_ip, neigh_mac=neigh_mac, peer_subnet=peer_subnet))


def changed_tasks(proc, host) -> set:
    """The tasks that reported changed on ``host``."""
    tasks, out = None, set()
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            tasks = line[6:line.rindex("]")]
        elif line.startswith("changed: [%s]" % host) or line.startswith("changed: [%s " % host):
            out.add(tasks)
    return out


def planted_rerun(lab, cdir, what, script):
    """Plant ``script`` in node1 and run 06: node1 is restored and the other nodes are left as they
    were; the run."""
    before = sh(lab, "node1", STATE)
    plant(lab, script)
    proc = rerun(cdir)
    assert all(recap(proc)[n]["changed"] == 0 for n in NODES[1:]), proc.stdout
    assert NOISE.sub("", sh(lab, "node1", STATE)) == NOISE.sub("", before), what
    return proc


@pytest.mark.parametrize("what,script", DATAPLANE_KINDS, ids=[k[0] for k in DATAPLANE_KINDS])
def test_a_dataplane_difference_is_repaired_by_the_look_at_the_node(cluster, what, script):
    lab, cdir = cluster
    proc = planted_rerun(lab, cdir, what, script)
    assert full_path(proc) == set(), (what, proc.stdout)
    assert changed_tasks(proc, "node1") == {NODE_CHECK}, (what, proc.stdout)


@pytest.mark.parametrize("what,script", FILE_KINDS, ids=[k[0] for k in FILE_KINDS])
def test_a_file_difference_takes_the_full_path_there(cluster, what, script):
    lab, cdir = cluster
    proc = planted_rerun(lab, cdir, what, script)
    assert full_path(proc) == {"node1"}, (what, proc.stdout)
    assert recap(proc)["node1"]["changed"] >= 1 and NODE_CHECK not in changed_tasks(proc, "node1"), proc.stdout


def test_check_mode_shows_a_difference_and_changes_nothing(cluster):
    lab, cdir = cluster
    sh(lab, "node2", "ip link set flannel.1 mtu 1300; echo '{}' > /etc/cni/net.d/10-flannel.conflist")
    sh(lab, "node3", "ip link set flannel.1 mtu 1300")
    check = rerun(cdir, "--check", "--diff")
    # node3: its dataplane alone, shown by the look at the node; node2: the full path
    assert full_path(check) == {"node2"} and changed_tasks(check, "node3") == {NODE_CHECK}, check.stdout
    assert "mtu 1300" in sh(lab, "node3", "ip link show dev flannel.1")
    assert "mtu 1300" in sh(lab, "node2", "ip link show dev flannel.1")
    real = rerun(cdir, "--diff")
    assert full_path(real) == {"node2"}, real.stdout
    for host in ("node2", "node3"):
        assert changed_tasks(real, host) == changed_tasks(check, host), (host, check.stdout, real.stdout)
    assert "mtu 1300" not in sh(lab, "node3", "ip link show dev flannel.1")
    assert_fast(cdir)


def lease_file(cdir):
    return cdir / "flannel-leases.json"


def test_a_changed_peer_lease_takes_the_full_path_everywhere(cluster):
    """node3's lease in the store names another VtepMAC: node3 takes its lease back, and every
    node plans with it again."""
    lab, cdir = cluster
    doc = json.loads(lease_file(cdir).read_text())
    key = next(k for k, v in doc["leases"].items() if v.get("PublicIP") == lab.status()["nodes"][2]["ip"])
    doc["leases"][key]["BackendData"]["VtepMAC"] = "02:00:00:00:00:01"
    lease_file(cdir).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    proc = rerun(cdir)
    assert full_path(proc) == set(NODES), proc.stdout
    assert recap(proc)["node3"]["changed"] >= 1
    assert_fast(cdir)


def test_a_lost_lease_takes_the_full_path_everywhere(cluster):
    lab, cdir = cluster
    doc = json.loads(lease_file(cdir).read_text())
    key = next(k for k, v in doc["leases"].items() if v.get("PublicIP") == lab.status()["nodes"][1]["ip"])
    del doc["leases"][key]
    lease_file(cdir).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    proc = rerun(cdir)
    assert full_path(proc) == set(NODES), proc.stdout
    assert key in lease_file(cdir).read_text()   # the same subnet comes back (subnet.env names it)
    assert_fast(cdir)


def test_a_config_change_of_the_dataplane_is_made_by_the_look_at_the_node(cluster):
    """DIRECT_ROUTING toggled: no lease changes, every node's dataplane does, in one call each."""
    lab, cdir = cluster
    proc = rerun(cdir, DIRECT_ROUTING=True)
    assert full_path(proc) == set(), proc.stdout
    assert all(changed_tasks(proc, n) == {NODE_CHECK} for n in NODES), proc.stdout
    assert " via 198.18.0." in sh(lab, "node1", "ip route")   # a direct route to a peer
    assert_fast(cdir, DIRECT_ROUTING=True)
    proc = rerun(cdir)
    assert all(changed_tasks(proc, n) == {NODE_CHECK} for n in NODES), proc.stdout


GUARD_KINDS = [
    # (what, script in node1, whether it takes the full path)
    ("state file", "echo '{}' > /run/flannel/routes.json", False),
    ("process", "kill $(cat /run/flannel/route-guard.pid)", True),
    ("script", "echo '# edited' >> /run/flannel/route-guard/flannel-route-guard", True),
]


def test_the_route_guard_is_checked_too(cluster):
    lab, cdir = cluster
    proc = rerun(cdir, FLANNEL_ROUTE_GUARD=True)
    assert full_path(proc) == set(NODES), proc.stdout
    assert_fast(cdir, FLANNEL_ROUTE_GUARD=True)
    for what, script, full in GUARD_KINDS:
        sh(lab, "node1", script)
        proc = rerun(cdir, FLANNEL_ROUTE_GUARD=True)
        assert full_path(proc) == ({"node1"} if full else set()), (what, proc.stdout)
        assert recap(proc)["node1"]["changed"] >= 1, (what, proc.stdout)
    assert_fast(cdir, FLANNEL_ROUTE_GUARD=True)
