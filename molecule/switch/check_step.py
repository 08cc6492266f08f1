"""Check a lab after a backend switch: exact flannel tables (labcheck) and all-pairs pod ping.

    check_step.py --lab NAME --backend vxlan|host-gw [--direct-routing true|false] [--vni N]

Exits 1 naming every stale or missing device, route, neighbour and FDB entry, or the failed pings.
"""
import argparse
import sys

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "helpers"))

import labcheck  # noqa: E402 pylint: disable=wrong-import-position
from ezctl import reach  # noqa: E402 pylint: disable=wrong-import-position
from ezctl.lab import Lab  # noqa: E402 pylint: disable=wrong-import-position


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--backend", required=True, choices=["vxlan", "host-gw"])
    parser.add_argument("--direct-routing", default="false")
    parser.add_argument("--vni", type=int, default=1)
    args = parser.parse_args()
    lab = Lab(args.lab)
    problems = labcheck.table_mismatches(labcheck.read_lab(lab, args.vni), args.backend,
                                         args.direct_routing == "true")
    nodes = [node["name"] for node in lab.status()["nodes"]]
    pods = {f"{node}/sw-{node}": lab.pod_add(node, f"sw-{node}") for node in nodes}
    try:
        matrix = reach.ping_matrix(lambda src, ip: reach.ping(lab, src, ip), pods)
    finally:
        for node in nodes:
            lab.pod_del(node, f"sw-{node}")
    if not all(matrix.values()):
        problems.append("pods do not all ping each other:\n" + reach.format_matrix(matrix, list(pods)))
    print("\n".join(problems) or "%s (DirectRouting %s, VNI %d): tables exact, all pods ping"
          % (args.backend, args.direct_routing, args.vni))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
