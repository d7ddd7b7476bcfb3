# -*- test-case-name: tests.test_analysis_dns -*-
"""
Tests for L{loopy.analysis.dns}: DNS over UDP and TCP, built with scapy (and
an exchange captured on lo), decoded by the header path, followed by
L{DnsAnalyser}.
"""

from __future__ import annotations

import random
import struct

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.analysis.dns import DnsAnalyser
from loopy.dissect.dns import parse_message
from loopy.dissect.headers import decode
from loopy.model import DnsQuery, NameCount
from tests.test_headers import LO_DNS_NXDOMAIN, DissectorTestMixin, frame_of

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.53", 53)


def _ether() -> Ether:
    """
    Ethernet with both addresses given (scapy resolves none).
    """
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")


def query(ident, qname="www.example.com", qtype="A", **fields) -> bytes:
    """
    A DNS query message.
    """
    return bytes(DNS(id=ident, rd=1, qd=DNSQR(qname=qname, qtype=qtype),
                     **fields))


def response(ident, qname="www.example.com", qtype="A", rcode=0, answers=()):
    """
    A DNS response message with C{answers} as A records of C{qname}.
    """
    return bytes(DNS(id=ident, qr=1, rd=1, ra=1, rcode=rcode,
                     qd=DNSQR(qname=qname, qtype=qtype),
                     an=[DNSRR(rrname=qname, type="A", rdata=a) for a in answers]))


class DnsTestCase(DissectorTestMixin, SynchronousTestCase):
    """
    An analyser and ways to feed it.
    """

    config = AnalyserConfig()

    def setUp(self):
        super().setUp()
        self.dns = DnsAnalyser(self.config)

    def udp(self, src, dst, payload: bytes, ts: float) -> None:
        """
        Observe a UDP datagram from C{src} to C{dst} (address, port).
        """
        frame = bytes(_ether() / IP(src=src[0], dst=dst[0])
                      / UDP(sport=src[1], dport=dst[1]) / Raw(payload))
        self.dns.observe(decode(frame, ts))

    def tcp(self, src, dst, payload: bytes, ts: float, flags="PA") -> None:
        """
        Observe a TCP segment from C{src} to C{dst}.
        """
        frame = bytes(_ether() / IP(src=src[0], dst=dst[0])
                      / TCP(sport=src[1], dport=dst[1], flags=flags)
                      / Raw(payload))
        self.dns.observe(decode(frame, ts))

    def snapshot(self, now=1000.0, interval=1.0):
        return self.dns.snapshot(now, interval)


def framed(*messages: bytes) -> bytes:
    """
    DNS messages as sent over TCP: each behind its 2-octet length.
    """
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


