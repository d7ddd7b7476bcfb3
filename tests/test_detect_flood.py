# -*- test-case-name: tests.test_detect_flood -*-
"""
Tests for L{loopy.detect.flood} and L{loopy.detect.amplification}: SYN,
ICMP, UDP floods and DNS amplification, and the nearest benign traffic of
each, fed to the detectors on the capture clock.

Every packet shape is built once with scapy; then addresses, ports,
sequence numbers and DNS ids are written into a copy (checksums are not
recomputed: the header path does not check them), so that floods of tens
of thousands of packets take a fraction of a second.
"""

from __future__ import annotations

import random
import struct
from functools import lru_cache
from socket import AF_INET, AF_INET6, inet_pton

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect.alerts import AlertBook
from loopy.detect.amplification import DnsAmplificationDetector, UdpFloodDetector
from loopy.detect.base import SAMPLE_PACKETS, DetectContext, Networks
from loopy.detect.flood import HANDSHAKE_SLOT, IcmpFloodDetector, SynFloodDetector
from loopy.detect.host import DetectAnalyser, detector_plugins, parse_settings
from loopy.detect.rates import BUCKET
from loopy.dissect.dns import parse_message
from loopy.dissect.headers import decode
from loopy.errors import ConfigError
from loopy.model import ACTIVE, OVER
from loopy.testing import DetectorDriver

T0 = 1_700_000_000.0
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
HOST = "10.0.0.1"  # this host
HOST6 = "2001:db8::1"
ATTACKER = "192.0.2.9"
ATTACKER6 = "2001:db8:bad::9"
RESOLVER = "10.0.0.53"


@lru_cache(maxsize=None)
def octets(addr: str) -> bytes:
    return inet_pton(AF_INET6 if ":" in addr else AF_INET, addr)


def _ip(v6: bool):
    return IPv6(src="::1", dst="::2") if v6 else IP(src="127.0.0.1", dst="127.0.0.2")


@lru_cache(maxsize=None)
def tcp_shape(v6: bool, flags: str, payload: int = 0) -> bytes:
    return bytes(Ether(**MACS) / _ip(v6) / TCP(sport=1, dport=1, flags=flags, window=1024)
                 / Raw(b"d" * payload))


@lru_cache(maxsize=None)
def udp_shape(v6: bool, payload: int) -> bytes:
    return bytes(Ether(**MACS) / _ip(v6) / UDP(sport=1, dport=1) / Raw(b"u" * payload))


@lru_cache(maxsize=None)
def icmp_shape(v6: bool, reply: bool, payload: int) -> bytes:
    if v6:
        l4 = ICMPv6EchoReply() if reply else ICMPv6EchoRequest()
    else:
        l4 = ICMP(type=0 if reply else 8)
    return bytes(Ether(**MACS) / _ip(v6) / l4 / Raw(b"p" * payload))


