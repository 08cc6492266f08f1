"""FLANNEL_DATAPLANE=flanneld up to the API call, and the node-side waits, on a lab of namespace nodes.

No API server or container runtime runs here: kubectl on the deploy host (`{{ base_dir }}/bin/kubectl`,
with the cluster folder's kubectl.kubeconfig, as kubeasz runs it) and ctr/docker on the nodes
(`{{ bin_dir }}`, a temp dir the nodes see) are the stand-ins of fakebin.py, which keep the cluster's
objects and each node's images. The per-node waits run against real lab nodes: a node with a
matching subnet.env (and flannel.1 with FLANNEL_MTU), one whose subnet.env holds another network,
one without.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import fakebin
from ezctl import nodes
from ezctl.lab import Lab
from labplay import assert_ok, assert_unchanged, recap, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

CHECKSUM = re.compile(r"kubeasz\.network/config-checksum: \"?([0-9a-f]+)")
# the images of kubeasz 3.7: saved by ezdown under their ghcr.io names, named by the manifest
# after its local registry
SAVED_AS = ["ghcr.io/flannel-io/flannel:v0.28.9", "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3"]
MANIFEST_IMAGES = ["easzlab.io.local:5000/flannel/flannel:v0.28.9",
                   "easzlab.io.local:5000/flannel/flannel-cni-plugin:v1.9.1-flannel3"]
UPSTREAM_OBJECTS = ["kube-flannel/daemonset.apps/kube-flannel-ds", "kube-flannel/configmap/kube-flannel-cfg",
                    "kube-flannel/serviceaccount/flannel", "/namespace/kube-flannel"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-fld-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=1)
        base = tmp_path_factory.mktemp("base")
        cdir = lab.write_cluster(base, lab.name)
        (cdir / "kubectl.kubeconfig").write_text("# kubeasz's step 01 writes the cluster's kubeconfig here\n",
                                                 encoding="utf-8")
        fakebin.install(base / "bin", "kubectl")
        tmp = tmp_path_factory.mktemp("node-dirs")
        fakebin.install(tmp / "bin", "ctr", "docker")
        for index, node in enumerate(("node1", "node2", "node3"), start=1):
            good_node(lab, node, index)
        yield lab, cdir, tmp
    finally:
        lab.down()


def subnet_env(index: int, network: str = "172.20.0.0/16") -> str:
    return (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET=172.20.{index}.1/24\n"
            "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")


def good_node(lab: Lab, node: str, index: int) -> None:
    """What flanneld (vxlan) leaves on a ready node: subnet.env and flannel.1 with FLANNEL_MTU."""
    lab.exec(node, ["sh", "-c", "cat > /run/flannel/subnet.env"], input=subnet_env(index))
    lab.exec(node, ["ip", "link", "add", "flannel.1", "mtu", "1450", "type", "vxlan", "id", "1",
                    "dev", "eth0", "local", f"198.18.0.{10 + index}", "dstport", "8472", "nolearning"])
    lab.exec(node, ["ip", "link", "set", "flannel.1", "up"])


def kubectl_dir(cdir: Path) -> Path:
    """{{ base_dir }}/bin on the deploy host: the fake kubectl and the cluster it keeps."""
    return cdir.parents[1] / "bin"


def run_flanneld_06(cdir: Path, tmp: Path, *extra: str, diff_rc: int | None = None,
                    book: str = "playbooks/06.network.yml", **config):
    """Step 06 (or ``book``) with the flanneld dataplane; diff_rc: what kubectl diff answers (None:
    the fake decides)."""
    rc_file = kubectl_dir(cdir) / "diff.rc"
    if diff_rc is None:
        rc_file.unlink(missing_ok=True)
    else:
        rc_file.write_text(str(diff_rc), encoding="utf-8")
    for log in (kubectl_dir(cdir) / "kubectl.calls", tmp / "bin" / "ctr.calls", tmp / "bin" / "docker.calls"):
        log.unlink(missing_ok=True)
    config = {"CONTAINER_RUNTIME": "containerd", **config}
    return run_06(cdir, *extra, book=book, FLANNEL_DATAPLANE="flanneld", bin_dir=str(tmp / "bin"),
                  flannel_image_dir=str(tmp / "images"), flannel_ready_timeout=2, **config)


def kubectl_calls(cdir: Path) -> list[str]:
    """kubectl's arguments per call, without the kubeconfig every call must carry."""
    kubeconfig = f"--kubeconfig {cdir / 'kubectl.kubeconfig'} "
    lines = fakebin.calls(kubectl_dir(cdir), "kubectl")
    assert all(line.startswith(kubeconfig) for line in lines), lines
    return [line[len(kubeconfig):] for line in lines]


