"""Leases stay alive as long as their node (store=etcd, short TTL, real kernel and etcd):
the route guard renews a live node's lease without a run of 06; a node that is gone renews
nothing, its lease expires and the other nodes drop its routes at their next run."""
from __future__ import annotations

import os
import time

import pytest

from labplay import assert_ok, lab_cluster, run_06
from nodeplay import etcd_leases
from test_etcd_leases import LAB_ETCD, start_lab_etcd, stop_lab_etcd

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

TTL = 60  # longer than a run of 06 on a busy machine: the guard starts at its end
CONFIG = {"FLANNEL_SUBNET_STORE": "etcd", "FLANNEL_ETCD_ENDPOINTS": LAB_ETCD, "flannel_etcd_ca": "",
          "flannel_etcd_cert": "", "flannel_etcd_key": "", "flannel_etcd_lease_ttl": TTL}


def test_live_leases_are_renewed_and_a_dead_nodes_lease_expires(tmp_path):
    with lab_cluster("renew", tmp_path, nodes=3) as (lab, cdir):
        etcd = start_lab_etcd(lab, tmp_path / "etcd-data")
        try:
            assert_ok(run_06(cdir, **CONFIG))
            assert len(etcd_leases(lab)) == 3
            time.sleep(2 * TTL)  # two TTLs without a run of 06
            assert set(etcd_leases(lab)) == {"198.18.0.11", "198.18.0.12", "198.18.0.13"}
            log = lab.exec("node2", ["cat", "/run/flannel/route-guard.log"]).stdout
            assert "renewed lease" in log, log

            subnet = etcd_leases(lab)["198.18.0.13"]
            lab.node_del("node3")  # its guard goes with it
            deadline = time.monotonic() + 3 * TTL
            while "198.18.0.13" in etcd_leases(lab):
                assert time.monotonic() < deadline, "the dead node's lease did not expire"
                time.sleep(1)
            assert set(etcd_leases(lab)) == {"198.18.0.11", "198.18.0.12"}
            assert subnet + "/24" in lab.exec("node1", ["ip", "route"]).stdout
            assert_ok(run_06(cdir, "--limit", "node1,node2", **CONFIG))
            for node in ("node1", "node2"):
                assert subnet not in lab.exec(node, ["ip", "route"]).stdout
                assert "198.18.0.13" not in lab.exec(node, ["bridge", "fdb", "show"]).stdout
        finally:
            stop_lab_etcd(etcd)
