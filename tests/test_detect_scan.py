# -*- test-case-name: tests.test_detect_scan -*-
"""
Tests for L{loopy.detect.scan}: scans and their nearest benign traffic,
built with scapy, decoded by the header path and fed to
L{PortScanDetector} on the capture clock.
"""

from __future__ import annotations

import ipaddress
import random
import struct

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect.alerts import AlertBook
from loopy.detect.base import SAMPLE_PACKETS, DetectContext, Networks
from loopy.detect.host import DetectAnalyser, detector_plugins, parse_settings
from loopy.detect.scan import PortScanDetector, PortScanSettings
from loopy.dissect.headers import decode
from loopy.errors import ConfigError
from loopy.model import OVER
from loopy.testing import DetectorDriver

T0 = 1_700_000_000.0
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
HOST = "10.0.0.1"  # this host
SCANNER = "192.0.2.9"
HOST6 = "2001:db8::1"
SCANNER6 = "2001:db8:bad::9"


def _ip(src: str, dst: str, ttl: int = 64):
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, ttl=ttl)


def tcp(src, dst, sport, dport, flags, ts, seq=0, ack=0, payload=b""):
    """
    One TCP segment, decoded.
    """
    frame = Ether(**MACS) / _ip(src, dst) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=1024) / Raw(payload)
    return decode(bytes(frame), ts)


def udp(src, dst, sport, dport, ts, payload=b"probe", ttl=64):
    """
    One UDP datagram, decoded.
    """
    frame = Ether(**MACS) / _ip(src, dst, ttl) / UDP(sport=sport, dport=dport) / Raw(payload)
    return decode(bytes(frame), ts)


def unreachable(sender, probe_src, probe_dst, sport, dport, ts, proto="udp", icmp_type=3,
                code=3):
    """
    An ICMP (or ICMPv6) error from C{sender} quoting a UDP or TCP probe.
    """
    quoted_l4 = (UDP(sport=sport, dport=dport) / Raw(b"probe") if proto == "udp"
                 else TCP(sport=sport, dport=dport, flags="S", seq=1000))
    if ":" in sender:
        error = IPv6(src=sender, dst=probe_src) / ICMPv6DestUnreach(code=4) / (
            IPv6(src=probe_src, dst=probe_dst) / quoted_l4)
    else:
        error = IP(src=sender, dst=probe_src) / ICMP(type=icmp_type, code=code) / (
            IP(src=probe_src, dst=probe_dst) / quoted_l4)
    return decode(bytes(Ether(**MACS) / error), ts)


def nmap_syn_scan(ports, open_ports=(), start=T0, rate=2000.0, src=SCANNER, dst=HOST,
                  rtt=0.0002):
    """
    nmap -sS: one SYN a port from source port 40000 at C{rate} probes/s;
    closed ports answer RST/ACK, open ones SYN/ACK and the scanner's kernel
    resets them (RST, no ACK, SEQ = ISN + 1).
    """
    packets = []
    for i, port in enumerate(ports):
        ts = start + i / rate
        isn = 1000 + i
        packets.append(tcp(src, dst, 40000, port, "S", ts, seq=isn))
        if port in open_ports:
            packets.append(tcp(dst, src, port, 40000, "SA", ts + rtt, seq=9000, ack=isn + 1))
            packets.append(tcp(src, dst, 40000, port, "R", ts + 2 * rtt, seq=isn + 1))
        else:
            packets.append(tcp(dst, src, port, 40000, "RA", ts + rtt, seq=0, ack=isn + 1))
    return packets


def connect_scan(ports, open_ports, start=T0, rate=1000.0, src=SCANNER, dst=HOST,
                 close="RA", rtt=0.0002):
    """
    nmap -sT: connect() to each port from a new ephemeral port; open ports
    complete the handshake and are closed at once (C{close}: RST/ACK or
    FIN/ACK) with no data either way.
    """
    packets = []
    for i, port in enumerate(ports):
        ts = start + i / rate
        isn, sport = 5000 + 7 * i, 50000 + i
        packets.append(tcp(src, dst, sport, port, "S", ts, seq=isn))
        if port in open_ports:
            packets.append(tcp(dst, src, port, sport, "SA", ts + rtt, seq=7000, ack=isn + 1))
            packets.append(tcp(src, dst, sport, port, "A", ts + 2 * rtt, seq=isn + 1, ack=7001))
            packets.append(tcp(src, dst, sport, port, close, ts + 3 * rtt, seq=isn + 1,
                               ack=7001))
        else:
            packets.append(tcp(dst, src, port, sport, "RA", ts + rtt, seq=0, ack=isn + 1))
    return packets


def connection(client, server, sport, dport, ts, request=b"GET / HTTP/1.1\r\n\r\n",
               response=b"HTTP/1.1 200 OK\r\n\r\n", rtt=0.010):
    """
    A complete, successful connection: handshake, request, response, and a
    FIN from each side (the client first).
    """
    cisn, sisn = 100, 900
    c, s = cisn + 1, sisn + 1
    packets = [
        tcp(client, server, sport, dport, "S", ts, seq=cisn),
        tcp(server, client, dport, sport, "SA", ts + rtt, seq=sisn, ack=c),
        tcp(client, server, sport, dport, "A", ts + 1.5 * rtt, seq=c, ack=s),
        tcp(client, server, sport, dport, "PA", ts + 1.5 * rtt, seq=c, ack=s, payload=request),
        tcp(server, client, dport, sport, "PA", ts + 2.5 * rtt, seq=s, ack=c + len(request),
            payload=response),
    ]
    c += len(request)
    s += len(response)
    packets += [
        tcp(client, server, sport, dport, "FA", ts + 3 * rtt, seq=c, ack=s),
        tcp(server, client, dport, sport, "FA", ts + 3.5 * rtt, seq=s, ack=c + 1),
        tcp(client, server, sport, dport, "A", ts + 4 * rtt, seq=c + 1, ack=s + 1),
    ]
    return packets


