"""The real flannel next to ours in a lab: flanneld and flannel's CNI plugin, built from their Go
modules by ``tests/realbin/build.sh`` into a cache folder outside git, and the lab's etcd.

- ``binaries()``: the paths (building what is missing, once per machine); without Go the tests
  that need them skip, but under CI (``CI=true``) they fail.
- ``LabEtcd``: etcd in the lab's fabric namespace on 198.18.0.1:2379 (every node reaches it over
  its underlay; nothing listens outside the lab).
- ``Flanneld``: a flanneld process inside a lab node (its net, mount and UTS namespaces, so its own
  ``/run/flannel``), on the lab's etcd, ``--iface eth0``, healthz off; stopped by ``stop()`` and,
  whatever happens, by ``Lab.down()`` (it kills every process in the lab's namespaces).
- ``manifest_docs()``: net-conf.json and cni-conf.json from the manifest the role renders.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tests" / "realbin" / "build.sh"
FLANNEL_VERSION = "v0.28.9"
CNI_VERSION = "v0.9.1"  # see tests/realbin/build.sh: flannel-io/cni-plugin is refused by the proxy
ETCD_IP = "198.18.0.1"  # the fabric's address on segment 1
ETCD_URL = f"http://{ETCD_IP}:2379"
PREFIX = "/coreos.com/network"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubeasz-network"
    return Path(os.environ.get("FLANNEL_BIN_CACHE") or default)


def binaries() -> dict:
    """{"flanneld": path, "cni_path": folder with flannel's CNI plugin and Debian's}, built when
    missing. Skips without Go; fails instead under CI, where the build must be there."""
    flanneld = cache_dir() / f"flannel-{FLANNEL_VERSION}" / "bin" / "flannel"
    cni_path = cache_dir() / f"cni-{CNI_VERSION}" / "bin"
    if not (os.access(flanneld, os.X_OK) and os.access(cni_path / "flannel", os.X_OK)
            and os.access(cni_path / "bridge", os.X_OK)):
        proc = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1800,
                              check=False)
        if proc.returncode != 0:
            message = f"the real flannel binaries could not be built: {proc.stderr[-2000:]}"
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(message)
            pytest.skip(message)
    return {"flanneld": str(flanneld), "cni_path": str(cni_path)}


class LabEtcd:
    """etcd in the lab's fabric namespace, data in a temporary folder; ``stop()`` removes both."""

    def __init__(self, lab):
        self.lab = lab
        self.data = tempfile.mkdtemp(prefix="kubeasz-etcd-")
        argv = lab.nsenter_argv("fabric") + [
            "etcd", "--name", "default", "--data-dir", self.data,
            "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "default=http://127.0.0.1:2380", "--logger", "zap",
            "--log-level", "error"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while self.ctl("endpoint", "health", check=False).returncode != 0:
            assert time.monotonic() < deadline and self.proc.poll() is None, "etcd did not start"
            time.sleep(0.2)

    def ctl(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.lab.nsenter_argv("fabric") + ["etcdctl", "--endpoints", ETCD_URL,
                                                                 *args],
                              capture_output=True, text=True, timeout=60, check=False,
                              env=dict(os.environ, ETCDCTL_API="3"))
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def get(self, key: str) -> str | None:
        out = self.ctl("get", "--print-value-only", key).stdout
        return out[:-1] if out.endswith("\n") else (out or None)

    def put(self, key: str, value: str) -> None:
        self.ctl("put", key, "--", value)

    def leases(self, prefix: str = PREFIX) -> dict:
        """{subnet key: value (parsed JSON)} under ``<prefix>/subnets/``."""
        out = self.ctl("get", "--prefix", f"{prefix}/subnets/", "-w", "json").stdout
        import base64
        found = {}
        for kv in json.loads(out).get("kvs", []) or []:
            key = base64.b64decode(kv["key"]).decode()
            found[key.rsplit("/", 1)[1]] = json.loads(base64.b64decode(kv["value"]))
        return found

    def stop(self) -> None:
        stop_group(self.proc, 10)
        subprocess.run(["rm", "-rf", self.data], check=False)


def stop_group(proc, grace: float) -> None:
    """Stop a process started in a session of its own, and its children: TERM, then KILL after grace seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class Flanneld:
    """A real flanneld inside a lab node, on the lab's etcd; its log in ``self.log``."""

    def __init__(self, lab, node: str, flanneld: str, prefix: str = PREFIX, iface: str = "eth0",
                 ip_masq: bool = True, logdir: str | None = None):
        self.lab, self.node = lab, node
        self.log = Path(logdir or tempfile.gettempdir()) / f"flanneld-{lab.name}-{node}.log"
        argv = lab.nsenter_argv(node) + [
            flanneld, f"--etcd-endpoints={ETCD_URL}", f"--etcd-prefix={prefix}",
            f"--iface={iface}", "--healthz-port=0", "--subnet-file=/run/flannel/subnet.env",
            *(["--ip-masq"] if ip_masq else [])]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})

    def wait_ready(self, timeout: float = 60) -> dict:
        """Wait until flanneld wrote subnet.env; return it parsed."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.lab.exec(self.node, ["cat", "/run/flannel/subnet.env"], check=False)
            if proc.returncode == 0 and "FLANNEL_SUBNET=" in proc.stdout:
                return dict(line.split("=", 1) for line in proc.stdout.split())
            assert self.proc.poll() is None, f"flanneld on {self.node} exited: {self.tail()}"
            assert time.monotonic() < deadline, f"flanneld on {self.node} not ready: {self.tail()}"
            time.sleep(0.2)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_group(self.proc, 15)


def manifest_docs(manifest: Path) -> tuple[dict, dict]:
    """(net-conf.json, cni-conf.json) of the ConfigMap in the manifest the role rendered."""
    for doc in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
        if doc and doc.get("kind") == "ConfigMap":
            data = doc["data"]
            return json.loads(data["net-conf.json"]), json.loads(data["cni-conf.json"])
    raise AssertionError(f"no ConfigMap in {manifest}")


def write_conflist(lab, node: str, conflist: dict) -> None:
    """Put ``conflist`` where the install-cni container puts it (/etc/cni/net.d/10-flannel.conflist)."""
    lab.exec(node, ["sh", "-c", "cat > /etc/cni/net.d/10-flannel.conflist"],
             input=json.dumps(conflist, indent=2) + "\n")