@lru_cache(maxsize=None)
def dns_shape(v6: bool, response: bool, qname: str, qtype: int, answer_octets: int = 0,
              first_fragment: bool = False) -> bytes:
    """
    A DNS query or response for C{qtype} (a number: 255 ANY, 48 DNSKEY, 1
    A); a response carries TXT answers of about C{answer_octets};
    C{first_fragment}: only the first IPv4 fragment of it.
    """
    answers = None
    if response and answer_octets:
        count = max(1, answer_octets // 250)
        answers = DNSRR(rrname=qname, type="TXT", rdata=["a" * 230])
        for _ in range(count - 1):
            answers = answers / DNSRR(rrname=qname, type="TXT", rdata=["a" * 230])
    message = DNS(id=0, qr=int(response), rd=1, ra=int(response), qd=DNSQR(qname=qname,
                  qtype=qtype), an=answers)
    datagram = _ip(v6) / UDP(sport=53 if response else 1, dport=1 if response else 53) / message
    if first_fragment:
        datagram = fragment(IP(bytes(datagram)), fragsize=1400)[0]
    return bytes(Ether(**MACS) / datagram)


def stamp(shape: bytes, src, dst, ts, sport=None, dport=None, seq=None, ack=None,
          dns_id=None, outgoing=False, fragment_offset=0):
    """
    A copy of C{shape} with these addresses (text or octets), ports,
    sequence numbers, DNS id, or IPv4 fragment offset (in 8-octet units),
    decoded at C{ts}.
    """
    frame = bytearray(shape)
    s = src if isinstance(src, bytes) else octets(src)
    d = dst if isinstance(dst, bytes) else octets(dst)
    if frame[12:14] == b"\x86\xdd":
        frame[22:38], frame[38:54] = s, d
        l4 = 54
    else:
        frame[26:30], frame[30:34] = s, d
        l4 = 34
    if sport is not None:
        struct.pack_into("!HH", frame, l4, sport, dport)
    if seq is not None:
        struct.pack_into("!I", frame, l4 + 4, seq)
    if ack is not None:
        struct.pack_into("!I", frame, l4 + 8, ack)
    if dns_id is not None:
        struct.pack_into("!H", frame, l4 + 8, dns_id)
    if fragment_offset:
        struct.pack_into("!H", frame, 20, fragment_offset)
    return decode(bytes(frame), ts, outgoing=outgoing)


def random_v4(rng) -> str:
    return ".".join(str(rng.randrange(1, 224)) for _ in range(4))


def random_v6(rng) -> str:
    return "2001:db8:%x:%x::%x" % (rng.randrange(65536), rng.randrange(65536),
                                   rng.randrange(1, 65536))


def at_rate(rate, start, duration):
    """
    Times of C{rate} events a second from C{start} for C{duration} s.
    """
    return [start + i / rate for i in range(int(rate * duration))]


class FloodTestCase(DetectorDriver, SynchronousTestCase):
    """
    A detector with its own alert book, and a driver that evaluates every
    0.25 s of capture time as the detect analyser does.
    """

    detector_type = SynFloodDetector

    def setUp(self):
        self.context = DetectContext(local=Networks([HOST, HOST6]))
        self.detector = self.make()
        self.emitted = []
        self.book = AlertBook("agent", 1, emit=self.emitted.append)
        self.next_check = 0.0

    def make(self, detector_type=None, **settings):
        detector_type = detector_type or self.detector_type
        return detector_type(detector_type.settings_type(**settings), self.context)

    def feed(self, packets, end=None):
        """
        Observe C{packets} in time order, evaluating on the check interval,
        then evaluate every check interval up to C{end} [default: the last
        packet's ts plus 0.25 s].
        """
        packets = sorted(packets, key=lambda p: p.ts)
        dns = "dns" in self.detector.protocols
        for packet in packets:
            if dns:
                message = parse_message(packet.payload)
                if message is not None:
                    self.detector.observe_dns(packet, message)
            else:
                self.detector.observe(packet)
            if packet.ts >= self.next_check:
                self.check(packet.ts)
        last = packets[-1].ts if packets else T0
        self.idle(last, (end if end is not None else last + 0.25) - last)

    def feed_on_grid(self, packets, end):
        """
        Observe C{packets}, evaluating at every 0.25 s from T0 to C{end}
        exactly, as a capture busy with other traffic would.
        """
        packets = sorted(packets, key=lambda p: p.ts)
        i = 0
        for k in range(int((end - T0) / 0.25) + 1):
            now = T0 + k * 0.25
            while i < len(packets) and packets[i].ts < now:
                self.detector.observe(packets[i])
                i += 1
            self.check(now)

    def assertNear(self, value, expected, delta):
        self.assertLessEqual(abs(value - expected), delta, f"{value} is not {expected} ± {delta}")

    def assertNoAlert(self):
        self.assertEqual([a.summary for a in self.alerts()], [])

    def assertSamples(self, alert, text):
        samples = alert.evidence["samples"]
        self.assertEqual(len(samples), SAMPLE_PACKETS)
        for line in samples:
            self.assertIn(text, line)


# TCP ------------------------------------------------------------------------

def syn_flood(rate, duration, sources, start=T0, dst=HOST, dport=80, answer=None, seed=1):
    """
    SYNs at C{rate} a second to C{dst}:C{dport}, the i-th from
    C{sources(i)}; the service answers each with C{answer} (``SA``,
    ``RA``) 1 ms later, or not at all.
    """
    rng = random.Random(seed)
    v6 = ":" in dst
    packets = []
    for i, t in enumerate(at_rate(rate, start, duration)):
        src = sources(i)
        sport = 1024 + i % 60000
        isn = rng.getrandbits(32)
        packets.append(stamp(tcp_shape(v6, "S"), src, dst, t, sport, dport, seq=isn))
        if answer:
            packets.append(stamp(tcp_shape(v6, answer), dst, src, t + 0.001, dport, sport,
                                 seq=rng.getrandbits(32), ack=(isn + 1) % 2**32))
    return packets


def connections(rate, duration, start=T0, server=HOST, dport=443, clients=5000, rtt=0.03,
                seed=2):
    """
    Clients connecting at C{rate} a second, each handshake completing one
    round trip later and carrying a request.
    """
    rng = random.Random(seed)
    v6 = ":" in server
    pool = [random_v6(rng) if v6 else random_v4(rng) for _ in range(clients)]
    packets = []
    for i, t in enumerate(at_rate(rate, start, duration)):
        client = pool[i % clients]
        sport = 20000 + i % 40000
        c, s = rng.getrandbits(32), rng.getrandbits(32)
        c1, s1 = (c + 1) % 2**32, (s + 1) % 2**32
        packets += [
            stamp(tcp_shape(v6, "S"), client, server, t, sport, dport, seq=c),
            stamp(tcp_shape(v6, "SA"), server, client, t + rtt / 2, dport, sport, s, c1),
            stamp(tcp_shape(v6, "A"), client, server, t + rtt, sport, dport, c1, s1),
            stamp(tcp_shape(v6, "PA", 200), client, server, t + rtt, sport, dport, c1, s1),
        ]
    return packets


class SynFloodTests(FloodTestCase):
    """
    SYN floods on a service, and busy services that are not flooded.
    """

    def test_singleSource(self):
        """
        1000 SYN/s from one host, unanswered: a warning naming the attacker
        and the service, with the rates, the collapse of handshakes, and
        the SYNs as samples.
        """
        self.feed(syn_flood(1000, 5, lambda i: ATTACKER))
        alert = self.only_alert()
        self.assertEqual((alert.kind, alert.severity, alert.src, alert.dst),
                         ("syn_flood", "warning", ATTACKER, HOST))
        evidence = alert.evidence
        self.assertEqual((evidence["dport"], evidence["source_distribution"],
                          evidence["sources_count"], evidence["sources_at_cap"],
                          evidence["completion_ratio"], evidence["server_response"]),
                         (80, "single", 1, False, 0.0, "none"))
        self.assertNear(evidence["syn_per_second"], 1000, 20)
        self.assertEqual(evidence["top_sources"][0]["src"], ATTACKER)
        self.assertEqual(evidence["thresholds"],
                         {"syn_per_second": 200.0, "completion_ratio_max": 0.5})
        self.assertEqual(alert.summary,
                         f"SYN flood on {HOST} port 80: 1,000 SYN/s from {ATTACKER}, "
                         "0% of handshakes completed")
        self.assertSamples(alert, f"{ATTACKER}.")
        self.assertIn("tcp [S] ", evidence["samples"][0])
        # Measured over the whole window, the handshakes of its newest
        # 0.3 s left out.
        self.assertNear(evidence["window_seconds"], 2.0, 0.0625)
        self.assertNear(evidence["syns"], 1000 * evidence["window_seconds"], 2)
        self.assertNear(evidence["handshakes_followed"],
                        1000 * (evidence["window_seconds"] - 0.3), 50)
        # Raised once half a second of SYNs and their handshakes are judged.
        first = self.emitted[0]
        self.assertLessEqual(first.ts - T0, 0.75)
        self.assertLessEqual(first.evidence["window_seconds"], 1.0)

    def test_spoofedSources(self):
        """
        hping3 -S --flood --rand-source at 2500 SYN/s, the server answering
        each with a SYN-ACK: many spoofed sources, at the cap; no source
        named; critical at ten times the threshold.
        """
        rng = random.Random(7)
        packets = syn_flood(2500, 5, lambda i: random_v4(rng), answer="SA")
        # Some spoofed addresses are real hosts, which reset the SYN-ACKs
        # they never asked for (sequence number ISN + 1, as a handshake's
        # last ACK has; some stacks set the ACK bit too): no completed
        # handshake.
        packets += [stamp(tcp_shape(False, "R" if n % 2 else "RA"), p.saddr, p.daddr,
                          p.ts + 0.002, p.sport, p.dport, seq=(p.seq + 1) % 2**32)
                    for n, p in enumerate(packets[::20])]
        self.feed(packets)
        alert = self.only_alert()
        self.assertEqual((alert.severity, alert.src, alert.dst), ("critical", None, HOST))
        evidence = alert.evidence
        self.assertEqual((evidence["source_distribution"], evidence["sources_count"],
                          evidence["sources_at_cap"], evidence["server_response"]),
                         ("many_spoofed", 256, True, "syn_ack"))
        self.assertNear(evidence["syn_ack_ratio"], 1.0, 0.01)
        self.assertIn("from ≥ 256 likely spoofed sources", alert.summary)
        self.assertEqual(alert.evidence["handshakes_completed"], 0)

    def test_fewSources(self):
        """
        Five hosts flooding together: ``few``, no single source.
        """
        attackers = [f"198.51.100.{n}" for n in range(1, 6)]
        self.feed(syn_flood(1000, 5, lambda i: attackers[i % 5]))
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.evidence["source_distribution"],
                          alert.evidence["sources_count"]), (None, "few", 5))

    def test_botnet(self):
        """
        300 real hosts, a dozen SYNs each per window: ``many``, not spoofed.
        """
        bots = [f"198.51.{n // 250}.{n % 250 + 1}" for n in range(300)]
        self.feed(syn_flood(2000, 5, lambda i: bots[i % 300]))
        alert = self.only_alert()
        self.assertEqual(alert.evidence["source_distribution"], "many")

    def test_ipv6ClosedPort(self):
        """
        An IPv6 flood on a closed port: the server resets every SYN.
        """
        self.feed(syn_flood(500, 5, lambda i: ATTACKER6, dst=HOST6, dport=22, answer="RA"))
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst, alert.evidence["dport"],
                          alert.evidence["server_response"]), (ATTACKER6, HOST6, 22, "rst"))

    def test_floodAmongClients(self):
        """
        A flood as large as the clients' own connections still shows: a
        third of the handshakes complete.
        """
        rng = random.Random(3)
        self.feed(connections(500, 5, dport=80)
                  + syn_flood(1000, 5, lambda i: random_v4(rng)))
        alert = self.only_alert()
        self.assertNear(alert.evidence["completion_ratio"], 0.33, 0.03)

    def test_outbound(self):
        """
        This host flooding a remote service is named as the source.
        """
        self.feed(syn_flood(1000, 5, lambda i: HOST, dst="198.51.100.80"))
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst), (HOST, "198.51.100.80"))

    def test_busyWebServer(self):
        """
        2000 new connections a second, handshakes completing: no alert.
        """
        self.feed(connections(2000, 6))
        self.assertNoAlert()
        stats = self.detector.stats()
        self.assertEqual(stats["suspects"], 1)
        self.assertLess(stats["pending"], 100)

    def test_clientsArriving(self):
        """
        A service whose clients start connecting late in a window, with a
        long round trip, is not judged on the handshakes still in flight
        when that window ends.
        """
        self.check(T0)
        self.feed(connections(1000, 5, start=T0 + 1.5, rtt=0.3))
        self.assertNoAlert()

    def test_serviceDown(self):
        """
        A service briefly down resets 50 SYN/s of its clients: no alert.
        """
        self.feed(syn_flood(50, 6, lambda i: f"10.1.{i % 200}.1", answer="RA"))
        self.assertNoAlert()

    def test_belowThreshold(self):
        """
        150 unanswered SYN/s is under the threshold.
        """
        self.feed(syn_flood(150, 6, lambda i: ATTACKER))
        self.assertNoAlert()

    def test_roundTripsWithinGrace(self):
        """
        Clients 0.28 s away, starting to connect at any time between two
        evaluations: their handshakes are judged only once
        C{handshake_grace} (0.3 s) old, so none looks failed.  Judged at
        once, the same traffic would look like a flood.
        """
        for phase in (0.0, 0.04, 0.09, 0.13, 0.17, 0.21, 0.24):
            self.setUp()
            self.check(T0)
            self.feed(connections(1000, 3, start=T0 + 1 + phase, rtt=0.28))
            self.assertNoAlert()
        self.setUp()
        self.detector = self.make(handshake_grace=0.0)
        self.check(T0)
        self.feed(connections(1000, 3, start=T0 + 1, rtt=0.28))
        self.assertEqual(self.only_alert().kind, "syn_flood")

    def test_distantClients(self):
        """
        A service that suddenly gets 500 connections a second from clients
        0.45 s away, further than C{handshake_grace}: the newest SYNs
        judged always look failed, but not those of the whole window, so it
        is alerted on for its first moments at most (a known limit).
        """
        self.check(T0)
        self.feed(connections(500, 6, start=T0 + 1, rtt=0.45))
        self.idle(T0 + 7, 12)
        for alert in self.alerts():
            self.assertEqual(alert.state, OVER)
            self.assertLessEqual(alert.updated - 10, T0 + 2.0)

    def test_floodOnBusyService(self):
        """
        A flood that starts on a service busy with completing clients is
        found within a second: the completion ratio is judged over the
        flood's span, and over the whole window once the flood's
        handshakes are most of it.
        """
        rng = random.Random(9)
        start = T0 + 3.1
        self.feed(connections(500, 5, dport=80)
                  + syn_flood(3000, 2, lambda i: random_v4(rng), start=start))
        alert = self.only_alert()
        self.assertLessEqual(self.emitted[0].ts - start, 1.0)
        self.assertLess(alert.evidence["completion_ratio"], 0.5)

    def test_over(self):
        """
        When the flood stops, it is no longer signalled once its newest half
        second is under half the threshold, and the alert ends
        C{quiet_after} seconds after that.
        """
        packets = syn_flood(1000, 6, lambda i: ATTACKER)
        self.feed(packets)
        self.assertEqual(self.alerts()[0].state, ACTIVE)
        last = packets[-1].ts
        self.idle(last, 15)
        alert = self.only_alert()
        self.assertEqual(alert.state, OVER)
        self.assertGreater(alert.updated, last + 10)
        self.assertLessEqual(alert.updated, last + 10 + 0.75)

    def test_allowList(self):
        """
        The detector's allow-list silences a flood from an allowed source;
        the global one a flood on an allowed destination.
        """
        self.detector = self.make(allow=(ATTACKER + "/32",))
        self.feed(syn_flood(1000, 5, lambda i: ATTACKER))
        self.assertNoAlert()
        self.context.allow = Networks([HOST])
        self.detector = self.make()
        self.feed(syn_flood(1000, 5, lambda i: "198.51.100.1", start=T0 + 10))
        self.assertNoAlert()