def by_time(packets):
    return sorted(packets, key=lambda p: p.ts)


def decode_ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


class ScanTestCase(DetectorDriver, SynchronousTestCase):
    """
    A detector on a host whose address is L{HOST} and L{HOST6}, an alert
    book, and a driver that evaluates every 0.25 s of capture time as the
    detect analyser does.
    """

    settings = PortScanSettings()

    def setUp(self):
        self.context = DetectContext(local=Networks([HOST, HOST6]))
        self.detector = PortScanDetector(self.settings, self.context)
        self.emitted = []
        self.book = AlertBook("agent", 1, emit=self.emitted.append)
        self.next_check = 0.0

    def feed(self, packets):
        """
        Observe C{packets}, evaluating on the check interval, and once more
        at the last (as a report would).
        """
        for packet in packets:
            self.detector.observe(packet)
            if packet.ts >= self.next_check:
                self.check(packet.ts)
        if packets:
            self.check(packets[-1].ts)


class SynScanTests(ScanTestCase):
    """
    nmap -sS, vertical, against this host.
    """

    def test_nmapDefaultScan(self):
        """
        A SYN scan of 1000 ports (RST/ACK from closed ports, three open
        ports reset half-open) is one critical alert: scanner, target,
        ports, technique, outcomes, the open ports and samples of the
        scanner's packets; raised within 0.25 s of the 20th failed port.
        """
        ports = list(range(1, 1001))
        random.Random(1).shuffle(ports)
        packets = nmap_syn_scan(ports, open_ports={22, 80, 443})
        self.feed(packets)
        self.idle(packets[-1].ts, 1.0)
        alert = self.only_alert()
        self.assertEqual((alert.kind, alert.severity, alert.src, alert.dst),
                         ("port_scan", "critical", SCANNER, HOST))
        self.assertEqual(alert.summary, f"{SCANNER} SYN-scanned 1000 ports on {HOST} "
                                        "(ports 1-1000)")
        evidence = alert.evidence
        self.assertEqual(evidence["technique"], "syn")
        self.assertEqual(evidence["techniques"], {"syn": 1000})
        self.assertEqual(evidence["shape"], "vertical")
        self.assertEqual(evidence["direction"], "inbound")
        self.assertEqual(evidence["ports"], list(range(1, 51)))
        self.assertEqual(evidence["ports_count"], 1000)
        self.assertEqual((evidence["targets"], evidence["targets_count"]), ([HOST], 1))
        self.assertEqual(evidence["outcomes"], {"rejected": 997, "open": 3})
        self.assertEqual(evidence["open"], [f"{HOST}:22", f"{HOST}:80", f"{HOST}:443"])
        self.assertEqual(evidence["vertical"], {"target": HOST, "probes": "tcp",
                                                "ports_count": 1000, "threshold": 20})
        self.assertNotIn("horizontal", evidence)
        self.assertFalse(evidence["truncated"])
        self.assertEqual(len(evidence["samples"]), SAMPLE_PACKETS)
        self.assertIn(f"IP {SCANNER}.40000 > {HOST}.", evidence["samples"][-2])
        self.assertIn(": tcp [S] ", evidence["samples"][-2])
        self.assertIn(": tcp [R.] ", evidence["samples"][-1])
        # Latency: the 20th distinct failed port is the 20th RST/ACK.
        rejections = [p for p in packets if p.flags == 0x14]
        raised = self.emitted[0]
        self.assertLessEqual(raised.ts - rejections[19].ts, 0.25)
        self.assertGreaterEqual(raised.evidence["vertical"]["ports_count"], 20)

    def test_smallScanWarning(self):
        """
        30 ports is a scan, but a warning: under C{critical_ports}.
        """
        self.feed(nmap_syn_scan(range(20, 50)))
        alert = self.only_alert()
        self.assertEqual(alert.severity, "warning")
        self.assertEqual(alert.evidence["ports_count"], 30)

    def test_belowThreshold(self):
        """
        19 failed ports on one host in the window are not a scan.
        """
        packets = nmap_syn_scan(range(1, 20))
        self.feed(packets)
        self.idle(packets[-1].ts, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["failures"], 19)

    def test_slowScanOutsideWindow(self):
        """
        Failed ports more than C{window} apart do not add up: 40 ports at
        one every 0.6 s (16-17 in any 10 s) raise nothing.
        """
        packets = nmap_syn_scan(range(1, 41), rate=1 / 0.6)
        self.feed(packets)
        self.assertEqual(self.emitted, [])

    def test_filteredHost(self):
        """
        A SYN scan of a host that drops everything fails by timeout: the
        alert comes within C{probe_timeout} and a check of crossing the
        threshold, with the outcome "unanswered".
        """
        packets = [tcp(SCANNER, HOST, 40000, port, "S", T0 + i / 2000, seq=i)
                   for i, port in enumerate(range(1, 201))]
        self.feed(packets)
        self.idle(packets[-1].ts, 2)
        alert = self.only_alert()
        self.assertLessEqual(self.emitted[0].ts - packets[19].ts, 1.0 + 0.25)
        self.assertEqual(alert.evidence["outcomes"], {"unanswered": 200})
        self.assertEqual(alert.evidence["technique"], "syn")

    def test_icmpRejected(self):
        """
        SYNs refused with ICMP port unreachable (iptables REJECT) fail at
        once: the quoted TCP header names the probe.
        """
        packets = []
        for i, port in enumerate(range(1, 31)):
            ts = T0 + i / 1000
            packets.append(tcp(SCANNER, HOST, 40000, port, "S", ts, seq=1000))
            packets.append(unreachable(HOST, SCANNER, HOST, 40000, port, ts + 0.0001,
                                       proto="tcp"))
        self.feed(packets)
        alert = self.only_alert()
        self.assertEqual(alert.evidence["outcomes"], {"rejected": 30})
        self.assertLess(alert.ts, T0 + self.settings.probe_timeout)

    def test_outbound(self):
        """
        This host scanning another: direction "outbound".
        """
        self.feed(nmap_syn_scan(range(1, 101), src=HOST, dst="198.51.100.7"))
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst), (HOST, "198.51.100.7"))
        self.assertEqual(alert.evidence["direction"], "outbound")

    def test_transit(self):
        """
        Neither end this host's: direction "transit".
        """
        self.feed(nmap_syn_scan(range(1, 101), dst="198.51.100.7"))
        self.assertEqual(self.only_alert().evidence["direction"], "transit")

    def test_ipv6(self):
        """
        The same over IPv6: addresses as RFC 5952 text, open ports as
        ``[addr]:port``.
        """
        self.feed(nmap_syn_scan(range(1, 201), open_ports={22}, src=SCANNER6, dst=HOST6))
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst), (SCANNER6, HOST6))
        self.assertEqual(alert.summary, f"{SCANNER6} SYN-scanned 200 ports on {HOST6} "
                                        "(ports 1-200)")
        self.assertEqual(alert.evidence["open"], [f"[{HOST6}]:22"])
        self.assertEqual(alert.evidence["direction"], "inbound")
        self.assertIn(f"IP6 {SCANNER6}.40000 > {HOST6}.", alert.evidence["samples"][-2])


