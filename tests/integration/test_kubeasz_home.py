"""The collection where kubeasz runs it: a kubeasz 3.7 home (playbooks of kubeasz's shape with
`{ role: flannel, ... }` lines, an ansible.cfg with kubeasz's `gathering = smart`) switched over by
the README's own `sed`, on a lab of namespace nodes, with each ansible-core under test:

- "2.14": kubeasz 3.7.0's container runs ansible-core 2.14.4 on Python 3.11. The test takes the
  venv from the environment variable KUBEASZ_CORE214_VENV (a venv with ansible-core 2.14.x, e.g.
  `python3.11 -m venv V && V/bin/pip install 'ansible-core==2.14.4' -e .`) and is skipped, saying
  so, when it is unset;
- "newest": KUBEASZ_CORE_NEWEST_VENV, the same for the newest ansible-core (skipped when unset);
- "dev": the ansible-core of the Python running pytest (the development .venv).

Each runs, through kubeasz's playbooks and this repository's `ezctl` on that core's Python:
step 06 in the ansible dataplane (rerun: changed=0, every pod pings every pod), a node added with
`ezctl add-node` (kubeasz's 22.addnode.yml), `ezctl net status`, `kubeasz.network.delnode`,
`kubeasz.network.network_reset`; then step 06 in the flanneld dataplane against fakebin's kubectl
and `ezctl renew-ca`'s run of 96.update-certs.yml with `-t force_change_certs -e CHANGE_CA=true`
(the manifest applied and flannel restarted). Each step prints its PLAY RECAP: the closing note of
issue 22 shows the output of the cores side by side.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fakebin
from labplay import BASE_CONFIG, REPO, lab_cluster, pods_ping, recap
from required import missing

pytestmark = [pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

CORES = {"2.14": "KUBEASZ_CORE214_VENV", "newest": "KUBEASZ_CORE_NEWEST_VENV", "dev": None}

# kubeasz 3.7's playbooks that include its network role, in their shape (written for this test from
# the facts of ../shared/kubeasz-3.7: a play over the nodes, one role line per network plugin).
ROLE_LINES = ("  - { role: calico, when: \"CLUSTER_NETWORK == 'calico'\" }\n"
              "  - { role: flannel, when: \"CLUSTER_NETWORK == 'flannel'\" }\n")
KUBEASZ_PLAYBOOKS = {
    "06.network.yml": "# to install network plugin, only one can be choosen\n"
                      "- hosts:\n  - kube_master\n  - kube_node\n  roles:\n" + ROLE_LINES,
    "22.addnode.yml": "- hosts: \"{{ NODE_TO_ADD }}\"\n  roles:\n  - prepare\n  - kube-node\n" + ROLE_LINES,
    "23.addmaster.yml": "- hosts: \"{{ NODE_TO_ADD }}\"\n  roles:\n  - prepare\n  - kube-master\n  - kube-node\n"
                        + ROLE_LINES,
    "90.setup.yml": "- hosts: kube_master:kube_node\n  roles:\n  - prepare\n"
                    "- hosts:\n  - kube_master\n  - kube_node\n  roles:\n" + ROLE_LINES,
    "96.update-certs.yml": "# ezctl renew-ca: -t force_change_certs -e CHANGE_CA=true\n"
                           "- hosts:\n  - kube_master\n  - kube_node\n  roles:\n  - kube-node\n" + ROLE_LINES,
}
# kubeasz's other roles do nothing here; its own flannel role must never run once switched over
STUB_ROLES = ("prepare", "kube-node", "kube-master", "calico")
KUBEASZ_CFG = """[defaults]
# kubeasz 3.7's ansible.cfg: facts are gathered (smart) by its playbooks, which do not turn it off
gathering = smart
forks = 10
host_key_checking = False
roles_path = {home}/roles
retry_files_enabled = False
stdout_callback = default
"""


def readme_switch() -> tuple[str, list[str], str]:
    """The README's sed expression, its files, and the grep that checks them."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"sed -i\.orig '([^']+)' \\\n\s+((?:playbooks/\S+\.yml ?)+)\n", text)
    assert match, "the README's sed that switches kubeasz's playbooks over"
    grep = re.search(r"grep -c '([^']+)' playbooks/\*\.yml\s+# 1 in each of the (\w+)", text)
    assert grep, "the README's grep check"
    return match.group(1), match.group(2).split(), grep.group(1)


def core_python(core: str) -> str:
    var = CORES[core]
    if var is None:
        return sys.executable
    venv = os.environ.get(var)
    if not venv:
        (pytest.skip if var == "KUBEASZ_CORE_NEWEST_VENV" else missing)(
            f"{var} is not set: point it to a venv with ansible-core {core} "
            f"(python3.11 -m venv V && V/bin/pip install 'ansible-core==2.14.4' -e {REPO})")
    python = Path(venv) / "bin" / "python"
    if not (Path(venv) / "bin" / "ansible-playbook").exists():
        pytest.fail(f"{var}={venv} has no bin/ansible-playbook")
    return str(python)


def make_home(home: Path, core: str) -> dict:
    """kubeasz's home: playbooks switched by the README's sed, the collection beside them."""
    (home / "playbooks").mkdir(parents=True)
    for name, text in KUBEASZ_PLAYBOOKS.items():
        (home / "playbooks" / name).write_text(text, encoding="utf-8")
    for role in STUB_ROLES:
        (home / "roles" / role / "tasks").mkdir(parents=True)
        (home / "roles" / role / "tasks" / "main.yml").write_text(
            f"- name: kubeasz's {role} role (not part of this test)\n  ansible.builtin.meta: noop\n")
    (home / "roles" / "flannel" / "tasks").mkdir(parents=True)
    (home / "roles" / "flannel" / "tasks" / "main.yml").write_text(
        "- name: kubeasz's own flannel role\n  ansible.builtin.fail:\n"
        "    msg: kubeasz's own flannel role ran; the README's sed did not switch this playbook\n")
    (home / "ansible.cfg").write_text(KUBEASZ_CFG.format(home=home), encoding="utf-8")
    # ansible-galaxy collection install -p playbooks/collections (here: the work tree itself)
    target = home / "playbooks" / "collections" / "ansible_collections" / "kubeasz" / "network"
    target.parent.mkdir(parents=True)
    target.symlink_to(REPO)
    # the collection's playbooks for what kubeasz has none of: net status reads kubeasz's 06
    (home / "playbooks" / "net_status.yml").symlink_to(REPO / "playbooks" / "net_status.yml")
    expression, files, marker = readme_switch()
    assert sorted(Path(f).name for f in files) == sorted(KUBEASZ_PLAYBOOKS)
    subprocess.run(["sed", "-i.orig", expression, *files], cwd=home, check=True)
    counts = subprocess.run(["grep", "-c", marker, *sorted((home / "playbooks").glob("*.yml"))],
                            cwd=home, capture_output=True, text=True, check=False).stdout
    assert sorted(line.rsplit(":", 1)[1] for line in counts.split()) == ["0"] + ["1"] * 5, counts
    python = core_python(core)
    version = subprocess.run([python, "-c", "import ansible.release as r; print(r.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1",
               ANSIBLE_COLLECTIONS_PATH=str(home / "playbooks" / "collections"),
               PYTHONPATH=str(REPO))  # ezctl from the work tree, on the core's own Python
    return {"python": python, "version": version, "env": env, "home": home}


class Steps:
    """Runs the steps in the kubeasz home and keeps their recaps for the printout."""

    def __init__(self, kz: dict, cdir: Path):
        self.kz, self.cdir, self.lines = kz, cdir, []

    def config(self, **config) -> None:
        (self.cdir / "config.yml").write_text(yaml.safe_dump({**BASE_CONFIG, **config}), encoding="utf-8")

    def _run(self, name: str, argv: list[str], ok=(0,)) -> subprocess.CompletedProcess:
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=self.kz["home"], env=self.kz["env"], capture_output=True, text=True,
                              timeout=900, check=False)
        took = time.monotonic() - start
        assert proc.returncode in ok, f"{name}: rc {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        assert "does not support Ansible version" not in proc.stderr, proc.stderr
        try:
            counts = recap(proc)
            summary = " ".join(f"{h}:ok={c['ok']},changed={c['changed']},failed={c['failed']}"
                               for h, c in sorted(counts.items()))
        except AssertionError:
            summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        self.lines.append(f"{name:<44} rc={proc.returncode} {took:6.1f}s  {summary}")
        return proc

    def playbook(self, name: str, playbook: str, *extra: str, ok=(0,)) -> subprocess.CompletedProcess:
        c = self.cdir.name
        argv = [str(Path(self.kz["python"]).parent / "ansible-playbook"), "-i", f"clusters/{c}/hosts",
                "-e", f"@clusters/{c}/config.yml", playbook, *extra]
        return self._run(name, argv, ok)

    def ezctl(self, name: str, *args: str, ok=(0,)) -> subprocess.CompletedProcess:
        return self._run(name, [self.kz["python"], "-m", "ezctl", "--base", str(self.kz["home"]), *args], ok)


def changed(proc) -> int:
    return sum(c["changed"] for c in recap(proc).values())


@pytest.mark.parametrize("core", list(CORES))
def test_kubeasz_home(core, tmp_path, capsys):
    kz = make_home(tmp_path / "kubeasz", core)
    with lab_cluster("kz", kz["home"], nodes=3) as (lab, cdir):
        s = Steps(kz, cdir)
        c = cdir.name
        # --- the ansible dataplane through kubeasz's 06 (facts gathered: gathering = smart)
        s.config(FLANNEL_DATAPLANE="ansible", FLANNEL_SUBNET_STORE="file")
        s.playbook("06 ansible (kubeasz playbook)", "playbooks/06.network.yml")
        assert changed(s.playbook("06 ansible again", "playbooks/06.network.yml")) == 0
        pods_ping(lab)
        # --- a node joins: ezctl add-node runs kubeasz's 22.addnode.yml for it; kubeasz's 22 sets
        # up only the new node, so the others learn it in the next 06 (or kubeasz.network.addnode)
        name, ip = lab.node_add()
        s.ezctl("ezctl add-node (kubeasz 22.addnode.yml)", "add-node", c, ip)
        s.playbook("06 after add-node", "playbooks/06.network.yml")
        pods_ping(lab)
        status = s.ezctl("ezctl net status --json", "net", "status", c, "--json")
        view = json.loads(status.stdout[status.stdout.index("{"):])
        assert len(view["nodes"]) == 4 and view["drifted"] == [], status.stdout
        s.lines[-1] = s.lines[-1].rsplit("s  ", 1)[0] + f"s  {len(view['nodes'])} nodes, drifted: none"
        # --- a node leaves (the collection's play: kubeasz's own 32 has no flannel role)
        s.playbook("kubeasz.network.delnode", "kubeasz.network.delnode", "-e", f"NODE_TO_DEL={ip}")
        assert "flannel" not in lab.exec(name, ["ip", "-o", "link"]).stdout   # reset on its way out
        lab.node_del(name)
        pods_ping(lab)
        # --- flannel off every node, and a rerun changes nothing
        s.playbook("kubeasz.network.network_reset", "kubeasz.network.network_reset")
        assert changed(s.playbook("network_reset again", "kubeasz.network.network_reset")) == 0
        for node in ("node1", "node2", "node3"):
            assert "flannel" not in lab.exec(node, ["ip", "-o", "link"]).stdout
        # --- the flanneld dataplane: kubectl on the deploy host is fakebin's, the nodes hold
        # what flanneld leaves (subnet.env, flannel.1)
        kubectl_dir = kz["home"] / "bin"
        fakebin.install(kubectl_dir, "kubectl")
        (cdir / "kubectl.kubeconfig").write_text("# kubeasz's step 01 writes it\n", encoding="utf-8")
        for index, node in enumerate(("node1", "node2", "node3"), start=1):
            lab.exec(node, ["sh", "-c", "cat > /run/flannel/subnet.env"], input=(
                f"FLANNEL_NETWORK=172.20.0.0/16\nFLANNEL_SUBNET=172.20.{index}.1/24\nFLANNEL_MTU=1450\n"
                "FLANNEL_IPMASQ=true\n"))
            lab.exec(node, ["ip", "link", "add", "flannel.1", "mtu", "1450", "type", "vxlan", "id", "1", "dev",
                            "eth0", "local", f"198.18.0.{10 + index}", "dstport", "8472", "nolearning"])
        s.config(FLANNEL_DATAPLANE="flanneld", flannel_ready_timeout=5, local_registry="")
        # --- the manifest alone, touching no node: every node unreachable here (its lab dir does
        # not exist); kubeasz's ansible.cfg gathers facts (smart), which the README turns off
        unreachable = cdir / "hosts.unreachable"
        unreachable.write_text((cdir / "hosts").read_text().replace(f"kubeasz_lab_dir={lab.dir}",
                                                                    "kubeasz_lab_dir=/nonexistent/kubeasz-lab"))
        manifest = cdir / "yml" / "flannel.yaml"
        manifest.unlink(missing_ok=True)
        kz["env"]["ANSIBLE_GATHERING"] = "explicit"
        proc = s._run("06 --tags manifest, nodes unreachable", [
            str(Path(kz["python"]).parent / "ansible-playbook"), "-i", str(unreachable),
            "-e", f"@clusters/{c}/config.yml", "playbooks/06.network.yml", "--tags", "manifest"])
        del kz["env"]["ANSIBLE_GATHERING"]
        assert all(counts["unreachable"] == 0 for counts in recap(proc).values()), proc.stdout
        assert "kind: DaemonSet" in manifest.read_text()
        s.playbook("06 flanneld (kubeasz playbook)", "playbooks/06.network.yml")
        assert "apply" in " ".join(fakebin.calls(kubectl_dir, "kubectl"))
        assert changed(s.playbook("06 flanneld again", "playbooks/06.network.yml")) == 0
        # --- ezctl renew-ca: kubeasz runs 96.update-certs.yml -t force_change_certs -e CHANGE_CA=true
        (kubectl_dir / "kubectl.calls").unlink(missing_ok=True)
        s.playbook("96.update-certs -t force_change_certs", "playbooks/96.update-certs.yml",
                   "-t", "force_change_certs", "-e", "CHANGE_CA=true")
        calls = fakebin.calls(kubectl_dir, "kubectl")
        assert any(" rollout restart daemonset/kube-flannel-ds" in call for call in calls), calls
        assert any(" rollout status daemonset/kube-flannel-ds" in call for call in calls), calls
        with capsys.disabled():
            print(f"\n[kubeasz home] ansible-core {kz['version']} ({core}), Python "
                  f"{subprocess.run([kz['python'], '-V'], capture_output=True, text=True, check=True).stdout.strip()}:")
            print("\n".join("  " + line for line in s.lines))