class MatchingTests(DnsTestCase):
    """
    Queries, responses, and how they are matched.
    """

    def test_udpExchange(self):
        """
        A query and its response over UDP: one transaction with the rcode,
        the answers and the latency.
        """
        self.udp(CLIENT, SERVER, query(0x1111), 10.0)
        self.udp(SERVER, CLIENT, response(0x1111, answers=["192.0.2.1"]), 10.0125)
        snapshot = self.snapshot(10.5)
        self.assertEqual(snapshot.queries, (DnsQuery(
            ts=10.0, client="10.0.0.1", sport=40000, server="10.0.0.53", dport=53,
            transport="udp", id=0x1111, qname="www.example.com", qtype="A",
            rcode="NOERROR", answers=("A 192.0.2.1",), latency_ms=12.5,
        ),))
        self.assertEqual(
            (snapshot.queries_total, snapshot.responses_total, snapshot.matched,
             snapshot.unanswered, snapshot.pending, snapshot.malformed,
             snapshot.rcodes, snapshot.qtypes, snapshot.top_names),
            (1, 1, 1, 0, 0, 0, {"NOERROR": 1}, {"A": 1},
             (NameCount("www.example.com", 1),)),
        )

    def test_capturedExchange(self):
        """
        The NXDOMAIN exchange captured on lo (port 5353, a DNS port here).
        """
        self.dns = DnsAnalyser(AnalyserConfig(dns_ports=frozenset({5353})))
        for ts, hexed in LO_DNS_NXDOMAIN:
            self.dns.observe(decode(frame_of(hexed), ts))
        snapshot = self.snapshot(2.0)
        self.assertEqual(snapshot.queries, (DnsQuery(
            ts=1.235466, client="127.0.0.1", sport=41115, server="127.0.0.1",
            dport=5353, transport="udp", id=0x8D83, qname="nosuch.example",
            qtype="A", rcode="NXDOMAIN", answers=(), latency_ms=0.282,
        ),))
        self.assertEqual((snapshot.nxdomain, snapshot.matched), (1, 1))

    def test_otherPorts(self):
        """
        Traffic on ports that are not DNS ports is not looked at.
        """
        for ts, hexed in LO_DNS_NXDOMAIN:
            self.dns.observe(decode(frame_of(hexed), ts))
        self.udp(CLIENT, ("10.0.0.53", 54), b"garbage", 1.0)
        snapshot = self.snapshot(2.0)
        self.assertEqual((snapshot.queries_total, snapshot.responses_total,
                          snapshot.malformed),
                         (0, 0, 0))

    def test_ipv6(self):
        """
        IPv6 addresses as text.
        """
        client, server = ("2001:db8::1", 50000), ("2001:db8::53", 53)
        for src, dst, message, ts in ((client, server, query(5), 1.0),
                                      (server, client, response(5), 1.002)):
            frame = bytes(_ether() / IPv6(src=src[0], dst=dst[0])
                          / UDP(sport=src[1], dport=dst[1]) / Raw(message))
            self.dns.observe(decode(frame, ts))
        (transaction,) = self.snapshot(2.0).queries
        self.assertEqual((transaction.client, transaction.server,
                          transaction.latency_ms),
                         ("2001:db8::1", "2001:db8::53", 2.0))

    def test_matchByIdAndFiveTuple(self):
        """
        A response matches only the query with its id, from the server the
        query went to, back to the port it came from.
        """
        self.udp(CLIENT, SERVER, query(1), 1.0)
        self.udp(SERVER, CLIENT, response(2), 1.01)  # other id
        self.udp(("10.0.0.54", 53), CLIENT, response(1), 1.02)  # other server
        self.udp(SERVER, ("10.0.0.1", 40001), response(1), 1.03)  # other port
        self.udp(SERVER, ("10.0.0.9", 40000), response(1), 1.04)  # other client
        snapshot = self.snapshot(1.5)
        self.assertEqual((snapshot.responses_total, snapshot.matched,
                          snapshot.pending, snapshot.queries),
                         (4, 0, 1, ()))
        self.udp(SERVER, CLIENT, response(1), 1.6)
        snapshot = self.snapshot(2.0)
        self.assertEqual((snapshot.matched, snapshot.pending,
                          snapshot.queries[0].latency_ms),
                         (1, 0, 600.0))

    def test_sameIdOtherPorts(self):
        """
        Two clients' queries with the same id are told apart by port.
        """
        first, second = ("10.0.0.1", 40001), ("10.0.0.1", 40002)
        self.udp(first, SERVER, query(7, "a.example"), 1.0)
        self.udp(second, SERVER, query(7, "b.example"), 1.1)
        self.udp(SERVER, second, response(7, "b.example"), 1.15)
        self.udp(SERVER, first, response(7, "a.example"), 1.3)
        snapshot = self.snapshot(2.0)
        self.assertEqual(
            [(q.qname, q.sport, q.latency_ms) for q in snapshot.queries],
            [("a.example", 40001, 300.0), ("b.example", 40002, 50.0)],
        )

    def test_rcodes(self):
        """
        Responses by rcode, NXDOMAIN and SERVFAIL counted apart; qtypes by
        mnemonic.  Unmatched responses count in the rcodes too.
        """
        self.udp(CLIENT, SERVER, query(1, "nx.example", "AAAA"), 1.0)
        self.udp(SERVER, CLIENT, response(1, "nx.example", "AAAA", rcode=3), 1.1)
        self.udp(CLIENT, SERVER, query(2, "sf.example", 65280), 1.0)
        self.udp(SERVER, CLIENT, response(2, "sf.example", 65280, rcode=2), 1.1)
        self.udp(SERVER, CLIENT, response(3, rcode=2), 1.2)
        self.udp(SERVER, CLIENT, response(4, rcode=11), 1.2)
        snapshot = self.snapshot(2.0)
        self.assertEqual(
            (snapshot.nxdomain, snapshot.servfail, snapshot.rcodes,
             snapshot.qtypes, snapshot.matched),
            (1, 2, {"NXDOMAIN": 1, "RCODE11": 1, "SERVFAIL": 2},
             {"AAAA": 1, "TYPE65280": 1}, 2),
        )
        self.assertEqual([(q.qtype, q.rcode) for q in snapshot.queries],
                         [("TYPE65280", "SERVFAIL"), ("AAAA", "NXDOMAIN")])

    def test_qps(self):
        """
        Queries per second over the interval.
        """
        for i in range(4):
            self.udp(CLIENT, SERVER, query(i), 1.0)
        self.assertEqual(self.snapshot(2.0, 2.0).qps, 2.0)
        self.assertEqual(self.snapshot(3.0, 1.0).qps, 0.0)
        self.udp(CLIENT, SERVER, query(9), 3.5)
        self.assertEqual(self.snapshot(4.0, 0.0).qps, 1.0)

    def test_notQueryOpcode(self):
        """
        Messages with another opcode (NOTIFY) are neither queries nor
        malformed.
        """
        self.udp(CLIENT, SERVER, query(1, opcode=4), 1.0)
        snapshot = self.snapshot(2.0)
        self.assertEqual((snapshot.queries_total, snapshot.malformed,
                          snapshot.pending),
                         (0, 0, 0))