class ConnectScanTests(ScanTestCase):
    """
    nmap -sT: full handshakes on open ports, torn down at once.
    """

    def test_connectScan(self):
        """
        Open ports' handshakes closed with RST/ACK and no data, closed
        ports refused: technique "connect" for all of them (the refused
        SYNs are the same scanner's connect() calls).
        """
        self.feed(connect_scan(range(1, 101), open_ports={21, 22, 25, 80, 99}))
        alert = self.only_alert()
        self.assertEqual(alert.summary, f"{SCANNER} connect-scanned 100 ports on {HOST} "
                                        "(ports 1-100)")
        self.assertEqual(alert.evidence["technique"], "connect")
        self.assertEqual(alert.evidence["techniques"], {"connect": 100})
        self.assertEqual(alert.evidence["outcomes"], {"rejected": 95, "open": 5})
        self.assertEqual(len(alert.evidence["open"]), 5)
        self.assertEqual(alert.severity, "critical")

    def test_connectScanFinClose(self):
        """
        A scanner that closes with FIN/ACK (close() without SO_LINGER) is a
        connect scan too.
        """
        self.feed(connect_scan(range(1, 41), open_ports=set(range(1, 41)), close="FA"))
        alert = self.only_alert()
        self.assertEqual(alert.evidence["techniques"], {"connect": 40})
        self.assertEqual(alert.evidence["outcomes"], {"open": 40})

    def test_allOpen(self):
        """
        A connect scan where every port is open still fires: a handshake
        torn down with no data is a failed attempt (Zeek's is_failed_conn).
        """
        self.feed(connect_scan(range(1000, 1030), open_ports=set(range(1000, 1030))))
        self.assertEqual(self.only_alert().evidence["ports_count"], 30)


