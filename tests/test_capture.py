"""
Tests for L{loopy.agent.capture} and L{loopy.agent.ring}: real capture
sockets on C{lo} (root only) reading real datagrams, and the service that
picks between them.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import time

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from loopy.agent.capture import PacketSocket, is_root
from loopy.agent.ring import MIB, RingSocket, RingUnavailable, _with_vlan
from loopy.agent.service import CaptureConfig, CaptureService
from loopy.dissect.headers import decode
from loopy import testing


def need_root():
    if not is_root():
        raise SkipTest("capturing on lo needs root")


class Traffic:
    """
    UDP datagrams to a random 127/8 address and port, so that a filter on
    them sees nothing else on C{lo}.
    """

    def __init__(self):
        self.host = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254),
                                      random.randint(2, 254))
        self.port = random.randint(20000, 60000)
        self.filter = f"udp and dst host {self.host} and dst port {self.port}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, payloads):
        for payload in payloads:
            self.sock.sendto(payload, (self.host, self.port))

    def close(self):
        self.sock.close()


def drain(capture, frames, expected, seconds=5.0):
    """
    Read C{capture} until C{frames} holds C{expected} entries or
    C{seconds} pass.
    """
    deadline = time.monotonic() + seconds
    while len(frames) < expected and time.monotonic() < deadline:
        select.select([capture], [], [], 0.05)
        capture.doRead()


class CaptureOnLoopbackMixin:
    """
    What both capture sockets must do on C{lo}.
    """

    def make(self, sink, filter_expression, **kw):
        raise NotImplementedError

    def setUp(self):
        need_root()
        self.traffic = Traffic()
        self.addCleanup(self.traffic.close)
        self.frames = []
        self.capture = self.make(lambda *frame: self.frames.append(frame),
                                 self.traffic.filter)
        self.capture.open()
        self.addCleanup(self.capture.close)

    def test_everyFrameOnce(self):
        """
        Each datagram sent on lo arrives once (the outgoing copy skipped),
        whole, with a kernel timestamp, and is counted with its octets.
        """
        payloads = [bytes([i % 256]) * (i * 7 % 1400) for i in range(500)]
        before = time.time()
        self.traffic.send(payloads)
        drain(self.capture, self.frames, len(payloads))
        after = time.time()
        self.assertEqual(len(self.frames), len(payloads))
        packets = [decode(*frame) for frame in self.frames]
        # The kernel may hand frames over out of order when the sender moves
        # between CPUs; each must come exactly once.
        self.assertEqual(sorted(p.payload for p in packets), sorted(payloads))
        self.assertEqual({(p.dst, p.dport, p.outgoing) for p in packets},
                         {(self.traffic.host, self.traffic.port, False)})
        self.assertTrue(all(before - 0.01 <= p.ts <= after + 0.01 for p in packets))
        stats = self.capture.stats()
        self.assertEqual((stats.name, stats.frames, stats.bytes, stats.kernel_drops),
                         ("lo", 500, sum(len(f[0]) for f in self.frames), 0))
        self.assertEqual(sum(len(p) for p in payloads) + 500 * 42, stats.bytes)

    def test_truncated(self):
        """
        Frames longer than the snaplen are cut to it, and counted.
        """
        self.capture.close()
        self.capture = self.make(lambda *frame: self.frames.append(frame),
                                 self.traffic.filter, snaplen=100)
        self.capture.open()
        self.traffic.send([b"s" * 10, b"l" * 500])
        drain(self.capture, self.frames, 2)
        self.assertEqual(sorted(len(f[0]) for f in self.frames), [52, 100])
        stats = self.capture.stats()
        self.assertEqual((stats.frames, stats.truncated), (2, 1))

    def test_filtered(self):
        """
        The kernel filter keeps other traffic on lo away.
        """
        other = Traffic()
        self.addCleanup(other.close)
        other.send([b"other"] * 20)
        self.traffic.send([b"mine"])
        drain(self.capture, self.frames, 1)
        drain(self.capture, self.frames, 2, seconds=0.3)
        self.assertEqual([decode(*f).payload for f in self.frames], [b"mine"])


class RingOnLoopbackTests(CaptureOnLoopbackMixin, TestCase):
    def make(self, sink, filter_expression, **kw):
        kw.setdefault("ring_size", 4 * MIB)
        kw.setdefault("block_timeout", 10)
        return RingSocket("lo", sink, filter_expression, **kw)

    def test_source(self):
        self.assertEqual(self.capture.stats().source, "ring")

    def test_blockTimeout(self):
        """
        A lone frame in a block that is far from full is handed over once
        the block timeout (10 ms here) has passed.
        """
        self.traffic.send([b"lone"])
        # Nothing else passes the filter: without the timeout the block
        # would never be handed over.
        drain(self.capture, self.frames, 1)
        self.assertEqual(len(self.frames), 1)

    def test_overflow(self):
        """
        A ring nobody reads fills: the kernel drops and counts, the ring
        fill reads 1.0, and capture goes on once the agent catches up.
        """
        self.capture.close()
        self.capture = self.make(lambda *frame: self.frames.append(frame),
                                 self.traffic.filter, ring_size=2 * 4096,
                                 block_size=4096, blocks_per_read=1)
        self.capture.open()
        self.traffic.send([b"x" * 1000] * 200)
        deadline = time.monotonic() + 5
        while self.capture._waiting_blocks() < 2 and time.monotonic() < deadline:
            select.select([], [], [], 0.01)  # until the kernel retires both blocks
        drain(self.capture, self.frames, 200, seconds=0.3)
        self.capture.poll_kernel_stats()
        stats = self.capture.stats()
        self.assertEqual(stats.ring_fill, 1.0)
        # Each datagram reaches the ring twice on lo (outgoing, incoming):
        # two 4 KiB blocks hold a few, the rest of the 400 are dropped.
        self.assertGreater(stats.kernel_drops, 350)
        self.assertLess(len(self.frames), 10)
        self.assertGreater(stats.ring_freezes, 0)
        self.assertEqual(self.capture.stats().ring_fill, 0.0)
        self.assertGreater(self.capture.full_batches, 0)
        self.frames.clear()
        self.traffic.send([b"after"])
        drain(self.capture, self.frames, 1)
        self.assertEqual([decode(*f).payload for f in self.frames], [b"after"])


class RingVlanTests(TestCase):
    """
    A tagged frame sent on lo: the kernel takes the 802.1Q tag out on
    receive and hands it over beside the frame in the ring; the frame
    reaches the analysers with its VLAN id.
    """

    def test_vlanId(self):
        need_root()
        traffic = Traffic()
        self.addCleanup(traffic.close)
        frames = []
        capture = RingSocket("lo", lambda *frame: frames.append(frame), traffic.filter,
                             block_timeout=10)
        capture.open()
        self.addCleanup(capture.close)
        untagged = testing.udp_frame(dst=socket.inet_aton(traffic.host), dport=traffic.port)
        # To a MAC that is not lo's, so the IP stack drops it unread.
        tagged = (b"\x02\x00\x00\x00\x00\x01" + untagged[6:12] + b"\x81\x00\x00\x64"
                  + untagged[12:])
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.addCleanup(sender.close)
        sender.bind(("lo", 0))
        sender.send(tagged)
        drain(capture, frames, 1)
        self.assertEqual(len(frames), 1)
        self.assertEqual(frames[0][0], tagged)
        packet = decode(*frames[0])
        self.assertEqual((packet.vlan, packet.dst, packet.payload), (100, traffic.host, b"hello"))


class SocketOnLoopbackTests(CaptureOnLoopbackMixin, TestCase):
    def make(self, sink, filter_expression, **kw):
        return PacketSocket("lo", sink, filter_expression, **kw)

    def test_source(self):
        self.assertEqual(self.capture.stats().source, "socket")


class VlanTests(SynchronousTestCase):
    """
    The 802.1Q tag the kernel strips from ring frames is put back.
    """

    frame = testing.udp_frame()

    def test_tag(self):
        tagged = _with_vlan(self.frame, 0x2064, 0, 1 << 4)
        self.assertEqual(tagged, self.frame[:12] + b"\x81\x00\x20\x64" + self.frame[12:])
        packet = decode(tagged, 0.0)
        self.assertEqual((packet.vlan, packet.payload), (0x064, b"hello"))

    def test_tpid(self):
        """
        A QinQ outer tag keeps its TPID when the kernel says it is valid.
        """
        tagged = _with_vlan(self.frame, 7, 0x88A8, (1 << 4) | (1 << 6))
        self.assertEqual(tagged[12:16], struct.pack("!HH", 0x88A8, 7))


class CaptureServiceTests(TestCase):
    """
    L{CaptureService} opens a ring per interface, or batched reads when
    asked or when the kernel refuses the ring.
    """

    def setUp(self):
        need_root()
        self.reactor = MemoryReactor()

    def service(self, **kw):
        service = CaptureService(CaptureConfig(interfaces=("lo",), **kw),
                                 lambda *frame: None, self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_ring(self):
        service = self.service()
        self.assertIsInstance(service.sockets["lo"], RingSocket)
        self.assertIn(service.sockets["lo"], self.reactor.readers)

    def test_socket(self):
        service = self.service(method="socket")
        self.assertEqual(type(service.sockets["lo"]), PacketSocket)

    def test_ringRefused(self):
        """
        A ring the kernel refuses (here of 2 GiB blocks, past its limit)
        falls back to batched reads, with a warning.
        """
        messages = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(messages.append)
        self.addCleanup(globalLogPublisher.removeObserver, messages.append)
        service = self.service(ring_size=4096 * MIB, block_size=2048 * MIB)
        self.assertEqual(type(service.sockets["lo"]), PacketSocket)
        self.assertTrue(any("batched reads instead" in str(m.get("log_format"))
                            for m in messages))

    def test_ringUnavailableError(self):
        sock = RingSocket("lo", lambda *frame: None, ring_size=4096 * MIB,
                          block_size=2048 * MIB)
        error = self.assertRaises(RingUnavailable, sock.open)
        self.assertIn("no TPACKET_V3 ring of 2 x 2147483648 octets on lo", str(error))
        self.assertIsNone(sock.sock)

