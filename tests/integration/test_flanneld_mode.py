"""FLANNEL_DATAPLANE=flanneld up to the API call, and the node-side waits, on a lab of namespace nodes.

No API server runs here: `{{ bin_dir }}/kubectl` (bin_dir is a temp dir the nodes see) is a fake
that records its arguments and answers `kubectl diff` with the rc the test chooses; `ctr` is a
fake too. The per-node waits run against real lab nodes: a node with a matching subnet.env
(and flannel.1 with FLANNEL_MTU), one whose subnet.env holds another network, one without.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from ezctl.lab import Lab
from labplay import assert_ok, recap, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

CHECKSUM = re.compile(r"kubeasz\.network/config-checksum: \"?([0-9a-f]+)")

FAKE_KUBECTL = r"""#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/kubectl.calls"
case " $* " in
  *" get namespace "*)
    if [ -e "$d/namespace-missing" ]; then
      echo 'Error from server (NotFound): namespaces "kube-flannel" not found' >&2; exit 1
    fi
    echo namespace/kube-flannel ;;
  *" diff -f - "*)
    cat > "$d/diff.stdin"; rc=$(cat "$d/diff.rc")
    [ "$rc" = 1 ] && echo "+        kubeasz.network/config-checksum: changed"
    [ "$rc" -gt 1 ] && echo "error: the server is unreachable" >&2
    exit "$rc" ;;
  *" apply -f "*) echo "daemonset.apps/kube-flannel-ds configured" ;;
  *" rollout status "*) echo 'daemon set "kube-flannel-ds" successfully rolled out' ;;
  *) echo "fake kubectl: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_CTR = r"""#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/ctr.calls"
case " $* " in
  *" images ls -q "*) cat "$d/ctr.images" 2>/dev/null; true ;;
  *" images import "*) echo docker.io/flannel/flannel:v0.26.7 >> "$d/ctr.images" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    lab = Lab(f"it-fld-{os.getpid()}")
    try:
        lab.up(nodes=3, segments=1)
        base = tmp_path_factory.mktemp("base")
        cdir = lab.write_cluster(base, lab.name)
        tmp = tmp_path_factory.mktemp("node-dirs")
        bindir = tmp / "bin"
        bindir.mkdir()
        for name, text in (("kubectl", FAKE_KUBECTL), ("ctr", FAKE_CTR)):
            (bindir / name).write_text(text, encoding="utf-8")
            (bindir / name).chmod(0o755)
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


def run_flanneld_06(cdir: Path, tmp: Path, *extra: str, diff_rc: int = 0, **config):
    bindir = tmp / "bin"
    (bindir / "diff.rc").write_text(str(diff_rc), encoding="utf-8")
    for log in ("kubectl.calls", "ctr.calls"):
        (bindir / log).unlink(missing_ok=True)
    return run_06(cdir, *extra, FLANNEL_DATAPLANE="flanneld", bin_dir=str(bindir),
                  flannel_manifest_dir=str(tmp / "manifests"), flannel_image_dir=str(tmp / "images"),
                  flannel_ready_timeout=2, CONTAINER_RUNTIME="containerd", **config)


def calls(tmp: Path, tool: str = "kubectl") -> list[str]:
    path = tmp / "bin" / f"{tool}.calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def verbs(tmp: Path) -> list[str]:
    """kubectl subcommands in call order: get, diff, apply, rollout."""
    return [next(w for w in line.split() if w in ("get", "diff", "apply", "rollout")) for line in calls(tmp)]


def checksum(path: Path) -> str:
    return CHECKSUM.search(path.read_text(encoding="utf-8")).group(1)


def test_a_difference_is_applied_and_rolled_out(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=1)
    assert_ok(proc)
    assert verbs(tmp) == ["get", "diff", "apply", "rollout"], calls(tmp)
    assert calls(tmp)[2] == f"apply -f {tmp / 'manifests' / 'flannel.yaml'}"
    assert re.search(r"TASK \[kubeasz.network.flannel : Apply the manifest\] \*+\nchanged: \[node1", proc.stdout)
    # what kubectl diff compared is what was applied
    assert checksum(tmp / "bin" / "diff.stdin") == checksum(tmp / "manifests" / "flannel.yaml")


def test_no_difference_changes_nothing(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=0)
    assert_ok(proc)
    assert verbs(tmp) == ["get", "diff"], calls(tmp)
    assert recap(proc)["node1"]["changed"] == 0, proc.stdout


def test_a_config_change_changes_the_checksum_annotation(cluster):
    lab, cdir, tmp = cluster
    before = checksum(cdir / "yml" / "flannel.yaml")
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", "--check", diff_rc=1, DIRECT_ROUTING=True)
    assert_ok(proc)
    assert verbs(tmp) == ["get", "diff"], calls(tmp)  # check mode: compared, not applied
    assert checksum(tmp / "bin" / "diff.stdin") != before  # ... with the new config
    assert "Report what kubectl diff found (check mode)" in proc.stdout
    assert recap(proc)["node1"]["changed"] > 0
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=1, DIRECT_ROUTING=True)
    assert_ok(proc)
    after = checksum(cdir / "yml" / "flannel.yaml")
    assert after != before and checksum(tmp / "manifests" / "flannel.yaml") == after
    assert "apply" in verbs(tmp)


def test_a_failing_kubectl_diff_fails_the_run(cluster):
    lab, cdir, tmp = cluster
    proc = run_flanneld_06(cdir, tmp, "--limit", "node1", diff_rc=2)
    assert proc.returncode != 0
    assert "the server is unreachable" in proc.stdout
    assert "apply" not in verbs(tmp)


def test_the_offline_image_is_imported_once(cluster):
    lab, cdir, tmp = cluster
    (cdir / "images").mkdir(exist_ok=True)
    (cdir / "images" / "flannel_v0.26.7.tar").write_bytes(b"not really an image")
    try:
        proc = run_flanneld_06(cdir, tmp, "--limit", "node1")
        assert_ok(proc)
        assert calls(tmp, "ctr")[-1] == f"-n k8s.io images import {tmp / 'images' / 'flannel_v0.26.7.tar'}"
        proc = run_flanneld_06(cdir, tmp, "--limit", "node1")
        assert_ok(proc)
        assert calls(tmp, "ctr") == ["-n k8s.io images ls -q"]
        assert recap(proc)["node1"]["changed"] == 0, proc.stdout
    finally:
        (cdir / "images" / "flannel_v0.26.7.tar").unlink()


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
