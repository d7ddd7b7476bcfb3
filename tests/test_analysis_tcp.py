# -*- test-case-name: tests.test_analysis_tcp -*-
"""
Tests for L{loopy.analysis.tcp}: segments built with scapy (and a session
captured on lo), decoded by the header path, followed by L{TcpAnalyser}.
"""

from __future__ import annotations

import random

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.analysis.tcp import TcpAnalyser
from loopy.dissect.headers import decode
from loopy.model import TcpConnection
from tests.test_headers import LO_TCP_SESSION, frame_of

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)


def _ether() -> Ether:
    """
    Ethernet with both addresses given (scapy resolves none).
    """
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")


class TcpTestCase(SynchronousTestCase):
    """
    An analyser and a way to feed it segments.
    """

    config = AnalyserConfig()

    def setUp(self):
        self.tcp = TcpAnalyser(self.config)

    def send(self, src, dst, flags, seq=0, ack=0, payload=b"", ts=0.0):
        """
        Observe one IPv4 segment from C{src} to C{dst} (address, port).
        """
        frame = bytes(_ether() / IP(src=src[0], dst=dst[0]) / TCP(
            sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack
        ) / Raw(payload))
        self.tcp.observe(decode(frame, ts))

    def handshake(self, ts=100.0, client=CLIENT, server=SERVER):
        """
        SYN (ISN 1000), SYN-ACK (ISN 5000) 10 ms later, ACK 15 ms after that.
        """
        self.send(client, server, "S", seq=1000, ts=ts)
        self.send(server, client, "SA", seq=5000, ack=1001, ts=ts + 0.010)
        self.send(client, server, "A", seq=1001, ack=5001, ts=ts + 0.025)

    def snapshot(self, now=1000.0):
        return self.tcp.snapshot(now, 1.0)

    def connection(self, now=1000.0) -> TcpConnection:
        """
        The one connection tracked.
        """
        (connection,) = self.snapshot(now).connections
        return connection


