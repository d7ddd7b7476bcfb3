# -*- test-case-name: tests.test_detect_novelty -*-
"""
Tests for L{loopy.detect.novelty}: new listeners (C{new_listener}) and new
outbound destination ports (C{new_outbound}), fed scapy-built TCP and UDP
frames decoded by the header path.
"""

from __future__ import annotations

import copy
import random
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect.alerts import AlertBook
from loopy.detect.base import DetectContext
from loopy.detect.host import DetectAnalyser, DetectSettings, build_detectors, parse_settings
from loopy.detect.novelty import (
    ANY_ADDRESS, NewListenerDetector, NewListenerSettings, NewOutboundDetector,
    NoveltySettings, read_listeners,
)
from loopy.dissect.headers import decode
from loopy.errors import ConfigError
from loopy.model import OVER
from tests import test_detect_dnsabuse as dns_tests

HOST = "192.0.2.1"
CLIENT = "203.0.113.5"
START = 1000.0


def segment(ts, src, sport, dst, dport, flags, outgoing=True):
    """
    A TCP segment built with scapy and decoded.
    """
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    frame = (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / ip
             / TCP(sport=sport, dport=dport, flags=flags))
    return decode(bytes(frame), ts, outgoing=outgoing)


def datagram(ts, src, sport, dst, dport, outgoing=True):
    """
    A UDP datagram built with scapy and decoded.
    """
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    frame = (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / ip
             / UDP(sport=sport, dport=dport) / b"x")
    return decode(bytes(frame), ts, outgoing=outgoing)


def randomised(template, rng, ts, flags):
    """
    A copy of C{template} at C{ts} with random direction, addresses (this
    host's source 70 % of the time), ports and, for TCP, flags from
    C{flags}.
    """
    packet = copy.copy(template)
    packet.ts = ts
    if packet.proto == 6:
        packet.flags = rng.choice(flags)
    packet.outgoing = rng.random() < 0.5
    packet.saddr = (rng.getrandbits(32).to_bytes(4, "big") if rng.random() < 0.3
                    else bytes([192, 0, 2, 1]))
    packet.daddr = rng.getrandbits(128).to_bytes(16, "big")
    packet.sport = rng.randrange(65536)
    packet.dport = rng.randrange(65536)
    return packet


class Harness(dns_tests.Harness):
    """
    A detector of this host (192.0.2.1, 2001:db8::1) and its alert book;
    each packet fed is followed by a check.
    """

    def __init__(self, detector_class, settings, allow=()):
        super().__init__(detector_class, settings, ("192.0.2.1", "2001:db8::1"), allow)

    def feed(self, packet):
        self.detector.observe(packet)
        self.tick(packet.ts)


class ReadListenersTests(SynchronousTestCase):
    """
    L{read_listeners} reads /proc/net/tcp and /proc/net/tcp6.
    """

    def test_read(self):
        """
        Sockets in state 0A (LISTEN), with their address (host byte order
        words) and port; the wildcard addresses are L{ANY_ADDRESS}.
        """
        path = self.mktemp()
        path6 = self.mktemp()
        FilePath(path).setContent(proc_tcp([("0.0.0.0", 22, "0A"), ("127.0.0.1", 631, "0A"),
                                            ("192.0.2.1", 8080, "01")]))
        FilePath(path6).setContent(proc_tcp([("::", 443, "0A"), ("2001:db8::1", 9000, "0A")]))
        found = read_listeners([path, path6, self.mktemp()])
        self.assertEqual(found, {
            (ANY_ADDRESS, 22), (bytes([127, 0, 0, 1]), 631), (ANY_ADDRESS, 443),
            (bytes.fromhex("20010db8000000000000000000000001"), 9000)})

    def test_garbage(self):
        """
        Lines that do not parse are skipped.
        """
        path = self.mktemp()
        FilePath(path).setContent(
            b"  sl  local_address rem_address   st\n"
            b"   0: zz00007F:0016 00000000:0000 0A\n"
            b"   1: 0100007F:zz 00000000:0000 0A\n"
            b"   2: 0100:0016 00000000:0000 0A\n"
            b"   3: short\n\n")
        self.assertEqual(read_listeners([path]), set())