class TcpTransportTests(DnsTestCase):
    """
    DNS over TCP (RFC 7766): length-prefixed messages.
    """

    def test_exchange(self):
        """
        A query and a response, each in its own segment; the handshake's
        segments carry nothing to parse.
        """
        self.tcp(CLIENT, SERVER, b"", 1.0, flags="S")
        self.tcp(SERVER, CLIENT, b"", 1.001, flags="SA")
        self.tcp(CLIENT, SERVER, framed(query(0x2222, qtype="TXT")), 1.002)
        self.tcp(SERVER, CLIENT, framed(response(0x2222, qtype="TXT")), 1.012)
        snapshot = self.snapshot(2.0)
        self.assertEqual(snapshot.queries, (DnsQuery(
            ts=1.002, client="10.0.0.1", sport=40000, server="10.0.0.53",
            dport=53, transport="tcp", id=0x2222, qname="www.example.com",
            qtype="TXT", rcode="NOERROR", answers=(), latency_ms=10.0,
        ),))
        self.assertEqual(snapshot.malformed, 0)

    def test_pipelined(self):
        """
        Several messages in one segment are all read.
        """
        self.tcp(CLIENT, SERVER, framed(query(1, "a.example"),
                                        query(2, "b.example")), 1.0)
        self.tcp(SERVER, CLIENT, framed(response(2, "b.example"),
                                        response(1, "a.example", rcode=3)), 1.5)
        snapshot = self.snapshot(2.0)
        self.assertEqual(
            [(q.id, q.rcode, q.transport) for q in snapshot.queries],
            [(1, "NXDOMAIN", "tcp"), (2, "NOERROR", "tcp")],
        )
        self.assertEqual((snapshot.queries_total, snapshot.matched), (2, 2))

    def test_splitMessage(self):
        """
        A message split across segments is not reassembled: the whole
        messages before it are read, the split one is not.
        """
        whole, split = query(1, "a.example"), query(2, "b.example")
        data = framed(whole, split)
        self.tcp(CLIENT, SERVER, data[:-3], 1.0)
        self.tcp(CLIENT, SERVER, data[-3:], 1.001)
        snapshot = self.snapshot(1.5)
        self.assertEqual((snapshot.queries_total, snapshot.pending,
                          snapshot.top_names),
                         (1, 1, (NameCount("a.example", 1),)))

    def test_malformed(self):
        """
        A length-prefixed message that is not DNS is malformed.
        """
        self.tcp(CLIENT, SERVER, framed(b"\x00\x01not dns"), 1.0)
        self.assertEqual(self.snapshot(1.5).malformed, 1)