class LifecycleTests(TcpTestCase):
    """
    A connection from handshake to close.
    """

    def test_fullConnection(self):
        """
        Handshake, 100 octets up, 300 down, FIN from each side: every
        counter, the handshake RTT and the state after each segment.
        """
        states = []

        def step(*args, **kwargs):
            self.send(*args, **kwargs)
            states.append(self.connection(kwargs["ts"]).state)

        step(CLIENT, SERVER, "S", seq=1000, ts=100.000)
        step(SERVER, CLIENT, "SA", seq=5000, ack=1001, ts=100.010)
        step(CLIENT, SERVER, "A", seq=1001, ack=5001, ts=100.025)
        step(CLIENT, SERVER, "PA", seq=1001, ack=5001, payload=b"q" * 100,
             ts=100.030)
        step(SERVER, CLIENT, "A", seq=5001, ack=1101, ts=100.040)
        step(SERVER, CLIENT, "PA", seq=5001, ack=1101, payload=b"r" * 300,
             ts=100.050)
        step(CLIENT, SERVER, "A", seq=1101, ack=5301, ts=100.060)
        step(CLIENT, SERVER, "FA", seq=1101, ack=5301, ts=100.070)
        step(SERVER, CLIENT, "FA", seq=5301, ack=1102, ts=100.080)
        step(CLIENT, SERVER, "A", seq=1102, ack=5302, ts=100.090)
        self.assertEqual(states, [
            "syn_sent", "syn_received", "established", "established",
            "established", "established", "established", "fin_wait", "closed",
            "closed",
        ])
        snapshot = self.snapshot(100.1)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=40000, dst="10.0.0.2", dport=80,
            state="closed", packets_out=6, bytes_out=100, packets_in=4,
            bytes_in=300, ip_bytes_out=340, ip_bytes_in=460, rtt_ms=25.0,
            retransmissions=0, first_seen=100.0, last_seen=100.09,
        ),))
        self.assertEqual(
            (snapshot.syn, snapshot.syn_ack, snapshot.established,
             snapshot.closed, snapshot.reset, snapshot.half_open,
             snapshot.active, snapshot.retransmissions,
             snapshot.connections_tracked, snapshot.connections_evicted,
             snapshot.connections_expired),
            (1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0),
        )

    def test_capturedSession(self):
        """
        The session captured on lo: 6 octets up, 7 down, a 25 microsecond
        handshake.
        """
        for ts, hexed in LO_TCP_SESSION:
            self.tcp.observe(decode(frame_of(hexed), ts))
        snapshot = self.snapshot(1.5)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="127.0.0.1", sport=56304, dst="127.0.0.1", dport=8080,
            state="closed", packets_out=6, bytes_out=6, packets_in=5,
            bytes_in=7, ip_bytes_out=326, ip_bytes_in=275, rtt_ms=0.025,
            retransmissions=0, first_seen=0.823664, last_seen=1.024246,
        ),))
        self.assertEqual((snapshot.syn, snapshot.established, snapshot.closed),
                         (1, 1, 1))

    def test_activeStates(self):
        """
        Established and half-closed connections are active; closed ones
        are not.
        """
        self.handshake(client=("10.0.0.1", 1))
        self.handshake(client=("10.0.0.1", 2))
        self.send(("10.0.0.1", 2), SERVER, "FA", seq=1001, ts=101.0)
        self.handshake(client=("10.0.0.1", 3))
        self.send(("10.0.0.1", 3), SERVER, "FA", seq=1001, ts=101.0)
        self.send(SERVER, ("10.0.0.1", 3), "FA", seq=5001, ts=101.0)
        snapshot = self.snapshot(102.0)
        self.assertEqual(
            sorted((c.sport, c.state) for c in snapshot.connections),
            [(1, "established"), (2, "fin_wait"), (3, "closed")],
        )
        self.assertEqual((snapshot.active, snapshot.closed), (2, 1))

    def test_ipv6(self):
        """
        IPv6 connections are followed the same way.
        """
        client, server = ("2001:db8::1", 50000), ("2001:db8::2", 443)
        for flags, src, dst, ts in (("S", client, server, 0.0),
                                    ("SA", server, client, 0.004),
                                    ("A", client, server, 0.008)):
            frame = bytes(_ether() / IPv6(src=src[0], dst=dst[0])
                          / TCP(sport=src[1], dport=dst[1], flags=flags))
            self.tcp.observe(decode(frame, ts))
        connection = self.connection(1.0)
        self.assertEqual(
            (connection.src, connection.dst, connection.state,
             connection.rtt_ms, connection.ip_bytes_out),
            ("2001:db8::1", "2001:db8::2", "established", 8.0, 120),
        )

    def test_notTcp(self):
        """
        UDP and later IPv4 fragments (no TCP header) are not followed.
        """
        frame = bytes(_ether() / IP(src="10.0.0.1", dst="10.0.0.2")
                      / UDP(sport=40000, dport=80))
        self.tcp.observe(decode(frame, 1.0))
        frame = bytes(_ether() / IP(src="10.0.0.1", dst="10.0.0.2", proto=6,
                                    frag=100) / Raw(b"\x00" * 40))
        self.tcp.observe(decode(frame, 1.0))
        snapshot = self.snapshot(1.0)
        self.assertEqual((snapshot.connections_tracked, snapshot.connections),
                         (0, ()))