class StealthScanTests(ScanTestCase):
    """
    nmap -sF, -sN, -sX: segments without ACK that no stack sends.
    """

    def stealth(self, flags, ports, start=T0):
        packets = []
        for i, port in enumerate(ports):
            ts = start + i / 1000
            packets.append(tcp(SCANNER, HOST, 40000, port, flags, ts, seq=777))
            packets.append(tcp(HOST, SCANNER, port, 40000, "RA", ts + 0.0001, ack=777))
        return packets

    def test_techniques(self):
        """
        Each stealth scan is named by its flags and fires at 5 ports.
        """
        for flags, name, verb in [("F", "fin", "FIN"), ("", "null", "NULL"),
                                  ("FPU", "xmas", "Xmas")]:
            self.setUp()
            self.feed(self.stealth(flags, range(1, 101)))
            alert = self.only_alert()
            self.assertEqual(alert.summary,
                             f"{SCANNER} {verb}-scanned 100 ports on {HOST} (ports 1-100)")
            self.assertEqual(alert.evidence["technique"], name)
            self.assertEqual(alert.evidence["techniques"], {name: 100})
            self.assertEqual(alert.evidence["vertical"]["probes"], "stealth")
            self.assertEqual(alert.evidence["vertical"]["threshold"], 5)
            self.assertEqual(alert.evidence["outcomes"], {"stealth": 100})

    def test_fivePorts(self):
        """
        5 ports fire, 4 do not.
        """
        self.feed(self.stealth("F", range(1, 5)))
        self.idle(T0 + 1, 1)
        self.assertEqual(self.emitted, [])
        self.feed(self.stealth("F", [5], start=T0 + 3))
        self.assertEqual(self.only_alert().evidence["ports_count"], 5)

    def test_normalFin(self):
        """
        FIN with ACK (every connection's close) is not a probe.
        """
        self.feed([tcp(SCANNER, HOST, 40000 + p, p, "FA", T0 + p / 100, seq=5, ack=6)
                   for p in range(1, 100)])
        self.idle(T0 + 1, 12)
        self.assertEqual((self.emitted, self.detector.stats()["failures"]), ([], 0))


