"""net_probe's action plugin on the controller: the report (from what each probe heard) and step
06's preflight (verdict.preflight_result, which node_check's join runs on the node too), decided
without a module process. Controller only (test_node_python skips it)."""
from __future__ import annotations

import json
import os

from ansible_collections.kubeasz.network.plugins.action import net_probe as action
from ansible_collections.kubeasz.network.plugins.module_utils.check import verdict
from ansible_collections.kubeasz.network.tests.unit.test_netcheck import NET_CONF, healthy, run_report


def args(**kw):
    base = {"mode": "report", "facts": None, "probes": {}, "heard": None, "net_conf": NET_CONF, "nodes": 3,
            "ip_masq": True, "cluster": "c1", "dest": None}
    base.update(kw)
    return base


def test_report_takes_what_each_probe_heard_when_no_listener_results_are_given(tmp_path):
    facts, probes, heard = healthy()
    for node in probes:
        probes[node]["heard"] = heard[node]
    probes["n2"]["heard"] = ["10.0.0.3"]  # n2 never heard n1
    dest = tmp_path / "report.json"
    result = action.report(args(facts=facts, probes=probes, dest=str(dest)))
    assert result["report"] == run_report(facts, probes, dict(heard, n2=["10.0.0.3"]))[0]
    assert result["report"]["failed"] == ["n1-n2 transport (ipv4)"]
    assert json.loads(dest.read_text()) == result and oct(os.stat(dest).st_mode & 0o777) == "0o600"
    given = action.report(args(facts=facts, probes=probes, heard=heard))  # the listener jobs' results
    assert given["report"]["ok"]


def test_preflight_stops_on_duplicate_public_ips_and_warns_on_the_rest():
    facts, _probes, _heard = healthy()
    facts["n2"]["public_ip"] = facts["n1"]["public_ip"]
    failed = verdict.preflight_result(facts, NET_CONF, 3)
    assert failed["failed"] and "n1, n2 all use the public IP 10.0.0.1" in failed["msg"]
    facts, _probes, _heard = healthy()
    facts["n1"]["candidates"] = ["10.0.0.1", "10.0.0.9"]
    warned = verdict.preflight_result(facts, NET_CONF, 3)
    assert "failed" not in warned and warned["warnings"] == warned["text"].split("\n") and "10.0.0.9" in warned["text"]