class TimeoutTests(DnsTestCase):
    """
    Queries without responses.
    """

    config = AnalyserConfig(dns_timeout=5.0)

    def test_unanswered(self):
        """
        A query without a response for C{dns_timeout} seconds is
        unanswered, and reported without rcode; a late response is not
        matched.
        """
        self.udp(CLIENT, SERVER, query(1), 10.0)
        snapshot = self.snapshot(14.9)
        self.assertEqual((snapshot.pending, snapshot.unanswered), (1, 0))
        snapshot = self.snapshot(15.0)
        self.assertEqual((snapshot.pending, snapshot.unanswered), (0, 1))
        self.assertEqual(snapshot.queries, (DnsQuery(
            ts=10.0, client="10.0.0.1", sport=40000, server="10.0.0.53",
            dport=53, transport="udp", id=1, qname="www.example.com",
            qtype="A",
        ),))
        self.udp(SERVER, CLIENT, response(1), 16.0)
        snapshot = self.snapshot(17.0)
        self.assertEqual((snapshot.matched, snapshot.responses_total,
                          snapshot.unanswered),
                         (0, 1, 1))

    def test_oldestFirst(self):
        """
        Queries time out oldest first; younger ones stay.
        """
        self.udp(CLIENT, SERVER, query(1), 10.0)
        self.udp(CLIENT, SERVER, query(2), 12.0)
        self.udp(CLIENT, SERVER, query(3), 14.0)
        snapshot = self.snapshot(17.5)
        self.assertEqual((snapshot.pending, snapshot.unanswered), (1, 2))
        self.assertEqual([q.id for q in snapshot.queries], [2, 1])

    def test_repeatedQuery(self):
        """
        A query sent again with the same id and 5-tuple (a client's retry)
        replaces the first and waits its own timeout, without holding back
        older queries.
        """
        self.udp(CLIENT, SERVER, query(1), 10.0)
        self.udp(("10.0.0.1", 40001), SERVER, query(2), 11.0)
        self.udp(CLIENT, SERVER, query(1), 12.0)
        snapshot = self.snapshot(16.5)
        self.assertEqual((snapshot.pending, snapshot.unanswered), (1, 1))
        self.assertEqual([q.id for q in snapshot.queries], [2])
        self.udp(SERVER, CLIENT, response(1), 16.6)
        snapshot = self.snapshot(16.7)
        self.assertEqual((snapshot.matched, snapshot.queries[0].latency_ms),
                         (1, 4600.0))


class BoundTests(DnsTestCase):
    """
    The pending and name tables' caps.
    """

    def test_pendingCap(self):
        """
        At C{dns_pending_max} the oldest waiting query is dropped and
        counted; its response then matches nothing.
        """
        self.dns = DnsAnalyser(AnalyserConfig(dns_pending_max=2))
        for ident in (1, 2, 3):
            self.udp(CLIENT, SERVER, query(ident), 1.0)
        snapshot = self.snapshot(1.5)
        self.assertEqual((snapshot.pending, snapshot.pending_evicted), (2, 1))
        self.udp(SERVER, CLIENT, response(1), 2.0)
        self.udp(SERVER, CLIENT, response(3), 2.0)
        snapshot = self.snapshot(2.5)
        self.assertEqual((snapshot.matched, snapshot.pending,
                          [q.id for q in snapshot.queries]),
                         (1, 1, [3]))

    def test_namesCap(self):
        """
        At C{dns_names_max} a new name drops the less asked half of the
        names, counted in C{names_evicted}.
        """
        self.dns = DnsAnalyser(AnalyserConfig(dns_names_max=2))
        for ident, name in enumerate(["a.example"] * 3 + ["b.example", "c.example"]):
            self.udp(CLIENT, SERVER, query(ident, name), 1.0)
        snapshot = self.snapshot(1.5)
        self.assertEqual(snapshot.top_names, (NameCount("a.example", 3),
                                              NameCount("c.example", 1)))
        self.assertEqual(snapshot.names_evicted, 1)

    def test_reportQueries(self):
        """
        A report holds the newest C{report_queries} transactions, newest
        first.
        """
        self.dns = DnsAnalyser(AnalyserConfig(report_queries=2))
        for ident in (1, 2, 3):
            self.udp(CLIENT, SERVER, query(ident), 1.0)
            self.udp(SERVER, CLIENT, response(ident), 1.1)
        self.assertEqual([q.id for q in self.snapshot(1.5).queries], [3, 2])


