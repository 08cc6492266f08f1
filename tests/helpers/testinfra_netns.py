"""A pytest-testinfra backend that runs checks inside a lab node: ``netns://<lab>/<node>``.

Each command is wrapped in ``nsenter`` (net, mount and UTS namespaces of the node), so a check
costs one process instead of one ``ansible`` run. Register it once, e.g. in ``conftest.py``::

    import testinfra_netns  # tests/helpers is on sys.path (pyproject.toml)
    testinfra_netns.register()

    def test_subnet_env():
        host = testinfra.get_host("netns://lab/node1")
        assert host.file("/run/flannel/subnet.env").exists

``netns://<lab>/<node>/<pod>`` runs inside a pod of that node. The lab root defaults to
``$KUBEASZ_LAB_ROOT`` or ``/run/kubeasz-lab``; an absolute lab directory can be given as
``netns:///run/kubeasz-lab/lab/node1`` (the last path part is then the node).
"""

from __future__ import annotations

import os
import shlex
import urllib.parse
from typing import Any

from ezctl.lab import DEFAULT_ROOT, Lab
from ezctl.labsys import tool

try:  # testinfra is a test dependency only
    import testinfra.backend as _tbackend
    from testinfra.backend import base as _tbase
except ImportError:  # pragma: no cover
    _tbackend = None
    _tbase = None

SCHEME = "netns"


def split_target(spec: str, root: str | None = None) -> tuple[Lab, str]:
    """``lab/node[/pod]`` or ``/abs/lab/dir/node`` → (Lab, "node[/pod]")."""
    root = root or os.environ.get("KUBEASZ_LAB_ROOT", DEFAULT_ROOT)
    spec = spec.strip()
    if spec.startswith("/"):
        lab_dir, _sep, node = spec.rstrip("/").rpartition("/")
        parent, _sep, name = lab_dir.rpartition("/")
        return Lab(name, root=parent or "/"), node
    parts = [p for p in spec.split("/") if p]
    if len(parts) not in (2, 3):
        raise ValueError(f"netns target must be <lab>/<node>[/<pod>], got {spec!r}")
    return Lab(parts[0], root=root), "/".join(parts[1:])


if _tbase is not None:

    class NetnsBackend(_tbase.BaseBackend):
        """Run testinfra commands in a lab node with nsenter."""

        NAME = SCHEME

        def __init__(self, hostname: str, *args: Any, **kwargs: Any):
            self.lab, self.target = split_target(hostname, kwargs.pop("lab_root", None))
            super().__init__(hostname, *args, **kwargs)

        def get_pytest_id(self) -> str:
            return f"{SCHEME}://{self.hostname}"

        def run(self, command: str, *args: str, **kwargs: Any) -> _tbase.CommandResult:
            cmd = self.get_command(command, *args)
            node, _sep, pod = self.target.partition("/")
            argv = self.lab.nsenter_argv(node)
            if pod:
                argv += [tool("ip"), "netns", "exec", pod]
            argv += ["/bin/sh", "-c", cmd]
            out = self.run_local(" ".join(shlex.quote(a) for a in argv))
            out.command = self.encode(cmd)
            return out

        def get_encoding(self) -> str:
            return "utf-8"
else:  # pragma: no cover
    NetnsBackend = None


def _parse_hostspec(original):
    def parse_hostspec(hostspec):
        if isinstance(hostspec, str) and hostspec.startswith(SCHEME + "://"):
            url = urllib.parse.urlparse(hostspec)
            return (url.netloc + url.path).strip() or None, {"connection": SCHEME}
        return original(hostspec)
    parse_hostspec.netns_wrapped = True
    return parse_hostspec


def register() -> None:
    """Make ``netns://`` known to testinfra (idempotent)."""
    if _tbackend is None:
        raise RuntimeError("pytest-testinfra is not installed")
    _tbackend.BACKENDS[SCHEME] = f"{__name__}.NetnsBackend"
    # testinfra keeps only the URL's netloc; the node is in the path: keep it
    if not getattr(_tbackend.parse_hostspec, "netns_wrapped", False):
        _tbackend.parse_hostspec = _parse_hostspec(_tbackend.parse_hostspec)


def get_host(lab: str, node: str):
    """testinfra Host for ``node`` (or ``node/pod``) of ``lab``."""
    import testinfra  # noqa: PLC0415
    register()
    return testinfra.get_host(f"{SCHEME}://{lab}/{node}")