def verbs(cdir: Path) -> list[str]:
    """kubectl subcommands in call order: get, diff, apply, delete, rollout."""
    return [next(w for w in line.split() if w in ("get", "diff", "apply", "delete", "rollout"))
            for line in kubectl_calls(cdir)]


def cluster_objects(cdir: Path) -> list[str]:
    return json.loads((kubectl_dir(cdir) / "cluster.json").read_text(encoding="utf-8"))["objects"]


def set_cluster_objects(cdir: Path, objects: list[str]) -> None:
    (kubectl_dir(cdir) / "cluster.json").write_text(json.dumps({"objects": objects}), encoding="utf-8")


def daemonsets(cdir: Path) -> list[str]:
    return sorted(o for o in cluster_objects(cdir) if "/daemonset.apps/" in o)


def checksum(path: Path) -> str:
    return CHECKSUM.search(path.read_text(encoding="utf-8")).group(1)


def test_a_difference_is_applied_and_rolled_out(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=1)
    assert_ok(proc)
    assert verbs(cdir) == ["get", "get", "diff", "apply", "rollout"], kubectl_calls(cdir)
    # applied from the deploy host, straight from the cluster folder, as kubeasz does
    assert kubectl_calls(cdir)[3] == f"apply -f {cdir / 'yml' / 'flannel.yaml'}"
    assert re.search(r"TASK \[kubeasz.network.flannel : Apply the manifest\] \*+\nchanged: \[node1 -> localhost",
                     proc.stdout)
    # what kubectl diff compared is what was applied
    assert checksum(kubectl_dir(cdir) / "diff.stdin") == checksum(cdir / "yml" / "flannel.yaml")
    assert daemonsets(cdir) == ["kube-system/daemonset.apps/kube-flannel-ds"]


def test_no_difference_changes_nothing(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=0)
    assert_ok(proc)
    assert verbs(cdir) == ["get", "get", "diff"], kubectl_calls(cdir)
    assert recap(proc)["node1"]["changed"] == 0, proc.stdout


def test_a_config_change_changes_the_checksum_annotation(cluster):
    lab, cdir, tmp = cluster
    before = checksum(cdir / "yml" / "flannel.yaml")
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", "--check", diff_rc=1, DIRECT_ROUTING=True)
    assert_ok(proc)
    assert verbs(cdir) == ["get", "get", "diff"], kubectl_calls(cdir)  # check mode: compared, not applied
    assert checksum(kubectl_dir(cdir) / "diff.stdin") != before  # ... with the new config
    assert "Report what kubectl diff found (check mode)" in proc.stdout
    assert recap(proc)["node1"]["changed"] > 0
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=1, DIRECT_ROUTING=True)
    assert_ok(proc)
    after = checksum(cdir / "yml" / "flannel.yaml")
    assert after != before and checksum(kubectl_dir(cdir) / "diff.stdin") == after
    assert "apply" in verbs(cdir)


def test_a_failing_kubectl_diff_fails_the_run(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=2)
    assert proc.returncode != 0
    assert "the server is unreachable" in proc.stdout
    assert "apply" not in verbs(cdir)


