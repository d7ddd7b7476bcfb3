# -*- test-case-name: tests.test_analysis_ip -*-
"""
Tests for L{loopy.analysis.ip}: frames built with scapy, decoded by the
header path, counted by L{IpAnalyser}.
"""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.analysis.ip import IpAnalyser, protocol_name
from loopy.dissect.headers import decode
from loopy.model import Conversation, HostTraffic, ProtocolCount

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def _ether() -> Ether:
    """
    Ethernet with both addresses given (scapy resolves none).
    """
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")


def udp(src: str, dst: str, ip_len: int) -> IP:
    """
    A UDP datagram whose IP packet is C{ip_len} octets.
    """
    return IP(src=src, dst=dst) / UDP(sport=5000, dport=6000) / Raw(
        b"u" * (ip_len - 28))


class IpTestCase(SynchronousTestCase):
    """
    An analyser and a way to feed it.
    """

    config = AnalyserConfig()

    def setUp(self):
        self.ip = IpAnalyser(self.config)

    def feed(self, layers, ts=0.0, outgoing=False, count=1):
        """
        Put C{layers} in an Ethernet frame, decode it and observe it
        C{count} times.

        :returns: the frame's length in octets.
        """
        frame = bytes(_ether() / layers)
        packet = decode(frame, ts, 2, outgoing)
        self.assertIsNotNone(packet)
        for _ in range(count):
            self.ip.observe(packet)
        return len(frame)


class DirectionTests(IpTestCase):
    """
    Packets and octets each way, and the rates over an interval.
    """

    def test_counts(self):
        """
        Outgoing frames count as out, the rest as in; octets are frame
        octets.
        """
        self.assertEqual(self.feed(udp(B, A, 100), count=3), 114)
        self.assertEqual(self.feed(udp(A, B, 200), outgoing=True, count=2), 214)
        snapshot = self.ip.snapshot(10.0, 2.0)
        self.assertEqual(
            (snapshot.packets_in, snapshot.bytes_in, snapshot.packets_out,
             snapshot.bytes_out),
            (3, 342, 2, 428),
        )
        self.assertEqual(
            (snapshot.pps_in, snapshot.bps_in, snapshot.pps_out, snapshot.bps_out),
            (1.5, 1368.0, 1.0, 1712.0),
        )

    def test_ratesCoverTheInterval(self):
        """
        Rates count only what came since the previous snapshot; the totals
        keep growing.
        """
        self.feed(udp(B, A, 100), count=3)
        self.ip.snapshot(10.0, 1.0)
        self.feed(udp(B, A, 100))
        snapshot = self.ip.snapshot(14.0, 4.0)
        self.assertEqual(
            (snapshot.packets_in, snapshot.bytes_in, snapshot.pps_in,
             snapshot.bps_in, snapshot.pps_out, snapshot.bps_out),
            (4, 456, 0.25, 228.0, 0.0, 0.0),
        )
        snapshot = self.ip.snapshot(15.0, 1.0)
        self.assertEqual((snapshot.packets_in, snapshot.pps_in), (4, 0.0))

    def test_zeroInterval(self):
        """
        An interval of 0 counts as one second.
        """
        self.feed(udp(B, A, 100), count=2)
        snapshot = self.ip.snapshot(10.0, 0.0)
        self.assertEqual((snapshot.pps_in, snapshot.bps_in), (2.0, 1824.0))

    def test_empty(self):
        """
        Nothing seen, everything zero.
        """
        snapshot = self.ip.snapshot(10.0, 1.0)
        self.assertEqual(
            (snapshot.packets_in, snapshot.protocols, snapshot.top_talkers,
             snapshot.top_conversations, snapshot.hosts_tracked),
            (0, {}, (), (), 0),
        )