def proc_tcp(sockets) -> bytes:
    """
    A /proc/net/tcp(6) file listing C{sockets} (address, port, state), in
    this machine's byte order.
    """
    import ipaddress

    lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
             "retrnsmt   uid  timeout inode"]
    for i, (address, port, state) in enumerate(sockets):
        raw = ipaddress.ip_address(address).packed
        words = "".join("%08X" % struct.unpack("=I", raw[j:j + 4]) for j in range(0, len(raw), 4))
        remote = "0" * len(words)
        lines.append(f"   {i}: {words}:{port:04X} {remote}:0000 {state} "
                     "00000000:00000000 00:00000000 00000000     0        0 12345")
    return ("\n".join(lines) + "\n").encode()


class ListenerTests(SynchronousTestCase):
    """
    L{NewListenerDetector}.
    """

    def setUp(self):
        self.h = Harness(NewListenerDetector, NewListenerSettings(listeners_files=()))

    def learn(self, ports=(22, 443)):
        """
        Learning: SYN-ACKs from C{ports}, then past the learning period.
        """
        self.h.tick(START)
        for i, port in enumerate(ports):
            self.h.feed(segment(START + i, HOST, port, "198.51.100.1", 50000 + i, "SA"))
        self.h.tick(START + 300)
        self.assertEqual(self.h.detector.stats()["learning"], 0)

    def test_newListener(self):
        """
        After learning, the first SYN-ACK from a new port raises a warning
        naming the listener, its client, the counts and the packets; a
        known port raises nothing.
        """
        self.learn()
        for i in range(3):
            self.h.feed(segment(START + 301 + i, HOST, 443, f"198.51.100.{i + 2}", 40000, "SA"))
        self.assertEqual(self.h.alerts(), [])
        self.h.feed(segment(START + 310, HOST, 4444, CLIENT, 51000, "SA"))
        [alert] = self.h.alerts()
        self.assertEqual(alert.kind, "new_listener")
        self.assertEqual(alert.severity, "warning")
        self.assertEqual(alert.src, CLIENT)
        self.assertEqual(alert.dst, HOST)
        self.assertEqual(alert.summary,
                         "192.0.2.1 began accepting connections on new TCP port 4444: "
                         "1 SYN-ACK to 203.0.113.5")
        ev = alert.evidence
        self.assertEqual(ev["address"], HOST)
        self.assertEqual(ev["port"], 4444)
        self.assertEqual(ev["ports"], [4444])
        self.assertEqual(ev["first_client"], CLIENT)
        self.assertEqual(ev["clients"], 1)
        self.assertEqual(ev["client_list"], [CLIENT])
        self.assertEqual(ev["packets"], 1)
        self.assertEqual(ev["first_seen"], START + 310)
        self.assertEqual(ev["last_seen"], START + 310)
        self.assertEqual(ev["learning_period"], 300.0)
        self.assertFalse(ev["ephemeral"])
        self.assertEqual(ev["samples"],
                         ["00:21:50.000000 IP 192.0.2.1.4444 > 203.0.113.5.51000: tcp [S.] 54"])

    def test_updatedThenKnown(self):
        """
        More connections update the one alert; it ends quiet_after after
        the last, and the port is known from then on.
        """
        self.learn()
        for i in range(4):
            self.h.feed(segment(START + 310 + i * 2, HOST, 4444, f"203.0.113.{i + 5}", 51000,
                                "SA"))
        self.h.tick(START + 320)
        [alert] = self.h.alerts()
        self.assertEqual(alert.evidence["clients"], 4)
        self.assertEqual(alert.evidence["last_seen"], START + 316)
        self.assertEqual(alert.evidence["packets"], 4)
        self.assertEqual(alert.src, None)
        self.assertIn("4 SYN-ACKs to 4 clients", alert.summary)
        for step in range(40):
            self.h.tick(START + 320 + step * 0.25)
        [alert] = self.h.alerts()
        self.assertEqual(alert.state, OVER)
        self.assertEqual(alert.updated, START + 326)
        self.assertEqual(self.h.detector.stats()["novel"], 0)
        self.h.feed(segment(START + 400, HOST, 4444, CLIENT, 51001, "SA"))
        self.assertEqual(len(self.h.alerts()), 1)
        self.assertEqual(self.h.book.raised, 1)

    def test_learning(self):
        """
        Nothing alerts while learning, which starts at the first packet.
        """
        self.h.tick(START)
        for port in range(1000, 1100):
            self.h.feed(segment(START + 299, HOST, port, CLIENT, 40000, "SA"))
        self.assertEqual(self.h.alerts(), [])
        self.assertEqual(self.h.detector.stats()["known"], 100)
        self.h.tick(START + 300)
        self.h.feed(segment(START + 301, HOST, 1050, CLIENT, 40000, "SA"))
        self.h.feed(segment(START + 301, HOST, 1100, CLIENT, 40000, "SA"))
        [alert] = self.h.alerts()
        self.assertEqual(alert.evidence["port"], 1100)

    def test_ephemeral(self):
        """
        New ephemeral ports are one info alert for the address.
        """
        self.learn()
        for i in range(12):
            self.h.feed(segment(START + 310 + i, HOST, 40000 + i, CLIENT, 20, "SA"))
        self.h.tick(START + 323)
        [alert] = self.h.alerts()
        self.assertEqual(alert.severity, "info")
        self.assertEqual(alert.summary,
                         "192.0.2.1 began accepting connections on 12 new ephemeral TCP ports "
                         "(40000, 40001, 40002, 40003, 40004, …): 12 SYN-ACKs to 203.0.113.5")
        self.assertEqual(alert.evidence["port_count"], 12)
        self.assertEqual(alert.evidence["ports"], list(range(40000, 40012)))
        self.assertIsNone(alert.evidence["port"])
        self.assertTrue(alert.evidence["ephemeral"])

    def test_notListening(self):
        """
        SYN-ACKs this host receives (it is the client), SYNs, RSTs and other
        segments raise nothing.
        """
        self.learn()
        self.h.feed(segment(START + 310, CLIENT, 8443, HOST, 40000, "SA", outgoing=False))
        self.h.feed(segment(START + 311, HOST, 5555, CLIENT, 80, "S"))
        self.h.feed(segment(START + 312, HOST, 5556, CLIENT, 80, "SAR"))
        self.h.feed(segment(START + 313, HOST, 5557, CLIENT, 80, "A"))
        self.assertEqual(self.h.alerts(), [])

    def test_loopbackAndIpv6(self):
        """
        Loopback is this host's though nothing on lo is outgoing; IPv6 too.
        """
        self.learn()
        self.h.feed(segment(START + 310, "127.0.0.1", 8080, "127.0.0.1", 40000, "SA",
                            outgoing=False))
        self.h.feed(segment(START + 311, "2001:db8::1", 8081, "2001:db8::9", 40000, "SA",
                            outgoing=False))
        alerts = self.h.alerts()
        self.assertEqual([(a.dst, a.evidence["port"]) for a in alerts],
                         [("127.0.0.1", 8080), ("2001:db8::1", 8081)])

    def test_listenersFiles(self):
        """
        Listeners in the /proc files at start are known: on every address,
        or on the one they are bound to.
        """
        path = self.mktemp()
        FilePath(path).setContent(proc_tcp([("0.0.0.0", 2222, "0A"), ("127.0.0.1", 631, "0A"),
                                            ("192.0.2.1", 8080, "01")]))
        self.h = Harness(NewListenerDetector, NewListenerSettings(listeners_files=(path,)))
        self.assertEqual(self.h.detector.stats()["seeded"], 2)
        self.learn(ports=())
        self.h.feed(segment(START + 310, HOST, 2222, CLIENT, 40000, "SA"))
        self.h.feed(segment(START + 311, "127.0.0.1", 631, "127.0.0.1", 40000, "SA"))
        self.assertEqual(self.h.alerts(), [])
        self.h.feed(segment(START + 312, HOST, 631, CLIENT, 40000, "SA"))
        self.h.feed(segment(START + 313, HOST, 8080, CLIENT, 40000, "SA"))
        self.assertEqual([a.evidence["port"] for a in self.h.alerts()], [631, 8080])

    def test_allow(self):
        """
        A client on an allow-list raises nothing, until another one comes.
        """
        for settings, allow in [(NewListenerSettings(listeners_files=(), allow=(CLIENT,)), ()),
                                (NewListenerSettings(listeners_files=()), ("203.0.113.0/24",))]:
            self.h = Harness(NewListenerDetector, settings, allow)
            self.learn()
            self.h.feed(segment(START + 310, HOST, 4444, CLIENT, 40000, "SA"))
            self.assertEqual(self.h.alerts(), [])
            self.assertEqual(self.h.detector.stats()["ignored"], 1)
            self.h.feed(segment(START + 311, HOST, 4444, "198.51.100.7", 40000, "SA"))
            self.assertEqual(len(self.h.alerts()), 1)

    def test_novelBound(self):
        """
        Past novel_max alerts followed at once, new ports are learned
        without an alert, and counted.
        """
        self.h = Harness(NewListenerDetector,
                         NewListenerSettings(listeners_files=(), novel_max=5))
        self.learn()
        for port in range(2000, 2010):
            self.h.feed(segment(START + 310, HOST, port, CLIENT, 40000, "SA"))
        self.assertEqual(len(self.h.alerts()), 5)
        self.assertEqual(self.h.detector.stats()["novel_dropped"], 5)

    def test_bounds(self):
        """
        100,000 random segments keep the tables within their bounds, and
        what could not be learned is counted.
        """
        settings = NewListenerSettings(listeners_files=(), known_max=1000, novel_max=20,
                                       learning_period=50.0)
        h = Harness(NewListenerDetector, settings)
        detector = h.detector
        template = segment(START, HOST, 1, CLIENT, 2, "SA")
        rng = random.Random(3)
        h.tick(START)
        for i in range(100_000):
            packet = randomised(template, rng, START + i * 0.002,
                                (0x12, 0x12, 0x02, 0x10, 0x14, rng.randrange(256)))
            detector.observe(packet)
            if i % 250 == 0:
                h.tick(packet.ts)
                self.assertLessEqual(len(detector._known), 1000)
                self.assertLessEqual(len(detector._novel), 20)
                for novel in detector._novel.values():
                    self.assertLessEqual(len(novel.peers), 50)
                    self.assertLessEqual(len(novel.ports), 50)
                    self.assertLessEqual(len(novel.samples), 5)
        stats = detector.stats()
        self.assertGreater(stats["known_full"], 0)
        self.assertGreater(stats["novel_dropped"], 0)
        self.assertLessEqual(len(h.alerts()), h.book.raised)