class ResetTests(TcpTestCase):
    """
    RST.
    """

    def test_refused(self):
        """
        SYN answered by RST: the connection is reset, not half-open.
        """
        self.send(CLIENT, SERVER, "S", seq=1000, ts=1.0)
        self.send(SERVER, CLIENT, "RA", seq=0, ack=1001, ts=1.001)
        snapshot = self.snapshot(1.1)
        self.assertEqual(
            (snapshot.syn, snapshot.reset, snapshot.half_open, snapshot.active,
             snapshot.connections_tracked),
            (1, 1, 0, 0, 1),
        )
        self.assertEqual(
            (snapshot.connections[0].state, snapshot.connections[0].packets_in),
            ("reset", 1),
        )

    def test_resetOnce(self):
        """
        An established connection reset by both sides counts one reset.
        """
        self.handshake()
        self.send(CLIENT, SERVER, "R", seq=1001, ts=101.0)
        self.send(SERVER, CLIENT, "R", seq=5001, ts=101.0)
        snapshot = self.snapshot(101.5)
        self.assertEqual((snapshot.reset, snapshot.established, snapshot.active),
                         (1, 1, 0))
        self.assertEqual(snapshot.connections[0].packets_out, 3)

    def test_unknownReset(self):
        """
        A RST for a connection never seen is not tracked.
        """
        self.send(SERVER, CLIENT, "R", seq=5, ts=1.0)
        snapshot = self.snapshot(1.0)
        self.assertEqual((snapshot.reset, snapshot.connections_tracked), (0, 0))


