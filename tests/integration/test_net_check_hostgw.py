"""`ezctl net check` with the host-gw backend (kubeasz #76: host-gw needs the nodes on one L2
segment). One segment: the deployed cluster passes every layer. Two segments joined by the
fabric's router (node4 behind it): the check, run before flannel is deployed, fails `transport`
(not on-link) for exactly the cross-segment pairs, on both families. One lab at a time."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from checkstate import no_probe_left
from labplay import BASE_CONFIG, DATAPLANE_CONFIG, assert_ok, run_06
from nodeplay import ezctl, ezctl_lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

HOST_GW = {"FLANNEL_BACKEND": "host-gw", "FLANNEL_ROUTE_GUARD": False}
DUAL = {"CLUSTER_CIDR_IPV6": "fd00:20::/56", "NODE_CIDR_LEN_IPV6": 64}


def write_config(cdir, **config):
    (cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **DATAPLANE_CONFIG["ansible"], **config}),
                                     encoding="utf-8")


def check(cdir):
    proc = ezctl(cdir, "net", "check", cdir.name, "--json", check=False)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    print("\n" + json.dumps(report["findings"], indent=1))
    assert (proc.returncode == 2) == bool(report["failed"])
    return report


def test_host_gw_on_one_segment_passes(tmp_path):
    with ezctl_lab("hgw1", tmp_path, nodes=3) as (lab, cdir):
        write_config(cdir, **HOST_GW)
        assert_ok(run_06(cdir, **HOST_GW))
        for node in ("node1", "node2", "node3"):
            lab.pod_add(node, f"p-{node}")
        report = check(cdir)
        assert report["ok"] and report["failed"] == [] and report["not_deployed"] == []
        assert len(report["pairs"]) == 3
        for pair in report["pairs"]:
            assert set(pair["layers"].values()) == {"pass"}, pair
    assert no_probe_left()


def test_host_gw_across_segments_fails_transport_for_the_cross_segment_pairs(tmp_path):
    with ezctl_lab("hgw2", tmp_path, nodes=4, segments=2, ipv6=True) as (_lab, cdir):
        write_config(cdir, **HOST_GW, **DUAL)
        report = check(cdir)  # before flannel: transport (on-link) still runs
        assert report["failed"] == [f"{pair} transport ({family})" for pair in ("node1-node4", "node2-node4", "node3-node4")
                                    for family in ("ipv4", "ipv6")]
        texts = [f["cause"] for f in report["findings"] if f["layer"] == "transport"]
        assert texts and all("not on-link" in text for text in texts), texts
        for pair in report["pairs"]:
            crossing = "node4" in pair["nodes"]
            assert pair["layers"]["underlay"] == "pass", pair
            assert pair["layers"]["transport"] == ("fail" if crossing else "pass"), pair
    assert no_probe_left()