class OutboundTests(SynchronousTestCase):
    """
    L{NewOutboundDetector}.
    """

    def setUp(self):
        self.h = Harness(NewOutboundDetector, NoveltySettings())

    def learn(self):
        """
        Learning: HTTPS, DNS and NTP.
        """
        self.h.tick(START)
        self.h.feed(segment(START + 1, HOST, 40000, "198.51.100.1", 443, "S"))
        self.h.feed(datagram(START + 2, HOST, 40001, "198.51.100.53", 53))
        self.h.feed(datagram(START + 3, HOST, 40002, "198.51.100.123", 123))
        self.h.tick(START + 300)

    def test_newPort(self):
        """
        After learning, the first SYN to a new port raises an info alert;
        known ports raise nothing.
        """
        self.learn()
        for i in range(5):
            self.h.feed(segment(START + 301 + i, HOST, 41000 + i, f"198.51.100.{i + 10}", 443,
                                "S"))
            self.h.feed(datagram(START + 301 + i, HOST, 42000 + i, "198.51.100.53", 53))
            self.h.feed(datagram(START + 301 + i, HOST, 42000 + i, "198.51.100.123", 123))
        self.assertEqual(self.h.alerts(), [])
        self.h.feed(segment(START + 310, HOST, 43000, "198.51.100.66", 6667, "S"))
        [alert] = self.h.alerts()
        self.assertEqual(alert.kind, "new_outbound")
        self.assertEqual(alert.severity, "info")
        self.assertEqual(alert.src, HOST)
        self.assertEqual(alert.dst, "198.51.100.66")
        self.assertEqual(alert.summary,
                         "192.0.2.1 opened connections to TCP port 6667 for the first time: "
                         "1 SYN to 198.51.100.66")
        ev = alert.evidence
        self.assertEqual(ev["proto"], "tcp")
        self.assertEqual(ev["dport"], 6667)
        self.assertEqual(ev["first_destination"], "198.51.100.66")
        self.assertEqual(ev["destinations"], 1)
        self.assertEqual(ev["destination_list"], ["198.51.100.66"])
        self.assertEqual(ev["sources"], [HOST])
        self.assertEqual(ev["packets"], 1)
        self.assertEqual(len(ev["samples"]), 1)
        self.assertIn("IP 192.0.2.1.43000 > 198.51.100.66.6667: tcp [S]", ev["samples"][0])

    def test_udp(self):
        """
        A client's datagram to a new UDP port; IPv6 too.
        """
        self.learn()
        self.h.feed(datagram(START + 310, "2001:db8::1", 50000, "2001:db8::99", 5060))
        self.h.feed(datagram(START + 311, "2001:db8::1", 50000, "2001:db8::99", 5060))
        self.h.tick(START + 312)
        [alert] = self.h.alerts()
        self.assertEqual(alert.summary,
                         "2001:db8::1 sent datagrams to UDP port 5060 for the first time: "
                         "2 datagrams to 2001:db8::99")
        self.assertEqual(alert.evidence["proto"], "udp")
        self.assertEqual(alert.evidence["dport"], 5060)
        self.assertEqual(alert.src, "2001:db8::1")

    def test_updatedThenKnown(self):
        """
        More connections to more hosts update the one alert; after it is
        over, the port is known.
        """
        self.learn()
        for i in range(5):
            self.h.feed(segment(START + 310 + i, HOST, 43000 + i, f"198.51.100.{i + 1}", 6667,
                                "S"))
        self.h.tick(START + 316)
        [alert] = self.h.alerts()
        self.assertEqual(alert.evidence["destinations"], 5)
        self.assertEqual(alert.evidence["packets"], 5)
        self.assertIsNone(alert.dst)
        self.assertIn("5 SYNs to 5 hosts", alert.summary)
        for step in range(60):
            self.h.tick(START + 316 + step * 0.25)
        [alert] = self.h.alerts()
        self.assertEqual(alert.state, OVER)
        self.h.feed(segment(START + 400, HOST, 44000, "198.51.100.1", 6667, "S"))
        self.assertEqual(self.h.book.raised, 1)

    def test_notOutbound(self):
        """
        Replies from this host's server ports, incoming SYNs, SYN-ACKs, and
        datagrams to the dynamic range raise nothing.
        """
        self.learn()
        self.h.feed(datagram(START + 310, HOST, 53, CLIENT, 40000))       # DNS reply
        self.h.feed(datagram(START + 311, HOST, 8125, CLIENT, 40000))     # a server's reply
        self.h.feed(datagram(START + 312, HOST, 40000, CLIENT, 50000))    # dynamic range
        self.h.feed(datagram(START + 313, CLIENT, 40000, HOST, 8125, outgoing=False))
        self.h.feed(segment(START + 314, CLIENT, 40000, HOST, 22, "S", outgoing=False))
        self.h.feed(segment(START + 315, HOST, 22, CLIENT, 40000, "SA"))
        self.h.feed(segment(START + 316, HOST, 40000, CLIENT, 25, "A"))
        self.assertEqual(self.h.alerts(), [])

    def test_ephemeral(self):
        """
        New destination ports in the ephemeral range are one info alert per
        protocol (passive FTP data, for one).
        """
        self.learn()
        for i in range(8):
            self.h.feed(segment(START + 310 + i, HOST, 45000 + i, "198.51.100.21", 50000 + i,
                                "S"))
        self.h.tick(START + 319)
        [alert] = self.h.alerts()
        self.assertEqual(alert.evidence["port_count"], 8)
        self.assertIsNone(alert.evidence["dport"])
        self.assertIn("8 new ephemeral TCP ports (50000, 50001, 50002, 50003, 50004, …)",
                      alert.summary)

    def test_allow(self):
        """
        A destination on an allow-list raises nothing.
        """
        self.h = Harness(NewOutboundDetector, NoveltySettings(allow=("198.51.100.66",)))
        self.learn()
        self.h.feed(segment(START + 310, HOST, 43000, "198.51.100.66", 6667, "S"))
        self.assertEqual(self.h.alerts(), [])

    def test_bounds(self):
        """
        100,000 random packets keep the tables within their bounds.
        """
        settings = NoveltySettings(known_max=500, novel_max=10, learning_period=20.0)
        h = Harness(NewOutboundDetector, settings)
        detector = h.detector
        templates = [segment(START, HOST, 1, CLIENT, 2, "S"), datagram(START, HOST, 1, CLIENT, 2)]
        rng = random.Random(11)
        h.tick(START)
        for i in range(100_000):
            packet = randomised(rng.choice(templates), rng, START + i * 0.002,
                                (0x02, 0x12, 0x10, rng.randrange(256)))
            detector.observe(packet)
            if i % 250 == 0:
                h.tick(packet.ts)
                self.assertLessEqual(len(detector._known), 500)
                self.assertLessEqual(len(detector._novel), 10)
                self.assertLessEqual(len(detector._pending), 10)
        stats = detector.stats()
        self.assertGreater(stats["known_full"], 0)
        self.assertGreater(stats["novel_dropped"], 0)