class ProtocolMixTests(IpTestCase):
    """
    The protocol buckets.
    """

    def test_buckets(self):
        """
        Every bucket, counted in packets and IP octets (frame octets when
        not IP), in name order.
        """
        self.feed(IP(src=A, dst=B) / TCP(), count=2)
        self.feed(IPv6(src="fd00::1", dst="fd00::2") / TCP())
        self.feed(IP(src=A, dst=B) / UDP() / Raw(b"ab"))
        self.feed(IP(src=A, dst=B) / ICMP())
        self.feed(IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest())
        self.feed(ARP(psrc=A, pdst=B))
        self.feed(IP(src=A, dst=B, proto=253) / Raw(b"abcd"))
        self.feed(IPv6(src="fd00::1", dst="fd00::2", nh=59))
        self.feed(Raw(b"\x88\xcc" + b"l" * 8))  # LLDP ethertype
        protocols = self.ip.snapshot(1.0, 1.0).protocols
        self.assertEqual(protocols, {
            "arp": ProtocolCount(packets=1, bytes=42),
            "icmp": ProtocolCount(packets=1, bytes=28),
            "icmpv6": ProtocolCount(packets=1, bytes=48),
            "ipv4-other": ProtocolCount(packets=1, bytes=24),
            "ipv6-other": ProtocolCount(packets=1, bytes=40),
            "other": ProtocolCount(packets=1, bytes=24),
            "tcp": ProtocolCount(packets=3, bytes=140),
            "udp": ProtocolCount(packets=1, bytes=30),
        })
        self.assertEqual(list(protocols), sorted(protocols))

    def test_eachWayAndBothVersions(self):
        """
        TCP over IPv4 and IPv6, in and out, is one bucket of the mix (IP
        octets), while the totals each way count frame octets.
        """
        sizes = [
            self.feed(IP(src=A, dst=B) / TCP() / Raw(b"x" * 10)),
            self.feed(IP(src=B, dst=A) / TCP(), outgoing=True),
            self.feed(IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP()),
        ]
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.protocols,
                         {"tcp": ProtocolCount(packets=3, bytes=50 + 40 + 60)})
        self.assertEqual(
            (snapshot.packets_in, snapshot.bytes_in, snapshot.packets_out,
             snapshot.bytes_out),
            (2, sizes[0] + sizes[2], 1, sizes[1]),
        )

    def test_protocolName(self):
        """
        L{protocol_name} of decoded packets.
        """
        names = [
            protocol_name(decode(bytes(_ether() / layers), 0.0))
            for layers in (IP() / TCP(), IPv6() / UDP(), IP(proto=47),
                           IPv6(nh=0) / Raw(b"\x3b\x00" + b"\x00" * 6),
                           ARP(), Raw(b"\x08\x06"))
        ]
        self.assertEqual(names, ["tcp", "udp", "ipv4-other", "ipv6-other",
                                 "arp", "other"])

    def test_nonIpHasNoHosts(self):
        """
        ARP and other non-IP frames count in the totals and the mix, not in
        the host and conversation tables.
        """
        self.feed(ARP(psrc=A, pdst=B), count=4)
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual((snapshot.packets_in, snapshot.hosts_tracked,
                          snapshot.conversations_tracked),
                         (4, 0, 0))


class TalkerTests(IpTestCase):
    """
    Top talkers and top conversations.
    """

    config = AnalyserConfig(top_n=2)

    def feedTraffic(self):
        self.feed(udp(A, B, 100), count=3)
        self.feed(udp(B, A, 500))
        self.feed(udp(C, A, 50))

    def test_topTalkers(self):
        """
        Hosts by octets sent and received, most first, C{top_n} of them.
        """
        self.feedTraffic()
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.top_talkers, (
            HostTraffic(A, packets_sent=3, bytes_sent=300, packets_received=2,
                        bytes_received=550),
            HostTraffic(B, packets_sent=1, bytes_sent=500, packets_received=3,
                        bytes_received=300),
        ))
        self.assertEqual(snapshot.hosts_tracked, 3)

    def test_topConversations(self):
        """
        Host pairs, the lower address as C{a}; C{*_ab} counts C{a} to C{b}.
        """
        self.feedTraffic()
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.top_conversations, (
            Conversation(A, B, packets_ab=3, bytes_ab=300, packets_ba=1,
                         bytes_ba=500),
            Conversation(A, C, packets_ab=0, bytes_ab=0, packets_ba=1,
                         bytes_ba=50),
        ))
        self.assertEqual(snapshot.conversations_tracked, 2)

    def test_ipv6(self):
        """
        IPv6 hosts are counted by their text address.
        """
        self.feed(IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP() / Raw(b"x"))
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.top_conversations, (
            Conversation("2001:db8::1", "2001:db8::2", packets_ab=0, bytes_ab=0,
                         packets_ba=1, bytes_ba=49),
        ))

    def test_textOrderNotOctetOrder(self):
        """
        C{a} is the address whose text sorts first, also when the octets
        sort the other way (the table keeps octets): 10.0.0.10 before
        10.0.0.9, 2001:db8::10 before 2001:db8::9.
        """
        self.feed(udp("10.0.0.9", "10.0.0.10", 100), count=2)
        self.feed(udp("10.0.0.10", "10.0.0.9", 60))
        self.feed(IPv6(src="2001:db8::9", dst="2001:db8::10") / UDP() / Raw(b"x"))
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.top_conversations, (
            Conversation("10.0.0.10", "10.0.0.9", packets_ab=1, bytes_ab=60,
                         packets_ba=2, bytes_ba=200),
            Conversation("2001:db8::10", "2001:db8::9", packets_ab=0, bytes_ab=0,
                         packets_ba=1, bytes_ba=49),
        ))

    def test_sameHost(self):
        """
        A packet from a host to itself (on lo) counts as sent and received
        by that one host.
        """
        self.feed(udp("127.0.0.1", "127.0.0.1", 60))
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.top_talkers, (
            HostTraffic("127.0.0.1", packets_sent=1, bytes_sent=60,
                        packets_received=1, bytes_received=60),
        ))