class UdpScanTests(ScanTestCase):
    """
    nmap -sU: probes answered by ICMP port unreachable, rate limited, or
    by nothing.
    """

    def udp_scan(self, ports, src=SCANNER, dst=HOST, answered=6, start=T0, rate=100.0):
        """
        A UDP scan whose target answers the first C{answered} probes with
        ICMP port unreachable and then (rate limited) none.
        """
        packets = []
        for i, port in enumerate(ports):
            ts = start + i / rate
            packets.append(udp(src, dst, 45000, port, ts))
            if i < answered:
                packets.append(unreachable(dst, src, dst, 45000, port, ts + 0.0001))
        return packets

    def test_udpScan(self):
        """
        A UDP scan of 100 ports fires within about 1.5 s: the ICMP port
        unreachables (the quoted UDP header names the probe) and the
        probes unanswered for C{probe_timeout}.
        """
        packets = self.udp_scan(range(1, 101))
        self.feed(packets)
        self.idle(packets[-1].ts, 2)
        alert = self.only_alert()
        self.assertLessEqual(self.emitted[0].ts - T0, 1.5)
        self.assertEqual(alert.summary, f"{SCANNER} UDP-scanned 100 ports on {HOST} "
                                        "(ports 1-100)")
        self.assertEqual(alert.evidence["technique"], "udp")
        self.assertEqual(alert.evidence["outcomes"], {"rejected": 6, "unanswered": 94})
        self.assertEqual(alert.evidence["vertical"]["probes"], "udp")
        self.assertEqual(alert.evidence["vertical"]["threshold"], 10)

    def test_icmpOnly(self):
        """
        Ten ports refused with ICMP port unreachable fire before any
        timeout: the ICMP payload's quoted header is what counts.
        """
        packets = self.udp_scan(range(1, 11), answered=10, rate=1000)
        self.feed(packets)
        self.assertEqual(self.only_alert().evidence["outcomes"], {"rejected": 10})
        self.assertLess(self.emitted[0].ts, T0 + 0.5)

    def test_ipv6(self):
        """
        ICMPv6 port unreachable quoting an IPv6 UDP probe.
        """
        packets = self.udp_scan(range(1, 21), src=SCANNER6, dst=HOST6, answered=20, rate=1000)
        self.feed(packets)
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst), (SCANNER6, HOST6))
        self.assertEqual(alert.evidence["outcomes"], {"rejected": 20})

    def test_answeredProbes(self):
        """
        UDP to 50 ports that all answer (a client of 50 services) is not a
        scan.
        """
        packets = []
        for i, port in enumerate(range(5000, 5050)):
            ts = T0 + i / 100
            packets.append(udp(SCANNER, HOST, 45000 + i, port, ts))
            packets.append(udp(HOST, SCANNER, port, 45000 + i, ts + 0.001, payload=b"ok"))
        self.feed(packets)
        self.idle(T0 + 1, 12)
        self.assertEqual((self.emitted, self.detector.stats()["failures"]), ([], 0))

    def test_traceroute(self):
        """
        traceroute(8) from this host: probes to ports 33434 and up, most
        answered by ICMP time exceeded from routers, some not at all, the
        last ones by port unreachable from the destination.  Not a scan.
        """
        packets = []
        dst = "198.51.100.7"
        for i in range(90):
            ts = T0 + i / 50
            port = 33434 + i
            packets.append(udp(HOST, dst, 50000 + i // 16, port, ts, ttl=1 + i // 3))
            if i < 30:
                packets.append(unreachable(f"203.0.113.{i // 3 + 1}", HOST, dst,
                                           50000 + i // 16, port, ts + 0.01, icmp_type=11,
                                           code=0))
            elif i >= 80:
                packets.append(unreachable(dst, HOST, dst, 50000 + i // 16, port, ts + 0.02))
        self.feed(packets)
        self.idle(packets[-1].ts, 12)
        self.assertEqual(self.emitted, [])

    def test_lateReplies(self):
        """
        A DNS server answering 1.5 s late is not taken for a UDP scanner of
        the client's ephemeral ports; the client's late-answered queries
        count as answered.
        """
        server = "198.51.100.53"
        packets = []
        for i in range(30):
            ts = T0 + i / 10
            packets.append(udp(HOST, server, 30000 + i, 53, ts, payload=b"q"))
            packets.append(udp(server, HOST, 53, 30000 + i, ts + 1.5, payload=b"a"))
        self.feed(by_time(packets))
        self.idle(T0 + 5, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["late_replies"], 30)

    def test_flowEnds(self):
        """
        UDP flows to 60 hosts on 443 (QUIC) whose last client datagrams go
        unanswered (a CONNECTION_CLOSE, an ACK): once a flow is answered,
        its later datagrams are not probes.
        """
        packets = []
        for i in range(60):
            peer, ts = f"203.0.113.{i + 1}", T0 + i / 20
            for n, outgoing in enumerate([True, False, True, True, False, True, True]):
                at = ts + n * 0.02
                packets.append(udp(HOST, peer, 50000 + i, 443, at) if outgoing
                               else udp(peer, HOST, 443, 50000 + i, at))
        self.feed(by_time(packets))
        self.idle(T0 + 4, 12)
        self.assertEqual((self.emitted, self.detector.stats()["failures"]), ([], 0))

    def test_multicast(self):
        """
        Datagrams to multicast and broadcast addresses (SSDP, mDNS …) are
        never probes.
        """
        packets = [udp(HOST, f"239.255.255.{i}", 1900, 1900 + i, T0 + i / 10)
                   for i in range(1, 40)]
        packets += [udp(HOST, "255.255.255.255", 68, 67, T0 + 4)]
        packets += [udp(HOST6, "ff02::fb", 5353, 5000 + i, T0 + 5 + i / 10) for i in range(30)]
        self.feed(packets)
        self.idle(T0 + 10, 12)
        self.assertEqual((self.emitted, self.detector.stats()["udp_probes"]), ([], 0))


class HorizontalScanTests(ScanTestCase):
    """
    One port on many hosts.
    """

    def test_sshSweep(self):
        """
        Port 22 across 50 hosts (refused or unanswered) from this host is
        one alert with no single target; a warning, under
        C{critical_hosts}.
        """
        packets = []
        for i in range(50):
            ts = T0 + i / 100
            dst = f"10.0.1.{i + 1}"
            packets.append(tcp(HOST, dst, 41000 + i, 22, "S", ts, seq=10 * i))
            if i % 2:
                packets.append(tcp(dst, HOST, 22, 41000 + i, "RA", ts + 0.001,
                                   ack=10 * i + 1))
        self.feed(packets)
        self.idle(packets[-1].ts, 2)
        alert = self.only_alert()
        self.assertEqual((alert.src, alert.dst, alert.severity), (HOST, None, "warning"))
        self.assertEqual(alert.summary,
                         f"{HOST} SYN-scanned port 22 on 50 hosts (10.0.1.1-10.0.1.50)")
        evidence = alert.evidence
        self.assertEqual((evidence["shape"], evidence["direction"]), ("horizontal", "outbound"))
        self.assertEqual((evidence["ports"], evidence["ports_count"]), ([22], 1))
        self.assertEqual(evidence["targets"][:3], ["10.0.1.1", "10.0.1.2", "10.0.1.3"])
        self.assertEqual(evidence["targets_count"], 50)
        self.assertEqual(evidence["horizontal"], {"port": 22, "probes": "tcp",
                                                  "targets_count": 50, "threshold": 20})
        self.assertEqual(evidence["outcomes"], {"rejected": 25, "unanswered": 25})

    def test_bigSweepCritical(self):
        """
        150 hosts: critical.
        """
        self.feed([tcp(SCANNER, f"10.1.{i // 250}.{i % 250 + 1}", 40000, 445, "S",
                       T0 + i / 1000, seq=5) for i in range(150)])
        self.idle(T0 + 0.2, 1.5)
        alert = self.only_alert()
        self.assertEqual((alert.severity, alert.evidence["targets_count"]), ("critical", 150))

    def test_block(self):
        """
        10 ports on 30 hosts: vertical and horizontal at once, "block".
        """
        packets = []
        for h in range(30):
            for p in range(25):
                ts = T0 + (h * 25 + p) / 5000
                packets.append(tcp(SCANNER, f"10.2.0.{h + 1}", 40000, 100 + p, "S", ts, seq=1))
                packets.append(tcp(f"10.2.0.{h + 1}", SCANNER, 100 + p, 40000, "RA", ts, ack=2))
        self.feed(packets)
        alert = self.only_alert()
        self.assertEqual(alert.evidence["shape"], "block")
        self.assertEqual((alert.evidence["ports_count"], alert.evidence["targets_count"]),
                         (25, 30))
        self.assertEqual(alert.summary, f"{SCANNER} SYN-scanned 25 ports on 30 hosts")
        self.assertIsNone(alert.dst)


class BenignTests(ScanTestCase):
    """
    The traffic nearest a scan that must not raise one.
    """

    def test_busyWebServer(self):
        """
        500 clients each making a complete connection to 443 on this host.
        """
        packets = []
        for i in range(500):
            client = f"198.51.{100 + i // 250}.{i % 250 + 1}"
            packets += connection(client, HOST, 40000 + i, 443, T0 + i / 200)
        self.feed(by_time(packets))
        self.idle(T0 + 3, 12)
        self.assertEqual(self.emitted, [])
        stats = self.detector.stats()
        self.assertEqual((stats["failures"], stats["scanners"], stats["tcp_probes"]), (0, 0, 0))

    def test_serverClosesFirst(self):
        """
        Connections the server closes (the client's FIN comes later, or
        never within the probe timeout) succeed too.
        """
        packets = []
        for i in range(100):
            client = f"198.51.100.{i + 1}"
            packets += [p for p in connection(client, HOST, 40000, 443, T0 + i / 100)
                        if not (p.saddr == decode_ip(client) and p.flags & 1)]
        self.feed(by_time(packets))
        self.idle(T0 + 2, 12)
        self.assertEqual((self.emitted, self.detector.stats()["failures"]), ([], 0))

    def test_browser(self):
        """
        This host opening 60 successful connections to 443 on 60 hosts.
        """
        packets = []
        for i in range(60):
            packets += connection(HOST, f"203.0.113.{i + 1}", 50000 + i, 443, T0 + i / 30)
        self.feed(by_time(packets))
        self.idle(T0 + 3, 12)
        self.assertEqual(self.emitted, [])

    def test_manyServicesOneHost(self):
        """
        A client of 100 services on one host, 25 of whose ports are closed
        among them, mostly succeeds there: not a vertical scan.
        """
        packets = []
        for i in range(125):
            ts = T0 + i / 20
            if i % 5 == 4:
                port = 9000 + i
                packets.append(tcp(SCANNER, HOST, 40000 + i, port, "S", ts, seq=1))
                packets.append(tcp(HOST, SCANNER, port, 40000 + i, "RA", ts + 0.001, ack=2))
            else:
                packets += connection(SCANNER, HOST, 40000 + i, 8000 + i, ts)
        self.feed(by_time(packets))
        self.idle(T0 + 7, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["failures"], 25)

    def test_fastOpen(self):
        """
        SYNs carrying data (TCP Fast Open, RFC 7413) are acknowledged past
        ISN + 1: still answered, and the connections succeed.
        """
        packets = []
        for i in range(40):
            ts = T0 + i / 100
            packets += [
                tcp(HOST, "203.0.113.5", 50000 + i, 8000 + i, "S", ts, seq=100, payload=b"GET"),
                tcp("203.0.113.5", HOST, 8000 + i, 50000 + i, "SA", ts + 0.01, seq=900,
                    ack=104),
                tcp(HOST, "203.0.113.5", 50000 + i, 8000 + i, "RA", ts + 0.02, seq=104,
                    ack=901),
            ]
        self.feed(packets)
        self.idle(T0 + 1, 12)
        self.assertEqual((self.emitted, self.detector.stats()["failures"]), ([], 0))

    def test_closedPortRetried(self):
        """
        A client whose connections to one closed port are refused five
        times: counted, far below any threshold.
        """
        packets = []
        for i in range(5):
            ts = T0 + i
            packets.append(tcp(SCANNER, HOST, 50000 + i, 8080, "S", ts, seq=i))
            packets.append(tcp(HOST, SCANNER, 8080, 50000 + i, "RA", ts + 0.0001, ack=i + 1))
        self.feed(packets)
        self.idle(T0 + 5, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["failures"], 5)

    def test_crawler(self):
        """
        A crawler whose connections to 443 mostly succeed, with 30 hosts
        that never answer among them, is a client, not a horizontal scan.
        """
        packets = []
        for i in range(300):
            ts = T0 + i / 40
            if i % 10 == 5:
                packets.append(tcp(HOST, f"192.0.2.{i // 10 + 1}", 50000 + i, 443, "S", ts,
                                   seq=1))
            else:
                packets += connection(HOST, f"203.0.{113 + i // 250}.{i % 250 + 1}",
                                      50000 + i, 443, ts)
        self.feed(by_time(packets))
        self.idle(T0 + 8, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["failures"], 30)

    def test_resolverTimeouts(self):
        """
        A resolver whose queries to 25 name servers time out, among many
        answered ones, is not a UDP sweep of port 53.
        """
        packets = []
        for i in range(500):
            ts = T0 + i / 50
            if i % 20:
                server = f"198.51.100.{i % 100 + 1}"
                packets.append(udp(HOST, server, 20000 + i, 53, ts))
                packets.append(udp(server, HOST, 53, 20000 + i, ts + 0.02))
            else:  # every 20th unanswered: 25 of them, on 25 other servers
                packets.append(udp(HOST, f"192.0.2.{i // 20 + 1}", 20000 + i, 53, ts))
        self.feed(by_time(packets))
        self.idle(T0 + 10, 12)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["failures"], 25)


class LifecycleTests(ScanTestCase):
    """
    Alerts end; allow-lists silence them.
    """

    def test_ends(self):
        """
        After the scan stops, the window empties and the book ends the
        alert C{quiet_after} (10 s) later: its last revision is "over".
        """
        packets = nmap_syn_scan(range(1, 101))
        self.feed(packets)
        self.idle(packets[-1].ts, 25)
        alerts = self.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(alerts[0].state, OVER)
        ended = alerts[0].updated - packets[-1].ts
        self.assertTrue(10 <= ended <= 10 + 10 + 0.5, ended)
        self.assertEqual(self.detector.stats()["scanners"], 0)
        self.assertEqual(self.detector.stats()["items"], 0)

    def test_updates(self):
        """
        A scan going on updates its alert: the ports count grows.
        """
        self.feed(nmap_syn_scan(range(1, 501), rate=200))
        revisions = [a for a in self.emitted if a.seq == 1]
        self.assertGreater(len(revisions), 1)
        counts = [a.evidence["ports_count"] for a in revisions]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(revisions[-1].severity, "critical")

    def test_detectorAllowList(self):
        """
        The detector's own allow-list silences a scanner (a monitoring
        system that scans on purpose), and a target.
        """
        settings = PortScanSettings(allow=("192.0.2.0/24", "10.9.9.9"))
        self.detector = PortScanDetector(settings, self.context)
        self.feed(nmap_syn_scan(range(1, 101)))
        self.feed(nmap_syn_scan(range(1, 101), src="198.51.100.1", dst="10.9.9.9",
                                start=T0 + 1))
        self.idle(T0 + 2, 2)
        self.assertEqual(self.emitted, [])
        self.assertEqual(self.detector.stats()["scanners"], 0)

    def test_globalAllowList(self):
        """
        The global allow-list too.
        """
        context = DetectContext(allow=Networks(["192.0.2.9"]), local=Networks([HOST]))
        self.detector = PortScanDetector(PortScanSettings(), context)
        self.feed(nmap_syn_scan(range(1, 101)))
        self.assertEqual(self.emitted, [])


class BoundsTests(ScanTestCase):
    """
    Every table stays within its cap under random traffic, and evictions
    are counted.
    """

    settings = PortScanSettings(scanners_max=100, scanner_items_max=50, items_max=1000,
                                probes_max=500)

    def random_packets(self, count, seed, sources, targets=300, start=T0):
        """
        C{count} random frames from templates built once by scapy and
        patched: TCP with random flags, UDP, and ICMP errors quoting random
        probes, from C{sources} addresses to C{targets} addresses (IPv4,
        and a quarter IPv6), 20,000 a second from C{start}.
        """
        rnd = random.Random(seed)
        pool = max(sources, targets)
        v4 = [bytes([10, 3, i // 256, i % 256]) for i in range(pool)]
        v6 = [bytes(16 - 2) + i.to_bytes(2, "big") for i in range(pool)]
        shapes = {
            (4, "tcp"): bytes(Ether(**MACS) / IP(src="1.1.1.1", dst="2.2.2.2") / TCP()),
            (4, "udp"): bytes(Ether(**MACS) / IP(src="1.1.1.1", dst="2.2.2.2") / UDP()),
            (6, "tcp"): bytes(Ether(**MACS) / IPv6(src="::1", dst="::2") / TCP()),
            (6, "udp"): bytes(Ether(**MACS) / IPv6(src="::1", dst="::2") / UDP()),
        }
        icmp = bytes(Ether(**MACS) / IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=3, code=3)
                     / IP(src="3.3.3.3", dst="4.4.4.4") / UDP())
        packets = []
        for i in range(count):
            ts = start + i / 20000
            version = 6 if rnd.random() < 0.25 else 4
            addrs = v6 if version == 6 else v4
            src, dst = addrs[rnd.randrange(sources)], addrs[rnd.randrange(targets)]
            kind = rnd.random()
            if kind < 0.1 and version == 4:
                frame = bytearray(icmp)
                frame[26:34] = src + dst
                frame[54:62] = dst + src
                struct.pack_into("!HH", frame, 62, rnd.randrange(65536), rnd.randrange(65536))
            else:
                frame = bytearray(shapes[version, "tcp" if kind < 0.7 else "udp"])
                at, l4 = (26, 34) if version == 4 else (22, 54)
                size = len(src)
                frame[at:at + 2 * size] = src + dst
                struct.pack_into("!HH", frame, l4, rnd.randrange(65536), rnd.randrange(1024))
                if kind < 0.7:
                    struct.pack_into("!II", frame, l4 + 4, rnd.randrange(1 << 32),
                                     rnd.randrange(1 << 32))
                    frame[l4 + 13] = rnd.choice((2, 2, 2, 0x12, 0x14, 4, 1, 0, 0x29, 0x11))
            packets.append(decode(bytes(frame), ts))
        return packets

    def test_capsHold(self):
        """
        200,000 random packets, from 600 sources (past C{scanners_max})
        and then from 30 (whose items pass C{scanner_items_max} and
        together C{items_max}): scanners, items (each scanner's and all),
        pending probes and the unanswered table stay within their caps;
        evictions and drops are counted.
        """
        settings = self.settings
        packets = self.random_packets(100_000, seed=7, sources=300)
        packets += self.random_packets(100_000, seed=8, sources=30, start=packets[-1].ts)
        for start in range(0, len(packets), 1000):
            chunk = packets[start:start + 1000]
            self.feed(chunk)
            stats = self.detector.stats()
            self.assertLessEqual(stats["scanners"], settings.scanners_max)
            self.assertLessEqual(stats["items"], settings.items_max)
            self.assertLessEqual(stats["tcp_probes"], settings.probes_max)
            self.assertLessEqual(stats["udp_probes"], settings.probes_max)
            self.assertLessEqual(stats["udp_flows"], settings.probes_max)
            for s in self.detector._scanners.values():
                self.assertLessEqual(len(s.items), settings.scanner_items_max)
            self.assertEqual(stats["items"],
                             sum(len(s.items) for s in self.detector._scanners.values()))
        stats = self.detector.stats()
        self.assertGreater(stats["scanners_evicted"], 0)
        self.assertGreater(stats["items_evicted"], 0)
        self.assertGreater(stats["probes_dropped"], 0)
        self.assertGreater(stats["udp_flows_dropped"], 0)
        self.assertGreater(stats["icmp_errors"], 0)
        # The random traffic raised alerts, each within the book's bound.
        self.assertLessEqual(len(self.book), self.book.max_active)
        # And everything ages out.
        self.idle(packets[-1].ts, 25)
        stats = self.detector.stats()
        self.assertEqual((stats["scanners"], stats["items"], stats["tcp_probes"],
                          stats["udp_probes"], stats["udp_flows"], stats["suspects"]),
                         (0, 0, 0, 0, 0, 0))

    def test_scannerCapTruncates(self):
        """
        A scan past C{scanner_items_max} keeps its newest items; its counts
        are lower bounds, marked "+" and C{truncated}.
        """
        self.feed(nmap_syn_scan(range(1, 201)))
        alert = self.only_alert()
        self.assertEqual(alert.evidence["ports_count"], 50)
        self.assertTrue(alert.evidence["truncated"])
        self.assertIn("50+ ports", alert.summary)

    def test_malformed(self):
        """
        Fragments, port 0, ICMP errors quoting garbage or nothing, and
        ICMP that is not an error change nothing and raise nothing.
        """
        frames = [
            Ether(**MACS) / IP(src=SCANNER, dst=HOST, frag=100, proto=6) / Raw(b"x" * 20),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST, frag=100, proto=17) / Raw(b"x" * 20),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST) / ICMP(type=3, code=3) / Raw(b"\0" * 3),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST) / ICMP(type=3, code=3) / Raw(b"\x45" * 40),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST) / ICMP(type=3, code=3) / Raw(b"\x99" * 40),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST) / ICMP(type=11) / Raw(b"\x60" * 60),
            Ether(**MACS) / IP(src=SCANNER, dst=HOST) / ICMP(type=8),
            Ether(**MACS) / IPv6(src=SCANNER6, dst=HOST6) / ICMPv6DestUnreach() / Raw(b"\x60"),
            Ether(**MACS) / IPv6(src=SCANNER6, dst=HOST6, nh=44) / Raw(
                b"\x06\x00\x00\x11\x00\x00\x00\x01" + b"x" * 20),
        ]
        packets = [decode(bytes(f), T0) for f in frames]
        packets.append(tcp(SCANNER, HOST, 0, 0, "S", T0))
        packets.append(tcp(HOST, SCANNER, 0, 0, "RA", T0, ack=1))
        for packet in packets:
            self.assertIsNotNone(packet)
            self.detector.observe(packet)
        self.detector.evaluate(T0 + 1, self.book)
        stats = self.detector.stats()
        self.assertEqual((stats["failures"], stats["udp_probes"], stats["tcp_probes"]),
                         (1, 0, 0))


