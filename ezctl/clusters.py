"""The base directory and its cluster folders, the user-facing error, and ansible-playbook's argv:
what every command of ezctl's command line stands on (no other ezctl module is imported here).

Base directory (holds ``playbooks/`` and ``clusters/``): ``--base``, else ``$KUBEASZ_BASE``,
else the current directory when it holds ``playbooks/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CLUSTER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")  # \Z: "$" matches before a final newline
CURRENT_FILE = ".current"  # in <base>/clusters/ (git-ignored with the clusters)


class CliError(Exception):
    """A user-facing error: printed as ``ezctl: error: ...``, exit code 1."""


def default_runner(argv: list[str], cwd: str) -> int:
    """Run argv (no shell) in cwd and return its exit code."""
    try:
        return subprocess.call(argv, cwd=cwd)
    except FileNotFoundError as exc:
        raise CliError(f"cannot run {argv[0]}: {exc.strerror}") from exc


def ansible_playbook() -> str:
    """ansible-playbook next to this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "ansible-playbook"
    if local.exists():
        return str(local)
    return shutil.which("ansible-playbook") or "ansible-playbook"


def find_base(option: str | None) -> Path:
    if option:
        base = Path(option)
    elif os.environ.get("KUBEASZ_BASE"):
        base = Path(os.environ["KUBEASZ_BASE"])
    elif Path("playbooks").is_dir():
        base = Path.cwd()
    else:
        raise CliError("no base directory: pass --base DIR, set KUBEASZ_BASE, or run ezctl "
                       "from the directory that holds playbooks/")
    if not base.is_dir():
        raise CliError(f"base directory {base} does not exist")
    return base.resolve()


def check_name(name: str) -> str:
    if not CLUSTER_RE.match(name or ""):
        raise CliError(f"invalid cluster name {name!r}: use lower-case letters, digits, '-' "
                       "and '_' (at most 32 characters)")
    return name


def cluster_dir(base: Path, name: str, must_exist: bool = True) -> Path:
    path = base / "clusters" / check_name(name)
    if must_exist and not path.is_dir():
        raise CliError(f"cluster {name} not found in {base / 'clusters'}: "
                       f"create it with `ezctl new {name}` or `ezctl lab up {name}`")
    return path


def list_clusters(base: Path) -> list[str]:
    cdir = base / "clusters"
    if not cdir.is_dir():
        return []
    return sorted(p.name for p in cdir.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_cluster(base: Path) -> str | None:
    try:
        name = (base / "clusters" / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def playbook_files(base: Path, cluster: str, playbook: str) -> Path:
    """The cluster's folder, once its hosts and config.yml and ``playbook`` are there."""
    cdir = cluster_dir(base, cluster)
    for needed in (cdir / "hosts", cdir / "config.yml", base / playbook):
        if not needed.is_file():
            raise CliError(f"{needed} not found")
    return cdir


def playbook_argv(cluster: str, playbook: str, *extra: str) -> list[str]:
    """ansible-playbook's argv for ``playbook`` on the cluster (run with cwd = base)."""
    return [ansible_playbook(), "-i", f"clusters/{cluster}/hosts",
            "-e", f"@clusters/{cluster}/config.yml", playbook, *extra]


def after_dashes(items) -> list[str]:
    """The arguments of an ``argparse.REMAINDER`` without the ``--`` that opens them."""
    items = list(items or [])
    return items[1:] if items[:1] == ["--"] else items
