"""The VXLAN port's exchange inside the probe task (check/exchange.py) over an in-memory fabric
(net_probe's action plugin: test_netcheck_action.py)."""
from __future__ import annotations

import queue
import socket
import threading
import time

import pytest

from ansible_collections.kubeasz.network.plugins.module_utils.check import exchange, probe
from ansible_collections.kubeasz.network.tests.unit.test_netcheck import udp4

TOKEN = "42"
IPS = {"n1": "10.0.0.1", "n2": "10.0.0.2", "n3": "10.0.0.3"}


class Fabric:
    """Delivers datagrams between the nodes' packet sockets, except the (src, dst) pairs dropped."""

    def __init__(self, drop=()):
        self.drop, self.queues = set(drop), {}

    def socket(self, node):
        self.queues[IPS[node]] = queue.Queue()
        return RecvSocket(self.queues[IPS[node]])

    def send(self, src, dst, port, payload):
        if (src, dst) not in self.drop and dst in self.queues:
            self.queues[dst].put((udp4(src, dst, port, payload), ("eth0", 8, 0)))


class RecvSocket:
    def __init__(self, inbox):
        self.inbox, self.timeout, self.closed = inbox, None, False

    def settimeout(self, value):
        self.timeout = value

    def recvfrom(self, size):
        try:
            return self.inbox.get(timeout=self.timeout) if self.timeout else self.inbox.get_nowait()
        except queue.Empty:
            raise socket.timeout() from None

    def close(self):
        self.closed = True


class SendSocket:
    def __init__(self, fabric, src):
        self.fabric, self.src = fabric, src

    def sendto(self, payload, addr):
        self.fabric.send(self.src, addr[0], addr[1], payload)

    def close(self):
        pass


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(exchange, "ROUND", 0.02)
    monkeypatch.setattr(exchange, "GIVE_UP", 0.2)
    monkeypatch.setattr(exchange, "DEAF", 0.4)


def run_nodes(fabric, starts=None, timeout=3.0, nodes=("n1", "n2", "n3")):
    """{node: (heard, seconds)} of an exchange per node, each started ``starts[node]`` s late."""
    found = {}

    def node_run(node):
        time.sleep((starts or {}).get(node, 0))
        own = {"node": node, "public_ip": IPS[node]}
        peers = [{"node": n, "public_ip": IPS[n]} for n in IPS if n != node]
        ex = exchange.Exchange(TOKEN, own, peers, 8472, timeout, sock=fabric.socket(node),
                               senders={socket.AF_INET: SendSocket(fabric, IPS[node])})
        begin = time.monotonic()
        heard = ex.start().wait()
        found[node] = (heard, time.monotonic() - begin, ex.sock.closed)

    threads = [threading.Thread(target=node_run, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def test_every_node_hears_every_peer_and_ends_without_waiting_for_the_timeout():
    found = run_nodes(Fabric(), starts={"n2": 0.3, "n3": 0.6})
    for node, (heard, took, closed) in found.items():
        assert heard == sorted(ip for n, ip in IPS.items() if n != node) and closed
        assert took < 1.5, (node, took)


def test_a_path_dropped_both_ways_is_not_heard_and_ends_soon_after_the_peer_is_known_to_run():
    found = run_nodes(Fabric(drop={("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")}))
    assert found["n1"][0] == ["10.0.0.3"] and found["n2"][0] == ["10.0.0.3"]
    assert found["n3"][0] == ["10.0.0.1", "10.0.0.2"]
    assert all(took < 2.0 for _heard, took, _closed in found.values()), found


def test_a_path_dropped_one_way_is_heard_the_other_way():
    found = run_nodes(Fabric(drop={("10.0.0.1", "10.0.0.2")}))
    assert found["n2"][0] == ["10.0.0.3"] and found["n1"][0] == ["10.0.0.2", "10.0.0.3"]


def test_a_peer_that_never_runs_ends_the_wait_at_the_timeout():
    found = run_nodes(Fabric(), timeout=1.0, nodes=("n1", "n2"))
    assert found["n1"][0] == ["10.0.0.2"] and 0.9 < found["n1"][1] < 2.0


def test_no_peer_no_socket_no_wait():
    ex = exchange.Exchange(TOKEN, {"node": "n1", "public_ip": "10.0.0.1"}, [], 8472, 5)
    assert ex.sock is None and ex.start().wait() == []


def test_messages_carry_what_was_heard_and_who_runs_and_only_this_run_is_read():
    data = exchange.message(TOKEN, "n2", ["10.0.0.1"], {"n3": 1.0})
    assert exchange.parse_message(data, TOKEN) == ("n2", {"heard": ["10.0.0.1"], "alive": ["n3"]})
    assert exchange.parse_message(data, "4") is None  # another run's token is not a prefix match
    assert exchange.parse_message(probe.datagram(TOKEN, "n2"), TOKEN) == ("n2", {})
    many = exchange.message(TOKEN, "n2", [], dict(("node%03d" % i, 0) for i in range(500)))
    assert len(many) <= exchange.MAX_PAYLOAD + 60 and exchange.parse_message(many, TOKEN)[1]["alive"]