class OrientationTests(TcpTestCase):
    """
    Which end is C{src}.
    """

    def test_halfOpen(self):
        """
        A SYN alone is a half-open connection; a retransmitted SYN is not a
        second attempt.
        """
        self.send(CLIENT, SERVER, "S", seq=1000, ts=10.0)
        self.send(CLIENT, SERVER, "S", seq=1000, ts=11.0)
        snapshot = self.snapshot(12.0)
        self.assertEqual((snapshot.syn, snapshot.half_open, snapshot.active),
                         (1, 1, 1))
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=40000, dst="10.0.0.2", dport=80,
            state="syn_sent", packets_out=2, ip_bytes_out=80, first_seen=10.0,
            last_seen=11.0,
        ),))

    def test_synAckFirst(self):
        """
        A connection first seen at its SYN-ACK is oriented from the SYN-ACK's
        receiver to its sender, and has no RTT.
        """
        self.send(SERVER, CLIENT, "SA", seq=5000, ack=1001, ts=1.0)
        snapshot = self.snapshot(1.0)
        self.assertEqual((snapshot.syn, snapshot.syn_ack, snapshot.half_open),
                         (0, 1, 1))
        self.send(CLIENT, SERVER, "A", seq=1001, ack=5001, ts=1.01)
        snapshot = self.snapshot(1.1)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=40000, dst="10.0.0.2", dport=80,
            state="established", packets_out=1, packets_in=1, ip_bytes_out=40,
            ip_bytes_in=40, rtt_ms=None, first_seen=1.0, last_seen=1.01,
        ),))
        self.assertEqual((snapshot.syn_ack, snapshot.established), (1, 1))

    def test_midStreamFromServer(self):
        """
        Picked up mid-stream, the end with the lower port is the server: a
        first segment from port 443 counts as coming in.
        """
        client, server = ("10.0.0.1", 51000), ("10.0.0.2", 443)
        self.send(server, client, "PA", seq=7, ack=9, payload=b"s" * 100, ts=5.0)
        self.send(client, server, "A", seq=9, ack=107, ts=5.1)
        snapshot = self.snapshot(6.0)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=51000, dst="10.0.0.2", dport=443,
            state="established", packets_out=1, bytes_out=0, packets_in=1,
            bytes_in=100, ip_bytes_out=40, ip_bytes_in=140, rtt_ms=None,
            first_seen=5.0, last_seen=5.1,
        ),))
        self.assertEqual((snapshot.established, snapshot.active), (0, 1))

    def test_midStreamFromClient(self):
        """
        A first segment from the higher port counts as going out.
        """
        client, server = ("10.0.0.1", 51000), ("10.0.0.2", 443)
        self.send(client, server, "PA", seq=9, ack=7, payload=b"c" * 10, ts=5.0)
        connection = self.connection(5.0)
        self.assertEqual(
            (connection.src, connection.sport, connection.packets_out,
             connection.bytes_out, connection.packets_in),
            ("10.0.0.1", 51000, 1, 10, 0),
        )

    def test_clientAddressAfterServer(self):
        """
        The table keeps one key per connection for both directions, the
        lower address first; a client whose address sorts after the
        server's is still C{src}, and each direction counts on its side.
        """
        client, server = ("10.0.0.9", 40000), ("10.0.0.2", 80)
        self.send(client, server, "S", seq=1000, ts=1.0)
        self.send(server, client, "SA", seq=5000, ack=1001, ts=1.01)
        self.send(client, server, "A", seq=1001, ack=5001, ts=1.02)
        self.send(client, server, "PA", seq=1001, ack=5001, payload=b"GET", ts=1.03)
        self.send(server, client, "PA", seq=5001, ack=1004, payload=b"200 OK", ts=1.04)
        self.send(client, server, "FA", seq=1004, ack=5007, ts=1.05)
        self.send(server, client, "FA", seq=5007, ack=1005, ts=1.06)
        snapshot = self.snapshot(2.0)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.9", sport=40000, dst="10.0.0.2", dport=80,
            state="closed", packets_out=4, bytes_out=3, packets_in=3,
            bytes_in=6, ip_bytes_out=163, ip_bytes_in=126, rtt_ms=20.0,
            first_seen=1.0, last_seen=1.06,
        ),))
        self.assertEqual((snapshot.syn, snapshot.established, snapshot.closed),
                         (1, 1, 1))

    def test_midStreamClientAddressAfterServer(self):
        """
        Picked up mid-stream from the server, with the client's address
        sorting after the server's.
        """
        client, server = ("10.0.0.9", 40000), ("10.0.0.2", 80)
        self.send(server, client, "PA", seq=7, ack=9, payload=b"s" * 100, ts=5.0)
        self.send(client, server, "A", seq=9, ack=107, ts=5.1)
        connection = self.connection(6.0)
        self.assertEqual(
            (connection.src, connection.sport, connection.dst, connection.dport,
             connection.packets_out, connection.packets_in, connection.bytes_in),
            ("10.0.0.9", 40000, "10.0.0.2", 80, 1, 1, 100),
        )

    def test_selfConnection(self):
        """
        A connection from a port to itself (a TCP self-connect on lo) has
        one end: after the first segment, every segment counts as the
        client's.
        """
        me = ("127.0.0.1", 5000)
        self.send(me, me, "SA", seq=100, ack=101, ts=1.0)
        self.send(me, me, "A", seq=101, ack=101, ts=1.001)
        self.send(me, me, "PA", seq=101, ack=101, payload=b"hello", ts=1.002)
        self.assertEqual(self.connection(2.0), TcpConnection(
            src="127.0.0.1", sport=5000, dst="127.0.0.1", dport=5000,
            state="established", packets_out=2, bytes_out=5, packets_in=1,
            ip_bytes_out=85, ip_bytes_in=40, first_seen=1.0, last_seen=1.002,
        ))


