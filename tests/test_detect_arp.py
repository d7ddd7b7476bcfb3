# -*- test-case-name: tests.test_detect_arp -*-
"""
Tests for L{loopy.detect.arp}: ARP spoofing and gratuitous ARP storms, with
frames built by scapy (bulk frames with C{struct}), decoded by the header
path and fed to L{ArpDetector} or through L{DetectAnalyser}.
"""

from __future__ import annotations

import random
import struct

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from twisted.trial.unittest import SynchronousTestCase

from loopy.analysis.base import AnalyserConfig
from loopy.detect.alerts import AlertBook
from loopy.detect.arp import (
    GATEWAY_MAC_CHANGED, MAC_CHANGED, MAC_CLAIMS_MANY_IPS, UNSOLICITED_REPLIES,
    ArpDetector, ArpSettings, normal_mac,
)
from loopy.detect.base import SAMPLE_PACKETS, DetectContext, Networks
from loopy.detect.host import DetectAnalyser, DetectSettings, detector_plugins, parse_settings
from loopy.dissect.headers import decode
from loopy.errors import ConfigError
from loopy.model import CRITICAL, OVER, WARNING
from loopy.testing import newest_revisions

GW_IP, GW_MAC = "192.0.2.1", "02:00:00:00:00:01"
ME_IP, ME_MAC = "192.0.2.10", "02:00:00:00:00:10"
HOST_IP, HOST_MAC = "192.0.2.20", "02:00:00:00:00:20"
EVIL_MAC = "02:00:00:00:00:66"
NEW_MAC = "02:00:00:00:00:77"
BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
T0 = 1_700_000_000.0


def request(hwsrc, psrc, pdst, eth_src=None, eth_dst=BROADCAST) -> bytes:
    """
    An ARP request (who-has C{pdst} tell C{psrc}) in its Ethernet frame.
    """
    return bytes(Ether(src=eth_src or hwsrc, dst=eth_dst)
                 / ARP(op=1, hwsrc=hwsrc, psrc=psrc, hwdst=ZERO_MAC, pdst=pdst))


def reply(hwsrc, psrc, hwdst, pdst, eth_src=None) -> bytes:
    """
    An ARP reply (C{psrc} is-at C{hwsrc}) to C{hwdst}/C{pdst}, unicast
    unless C{hwdst} is the broadcast address.
    """
    return bytes(Ether(src=eth_src or hwsrc, dst=hwdst)
                 / ARP(op=2, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst, pdst=pdst))


def announcement(hwsrc, ip) -> bytes:
    """
    A gratuitous ARP as RFC 5227 2.3 announces (a request, psrc == pdst).
    """
    return request(hwsrc, ip, ip)


def probe(hwsrc, ip) -> bytes:
    """
    An RFC 5227 2.1.1 probe: sender address 0.0.0.0.
    """
    return request(hwsrc, "0.0.0.0", ip)


_FRAME = struct.Struct("!6s6sHHHBBH6s4s6s4s")


def fast_frame(op, hwsrc, psrc, hwdst, pdst, eth_src=None) -> bytes:
    """
    An Ethernet/ARP frame from raw octets (C{struct}: for bulk tests).
    """
    return _FRAME.pack(b"\xff" * 6, eth_src or hwsrc, 0x0806, 1, 0x0800, 6, 4, op,
                       hwsrc, psrc, hwdst, pdst)