# ICMP -----------------------------------------------------------------------

def pings(rate, duration, src, dst, start=T0, reply=False, payload=56):
    v6 = ":" in dst
    return [stamp(icmp_shape(v6, reply, payload), src(i) if callable(src) else src, dst, t)
            for i, t in enumerate(at_rate(rate, start, duration))]


class IcmpFloodTests(FloodTestCase):
    """
    Echo floods, and pings that are not.
    """

    detector_type = IcmpFloodDetector

    def test_pingFlood(self):
        """
        ping -f at 1000 echo requests a second: a warning naming the source.
        """
        self.feed(pings(1000, 5, ATTACKER, HOST))
        alert = self.only_alert()
        self.assertEqual((alert.kind, alert.severity, alert.src, alert.dst),
                         ("icmp_flood", "warning", ATTACKER, HOST))
        evidence = alert.evidence
        self.assertEqual((evidence["technique"], evidence["source_distribution"],
                          evidence["mean_octets"]), ("echo_request", "single", 84))
        self.assertNear(evidence["packets_per_second"], 1000, 20)
        self.assertNear(evidence["bits_per_second"], 672_000, 15_000)
        self.assertSamples(alert, "icmp type 8 code 0")
        self.assertEqual(evidence["reason"], "1,000 echo requests/s >= 500")
        self.assertEqual(alert.summary, f"ICMP echo flood on {HOST}: 1,000 echo requests/s "
                         f"(0.7 Mbit/s) from {ATTACKER}")

    def test_spoofedIpv6(self):
        """
        An ICMPv6 echo flood from random sources at 6000/s: critical, many
        spoofed, no source named.
        """
        rng = random.Random(5)
        self.feed(pings(6000, 5, lambda i: random_v6(rng), HOST6))
        alert = self.only_alert()
        self.assertEqual((alert.severity, alert.src, alert.dst,
                          alert.evidence["source_distribution"]),
                         ("critical", None, HOST6, "many_spoofed"))
        self.assertSamples(alert, "icmp6 type 128")

    def test_largePings(self):
        """
        Pings of 8000 octets, in fragments, at 200 a second: under the
        packet rate, over the bit rate.
        """
        frags = [bytes(f) for f in fragment(
            IP(src="127.0.0.1", dst="127.0.0.2") / ICMP(type=8) / Raw(b"p" * 8000),
            fragsize=1480)]
        shapes = [bytes(Ether(type=0x0800, **MACS)) + f for f in frags]
        packets = []
        for t in at_rate(200, T0, 5):
            packets += [stamp(shape, ATTACKER, HOST, t) for shape in shapes]
        self.feed(packets)
        alert = self.only_alert()
        self.assertEqual(alert.evidence["mean_octets"], 8028 + 20 * (len(shapes) - 1))
        self.assertGreater(alert.evidence["bits_per_second"], 10_000_000)
        self.assertLess(alert.evidence["packets_per_second"], 500)
        self.assertRegex(alert.evidence["reason"], r"^1\d\.\d Mbit/s >= 10 Mbit/s$")

    def test_unsolicitedReplies(self):
        """
        Echo replies this host never asked for, from many hosts (a smurf
        attack): technique ``echo_reply``.
        """
        amplifiers = [f"203.0.113.{n}" for n in range(1, 201)]
        self.feed(pings(1000, 5, lambda i: amplifiers[i % 200], HOST, reply=True))
        alert = self.only_alert()
        self.assertEqual((alert.dst, alert.evidence["technique"],
                          alert.evidence["requests_sent"]), (HOST, "echo_reply", 0))
        self.assertIn("unsolicited echo replies/s", alert.summary)

    def test_monitoring(self):
        """
        A monitoring system pinging 2000 hosts once a second, answered: each
        host gets one request a second, and the replies it gets it asked for.
        """
        hosts = [f"10.2.{n // 250}.{n % 250 + 1}" for n in range(2000)]
        packets = []
        for t in at_rate(2000, T0, 6):
            i = int(round((t - T0) * 2000))
            target = hosts[i % 2000]
            packets.append(stamp(icmp_shape(False, False, 56), HOST, target, t))
            packets.append(stamp(icmp_shape(False, True, 56), target, HOST, t + 0.0005))
        self.feed(packets)
        self.assertNoAlert()

    def test_shortBurst(self):
        """
        200 echo requests in a tenth of a second, once: 400 a second over
        the shortest span judged (C{min_evidence}, 0.5 s), no alert; 300 in
        0.15 s are 600 a second over it, an alert.
        """
        self.feed_on_grid(pings(2000, 0.1, ATTACKER, HOST, start=T0 + 1.1)
                          + pings(2000, 0.15, ATTACKER, HOST, start=T0 + 5.05), end=T0 + 8)
        alert = self.only_alert()
        self.assertEqual((alert.ts, alert.evidence["window_seconds"],
                          alert.evidence["packets"]), (T0 + 5.25, 0.5, 300))

    def test_fastPing(self):
        """
        ping -i 0.2, and monitoring pinging 200 hosts a second: no alert.
        """
        self.feed(pings(5, 10, HOST, "10.2.0.1")
                  + [p for n in range(200) for p in pings(1, 10, HOST, f"10.3.0.{n + 1}")])
        self.assertNoAlert()

    def test_over(self):
        """
        The alert ends after the flood.
        """
        packets = pings(1000, 5, ATTACKER, HOST)
        self.feed(packets)
        self.idle(packets[-1].ts, 15)
        self.assertEqual(self.only_alert().state, OVER)

    def test_allowList(self):
        """
        An allowed source sends no alert.
        """
        self.detector = self.make(allow=(ATTACKER,))
        self.feed(pings(1000, 5, ATTACKER, HOST))
        self.assertNoAlert()


