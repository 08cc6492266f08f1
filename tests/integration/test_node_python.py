"""The oldest Python the modules run on, on a node: 3.7 (the module_utils use dataclasses). It is
the oldest that ansible-core 2.14 to 2.17 run modules on; ansible-core 2.18 and newer need 3.8 on
the nodes themselves. Every file the modules carry to a node (plugins/modules, plugins/module_utils)
is compiled with it, and the unit tests of module_utils and the modules run on it against
ansible-core 2.14's module_utils (what kubeasz's container sends to the nodes).

Environment: KUBEASZ_NODE_PYTHON, a Python 3.7 with pytest (e.g. `python3.7 -m venv V &&
V/bin/pip install pytest`; without it, python3.7 on PATH or pyenv's, for the compile part only),
and KUBEASZ_CORE214_VENV (see test_kubeasz_home.py) for ansible-core 2.14's module_utils. Each part
is skipped, saying which variable to set, when its Python is missing.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess


from labplay import REPO
from required import missing

OLDEST = (3, 7)
NOT_ON_NODES = ("test_ezctl_cli.py", "test_ezctl_nodes.py", "test_lab_ipv6.py", "test_lab_down.py",
                "test_ezctl_imports.py",  # ezctl
                "test_layers.py",  # a look at the source tree (bench/architecture_stats.py)
                "test_check_run.py", "test_roleconfig.py",  # the actions: the controller's, not the nodes'
                "test_netcheck_action.py", "test_node_join.py")


def node_python() -> str:
    candidates = [os.environ.get("KUBEASZ_NODE_PYTHON"), shutil.which("python3.7"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7.*/bin/python3.7")), reverse=True)]
    # the first that runs (a pyenv shim without a 3.7 does not)
    found = next((c for c in candidates if c and subprocess.run([c, "-c", ""], capture_output=True, check=False).returncode == 0),
                 None)
    if not found:
        missing("no Python 3.7: set KUBEASZ_NODE_PYTHON to one (with pytest for the unit tests)")
    version = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert tuple(int(n) for n in version.split(".")) == OLDEST, f"{found} is Python {version}, not 3.7"
    return found


def node_files() -> list[str]:
    return sorted(str(p) for d in ("plugins/modules", "plugins/module_utils") for p in (REPO / d).rglob("*.py"))


def test_every_node_file_compiles_on_the_oldest_python():
    python = node_python()
    files = node_files()
    script = ("import sys\nfor f in sys.argv[1:]:\n"
              "    with open(f) as handle:\n        compile(handle.read(), f, 'exec', dont_inherit=True)\n")
    proc = subprocess.run([python, "-c", script, *files], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(files) > 20


def test_module_utils_units_run_on_the_oldest_python(tmp_path):
    python = node_python()
    if subprocess.run([python, "-c", "import pytest"], capture_output=True, check=False).returncode != 0:
        missing(f"{python} has no pytest: set KUBEASZ_NODE_PYTHON to a Python 3.7 venv with pytest")
    venv = os.environ.get("KUBEASZ_CORE214_VENV")
    if not venv:
        missing("KUBEASZ_CORE214_VENV is not set: ansible-core 2.14's module_utils run on Python 3.7")
    ansible = next(iter(glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "ansible"))), None)
    assert ansible, f"no ansible package in {venv}"
    (tmp_path / "ansible").symlink_to(ansible)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO / ".cache" / "collections")]))
    argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/unit"]
    argv += [f"--ignore=tests/unit/{name}" for name in NOT_ON_NODES]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    print(proc.stdout.strip().splitlines()[-1])