class AnswersBudgetTests(DnsTestCase):
    """
    Answers are dissected for at most C{dns_answers_per_second} responses a
    second.
    """

    config = AnalyserConfig(dns_answers_per_second=2)

    def exchange(self, ident, ts, answers=("192.0.2.1",), rcode=0):
        self.udp(CLIENT, SERVER, query(ident), ts)
        self.udp(SERVER, CLIENT, response(ident, answers=answers, rcode=rcode),
                 ts + 0.01)

    def test_budget(self):
        """
        Past the budget, responses are matched but their answers are not
        dissected, and counted.  Responses without answers take nothing from
        the budget.
        """
        self.exchange(1, 100.1)
        self.exchange(2, 100.2, answers=(), rcode=3)
        self.exchange(3, 100.3)
        self.exchange(4, 100.4)
        self.exchange(5, 100.5)
        snapshot = self.snapshot(100.9)
        self.assertEqual(
            [(q.id, q.answers) for q in snapshot.queries],
            [(5, ()), (4, ()), (3, ("A 192.0.2.1",)), (2, ()),
             (1, ("A 192.0.2.1",))],
        )
        self.assertEqual((snapshot.matched, snapshot.answers_budgeted_out), (5, 2))

    def test_perSecond(self):
        """
        The budget is per second of capture time, whatever the report
        interval: a new second refills it, a report does not.
        """
        self.exchange(1, 100.1)
        self.exchange(2, 100.2)
        self.exchange(3, 100.3)
        self.snapshot(100.4)
        self.exchange(4, 100.5)
        self.exchange(5, 101.1)
        self.exchange(6, 101.2)
        self.exchange(7, 101.3)
        snapshot = self.snapshot(101.5)
        self.assertEqual(
            [q.id for q in snapshot.queries if q.answers],
            [6, 5, 2, 1],
        )
        self.assertEqual(snapshot.answers_budgeted_out, 3)

    def test_dissectionCounts(self):
        """
        L{DnsAnalyser.dissection_counts} gives the responses dissected and
        those budgeted out, for the agent's capture health.
        """
        for ident in range(1, 6):
            self.exchange(ident, 100.0 + ident / 10)
        snapshot = self.snapshot(100.9)
        self.assertEqual(self.dns.dissection_counts(), (2, 3))
        self.assertEqual(snapshot.answers_budgeted_out, 3)


class LazyAnswersTests(DnsTestCase):
    """
    Answers are dissected when a snapshot first reports their transaction,
    not when the response passes: only the newest C{report_queries} are
    ever reported.
    """

    config = AnalyserConfig(report_queries=2)

    def exchange(self, ident, ts):
        self.udp(CLIENT, SERVER, query(ident), ts)
        self.udp(SERVER, CLIENT, response(ident, answers=("192.0.2.%d" % ident,)),
                 ts + 0.01)

    def test_onlyReportedAreDissected(self):
        """
        Of four answered transactions, the two a snapshot reports are
        dissected, once each however many snapshots report them.
        """
        for ident in range(1, 5):
            self.exchange(ident, 100.0 + ident / 10)
        self.assertEqual(self.dns.dissection_counts(), (0, 0))
        first = self.snapshot(101.0)
        self.assertEqual(
            [(q.id, q.answers) for q in first.queries],
            [(4, ("A 192.0.2.4",)), (3, ("A 192.0.2.3",))],
        )
        self.assertEqual(self.dns.dissection_counts(), (2, 0))
        second = self.snapshot(101.5)
        self.assertEqual(second.queries, first.queries)
        self.assertEqual(self.dns.dissection_counts(), (2, 0))
        self.assertEqual(second.matched, 4)


