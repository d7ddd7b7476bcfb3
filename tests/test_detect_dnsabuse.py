# -*- test-case-name: tests.test_detect_dnsabuse -*-
"""
Tests for L{loopy.detect.dnsabuse}: DNS tunnels (C{dns_tunnel}) and NXDOMAIN
storms (C{dns_nxdomain}), fed scapy-built DNS messages decoded by the
header path and the DNS parser.
"""

from __future__ import annotations

import copy
import random
import string

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect.alerts import AlertBook
from loopy.detect.base import DetectContext, Networks
from loopy.detect.dnsabuse import (
    DnsNxdomainDetector, DnsNxdomainSettings, DnsTunnelDetector, DnsTunnelSettings,
    DomainList, registered_domain, shannon_entropy,
)
from loopy.detect.host import DetectAnalyser, DetectSettings, build_detectors, parse_settings
from loopy.dissect.dns import DnsMessage, parse_message
from loopy.dissect.headers import address_text, decode
from loopy.errors import ConfigError
from loopy.model import OVER
from loopy.testing import newest_revisions

CLIENT = "192.0.2.9"
RESOLVER = "192.0.2.53"
B32 = string.ascii_lowercase + "234567"


def dns_packet(ts, qname, qtype=1, src=CLIENT, dst=RESOLVER, sport=40000, dport=53,
               qr=0, rcode=0, opcode=0):
    """
    A DNS message over UDP, built with scapy and decoded: the packet and its
    parsed message.
    """
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    frame = (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / ip
             / UDP(sport=sport, dport=dport)
             / DNS(id=7, qr=qr, rd=1, opcode=opcode, rcode=rcode,
                   qd=DNSQR(qname=qname, qtype=qtype)))
    packet = decode(bytes(frame), ts)
    return packet, parse_message(packet.payload)


def nxdomain(ts, qname, client=CLIENT, server=RESOLVER, rcode=3, qtype=1):
    """
    A response with C{rcode} (NXDOMAIN) from C{server} to C{client}.
    """
    return dns_packet(ts, qname, qtype, src=server, dst=client, sport=53, dport=40000,
                      qr=1, rcode=rcode)


def random_label(rng, n, alphabet=B32):
    return "".join(rng.choice(alphabet) for _ in range(n))


class Harness:
    """
    A detector, an alert book that keeps what it emits, and a clock (for
    the novelty tests too).
    """

    def __init__(self, detector_class, settings, local=("192.0.2.0/24",), allow=()):
        self.context = DetectContext(allow=Networks(allow), local=Networks(local))
        self.detector = detector_class(settings, self.context)
        self.emitted = []
        self.book = AlertBook("agent", 1, emit=self.emitted.append)

    def feed(self, packet, message):
        self.detector.observe_dns(packet, message)

    def tick(self, now):
        """
        One check of the detect analyser: evaluate, then sweep.
        """
        self.detector.evaluate(now, self.book)
        self.book.sweep(now)

    def alerts(self, kind=None):
        return newest_revisions(self.emitted, kind)


class NamesTests(SynchronousTestCase):
    """
    L{registered_domain}, L{shannon_entropy}, L{DomainList}.
    """

    def test_registeredDomain(self):
        """
        The registered domain is the last two labels, three under a common
        second level of a two-letter TLD.
        """
        cases = {
            "www.example.com": "example.com",
            "a.b.example.co.uk": "example.co.uk",
            "x.example.com.au": "example.com.au",
            "x.example.ac.jp": "example.ac.jp",
            "a.b.c.uk": "c.uk",
            "a.b.co.example": "co.example",
            "example.co.uk": "example.co.uk",
            "example.com": "example.com",
            "co.uk": "co.uk",
            "localhost": "localhost",
            "": "",
        }
        for name, domain in cases.items():
            self.assertEqual(registered_domain(name), domain, name)

    def test_entropy(self):
        """
        Bits per character of the text's character frequencies.
        """
        self.assertEqual(shannon_entropy(""), 0.0)
        self.assertEqual(shannon_entropy("aaaa"), 0.0)
        self.assertAlmostEqual(shannon_entropy("abcd"), 2.0)
        self.assertAlmostEqual(shannon_entropy("aabb"), 1.0)
        self.assertAlmostEqual(shannon_entropy("0123456789abcdef" * 2), 4.0)

    def test_domainList(self):
        """
        A domain and every name under it, any case and final dot given.
        """
        domains = DomainList(["Spamhaus.ORG.", "", "sophosxl.net"])
        self.assertIn("zen.spamhaus.org", domains)
        self.assertIn("spamhaus.org", domains)
        self.assertIn("1.2.3.4.zen.spamhaus.org", domains)
        self.assertNotIn("notspamhaus.org", domains)
        self.assertNotIn("spamhaus.org.example", domains)
        self.assertNotIn("anything.example", DomainList())


