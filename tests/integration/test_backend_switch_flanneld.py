"""Backend switch with FLANNEL_DATAPLANE=flanneld: the cleanup flanneld does not do (issue 6).

No API server can run here, so `kubectl` is fakebin's stand-in, whose cluster already holds the
manifest (`kubectl diff` finds no difference), and flanneld's leftovers are made by hand on lab nodes: the
`flannel.1` device with a neighbour, an FDB entry and a route through it, as flanneld's vxlan
backend leaves them. After the per-node wait (`subnet.env` is there) the role must remove what the
new backend does not use, with the modules, and nothing else.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import fakebin
from ezctl.lab import Lab
from labplay import assert_ok, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-fd-{os.getpid()}")
    try:
        lab.up(nodes=2, segments=1)
        tmp = tmp_path_factory.mktemp("flanneld")
        cdir = lab.write_cluster(tmp / "base", lab.name)
        (cdir / "kubectl.kubeconfig").write_text("# the cluster's kubeconfig\n", encoding="utf-8")
        fakebin.install(tmp / "base" / "bin", "kubectl")  # {{ base_dir }}/bin/kubectl on the deploy host
        (tmp / "base" / "bin" / "diff.rc").write_text("0", encoding="utf-8")
        for node in ("node1", "node2"):
            lab.exec(node, ["sh", "-c", "printf 'FLANNEL_NETWORK=172.20.0.0/16\\nFLANNEL_SUBNET=172.20.%s.1/24\\n"
                            "FLANNEL_MTU=1450\\nFLANNEL_IPMASQ=true\\n' > /run/flannel/subnet.env" % node[-1]])
        yield lab, cdir, tmp
    finally:
        lab.down()


def run_flanneld_06(cdir: Path, tmp: Path, **config):
    proc = run_06(cdir, FLANNEL_DATAPLANE="flanneld", flannel_ready_timeout=10, **config)
    assert_ok(proc)
    return proc


def leave_vxlan(lab: Lab, node: str, vni: int) -> None:
    """What flanneld's vxlan backend leaves on a node: flannel.<vni> with one peer's entries and route."""
    dev = f"flannel.{vni}"
    for argv in (["ip", "link", "add", dev, "type", "vxlan", "id", str(vni), "dev", "eth0", "dstport", "8472",
                  "nolearning"],
                 ["ip", "link", "set", dev, "up"],
                 ["ip", "neigh", "replace", "172.20.9.0", "lladdr", "0e:00:00:00:00:09", "dev", dev, "nud", "permanent"],
                 ["bridge", "fdb", "replace", "0e:00:00:00:00:09", "dev", dev, "dst", "198.18.0.99", "self", "permanent"],
                 ["ip", "route", "replace", "172.20.9.0/24", "via", "172.20.9.0", "dev", dev, "onlink"]):
        lab.exec(node, argv)


def vxlan_links(lab: Lab, node: str) -> dict:
    out = lab.exec(node, ["ip", "-br", "link", "show", "type", "vxlan"]).stdout
    return {line.split()[0].split("@")[0]: line.split()[2] for line in out.splitlines()}


def test_switch_to_host_gw_removes_flannel_device(cluster):
    lab, cdir, tmp = cluster
    for node in ("node1", "node2"):
        leave_vxlan(lab, node, 1)
        lab.exec(node, ["ip", "link", "add", "vxlan9", "type", "vxlan", "id", "9", "dev", "eth0", "dstport", "4789"])
    proc = run_flanneld_06(cdir, tmp, FLANNEL_BACKEND="host-gw")
    assert "Remove the VXLAN devices flanneld left behind" in proc.stdout
    for node in ("node1", "node2"):
        assert set(vxlan_links(lab, node)) == {"vxlan9"}  # the operator's own device stays
        assert "172.20.9.0" not in lab.exec(node, ["ip", "route", "show"]).stdout


def test_vni_change_removes_only_the_old_device(cluster):
    lab, cdir, tmp = cluster
    for node in ("node1", "node2"):
        leave_vxlan(lab, node, 1)
        leave_vxlan(lab, node, 2)
    macs = {node: vxlan_links(lab, node)["flannel.2"] for node in ("node1", "node2")}
    run_flanneld_06(cdir, tmp, FLANNEL_VNI=2)
    for node in ("node1", "node2"):
        links = vxlan_links(lab, node)
        assert set(links) == {"flannel.2", "vxlan9"} and links["flannel.2"] == macs[node]  # flanneld's, untouched
        assert "dev flannel.2" in lab.exec(node, ["ip", "route", "show"]).stdout
    again = run_flanneld_06(cdir, tmp, FLANNEL_VNI=2)
    assert "changed: [" not in again.stdout.split("Remove the VXLAN devices flanneld left behind")[1].split("TASK")[0]