def test_a_missing_kubeconfig_is_named(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", flannel_kubeconfig=str(cdir / "nowhere.kubeconfig"))
    assert proc.returncode != 0
    assert f"flannel_kubeconfig: {cdir / 'nowhere.kubeconfig'} does not exist on the deploy host" in proc.stdout
    assert verbs(cdir) == []


def test_moving_namespaces_leaves_one_flannel_daemonset(cluster):
    lab, cdir, tmp = cluster
    # upstream flannel's layout, as `kubectl apply -f kube-flannel.yml` leaves it
    set_cluster_objects(cdir, ["/namespace/default", "/namespace/kube-system", *UPSTREAM_OBJECTS])
    check = run_flanneld_06(cdir, tmp, "--limit", "node1", "--check")
    assert_ok(check)
    assert "would delete daemonset.apps/kube-flannel-ds, configmap/kube-flannel-cfg and serviceaccount/flannel " \
           "in namespace kube-flannel" in check.stdout
    assert daemonsets(cdir) == ["kube-flannel/daemonset.apps/kube-flannel-ds"]  # check mode changed nothing
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1")
    assert_ok(proc)
    # the old DaemonSet goes right after the new one is applied, then the new one rolls out
    assert verbs(cdir) == ["get", "get", "diff", "apply", "delete", "rollout"], kubectl_calls(cdir)
    assert daemonsets(cdir) == ["kube-system/daemonset.apps/kube-flannel-ds"]
    assert not {"kube-flannel/configmap/kube-flannel-cfg", "kube-flannel/serviceaccount/flannel"} & set(cluster_objects(cdir))
    assert_unchanged(run_flanneld_06(cdir, tmp, "--limit", "node1"))
    # and back to upstream's namespace
    assert_ok(run_flanneld_06(cdir, tmp, "--limit", "node1", FLANNEL_NAMESPACE="kube-flannel"))
    assert daemonsets(cdir) == ["kube-flannel/daemonset.apps/kube-flannel-ds"]


def test_a_refused_migration_names_both_namespaces_and_changes_nothing(cluster):
    lab, cdir, tmp = cluster
    set_cluster_objects(cdir, ["/namespace/default", "/namespace/kube-system", *UPSTREAM_OBJECTS])
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", flannel_migrate_namespace=False)
    assert proc.returncode != 0
    assert "flannel already runs as daemonset.apps/kube-flannel-ds in namespace kube-flannel, and " \
           "FLANNEL_NAMESPACE is kube-system" in proc.stdout
    assert 'FLANNEL_NAMESPACE: "kube-flannel"' in proc.stdout and "flannel_migrate_namespace: true" in proc.stdout
    assert verbs(cdir) == ["get", "get"], kubectl_calls(cdir)
    assert daemonsets(cdir) == ["kube-flannel/daemonset.apps/kube-flannel-ds"]


@pytest.mark.parametrize("runtime, tarballs", [
    # ezdown's own layout: one tarball per image, under its ghcr.io name
    ("containerd", {"flannel_v0.28.9.tar": SAVED_AS[:1], "flannel-cni-plugin_v1.9.1-flannel3.tar": SAVED_AS[1:]}),
    # both images in the one tarball flannel_offline names
    ("docker", {"flannel_v0.28.9.tar": SAVED_AS}),
])
def test_the_offline_images_are_imported_and_tagged_once(cluster, runtime, tarballs):
    lab, cdir, tmp = cluster
    down = cdir.parents[1] / "down"  # {{ base_dir }}/down, where ezdown writes
    down.mkdir(exist_ok=True)
    tool = "ctr" if runtime == "containerd" else "docker"
    for name, images in tarballs.items():
        fakebin.image_tarball(down / name, images)
    try:
        check = run_flanneld_06(cdir, tmp, "--limit", "node1", "--check", CONTAINER_RUNTIME=runtime)
        assert_ok(check)
        assert f"would import {down / 'flannel_v0.28.9.tar'}" in check.stdout
        assert fakebin.images(tmp / "bin", "node1") == []  # check mode imported nothing
        proc = run_flanneld_06(cdir, tmp, "--limit", "node1", CONTAINER_RUNTIME=runtime)
        assert_ok(proc)
        assert set(fakebin.images(tmp / "bin", "node1")) == set(SAVED_AS + MANIFEST_IMAGES)
        imports = [c for c in fakebin.calls(tmp / "bin", tool) if " import " in f" {c} " or c.startswith("load ")]
        assert sorted(c.rsplit("/", 1)[1] for c in imports) == sorted(tarballs)
        tags = [m.group(1) for m in map(re.compile(r"(?:^| )tag (.*)").search, fakebin.calls(tmp / "bin", tool)) if m]
        assert tags == [f"{saved} {name}" for saved, name in zip(SAVED_AS, MANIFEST_IMAGES)]
        again = run_flanneld_06(cdir, tmp, "--limit", "node1", CONTAINER_RUNTIME=runtime)
        assert_unchanged(again)
        assert fakebin.calls(tmp / "bin", tool) == (["-n k8s.io images ls -q"] if tool == "ctr" else ["images"])
    finally:
        for name in tarballs:
            (down / name).unlink()
        (tmp / "bin" / "images.node1.json").unlink(missing_ok=True)


def test_add_node_looks_at_the_new_node_only(cluster):
    """22.addnode.yml with flanneld: one play over every node (flannel_add_node), but only the new
    node is looked at and waited for: flanneld teaches the others. node2 lacks subnet.env meanwhile,
    so a wait on it would fail the run."""
    lab, cdir, tmp = cluster
    node, ip = lab.node_add()
    good_node(lab, node, int(ip.rsplit(".", 1)[1]) - 10)
    hosts = (cdir / "hosts").read_text(encoding="utf-8")
    (cdir / "hosts").write_text(nodes.add_host_line(hosts, f"{ip} {nodes.lab_line(lab, ip)}"), encoding="utf-8")
    lab.exec("node2", ["rm", "-f", "/run/flannel/subnet.env"])
    try:
        proc = run_flanneld_06(cdir, tmp, "-e", f"NODE_TO_ADD={ip}", book="playbooks/22.addnode.yml")
    finally:
        (cdir / "hosts").write_text(hosts, encoding="utf-8")
        lab.exec("node2", ["sh", "-c", "cat > /run/flannel/subnet.env"], input=subnet_env(2))
        lab.node_del(node)
    assert_ok(proc)
    for task in ("Look at the node and bring its dataplane to plan", "Wait until flannel wrote subnet.env on the node"):
        ran = re.search(r"TASK \[kubeasz\.network\.flannel : %s[^\n]*\n(.*?)\n\n" % re.escape(task), proc.stdout, re.S)
        assert ran and re.findall(r"^(?:ok|changed): \[([^\]]+)\]", ran.group(1), re.M) == [ip], proc.stdout
    assert all(recap(proc)[n]["changed"] == 0 for n in ("node1", "node2", "node3")), proc.stdout


def test_the_waits_fail_naming_the_nodes(cluster):
    lab, cdir, tmp = cluster
    lab.exec("node2", ["sh", "-c", "cat > /run/flannel/subnet.env"], input=subnet_env(2, "10.244.0.0/16"))
    lab.exec("node3", ["rm", "-f", "/run/flannel/subnet.env"])
    start = time.monotonic()
    proc = run_flanneld_06(cdir, tmp)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    counts = recap(proc)
    assert counts["node1"]["failed"] == 0 and counts["node2"]["failed"] == 1 and counts["node3"]["failed"] == 1
    assert "flannel on node2 runs with another config" in proc.stdout
    assert "flannel is not ready on node3" in proc.stdout
    assert "node1 runs with another config" not in proc.stdout and "ignored=0" in proc.stdout
    print(f"\n[flanneld mode] waits failed naming node2 and node3 in a run of {elapsed:.1f} s")


def test_a_vxlan_device_with_another_mtu_is_named(cluster):
    lab, cdir, tmp = cluster
    lab.exec("node1", ["ip", "link", "set", "flannel.1", "mtu", "1400"])
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1")
    assert proc.returncode != 0
    assert "flannel on node1 does not run the vxlan backend of the config: flannel.1 has MTU 1400" in proc.stdout
