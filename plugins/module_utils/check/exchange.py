# -*- coding: utf-8 -*-
# Copyright (c) kubeasz.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VXLAN port probe of ``ezctl net check`` inside the probe task, when every node probes at once.

Each node watches the port with a packet socket (as ``probe.listen()``) while it sends its probe
datagrams to every peer's public IPs, every ``ROUND`` seconds, until that peer said it heard this
node. A datagram tells its receiver which of the receiver's IPs the sender heard and which nodes
the sender knows to be running, so a node ends as soon as it heard every peer and every peer heard
it. A peer known to be running that stays silent (or never says it heard us) while we sent to it
for ``GIVE_UP`` seconds and ``SENDS`` times, or that we did not hear for ``DEAF`` seconds, means
the port is not delivered on that path (the verdict's ``transport`` failure); a peer never known
to run ends the wait at the timeout. The result is the senders' IPs heard, as ``listen()``'s.
Nothing outlives the module: the sockets close when it ends.

Standard library only (runs on the managed node).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import socket
import threading
import time

from ansible_collections.kubeasz.network.plugins.module_utils.base.family import FAMILIES
from ansible_collections.kubeasz.network.plugins.module_utils.check.probe import (
    ETH_P_ALL, MAGIC, PACKET_OUTGOING, parse_udp)
from ansible_collections.kubeasz.network.plugins.module_utils.check.texts import VXLAN_PORT

ROUND = 0.1      # s between two sends to a peer that has not said it heard us
GIVE_UP = 1.0    # s a running peer is sent to (and at least SENDS times) before its silence counts
SENDS = 5
DEAF = 2.0       # s a running peer may stay unheard before we stop waiting for it
DRAIN = 256      # packets read at most between two rounds
MAX_PAYLOAD = 1000


def message(token, node, heard, alive):
    """The datagram: MAGIC, token, sender, then JSON of the receiver's IPs the sender heard and the
    nodes it knows to be running (as many as fit in MAX_PAYLOAD bytes: a hint only)."""
    head = MAGIC + ('%s %s ' % (token, node)).encode('ascii', 'replace')
    body = {'heard': sorted(heard), 'alive': []}
    size = len(head) + len(json.dumps(body))
    for name in sorted(alive):
        size += len(json.dumps(name)) + 1
        if size > MAX_PAYLOAD:
            break
        body['alive'].append(name)
    return head + json.dumps(body, separators=(',', ':')).encode('utf-8')


def parse_message(data, token):
    """(sender, body) of a datagram of this run's ``token`` (a body of {} from ``probe.datagram()``),
    else None."""
    prefix = MAGIC + token.encode('ascii') + b' '
    if not bytes(data).startswith(prefix):
        return None
    parts = bytes(data[len(prefix):]).split(b' ', 1)
    try:
        body = json.loads(parts[1].decode('utf-8')) if len(parts) > 1 else {}
    except ValueError:
        body = {}
    return parts[0].decode('ascii', 'replace'), body if isinstance(body, dict) else {}


class Exchange(object):
    """The exchange of one node: ``start()`` it before the probes, ``wait()`` for the IPs heard."""

    def __init__(self, token, own, peers, port=None, timeout=10, sock=None, senders=None, clock=time.time):
        self.token, self.node, self.port = token, own['node'], port or VXLAN_PORT
        self.timeout, self.clock, self.senders = float(timeout or 10), clock, senders or {}
        self.own = dict((own[f.public_ip_key], f) for f in FAMILIES if own.get(f.public_ip_key))
        self.targets, self.peer_ip = {}, {}   # ip: (node, family); (node, family): ip
        for peer in peers:
            for family in FAMILIES:
                if peer.get(family.public_ip_key):
                    self.targets[peer[family.public_ip_key]] = (peer['node'], family)
                    self.peer_ip[(peer['node'], family)] = peer[family.public_ip_key]
        self.peers = set(node for node, dummy in self.targets.values())
        self.heard, self.acked, self.alive, self.sent = set(), set(), {}, dict((t, 0) for t in self.targets)
        self.result, self.error, self.thread = None, None, None
        if sock is None and self.targets:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.sock = sock

    # ------------------------------------------------------------------ state

    def _running_for(self, node, now):
        return now - self.alive[node] if node in self.alive else -1

    def _sent_enough(self, target, now):
        node = self.targets[target][0]
        return target in self.acked or (self._running_for(node, now) >= GIVE_UP and self.sent[target] >= SENDS)

    def _done(self, now):
        return all(self._sent_enough(t, now) and (t in self.heard or self._running_for(node, now) >= DEAF)
                   for t, (node, dummy) in self.targets.items())

    def _take(self, packet, addr):
        """Learn from one packet; True when something new was learnt (the peers should know)."""
        if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
            return False
        found = parse_udp(bytearray(packet), self.port)
        msg = parse_message(found[1], self.token) if found else None
        if msg is None:
            return False
        (src, dummy), (sender, body) = found, msg
        new = src not in self.heard
        self.heard.add(src)
        for name in [sender] + list(body.get('alive') or []):
            if name in self.peers and name not in self.alive:
                self.alive[name], new = self.clock(), True
        for ip in body.get('heard') or []:
            target = self.peer_ip.get((sender, self.own.get(ip)))
            if target:
                self.acked.add(target)
        return new

    # ------------------------------------------------------------------ sockets

    def _send(self, targets):
        for target in targets:
            node, family = self.targets[target]
            heard = [ip for ip in (self.peer_ip.get((node, f)) for f in FAMILIES) if ip in self.heard]
            kind = socket.AF_INET6 if ':' in target else socket.AF_INET
            if kind not in self.senders:
                self.senders[kind] = socket.socket(kind, socket.SOCK_DGRAM)
            try:
                self.senders[kind].sendto(message(self.token, self.node, heard, self.alive), (target, self.port))
            except (OSError, socket.error):
                pass   # an unreachable peer shows in its result
            if node in self.alive:
                self.sent[target] += 1

    def _receive(self, wait):
        """Wait up to ``wait`` s for a packet, then read what else came; True when something was learnt."""
        new = False
        self.sock.settimeout(max(0.001, wait))
        for count in range(DRAIN):
            try:
                packet, addr = self.sock.recvfrom(65535)
            except (socket.timeout, OSError, socket.error):
                break
            new = self._take(packet, addr) or new
            if count == 0:
                self.sock.settimeout(0.0)
        return new

    def run(self):
        """Send and watch until every peer heard us and was heard, or the timeout; the IPs heard."""
        now = self.clock()
        deadline, next_round = now + self.timeout, now
        try:
            while not self._done(now) and now < deadline:
                if now >= next_round:
                    self._send([t for t in sorted(self.targets) if not self._sent_enough(t, now)])
                    next_round = now + ROUND
                if self._receive(min(next_round, deadline) - now):
                    self._send(sorted(self.targets))
                now = self.clock()
        finally:
            for sock in [self.sock] + list(self.senders.values()):
                if sock is not None:
                    sock.close()
        return sorted(self.heard)

    # ------------------------------------------------------------------ thread

    def _thread(self):
        try:
            self.result = self.run()
        except Exception as exc:  # handed to wait(), which raises it in the module's thread
            self.error = exc

    def start(self):
        self.thread = threading.Thread(target=self._thread, name='net-check-exchange')
        self.thread.daemon = True
        self.thread.start()
        return self

    def wait(self):
        """The IPs heard (as listen()'s result), once the exchange ended."""
        self.thread.join(self.timeout + 5)
        if self.error is not None:
            raise self.error
        return self.result if self.result is not None else sorted(self.heard)