class MalformedTests(DnsTestCase):
    """
    Payloads on DNS ports that are not DNS.
    """

    def test_malformed(self):
        """
        Short messages, bad names and garbage count as malformed; empty
        payloads and later fragments (no ports) are not looked at.
        """
        self.udp(CLIENT, SERVER, b"\x00\x01garbage", 1.0)
        loop = (struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
                + b"\xc0\x0c\x00\x01\x00\x01")  # a name pointing at itself
        self.udp(CLIENT, SERVER, loop, 1.0)
        self.udp(SERVER, CLIENT, b"\xff" * 11, 1.0)
        self.udp(CLIENT, SERVER, b"", 1.0)
        frame = bytes(_ether() / IP(src="10.0.0.1", dst="10.0.0.53", proto=17,
                                    frag=10) / Raw(b"\x00" * 40))
        self.dns.observe(decode(frame, 1.0))
        snapshot = self.snapshot(2.0)
        self.assertEqual((snapshot.malformed, snapshot.queries_total,
                          snapshot.responses_total),
                         (3, 0, 0))

    def test_garbageNeverRaises(self):
        """
        Random payloads on port 53, over UDP and (length-prefixed) over TCP:
        never raised, each counted as what L{parse_message} makes of it.
        """
        rng = random.Random(5353)
        expected = {"malformed": 0, "queries": 0, "responses": 0}
        for i in range(500):
            payload = rng.randbytes(rng.randrange(1, 60))
            message = parse_message(payload)
            if message is None:
                expected["malformed"] += 2
            elif message.opcode == 0:
                expected["responses" if message.qr else "queries"] += 2
            self.udp(CLIENT, SERVER, payload, float(i))
            self.tcp(CLIENT, SERVER, framed(payload), float(i))
        snapshot = self.snapshot(1000.0)
        self.assertEqual(
            {"malformed": snapshot.malformed,
             "queries": snapshot.queries_total,
             "responses": snapshot.responses_total},
            expected,
        )
        self.assertGreater(expected["malformed"], 500)


class MemoryBoundTests(SynchronousTestCase):
    """
    Many queries never grow the tables past their caps.
    """

    def test_randomQueries(self):
        """
        50,000 queries for names never asked before, from random ports with
        random ids, none answered: the tables stay within their caps and
        every query and name is tracked or counted as evicted.
        """
        queries = 50_000
        dns = DnsAnalyser(AnalyserConfig(dns_pending_max=100, dns_names_max=64,
                                         report_queries=10, top_n=1000))
        message = query(0, "n0000000.example")
        template = bytes(_ether() / IP(src="10.0.0.1", dst="10.0.0.53")
                         / UDP(sport=1, dport=53) / Raw(message))
        name_at = 42 + 12 + 2  # the digits of the name's first label
        rng = random.Random(3)
        for i in range(queries):
            frame = (template[:34] + rng.randrange(1024, 65536).to_bytes(2, "big")
                     + template[36:42] + rng.randbytes(2) + template[44:name_at]
                     + b"%07d" % i + template[name_at + 7:])
            dns.observe(decode(frame, i / 10000))
            # The tables themselves: a snapshot per packet would be dear.
            self.assertLessEqual(len(dns._pending), 100)
            self.assertLessEqual(len(dns._names), 64)
            self.assertLessEqual(len(dns._recent), 10)
        snapshot = dns.snapshot(queries / 10000, 1.0)
        self.assertEqual(
            (snapshot.queries_total, snapshot.pending, snapshot.pending_evicted,
             snapshot.malformed),
            (queries, 100, queries - 100, 0),
        )
        self.assertEqual(len(snapshot.top_names) + snapshot.names_evicted, queries)
        self.assertEqual(snapshot.top_names[-1].qname, "n%07d.example" % (queries - 1))
