"""The lab: cluster nodes made of Linux namespaces on one machine (no VMs).

Layout of a lab called ``NAME`` (``D = <root>/NAME``, root ``/run/kubeasz-lab``)::

    D/                 private bind mount of itself (namespace files can be bound here)
    D/fabric.net       network namespace of the switch/router: bridges seg1 (198.18.0.1/24)
                       and seg2 (198.18.1.1/24), ip_forward=1 (inside the fabric only); with
                       IPv6 also fd53:18::1/64 and fd53:18:0:1::1/64, IPv6 forwarding=1
    D/<node>.net|mnt|uts
                       the namespaces of node ``<node>`` (node1..nodeN); inside its mount
                       namespace /sys is the node's sysfs and /run/flannel, /etc/cni/net.d,
                       /var/lib/cni, /run/netns are private tmpfs mounts
    D/lab.json         saved state (nodes, IPs, segments, pods)

Node ``i`` has ``eth0`` with 198.18.0.(10+i)/24 (or 198.18.1.(10+i)/24 for the last node when
the lab has two segments), default route via the fabric's ``.1``. A lab made with ``ipv6``
(``ezctl lab up --ipv6``) gives every node the IPv6 twin of its IPv4 address next to it:
198.18.S.H ↔ fd53:18:0:S::H/64 (the IPv4 digits reused as IPv6 groups, see ``address6``), and an
IPv6 default route via the fabric's fd53:18:0:S::1; DAD is off on lab interfaces (``nodad``,
``accept_dad=0`` in the lab's namespaces) so addresses work at once. Pods are network namespaces
made with ``ip netns add`` inside a node and wired with the real CNI plugins, following the
node's ``/etc/cni/net.d/10-flannel.conflist``; a conflist with an IPv4 and an IPv6 host-local
range gives a pod both (state ``ip`` and ``ip6``).

Nothing ever happens in the host's own network namespace. ``down()`` removes all of it, also
after a half-failed ``up()``: it works from /proc/mounts and the files under ``D``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
from pathlib import Path

from ezctl import labnodes
from ezctl.labnet import MAX_NODES, NAME_RE, node_address, node_names, node_record
from ezctl.labns import FABRIC, NS_KINDS, Namespaces
from ezctl.labsys import LabError, mounts, node_python, run, tool, unmount

DEFAULT_ROOT = "/run/kubeasz-lab"
CNI_PATH = "/usr/lib/cni"
CNI_CONFLIST = "/etc/cni/net.d/10-flannel.conflist"
# plugins that need iptables; skipped (with a warning in the pod record) when they fail
OPTIONAL_PLUGINS = ("portmap",)
POD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def pod_ips(result: dict | None) -> dict:
    """{"ip": first IPv4, "ip6": first IPv6} of a CNI ADD result (a family without one is absent)."""
    found = {}
    for entry in (result or {}).get("ips", []) or []:
        text = str(entry.get("address", "")).split("/", maxsplit=1)[0]
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        key = "ip" if addr.version == 4 else "ip6"
        found.setdefault(key, str(addr))
    return found


def primary_ip(ips: dict) -> str | None:
    """The pod's primary IP: IPv4 when it has one, else IPv6."""
    return ips.get("ip") or ips.get("ip6")