class RetransmissionTests(TcpTestCase):
    """
    Retransmissions: payload at sequence numbers already seen.
    """

    def test_retransmissions(self):
        """
        A repeated segment and a partly overlapping one count, each
        direction on its own; their payload counts again in the octets.
        Keep-alives (one octet, or none, just below the next sequence
        number) and pure ACKs do not.
        """
        self.handshake()
        self.send(CLIENT, SERVER, "PA", seq=1001, payload=b"a" * 100, ts=101.0)
        self.send(CLIENT, SERVER, "PA", seq=1001, payload=b"a" * 100, ts=101.2)
        self.send(CLIENT, SERVER, "PA", seq=1051, payload=b"b" * 100, ts=101.3)
        self.send(CLIENT, SERVER, "PA", seq=1151, payload=b"c" * 50, ts=101.4)
        self.send(CLIENT, SERVER, "A", seq=1200, payload=b"\x00", ts=110.0)
        self.send(CLIENT, SERVER, "A", seq=1200, ts=120.0)
        self.send(CLIENT, SERVER, "A", seq=1001, ts=120.1)
        self.send(SERVER, CLIENT, "PA", seq=5001, payload=b"d" * 10, ts=121.0)
        self.send(SERVER, CLIENT, "PA", seq=5001, payload=b"d" * 10, ts=121.5)
        self.send(SERVER, CLIENT, "PA", seq=5011, payload=b"e" * 10, ts=121.6)
        snapshot = self.snapshot(122.0)
        (connection,) = snapshot.connections
        self.assertEqual(
            (connection.retransmissions, connection.bytes_out,
             connection.bytes_in, snapshot.retransmissions),
            (3, 351, 30, 3),
        )

    def test_sequenceWrap(self):
        """
        Sequence numbers wrap at 2**32 (RFC 1982 arithmetic): data after the
        wrap is new, a repeat of data before it is a retransmission.
        """
        self.send(CLIENT, SERVER, "S", seq=0xFFFFFF00, ts=1.0)
        self.send(SERVER, CLIENT, "SA", seq=0xFFFFFFFF, ack=0xFFFFFF01, ts=1.0)
        self.send(CLIENT, SERVER, "A", seq=0xFFFFFF01, ack=0, ts=1.0)
        self.send(CLIENT, SERVER, "PA", seq=0xFFFFFF01, payload=b"w" * 256, ts=2.0)
        self.send(CLIENT, SERVER, "PA", seq=1, payload=b"x" * 100, ts=3.0)
        self.send(SERVER, CLIENT, "PA", seq=0, payload=b"y" * 20, ts=3.1)
        self.assertEqual(self.connection(3.5).retransmissions, 0)
        self.send(CLIENT, SERVER, "PA", seq=0xFFFFFF01, payload=b"w" * 256, ts=4.0)
        self.send(CLIENT, SERVER, "A", seq=100, payload=b"\x00", ts=5.0)
        connection = self.connection(6.0)
        self.assertEqual((connection.retransmissions, connection.bytes_out),
                         (1, 613))