class TunnelTests(SynchronousTestCase):
    """
    L{DnsTunnelDetector}.
    """

    def setUp(self):
        self.h = Harness(DnsTunnelDetector, DnsTunnelSettings())
        self.rng = random.Random(4)

    def tunnel(self, start, count, rate=2.0, qtype=16, client=CLIENT, server=RESOLVER,
               domain="tunnel.example", label=50):
        """
        C{count} queries of new encoded names under C{domain}, C{rate} a
        second, checked after each; returns the time after the last.
        """
        ts = start
        for _ in range(count):
            qname = f"{random_label(self.rng, label)}.{random_label(self.rng, 12)}.{domain}"
            self.h.feed(*dns_packet(ts, qname, qtype, src=client, dst=server))
            self.h.tick(ts)
            ts += 1 / rate
        return ts

    def test_tunnel(self):
        """
        Fifty new long base32 names under one domain from one client within
        the window: one dns_tunnel alert, naming the client, the resolver,
        the domain, the counts, the TYPEs and the reasons.
        """
        self.h.tick(1000.0)
        end = self.tunnel(1000.0, 60)
        self.h.tick(end + 1)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.severity, "warning")
        self.assertEqual(alert.src, CLIENT)
        self.assertEqual(alert.dst, RESOLVER)
        self.assertEqual(
            alert.summary,
            "192.0.2.9 asked 60 distinct names under tunnel.example in 60 s "
            "(100% long high-entropy, mostly TXT): possible DNS tunnel")
        ev = alert.evidence
        self.assertEqual(ev["client"], CLIENT)
        self.assertEqual(ev["domain"], "tunnel.example")
        self.assertEqual(ev["server"], RESOLVER)
        self.assertEqual(ev["unique_subdomains"], 60)
        self.assertEqual(ev["queries"], 60)
        self.assertEqual(ev["long_names"], 60)
        self.assertEqual(ev["encoded_names"], 60)
        self.assertEqual(ev["unassessed_names"], 0)
        self.assertEqual(ev["long_label_share"], 1.0)
        self.assertGreater(ev["mean_entropy"], 4.0)
        self.assertEqual(ev["qtypes"], {"TXT": 60})
        self.assertEqual(ev["odd_qtype_names"], 60)
        self.assertEqual(ev["reasons"], ["long_high_entropy_names", "unusual_qtypes"])
        self.assertEqual(ev["thresholds"]["unique_names"], 50)
        self.assertEqual(len(ev["examples"]), 5)
        for name in ev["examples"]:
            self.assertTrue(name.endswith(".tunnel.example"), name)
        self.assertEqual(len(ev["samples"]), 5)
        for line in ev["samples"]:
            self.assertIn("IP 192.0.2.9.40000 > 192.0.2.53.53: udp", line)

    def test_firstAlertAtThreshold(self):
        """
        The alert is raised by the name that makes 50, not before.
        """
        self.h.tick(1000.0)
        end = self.tunnel(1000.0, 49, qtype=1)
        self.assertEqual(self.h.alerts("dns_tunnel"), [])
        self.tunnel(end, 1, qtype=1)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["reasons"], ["long_high_entropy_names"])
        self.assertEqual(alert.evidence["qtypes"], {"A": 50})
        self.assertEqual(alert.evidence["odd_qtype_names"], 0)

    def test_hexLabels(self):
        """
        dnscat2-style hex labels of 30 characters and more look encoded too.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(60):
            sub = random_label(self.rng, 60, "0123456789abcdef")
            self.h.feed(*dns_packet(ts, f"{sub[:30]}.{sub[30:]}.c2.example", 5))
            self.h.tick(ts)
            ts += 0.5
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["domain"], "c2.example")
        self.assertEqual(alert.evidence["qtypes"], {"CNAME": 60})
        self.assertGreaterEqual(alert.evidence["long_label_share"], 0.5)

    def test_unusualTypesShortNames(self):
        """
        Thirty new short names queried with unusual TYPEs (NULL, private
        use) under one domain: an alert for unusual_qtypes alone.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(30):
            self.h.feed(*dns_packet(ts, f"{random_label(self.rng, 8)}.t.example",
                                    10 if i % 2 else 65399))
            self.h.tick(ts)
            ts += 1.0
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.summary,
                         "192.0.2.9 asked 30 distinct names under t.example in 60 s "
                         "(30 of unusual TYPEs, mostly TYPE65399): possible DNS tunnel")
        self.assertEqual(alert.evidence["reasons"], ["unusual_qtypes"])
        self.assertEqual(alert.evidence["qtypes"], {"NULL": 15, "TYPE65399": 15})
        self.assertEqual(alert.evidence["long_names"], 0)
        self.assertEqual(alert.evidence["mean_entropy"], 0.0)
        self.assertEqual(alert.evidence["long_label_share"], 0.0)

    def test_longNames(self):
        """
        Names of 100 characters and more made of short labels look encoded.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(50):
            labels = ".".join(random_label(self.rng, 20) for _ in range(5))
            self.h.feed(*dns_packet(ts, f"{labels}.x.example", 1))
            ts += 0.5
        self.h.tick(ts)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["encoded_names"], 50)

    def test_critical(self):
        """
        500 distinct names in the window make it critical.
        """
        self.h.tick(1000.0)
        end = self.tunnel(1000.0, 520, rate=10.0)
        self.h.tick(end + 1)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.severity, "critical")
        self.assertEqual(alert.evidence["unique_subdomains"], 520)

    def test_ipv6(self):
        """
        An IPv6 client and resolver.
        """
        self.h.tick(1000.0)
        self.tunnel(1000.0, 55, client="2001:db8::9", server="2001:db8::53")
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.src, "2001:db8::9")
        self.assertEqual(alert.dst, "2001:db8::53")
        self.assertIn("IP6 2001:db8::9.40000 > 2001:db8::53.53: udp",
                      alert.evidence["samples"][0])

    def test_repeatsAreNotUnique(self):
        """
        The same names again count as queries, not as new names.
        """
        self.h.tick(1000.0)
        names = [f"{random_label(self.rng, 40)}.t.example" for _ in range(30)]
        ts = 1000.0
        for _ in range(5):
            for name in names:
                self.h.feed(*dns_packet(ts, name, 16))
                ts += 0.05
        self.h.tick(ts)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["unique_subdomains"], 30)
        self.assertEqual(alert.evidence["queries"], 150)
        self.assertEqual(alert.evidence["reasons"], ["unusual_qtypes"])

    def test_oneAlertWhileItGoesOn(self):
        """
        A tunnel going on for five minutes, across half-window swaps, is one
        alert updated; it ends quiet_after (10 s) after the last query,
        with no new alert.
        """
        self.h.tick(1000.0)
        end = self.tunnel(1000.0, 600, rate=2.0)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.state, "active")
        self.assertGreater(alert.revision, 100)
        self.assertEqual(self.h.book.raised, 1)
        for step in range(1, 200):
            self.h.tick(end + step * 0.25)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.state, OVER)
        self.assertGreaterEqual(alert.updated, end + 9.5)
        self.assertLessEqual(alert.updated, end + 10.5)
        self.assertEqual(self.h.book.raised, 1)

    def test_windowForgets(self):
        """
        Names spread more thinly than the window never add up: 40 names a
        minute for five minutes raise nothing.
        """
        self.h.tick(1000.0)
        self.tunnel(1000.0, 200, rate=40 / 60, qtype=1)
        self.assertEqual(self.h.alerts("dns_tunnel"), [])
        self.assertLessEqual(self.h.detector.stats()["names_indexed"], 80)

    def test_cdn(self):
        """
        A client resolving 120 distinct CDN names (akamaiedge, cloudfront),
        A and AAAA, again and again, raises nothing: their labels are short.
        """
        self.h.tick(1000.0)
        names = [f"e{10000 + i}.dscx.akamaiedge.net" for i in range(60)]
        names += [f"d{self.rng.getrandbits(52):013x}.cloudfront.net" for _ in range(60)]
        ts = 1000.0
        for _ in range(3):
            for name in names:
                for qtype in (1, 28):
                    self.h.feed(*dns_packet(ts, name, qtype))
                    self.h.tick(ts)
                    ts += 0.05
        self.assertEqual(self.h.alerts("dns_tunnel"), [])
        flows = list(self.h.detector._flows) + list(self.h.detector._flows_prev)
        self.assertIn(("192.0.2.9", "akamaiedge.net"), [(address_text(c), d) for c, d in flows])

    def test_longCdnLabels(self):
        """
        40 distinct CDN names whose first label is long but one and the same
        per service (``*.edgesuite.net`` style) stay under the threshold.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(40):
            self.h.feed(*dns_packet(ts, f"a{i}.www-example-com-production-static.edgekey.net"))
            ts += 0.1
        self.h.tick(ts)
        self.assertEqual(self.h.alerts("dns_tunnel"), [])

    def test_resolverClients(self):
        """
        A resolver serving 200 clients, each asking four names under 11
        domains, and forwarding them upstream itself (over 50 short names a
        domain): no alert.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(200):
            client, resolver = ((f"198.51.100.{i + 1}", RESOLVER) if i < 150
                                else (f"2001:db8::{i:x}", "2001:db8::53"))
            for j in range(4):
                name = f"{random_label(self.rng, 10)}.site{(i + j) % 11}.example"
                self.h.feed(*dns_packet(ts, name, 1, src=client, dst=resolver))
                self.h.feed(*dns_packet(ts, name, 1, src=RESOLVER, dst=f"203.0.113.{j + 1}",
                                        sport=50000 + j))
            self.h.tick(ts)
            ts += 0.1
        self.assertEqual(self.h.alerts("dns_tunnel"), [])

    def test_mailServer(self):
        """
        A mail server's SPF, DKIM and DMARC TXT lookups across 200 domains:
        a handful of TXT names per domain, no alert.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(200):
            domain = f"sender{i}.example"
            for name in (domain, f"_spf.{domain}", f"selector1._domainkey.{domain}",
                         f"_dmarc.{domain}"):
                self.h.feed(*dns_packet(ts, name, 16))
            self.h.feed(*dns_packet(ts, domain, 15))
            self.h.tick(ts)
            ts += 0.25
        self.assertEqual(self.h.alerts("dns_tunnel"), [])

    def test_dnsbl(self):
        """
        DNSBL lookups: hundreds of reversed addresses under
        zen.spamhaus.org in a minute; short labels, low entropy, no alert.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(400):
            octets = [str(self.rng.randrange(256)) for _ in range(4)]
            self.h.feed(*dns_packet(ts, ".".join(octets) + ".zen.spamhaus.org", 1))
            self.h.tick(ts)
            ts += 0.1
        self.assertEqual(self.h.alerts("dns_tunnel"), [])

    def test_allowDomains(self):
        """
        Hash-based reputation lookups look like a tunnel; allow_domains
        silences them, and only them.
        """
        def lookups(h):
            h.tick(1000.0)
            ts = 1000.0
            for _ in range(80):
                h.feed(*dns_packet(ts, f"{random_label(self.rng, 32)}._email.hashbl.example", 16))
                h.tick(ts)
                ts += 0.5
            return h.alerts("dns_tunnel")

        [alert] = lookups(self.h)
        self.assertEqual(alert.evidence["domain"], "hashbl.example")
        h = Harness(DnsTunnelDetector, DnsTunnelSettings(allow_domains=("HashBL.example.",)))
        self.assertEqual(lookups(h), [])
        self.assertEqual(h.detector.stats()["ignored_queries"], 80)
        self.h = h
        self.tunnel(2000.0, 60)
        [alert] = h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["domain"], "tunnel.example")

    def test_allowAddresses(self):
        """
        The detector's allow-list and the global one silence a client or a
        server.
        """
        for settings, allow in [(DnsTunnelSettings(allow=("192.0.2.9",)), ()),
                                (DnsTunnelSettings(allow=("192.0.2.0/26",)), ()),
                                (DnsTunnelSettings(), ("192.0.2.53",))]:
            self.h = Harness(DnsTunnelDetector, settings)
            self.h.context.allow = Networks(allow)
            self.h.tick(1000.0)
            self.tunnel(1000.0, 60)
            self.assertEqual(self.h.alerts("dns_tunnel"), [])

    def test_ignored(self):
        """
        Responses, other opcodes and questionless messages are not counted.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(60):
            name = f"{random_label(self.rng, 50)}.tunnel.example"
            self.h.feed(*dns_packet(ts, name, 16, src=RESOLVER, dst=CLIENT, qr=1))
            self.h.feed(*dns_packet(ts, name, 16, opcode=5))
            packet, _ = dns_packet(ts, name)
            self.h.feed(packet, DnsMessage(1, False, 0, 0, 0, 0, "", 0))
            ts += 0.5
        self.h.tick(ts)
        self.assertEqual(self.h.alerts("dns_tunnel"), [])
        self.assertEqual(self.h.detector.stats()["queries"], 0)

    def test_escapedNames(self):
        """
        Names with octets written ``\\DDD`` (iodine's raw encodings) are
        measured like others.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(60):
            label = bytes(self.rng.choice([b for b in range(1, 256) if b != 0x2E])
                          for _ in range(40))
            packet, message = dns_packet(ts, label + b".i.example", 10)
            self.assertIn("\\", message.qname)
            self.h.feed(packet, message)
            ts += 0.5
        self.h.tick(ts)
        [alert] = self.h.alerts("dns_tunnel")
        self.assertEqual(alert.evidence["domain"], "i.example")

    def test_bounds(self):
        """
        100,000 random queries keep every table within its bound, and the
        overflows are counted.
        """
        settings = DnsTunnelSettings(names_max=2000, names_per_domain=100, flows_max=500,
                                     facts_max=1000, suspects_max=5)
        h = Harness(DnsTunnelDetector, settings)
        detector = h.detector
        template, _ = dns_packet(1000.0, "x.example")
        rng = random.Random(7)
        domains = [f"d{i}.example" for i in range(50)] + ["big.example"]
        for i in range(100_000):
            packet = copy.copy(template)
            packet.ts = 1000.0 + i * 0.002
            if rng.random() < 0.5:
                packet.saddr = rng.getrandbits(32).to_bytes(4, "big")
            else:
                packet.saddr = bytes([192, 0, 2, rng.randrange(8)])
            domain = rng.choice(domains)
            qname = f"{rng.getrandbits(rng.choice((12, 160))):x}.{domain}"
            message = DnsMessage(i & 0xFFFF, False, 0, 0, 1, 0, qname,
                                 rng.choice((1, 16, 10, 28, rng.randrange(65536))))
            detector.observe_dns(packet, message)
            if i % 250 == 0:
                h.tick(packet.ts)
                self.assertLessEqual(len(detector._seen), 2000)
                self.assertLessEqual(len(detector._seen_prev), 2000)
                self.assertLessEqual(len(detector._flows), 500)
                self.assertLessEqual(len(detector._facts), 1000)
                sampled = 0
                for flow in detector._flows.values():
                    self.assertLessEqual(flow.indexed, 100)
                    self.assertLessEqual(len(flow.qtypes), 16)
                    self.assertLessEqual(len(flow.samples or ()), 5)
                    sampled += flow.samples is not None
                self.assertLessEqual(sampled, 5)
        stats = detector.stats()
        for counter in ("names_unindexed", "flows_dropped", "facts_cleared", "samples_dropped"):
            self.assertGreater(stats[counter], 0, counter)
        self.assertEqual(stats["queries"], 100_000)
        self.assertLessEqual(stats["suspects"], 1000)
        for alert in h.emitted:
            self.assertLessEqual(len(alert.evidence["examples"]), 5)


class NxdomainTests(SynchronousTestCase):
    """
    L{DnsNxdomainDetector}.
    """

    def setUp(self):
        self.h = Harness(DnsNxdomainDetector, DnsNxdomainSettings())
        self.rng = random.Random(5)

    def dga(self, start, count, rate=4.0, client=CLIENT, server=RESOLVER, ok_every=5):
        """
        C{count} NXDOMAIN answers for new random names, each under a domain
        of its own, C{rate} a second, and a NOERROR answer every
        C{ok_every}; checked after each.  Returns the time after the last.
        """
        ts = start
        for i in range(count):
            name = f"{random_label(self.rng, 12, string.ascii_lowercase)}." + (
                "com", "net", "org", "info")[i % 4]
            self.h.feed(*nxdomain(ts, name, client, server))
            if ok_every and i % ok_every == 0:
                self.h.feed(*nxdomain(ts, "www.example.com", client, server, rcode=0))
            self.h.tick(ts)
            ts += 1 / rate
        return ts

    def test_dga(self):
        """
        100 NXDOMAINs for 100 domains in 25 s: one dns_nxdomain_storm alert
        for the client, with counts, share, examples and samples.
        """
        self.h.tick(1000.0)
        end = self.dga(1000.0, 100)
        self.h.tick(end + 1)
        [alert] = self.h.alerts("dns_nxdomain_storm")
        self.assertEqual(alert.severity, "warning")
        self.assertEqual(alert.src, CLIENT)
        self.assertEqual(alert.dst, RESOLVER)
        self.assertEqual(
            alert.summary,
            "192.0.2.9 got 100 NXDOMAIN answers for 100 names under 100 domains in 60 s "
            "(83% of its answers): possible DGA malware")
        ev = alert.evidence
        self.assertEqual(ev["client"], CLIENT)
        self.assertEqual(ev["nxdomains"], 100)
        self.assertEqual(ev["responses"], 120)
        self.assertEqual(ev["nxdomain_share"], 0.833)
        self.assertEqual(ev["distinct_names"], 100)
        self.assertEqual(ev["distinct_domains"], 100)
        self.assertEqual(ev["servers"], [RESOLVER])
        self.assertEqual(ev["thresholds"], {"nxdomains": 50, "domains": 20, "min_share": 0.25,
                                            "resolver_servers": 10})
        self.assertEqual(len(ev["examples"]), 5)
        self.assertEqual(len(ev["samples"]), 5)
        for line in ev["samples"]:
            self.assertIn("IP 192.0.2.53.53 > 192.0.2.9.40000: udp", line)

    def test_threshold(self):
        """
        49 NXDOMAINs raise nothing; the 50th does.
        """
        self.h.tick(1000.0)
        end = self.dga(1000.0, 49)
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])
        self.dga(end, 1)
        [alert] = self.h.alerts("dns_nxdomain_storm")
        self.assertEqual(alert.evidence["nxdomains"], 50)

    def test_ipv6(self):
        """
        An IPv6 client.
        """
        self.h.tick(1000.0)
        self.dga(1000.0, 60, client="2001:db8::9", server="2001:db8::53")
        [alert] = self.h.alerts("dns_nxdomain_storm")
        self.assertEqual(alert.src, "2001:db8::9")

    def test_searchList(self):
        """
        A client whose lookups go through a search list and a Kubernetes
        ``ndots`` expansion gets hundreds of NXDOMAINs, but under a few
        domains: no alert.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        hosts = [f"host{i}" for i in range(10)]
        for _ in range(10):
            for host in hosts:
                for name in (f"{host}.corp.example", f"{host}.example",
                             f"{host}.default.svc.cluster.local", f"{host}.svc.cluster.local",
                             f"{host}.cluster.local", f"{host}.corp.example.com"):
                    for qtype in (1, 28):
                        self.h.feed(*nxdomain(ts, name, qtype=qtype))
                self.h.tick(ts)
                ts += 0.25
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])
        self.assertGreaterEqual(self.h.detector.stats()["nxdomains"], 1000)

    def test_resolverAnswers(self):
        """
        A resolver answering NXDOMAIN to many clients (and one infected
        among them): only the infected client is alerted on.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(600):
            client = f"198.51.100.{i % 200 + 1}"
            tld = ("com", "net")[i % 2]
            name = f"{random_label(self.rng, 8, string.ascii_lowercase)}.example.{tld}"
            self.h.feed(*nxdomain(ts, f"typo{i}.site{i}.com", client, RESOLVER))
            self.h.feed(*nxdomain(ts, name, "198.51.100.250", RESOLVER))
            self.h.tick(ts)
            ts += 0.05
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])
        self.dga(ts, 80, client="198.51.100.77")
        [alert] = self.h.alerts("dns_nxdomain_storm")
        self.assertEqual(alert.src, "198.51.100.77")

    def test_recursiveResolver(self):
        """
        A recursive resolver's own NXDOMAINs come from many servers (every
        zone's): it is not alerted on, and that is counted.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(200):
            name = f"{random_label(self.rng, 10, string.ascii_lowercase)}.com"
            self.h.feed(*nxdomain(ts, name, RESOLVER, f"203.0.113.{i % 30 + 1}"))
            self.h.tick(ts)
            ts += 0.1
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])
        self.assertGreater(self.h.detector.stats()["recursive_skipped"], 0)

    def test_singleLabel(self):
        """
        Single-label names (Chromium's intranet probes) are not domains.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(100):
            self.h.feed(*nxdomain(ts, random_label(self.rng, 10, string.ascii_lowercase)))
            self.h.tick(ts)
            ts += 0.1
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])

    def test_share(self):
        """
        A busy client whose NXDOMAINs are a small share of its answers.
        """
        self.h.tick(1000.0)
        self.dga(1000.0, 60, ok_every=0)
        self.assertEqual(len(self.h.alerts("dns_nxdomain_storm")), 1)
        self.h = Harness(DnsNxdomainDetector, DnsNxdomainSettings())
        self.h.tick(1000.0)
        ts = 1000.0
        for i in range(60):
            for j in range(4):
                self.h.feed(*nxdomain(ts, f"ok{j}.example.com", rcode=0))
            self.h.feed(*nxdomain(ts, f"gone{i}.example{i % 30}.com"))
            self.h.tick(ts)
            ts += 0.25
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])

    def test_repeatedName(self):
        """
        One name failing again and again is not a storm of names.
        """
        self.h.tick(1000.0)
        ts = 1000.0
        for _ in range(200):
            self.h.feed(*nxdomain(ts, "missing.example.com"))
            self.h.tick(ts)
            ts += 0.1
        self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])

    def test_oneAlertWhileItGoesOn(self):
        """
        A storm going on for five minutes is one alert; it ends quiet_after
        after the last NXDOMAIN.
        """
        self.h.tick(1000.0)
        end = self.dga(1000.0, 1200, rate=4.0)
        self.assertEqual(self.h.book.raised, 1)
        for step in range(1, 200):
            self.h.tick(end + step * 0.25)
        [alert] = self.h.alerts("dns_nxdomain_storm")
        self.assertEqual(alert.state, OVER)
        self.assertLessEqual(alert.updated, end + 10.5)
        self.assertEqual(self.h.book.raised, 1)

    def test_allow(self):
        """
        The allow-lists (detector's, global, client or server) and
        allow_domains silence it.
        """
        cases = [(DnsNxdomainSettings(allow=(CLIENT,)), ()),
                 (DnsNxdomainSettings(), (RESOLVER,)),
                 (DnsNxdomainSettings(allow_domains=("com", "net", "org", "info")), ())]
        for settings, allow in cases:
            self.h = Harness(DnsNxdomainDetector, settings)
            self.h.context.allow = Networks(allow)
            self.h.tick(1000.0)
            self.dga(1000.0, 100)
            self.assertEqual(self.h.alerts("dns_nxdomain_storm"), [])
            self.assertEqual(self.h.detector.stats()["ignored"], 100)

    def test_queriesIgnored(self):
        """
        Queries are not responses.
        """
        self.h.tick(1000.0)
        for i in range(100):
            self.h.feed(*dns_packet(1000.0 + i * 0.1, f"x{i}.example{i}.com", rcode=3))
        self.h.tick(1011.0)
        self.assertEqual(self.h.detector.stats()["responses"], 0)

    def test_bounds(self):
        """
        100,000 random responses keep every table within its bound.
        """
        settings = DnsNxdomainSettings(clients_max=300, nx_clients_max=100, names_max=3000,
                                       names_per_client=50, suspects_max=4)
        h = Harness(DnsNxdomainDetector, settings)
        detector = h.detector
        template, _ = nxdomain(1000.0, "x.example")
        rng = random.Random(8)
        for i in range(100_000):
            packet = copy.copy(template)
            packet.ts = 1000.0 + i * 0.002
            if rng.random() < 0.5:
                packet.daddr = rng.getrandbits(128).to_bytes(16, "big")
            else:
                packet.daddr = bytes([192, 0, 2, rng.randrange(8)])
            packet.saddr = bytes([203, 0, 113, rng.randrange(4)])
            qname = f"{rng.getrandbits(24):x}.{rng.getrandbits(20):x}.{rng.choice(('com', 'net'))}"
            message = DnsMessage(i & 0xFFFF, True, 0, rng.choice((0, 3, 3, 2)), 1, 0, qname, 1)
            detector.observe_dns(packet, message)
            if i % 250 == 0:
                h.tick(packet.ts)
                self.assertLessEqual(len(detector._responses), 300)
                self.assertLessEqual(len(detector._clients), 100)
                self.assertLessEqual(detector._stored, 3001)
                stored = sum(len(b.names) + len(b.bases) for b in detector._clients.values())
                self.assertEqual(stored, detector._stored)
                sampled = 0
                for bucket in detector._clients.values():
                    self.assertLessEqual(len(bucket.names), 50)
                    self.assertLessEqual(len(bucket.bases), 50)
                    self.assertLessEqual(len(bucket.all_servers()), 10)
                    sampled += bucket.samples is not None
                self.assertLessEqual(sampled, 4)
        stats = detector.stats()
        for counter in ("clients_dropped", "nx_clients_dropped", "names_unstored",
                        "samples_dropped"):
            self.assertGreater(stats[counter], 0, counter)
        self.assertEqual(stats["responses"], 100_000)
        self.assertTrue(h.emitted)


class SettingsTests(SynchronousTestCase):
    """
    The detectors' TOML tables.
    """

    def test_tables(self):
        """
        Each detector's table reaches it.
        """
        settings = parse_settings(
            "[dns_tunnel]\nunique_names = 20\nallow_domains = ['spamhaus.org']\n"
            "odd_qtypes = [16]\n"
            "[dns_nxdomain]\nnxdomains = 30\nwindow = 120.0\n"
            "[new_listener]\nlisteners_files = []\n")
        detectors = {d.name: d for d in build_detectors(settings, DetectContext())}
        tunnel = detectors["dns_tunnel"]
        self.assertEqual(tunnel.settings.unique_names, 20)
        self.assertEqual(tunnel.settings.odd_qtypes, (16,))
        self.assertIn("zen.spamhaus.org", tunnel._allow_domains)
        self.assertEqual(detectors["dns_nxdomain"].settings.nxdomains, 30)
        self.assertEqual(detectors["dns_nxdomain"]._halves.half, 60.0)

    def test_misspelt(self):
        """
        A misspelt key, or a value out of range, is an error.
        """
        for table in ("[dns_tunnel]\nunique_name = 20\n", "[dns_nxdomain]\nnxdomain = 3\n",
                      "[dns_tunnel]\nallow = ['not an address']\n",
                      "[dns_tunnel]\nwindow = 0.0\n", "[dns_tunnel]\nencoded_share = 1.5\n",
                      "[dns_tunnel]\nodd_qtypes = [70000]\n",
                      "[dns_nxdomain]\nnxdomains = 0\n", "[dns_nxdomain]\nmin_share = -1.0\n"):
            self.assertRaises(ConfigError, parse_settings, table)


class AnalyserTests(SynchronousTestCase):
    """
    Both detectors through the detect analyser: frames in, alerts out.
    """

    def test_analyser(self):
        detect = DetectSettings(gateways=(), detectors={
            "new_listener": {"listeners_files": []}, "dns_nxdomain": {"nxdomains": 20}})
        analyser = DetectAnalyser(AnalyserConfig(detect=detect))
        emitted = []
        analyser.bind_alerts(AlertBook("agent", 1, emit=emitted.append))
        rng = random.Random(9)
        ts = 1000.0
        for i in range(60):
            qname = f"{random_label(rng, 45)}.{random_label(rng, 20)}.tunnel.example"
            packet, _ = dns_packet(ts, qname, 16)
            analyser.observe(packet)
            name = f"{random_label(rng, 10, string.ascii_lowercase)}.example{i}.com"
            packet, _ = nxdomain(ts + 0.01, name, client="192.0.2.10")
            analyser.observe(packet)
            ts += 0.5
        analyser.snapshot(ts, 1.0)
        kinds = {(a.kind, a.src) for a in emitted}
        self.assertEqual(kinds, {("dns_tunnel", CLIENT), ("dns_nxdomain_storm", "192.0.2.10")})
        snapshot = analyser.snapshot(ts + 1, 1.0)
        self.assertEqual(snapshot.detectors["dns_tunnel"]["queries"], 60)
        self.assertEqual(snapshot.detectors["dns_nxdomain"]["nxdomains"], 60)
        self.assertEqual(analyser.errors, 0)