class Lab(Namespaces):
    """A lab of namespace nodes called ``name`` under ``root``: its namespaces (``Namespaces``),
    its state (lab.json) and its pods."""

    def __init__(self, name: str, root: str = DEFAULT_ROOT):
        if not NAME_RE.match(name or ""):
            raise LabError(f"invalid lab name {name!r}: use lower-case letters, digits, '-' "
                           "and '_' (at most 32 characters)")
        super().__init__(Path(root), Path(root) / name)
        self.name = name
        self.state_file = self.dir / "lab.json"

    # ----------------------------------------------------------------- state
    def load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise LabError(f"{self.state_file} is corrupt ({exc}): run ezctl lab down") from exc

    def _save_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def _locked(self):
        """Serialise state changes (pod_add from several processes)."""
        with open(self.dir / ".lock", "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def changing_state(self):
        """The state, locked against other changes, to change in the block; saved when the block
        ends without an error."""
        with self._locked():
            state = self.load_state()
            yield state
            self._save_state(state)

    # ----------------------------------------------------------------- up
    def up(self, nodes: int = 4, segments: int = 1, ipv6: bool | None = None) -> dict:
        """Build the lab (idempotent) and return its state.

        ``ipv6``: give nodes and fabric IPv6 too (kept in lab.json as ``ipv6``, so nodes added
        later get it); None keeps what an existing lab has (IPv4 only for a new lab).
        """
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates namespaces and mounts)")
        if not 1 <= int(nodes) <= MAX_NODES:
            raise LabError(f"nodes must be between 1 and {MAX_NODES}, got {nodes}")
        if segments not in (1, 2):
            raise LabError(f"segments must be 1 or 2, got {segments}")
        if segments == 2 and nodes < 2:
            raise LabError("two segments need at least two nodes")
        old = self.load_state() if self.state_file.exists() else {}
        if ipv6 is None:
            ipv6 = bool(old.get("ipv6", False))
        ipv6 = bool(ipv6)
        if old and (len(old.get("nodes", [])) != nodes or old.get("segments") != segments
                    or bool(old.get("ipv6", False)) != ipv6):
            raise LabError(f"lab {self.name} exists with {len(old.get('nodes', []))} nodes and "
                           f"{old.get('segments')} segment(s), "
                           f"{'with' if old.get('ipv6') else 'without'} IPv6: run ezctl lab "
                           f"down {self.name} first")
        self.mount_dir()
        self.make_fabric(segments, ipv6)
        state = {"name": self.name, "dir": str(self.dir), "segments": segments, "ipv6": ipv6,
                 "nodes": [], "pods": old.get("pods", {})}
        for index, node in enumerate(node_names(nodes), start=1):
            segment, ip = node_address(index, nodes, segments)
            record = node_record(node, segment, ip, ipv6)
            self.build_node(record)
            state["nodes"].append(record)
            state["pods"].setdefault(node, {})
        with self._locked():
            state["pods"] = self.load_state().get("pods", state["pods"])
            self._save_state(state)
        return state

    # ----------------------------------------------------------------- down
    def down(self) -> None:
        """Remove pods, processes, namespaces, mounts and files of the lab."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it removes namespaces and mounts)")
        nodes = sorted(p.name[:-4] for p in self.dir.glob("*.mnt")) if self.dir.is_dir() else []
        inodes = self.ns_inodes(nodes)
        # kill while every namespace is still mounted: a freed namespace's inode number is soon
        # another's, maybe another lab's, whose processes would be killed by that number
        self.kill_processes(inodes)
        for node in nodes:
            if self.node_exists(node):
                self.delete_pods(node)
        for _attempt in range(10):  # lab dir may be stacked when a mount was repeated
            left = self.mounts_under()
            if not left:
                break
            for point in sorted(left, key=lambda p: (-p.count("/"), p)):
                unmount(point)
        if self.mounts_under():
            raise LabError(f"could not unmount everything under {self.dir}: "
                           f"{self.mounts_under()}")
        if self.dir.is_dir():
            shutil.rmtree(self.dir)
        with contextlib.suppress(OSError):
            self.root.rmdir()

    # ----------------------------------------------------------------- status
    def status(self) -> dict:
        state = self.load_state() if self.dir.is_dir() else {}
        here = set(mounts())
        names = [n["name"] for n in state.get("nodes", [])]
        if self.dir.is_dir():
            names += sorted({p.name[:-4] for p in self.dir.glob("*.mnt")} - set(names))
        nodes = []
        by_name = {n["name"]: n for n in state.get("nodes", [])}
        for name in names:
            info = dict(by_name.get(name, {"name": name}))
            info["present"] = all(str(self.ns_path(name, k)) in here for k in NS_KINDS)
            nodes.append(info)
        return {
            "name": self.name, "dir": str(self.dir),
            "up": bool(nodes) and all(n["present"] for n in nodes)
            and str(self.ns_path(FABRIC, "net")) in here,
            "segments": state.get("segments"), "ipv6": bool(state.get("ipv6", False)),
            "nodes": nodes, "pods": state.get("pods", {}),
        }

    # ----------------------------------------------------------------- pods
    def cni_path(self) -> str:
        """The folder of CNI plugin binaries pods are made with: Debian's ``/usr/lib/cni`` unless
        ``set_cni_path`` chose another (one holding flannel's own CNI plugin, say)."""
        return self.load_state().get("cni_path") or CNI_PATH

    def set_cni_path(self, path: str | None) -> None:
        """Make pods with the plugins in ``path`` from now on (None: Debian's again)."""
        if path is not None and not os.path.isdir(path):
            raise LabError(f"CNI plugin folder {path} not found")
        with self.changing_state() as state:
            if path is None:
                state.pop("cni_path", None)
            else:
                state["cni_path"] = str(path)

    def _conflist(self, node: str) -> dict:
        proc = self.exec(node, ["/bin/cat", CNI_CONFLIST], check=False)
        if proc.returncode != 0:
            raise LabError(f"{node}: {CNI_CONFLIST} is missing (the flannel role writes it): "
                           "run ezctl setup <cluster> network first")
        try:
            conf = json.loads(proc.stdout)
            plugins = conf["plugins"]
            assert isinstance(plugins, list) and plugins
        except (ValueError, KeyError, AssertionError) as exc:
            raise LabError(f"{node}: {CNI_CONFLIST} is not a CNI conflist: {exc}") from exc
        return conf

    def _cni(self, node, plugin, conf, command, pod, prev=None):
        ptype = plugin.get("type", "")
        if not re.match(r"^[A-Za-z0-9_-]+\Z", ptype):
            raise LabError(f"{node}: bad CNI plugin type {ptype!r}")
        cni_path = self.cni_path()
        binary = os.path.join(cni_path, ptype)
        if not os.access(binary, os.X_OK):
            raise LabError(f"{node}: CNI plugin {ptype!r} not found in {cni_path}")
        netconf = dict(plugin, name=conf.get("name", "cbr0"),
                       cniVersion=conf.get("cniVersion", "0.3.1"))
        if prev is not None:
            netconf["prevResult"] = prev
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
               "CNI_CONTAINERID": f"{self.name}-{node}-{pod}", "CNI_NETNS": f"/run/netns/{pod}",
               "CNI_IFNAME": "eth0", "CNI_PATH": cni_path}
        argv = self.nsenter_argv(node) + [tool("env"), "-i"] + \
            [f"{k}={v}" for k, v in env.items()] + [binary]
        proc = run(argv, input=json.dumps(netconf), check=False)
        if proc.returncode != 0:
            raise LabError(f"{node}/{pod}: CNI {command} of plugin {ptype!r} failed: "
                           f"{(proc.stdout or '').strip()} {(proc.stderr or '').strip()}")
        if command == "ADD":
            try:
                return json.loads(proc.stdout)
            except ValueError as exc:
                raise LabError(f"{node}/{pod}: CNI plugin {ptype!r} returned no result") from exc
        return None

    def pod_add(self, node: str, pod: str) -> str:
        """Create pod ``pod`` on ``node`` with the node's CNI conflist; return its primary IP.

        The primary IP is the IPv4 one, else the IPv6 one (an IPv6-only conflist); lab.json keeps
        both as ``ip`` and ``ip6`` (see ``pod_addresses``).
        """
        if not POD_RE.match(pod or ""):
            raise LabError(f"invalid pod name {pod!r}")
        conf = self._conflist(node)
        ip = tool("ip")
        listed = self.exec(node, [ip, "netns", "list"]).stdout.split()
        if pod in listed:
            raise LabError(f"pod {pod} already exists on {node}")
        self.exec(node, [ip, "netns", "add", pod])
        try:
            self.exec(f"{node}/{pod}", [ip, "link", "set", "lo", "up"])
            # the pod's eth0 (made in here by the bridge plugin) skips DAD: its IPv6 address
            # is usable at once (the pod's own namespace; harmless without IPv6)
            self.exec(f"{node}/{pod}", [tool("sysctl"), "-q", "-w",
                                        "net.ipv6.conf.all.accept_dad=0",
                                        "net.ipv6.conf.default.accept_dad=0"], check=False)
            result, skipped = None, []
            for plugin in conf["plugins"]:
                try:
                    result = self._cni(node, plugin, conf, "ADD", pod, result)
                except LabError:
                    if plugin.get("type") not in OPTIONAL_PLUGINS:
                        raise
                    skipped.append(plugin.get("type"))
            ips = pod_ips(result)
            pod_ip = primary_ip(ips)
            if not pod_ip:
                raise LabError(f"{node}/{pod}: CNI result holds no IP address: {result}")
        except BaseException:
            with contextlib.suppress(LabError, OSError):
                self._cni_del(node, pod, conf, None)
            self.exec(node, [ip, "netns", "delete", pod], check=False)
            raise
        with self.changing_state() as state:
            state.setdefault("pods", {}).setdefault(node, {})[pod] = {
                **ips, "result": result, "skipped": skipped}
        return pod_ip

    def pod_addresses(self, node: str, pod: str) -> dict:
        """{"ip": IPv4, "ip6": IPv6} of a pod from lab.json (a family it lacks is absent)."""
        record = self.load_state().get("pods", {}).get(node, {}).get(pod)
        if record is None:
            raise LabError(f"pod {pod} not found on {node}")
        return {k: record[k] for k in ("ip", "ip6") if record.get(k)}

    def _cni_del(self, node, pod, conf, result):
        prev = result if str(conf.get("cniVersion", "0.3.1")) >= "0.4.0" else None
        errors = []
        for plugin in reversed(conf["plugins"]):
            try:
                self._cni(node, plugin, conf, "DEL", pod, prev)
            except LabError as exc:
                if plugin.get("type") not in OPTIONAL_PLUGINS:
                    errors.append(str(exc))
        if errors:
            raise LabError("; ".join(errors))

    def pod_del(self, node: str, pod: str) -> None:
        """CNI DEL for ``pod`` on ``node`` (releasing its IP) and delete its namespace."""
        ip = tool("ip")
        if pod not in self.exec(node, [ip, "netns", "list"]).stdout.split():
            raise LabError(f"pod {pod} not found on {node}")
        result = self.load_state().get("pods", {}).get(node, {}).get(pod, {}).get("result")
        try:
            self._cni_del(node, pod, self._conflist(node), result)
        finally:
            self.exec(node, [ip, "netns", "delete", pod], check=False)
            with self.changing_state() as state:
                state.get("pods", {}).get(node, {}).pop(pod, None)

    # ----------------------------------------------------------------- nodes join and leave
    def node_add(self, segment: int = 1) -> tuple[str, str]:
        """One more node (the next free ``node<i>``) on ``segment``; returns (name, ip)."""
        return labnodes.node_add(self, segment)

    def node_del(self, node: str) -> None:
        """Remove ``node``: its processes, pods, namespaces and veth (the others stay)."""
        labnodes.node_del(self, node)

    # ----------------------------------------------------------------- cluster folder
    def write_cluster(self, base_dir, cluster: str | None = None,
                      overwrite_config: bool = False) -> Path:
        """Write ``<base>/clusters/<cluster>/hosts`` (and config.yml when missing)."""
        cluster = cluster or self.name
        state = self.load_state()
        if not state.get("nodes"):
            raise LabError(f"lab {self.name} is not up: run ezctl lab up {self.name}")
        base = Path(base_dir).resolve()
        cdir = base / "clusters" / cluster
        cdir.mkdir(parents=True, exist_ok=True)
        python = node_python()

        def line(n):
            ip6 = f" kubeasz_node_ip6={n['ip6']}" if n.get("ip6") else ""
            return (f"{n['name']} ansible_connection=kubeasz.network.netns "
                    f"ansible_host={n['name']} kubeasz_lab_dir={self.dir} "
                    f"kubeasz_node_ip={n['ip']}{ip6} ansible_python_interpreter={python}")
        first = state["nodes"][0]
        hosts = [
            f"# written by `ezctl lab up {cluster}`: nodes of lab {self.name} ({self.dir})",
            "[etcd]", line(first), "", "[kube_master]", line(first), "", "[kube_node]",
            *[line(n) for n in state["nodes"]], "", "[all:vars]",
            'CLUSTER_NETWORK="flannel"', 'CLUSTER_CIDR="172.20.0.0/16"',
            *(['CLUSTER_CIDR_IPV6="fd00:20::/56"'] if state.get("ipv6") else []),
            'SERVICE_CIDR="10.68.0.0/16"', f'base_dir="{base}"', f'cluster_dir="{cdir}"',
            'bin_dir="/opt/kube/bin"', "",
        ]
        (cdir / "hosts").write_text("\n".join(hosts), encoding="utf-8")
        config = cdir / "config.yml"
        if overwrite_config or not config.exists():
            config.write_text(
                f"# lab cluster {cluster}: Ansible is flannel's control plane (no flanneld)\n"
                "FLANNEL_DATAPLANE: ansible\nFLANNEL_BACKEND: vxlan\nDIRECT_ROUTING: false\n"
                "NODE_CIDR_LEN: 24\nFLANNEL_SUBNET_STORE: file\n", encoding="utf-8")
        return cdir
