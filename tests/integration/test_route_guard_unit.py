"""The route guard's systemd unit, rendered by Ansible from the role's template and checked with
`systemd-analyze verify` (skipped when the tool is not installed), and the guard's command-line
file as the role installs it (module_utils inside it, no collection on sys.path)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "flannel"


def render(tmp_path: Path, template: str, dest: Path, **extra) -> Path:
    """The role's template, rendered by Ansible as the role does (role_path set)."""
    extra.update(role_path=str(ROLE), ansible_python_interpreter=sys.executable)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra), encoding="utf-8")
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
            "-e", f"@{tmp_path / 'vars.yml'}", "-m", "ansible.builtin.template",
            "-a", f"src={ROLE / 'templates' / template} dest={dest}"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


def render_unit(tmp_path: Path) -> Path:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    extra = {k: defaults[k] for k in ("flannel_route_guard_state", "flannel_route_guard_hold",
                                      "flannel_route_guard_interval")}
    return render(tmp_path, "flannel-route-guard.service.j2", tmp_path / "flannel-route-guard.service",
                  flannel_route_guard_python=shutil.which("python3") or sys.executable,
                  flannel_route_guard_dir="/usr/local/lib/flannel-route-guard", **extra)


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    unit = render_unit(tmp_path)
    text = unit.read_text(encoding="utf-8")
    assert "ExecStart=" in text and " serve --state /run/flannel/routes.json " in text
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_the_installed_guard_runs_without_the_collection(tmp_path):
    """What the role installs (node_check's apply): one file carrying the module_utils, run with python3 -S."""
    render(tmp_path, "flannel-route-guard.j2", tmp_path / "flannel-route-guard")
    env = {"PATH": os.environ["PATH"]}  # no PYTHONPATH: nothing of the work tree
    proc = subprocess.run(["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                           "-S", str(tmp_path / "flannel-route-guard"), "status",
                           "--pid-file", str(tmp_path / "none.pid")],
                          capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (3, "not running"), proc.stderr