class SettingsTests(SynchronousTestCase):
    """
    The detectors' TOML tables.
    """

    def test_tables(self):
        settings = parse_settings(
            "[new_listener]\nlearning_period = 60.0\nlisteners_files = []\n"
            "[new_outbound]\nephemeral_min = 49152\nknown_max = 100\n")
        detectors = {d.name: d for d in build_detectors(settings, DetectContext())}
        self.assertEqual(detectors["new_listener"].settings.learning_period, 60.0)
        self.assertEqual(detectors["new_listener"].settings.listeners_files, ())
        self.assertEqual(detectors["new_outbound"].settings.ephemeral_min, 49152)
        self.assertEqual(detectors["new_outbound"].settings.known_max, 100)

    def test_misspelt(self):
        """
        A misspelt key or a value out of range is an error;
        C{listeners_files} is only C{new_listener}'s.
        """
        for table in ("[new_listener]\nlearning_perod = 60.0\n",
                      "[new_outbound]\nlisteners_files = []\n",
                      "[new_outbound]\nknown_max = 'many'\n",
                      "[new_outbound]\nephemeral_min = 70000\n",
                      "[new_listener]\nlearning_period = -1.0\n"):
            self.assertRaises(ConfigError, parse_settings, table)


class AnalyserTests(SynchronousTestCase):
    """
    Both detectors through the detect analyser.
    """

    def test_analyser(self):
        detect = DetectSettings(gateways=(), local_networks=("192.0.2.1",), detectors={
            "new_listener": {"listeners_files": [], "learning_period": 10.0},
            "new_outbound": {"learning_period": 10.0}})
        analyser = DetectAnalyser(AnalyserConfig(detect=detect))
        emitted = []
        analyser.bind_alerts(AlertBook("agent", 1, emit=emitted.append))
        analyser.observe(segment(START, HOST, 22, CLIENT, 40000, "SA"))
        analyser.observe(segment(START + 1, HOST, 40001, "198.51.100.1", 443, "S"))
        analyser.observe(segment(START + 11, HOST, 22, CLIENT, 40002, "SA"))
        analyser.observe(segment(START + 11, HOST, 40003, "198.51.100.1", 443, "S"))
        analyser.observe(segment(START + 12, HOST, 4444, CLIENT, 40004, "SA"))
        analyser.observe(segment(START + 12, HOST, 40005, "198.51.100.1", 8443, "S"))
        analyser.snapshot(START + 13, 1.0)
        self.assertEqual(sorted((a.kind, a.evidence["ports"][0]) for a in emitted),
                         [("new_listener", 4444), ("new_outbound", 8443)])
        snapshot = analyser.snapshot(START + 14, 1.0)
        self.assertEqual(snapshot.detectors["new_listener"]["novel"], 1)
        self.assertEqual(analyser.errors, 0)