# UDP ------------------------------------------------------------------------

def udp_flood(rate, duration, sources, dst=HOST, ports=lambda i: 80, sport=lambda i: 40000,
              start=T0, payload=100):
    v6 = ":" in dst
    shape = udp_shape(v6, payload)
    return [stamp(shape, sources(i), dst, t, sport(i), ports(i))
            for i, t in enumerate(at_rate(rate, start, duration))]


class UdpFloodTests(FloodTestCase):
    """
    One-way UDP floods, and conversations that are not floods.
    """

    detector_type = UdpFloodDetector

    def test_randomPorts(self):
        """
        One host floods random ports at 3000 packets a second: a warning
        naming it, technique ``many_ports``.
        """
        rng = random.Random(1)
        self.feed(udp_flood(3000, 5, lambda i: ATTACKER, ports=lambda i: rng.randrange(1, 65536)))
        alert = self.only_alert()
        self.assertEqual((alert.kind, alert.severity, alert.src, alert.dst),
                         ("udp_flood", "warning", ATTACKER, HOST))
        evidence = alert.evidence
        self.assertEqual((evidence["technique"], evidence["ports_at_cap"],
                          evidence["source_distribution"], evidence["answered_sources"]),
                         ("many_ports", True, "single", 0))
        self.assertEqual(evidence["ports_count"], 256)
        self.assertEqual(len(evidence["ports"]), 50)
        self.assertNear(evidence["one_way_per_second"], 3000, 50)
        self.assertSamples(alert, f"{ATTACKER}.40000 > {HOST}.")
        self.assertIn("to 256+ ports from 192.0.2.9", alert.summary)
        self.assertEqual(evidence["reason"], "3,000 unanswered packets/s >= 2,000")

    def test_spoofedOnePort(self):
        """
        An IPv6 flood of port 53 from random sources at 25000 packets a
        second: critical, ``one_port``, many spoofed.
        """
        rng = random.Random(2)
        self.feed(udp_flood(25000, 5, lambda i: random_v6(rng), dst=HOST6,
                            ports=lambda i: 53))
        alert = self.only_alert()
        self.assertEqual((alert.severity, alert.src, alert.dst, alert.evidence["technique"],
                          alert.evidence["source_distribution"]),
                         ("critical", None, HOST6, "one_port", "many_spoofed"))
        self.assertIn("to port 53", alert.summary)

    def test_reflection(self):
        """
        NTP monlist answers from 300 reflectors: technique ``reflection``.
        """
        reflectors = [f"203.0.{n // 200}.{n % 200 + 1}" for n in range(300)]
        self.feed(udp_flood(4000, 5, lambda i: reflectors[i % 300], sport=lambda i: 123,
                            ports=lambda i: 30000 + i % 5000, payload=440))
        alert = self.only_alert()
        self.assertEqual((alert.evidence["technique"], alert.evidence["reflected_service"],
                          alert.evidence["top_source_ports"][0]["sport"]),
                         ("reflection", "ntp", 123))
        self.assertIn("UDP ntp reflection flood", alert.summary)

    def test_resolver(self):
        """
        A DNS resolver takes 5000 queries a second from 3000 clients and
        answers each: a conversation, no alert.
        """
        rng = random.Random(4)
        clients = [random_v4(rng) for _ in range(3000)]
        query, answer = udp_shape(False, 40), udp_shape(False, 120)
        packets = []
        for i, t in enumerate(at_rate(5000, T0, 6)):
            client, port = clients[i % 3000], 1024 + i % 60000
            packets.append(stamp(query, client, HOST, t, port, 53))
            packets.append(stamp(answer, HOST, client, t + 0.002, 53, port))
        self.feed(packets)
        self.assertNoAlert()
        self.assertEqual(self.detector.stats()["suspects"], 1)

    def test_quicDownload(self):
        """
        A QUIC download at 20000 packets a second from port 443 to this
        host, which acknowledges once every 25 ms: no alert.
        """
        server = "198.51.100.7"
        data = udp_flood(20000, 6, lambda i: server, sport=lambda i: 443,
                         ports=lambda i: 51000, payload=1200)
        acks = [stamp(udp_shape(False, 40), HOST, server, t, 51000, 443)
                for t in at_rate(40, T0, 6)]
        self.feed(data + acks)
        self.assertNoAlert()

    def test_mediaAndCollectors(self):
        """
        An RTP stream of 100 packets a second, and 5000 syslog messages a
        second from 300 hosts: no alert.
        """
        senders = [f"10.4.{n // 200}.{n % 200 + 1}" for n in range(300)]
        self.feed(udp_flood(100, 6, lambda i: "198.51.100.20", ports=lambda i: 5004)
                  + udp_flood(5000, 6, lambda i: senders[i % 300], ports=lambda i: 514))
        self.assertNoAlert()

    def test_multicast(self):
        """
        An IPTV multicast stream is not judged.
        """
        self.feed(udp_flood(3000, 5, lambda i: "10.5.0.1", dst="239.1.1.1",
                            ports=lambda i: 5000, payload=1316))
        self.assertNoAlert()

    def test_over(self):
        """
        The alert ends after the flood.
        """
        packets = udp_flood(3000, 5, lambda i: ATTACKER)
        self.feed(packets)
        self.idle(packets[-1].ts, 15)
        self.assertEqual(self.only_alert().state, OVER)

    def test_allowList(self):
        """
        An allowed source sends no alert.
        """
        self.detector = self.make(allow=("192.0.2.0/24",))
        self.feed(udp_flood(3000, 5, lambda i: ATTACKER))
        self.assertNoAlert()


