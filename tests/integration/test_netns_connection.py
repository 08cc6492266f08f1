"""Ansible ad-hoc runs through the kubeasz.network.netns connection plugin against a lab."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ezctl.lab import Lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).parent / "ansible") \
    if (Path(sys.executable).parent / "ansible").exists() else shutil.which("ansible")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A 2-node lab, its inventory, and an environment that finds this collection."""
    tmp = tmp_path_factory.mktemp("netns")
    coll = tmp / "collections" / "ansible_collections" / "kubeasz"
    coll.mkdir(parents=True)
    (coll / "network").symlink_to(REPO)
    lab = Lab(f"it-conn-{os.getpid()}")
    try:
        lab.up(nodes=2)
        cdir = lab.write_cluster(tmp / "base", "conn")
        environ = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
                       ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
                       ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
                       ANSIBLE_RETRY_FILES_ENABLED="False")
        environ.pop("ANSIBLE_CONFIG", None)
        yield {"lab": lab, "hosts": str(cdir / "hosts"), "env": environ, "tmp": tmp}
    finally:
        lab.down()


def adhoc(env, pattern, module, args="", extra_env=None, check=True, inventory=None):
    proc = subprocess.run(
        [ANSIBLE, "-i", inventory or env["hosts"], pattern, "-m", module, "-a", args],
        cwd=env["tmp"], env=dict(env["env"], **(extra_env or {})), capture_output=True,
        text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return parse_minimal(proc.stdout), proc


HEADER = re.compile(r"^(\S+) \| ([A-Z!]+)(?: \| rc=(\d+))? (>>|=>)", re.M)


def parse_minimal(text):
    """host → result from the `minimal` callback (`h | CHANGED | rc=0 >>` or `h | OK => {}`)."""
    results = {}
    heads = list(HEADER.finditer(text))
    for head, nxt in zip(heads, heads[1:] + [None]):
        body = text[head.end():nxt.start() if nxt else len(text)].strip()
        if head.group(4) == "=>":
            res = json.loads(body)
        else:
            res = {"stdout": body, "rc": int(head.group(3)),
                   "changed": head.group(2) == "CHANGED"}
        res["status"] = head.group(2)
        results[head.group(1)] = res
    return results


@pytest.mark.parametrize("pipelining", ["True", "False"])
def test_command_hostname(env, pipelining):
    res, _proc = adhoc(env, "all", "ansible.builtin.command", "hostname",
                       extra_env={"ANSIBLE_PIPELINING": pipelining})
    assert {h: r["stdout"] for h, r in res.items()} == {"node1": "node1", "node2": "node2"}


def test_node_network_is_seen(env):
    res, _proc = adhoc(env, "node2", "ansible.builtin.command", "ip -br addr show eth0")
    assert "198.18.0.12/24" in res["node2"]["stdout"]


def test_copy_slurp_fetch_in_private_tmpfs(env):
    lab = env["lab"]
    res, _proc = adhoc(env, "node1", "ansible.builtin.copy",
                       "content='FLANNEL_MTU=1450\n' dest=/run/flannel/probe.env mode=0644")
    assert res["node1"]["changed"] is True
    res, _proc = adhoc(env, "node1", "ansible.builtin.copy",
                       "content='FLANNEL_MTU=1450\n' dest=/run/flannel/probe.env mode=0644")
    assert res["node1"]["changed"] is False
    assert lab.exec("node1", ["cat", "/run/flannel/probe.env"]).stdout == "FLANNEL_MTU=1450\n"
    assert lab.exec("node2", ["test", "-e", "/run/flannel/probe.env"],
                    check=False).returncode == 1
    assert not os.path.exists("/run/flannel/probe.env")  # not on the host
    res, _proc = adhoc(env, "node1", "ansible.builtin.slurp", "src=/run/flannel/probe.env")
    assert base64.b64decode(res["node1"]["content"]) == b"FLANNEL_MTU=1450\n"
    dest = env["tmp"] / "fetched"
    adhoc(env, "node1", "ansible.builtin.fetch",
          f"src=/run/flannel/probe.env dest={dest}/ flat=true")
    assert (dest / "probe.env").read_text() == "FLANNEL_MTU=1450\n"


def test_binary_file_roundtrip(env):
    src = env["tmp"] / "blob.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)
    adhoc(env, "node2", "ansible.builtin.copy", f"src={src} dest=/etc/cni/net.d/blob.bin")
    back = env["tmp"] / "back"
    adhoc(env, "node2", "ansible.builtin.fetch",
          f"src=/etc/cni/net.d/blob.bin dest={back}/ flat=true")
    assert (back / "blob.bin").read_bytes() == data


def test_missing_node_is_a_clear_error(env):
    inv = env["tmp"] / "bad-hosts"
    inv.write_text(f"node9 ansible_connection=kubeasz.network.netns "
                   f"kubeasz_lab_dir={env['lab'].dir}\n")
    _res, proc = adhoc(env, "node9", "ansible.builtin.command", "true", check=False,
                       inventory=str(inv))
    assert proc.returncode != 0
    assert f"lab node node9 not found under {env['lab'].dir}: run ezctl lab up" in proc.stdout