class IntervalTalkerTests(IpTestCase):
    """
    Top talkers and conversations over the last interval alone, what the
    hub's history keeps.
    """

    config = AnalyserConfig(top_n=2)

    def test_firstInterval(self):
        """
        In the first interval the interval tops are the cumulative ones.
        """
        self.feed(udp(A, B, 100), count=3)
        self.feed(udp(C, A, 50))
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual(snapshot.interval_talkers, snapshot.top_talkers)
        self.assertEqual(snapshot.interval_conversations, snapshot.top_conversations)

    def test_onlyTheInterval(self):
        """
        Later, a host counts only what it sent and received since the
        previous snapshot; hosts quiet in the interval are left out, and a
        new heavy pair outranks an old heavier one.
        """
        self.feed(udp(A, B, 1000), count=10)
        self.ip.snapshot(1.0, 1.0)
        self.feed(udp(C, A, 50), count=3)
        self.feed(udp(A, B, 100))
        snapshot = self.ip.snapshot(2.0, 1.0)
        self.assertEqual(snapshot.interval_talkers, (
            HostTraffic(A, packets_sent=1, bytes_sent=100, packets_received=3,
                        bytes_received=150),
            HostTraffic(C, packets_sent=3, bytes_sent=150),
        ))
        self.assertEqual(snapshot.interval_conversations, (
            Conversation(A, C, packets_ba=3, bytes_ba=150),
            Conversation(A, B, packets_ab=1, bytes_ab=100),
        ))
        self.assertEqual(snapshot.top_talkers[0].bytes_sent, 10 * 1000 + 100)
        self.assertEqual(self.ip.snapshot(3.0, 1.0).interval_talkers, ())


class BoundTests(IpTestCase):
    """
    The host and conversation tables stay within their caps.
    """

    config = AnalyserConfig(hosts_max=4, conversations_max=2)

    def test_pruneAtCap(self):
        """
        A new host at the cap drops the lighter half of the table (by octets)
        and counts it; the same for conversations.
        """
        self.feed(udp("10.0.0.1", "10.0.0.2", 528))
        self.feed(udp("10.0.0.3", "10.0.0.4", 38))
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual((snapshot.hosts_tracked, snapshot.hosts_evicted,
                          snapshot.conversations_tracked,
                          snapshot.conversations_evicted),
                         (4, 0, 2, 0))
        self.feed(udp("10.0.0.5", "10.0.0.6", 100))
        snapshot = self.ip.snapshot(2.0, 1.0)
        self.assertEqual((snapshot.hosts_tracked, snapshot.hosts_evicted,
                          snapshot.conversations_tracked,
                          snapshot.conversations_evicted),
                         (4, 2, 2, 1))
        self.assertEqual(
            [h.addr for h in snapshot.top_talkers],
            ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.0.6"],
        )
        self.assertEqual(
            [(c.a, c.b) for c in snapshot.top_conversations],
            [("10.0.0.1", "10.0.0.2"), ("10.0.0.5", "10.0.0.6")],
        )

    def test_knownHostsDoNotPrune(self):
        """
        Traffic between hosts already in the table prunes nothing.
        """
        self.feed(udp("10.0.0.1", "10.0.0.2", 100))
        self.feed(udp("10.0.0.3", "10.0.0.4", 100))
        self.feed(udp("10.0.0.2", "10.0.0.1", 100), count=50)
        self.feed(udp("10.0.0.4", "10.0.0.3", 100), count=50)
        snapshot = self.ip.snapshot(1.0, 1.0)
        self.assertEqual((snapshot.hosts_evicted, snapshot.conversations_evicted),
                         (0, 0))
        self.assertEqual(snapshot.packets_in, 102)


class MemoryBoundTests(SynchronousTestCase):
    """
    Many packets between random hosts never grow the tables past their caps.
    """

    def test_randomHosts(self):
        """
        50,000 packets, each between two hosts never seen before: the tables
        stay within their caps, and every host and pair is either tracked or
        counted as evicted.
        """
        packets = 50_000
        config = AnalyserConfig(hosts_max=64, conversations_max=32, top_n=5)
        ip = IpAnalyser(config)
        template = bytes(_ether() / udp("0.0.0.0", "0.0.0.0", 40))
        rng = random.Random(1)
        addresses = rng.sample(range(1, 1 << 32), 2 * packets)
        for i in range(packets):
            frame = (template[:26] + addresses[2 * i].to_bytes(4, "big")
                     + addresses[2 * i + 1].to_bytes(4, "big") + template[34:])
            ip.observe(decode(frame, float(i)))
            # The tables themselves: a snapshot per packet would be dear.
            self.assertLessEqual(len(ip._hosts), 64)
            self.assertLessEqual(len(ip._conversations), 32)
        snapshot = ip.snapshot(float(packets), 1.0)
        self.assertEqual(snapshot.hosts_tracked + snapshot.hosts_evicted,
                         2 * packets)
        self.assertEqual(
            snapshot.conversations_tracked + snapshot.conversations_evicted,
            packets,
        )
        self.assertEqual(len(snapshot.top_talkers), 5)
        self.assertEqual(snapshot.protocols["udp"],
                         ProtocolCount(packets=packets, bytes=40 * packets))