class SettingsTests(SynchronousTestCase):
    """
    The C{[port_scan]} table.
    """

    def detector(self, settings):
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        (found,) = [d for d in analyser.detectors if d.name == "port_scan"]
        return found

    def others_off(self) -> str:
        return "".join(f"[{name}]\nenabled = false\n" for name in sorted(detector_plugins())
                       if name != "port_scan")

    def test_table(self):
        """
        The TOML table reaches the detector.
        """
        settings = parse_settings(self.others_off() + "[port_scan]\nports = 30\nwindow = 5.0\n"
                                  "traceroute_ports = [33000, 33100]\nallow = ['192.0.2.0/24']\n")
        detector = self.detector(settings)
        self.assertEqual((detector.settings.ports, detector.settings.window,
                          detector.settings.traceroute_ports, detector.settings.allow),
                         (30, 5.0, (33000, 33100), ("192.0.2.0/24",)))

    def test_misspelt(self):
        """
        A misspelt key is an error that names it.
        """
        error = self.assertRaises(ConfigError, parse_settings, "[port_scan]\nport = 30\n")
        self.assertIn("port", str(error))

    def test_badValues(self):
        """
        Thresholds must be positive; the traceroute range ordered ports.
        """
        for text in ["ports = 0", "window = -1.0", "traceroute_ports = [2, 1]",
                     "traceroute_ports = [1, 70000]", "allow = ['nonsense']"]:
            self.assertRaises(ConfigError, parse_settings, f"[port_scan]\n{text}\n")

    def test_analyser(self):
        """
        Through the detect analyser: a SYN scan raises the alert in its
        book on the check interval, and the snapshot carries the
        detector's counters.
        """
        settings = parse_settings(self.others_off())
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        packets = nmap_syn_scan(range(1, 201), rate=200)
        for packet in packets:
            analyser.observe(packet)
        alert = analyser.book.active("port_scan", decode_ip(SCANNER))
        self.assertEqual((alert.src, alert.dst), (SCANNER, HOST))
        self.assertLessEqual(alert.ts - packets[2 * 19 + 1].ts, 0.25)
        snapshot = analyser.snapshot(T0 + 1, 1.0)
        self.assertEqual(snapshot.detectors["port_scan"]["failures"], 200)