# DNS ------------------------------------------------------------------------

def dns_responses(rate, duration, reflectors, dst=HOST, qname="isc.org", qtype=255,
                  answer_octets=3000, first_fragment=False, start=T0, outgoing=False):
    v6 = ":" in dst
    shape = dns_shape(v6, True, qname, qtype, answer_octets, first_fragment)
    return [stamp(shape, reflectors(i), dst, t, 53, 1024 + i % 60000, dns_id=i % 65536,
                  outgoing=outgoing)
            for i, t in enumerate(at_rate(rate, start, duration))]


def lookups(rate, duration, client=HOST, server=RESOLVER, qname="example.com",
            qtype=48, answer_octets=1600, delay=0.02, start=T0):
    """
    C{client} asks C{server} at C{rate} a second and gets its answers
    C{delay} seconds later.
    """
    v6 = ":" in client
    query = dns_shape(v6, False, qname, qtype)
    answer = dns_shape(v6, True, qname, qtype, answer_octets)
    packets = []
    for i, t in enumerate(at_rate(rate, start, duration)):
        port, ident = 1024 + i % 60000, (i * 7919) % 65536
        packets.append(stamp(query, client, server, t, port, 53, dns_id=ident))
        packets.append(stamp(answer, server, client, t + delay, 53, port, dns_id=ident))
    return packets


