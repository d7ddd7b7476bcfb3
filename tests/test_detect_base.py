"""
Tests for L{loopy.detect.base}: evidence lines, allow-lists, the host
context and the routing table reader.
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from twisted.trial.unittest import SynchronousTestCase

from loopy.detect.base import DetectContext, Networks, packet_line, read_gateways, tcp_flags_text
from loopy.dissect.headers import ACK, FIN, PSH, SYN, URG, decode

T0 = 1_700_000_000.123456  # 22:13:20.123456 UTC
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def line(layers):
    return packet_line(decode(bytes(Ether(**MACS) / layers), T0))


class PacketLineTests(SynchronousTestCase):
    def test_tcp(self):
        self.assertEqual(
            line(IP(src="192.0.2.9", dst="192.0.2.1") / TCP(sport=4444, dport=80, flags="S")),
            "22:13:20.123456 IP 192.0.2.9.4444 > 192.0.2.1.80: tcp [S] 54")

    def test_udp6(self):
        self.assertEqual(
            line(IPv6(src="2001:db8::9", dst="2001:db8::1") / UDP(sport=5000, dport=53)),
            "22:13:20.123456 IP6 2001:db8::9.5000 > 2001:db8::1.53: udp 62")

    def test_icmp(self):
        self.assertEqual(line(IP(src="192.0.2.9", dst="192.0.2.1") / ICMP(type=8)),
                         "22:13:20.123456 IP 192.0.2.9 > 192.0.2.1: icmp type 8 code 0 42")

    def test_arp(self):
        self.assertEqual(
            line(ARP(op=1, psrc="192.0.2.9", pdst="192.0.2.1", hwsrc=MACS["src"])),
            "22:13:20.123456 ARP Request who-has 192.0.2.1 tell 192.0.2.9 "
            "(02:00:00:00:00:01) 42")
        self.assertEqual(
            line(ARP(op=2, psrc="192.0.2.1", pdst="192.0.2.9", hwsrc=MACS["src"],
                     hwdst=MACS["dst"])),
            "22:13:20.123456 ARP Reply 192.0.2.1 is-at 02:00:00:00:00:01 to 192.0.2.9 "
            "(02:00:00:00:00:02) 42")

    def test_flags(self):
        self.assertEqual(tcp_flags_text(0), "none")
        self.assertEqual(tcp_flags_text(SYN | ACK), "S.")
        self.assertEqual(tcp_flags_text(FIN | PSH | URG), "FPU")


class NetworksTests(SynchronousTestCase):
    def test_match(self):
        nets = Networks(["192.0.2.0/24", "2001:db8::1", "10.0.0.7"])
        self.assertIn(bytes([192, 0, 2, 200]), nets)
        self.assertIn(bytes([10, 0, 0, 7]), nets)
        self.assertNotIn(bytes([10, 0, 0, 8]), nets)
        self.assertIn(bytes.fromhex("20010db8000000000000000000000001"), nets)
        self.assertNotIn(bytes.fromhex("20010db8000000000000000000000002"), nets)
        self.assertNotIn(None, nets)
        self.assertFalse(Networks())

    def test_bad(self):
        self.assertRaises(ValueError, Networks, ["192.0.2.300/24"])


class ContextTests(SynchronousTestCase):
    def test_local(self):
        context = DetectContext(local=Networks(["198.51.100.0/24"]), local_max=1)
        context.learn_local(bytes([192, 0, 2, 1]))
        context.learn_local(bytes([192, 0, 2, 2]))  # past local_max: not learned
        self.assertTrue(context.is_local(bytes([192, 0, 2, 1])))
        self.assertFalse(context.is_local(bytes([192, 0, 2, 2])))
        self.assertTrue(context.is_local(bytes([198, 51, 100, 3])))
        self.assertTrue(context.is_local(bytes([127, 0, 0, 1])))
        self.assertEqual(context.local_addresses, 1)

    def test_allowed(self):
        context = DetectContext(allow=Networks(["192.0.2.10"]))
        self.assertTrue(context.allowed(bytes([192, 0, 2, 10])))
        self.assertFalse(context.allowed(bytes([192, 0, 2, 11])))
        self.assertTrue(context.allowed(bytes([192, 0, 2, 11]), Networks(["192.0.2.11"])))


class GatewayTests(SynchronousTestCase):
    def test_read(self):
        """
        Default routes' gateways, from the kernel's little-endian hex.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("Iface\tDestination\tGateway \tFlags\n"
                    "eth0\t00000000\t0102000A\t0003\n"
                    "eth0\t0000000A\t00000000\t0001\n"
                    "eth1\t00000000\tzz\t0003\n")
        self.assertEqual(read_gateways(path), ["10.0.2.1"])
        self.assertEqual(read_gateways(path + ".missing"), [])
