"""What `ezctl net check` must leave as it found it on a lab node, and that its probes are gone:
shared by the net check test files (test_net_check*.py)."""
from __future__ import annotations

import json
import re
import subprocess
import time

COUNTERS = re.compile(r"\[\d+:\d+\]")
TIMERS = re.compile(r'"\w+_timer": [\d.]+')  # bridges' running timers


def node_state(lab, node: str, ipv6: bool = False) -> dict:
    """Links, addresses, routes, neighbours, FDB, rules, files, sockets (and the IPv6 routes,
    permanent neighbours and ip6tables rules with ``ipv6``)."""
    def out(*argv):
        return lab.exec(node, list(argv), check=False).stdout
    links = [{k: v for k, v in link.items() if k not in ("stats", "stats64", "operstate")}
             for link in json.loads(out("ip", "-d", "-json", "link", "show"))]
    links = TIMERS.sub("", json.dumps(links))

    def saved(tool):
        return COUNTERS.sub("", "\n".join(line for line in out(tool).splitlines() if not line.startswith("#")))
    found = {"links": links, "addr": out("ip", "addr", "show"), "routes": out("ip", "route", "show", "table", "all"),
             "neigh": out("ip", "neigh", "show", "nud", "permanent"), "fdb": out("bridge", "fdb", "show"),
             "nft": saved("iptables-nft-save"), "legacy": saved("iptables-legacy-save"),
             "files": out("find", "/run/flannel", "/etc/cni/net.d", "/run/netns", "-printf", "%p %s\n"),
             "sockets": out("ss", "-H", "-a", "-n", "-u", "-t", "-0")}
    if ipv6:
        found.update(routes6=out("ip", "-6", "route", "show", "table", "all"),
                     neigh6=out("ip", "-6", "neigh", "show", "nud", "permanent"),
                     nft6=saved("ip6tables-nft-save"), legacy6=saved("ip6tables-legacy-save"))
    return found


def no_probe_left() -> bool:
    """No listener left (async_wrapper's watchdog may take a second to notice its job ended)."""
    for _attempt in range(10):
        found = subprocess.run(["pgrep", "-f", "AnsiballZ_net_probe"], capture_output=True, text=True, check=False)
        if not found.stdout.strip():
            return True
        time.sleep(0.5)
    return False
