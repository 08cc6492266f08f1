"""Check mode tells the truth across backend switches (issue 11).

One lab of three nodes on one L2 segment, shared by the file, walks the switches of the molecule
`switch` scenario: vxlan -> vxlan + DirectRouting -> host-gw -> vxlan with VNI 2 -> vxlan. Each
step runs step 06 with `--check --diff` first, then for real with `--diff`; per task and host, the
check run must print the changes the real run then makes: the same changed results with the same
diffs (store entries, files, device, entries, routes, rules, manifest).
"""
from __future__ import annotations

import os
import re

import pytest

from labplay import assert_ok, lab_cluster, run_06

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

# the molecule switch scenario's steps (molecule/switch/side_effect.yml) after its vxlan converge
STEPS = [
    ("vxlan + DirectRouting", {"DIRECT_ROUTING": True}),
    ("host-gw", {"FLANNEL_BACKEND": "host-gw"}),
    ("vxlan, VNI 2", {"FLANNEL_VNI": 2}),
    ("vxlan", {}),
]
_TASK = re.compile(r"^TASK \[(.+?)\] \**$", re.M)
_RESULT = re.compile(r"^(ok|changed|skipping|fatal): \[([^\]]+?)\]", re.M)
_HEADER = re.compile(r"^(---|\+\+\+) (before|after)(: .*)?$")
# tasks that only run for real (they watch or wait for what the real run changed)
REAL_ONLY = ("route guard", "Wait", "hold")
STORE = "flannel-leases.json"   # the lease file: one document that every node writes to


def chunks(text: str) -> list:
    """The diffs a task printed for one host: [(header, [+/- lines])] (temporary paths dropped)."""
    found = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header and header.group(1) == "---":
            found.append((header.group(3) or "", []))
        elif found and not header and line[:1] in "+-" and not line.startswith(("+++", "---")):
            found[-1][1].append(line)
    return found


def plan(stdout: str) -> dict:
    """What a playbook run with --diff (default callback) reports, as compared here.

    {(task, host): diffs} for every changed result, except for the lease store: its document is
    shared (the net-conf ``config`` is written by whichever node takes the lock first), so its
    changes are compared as the union over the hosts, under (task, STORE)."""
    found = {}
    parts = _TASK.split(stdout)
    for task, body in zip(parts[1::2], parts[2::2]):
        start = 0
        for match in _RESULT.finditer(body):
            printed, start = body[start:match.start()], match.end()
            if match.group(1) != "changed" or any(word in task for word in REAL_ONLY):
                continue
            own = []
            for header, lines in chunks(printed):
                if STORE in header:
                    found.setdefault((task, STORE), set()).update(lines)
                elif lines:
                    own.append((header, tuple(lines)))
            if own:
                found[(task, match.group(2))] = own
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with lab_cluster("chk", tmp_path_factory.mktemp("base"), nodes=3, segments=1) as made:
        lab, cdir = made
        assert_ok(run_06(cdir))   # converge: vxlan
        yield made


@pytest.mark.parametrize("name, config", STEPS, ids=[s[0] for s in STEPS])
def test_check_mode_predicts_the_switch(cluster, name, config):
    lab, cdir = cluster
    checked = run_06(cdir, "--check", "--diff", **config)
    assert_ok(checked)
    real = run_06(cdir, "--diff", **config)
    assert_ok(real)
    if os.environ.get("KUBEASZ_CHECK_DUMP"):   # a directory to keep both runs' output in
        for kind, proc in (("check", checked), ("real", real)):
            with open(os.path.join(os.environ["KUBEASZ_CHECK_DUMP"], "%s-%s.txt" % (name, kind)), "w") as out:
                out.write(proc.stdout)
    want, got = plan(checked.stdout), plan(real.stdout)
    print("\n== %s: %d changes printed by --check --diff, %d made by the real run"
          % (name, len(want), len(got)))
    for task, host in sorted(set(want) | set(got)):
        print("  %-5s %-7s %s" % ("same" if want.get((task, host)) == got.get((task, host)) else "DIFF",
                                  host, task.split(" : ")[-1]))
    assert want == got
