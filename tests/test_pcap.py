"""
Tests for L{loopy.agent.pcap} (the capture file reader), the replay source
L{loopy.agent.service.PcapSource}, the report clock and final report of a
replay, and the agent's C{--pcap} options.

Files are written by scapy (``wrpcap``, ``PcapNgWriter``), built by hand
where scapy cannot write the case (pcapng byte order, ``if_tsresol``, simple
packet blocks), and one was captured by real tcpdump on ``lo``
(``tests/data/lo-dns-tcp.pcap``: three dig queries to 127.77.7.53, over UDP
and TCP, and one TCP connection to 127.77.7.80:8080 carrying 100 octets out
and 3000 back).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter, wrpcap
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from loopy.agent import tap
from loopy.agent.monitor import Monitor
from loopy.agent.pcap import MAX_RECORD, CaptureFile, sniff
from loopy.agent.service import PcapSource, ReportLoop
from loopy.analysis.base import AnalyserConfig, find_analysers
from loopy.dissect.headers import LINKTYPE_ETHERNET, LINKTYPE_RAW, decode
from loopy.errors import CaptureError
from loopy import testing
from tests import e2e

DATA = Path(__file__).parent / "data"
TCPDUMP_FILE = DATA / "lo-dns-tcp.pcap"
T0 = 1_700_000_000
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def ether(payload):
    # Always explicit addresses: scapy would ARP on the real network otherwise.
    return Ether(src=MAC_A, dst=MAC_B) / payload


def udp_packets(count=3, step=0.25):
    packets = []
    for i in range(count):
        p = ether(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=9)
                  / (b"z" * i))
        p.time = T0 + i * step
        packets.append(p)
    return packets


def tcp_session(client="10.9.0.1", server="10.9.0.2", sport=40000, dport=80,
                request=120, response=4000, start=T0):
    """
    A whole TCP connection: handshake, C{request} octets out, C{response}
    octets back in two segments, FIN both ways.
    """
    c, s = 1000, 5000
    half = response // 2
    steps = [
        ("c", "S", c, 0, b""),
        ("s", "SA", s, c + 1, b""),
        ("c", "A", c + 1, s + 1, b""),
        ("c", "PA", c + 1, s + 1, b"q" * request),
        ("s", "A", s + 1, c + 1 + request, b"r" * half),
        ("s", "PA", s + 1 + half, c + 1 + request, b"r" * (response - half)),
        ("c", "A", c + 1 + request, s + 1 + response, b""),
        ("c", "FA", c + 1 + request, s + 1 + response, b""),
        ("s", "FA", s + 1 + response, c + 2 + request, b""),
        ("c", "A", c + 2 + request, s + 2 + response, b""),
    ]
    packets = []
    for i, (side, flags, seq, ack, payload) in enumerate(steps):
        if side == "c":
            ip = IP(src=client, dst=server) / TCP(sport=sport, dport=dport, flags=flags,
                                                  seq=seq, ack=ack)
        else:
            ip = IP(src=server, dst=client) / TCP(sport=dport, dport=sport, flags=flags,
                                                  seq=seq, ack=ack)
        p = ether(ip / payload)
        p.time = start + i * 0.001
        packets.append(p)
    return packets


class Pcapng:
    """
    Builds pcapng bytes block by block, in one byte order.
    """

    def __init__(self, order="<"):
        self.order = order
        self.blocks = []

    def block(self, btype, body):
        body += b"\0" * (-len(body) % 4)
        length = len(body) + 12
        self.blocks.append(struct.pack(self.order + "II", btype, length) + body
                           + struct.pack(self.order + "I", length))
        return self

    def option(self, code, value):
        return (struct.pack(self.order + "HH", code, len(value)) + value
                + b"\0" * (-len(value) % 4))

    def shb(self):
        return self.block(0x0A0D0D0A, struct.pack(self.order + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    def idb(self, linktype, tsresol=None):
        options = b""
        if tsresol is not None:
            options = self.option(9, bytes([tsresol])) + self.option(0, b"")
        return self.block(1, struct.pack(self.order + "HHI", linktype, 0, 0) + options)

    def epb(self, iface, units, data, flags=None):
        options = b""
        if flags is not None:
            options = self.option(2, struct.pack(self.order + "I", flags)) + self.option(0, b"")
        padded = data + b"\0" * (-len(data) % 4)
        return self.block(6, struct.pack(self.order + "IIIII", iface, units >> 32,
                                         units & 0xFFFFFFFF, len(data), len(data))
                          + padded + options)

    def spb(self, data):
        return self.block(3, struct.pack(self.order + "I", len(data)) + data)

    def bytes(self):
        return b"".join(self.blocks)


def sll(pkttype, protocol, payload):
    """
    A Linux cooked capture (SLL) header and its payload.
    """
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x02" * 6 + b"\0\0", protocol) + payload


class FileCase(SynchronousTestCase):
    def path(self, data: bytes = None) -> str:
        path = self.mktemp()
        if data is not None:
            Path(path).write_bytes(data)
        return path

    def read(self, path):
        capture = CaptureFile(path)
        self.addCleanup(capture.close)
        return capture, list(capture)


class ClassicPcapTests(FileCase):
    def check(self, packets, **kw):
        path = self.path()
        wrpcap(path, packets, **kw)
        capture, records = self.read(path)
        self.assertEqual(capture.kind, "pcap")
        self.assertEqual([r[0] for r in records], [bytes(p) for p in packets])
        for record, packet in zip(records, packets):
            self.assertAlmostEqual(record[1], float(packet.time), places=6)
            self.assertEqual(record[2:], (0, False, LINKTYPE_ETHERNET))
        self.assertEqual((capture.frames, capture.bytes, capture.damaged),
                         (len(packets), sum(len(p) for p in packets), 0))
        return path, records

    def test_microseconds_little_endian(self):
        """
        scapy's default file: magic 0xa1b2c3d4 little-endian, microseconds.
        """
        path, records = self.check(udp_packets())
        self.assertEqual(Path(path).read_bytes()[:4], b"\xd4\xc3\xb2\xa1")
        self.assertIsInstance(records[0][1], float)
        self.assertEqual(records[1][1], T0 + 0.25)

    def test_microseconds_big_endian(self):
        path, _ = self.check(udp_packets(), endianness=">")
        self.assertEqual(Path(path).read_bytes()[:4], b"\xa1\xb2\xc3\xd4")

    def test_nanoseconds_both_orders(self):
        """
        Magic 0xa1b23c4d: the fraction is nanoseconds.
        """
        packets = udp_packets()
        packets[2].time = T0 + 0.123456789
        for order in ("<", ">"):
            path, records = self.check(packets, nano=True, endianness=order)
            self.assertIn(Path(path).read_bytes()[:4],
                          (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"))
            self.assertAlmostEqual(records[2][1], T0 + 0.123456789, places=7)

    def test_raw_ip(self):
        """
        Link types 101, 228, 12 and 14 are delivered as raw IP.
        """
        for linktype in (101, 228, 12, 14):
            packet = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
            packet.time = T0
            path = self.path()
            wrpcap(path, [bytes(packet)], linktype=linktype)
            _, records = self.read(path)
            # Bare bytes (no scapy linktype warning) are stamped with the time written.
            self.assertEqual([(r[0],) + r[2:] for r in records],
                             [(bytes(packet), 0, False, LINKTYPE_RAW)])

    def test_linux_cooked(self):
        """
        SLL (113): the 16-octet header is stripped, pkttype 4 is outgoing, IP
        is delivered as raw IP, and other protocols are counted unsupported.
        """
        ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
        ip6 = bytes(IP(src="10.0.0.3", dst="10.0.0.4") / UDP(sport=3, dport=4))
        frames = [sll(0, 0x0800, ip), sll(4, 0x86DD, ip6), sll(0, 0x0806, b"\0" * 28)]
        path = self.path()
        wrpcap(path, frames, linktype=113)
        capture, records = self.read(path)
        self.assertEqual([r[0] for r in records], [ip, ip6])
        self.assertEqual([(r[3], r[4]) for r in records],
                         [(False, LINKTYPE_RAW), (True, LINKTYPE_RAW)])
        self.assertEqual((capture.frames, capture.unsupported), (2, 1))

    def test_unsupported_link_type(self):
        path = self.path()
        wrpcap(path, [b"\0" * 20, b"\0" * 20], linktype=105)  # 802.11
        capture, records = self.read(path)
        self.assertEqual((records, capture.unsupported, capture.damaged), ([], 2, 0))

    def test_tcpdump_file(self):
        """
        A file written by real tcpdump on ``lo`` reads whole.
        """
        capture, records = self.read(str(TCPDUMP_FILE))
        self.assertEqual((capture.frames, capture.damaged, capture.unsupported), (24, 0, 0))
        self.assertEqual({r[4] for r in records}, {LINKTYPE_ETHERNET})
        self.assertEqual([r[1] for r in records], sorted(r[1] for r in records))


class PcapngTests(FileCase):
    def test_scapy_pcapng(self):
        """
        scapy's pcapng writer (one IDB, EPBs).  It cannot write a second
        interface or ``if_tsresol``; the next test builds those by hand.
        """
        packets = tcp_session()
        path = self.path()
        with PcapNgWriter(path) as writer:
            for p in packets:
                writer.write(p)
        capture, records = self.read(path)
        self.assertEqual(capture.kind, "pcapng")
        self.assertEqual([(r[0], r[2], r[4]) for r in records],
                         [(bytes(p), 0, LINKTYPE_ETHERNET) for p in packets])
        for record, packet in zip(records, packets):
            self.assertAlmostEqual(record[1], float(packet.time), places=6)

    def test_two_interfaces_resolutions_and_sections(self):
        """
        Two sections of opposite byte order; interfaces of different link
        types and ``if_tsresol`` (10^-9, 2^-10, default 10^-6); SPBs take the
        first interface and the last time; unknown blocks are skipped.
        """
        eth = bytes(udp_packets(1)[0])
        ip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
        first = (Pcapng("<").shb().idb(1, tsresol=9).idb(101)
                 .epb(0, T0 * 10**9 + 5, eth)
                 .block(0x0BAD, b"unknown")
                 .epb(1, (T0 + 2) * 10**6 + 250000, ip, flags=2)
                 .spb(eth))
        second = Pcapng(">").shb().idb(113, tsresol=0x80 | 10).epb(
            0, (T0 + 3) * 1024 + 512, sll(4, 0x0800, ip))
        capture, records = self.read(self.path(first.bytes() + second.bytes()))
        self.assertEqual(capture.interfaces, [1, 101, 113])
        self.assertEqual(capture.damaged, 0)
        self.assertEqual(
            [(r[0], r[2], r[3], r[4]) for r in records],
            [(eth, 0, False, LINKTYPE_ETHERNET), (ip, 1, True, LINKTYPE_RAW),
             (eth, 0, False, LINKTYPE_ETHERNET), (ip, 2, True, LINKTYPE_RAW)])
        self.assertEqual(records[0][1], T0 + 5e-9)
        self.assertEqual([r[1] for r in records[1:]], [T0 + 2.25, T0 + 2.25, T0 + 3.5])

    def test_packet_for_unknown_interface_is_damage(self):
        data = Pcapng().shb().idb(1).epb(0, T0 * 10**6, b"x" * 20).epb(3, 0, b"y").bytes()
        capture, records = self.read(self.path(data))
        self.assertEqual((len(records), capture.damaged), (1, 1))
        self.assertIn("interface 3", capture.damage)


class DamageTests(FileCase):
    """
    Not a capture file: L{CaptureError}.  Damage further in: reading stops,
    counted, never raises.
    """

    def test_garbage(self):
        for data in [b"", b"GET / HTTP/1.1\r\n", b"\0" * 100, bytes(range(256)) * 10]:
            path = self.path(data)
            error = self.assertRaises(CaptureError, CaptureFile, path)
            self.assertIn("not a pcap or pcapng capture file", str(error))
            self.assertRaises(CaptureError, sniff, path)

    def test_missing_file(self):
        error = self.assertRaises(CaptureError, CaptureFile, "/nonexistent/x.pcap")
        self.assertIn("cannot read capture file", str(error))

    def test_header_cut_short(self):
        path = self.path()
        wrpcap(path, udp_packets())
        Path(path).write_bytes(Path(path).read_bytes()[:20])
        self.assertRaises(CaptureError, CaptureFile, path)
        ng = self.path(Pcapng().shb().bytes()[:10])
        self.assertRaises(CaptureError, CaptureFile, ng)
        ng = self.path(Pcapng().shb().bytes()[:20])
        self.assertEqual(self.read(ng)[0].damaged, 1)
        bad = self.path(b"\x0a\x0d\x0d\x0a" + b"\0" * 28)
        self.assertRaises(CaptureError, CaptureFile, bad)

    def test_truncated_at_every_length(self):
        """
        Cut anywhere, a file gives the whole records before the cut and no
        error; a cut inside a record is counted as damage.
        """
        packets = udp_packets(3)
        for writer in ("pcap", "pcapng"):
            path = self.path()
            if writer == "pcap":
                wrpcap(path, packets)
            else:
                with PcapNgWriter(path) as w:
                    for p in packets:
                        w.write(p)
            whole = Path(path).read_bytes()
            _, full = self.read(path)
            for cut in range(24, len(whole)):
                Path(path).write_bytes(whole[:cut])
                capture, records = self.read(path)
                self.assertEqual(records, full[:len(records)])
                self.assertIn(capture.damaged, (0, 1))
            Path(path).write_bytes(whole[:-1])
            capture, records = self.read(path)
            self.assertEqual((len(records), capture.damaged), (2, 1))

    def test_absurd_lengths(self):
        path = self.path()
        wrpcap(path, udp_packets(2))
        data = bytearray(Path(path).read_bytes())
        second = 24 + 16 + len(udp_packets(1)[0])
        struct.pack_into("<I", data, second + 8, MAX_RECORD + 1)
        capture, records = self.read(self.path(bytes(data)))
        self.assertEqual((len(records), capture.damaged), (1, 1))
        self.assertIn("262145", capture.damage)
        ng = Pcapng().shb().idb(1).bytes() + struct.pack("<II", 6, 1 << 30) + b"\0" * 64
        capture, records = self.read(self.path(ng))
        self.assertEqual((records, capture.damaged), ([], 1))

    def test_random_damage_never_raises(self):
        import random
        rng = random.Random(7)
        path = self.path()
        wrpcap(path, tcp_session())
        whole = Path(path).read_bytes()
        for _ in range(300):
            data = bytearray(whole)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(24, len(data))] = rng.randrange(256)
            capture, records = self.read(self.path(bytes(data)))
            self.assertLessEqual(len(records), len(tcp_session()))


class FakeUplink:
    def __init__(self, linked=True):
        self.reports = []
        self.answers = []
        self.linked = linked
        self.waiting = []

    def send(self, report):
        self.reports.append(report)
        d = Deferred()
        self.answers.append(d)
        return d

    def when_linked(self):
        if self.linked:
            return succeed(None)
        d = Deferred()
        self.waiting.append(d)
        return d


class ReplayTests(FileCase):
    def monitor(self):
        analysers = find_analysers(AnalyserConfig(), None)
        return Monitor("agent-p", "host-p", 1, analysers)

    def source(self, packets, sink, clock, **kw):
        path = self.path()
        wrpcap(path, packets)
        source = PcapSource(path, sink, clock, **kw)
        source.startService()
        self.addCleanup(source.stopService)
        return source

    def test_batches_per_turn(self):
        """
        Without pace, each reactor turn delivers one batch and the next turn
        is asked for at once.
        """
        seen = []
        clock = Clock()
        source = self.source(udp_packets(5), lambda *a: seen.append(source.batches),
                             clock, batch=2)
        self.assertEqual(seen, [])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0)
        self.assertEqual(seen, [0, 0, 1, 1, 2])
        summary = self.successResultOf(source.when_done())
        self.assertEqual((summary.frames, summary.seconds), (5, 0.0))
        self.assertEqual(source.batch_counters(), (3, 2))
        self.assertEqual(source.now(), T0 + 1.0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_pacing_schedule(self):
        """
        With pace, a frame is delivered once its offset from the first frame
        has passed on the clock.
        """
        seen = []
        clock = Clock()
        clock.advance(50)
        packets = udp_packets(4, step=0.5)
        packets[3].time = T0 + 3.0
        source = self.source(packets, lambda *a: seen.append(clock.seconds()), clock,
                             pace=True)
        clock.advance(0)
        self.assertEqual(seen, [50])
        self.assertEqual(source.now(), T0)
        clock.advance(0.4)
        self.assertEqual(len(seen), 1)
        clock.advance(0.1)
        self.assertEqual(seen, [50, 50.5])
        clock.pump([0.5, 1.0, 1.0])
        self.assertEqual(seen, [50, 50.5, 51.0, 53.0])
        self.assertEqual(source.now(), T0 + 3.0)
        summary = self.successResultOf(source.when_done())
        self.assertEqual((summary.frames, summary.seconds, summary.fps), (4, 3.0, 4 / 3))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_mid_replay(self):
        clock = Clock()
        source = self.source(udp_packets(4, step=10), lambda *a: None, clock, pace=True)
        clock.advance(0)
        source.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertNoResult(source.when_done())

    def test_tcp_connection_from_replay(self):
        """
        A replayed TCP session reaches the TCP analyser with exact payload
        octets each way; the report's time is the capture's.
        """
        monitor = self.monitor()
        clock = Clock()
        clock.advance(99)
        source = self.source(tcp_session(request=120, response=4000)
                             + udp_packets(2), monitor.frame, clock)
        monitor.attach_capture(source)
        uplink = FakeUplink()
        loop = ReportLoop(monitor, source, uplink, 1.0, clock, now=source.now)
        clock.advance(0)
        self.successResultOf(source.when_done())
        loop.tick()
        report = uplink.reports[0]
        self.assertEqual(report.ts, T0 + 0.25)
        (connection,) = report.analysers["tcp"].connections
        self.assertEqual(
            (connection.src, connection.sport, connection.dst, connection.dport,
             connection.state, connection.bytes_out, connection.bytes_in,
             connection.packets_out, connection.packets_in),
            ("10.9.0.1", 40000, "10.9.0.2", 80, "closed", 120, 4000, 6, 4))
        self.assertAlmostEqual(connection.rtt_ms, 2.0, places=3)
        self.assertEqual((report.capture.frames, report.capture.malformed), (12, 0))
        self.assertEqual(report.capture.interfaces[0].frames, 12)

    def test_tcpdump_file_through_analysers(self):
        """
        The real tcpdump capture: its DNS names and its TCP connection.
        """
        monitor = self.monitor()
        clock = Clock()
        source = PcapSource(str(TCPDUMP_FILE), monitor.frame, clock)
        source.startService()
        clock.advance(0)
        source.stopService()
        report = monitor.report(source.now())
        names = {(q.qname, q.qtype, q.rcode) for q in report.analysers["dns"].queries}
        self.assertEqual(names, {("www.loopy.test", "A", "NOERROR"),
                                 ("mail.loopy.test", "AAAA", "NOERROR"),
                                 ("tcp.loopy.test", "A", "NOERROR")})
        web = [c for c in report.analysers["tcp"].connections if c.dport == 8080]
        self.assertEqual([(c.dst, c.bytes_out, c.bytes_in, c.state) for c in web],
                         [("127.77.7.80", 100, 3000, "closed")])

    def test_no_report_before_first_packet(self):
        monitor = self.monitor()
        clock = Clock()
        source = self.source(udp_packets(1), monitor.frame, clock)
        uplink = FakeUplink()
        loop = ReportLoop(monitor, source, uplink, 1.0, clock, now=source.now)
        self.successResultOf(loop.tick())
        self.assertEqual(uplink.reports, [])
        clock.advance(0)
        loop.tick()
        self.assertEqual([r.ts for r in uplink.reports], [T0])

    def test_live_reports_keep_reactor_time(self):
        monitor = self.monitor()
        clock = Clock()
        clock.advance(1234.5)
        uplink = FakeUplink()
        loop = ReportLoop(monitor, source_stub(), uplink, 1.0, clock)
        loop.tick()
        self.assertEqual(uplink.reports[0].ts, 1234.5)


def source_stub():
    class Stub:
        def poll_kernel_stats(self):
            pass
    return Stub()


class AfterReplayTests(FileCase):
    """
    L{tap.after_replay}: a final report, then the reactor stops only with
    C{--exit-after-pcap}, once the report is answered or failed.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.monitor = Monitor("agent-p", "host-p", 1, [])
        self.monitor.frame(testing.udp_frame(), T0)
        self.uplink = FakeUplink()
        self.loop = ReportLoop(self.monitor, source_stub(), self.uplink, 1.0,
                               self.reactor, now=lambda: T0 + 7)

    def test_final_report_then_exit(self):
        d = tap.after_replay(None, self.loop, self.reactor, True)
        self.assertEqual([r.ts for r in self.uplink.reports], [T0 + 7])
        self.assertFalse(self.reactor.hasStopped)
        self.uplink.answers[0].callback(None)
        self.assertTrue(self.reactor.hasStopped)
        self.successResultOf(d)

    def test_keeps_running_without_flag(self):
        d = tap.after_replay(None, self.loop, self.reactor, False)
        self.uplink.answers[0].callback(None)
        self.successResultOf(d)
        self.assertFalse(self.reactor.hasStopped)

    def test_waits_for_link_then_gives_up(self):
        """
        A replay that ends before the hub link: the final report waits for
        the link up to 10 s, then goes (unsent) and the agent exits.
        """
        self.uplink.linked = False
        tap.after_replay(None, self.loop, self.reactor, True)
        self.assertEqual(self.uplink.reports, [])
        self.reactor.advance(9)
        self.uplink.waiting[0].callback(None)
        self.assertEqual(len(self.uplink.reports), 1)
        self.uplink.answers[0].errback(RuntimeError("lost"))
        self.assertTrue(self.reactor.hasStopped)

    def test_no_link_at_all(self):
        self.uplink.linked = False
        self.uplink.send = lambda report: succeed(None)
        tap.after_replay(None, self.loop, self.reactor, True)
        self.reactor.advance(10)
        self.assertTrue(self.reactor.hasStopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class OptionsTests(FileCase):
    def parse(self, *argv):
        return testing.parse_options(tap.Options, *argv)

    def test_pcap(self):
        options = self.parse("--pcap", str(TCPDUMP_FILE), "--pace", "--exit-after-pcap")
        self.assertEqual((options["pcap"], options["pace"], options["exit-after-pcap"],
                          options["interfaces"], options["kernel-filter"]),
                         (str(TCPDUMP_FILE), 1, 1, (), None))

    def test_errors(self):
        good = str(TCPDUMP_FILE)
        garbage = self.path(b"not a capture at all")
        for argv, message in [
            (["--pcap", "/nonexistent.pcap"], "--pcap /nonexistent.pcap: no such file"),
            (["--pcap", garbage], "is not a pcap or pcapng capture file"),
            (["--pcap", good, "--interface", "lo"], "--interface applies to live capture"),
            (["--pcap", good, "--promisc"], "--promisc applies to live capture"),
            (["--pcap", good, "--filter", "tcp"], "--filter applies to live capture"),
            (["--pace"], "--pace needs --pcap FILE"),
            (["--exit-after-pcap"], "--exit-after-pcap needs --pcap FILE"),
        ]:
            error = self.assertRaises(usage.UsageError, self.parse, *argv)
            self.assertIn(message, str(error))

    def test_make_service(self):
        """
        With --pcap the agent has a replay source and no capture sockets.
        """
        reactor = MemoryReactorClock()
        top = tap.makeService(self.parse("--pcap", str(TCPDUMP_FILE)), reactor)
        kinds = [type(s).__name__ for s in top]
        self.assertIn("PcapSource", kinds)
        self.assertNotIn("CaptureService", kinds)


class EndToEndReplayTests(unittest.TestCase):
    """
    Real ``twistd -n loopy-agent --pcap`` with a real hub: the tcpdump
    file's DNS names and TCP connection show in ``loopy-ui --json``.  No
    root needed: no raw socket is opened.
    """

    timeout = 90

    def setUp(self):
        e2e.start_processes(self)
        self.hub_port = e2e.free_port()

    @defer.inlineCallbacks
    def test_replay_reaches_the_hub(self):
        self.procs.start_hub("hub", self.hub_port)
        agent = self.procs.start_agent("replay", self.hub_port,
                                       "--pcap", str(TCPDUMP_FILE))

        @defer.inlineCallbacks
        def check():
            if agent.poll() is not None:
                raise AssertionError(f"agent exited:\n{self.procs.output('replay')}")
            doc = yield e2e.fleet_json(self.hub_port)
            found = e2e.agent_of(doc, "replay")
            if not found or found["status"] != "online" or not found.get("dns"):
                return None
            names = {(q["qname"], q["qtype"], q["rcode"]) for q in found["dns"]["queries"]}
            web = [c for c in found["tcp"]["connections"] if c["dport"] == 8080]
            if len(names) == 3 and web:
                return names, web
            return None

        names, web = yield e2e.poll(check, 30, what="the replayed file in loopy-ui --json")
        self.assertEqual(names, {("www.loopy.test", "A", "NOERROR"),
                                 ("mail.loopy.test", "AAAA", "NOERROR"),
                                 ("tcp.loopy.test", "A", "NOERROR")})
        self.assertEqual([(c["dst"], c["bytes_out"], c["bytes_in"], c["state"]) for c in web],
                         [("127.77.7.80", 100, 3000, "closed")])
        self.assertIn("replayed", self.procs.output("replay"))
        self.assertIsNone(agent.poll())  # still up without --exit-after-pcap

    @defer.inlineCallbacks
    def test_exit_after_pcap(self):
        """
        With --exit-after-pcap the agent sends its final report and exits 0.
        """
        self.procs.start_hub("hub", self.hub_port)
        agent = self.procs.start_agent("once", self.hub_port, "--pcap", str(TCPDUMP_FILE),
                                       "--exit-after-pcap")
        yield e2e.poll(lambda: agent.poll() is not None, 30, what="the agent to exit")
        self.assertEqual(agent.returncode, 0, self.procs.output("once"))
        doc = yield e2e.fleet_json(self.hub_port)
        found = e2e.agent_of(doc, "once")
        self.assertIsNotNone(found, doc)
        self.assertEqual(found["capture"]["frames"], 24)


class LiveTcpdumpFileTests(unittest.TestCase):
    """
    Files written just now by real ``tcpdump -w`` on ``lo``, in microsecond
    and nanosecond precision, read back frame for frame.
    """

    timeout = 60

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("tcpdump on lo needs root")
        if shutil.which("tcpdump") is None:
            raise unittest.SkipTest("tcpdump is not installed (make test installs it)")
        self.directory = Path(self.mktemp())
        self.directory.mkdir(parents=True)
        self.host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.port = random.randint(20000, 60000)

    @defer.inlineCallbacks
    def capture(self, *precision):
        path = self.directory / "live.pcap"
        err = self.directory / "tcpdump.err"
        with open(err, "w") as stderr:
            proc = subprocess.Popen(
                ["tcpdump", "-i", "lo", "-n", "-U", "-w", str(path), *precision,
                 f"udp and dst host {self.host} and dst port {self.port}"],
                stdout=subprocess.DEVNULL, stderr=stderr)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        yield e2e.poll(lambda: "listening on" in err.read_text(), 10,
                       what="tcpdump to start")
        payloads = [bytes([65 + i % 26]) * (i * 13 % 900) for i in range(60)]
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for payload in payloads:
            sender.sendto(payload, (self.host, self.port))

        def written():
            try:
                return sum(1 for _ in CaptureFile(str(path))) == len(payloads)
            except CaptureError:
                return False

        yield e2e.poll(written, 10, what="tcpdump to write every frame")
        proc.terminate()
        proc.wait(10)
        return str(path), payloads

    def check(self, path, payloads, magic):
        with open(path, "rb") as f:
            self.assertEqual(f.read(4), struct.pack("<I", magic))
        capture = CaptureFile(path)
        records = list(capture)
        self.assertEqual((capture.kind, capture.damaged), ("pcap", 0))
        packets = [decode(*record) for record in records]
        self.assertEqual(sorted(p.payload for p in packets), sorted(payloads))
        self.assertEqual({(p.dst, p.dport) for p in packets}, {(self.host, self.port)})
        now = time.time()
        self.assertTrue(all(now - 30 < p.ts <= now + 1 for p in packets))

    @defer.inlineCallbacks
    def test_microseconds(self):
        path, payloads = yield self.capture()
        self.check(path, payloads, 0xA1B2C3D4)

    @defer.inlineCallbacks
    def test_nanoseconds(self):
        path, payloads = yield self.capture("--time-stamp-precision=nano")
        self.check(path, payloads, 0xA1B23C4D)
