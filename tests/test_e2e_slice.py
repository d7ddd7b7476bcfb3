"""
End to end on real traffic: a real hub and agent (``twistd``) on ``lo``,
real TCP connections and real ``dig`` queries against a real DNS server,
checked through ``loopy-ui --json``.
"""

from __future__ import annotations

import signal

from twisted.internet import defer
from twisted.trial import unittest

from tests import e2e


class EndToEndSliceTests(e2e.FleetCase):
    """
    The first slice of Loopy on real traffic.
    """

    @defer.inlineCallbacks
    def test_connections_and_dns_reach_the_hub(self):
        """
        The hub shows the agent, each TCP connection made (ports, exact
        payload octets each way, closed by FIN, a handshake RTT), and each
        DNS query made (name, type, rcode, server, latency), over UDP and TCP.
        """
        made = yield self.connections([(100, 5000), (2000, 10), (10, 1)])
        queries = [
            (("www.loopy.test", "A"), "NOERROR", []),
            (("mail.loopy.test", "AAAA"), "NOERROR", []),
            (("nx.loopy.test", "A"), "NXDOMAIN", []),
            (("fail.loopy.test", "TXT"), "SERVFAIL", []),
            (("tcp.loopy.test", "A"), "NOERROR", ["+tcp"]),
        ]
        for (qname, qtype), rcode, extra in queries:
            out = yield self.dig_query(qname, qtype, *extra)
            self.assertIn(f"status: {rcode}", out)

        def seen(doc):
            agent = e2e.agent_of(doc, self.agent_id)
            if agent is None:
                return None
            connections = {(c["sport"], c["dport"]): c for c in agent["tcp"]["connections"]
                           if c["dst"] == self.tcp_addr}
            names = {(q["qname"], q["qtype"]): q for q in agent["dns"]["queries"]
                     if q["server"] == self.dns_addr and q["rcode"] is not None}
            if all((m["sport"], m["dport"]) in connections for m in made) and \
                    all(key in names for key, _, _ in queries) and \
                    all(connections[(m["sport"], m["dport"])]["state"] == "closed"
                        for m in made):
                return agent, connections, names
            return None

        @defer.inlineCallbacks
        def check():
            doc = yield e2e.fleet_json(self.hub_port)
            return seen(doc)

        agent, connections, names = yield e2e.poll(
            check, 20, what="the connections and queries in loopy-ui --json")

        for m in made:
            c = connections[(m["sport"], m["dport"])]
            self.assertEqual(
                (c["src"], c["sport"], c["dst"], c["dport"], c["bytes_out"], c["bytes_in"]),
                (m["src"], m["sport"], m["dst"], m["dport"], m["bytes_out"], m["bytes_in"]),
            )
            self.assertEqual(c["state"], "closed")
            self.assertEqual(c["retransmissions"], 0)
            self.assertGreaterEqual(c["packets_out"], 3)  # SYN, ACK, data (FIN may share)
            self.assertGreaterEqual(c["packets_in"], 2)  # SYN-ACK, data
            self.assertIsNotNone(c["rtt_ms"])
            self.assertGreaterEqual(c["rtt_ms"], 0)

        for (qname, qtype), rcode, extra in queries:
            q = names[(qname, qtype)]
            self.assertEqual((q["qname"], q["qtype"], q["rcode"], q["dport"]),
                             (qname, qtype, rcode, 53))
            self.assertEqual(q["transport"], "tcp" if extra else "udp")
            self.assertIsNotNone(q["latency_ms"])
        self.assertIn("A 192.0.2.10", names[("www.loopy.test", "A")]["answers"])
        self.assertIn("AAAA 2001:db8::25", names[("mail.loopy.test", "AAAA")]["answers"])
        self.assertGreaterEqual(agent["dns"]["nxdomain"], 1)
        self.assertGreaterEqual(agent["dns"]["servfail"], 1)

        # Capture health is reported and the agent's own hub link is filtered
        # out in the kernel: no connection to the hub's port is ever seen.
        capture = agent["capture"]
        self.assertGreater(capture["frames"], 0)
        self.assertEqual(capture["kernel_drops"], 0)
        self.assertEqual(capture["malformed"], 0)
        self.assertEqual({i["source"] for i in capture["interfaces"]}, {"ring"})
        self.assertTrue(0 <= capture["ring_fill"] <= 1, capture["ring_fill"])
        self.assertGreater(capture["cpu_seconds"], 0)
        self.assertGreater(capture["rss_bytes"], 20_000_000)
        self.assertEqual(capture["drop_ratio"], 0.0)
        # The answers of the reported NOERROR queries were dissected by scapy.
        self.assertGreaterEqual(capture["dissected"], 3)
        self.assertEqual(capture["budgeted_out"], 0)
        self.assertEqual(
            [c for c in agent["tcp"]["connections"] if self.hub_port in (c["sport"], c["dport"])],
            [],
        )
        self.assertEqual(agent["status"], "online")
        self.assertEqual(agent["hub"], "hub")

    @defer.inlineCallbacks
    def test_agent_restart_new_epoch_and_offline(self):
        """
        When the agent stops the hub shows it offline; a restarted agent
        comes back online with a later epoch and seq starting again.
        """
        doc = yield e2e.fleet_json(self.hub_port)
        first = e2e.agent_of(doc, self.agent_id)
        self.procs.stop(self.agent_id)

        @defer.inlineCallbacks
        def offline():
            doc = yield e2e.fleet_json(self.hub_port)
            agent = e2e.agent_of(doc, self.agent_id)
            return agent is not None and agent["status"] == "offline"

        yield e2e.poll(offline, 15, what="the agent offline")
        self.procs.start_agent(self.agent_id, self.hub_port, "--interface", "lo")

        @defer.inlineCallbacks
        def back():
            doc = yield e2e.fleet_json(self.hub_port)
            agent = e2e.agent_of(doc, self.agent_id)
            if agent and agent["status"] == "online" and agent["epoch"] > first["epoch"]:
                return agent
            return None

        agent = yield e2e.poll(back, 30, what="the restarted agent online")
        self.assertEqual((agent["hostname"], agent["hub"]), (first["hostname"], "hub"))