class ReuseTests(TcpTestCase):
    """
    A 5-tuple used again after its connection ended.
    """

    def close(self, client=CLIENT, server=SERVER, ts=101.0):
        self.send(client, server, "FA", seq=1001, ack=5001, ts=ts)
        self.send(server, client, "FA", seq=5001, ack=1002, ts=ts)
        self.send(client, server, "A", seq=1002, ack=5002, ts=ts)

    def test_reuseAfterClose(self):
        """
        A new SYN on a closed connection's 5-tuple starts a new connection.
        """
        self.handshake(ts=100.0)
        self.close()
        self.send(CLIENT, SERVER, "S", seq=90000, ts=105.0)
        snapshot = self.snapshot(105.0)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=40000, dst="10.0.0.2", dport=80,
            state="syn_sent", packets_out=1, ip_bytes_out=40, first_seen=105.0,
            last_seen=105.0,
        ),))
        self.assertEqual((snapshot.syn, snapshot.closed, snapshot.half_open,
                          snapshot.connections_tracked),
                         (2, 1, 1, 1))
        self.send(SERVER, CLIENT, "SA", seq=1, ack=90001, ts=105.002)
        self.send(CLIENT, SERVER, "A", seq=90001, ack=2, ts=105.004)
        snapshot = self.snapshot(105.1)
        self.assertEqual((snapshot.established, snapshot.active,
                          snapshot.connections[0].rtt_ms),
                         (2, 1, 4.0))

    def test_reuseAfterReset(self):
        """
        The same after a reset.
        """
        self.handshake(ts=100.0)
        self.send(SERVER, CLIENT, "R", seq=5001, ts=101.0)
        self.send(CLIENT, SERVER, "S", seq=7, ts=102.0)
        connection = self.connection(102.0)
        self.assertEqual((connection.state, connection.first_seen), ("syn_sent", 102.0))

    def test_reuseFromOtherEnd(self):
        """
        A connection picked up mid-stream may be oriented the wrong way
        round (the client had the lower port).  When its 5-tuple is reused,
        the new SYN orients the new connection.
        """
        client, server = ("10.0.0.1", 1000), ("10.0.0.2", 8080)
        self.send(client, server, "PA", seq=1001, ack=5001, payload=b"x", ts=1.0)
        self.assertEqual(self.connection(1.0).src, "10.0.0.2")
        self.send(client, server, "FA", seq=1002, ack=5001, ts=2.0)
        self.send(server, client, "FA", seq=5001, ack=1003, ts=2.0)
        self.send(client, server, "S", seq=1, ts=3.0)
        snapshot = self.snapshot(3.0)
        self.assertEqual(snapshot.connections, (TcpConnection(
            src="10.0.0.1", sport=1000, dst="10.0.0.2", dport=8080,
            state="syn_sent", packets_out=1, ip_bytes_out=40, first_seen=3.0,
            last_seen=3.0,
        ),))
        self.assertEqual((snapshot.syn, snapshot.half_open), (1, 1))

    def test_noReuseWhileOpen(self):
        """
        A SYN on a connection that has not ended is part of it.
        """
        self.handshake(ts=100.0)
        self.send(CLIENT, SERVER, "S", seq=1000, ts=100.5)
        snapshot = self.snapshot(101.0)
        self.assertEqual((snapshot.connections_tracked, snapshot.syn,
                          snapshot.connections[0].packets_out),
                         (1, 1, 3))


class ExpiryTests(TcpTestCase):
    """
    Connections age out of the table at C{snapshot(now)}.
    """

    config = AnalyserConfig(tcp_idle_timeout=300.0, tcp_half_open_timeout=30.0,
                            tcp_linger=60.0)

    def assertTracked(self, now, tracked, expired):
        snapshot = self.snapshot(now)
        self.assertEqual(
            (snapshot.connections_tracked, snapshot.connections_expired),
            (tracked, expired),
            now,
        )
        return snapshot

    def test_idle(self):
        """
        An established connection idle for C{tcp_idle_timeout} seconds is
        dropped and counted as expired.
        """
        self.send(CLIENT, SERVER, "A", seq=1, ts=0.0)
        self.assertTracked(299.9, 1, 0)
        snapshot = self.assertTracked(300.0, 0, 1)
        self.assertEqual((snapshot.active, snapshot.connections), (0, ()))

    def test_halfOpen(self):
        """
        A half-open connection goes after C{tcp_half_open_timeout}.
        """
        self.send(CLIENT, SERVER, "S", seq=1, ts=10.0)
        self.assertTracked(39.9, 1, 0)
        snapshot = self.assertTracked(40.0, 0, 1)
        self.assertEqual(snapshot.half_open, 0)

    def test_linger(self):
        """
        A closed connection stays in reports for C{tcp_linger} seconds.
        """
        self.handshake(ts=0.0)
        self.send(CLIENT, SERVER, "FA", seq=1001, ts=5.0)
        self.send(SERVER, CLIENT, "FA", seq=5001, ts=10.0)
        snapshot = self.assertTracked(69.9, 1, 0)
        self.assertEqual(snapshot.connections[0].state, "closed")
        self.assertTracked(70.0, 0, 1)

    def test_resetLinger(self):
        """
        So does a reset one.
        """
        self.handshake(ts=0.0)
        self.send(SERVER, CLIENT, "R", seq=5001, ts=10.0)
        self.assertTracked(69.9, 1, 0)
        self.assertTracked(70.0, 0, 1)

    def test_eachByItsOwnTimeout(self):
        """
        Connections in different states, oldest first, each expire by their
        own timeout.
        """
        self.send(("10.0.0.1", 1001), SERVER, "S", seq=1, ts=0.0)
        self.send(("10.0.0.1", 1002), SERVER, "A", seq=1, ts=50.0)
        self.send(("10.0.0.1", 1003), SERVER, "A", seq=1, ts=70.0)
        self.send(("10.0.0.1", 1003), SERVER, "R", seq=1, ts=80.0)
        snapshot = self.assertTracked(100.0, 2, 1)
        self.assertEqual([c.sport for c in snapshot.connections], [1003, 1002])
        snapshot = self.assertTracked(140.0, 1, 2)
        self.assertEqual([c.sport for c in snapshot.connections], [1002])
        self.assertTracked(350.0, 0, 3)

    def test_activityKeepsAlive(self):
        """
        A segment resets the idle clock.
        """
        self.send(CLIENT, SERVER, "A", seq=1, ts=0.0)
        self.send(SERVER, CLIENT, "A", seq=1, ts=200.0)
        self.assertTracked(499.9, 1, 0)
        self.assertTracked(500.0, 0, 1)


