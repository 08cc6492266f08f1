"""playbooks/99.network-reset.yml on a lab in the real kernel: flannel leaves one node completely
(links, routes, rules, files, lease), the host's own links and routes stay, a rerun changes
nothing and a new 06 brings the node back."""
from __future__ import annotations

import json
import os

import pytest

from labplay import assert_ok, assert_unchanged, pods_ping, recap, run_06
from nodeplay import ezctl, ezctl_lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ezctl_lab("reset", tmp_path_factory.mktemp("base")) as made:
        yield made


def run_reset(cdir, *extra):
    return ezctl(cdir, "reset-net", cdir.name, *extra, check=False)


def flannel_traces(lab, node) -> list:
    """Everything flannel leaves on a node: links, owned routes, rules, files."""
    def out(*argv):
        return lab.exec(node, list(argv)).stdout
    found = [link["ifname"] for link in json.loads(out("ip", "-json", "link", "show"))
             if link["ifname"].startswith("flannel.") or link["ifname"] in ("cni0",)]
    found += [line for line in out("ip", "route", "show", "table", "all").splitlines()
              if "172.20." in line or "proto 159" in line]
    found += out("ip", "neigh", "show", "nud", "permanent").splitlines()
    found += [line for line in out("iptables-save").splitlines() if "FLANNEL" in line]
    found += out("sh", "-c", "find /run/flannel /etc/cni/net.d /var/lib/cni -mindepth 1 2>/dev/null; true").split()
    return found


def test_reset_takes_flannel_off_one_node_and_06_brings_it_back(cluster):
    lab, cdir = cluster
    assert_ok(run_06(cdir))
    leases = json.loads((cdir / "flannel-leases.json").read_text())["leases"]
    assert len(leases) == 3
    assert flannel_traces(lab, "node2")

    check = run_reset(cdir, "--nodes", "node2", "--", "--check")
    assert_ok(check)
    assert flannel_traces(lab, "node2")  # check mode changed nothing

    first = run_reset(cdir, "--nodes", "node2")
    assert_ok(first)
    assert set(recap(first)) <= {"node2", "localhost"}
    assert flannel_traces(lab, "node2") == []
    # the node's own link, address and default route stay
    assert "198.18.0.12/24" in lab.exec("node2", ["ip", "-br", "addr", "show", "eth0"]).stdout
    assert "default via 198.18.0.1 dev eth0" in lab.exec("node2", ["ip", "route"]).stdout
    assert not any(l["PublicIP"] == "198.18.0.12" for l in
                   (json.loads(v) if isinstance(v, str) else v for v in
                    json.loads((cdir / "flannel-leases.json").read_text())["leases"].values()))
    assert flannel_traces(lab, "node1")  # other nodes keep their dataplane

    assert_unchanged(run_reset(cdir, "--nodes", "node2"))

    assert_ok(run_06(cdir))
    pods_ping(lab)