class JsonWithoutHubTests(unittest.TestCase):
    """
    ``loopy-ui --json`` when there is no hub.
    """

    @defer.inlineCallbacks
    def test_json_without_hub(self):
        """
        ``loopy-ui --json`` against a port with no hub exits 2 and says why.
        """
        out, err, code = yield e2e.run(
            [e2e.program("loopy-ui"), "--hub", f"127.0.0.1:{e2e.free_port()}",
             "--json", "--timeout", "3"])
        self.assertEqual(code, 2)
        self.assertIn(b"cannot get the fleet from hub", err)
        self.assertEqual(out, b"")


class HubRestartTests(e2e.FleetCase):
    """
    The agent survives its hub going away.
    """

    @defer.inlineCallbacks
    def test_agent_reconnects_when_the_hub_returns(self):
        """
        Kill the hub (SIGKILL): the agent logs the loss and keeps trying with
        backoff; a new hub on the same port sees the agent online again,
        with the same epoch (the agent did not restart).
        """
        doc = yield e2e.fleet_json(self.hub_port)
        before = e2e.agent_of(doc, self.agent_id)
        self.procs.stop("hub", signal.SIGKILL)
        yield e2e.poll(lambda: "lost hub hub" in self.procs.output(self.agent_id), 10,
                       what="the agent to log the lost hub")
        self.procs.start_hub("hub", self.hub_port)

        @defer.inlineCallbacks
        def back():
            doc = yield e2e.fleet_json(self.hub_port)
            agent = e2e.agent_of(doc, self.agent_id)
            return agent if agent and agent["status"] == "online" else None

        agent = yield e2e.poll(back, 30, what="the agent back at the new hub")
        self.assertEqual(agent["epoch"], before["epoch"])
        self.assertGreater(agent["seq"], before["seq"])
        self.assertIn("linked to hub hub", self.procs.output(self.agent_id))


class CaptureFilterTests(e2e.FleetCase):
    """
    ``--filter`` is compiled into the kernel filter beside the hub exclusion.
    """

    @defer.inlineCallbacks
    def test_filter_keeps_only_matching_traffic(self):
        """
        A second agent with ``--filter 'udp port 53'`` sees the DNS queries
        but none of the TCP connections that the unfiltered agent sees.
        """
        filtered = self.agent_id + "-dns-only"
        self.procs.start_agent(filtered, self.hub_port, "--interface", "lo",
                               "--filter", "udp port 53")

        @defer.inlineCallbacks
        def online():
            doc = yield e2e.fleet_json(self.hub_port)
            agent = e2e.agent_of(doc, filtered)
            return agent is not None and agent["status"] == "online"

        yield e2e.poll(online, 30, what="the filtered agent online")
        made = yield self.connections([(50, 500)])
        yield self.dig_query("www.loopy.test", "A")

        @defer.inlineCallbacks
        def both_saw():
            doc = yield e2e.fleet_json(self.hub_port)
            plain, only_dns = e2e.agent_of(doc, self.agent_id), e2e.agent_of(doc, filtered)
            ports = [c["dport"] for c in plain["tcp"]["connections"]]
            names = [q["qname"] for q in only_dns["dns"]["queries"]]
            if made[0]["dport"] in ports and "www.loopy.test" in names:
                return plain, only_dns
            return None

        plain, only_dns = yield e2e.poll(both_saw, 20, what="both agents' views")
        self.assertEqual(only_dns["tcp"]["connections"], [])
        self.assertEqual(only_dns["tcp"]["syn"], 0)
        self.assertEqual(set(only_dns["ip"]["protocols"]), {"udp"})
        self.assertGreater(plain["tcp"]["syn"], 0)