class BoundTests(TcpTestCase):
    """
    The connection table's cap.
    """

    config = AnalyserConfig(tcp_connections_max=3, report_connections=10)

    def test_evictLeastRecentlyActive(self):
        """
        At the cap a new connection evicts the least recently active one.
        """
        for port, ts in ((1, 1.0), (2, 2.0), (3, 3.0)):
            self.send(("10.0.0.1", port), SERVER, "S", seq=port, ts=ts)
        self.send(("10.0.0.1", 1), SERVER, "S", seq=1, ts=4.0)
        self.send(("10.0.0.1", 4), SERVER, "S", seq=4, ts=5.0)
        snapshot = self.snapshot(5.0)
        self.assertEqual([c.sport for c in snapshot.connections], [4, 1, 3])
        self.assertEqual(
            (snapshot.connections_tracked, snapshot.connections_evicted,
             snapshot.half_open, snapshot.active, snapshot.syn),
            (3, 1, 3, 3, 4),
        )

    def test_reportConnections(self):
        """
        A report holds at most C{report_connections}, the most recently
        active first.
        """
        self.tcp = TcpAnalyser(AnalyserConfig(report_connections=2))
        for port in (1, 2, 3):
            self.send(("10.0.0.1", port), SERVER, "S", seq=port, ts=float(port))
        snapshot = self.snapshot(3.0)
        self.assertEqual([c.sport for c in snapshot.connections], [3, 2])
        self.assertEqual(snapshot.connections_tracked, 3)


class MemoryBoundTests(SynchronousTestCase):
    """
    Many connections never grow the table past its cap.
    """

    def test_randomConnections(self):
        """
        50,000 SYNs between random addresses and ports: the table stays
        within its cap and the rest are counted as evicted.
        """
        packets = 50_000
        tcp = TcpAnalyser(AnalyserConfig(tcp_connections_max=100,
                                         report_connections=5))
        template = bytes(_ether() / IP(src="0.0.0.0", dst="0.0.0.0")
                         / TCP(sport=1, dport=2, flags="S"))
        rng = random.Random(2)
        for i in range(packets):
            frame = (template[:26] + rng.randbytes(8)
                     + rng.randrange(1024, 65536).to_bytes(2, "big")
                     + rng.randrange(1, 1024).to_bytes(2, "big") + template[38:])
            tcp.observe(decode(frame, i / 1000))
            # The table itself: a snapshot per packet would be dear.
            self.assertLessEqual(len(tcp._table), 100)
        snapshot = tcp.snapshot(packets / 1000, 1.0)
        self.assertEqual(
            (snapshot.syn, snapshot.connections_tracked,
             snapshot.connections_evicted, snapshot.half_open,
             len(snapshot.connections)),
            (packets, 100, packets - 100, 100, 5),
        )