class DnsAmplificationTests(FloodTestCase):
    """
    DNS responses to queries never sent, and responses that were asked for.
    """

    detector_type = DnsAmplificationDetector

    def test_reflectors(self):
        """
        ANY answers of about 3 kilo-octets from 200 open resolvers at 500 a
        second, in fragments: critical, no reflector named, the size read
        from the UDP length.
        """
        reflectors = [f"203.0.113.{n + 1}" for n in range(200)]
        self.feed(dns_responses(500, 5, lambda i: reflectors[i % 200], first_fragment=True))
        alert = self.only_alert()
        self.assertEqual((alert.kind, alert.severity, alert.src, alert.dst),
                         ("dns_amplification", "critical", None, HOST))
        evidence = alert.evidence
        self.assertEqual((evidence["qtypes"], evidence["reflectors_count"],
                          evidence["reflectors_at_cap"], evidence["qnames"][0]["qname"]),
                         ({"ANY": evidence["amplifying_qtypes"]}, 200, False, "isc.org"))
        self.assertGreater(evidence["mean_response_octets"], 2500)
        self.assertGreater(evidence["bits_per_second"], 10_000_000)
        self.assertNear(evidence["responses_per_second"], 500, 10)
        self.assertNotIn("source_distribution", evidence)
        self.assertSamples(alert, "dns response ANY isc.org")
        self.assertIn("from 200 reflectors, mostly ANY", alert.summary)
        self.assertRegex(evidence["reason"], r"^500 unsolicited responses/s >= 50 of mean "
                         r"[\d,]+ octets >= 512 and [\d.]+ Mbit/s >= 1 Mbit/s$")

    def test_singleReflector(self):
        """
        One reflector, 100 DNSKEY answers a second: a warning naming it.
        """
        self.feed(dns_responses(100, 5, lambda i: "203.0.113.5", qtype=48,
                                answer_octets=1200))
        alert = self.only_alert()
        self.assertEqual((alert.severity, alert.src), ("warning", "203.0.113.5"))
        self.assertEqual(alert.evidence["reflectors_count"], 1)
        # Reflectors are counted over one to two half windows.
        seconds = alert.evidence["sources_seconds"]
        self.assertTrue(1.0 <= seconds <= 2.25, seconds)
        self.assertNear(alert.evidence["top_reflectors"][0]["packets"], 100 * seconds, 2)

    def test_ipv6SmallAnswers(self):
        """
        Small unsolicited answers over 1 Mbit/s fire, whatever their size.
        """
        self.feed(dns_responses(2000, 5, lambda i: "2001:db8:53::1", dst=HOST6,
                                qtype=1, answer_octets=0))
        alert = self.only_alert()
        self.assertEqual(alert.dst, HOST6)
        self.assertLess(alert.evidence["mean_response_octets"], 512)
        self.assertRegex(alert.evidence["reason"], r"^[\d.]+ Mbit/s >= 1 Mbit/s$")

    def test_resolverClient(self):
        """
        This host asks 300 DNSSEC questions a second and gets large answers:
        every one matches its query.
        """
        self.feed(lookups(300, 6))
        self.assertNoAlert()
        stats = self.detector.stats()
        self.assertEqual((stats["responses_matched"], stats["responses_unmatched"]),
                         (1800, 0))

    def test_server(self):
        """
        This host answering as a DNS server: its responses are not arriving.
        """
        self.feed(dns_responses(500, 5, lambda i: HOST, dst="198.51.100.1", outgoing=True))
        self.feed(dns_responses(500, 5, lambda i: HOST6, dst="2001:db8::77", start=T0 + 10))
        self.assertNoAlert()

    def test_lateReplies(self):
        """
        Answers that come 25 s after their queries, past the timeout, at 5 a
        second: unmatched, but too few.
        """
        packets = lookups(5, 30, delay=25.0, answer_octets=2000)
        packets += lookups(5, 30, client="10.0.0.2", delay=8.0, answer_octets=2000)
        self.feed(packets)
        self.assertNoAlert()
        stats = self.detector.stats()
        self.assertEqual(stats["responses_matched"], 150)
        self.assertEqual(stats["responses_unmatched"], 150)

    def test_busyResolverClient(self):
        """
        When this host has more queries in flight than the table holds, the
        answers to those not kept are not judged (they would look
        unsolicited).
        """
        self.detector = self.make(queries_max=20)
        self.feed(lookups(300, 6, delay=0.5))
        self.assertNoAlert()
        stats = self.detector.stats()
        self.assertGreater(stats["queries_refused"], 1000)
        self.assertEqual(stats["responses_unjudged"], stats["queries_refused"])

    def test_over(self):
        """
        The alert ends after the flood.
        """
        packets = dns_responses(500, 5, lambda i: "203.0.113.5")
        self.feed(packets)
        self.idle(packets[-1].ts, 15)
        self.assertEqual(self.only_alert().state, OVER)

    def test_allowList(self):
        """
        Responses to an allowed victim send no alert.
        """
        self.detector = self.make(allow=(HOST,))
        self.feed(dns_responses(500, 5, lambda i: "203.0.113.5"))
        self.assertNoAlert()


# Bounds ---------------------------------------------------------------------

_FLAGS = ["S", "SA", "A", "R", "RA", "PA", "F", "FA", "", "FPU"]


def random_address(rng):
    return rng.randbytes(16) if rng.random() < 0.25 else rng.randbytes(4)


def random_packet(rng, ts, proto):
    """
    A packet of C{proto} with random addresses, ports, flags or type;
    some are IPv4 fragments (no ports).
    """
    src = random_address(rng)
    dst = rng.randbytes(len(src))
    v6 = len(src) == 16
    sport, dport = rng.choice((0, rng.randrange(65536))), rng.randrange(65536)
    offset = rng.randrange(1, 100) if not v6 and rng.random() < 0.05 else 0
    if proto == "tcp":
        shape = tcp_shape(v6, rng.choice(_FLAGS))
        return stamp(shape, src, dst, ts, sport, dport, seq=rng.getrandbits(32),
                     ack=rng.getrandbits(32), fragment_offset=offset)
    if proto == "udp":
        return stamp(udp_shape(v6, rng.choice((0, 40, 200, 1400))), src, dst, ts, sport, dport,
                     fragment_offset=offset)
    frame = bytearray(icmp_shape(v6, rng.random() < 0.5, rng.choice((0, 56, 1000))))
    frame[54 if v6 else 34] = rng.choice((0, 8, 3, 128, 129, rng.randrange(256)))
    return stamp(bytes(frame), src, dst, ts, fragment_offset=offset)


