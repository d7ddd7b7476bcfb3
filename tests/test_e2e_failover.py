"""
End-to-end: an agent with two hubs (``--hub A --hub B``) moves to B when A
is killed with SIGKILL or stops answering (SIGSTOP: its kernel still holds
the connection, as with a cut link), and back to A when A returns
(failback).  Real
``twistd`` hubs and agent on 127.0.0.1; the agent replays a capture file
(``--pcap``), so no root is needed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from tests import e2e

CAPTURE = Path(__file__).parent / "data" / "lo-dns-tcp.pcap"


class AgentFailoverTests(unittest.TestCase):
    def setUp(self):
        self.procs = e2e.start_processes(self)
        self.port_a, self.port_b = e2e.free_port(), e2e.free_port()
        self.procs.start_hub("hub-a", self.port_a)
        self.procs.start_hub("hub-b", self.port_b)
        self.agent = "failover-agent"
        # The agent's first link must be A's: start it once both listen.
        d = e2e.poll(lambda: e2e.listening(self.port_a, self.port_b), 30,
                     what="both hubs listening")
        return d.addCallback(lambda _: self.start_agent())

    def start_agent(self):
        self.procs.start(self.agent, [
            e2e.program("twistd"), "-n", "--pidfile=", "loopy-agent",
            "--hub", f"127.0.0.1:{self.port_a}", "--hub", f"127.0.0.1:{self.port_b}",
            "--failback", "2", "--agent-id", self.agent, "--pcap", str(CAPTURE),
        ])

    def online_at(self, port: int):
        """
        A check for L{e2e.poll}: the agent is online at the hub on C{port}.
        """
        @defer.inlineCallbacks
        def check():
            doc = yield e2e.fleet_json(port, timeout=2)
            agent = e2e.agent_of(doc, self.agent)
            return agent if agent and agent["status"] == "online" else None

        return check

    @defer.inlineCallbacks
    def test_failover_and_back(self):
        """
        Online at A; A killed (SIGKILL): online at B within 3 s (the agent
        links within 0.25 s of the loss; the rest is the poll and
        ``loopy-ui --json``'s start); A back: the agent moves back to A at
        the next failback try (``--failback 2``).
        """
        first = yield e2e.poll(self.online_at(self.port_a), 30, what="the agent online at A")
        self.procs.stop("hub-a", signal.SIGKILL)
        killed = time.monotonic()
        at_b = yield e2e.poll(self.online_at(self.port_b), 10, interval=0.1,
                              what="the agent online at B")
        elapsed = time.monotonic() - killed
        self.assertLess(elapsed, 3.0)
        self.assertEqual(at_b["epoch"], first["epoch"])
        log = self.procs.output(self.agent)
        self.assertIn("lost hub hub-a", log)
        self.assertIn(f"moved to hub hub-b at tcp:host=127.0.0.1:port={self.port_b} (link 2)",
                      log)
        self.procs.start_hub("hub-a", self.port_a)
        yield e2e.poll(self.online_at(self.port_a), 30, what="the agent back at A")
        yield e2e.poll(lambda: "moved back to hub hub-a" in self.procs.output(self.agent),
                       10, what="the agent to log its failback")

    @defer.inlineCallbacks
    def test_silent_hub(self):
        """
        A frozen (SIGSTOP) leaves the link open but answers nothing: within
        an interval and C{--hub-timeout} (1 s + 3 s) the agent aborts the
        link and is online at B.
        """
        yield e2e.poll(self.online_at(self.port_a), 30, what="the agent online at A")
        hub_a = self.procs.children["hub-a"]
        hub_a.send_signal(signal.SIGSTOP)
        self.addCleanup(hub_a.send_signal, signal.SIGCONT)
        stopped = time.monotonic()
        yield e2e.poll(self.online_at(self.port_b), 15, interval=0.1,
                       what="the agent online at B")
        self.assertLess(time.monotonic() - stopped, 6.0)
        self.assertIn("did not answer Report within 3 s; dropping the link",
                      self.procs.output(self.agent))