class ArpTestCase(SynchronousTestCase):
    """
    A detector with a gateway, an alert book, and ways to feed them.
    """

    def setUp(self):
        self.emitted = []
        self.book = AlertBook("agent", 1, emit=self.emitted.append)
        self.context = DetectContext(local=Networks([ME_IP]), gateways=[GW_IP])
        self.detector = self.make()

    def make(self, **settings) -> ArpDetector:
        return ArpDetector(ArpSettings(**settings), self.context)

    def feed(self, frame: bytes, ts: float, outgoing=False) -> None:
        packet = decode(frame, ts, outgoing=outgoing)
        self.assertIsNotNone(packet)
        self.detector.observe(packet)

    def check(self, now: float) -> None:
        self.detector.evaluate(now, self.book)
        self.book.sweep(now)

    def replay(self, events, step=0.25) -> None:
        """
        Feed C{(ts, frame)} events in time order, evaluating every C{step}
        seconds of capture time as the detect analyser does.
        """
        next_check = None
        for ts, frame in sorted(events, key=lambda e: e[0]):
            self.feed(frame, ts)
            if next_check is None or ts >= next_check:
                self.check(ts)
                next_check = ts + step

    def alerts(self, kind=None):
        return newest_revisions(self.emitted, kind)

    def reasons(self):
        return sorted((a.kind, a.evidence.get("reason")) for a in self.alerts())

    def busy_lan(self, start, seconds, hosts=50):
        """
        Normal traffic: hosts ask for the gateway and it answers; it asks
        for hosts and they answer; every binding stays put.
        """
        events = []
        for h in range(hosts):
            ip, mac = f"10.0.{h // 200}.{h % 200 + 1}", f"02:00:00:00:01:{h:02x}"
            for k in range(int(seconds // 10)):
                ts = start + h * 0.037 + k * 10
                events.append((ts, request(mac, ip, GW_IP)))
                events.append((ts + 0.0004, reply(GW_MAC, GW_IP, mac, ip)))
                events.append((ts + 5, request(GW_MAC, GW_IP, ip)))
                events.append((ts + 5.0003, reply(mac, ip, GW_MAC, GW_IP)))
        return events


class SpoofTests(ArpTestCase):
    """
    C{arp_spoof}: poisoning, a host's MAC changing, one MAC claiming many
    addresses, unsolicited replies.
    """

    def arpspoof(self, start, seconds):
        """
        arpspoof/bettercap style: every second the attacker tells this host
        that the gateway is at its MAC (unsolicited unicast replies), while
        the gateway answers other hosts' requests and asks for hosts.
        """
        events = [(start + k + 0.5, reply(EVIL_MAC, GW_IP, ME_MAC, ME_IP))
                  for k in range(seconds)]
        for k in range(0, seconds, 3):
            ip, mac = f"192.0.2.{50 + k % 40}", f"02:00:00:00:02:{k % 40:02x}"
            events.append((start + k, request(mac, ip, GW_IP)))
            events.append((start + k + 0.001, reply(GW_MAC, GW_IP, mac, ip)))
        return events

    def test_arpspoof_gateway(self):
        """
        An attacker re-sending replies that claim the gateway's address while
        the gateway keeps answering makes the gateway's binding flip-flop:
        one critical C{gateway_mac_changed} alert aimed at this host, with
        both MACs, the flips, the unsolicited replies and the packets: one
        alert for one attack.
        """
        self.replay(self.busy_lan(T0 - 60, 60) + self.arpspoof(T0, 20))
        [spoof] = [a for a in self.alerts("arp_spoof")
                   if a.evidence["reason"] == GATEWAY_MAC_CHANGED]
        self.assertEqual(spoof.severity, CRITICAL)
        self.assertEqual((spoof.src, spoof.dst), (GW_IP, ME_IP))
        self.assertIn(f"gateway {GW_IP} flip-flops between {GW_MAC} and {EVIL_MAC}",
                      spoof.summary)
        evidence = spoof.evidence
        self.assertEqual(evidence["ip"], GW_IP)
        self.assertTrue(evidence["gateway"])
        self.assertEqual(evidence["macs"], [GW_MAC, EVIL_MAC])
        self.assertEqual(evidence["first_mac"], GW_MAC)
        self.assertGreaterEqual(evidence["flips"], 5)
        self.assertGreaterEqual(evidence["changes"], 10)
        self.assertFalse(evidence["announced"])
        self.assertEqual(evidence["targets"], [ME_IP])
        self.assertTrue(evidence["to_this_host"])
        self.assertEqual(len(evidence["samples"]), SAMPLE_PACKETS)
        self.assertTrue(any(EVIL_MAC in line for line in evidence["samples"]))
        self.assertTrue(any(GW_MAC in line for line in evidence["samples"]))
        self.assertGreaterEqual(evidence["unsolicited_replies"], 19)
        # Nothing else: the gateway answering many hosts claims one address.
        self.assertEqual(self.reasons(), [("arp_spoof", GATEWAY_MAC_CHANGED)])

    def test_unsolicited_replies_for_a_moved_address(self):
        """
        Unsolicited replies for an address whose binding alert holds are
        its evidence; once the binding alert's window is over (the gateway
        silent) while they go on, they are an alert of their own: critical,
        the address being the gateway's.
        """
        self.detector = self.make(window=10.0)
        self.replay(self.busy_lan(T0 - 60, 60)
                    + [(T0 + k + 0.5, reply(EVIL_MAC, GW_IP, ME_MAC, ME_IP))
                       for k in range(30)])
        self.assertEqual(self.reasons(), [("arp_spoof", GATEWAY_MAC_CHANGED),
                                          ("arp_spoof", UNSOLICITED_REPLIES)])
        [unsolicited] = [a for a in self.alerts("arp_spoof")
                         if a.evidence["reason"] == UNSOLICITED_REPLIES]
        self.assertGreaterEqual(unsolicited.ts, T0 + 10.5)
        self.assertEqual(unsolicited.severity, CRITICAL)
        self.assertEqual((unsolicited.src, unsolicited.dst), (GW_IP, ME_IP))
        self.assertEqual(unsolicited.evidence["macs"], [EVIL_MAC])
        self.assertEqual(unsolicited.evidence["other_macs"], [])
        self.assertEqual(unsolicited.evidence["threshold"], 5)
        self.assertRegex(unsolicited.summary, f"^\\d+ unsolicited ARP replies say {GW_IP} "
                                              f"\\(gateway\\) is at {EVIL_MAC} to {ME_IP}$")

    def test_alert_ends(self):
        """
        Once the poisoning stops, the alerts end: the binding alert once its
        changes are older than the window and C{quiet_after} has passed.
        """
        self.replay(self.busy_lan(T0 - 60, 60) + self.arpspoof(T0, 20))
        last = T0 + 19.5
        for k in range(1, 60):
            self.check(last + k)
        [alert] = self.alerts()
        self.assertEqual(alert.state, "active")
        for k in range(60, 100):
            self.check(last + k)
        [spoof] = [a for a in self.emitted if a.state == OVER]
        # The last change (the attacker's at T0 + 18.5, after the gateway's
        # reply at T0 + 18.001) plus the window (60 s) plus quiet_after (10 s).
        self.assertEqual(spoof.updated, T0 + 18.5 + 70)
        self.assertEqual(len(self.book), 0)

    def test_started_during_attack(self):
        """
        When the agent starts after the poisoning began, the attacker's MAC
        is the first one learned; the real gateway answering is the change,
        critical for a gateway, and the attacker's next reply a flip.  The
        target still comes from the unsolicited replies.
        """
        events = [(T0 + k, reply(EVIL_MAC, GW_IP, ME_MAC, ME_IP)) for k in range(8)]
        events += [(T0 + 3.5, request(GW_MAC, GW_IP, HOST_IP))]
        self.replay(events)
        [alert] = [a for a in self.alerts() if a.evidence["reason"] == GATEWAY_MAC_CHANGED]
        self.assertEqual(alert.severity, CRITICAL)
        self.assertEqual(alert.evidence["first_mac"], EVIL_MAC)
        self.assertEqual(alert.evidence["flips"], 1)
        self.assertEqual(alert.dst, ME_IP)

    def test_host_mac_changed(self):
        """
        A host's address answered from another MAC seconds after its own was
        seen: a warning; when the owner speaks again the address flip-flops:
        critical.  The same alert is updated (one per reason and address).
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        self.feed(reply(NEW_MAC, HOST_IP, ME_MAC, ME_IP), T0 + 3)
        self.check(T0 + 3)
        [alert] = self.alerts()
        self.assertEqual((alert.kind, alert.severity), ("arp_spoof", WARNING))
        self.assertEqual((alert.src, alert.dst), (HOST_IP, ME_IP))
        self.assertEqual(alert.summary, f"{HOST_IP} moved from {HOST_MAC} to {NEW_MAC}, "
                                        f"3.0 s after {HOST_MAC} was last seen")
        evidence = alert.evidence
        self.assertEqual(evidence["reason"], MAC_CHANGED)
        self.assertEqual((evidence["old_mac"], evidence["new_mac"]), (HOST_MAC, NEW_MAC))
        self.assertEqual((evidence["changes"], evidence["flips"]), (1, 0))
        self.assertEqual(evidence["seconds_since_old_seen"], 3.0)
        self.assertFalse(evidence["gateway"])
        self.assertEqual(len(evidence["samples"]), 2)

        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0 + 8)
        self.check(T0 + 8)
        self.assertEqual(len(self.alerts()), 1)
        [alert] = self.alerts()
        self.assertEqual(alert.severity, CRITICAL)
        self.assertEqual(alert.evidence["flips"], 1)
        self.assertIn("flip-flops", alert.summary)

    def test_forged_ethernet_source(self):
        """
        A move whose Ethernet source is not the ARP sender MAC (Snort's
        "ethernet/ARP mismatch") is critical, and says so.
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        self.feed(reply(NEW_MAC, HOST_IP, ME_MAC, ME_IP, eth_src=EVIL_MAC), T0 + 3)
        self.check(T0 + 3)
        [alert] = self.alerts()
        self.assertEqual(alert.severity, CRITICAL)
        self.assertTrue(alert.evidence["eth_src_mismatch"])
        self.assertEqual(alert.evidence["eth_src"], [EVIL_MAC])
        self.assertIn(f"(Ethernet source {EVIL_MAC})", alert.summary)
        self.assertEqual(self.detector.stats()["eth_src_mismatches"], 1)

    def test_mac_claims_many_ips(self):
        """
        One MAC naming 20 addresses as its own in a minute: a warning, and
        critical as soon as one of them is also another MAC's.
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        ips = [f"192.0.2.{100 + i}" for i in range(19)]
        for i, ip in enumerate(ips):
            self.feed(reply(EVIL_MAC, ip, ME_MAC, ME_IP), T0 + 200 + i)
            self.feed(request(ME_MAC, ME_IP, ip), T0 + 200 + i - 0.001)
        self.check(T0 + 219)
        [alert] = self.alerts()
        self.assertEqual((alert.kind, alert.severity), ("arp_spoof", WARNING))
        self.assertEqual((alert.src, alert.dst), (EVIL_MAC, None))
        self.assertEqual(alert.summary, f"{EVIL_MAC} claims 19 IPv4 addresses in 60 s")
        self.assertEqual(alert.evidence["reason"], MAC_CLAIMS_MANY_IPS)
        self.assertEqual(alert.evidence["ips"], sorted(ips))
        self.assertEqual(alert.evidence["ips_claimed"], 19)
        self.assertEqual(alert.evidence["threshold"], 16)
        self.assertEqual(len(alert.evidence["samples"]), SAMPLE_PACKETS)

        # Now it takes a host's address too (the host was seen 220 s ago,
        # within rebind_after), and the host is still there.
        self.feed(reply(EVIL_MAC, HOST_IP, ME_MAC, ME_IP), T0 + 220)
        self.feed(request(ME_MAC, ME_IP, HOST_IP), T0 + 219.999)
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0 + 221)
        self.check(T0 + 221)
        [alert] = [a for a in self.alerts() if a.evidence["reason"] == MAC_CLAIMS_MANY_IPS]
        self.assertEqual(alert.severity, CRITICAL)
        self.assertEqual(alert.evidence["conflicts"], [HOST_IP])

    def test_many_ips_window(self):
        """
        Addresses claimed longer ago than the window do not count.
        """
        for i in range(20):
            self.feed(reply(EVIL_MAC, f"192.0.2.{100 + i}", ME_MAC, ME_IP), T0 + 10 * i)
            self.check(T0 + 10 * i)
        self.assertEqual(self.alerts(), [])

    def test_unsolicited_replies(self):
        """
        Replies naming an address that nobody asked for, every 2 s (dsniff's
        arpspoof): alert at the fifth within 10 s.  The attacker's binding is
        the only one known, so this is a warning.
        """
        target = "192.0.2.30"
        for k in range(4):
            self.feed(reply(EVIL_MAC, target, ME_MAC, ME_IP), T0 + 2 * k)
            self.check(T0 + 2 * k)
        self.assertEqual(self.alerts(), [])
        self.feed(reply(EVIL_MAC, target, ME_MAC, ME_IP), T0 + 8)
        self.check(T0 + 8)
        [alert] = self.alerts()
        self.assertEqual((alert.kind, alert.severity), ("arp_spoof", WARNING))
        self.assertEqual((alert.src, alert.dst), (target, ME_IP))
        self.assertEqual(alert.evidence["reason"], UNSOLICITED_REPLIES)
        self.assertEqual(alert.evidence["replies"], 5)
        self.assertEqual(alert.evidence["targets"], [ME_IP])
        self.assertTrue(alert.evidence["to_this_host"])
        self.assertEqual(alert.evidence["other_macs"], [])
        self.assertEqual(len(alert.evidence["samples"]), SAMPLE_PACKETS)
        self.assertEqual(self.detector.stats()["unsolicited_replies"], 5)

    def test_slow_unsolicited_replies(self):
        """
        One unsolicited reply every 3 s stays under 5 in 10 s.
        """
        for k in range(20):
            self.feed(reply(EVIL_MAC, "192.0.2.30", ME_MAC, ME_IP), T0 + 3 * k)
            self.check(T0 + 3 * k)
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["unsolicited_replies"], 20)

    def test_solicited_replies(self):
        """
        A reply is solicited by a request from its target for its sender
        address within C{reply_timeout}; later, or to someone else, not.
        """
        self.feed(request(ME_MAC, ME_IP, HOST_IP), T0)
        self.feed(reply(HOST_MAC, HOST_IP, ME_MAC, ME_IP), T0 + 0.01)
        self.feed(reply(HOST_MAC, HOST_IP, ME_MAC, ME_IP), T0 + 4.9)
        self.assertEqual(self.detector.stats()["unsolicited_replies"], 0)
        self.feed(reply(HOST_MAC, HOST_IP, GW_MAC, GW_IP), T0 + 1)
        self.feed(reply(HOST_MAC, HOST_IP, ME_MAC, ME_IP), T0 + 5.1)
        self.assertEqual(self.detector.stats()["unsolicited_replies"], 2)
        self.check(T0 + 6)
        self.assertEqual(self.detector.stats()["pending"], 0)

    def test_probe_defence_is_solicited(self):
        """
        A reply defending an address against an RFC 5227 probe answers it.
        """
        self.feed(probe(NEW_MAC, HOST_IP), T0)
        self.feed(reply(HOST_MAC, HOST_IP, NEW_MAC, "0.0.0.0"), T0 + 0.01)
        self.assertEqual(self.detector.stats()["unsolicited_replies"], 0)
        self.assertEqual(self.detector.stats()["probes"], 1)

    def test_allow(self):
        """
        The detector's allow-list and the global one silence an address;
        C{allow_macs} silences a MAC's claims, and moves among its MACs.
        """
        events = self.busy_lan(T0 - 60, 60) + self.arpspoof(T0, 20)
        self.detector = self.make(allow=[GW_IP])
        self.replay(events)
        self.assertEqual(self.alerts(), [])

        self.context = DetectContext(allow=Networks(["192.0.2.0/24"]), gateways=[GW_IP])
        self.detector = self.make()
        self.replay(events)
        self.assertEqual(self.alerts(), [])

        self.context = DetectContext(gateways=[GW_IP])
        self.detector = self.make(allow_macs=[EVIL_MAC.upper(), "02-00-00-00-00-01"])
        self.replay(events)
        for i in range(20):
            self.feed(reply(EVIL_MAC, f"198.51.100.{i + 1}", ME_MAC, ME_IP), T0 + 30 + i)
        self.check(T0 + 50)
        self.assertEqual(self.alerts(), [])


class BenignTests(ArpTestCase):
    """
    What a LAN does every day raises nothing.
    """

    def test_busy_lan(self):
        """
        Many hosts asking for the gateway and the gateway answering, and the
        other way round, for two minutes.
        """
        self.replay(self.busy_lan(T0, 120, hosts=200))
        self.assertEqual(self.alerts(), [])
        stats = self.detector.stats()
        self.assertEqual((stats["mac_changes"], stats["unsolicited_replies"]), (0, 0))
        self.assertEqual(stats["ips"], 201)

    def test_dhcp_renewal(self):
        """
        A DHCP renewal (UDP, which this detector is not given) with its ARP
        probe and two announcements, RFC 5227 2.1 and 2.3.
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        self.assertIsNone(decode(bytes(
            Ether(src=HOST_MAC, dst=GW_MAC) / IP(src=HOST_IP, dst=GW_IP)
            / UDP(sport=68, dport=67)), T0 + 1).arp)
        self.replay([(T0 + 1.2, probe(HOST_MAC, HOST_IP)),
                  (T0 + 2.9, announcement(HOST_MAC, HOST_IP)),
                  (T0 + 4.9, announcement(HOST_MAC, HOST_IP))])
        self.check(T0 + 30)
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["probes"], 1)
        self.assertEqual(self.detector.stats()["gratuitous"], 2)

    def test_new_lease_announced(self):
        """
        An address leased to another machine soon after: its probe and
        announcements move the binding once, announced: nothing.
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        self.replay([(T0 + 30, probe(NEW_MAC, HOST_IP)),
                  (T0 + 32, announcement(NEW_MAC, HOST_IP)),
                  (T0 + 34, announcement(NEW_MAC, HOST_IP)),
                  (T0 + 40, request(NEW_MAC, HOST_IP, GW_IP))])
        self.check(T0 + 100)
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["mac_changes"], 1)

    def test_reboot_new_nic(self):
        """
        A host back after ten minutes with a new NIC, without announcing:
        a re-binding, counted, not alerted (arpwatch's "changed ethernet
        address", noise on DHCP networks).
        """
        self.feed(request(HOST_MAC, HOST_IP, GW_IP), T0)
        self.replay([(T0 + 600, request(NEW_MAC, HOST_IP, GW_IP)),
                  (T0 + 600.001, reply(GW_MAC, GW_IP, NEW_MAC, HOST_IP)),
                  (T0 + 700, request(NEW_MAC, HOST_IP, GW_IP))])
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["rebinds"], 1)

    def test_keepalived_failover(self):
        """
        keepalived moving a virtual address to the backup (its own MAC, no
        VRRP virtual MAC): 5 gratuitous ARPs at once, 5 more 5 s later.
        Even the gateway's address moving so is one announced move.
        """
        vip = GW_IP
        self.feed(reply(GW_MAC, vip, ME_MAC, ME_IP), T0 - 0.001)
        self.feed(request(ME_MAC, ME_IP, vip), T0 - 0.002)
        self.feed(request(GW_MAC, vip, HOST_IP), T0 + 1)
        events = [(T0 + 2 + i * 0.001, announcement(NEW_MAC, vip)) for i in range(5)]
        events += [(T0 + 7 + i * 0.001, announcement(NEW_MAC, vip)) for i in range(5)]
        events += [(T0 + 20, request(NEW_MAC, vip, HOST_IP))]
        self.replay(events)
        self.check(T0 + 120)
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["gratuitous"], 10)

    def test_failover_of_many_addresses(self):
        """
        A failover of 60 virtual addresses at once (300 gratuitous ARPs in
        a second, again 5 s later) is a burst, not a sustained storm, and
        the MAC claiming them announced each.
        """
        vips = [f"198.51.100.{i}" for i in range(1, 61)]
        events = []
        for burst in (T0, T0 + 5):
            for i in range(5):
                for j, vip in enumerate(vips):
                    events.append((burst + (i * 60 + j) * 0.0003, announcement(NEW_MAC, vip)))
        self.replay(events)
        self.check(T0 + 30)
        self.assertEqual([a for a in self.alerts() if a.kind == "arp_storm"], [])

    def test_arp_scan(self):
        """
        arp-scan asking for every address of a /24 (requests, one claim) and
        each host answering once.
        """
        events = []
        for i in range(2, 255):
            if i == 10:
                continue
            ip, mac = f"192.0.2.{i}", f"02:00:00:00:03:{i:02x}"
            events.append((T0 + i * 0.002, request(ME_MAC, ME_IP, ip)))
            events.append((T0 + i * 0.002 + 0.0005, reply(mac, ip, ME_MAC, ME_IP)))
        self.replay(events)
        self.assertEqual(self.alerts(), [])


class StormTests(ArpTestCase):
    """
    C{arp_storm}.
    """

    def test_one_mac(self):
        """
        30 gratuitous ARPs a second from one MAC for 3 s: a warning once two
        whole seconds reached the rate.
        """
        events = [(T0 + 0.01 + k / 30, announcement(EVIL_MAC, HOST_IP)) for k in range(90)]
        self.replay(events)
        [alert] = self.alerts("arp_storm")
        self.assertEqual(alert.severity, WARNING)
        self.assertEqual((alert.src, alert.dst), (EVIL_MAC, None))
        self.assertEqual(alert.evidence["mac"], EVIL_MAC)
        self.assertEqual(alert.evidence["per_second"][0], 30)
        self.assertGreaterEqual(min(alert.evidence["per_second"]), 20)
        self.assertEqual(alert.evidence["ips"], [HOST_IP])
        self.assertEqual(alert.evidence["threshold"], 20)
        self.assertEqual(len(alert.evidence["samples"]), SAMPLE_PACKETS)
        self.assertRegex(alert.summary, f"^{EVIL_MAC} sends [23][0-9] gratuitous ARPs a second "
                                        r"or more, for 2 s \(\d+ in all\)$")
        self.assertGreaterEqual(alert.ts, T0 + 1)

    def test_broadcast_replies(self):
        """
        Broadcast replies count as gratuitous; a flood 5 times the rate is
        critical.
        """
        events = [(T0 + k / 120, reply(EVIL_MAC, f"192.0.2.{k % 200 + 1}", BROADCAST,
                                       "0.0.0.0")) for k in range(360)]
        self.replay(events)
        [alert] = self.alerts("arp_storm")
        self.assertEqual(alert.severity, CRITICAL)

    def test_total(self):
        """
        150 MACs each announcing once a second: no MAC storms, the segment
        does.
        """
        events = []
        for k in range(3):
            for m in range(150):
                mac, ip = f"02:00:00:00:04:{m:02x}", f"10.0.{m}.1"
                events.append((T0 + 0.001 + k + m / 150, announcement(mac, ip)))
        self.replay(events)
        [alert] = self.alerts("arp_storm")
        self.assertEqual(alert.severity, WARNING)
        self.assertEqual(alert.src, None)
        self.assertEqual(alert.evidence["senders"], 150)
        self.assertEqual(alert.evidence["per_second"][0], 150)
        self.assertGreaterEqual(min(alert.evidence["per_second"]), 100)
        self.assertRegex(alert.summary,
                         r"^gratuitous ARP storm: 1\d\d a second or more for 2 s from 150 MACs$")

    def test_allow_macs(self):
        """
        An allowed MAC's storm is not one.
        """
        self.detector = self.make(allow_macs=[EVIL_MAC])
        self.replay([(T0 + k / 200, announcement(EVIL_MAC, HOST_IP)) for k in range(600)])
        self.assertEqual(self.alerts(), [])


class RobustnessTests(ArpTestCase):
    """
    Odd packets and memory bounds.
    """

    def test_odd_packets(self):
        """
        ARP for other protocols (no fields), unknown opcodes, probes with a
        zero target, truncated frames: counted or ignored, never raised.
        """
        odd = [
            bytes(Ether(src=HOST_MAC, dst=BROADCAST) / ARP(ptype=0x86DD, plen=16, psrc="::1",
                                                         pdst="::2")),
            bytes(Ether(src=HOST_MAC, dst=BROADCAST) / ARP(op=3, hwsrc=HOST_MAC, psrc=HOST_IP,
                                                         pdst=HOST_IP)),
            request(HOST_MAC, "0.0.0.0", "0.0.0.0"),
            reply(HOST_MAC, "0.0.0.0", BROADCAST, "0.0.0.0"),
            reply(HOST_MAC, "255.255.255.255", ZERO_MAC, "0.0.0.0"),
        ]
        for frame in odd:
            packet = decode(frame, T0)
            if packet is not None:
                self.detector.observe(packet)
        self.assertIsNone(decode(request(HOST_MAC, HOST_IP, GW_IP)[:30], T0))
        self.check(T0 + 1)
        self.assertEqual(self.alerts(), [])
        self.assertEqual(self.detector.stats()["packets"], 4)

    def test_memory_bound(self):
        """
        200,000 random ARP packets (random opcodes, addresses in a /16, MACs
        from a pool, some forged sources) keep every table within its cap
        and count the evictions.
        """
        rng = random.Random(4)
        caps = dict(max_ips=1000, max_macs=500, max_pending=300, max_claims=100,
                    max_ips_per_mac=64)
        self.detector = self.make(**caps)
        macs = [rng.randbytes(6) for _ in range(3000)]
        ts = T0
        for n in range(200_000):
            ts += 0.0005
            hwsrc = rng.choice(macs)
            psrc = b"\x0a\x00" + rng.randbytes(2)
            pdst = psrc if rng.random() < 0.1 else b"\x0a\x00" + rng.randbytes(2)
            op = rng.choice((1, 2, 2, 7))
            eth = rng.choice(macs) if rng.random() < 0.01 else None
            frame = fast_frame(op, hwsrc, psrc, rng.choice((b"\xff" * 6, b"\0" * 6, hwsrc)),
                               pdst, eth)
            self.detector.observe(decode(frame, ts))
            if n % 500 == 0:
                self.check(ts)
        self.check(ts)
        d = self.detector
        stats = d.stats()
        self.assertEqual(stats["packets"], 200_000)
        self.assertLessEqual(stats["ips"], 1000)
        self.assertLessEqual(stats["macs"], 500)
        self.assertLessEqual(stats["pending"], 300)
        self.assertLessEqual(stats["claims"], 100)
        self.assertLessEqual(stats["suspects"], 1000)
        for key in ("ips_evicted", "macs_evicted", "pending_evicted", "claims_evicted",
                    "mac_changes", "unsolicited_replies", "eth_src_mismatches"):
            self.assertGreater(stats[key], 0, key)
        self.assertTrue(all(len(s.ips) <= 64 for s in d._senders.values()))
        self.assertTrue(all(b.macs is None or len(b.macs) <= 8 for b in d._ips.values()))
        self.assertTrue(all(len(c.macs) <= 8 and len(c.targets) <= 50
                            for c in d._claims.values()))
        self.assertLessEqual(len(d._garp_active), 500)
        self.assertLessEqual(len(d._many), 500)

    def test_many_ips_overflow(self):
        """
        A MAC claiming more addresses than it may remember: the rest are
        counted, and the window makes room again.
        """
        self.detector = self.make(max_ips_per_mac=20)
        for i in range(30):
            self.feed(announcement(EVIL_MAC, f"10.1.0.{i}"), T0 + i * 0.01)
        self.assertEqual(self.detector.stats()["ips_per_mac_overflow"], 10)
        self.check(T0 + 1)
        [alert] = self.alerts()
        self.assertEqual(alert.evidence["ips_claimed"], 20)
        self.assertEqual(alert.evidence["not_kept"], 10)
        self.check(T0 + 62)
        self.feed(announcement(EVIL_MAC, "10.1.1.1"), T0 + 62)
        self.assertEqual(self.detector.stats()["ips_per_mac_overflow"], 10)


class SettingsTests(SynchronousTestCase):
    """
    The C{[arp]} table.
    """

    def test_plugin(self):
        """
        The plugin declares the detector.
        """
        self.assertIs(detector_plugins()["arp"].detector_class(), ArpDetector)

    def test_toml(self):
        """
        A TOML table reaches the detector, MACs normalised.
        """
        settings = parse_settings(
            '[detect]\ngateways = ["192.0.2.1"]\n'
            '[arp]\nmany_ips = 8\nwindow = 30.0\nallow_macs = ["02-00-00-00-00-AA"]\n')
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        [detector] = [d for d in analyser.detectors if d.name == "arp"]
        self.assertEqual((detector.settings.many_ips, detector.settings.window), (8, 30.0))
        self.assertEqual(detector.settings.allow_macs, ("02:00:00:00:00:aa",))

    def test_bad(self):
        """
        A misspelt key, a bad MAC, a threshold that could never be reached,
        or a zero window are errors.
        """
        for table in ["many_ip = 8", 'allow_macs = ["02:00:00:00:00"]',
                      "max_ips_per_mac = 4", "window = 0.0", "storm_seconds = 0"]:
            with self.assertRaises(ConfigError, msg=table) as e:
                parse_settings(f"[arp]\n{table}\n")
            self.assertIn("[arp]", str(e.exception))

    def test_normal_mac(self):
        self.assertEqual(normal_mac("001A.2B3C.4D5E"), "00:1a:2b:3c:4d:5e")
        self.assertRaises(ValueError, normal_mac, "00:1a:2b:3c:4d:5g")

    def test_analyser(self):
        """
        Through the detect analyser: arpspoof against this host raises the
        gateway alert, and the snapshot carries the detector's stats.
        """
        settings = DetectSettings(gateways=(GW_IP,), detectors={"arp": {"unsolicited": 3}})
        analyser = DetectAnalyser(AnalyserConfig(detect=settings))
        frames = [(T0, request(ME_MAC, ME_IP, GW_IP)),
                  (T0 + 0.001, reply(GW_MAC, GW_IP, ME_MAC, ME_IP))]
        frames += [(T0 + 6 + k, reply(EVIL_MAC, GW_IP, ME_MAC, ME_IP)) for k in range(5)]
        for ts, frame in frames:
            analyser.observe(decode(frame, ts))
        alert = analyser.book.active("arp_spoof", (GATEWAY_MAC_CHANGED, GW_IP))
        self.assertEqual(alert.severity, CRITICAL)
        self.assertEqual(alert.dst, ME_IP)
        self.assertEqual(alert.evidence["unsolicited_replies"], 5)
        self.assertEqual(len(analyser.book), 1)
        snapshot = analyser.snapshot(T0 + 11, 1.0)
        self.assertEqual(snapshot.detectors["arp"]["packets"], 7)
        self.assertEqual(snapshot.detectors["arp"]["unsolicited_replies"], 5)