class BoundsTests(FloodTestCase):
    """
    Every table stays within its cap under random traffic, and what the
    caps refused or evicted is counted.
    """

    small = dict(keys_max=200, suspects_max=8, sources_max=16)

    def hammer(self, proto, hot, count=100_000, seconds=5.0):
        """
        C{count} packets over C{seconds}: 40 % random, 60 % from random
        sources to one of 30 hot keys (C{hot(rng, i, ts)} makes one), checking
        the caps every 1000 packets.
        """
        rng = random.Random(11)
        for i in range(count):
            ts = T0 + i * seconds / count
            if rng.random() < 0.4:
                packet = random_packet(rng, ts, proto)
            else:
                packet = hot(rng, i, ts)
            if packet is None:
                continue
            if "dns" in self.detector.protocols:
                message = parse_message(packet.payload) if packet.payload_len else None
                if message is not None:
                    self.detector.observe_dns(packet, message)
            else:
                self.detector.observe(packet)
            if ts >= self.next_check:
                self.check(ts)
            if i % 1000 == 0:
                self.assertWithinCaps()
        self.assertWithinCaps()
        return self.detector.stats()

    def assertWithinCaps(self):
        settings = self.detector.settings
        stats = self.detector.stats()
        self.assertLessEqual(stats.get("keys", 0), settings.keys_max)
        for prefix in ("", "requests_", "replies_"):
            self.assertLessEqual(stats.get(prefix + "suspects", 0), settings.suspects_max)
        tables = [getattr(self.detector, name) for name in ("_table", "_requests", "_replies")
                  if hasattr(self.detector, name)]
        buckets = int(settings.window / BUCKET) + 2
        for table in tables:
            self.assertLessEqual(len(table.counts), settings.keys_max)
            for suspect in table.suspects.values():
                self.assertLessEqual(len(suspect.ring), buckets)
                self.assertLessEqual(len(suspect.samples), SAMPLE_PACKETS)
                if hasattr(suspect, "slots"):
                    self.assertLessEqual(len(suspect.slots),
                                         (settings.window + BUCKET) / HANDSHAKE_SLOT + 2)
                caps = [("sources", settings.sources_max),
                        ("ports", getattr(settings, "ports_max", None)),
                        ("answered", 2 * settings.sources_max), ("sports", 64),
                        ("qtypes", 32), ("qnames", 32)]
                for name, cap in caps:
                    for generation in (name, "past_" + name):
                        if hasattr(suspect, generation):
                            self.assertLessEqual(len(getattr(suspect, generation)), cap)

    def test_syn(self):
        """
        Services, suspects, their sources and the pending handshakes stay
        within their caps.
        """
        self.detector = self.make(pending_max=64, **self.small)

        def hot(rng, i, ts):
            return stamp(tcp_shape(False, "S"), random_v4(rng), HOST, ts,
                         rng.randrange(1024, 65536), i % 30 + 1, seq=rng.getrandbits(32))

        stats = self.hammer("tcp", hot)
        self.assertLessEqual(stats["pending"], 64)
        for counter in ("keys_refused", "suspects_evicted", "pending_refused",
                        "pending_expired"):
            self.assertGreater(stats[counter], 0, counter)

    def test_icmp(self):
        """
        Both tables, their suspects' sources and the requests per host stay
        within their caps.
        """
        self.detector = self.make(IcmpFloodDetector, **self.small)

        def hot(rng, i, ts):
            return stamp(icmp_shape(False, i % 2 == 0, 56), random_v4(rng), f"10.9.0.{i % 30}",
                         ts)

        stats = self.hammer("icmp", hot)
        self.assertLessEqual(stats["askers"], 200)
        for counter in ("requests_keys_refused", "requests_suspects_evicted",
                        "replies_suspects_evicted", "askers_refused"):
            self.assertGreater(stats[counter], 0, counter)

    def test_udp(self):
        """
        Destinations, suspects, their sources, ports, source ports and
        answered sources stay within their caps.
        """
        self.detector = self.make(UdpFloodDetector, ports_max=32, **self.small)

        def hot(rng, i, ts):
            return stamp(udp_shape(False, 100), random_v4(rng), f"10.9.0.{i % 30}", ts,
                         rng.randrange(65536), rng.randrange(65536))

        stats = self.hammer("udp", hot)
        for counter in ("keys_refused", "suspects_evicted"):
            self.assertGreater(stats[counter], 0, counter)

    def test_dns(self):
        """
        Victims, reflectors, query types and names, pending queries and
        the clients whose queries were refused stay within their caps.
        """
        self.detector = self.make(DnsAmplificationDetector, queries_max=100, **self.small)
        names = [f"n{n}.example" for n in range(50)]

        def hot(rng, i, ts):
            qname = names[i % 50]
            shape = bytearray(dns_shape(False, i % 3 != 0, qname, 1, 300))
            struct.pack_into("!H", shape, 34 + 8 + 12 + len(qname) + 2, rng.randrange(65536))
            if i % 3 == 0:  # a query, never answered
                return stamp(bytes(shape), f"10.8.0.{rng.randrange(10)}", random_v4(rng), ts,
                             rng.randrange(65536), 53, dns_id=rng.randrange(65536))
            # To a hot victim, to a client whose queries may have been
            # refused, or to anyone.
            victim = rng.choice([f"10.9.0.{i % 30}", f"10.8.0.{rng.randrange(10)}",
                                 random_v4(rng)])
            return stamp(bytes(shape), random_v4(rng), victim, ts, 53,
                         rng.randrange(65536), dns_id=rng.randrange(65536))

        stats = self.hammer("udp", hot)
        self.assertLessEqual(stats["queries"], 100)
        self.assertLessEqual(stats["blind_clients"], 1024)
        for counter in ("keys_refused", "suspects_evicted", "queries_refused",
                        "responses_unjudged"):
            self.assertGreater(stats[counter], 0, counter)


# Settings, plugins, the analyser --------------------------------------------

MINE = {
    "syn_flood": SynFloodDetector,
    "icmp_flood": IcmpFloodDetector,
    "udp_flood": UdpFloodDetector,
    "dns_amplification": DnsAmplificationDetector,
}


def others_off(*keep) -> str:
    return "".join(f"[{name}]\nenabled = false\n" for name in sorted(detector_plugins())
                   if name not in keep)


