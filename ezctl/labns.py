"""The lab's namespaces: the files they are bound to under the lab's folder, entering them,
making the fabric and the nodes (namespaces, veth, addresses), and finding and stopping what
lives in them. ``Lab`` (ezctl/lab.py) adds the state (lab.json) and the pods on top.

Nothing ever happens in the host's own network namespace: commands run in the fabric's or a
node's namespaces (``nsenter``), or make new ones (``unshare``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path

from ezctl.labnet import NODE_IFACE, PREFIXLEN6, address6, gateway
from ezctl.labsys import LabError, mounts, run, tool, unmount

FABRIC = "fabric"
NODE_MOUNTS = ("/run/flannel", "/etc/cni/net.d", "/var/lib/cni", "/run/netns")
NS_KINDS = ("net", "mnt", "uts")  # the namespaces of a node


class Namespaces:
    """The namespaces bound under ``directory`` (a lab's folder in ``root``)."""

    def __init__(self, root: Path, directory: Path):
        self.root = root
        self.dir = directory

    # ----------------------------------------------------------------- files
    def ns_path(self, node: str, kind: str) -> Path:
        return self.dir / f"{node}.{kind}"

    def _is_mounted(self, path) -> bool:
        return str(path) in mounts()

    def mounts_under(self) -> list[str]:
        """The mount points in the lab's folder, the folder's own included."""
        prefix = str(self.dir) + "/"
        return [m for m in mounts() if m == str(self.dir) or m.startswith(prefix)]

    def node_exists(self, node: str) -> bool:
        here = set(mounts())
        return all(str(self.ns_path(node, k)) in here for k in NS_KINDS)

    def file_inodes(self, but: str | None = None) -> set[tuple[int, int]]:
        """(dev, inode) of the namespace files bound under the lab's folder (not node ``but``'s)."""
        found = set()
        here = set(mounts())
        for path in self.dir.glob("*.*") if self.dir.is_dir() else []:
            if str(path) in here and path.suffix[1:] in NS_KINDS and path.stem != but:
                st = path.stat()
                found.add((st.st_dev, st.st_ino))
        return found

    def remove_ns_files(self, node: str) -> None:
        """Unmount and delete the namespace files of ``node``."""
        for kind in NS_KINDS:
            path = self.ns_path(node, kind)
            while str(path) in set(mounts()):
                unmount(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # ----------------------------------------------------------------- entering
    def nsenter_argv(self, node: str) -> list[str]:
        """argv prefix that runs a command inside ``node`` (net, mount and UTS namespaces)."""
        if node == FABRIC:
            return [tool("nsenter"), f"--net={self.dir / 'fabric.net'}", "--"]
        if not all(self.ns_path(node, k).exists() for k in NS_KINDS):
            raise LabError(f"lab node {node} not found under {self.dir}: run ezctl lab up")
        return [tool("nsenter"), f"--net={self.ns_path(node, 'net')}",
                f"--mount={self.ns_path(node, 'mnt')}", f"--uts={self.ns_path(node, 'uts')}",
                "--"]

    def exec(self, node: str, argv, input=None, check=True, text=True, capture=True,
             timeout=120):
        """Run ``argv`` inside ``node`` (or ``node/pod``) → CompletedProcess.

        Inside a node the working directory is ``/``: use absolute paths. Output is text
        unless ``text=False``; ``capture=False`` lets it go to our stdout/stderr.
        """
        node, _sep, pod = node.partition("/")
        prefix = self.nsenter_argv(node)
        if pod:
            prefix += [tool("ip"), "netns", "exec", pod]
        if isinstance(input, bytes):
            text = False
        return run(prefix + list(argv), input=input, check=check, text=text, capture=capture,
                   timeout=timeout)

    def fabric(self, *argv, check=True):
        """Run ``argv`` in the fabric's network namespace."""
        return run([tool("nsenter"), f"--net={self.dir / 'fabric.net'}", "--", *argv],
                   check=check)

    # ----------------------------------------------------------------- making
    def mount_dir(self) -> None:
        """The lab's folder, a private bind mount of itself (namespace files are bound in it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self._is_mounted(self.dir):
            run([tool("mount"), "--bind", self.dir, self.dir])
        run([tool("mount"), "--make-private", self.dir])

    def _new_ns_files(self, base: str, kinds) -> bool:
        """Prepare empty files for namespaces; False when all are already bound."""
        here = set(mounts())
        paths = [self.ns_path(base, k) for k in kinds]
        if all(str(p) in here for p in paths):
            return False
        for path in paths:  # half-made: start over for this node
            while str(path) in set(mounts()):
                run([tool("umount"), path])
            path.unlink(missing_ok=True)
            path.touch()
        return True

    def make_fabric(self, segments: int, ipv6: bool = False) -> None:
        """The fabric's namespace with a bridge per segment (idempotent: missing parts are made)."""
        if self._new_ns_files(FABRIC, ("net",)):
            run([tool("unshare"), f"--net={self.ns_path(FABRIC, 'net')}", "true"])
        ip = tool("ip")
        self.fabric(ip, "link", "set", "lo", "up")
        self.fabric(tool("sysctl"), "-q", "-w", "net.ipv4.ip_forward=1")
        if ipv6:  # inside the fabric only; links made from now on skip DAD
            self.fabric(tool("sysctl"), "-q", "-w", "net.ipv6.conf.all.forwarding=1",
                        "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        for seg in range(1, segments + 1):
            bridge = f"seg{seg}"
            if self.fabric(ip, "link", "show", bridge, check=False).returncode != 0:
                self.fabric(ip, "link", "add", bridge, "type", "bridge")
            self.fabric(ip, "addr", "replace", f"{gateway(seg)}/24", "dev", bridge)
            if ipv6:
                self.fabric(ip, "-6", "addr", "replace",
                            f"{address6(gateway(seg))}/{PREFIXLEN6}", "dev", bridge, "nodad")
            self.fabric(ip, "link", "set", bridge, "up")

    def build_node(self, record: dict) -> None:
        """Node ``record["name"]`` (its namespaces, wired to its segment) as ``record`` says."""
        self.make_node(record["name"])
        self.wire_node(record["name"], record["segment"], record["ip"], record.get("ip6"))

    def make_node(self, node: str) -> None:
        """The namespaces of ``node`` with its private mounts (nothing when they are bound)."""
        if not self._new_ns_files(node, NS_KINDS):
            return
        for path in NODE_MOUNTS:  # mount points must exist on the (shared) filesystem
            os.makedirs(path, exist_ok=True)
        root = shlex.quote(str(self.root))
        script = "\n".join([
            "set -e",
            f"hostname {node}",
            # the node must not hold copies of any lab's namespace files (they would keep
            # other nodes' and other labs' namespaces alive after their down)
            "mounts=$(cat /proc/self/mounts)",
            "printf '%s\\n' \"$mounts\" | while read -r _ m _; do case \"$m\" in",
            f"  {root}/*/*) ;;",
            f"  {root}/*) umount -l \"$m\" 2>/dev/null || true ;;",
            "esac; done",
            "mount -t sysfs sysfs /sys",
            *[f"mount -t tmpfs -o mode=0755 tmpfs {p}" for p in NODE_MOUNTS],
            "ip link set lo up",
        ])
        run([tool("unshare"), f"--net={self.ns_path(node, 'net')}",
             f"--mount={self.ns_path(node, 'mnt')}", f"--uts={self.ns_path(node, 'uts')}",
             "--propagation", "private", "/bin/sh", "-c", script])

    def wire_node(self, node: str, segment: int, ip_addr: str, ip6: str | None = None) -> None:
        """The node's eth0 on ``segment``'s bridge, with its addresses and default routes."""
        ip = tool("ip")
        # before eth0 exists: links made in the node (eth0, the CNI bridge cni0) skip DAD, so
        # IPv6 addresses work at once (also in an IPv4 lab whose conflist has an IPv6 range:
        # cni0's gateway address would stay tentative for a second or two); a NIC flap keeps the
        # IPv6 addresses, as a real node's network manager would put them back
        self.exec(node, [tool("sysctl"), "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
                         "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.keep_addr_on_down=1",
                         "net.ipv6.conf.default.keep_addr_on_down=1"])
        if self.fabric(ip, "link", "show", node, check=False).returncode != 0:
            self.fabric(ip, "link", "add", node, "type", "veth", "peer", "name", NODE_IFACE,
                        "netns", self.ns_path(node, "net"))
        self.fabric(ip, "link", "set", node, "master", f"seg{segment}")
        self.fabric(ip, "link", "set", node, "up")
        self.exec(node, [ip, "addr", "replace", f"{ip_addr}/24", "dev", NODE_IFACE])
        self.exec(node, [ip, "link", "set", NODE_IFACE, "up"])
        self.exec(node, [ip, "route", "replace", "default", "via", gateway(segment),
                         "dev", NODE_IFACE])
        if ip6:
            self.exec(node, [tool("sysctl"), "-q", "-w",
                             f"net.ipv6.conf.{NODE_IFACE}.accept_dad=0"])
            self.exec(node, [ip, "-6", "addr", "replace", f"{ip6}/{PREFIXLEN6}", "dev",
                             NODE_IFACE, "nodad"])
            self.exec(node, [ip, "-6", "route", "replace", "default", "via",
                             address6(gateway(segment)), "dev", NODE_IFACE])

    # ----------------------------------------------------------------- what lives in them
    def ns_inodes(self, nodes) -> set[tuple[int, int]]:
        """(dev, inode) of every namespace the lab holds, the pods of ``nodes`` included."""
        found = self.file_inodes()
        for node in nodes:
            if not self.node_exists(node):
                continue
            proc = self.exec(node, ["/bin/sh", "-c", "for f in /run/netns/*; do "
                                    "[ -e \"$f\" ] && stat -L -c '%d %i' \"$f\"; done; true"],
                             check=False)
            for line in proc.stdout.splitlines():
                with contextlib.suppress(ValueError):
                    dev, ino = line.split()
                    found.add((int(dev), int(ino)))
        return found

    def delete_pods(self, node: str) -> None:
        proc = self.exec(node, [tool("ip"), "netns", "list"], check=False)
        for line in proc.stdout.splitlines():
            pod = line.split()[0] if line.split() else ""
            if pod:
                self.exec(node, [tool("ip"), "netns", "delete", pod], check=False)

    @staticmethod
    def kill_processes(inodes) -> None:
        """Stop every process living in one of the lab's namespaces."""
        def victims():
            pids = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                if int(pid) == os.getpid():
                    continue
                for kind in NS_KINDS:
                    try:
                        st = os.stat(f"/proc/{pid}/ns/{kind}")
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) in inodes:
                        pids.append(int(pid))
                        break
            return pids
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            pids = victims()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and victims():
                time.sleep(0.05)
