"""`make demo`: a kubeasz-shaped cluster of namespace nodes, networked by `ezctl setup demo 06`.

It brings up a 4-node lab, runs step 06 with the vxlan backend, adds a pod per node, shows each
node's routes, a pod-to-pod ping matrix and a traceroute, pods reaching the outside through
flanneld's masquerade rules, then switches DIRECT_ROUTING on, runs 06 again and shows what
changed. The lab stays up afterwards for you to explore.
"""
from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path

import yaml

from ezctl import cli, reach
from ezctl.lab import Lab

CLUSTER = "demo"
NODES = 4
OUTSIDE = "198.18.0.1"  # the lab's fabric: it has no route to the pods


def banner(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def ezctl(*argv: str) -> None:
    print("$ ezctl " + " ".join(argv), flush=True)
    if cli.main(list(argv)) != 0:
        sys.exit(f"demo: `ezctl {' '.join(argv)}` failed")


def set_config(config: Path, **values) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    data.update(values)
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    print(f"$ # {config}: " + ", ".join(f"{k}: {v}" for k, v in values.items()))


def routes(lab: Lab) -> dict[str, str]:
    return {n: lab.exec(n, ["ip", "route", "show"]).stdout for n in node_names(lab)}


def node_names(lab: Lab) -> list[str]:
    return [n["name"] for n in lab.status()["nodes"]]


def show_routes(table: dict[str, str]) -> None:
    for node, text in table.items():
        print(f"--- {node}: ip route")
        print(text.rstrip())


def ensure_pods(lab: Lab) -> dict[str, str]:
    """One pod per node, wired by the real CNI plugins from the role's conflist."""
    pods = lab.status()["pods"]
    targets = {}
    for node in node_names(lab):
        pod = f"pod-{node}"
        known = pods.get(node, {}).get(pod)
        targets[f"{node}/{pod}"] = known["ip"] if known else lab.pod_add(node, pod)
    return targets


def show_reachability(lab: Lab, pods: dict[str, str]) -> bool:
    matrix = reach.ping_matrix(lambda src, ip: reach.ping(lab, src, ip), pods)
    print(reach.format_matrix(matrix, list(pods)))
    src, dst = list(pods)[1], list(pods)[0]
    print(f"\ntraceroute from {src} to {dst} ({pods[dst]}):")
    print(lab.exec(src, ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "6", pods[dst]]).stdout.rstrip())
    return all(matrix.values())


def show_egress(lab: Lab, pods: dict[str, str]) -> bool:
    """Every pod pings the fabric; only the node's masquerade brings the reply back."""
    answered = {target: reach.ping(lab, target, OUTSIDE) for target in pods}
    for target, ok in answered.items():
        print(f"{target} -> {OUTSIDE}: {'answered' if ok else 'NO ANSWER'}")
    saved = lab.exec("node1", ["iptables-save"]).stdout
    print("--- node1: flanneld's rules (iptables-save)")
    print("\n".join(line for line in saved.splitlines() if "FLANNEL-" in line or "flanneld" in line))
    return all(answered.values())


def main() -> int:
    start = time.monotonic()
    base = Path.cwd()
    lab = Lab(CLUSTER)
    banner(f"a lab cluster of {NODES} namespace nodes on one L2 segment (underlay 198.18.0.0/24)")
    ezctl("lab", "up", CLUSTER, "--nodes", str(NODES))
    config = base / "clusters" / CLUSTER / "config.yml"
    set_config(config, FLANNEL_BACKEND="vxlan", DIRECT_ROUTING=False)

    banner("kubeasz step 06 with the vxlan backend")
    ezctl("setup", CLUSTER, "06")
    pods = ensure_pods(lab)
    before = routes(lab)
    show_routes(before)
    banner("pod-to-pod pings across nodes (vxlan)")
    ok = show_reachability(lab, pods)
    banner(f"pods reach the outside ({OUTSIDE}, no route back to the pods): masqueraded to the node IP")
    ok = show_egress(lab, pods) and ok

    banner("switch on DIRECT_ROUTING and run step 06 again")
    set_config(config, DIRECT_ROUTING=True)
    ezctl("setup", CLUSTER, "06")
    after = routes(lab)
    for node in before:
        print(f"--- {node}: what changed in ip route")
        diff = difflib.unified_diff(before[node].splitlines(), after[node].splitlines(),
                                    "vxlan", "vxlan+DirectRouting", lineterm="", n=0)
        print("\n".join(line for line in diff if not line.startswith("@@")))
    banner("pod-to-pod pings across nodes (vxlan + DirectRouting: peers on the segment are direct)")
    ok = show_reachability(lab, pods) and ok

    banner(f"done in {time.monotonic() - start:.0f} s; the lab stays up")
    pod_ip = pods["node1/pod-node1"]
    print(f"""  ezctl lab status {CLUSTER}
  ezctl lab exec {CLUSTER} node1 -- ip route           # a node
  ezctl lab exec {CLUSTER} node2/pod-node2 -- ping -c1 {pod_ip}   # a pod
  ezctl lab exec {CLUSTER} node2/pod-node2 -- ping -c1 {OUTSIDE}   # the outside
  ezctl lab exec {CLUSTER} node1 -- iptables-save -t nat       # flanneld's masquerade rules
  ezctl setup {CLUSTER} 06                              # after editing clusters/{CLUSTER}/config.yml
  ezctl lab down {CLUSTER}                              # removes every namespace, mount and pod""")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