class SettingsTests(SynchronousTestCase):
    """
    The detectors' tables in the settings file, and their plugins.
    """

    def test_plugins(self):
        """
        Each detector is declared by its plugin, with settings whose every
        key has a default.
        """
        found = detector_plugins()
        for name, cls in MINE.items():
            self.assertIs(found[name].detector_class(), cls)
            self.assertEqual((cls.name, cls.kinds), (name, (name,)))
            settings = cls.settings_type()
            self.assertTrue(settings.enabled)
            detector = cls(settings, DetectContext())
            detector.evaluate(T0, AlertBook("agent", 1))
            self.assertTrue(all(isinstance(v, int) for v in detector.stats().values()))

    def test_tables(self):
        """
        The TOML tables reach the detectors.
        """
        settings = parse_settings(
            "[syn_flood]\nsyn_per_second = 100\ncompletion_ratio_max = 0.2\nwindow = 3.0\n"
            "handshake_grace = 0.7\n"
            "[icmp_flood]\necho_per_second = 1000\nbits_per_second = 5e6\nmin_evidence = 1.0\n"
            "[udp_flood]\none_way_ports = [514, 2055]\nmany_ports = 50\n"
            "[dns_amplification]\nresponses_per_second = 20\nquery_timeout = 5.0\n"
            "allow = ['192.0.2.0/24']\n")
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        mine = {d.name: d.settings for d in analyser.detectors if d.name in MINE}
        self.assertEqual((mine["syn_flood"].syn_per_second,
                          mine["syn_flood"].completion_ratio_max, mine["syn_flood"].window,
                          mine["syn_flood"].handshake_grace), (100.0, 0.2, 3.0, 0.7))
        self.assertEqual((mine["icmp_flood"].echo_per_second,
                          mine["icmp_flood"].bits_per_second,
                          mine["icmp_flood"].min_evidence), (1000.0, 5e6, 1.0))
        self.assertEqual((mine["udp_flood"].one_way_ports, mine["udp_flood"].many_ports),
                         ((514, 2055), 50))
        self.assertEqual((mine["dns_amplification"].responses_per_second,
                          mine["dns_amplification"].query_timeout,
                          mine["dns_amplification"].allow), (20.0, 5.0, ("192.0.2.0/24",)))

    def test_misspelt(self):
        """
        A misspelt key is an error that names it.
        """
        for table, key in [("syn_flood", "syn_per_secnd"), ("icmp_flood", "echos_per_second"),
                           ("udp_flood", "one_way_port"), ("dns_amplification", "mean_octet")]:
            error = self.assertRaises(ConfigError, parse_settings, f"[{table}]\n{key} = 1\n")
            self.assertIn(key, str(error))

    def test_badValues(self):
        """
        Windows, rates and caps must be positive; ratios and shares within
        (0, 1]; the shortest span at most the window, the handshake grace
        shorter.
        """
        for text in ["[syn_flood]\nwindow = 0", "[syn_flood]\ncompletion_ratio_max = 1.5",
                     "[syn_flood]\nwindow = 0.2", "[icmp_flood]\nmin_evidence = 2.5",
                     "[udp_flood]\nwindow = 1.0\nmin_evidence = 1.5",
                     "[syn_flood]\nhandshake_grace = 2.0", "[syn_flood]\nhandshake_grace = -1",
                     "[icmp_flood]\nsources_max = 0", "[udp_flood]\none_way_ports = ['x']",
                     "[udp_flood]\npackets_per_second = -1",
                     "[dns_amplification]\nsingle_share = 0",
                     "[dns_amplification]\nallow = ['nonsense']"]:
            self.assertRaises(ConfigError, parse_settings, text + "\n")

    def analyser(self, name):
        analyser = DetectAnalyser(AnalyserConfig(detect=parse_settings(others_off(name))))
        self.assertEqual([d.name for d in analyser.detectors], [name])
        return analyser

    def run_through(self, analyser, packets):
        for packet in sorted(packets, key=lambda p: p.ts):
            analyser.observe(packet)
        return analyser.snapshot(packets[-1].ts + 0.25, 1.0)

    def test_analyserSyn(self):
        """
        Through the detect analyser: each flood raises its alert in the
        analyser's book, and the snapshot carries the detector's counters.
        """
        analyser = self.analyser("syn_flood")
        snapshot = self.run_through(analyser, syn_flood(1000, 5, lambda i: ATTACKER))
        alert = analyser.book.active("syn_flood", (octets(HOST), 80))
        self.assertEqual((alert.src, alert.dst), (ATTACKER, HOST))
        self.assertEqual(snapshot.detectors["syn_flood"]["suspects"], 1)

    def test_analyserIcmp(self):
        """
        An ICMPv6 echo flood through the detect analyser.
        """
        analyser = self.analyser("icmp_flood")
        self.run_through(analyser, pings(1000, 5, ATTACKER6, HOST6))
        alert = analyser.book.active("icmp_flood", (octets(HOST6), "echo_request"))
        self.assertEqual((alert.src, alert.dst), (ATTACKER6, HOST6))

    def test_analyserUdp(self):
        """
        A UDP flood through the detect analyser.
        """
        analyser = self.analyser("udp_flood")
        self.run_through(analyser, udp_flood(3000, 5, lambda i: ATTACKER))
        self.assertEqual(analyser.book.active("udp_flood", octets(HOST)).src, ATTACKER)

    def test_analyserDns(self):
        """
        DNS amplification through the detect analyser, which parses the
        DNS messages on port 53.
        """
        analyser = self.analyser("dns_amplification")
        snapshot = self.run_through(analyser, dns_responses(200, 5, lambda i: "203.0.113.5"))
        alert = analyser.book.active("dns_amplification", octets(HOST))
        self.assertEqual((alert.src, alert.dst), ("203.0.113.5", HOST))
        self.assertEqual(snapshot.detectors["dns_amplification"]["responses_unmatched"], 1000)


ARP_FRAME = bytes(Ether(src="02:00:00:00:00:07", dst="ff:ff:ff:ff:ff:ff")
                  / ARP(op=1, hwsrc="02:00:00:00:00:07", psrc="10.0.0.7", pdst="10.0.0.8"))


class LatencyTests(SynchronousTestCase):
    """
    Issue 4's latency goal, through the detect analyser with default
    settings, which evaluates every 0.25 s of capture time: a flood at
    twice its detector's threshold is alerted on (revision 0 emitted)
    within 0.75 s of its first packet, one at 1.2 times within 1 s,
    whatever the phase of its start to the evaluations.
    """

    #: Seconds from an evaluation (every 0.25 s from T0, kept by ARP
    #: requests every 5 ms) to the flood's first packet.
    PHASES = (0.0, 0.02, 0.06, 0.1, 0.14, 0.18, 0.22, 0.245)

    def first_alert(self, name, packets):
        """
        The first revision of the first alert of kind C{name} raised by the
        analyser, with only that detector on, given C{packets}.
        """
        emitted = []
        analyser = DetectAnalyser(AnalyserConfig(detect=parse_settings(others_off(name))))
        analyser.bind_alerts(AlertBook("agent", 1, emit=emitted.append))
        end = max(p.ts for p in packets)
        background = [decode(ARP_FRAME, T0 + i / 200) for i in range(int((end - T0) * 200))]
        for packet in sorted(background + packets, key=lambda p: p.ts):
            analyser.observe(packet)
        raised = [a for a in emitted if a.kind == name and a.revision == 0]
        self.assertTrue(raised, f"no {name} alert")
        return raised[0]

    def assertLatency(self, name, flood, threshold):
        """
        C{flood(rate, start)} at twice C{threshold} is alerted on within
        0.75 s, at 1.2 times within 1 s, judged over at least half a
        second.
        """
        for factor, bound in [(2.0, 0.75), (1.2, 1.0)]:
            for phase in self.PHASES:
                start = T0 + 1 + phase
                alert = self.first_alert(name, flood(threshold * factor, start))
                where = f"{name} at {factor} times its threshold, phase {phase}"
                self.assertLessEqual(alert.ts - start, bound, where)
                self.assertGreaterEqual(alert.evidence["window_seconds"], 0.5, where)

    def test_synFlood(self):
        self.assertLatency("syn_flood", lambda rate, start: syn_flood(
            rate, 1.5, lambda i: ATTACKER, start=start), 200)

    def test_icmpFlood(self):
        self.assertLatency("icmp_flood", lambda rate, start: pings(
            rate, 1.5, ATTACKER, HOST, start=start), 500)

    def test_udpFlood(self):
        self.assertLatency("udp_flood", lambda rate, start: udp_flood(
            rate, 1.5, lambda i: ATTACKER, start=start), 2000)

    def test_dnsAmplification(self):
        """
        DNSKEY answers of about 800 octets: over C{mean_octets}, under the
        bit rate (0.64 Mbit/s at 100 a second).
        """
        self.assertLatency("dns_amplification", lambda rate, start: dns_responses(
            rate, 1.5, lambda i: "203.0.113.5", qtype=48, answer_octets=750, start=start), 50)


class ClockTests(FloodTestCase):
    """
    The window clock.
    """

    def test_stepBack(self):
        """
        A clock that steps back starts a new window; the flood is found on
        the new clock.
        """
        self.detector.evaluate(T0 + 1000, self.book)
        self.feed(syn_flood(1000, 5, lambda i: ATTACKER))
        self.assertEqual(self.only_alert().dst, HOST)
