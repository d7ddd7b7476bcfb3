# -*- test-case-name: tests.test_headers -*-
"""
Tests for L{loopy.dissect.headers}: the fast header path on real bytes.

Frames come from two sources: bytes captured on ``lo`` with ``tcpdump -w``
(pasted below as hex), and frames built with scapy's layers.  Every decoded
frame is compared with scapy's own dissection of the same bytes.
"""

from __future__ import annotations

import logging
import random
import struct

from scapy.config import conf
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    _ICMPv6,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Padding, Raw
from twisted.trial.unittest import SynchronousTestCase

from loopy.dissect.headers import (
    ACK,
    CWR,
    ECE,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    FIN,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    PSH,
    RST,
    SYN,
    URG,
    ArpFields,
    address_text,
    decode,
    mac_text,
)

# Captured on lo with ``tcpdump -i lo -w`` (libpcap 1.10.3, Linux 6.18):
# (ts in seconds, frame as hex).  Checksums read "incorrect" because the
# kernel leaves them to (absent) offload hardware on lo.

#: 127.0.0.1:56304 connects to 127.0.0.1:8080, sends b"hello\n", receives
#: b"world!\n"; the client closes first, then the server.
LO_TCP_SESSION = (
    (0.823664, "00000000000000000000000008004500003ccf7a400040066d3f7f0000017f"
               "000001dbf01f90396cf6e400000000a002ffd7fe3000000204ffd70402080a"
               "1ed79a7d000000000103030a"),
    (0.823676, "00000000000000000000000008004500003c0000400040063cba7f0000017f"
               "0000011f90dbf0e8c6896f396cf6e5a012ffcbfe3000000204ffd70402080a"
               "d93da45b1ed79a7d0103030a"),
    (0.823689, "000000000000000000000000080045000034cf7b400040066d467f0000017f"
               "000001dbf01f90396cf6e5e8c6897080100040fe2800000101080a1ed79a7d"
               "d93da45b"),
    (0.823998, "00000000000000000000000008004500003acf7c400040066d3f7f0000017f"
               "000001dbf01f90396cf6e5e8c6897080180040fe2e00000101080a1ed79a7e"
               "d93da45b68656c6c6f0a"),
    (0.824009, "0000000000000000000000000800450000346be040004006d0e17f0000017f"
               "0000011f90dbf0e8c68970396cf6eb80100040fe2800000101080ad93da45c"
               "1ed79a7e"),
    (0.824050, "00000000000000000000000008004500003b6be140004006d0d97f0000017f"
               "0000011f90dbf0e8c68970396cf6eb80180040fe2f00000101080ad93da45c"
               "1ed79a7e776f726c64210a"),
    (0.824069, "000000000000000000000000080045000034cf7d400040066d447f0000017f"
               "000001dbf01f90396cf6ebe8c6897780100040fe2800000101080a1ed79a7e"
               "d93da45c"),
    (0.924200, "000000000000000000000000080045000034cf7e400040066d437f0000017f"
               "000001dbf01f90396cf6ebe8c6897780110040fe2800000101080a1ed79ae2"
               "d93da45c"),
    (0.965846, "0000000000000000000000000800450000346be240004006d0df7f0000017f"
               "0000011f90dbf0e8c68977396cf6ec80100040fe2800000101080ad93da4ea"
               "1ed79ae2"),
    (1.024228, "0000000000000000000000000800450000346be340004006d0de7f0000017f"
               "0000011f90dbf0e8c68977396cf6ec80110040fe2800000101080ad93da524"
               "1ed79ae2"),
    (1.024246, "0000000000000000000000000800450000340000400040063cc27f0000017f"
               "000001dbf01f90396cf6ece8c6897880100040a1e100000101080a1ed79b46"
               "d93da524"),
)

#: ``dig @127.0.0.1 -p 5353 +noedns nosuch.example A`` and a responder that
#: answered NXDOMAIN (id 0x8d83).
LO_DNS_NXDOMAIN = (
    (1.235466, "00000000000000000000000008004500003ce0a8000040119c067f0000017f"
               "000001a09b14e90028fe3b8d8301200001000000000000066e6f7375636807"
               "6578616d706c650000010001"),
    (1.235748, "00000000000000000000000008004500003c9d05400040119fa97f0000017f"
               "00000114e9a09b0028fe3b8d8381830001000000000000066e6f7375636807"
               "6578616d706c650000010001"),
)

#: An ICMP echo request to 127.0.0.1 (id 0x1234, seq 1) and the reply.
LO_ICMP_ECHO = (
    (1.447882, "0000000000000000000000000800450000261fb2400040011d237f0000017f"
               "0000010800b1ec123400016c6f6f70792d70696e67"),
    (1.447898, "0000000000000000000000000800450000261fb3000040015d227f0000017f"
               "0000010000b9ec123400016c6f6f70792d70696e67"),
)

#: An ICMPv6 echo request to ::1 (id 0x1234, seq 1) and the reply.
LO_ICMPV6_ECHO = (
    (1.648147, "00000000000000000000000086dd600de41c00123a40000000000000000000"
               "00000000000001000000000000000000000000000000018000399e12340001"
               "6c6f6f70792d70696e67"),
    (1.648162, "00000000000000000000000086dd600b633e00123a40000000000000000000"
               "00000000000001000000000000000000000000000000018100389e12340001"
               "6c6f6f70792d70696e67"),
)

LO_FRAMES = LO_TCP_SESSION + LO_DNS_NXDOMAIN + LO_ICMP_ECHO + LO_ICMPV6_ECHO

_MAC_A = "02:00:00:00:00:0a"
_MAC_B = "02:00:00:00:00:0b"
_IPV6_EXTENSIONS = (
    IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
)


def _ether(**fields) -> Ether:
    """
    An Ethernet header with both addresses given, so that scapy never
    resolves one (which would send ARP or neighbour solicitations).
    """
    return Ether(src=_MAC_A, dst=_MAC_B, **fields)


def frame_of(hexed: str) -> bytes:
    """
    The bytes of a captured frame written as hex.
    """
    return bytes.fromhex(hexed)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _transport_payload(layer) -> bytes:
    """
    The bytes after a scapy transport layer, without link-layer padding.
    """
    data = bytes(layer.payload)
    padding = layer.getlayer(Padding)
    if padding is not None:
        data = data[: len(data) - len(padding.load)]
    return data


def scapy_view(frame: bytes, linktype: int = LINKTYPE_ETHERNET) -> dict:
    """
    The L{PacketSummary} fields of C{frame} as scapy's dissection sees them.

    :returns: field name to value, for the fields scapy knows.
    """
    if linktype == LINKTYPE_RAW:
        packet = (IP if frame[0] >> 4 == 4 else IPv6)(frame)
    else:
        packet = Ether(frame)
    view = {"wire_len": len(frame)}
    layer = packet
    if isinstance(layer, Ether):
        view.update(eth_src=_mac(layer.src), eth_dst=_mac(layer.dst),
                    ethertype=layer.type, vlan=None)
        layer = layer.payload
        while isinstance(layer, Dot1Q):  # Dot1AD is a Dot1Q
            if view["vlan"] is None:
                view["vlan"] = layer.vlan
            view["ethertype"] = layer.type
            layer = layer.payload
    else:
        view.update(eth_src=None, eth_dst=None, vlan=None)
    fragment = False
    if isinstance(layer, IP):
        fragment = layer.frag != 0
        view.update(ip_version=4, src=layer.src, dst=layer.dst,
                    proto=layer.proto, ip_len=layer.len, ttl=layer.ttl,
                    fragment=fragment)
        layer = layer.payload
    elif isinstance(layer, IPv6):
        view.update(ip_version=6, src=layer.src, dst=layer.dst,
                    ip_len=40 + layer.plen, ttl=layer.hlim)
        proto = layer.nh
        layer = layer.payload
        while isinstance(layer, _IPV6_EXTENSIONS):
            proto = layer.nh
            if isinstance(layer, IPv6ExtHdrFragment) and layer.offset:
                fragment = True
            layer = layer.payload
        view.update(proto=proto, fragment=fragment)
    elif isinstance(layer, ARP):
        view.update(ip_version=0, src=None, dst=None, proto=-1,
                    arp=ArpFields(op=layer.op, hwsrc=layer.hwsrc,
                                  psrc=layer.psrc, hwdst=layer.hwdst,
                                  pdst=layer.pdst))
        return view
    else:
        view.update(ip_version=0, src=None, dst=None, proto=-1)
        return view
    if fragment:
        view.update(sport=0, dport=0, flags=0)
    elif isinstance(layer, TCP):
        view.update(sport=layer.sport, dport=layer.dport,
                    flags=int(layer.flags), seq=layer.seq, ack=layer.ack,
                    window=layer.window, payload=_transport_payload(layer))
    elif isinstance(layer, UDP):
        view.update(sport=layer.sport, dport=layer.dport, flags=0,
                    payload=_transport_payload(layer))
    elif isinstance(layer, (ICMP, _ICMPv6)):
        view.update(icmp_type=layer.type, icmp_code=layer.code, sport=0,
                    dport=0)
    return view


class _ScapyIcmpNoise(logging.Filter):
    """
    Drops the one error scapy logs with C{debug_dissector} on for every
    ICMP message that is not an error: its ICMP layer guesses no payload
    class (None) where other layers guess Raw, and scapy then uses Raw.
    """

    def filter(self, record):
        return "ICMP.guess_payload_class() returned [None]" not in record.getMessage()


class DissectorTestMixin:
    """
    Turns on scapy's C{debug_dissector} so that a broken layer fails loudly
    instead of turning into Raw (STYLE.md, Tests).
    """

    _noise = _ScapyIcmpNoise()

    def setUp(self):
        super().setUp()
        self._debugDissector = conf.debug_dissector
        conf.debug_dissector = True
        logging.getLogger("scapy.runtime").addFilter(self._noise)

    def tearDown(self):
        logging.getLogger("scapy.runtime").removeFilter(self._noise)
        conf.debug_dissector = self._debugDissector
        super().tearDown()


class HeaderTestCase(DissectorTestMixin, SynchronousTestCase):
    """
    Helpers shared by the decode tests.
    """

    def decodeAgreeing(self, frame, linktype=LINKTYPE_ETHERNET, **kwargs):
        """
        Decode C{frame} and assert that every field scapy also dissects has
        scapy's value.

        :returns: the summary.
        """
        summary = decode(frame, 1.5, linktype=linktype, **kwargs)
        self.assertIsNotNone(summary)
        for name, expected in scapy_view(frame, linktype).items():
            self.assertEqual(getattr(summary, name), expected, name)
        self.assertEqual(summary.frame, frame)
        return summary


class CapturedFramesTests(HeaderTestCase):
    """
    Frames captured on C{lo}.
    """

    def test_everyCapturedFrameAgreesWithScapy(self):
        """
        Every captured frame decodes, and to what scapy dissects.
        """
        for ts, hexed in LO_FRAMES:
            summary = self.decodeAgreeing(frame_of(hexed))
            self.assertEqual(summary.ts, 1.5)

    def test_syn(self):
        """
        A captured SYN with options: ports, flags, sequence numbers, window,
        and a payload offset past the 20 octets of TCP options.
        """
        ts, hexed = LO_TCP_SESSION[0]
        summary = decode(frame_of(hexed), ts, 3, True)
        self.assertEqual(
            (summary.ts, summary.ifindex, summary.outgoing, summary.wire_len),
            (0.823664, 3, True, 74),
        )
        self.assertEqual(summary.eth_src, b"\x00" * 6)
        self.assertEqual(summary.eth_dst, b"\x00" * 6)
        self.assertEqual(
            (summary.ethertype, summary.vlan, summary.ip_version, summary.src,
             summary.dst, summary.proto, summary.ip_len, summary.ttl,
             summary.fragment),
            (ETH_P_IP, None, 4, "127.0.0.1", "127.0.0.1", 6, 60, 64, False),
        )
        self.assertEqual(
            (summary.sport, summary.dport, summary.flags, summary.seq,
             summary.ack, summary.window),
            (56304, 8080, SYN, 963442404, 0, 65495),
        )
        self.assertEqual((summary.payload_offset, summary.payload_len), (74, 0))
        self.assertEqual((summary.icmp_type, summary.icmp_code), (-1, -1))
        self.assertIsNone(summary.arp)

    def test_dataSegment(self):
        """
        The client's data segment: its payload is the six octets it sent.
        """
        summary = decode(frame_of(LO_TCP_SESSION[3][1]), 0.0)
        self.assertEqual(summary.flags, PSH | ACK)
        self.assertEqual((summary.seq, summary.ack), (963442405, 3905325424))
        self.assertEqual((summary.payload_offset, summary.payload_len), (66, 6))
        self.assertEqual(summary.payload, b"hello\n")

    def test_finSegments(self):
        """
        Both FINs of the captured close carry FIN|ACK.
        """
        flags = [decode(frame_of(h), t).flags for t, h in LO_TCP_SESSION]
        self.assertEqual(
            flags,
            [SYN, SYN | ACK, ACK, PSH | ACK, ACK, PSH | ACK, ACK, FIN | ACK,
             ACK, FIN | ACK, ACK],
        )

    def test_udp(self):
        """
        The captured DNS query over UDP: ports and the 32-octet message.
        """
        summary = decode(frame_of(LO_DNS_NXDOMAIN[0][1]), 0.0)
        self.assertEqual((summary.proto, summary.sport, summary.dport),
                         (17, 41115, 5353))
        self.assertEqual((summary.payload_offset, summary.payload_len), (42, 32))
        self.assertEqual(summary.payload[:4], b"\x8d\x83\x01\x20")
        self.assertEqual((summary.flags, summary.seq, summary.icmp_type),
                         (0, 0, -1))

    def test_icmp(self):
        """
        The captured echo request and reply: type, code, and the body after
        the 4-octet ICMP header (identifier, sequence number, data).
        """
        request, reply = [decode(frame_of(h), t) for t, h in LO_ICMP_ECHO]
        self.assertEqual((request.proto, request.icmp_type, request.icmp_code),
                         (1, 8, 0))
        self.assertEqual((reply.icmp_type, reply.icmp_code), (0, 0))
        self.assertEqual(request.payload, b"\x12\x34\x00\x01loopy-ping")
        self.assertEqual((request.sport, request.dport), (0, 0))

    def test_icmpv6(self):
        """
        The captured ICMPv6 echo request and reply on ::1.
        """
        request, reply = [decode(frame_of(h), t) for t, h in LO_ICMPV6_ECHO]
        self.assertEqual(
            (request.ethertype, request.ip_version, request.src, request.dst,
             request.proto, request.ip_len, request.ttl),
            (ETH_P_IPV6, 6, "::1", "::1", 58, 58, 64),
        )
        self.assertEqual((request.icmp_type, request.icmp_code), (128, 0))
        self.assertEqual((reply.icmp_type, reply.icmp_code), (129, 0))
        self.assertEqual(request.payload, b"\x12\x34\x00\x01loopy-ping")

    def test_addressOctets(self):
        """
        The addresses are kept as their octets (C{saddr}, C{daddr}), the
        keys analysers use; C{src} and C{dst} are their text.
        """
        tcp = decode(frame_of(LO_TCP_SESSION[0][1]), 0.0)
        self.assertEqual((tcp.saddr, tcp.daddr), (b"\x7f\x00\x00\x01",) * 2)
        icmpv6 = decode(frame_of(LO_ICMPV6_ECHO[0][1]), 0.0)
        self.assertEqual((icmpv6.saddr, icmpv6.daddr), (b"\x00" * 15 + b"\x01",) * 2)
        self.assertEqual((icmpv6.src, icmpv6.dst), ("::1", "::1"))

    def test_repr(self):
        """
        A summary's repr names its fields, the frame left out.
        """
        text = repr(decode(frame_of(LO_DNS_NXDOMAIN[0][1]), 1.5))
        self.assertTrue(text.startswith("PacketSummary(ts=1.5, ifindex=0, "), text)
        self.assertIn("saddr=b'\\x7f\\x00\\x00\\x01'", text)
        self.assertNotIn("frame=", text)

    def test_everyTruncationOfATcpFrame(self):
        """
        A TCP frame cut anywhere before its end is malformed (its IP length
        runs past the frame); only the whole frame decodes.
        """
        frame = frame_of(LO_TCP_SESSION[3][1])
        decoded = [
            n for n in range(len(frame) + 1) if decode(frame[:n], 0.0) is not None
        ]
        self.assertEqual(decoded, [len(frame)])

    def test_everyTruncationOfAnIcmpv6Frame(self):
        """
        The same for IPv6.
        """
        frame = frame_of(LO_ICMPV6_ECHO[0][1])
        decoded = [
            n for n in range(len(frame) + 1) if decode(frame[:n], 0.0) is not None
        ]
        self.assertEqual(decoded, [len(frame)])


class LinkLayerTests(HeaderTestCase):
    """
    Ethernet, VLAN tags, ARP, raw IP links and unknown ethertypes.
    """

    def test_ethernet(self):
        """
        The MAC addresses come out as the 6 octets of the header.
        """
        frame = bytes(Ether(src=_MAC_A, dst=_MAC_B) / IP(src="192.0.2.1",
                      dst="198.51.100.7", ttl=17) / UDP(sport=1, dport=2))
        summary = self.decodeAgreeing(frame)
        self.assertEqual(summary.eth_src, b"\x02\x00\x00\x00\x00\x0a")
        self.assertEqual(summary.eth_dst, b"\x02\x00\x00\x00\x00\x0b")
        self.assertEqual((summary.src, summary.dst, summary.ttl),
                         ("192.0.2.1", "198.51.100.7", 17))

    def test_singleVlanTag(self):
        """
        An 802.1Q tag moves the IP header by 4 octets; the VLAN id (12 bits,
        without priority and DEI) is reported.
        """
        frame = bytes(
            Ether(src=_MAC_A, dst=_MAC_B) / Dot1Q(vlan=100, prio=5, dei=1)
            / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80)
            / Raw(b"GET")
        )
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.vlan, summary.ethertype), (100, ETH_P_IP))
        self.assertEqual((summary.payload_offset, summary.payload), (58, b"GET"))

    def test_doubleVlanTag(self):
        """
        With 802.1ad QinQ the outer (service) VLAN id is reported and the
        inner ethertype is the frame's.
        """
        frame = bytes(
            Ether(src=_MAC_A, dst=_MAC_B) / Dot1AD(vlan=10) / Dot1Q(vlan=20)
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / UDP(sport=4000, dport=4001) / Raw(b"xyz")
        )
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.vlan, summary.ethertype), (10, ETH_P_IPV6))
        self.assertEqual((summary.payload_offset, summary.payload),
                         (14 + 8 + 40 + 8, b"xyz"))

    def test_doubleDot1qTag(self):
        """
        Two 802.1Q tags (0x8100 outside too) are walked the same way.
        """
        frame = bytes(_ether() / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IP()
                      / TCP(sport=9, dport=10))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.vlan, summary.sport), (7, 9))

    def test_thirdVlanTag(self):
        """
        A third tag is past what the parser walks: the frame decodes with
        link fields only, its ethertype the third tag's.
        """
        frame = bytes(_ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3)
                      / IP() / TCP())
        summary = decode(frame, 0.0)
        self.assertEqual((summary.vlan, summary.ethertype, summary.ip_version,
                          summary.proto, summary.src),
                         (1, ETH_P_8021Q, 0, -1, None))
        self.assertEqual((summary.payload_offset, summary.payload_len),
                         (22, len(frame) - 22))

    def test_truncatedVlanTag(self):
        """
        A frame that ends inside its VLAN tag is malformed.
        """
        frame = bytes(_ether() / Dot1Q(vlan=1) / IP())
        self.assertIsNone(decode(frame[:16], 0.0))

    def test_arpRequest(self):
        """
        An ARP request: its fields as text, no IP fields.
        """
        frame = bytes(Ether(src=_MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=_MAC_A, psrc="192.0.2.1", hwdst="00:00:00:00:00:00",
            pdst="192.0.2.254"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual(summary.arp, ArpFields(
            op=1, hwsrc=_MAC_A, psrc="192.0.2.1", hwdst="00:00:00:00:00:00",
            pdst="192.0.2.254"))
        self.assertEqual((summary.ethertype, summary.ip_version, summary.proto,
                          summary.ip_len, summary.sport),
                         (ETH_P_ARP, 0, -1, 0, 0))

    def test_arpReplyTaggedAndPadded(self):
        """
        An ARP reply in a VLAN, padded to the 60-octet Ethernet minimum.
        """
        frame = bytes(Ether(src=_MAC_B, dst=_MAC_A) / Dot1Q(vlan=3) / ARP(
            op=2, hwsrc=_MAC_B, psrc="192.0.2.254", hwdst=_MAC_A,
            pdst="192.0.2.1")) + b"\x00" * 14
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.arp.op, summary.vlan, summary.wire_len),
                         (2, 3, 60))

    def test_arpForOtherProtocols(self):
        """
        ARP for other than Ethernet/IPv4 decodes without ARP fields.
        """
        frame = bytes(_ether() / ARP(hwtype=6, ptype=0x86DD, plen=16,
                                    psrc="::1", pdst="::2"))
        summary = decode(frame, 0.0)
        self.assertEqual((summary.ethertype, summary.arp), (ETH_P_ARP, None))

    def test_truncatedArp(self):
        """
        An Ethernet/IPv4 ARP packet cut short of its 28 octets is malformed.
        """
        frame = bytes(_ether() / ARP())
        self.assertIsNone(decode(frame[:14 + 27], 0.0))
        self.assertIsNone(decode(frame[:14 + 7], 0.0))
        self.assertIsNotNone(decode(frame[:14 + 28], 0.0))

    def test_unknownEthertype(self):
        """
        An ethertype the parser does not know (LLDP here) gives the link
        fields only; the rest of the frame is the payload.
        """
        frame = bytes(Ether(src=_MAC_A, dst=_MAC_B, type=0x88CC)) + b"\x02\x07lldp"
        summary = self.decodeAgreeing(frame)
        self.assertEqual(
            (summary.ethertype, summary.ip_version, summary.src, summary.dst,
             summary.proto, summary.ip_len, summary.sport, summary.flags,
             summary.icmp_type, summary.arp),
            (0x88CC, 0, None, None, -1, 0, 0, 0, -1, None),
        )
        self.assertEqual((summary.payload_offset, summary.payload),
                         (14, b"\x02\x07lldp"))

    def test_ieee8023LengthField(self):
        """
        An 802.3 frame (a length, not an ethertype, after the addresses)
        decodes with link fields only.
        """
        frame = bytes(_ether(type=6)) + b"\x42\x42\x03abc"
        summary = decode(frame, 0.0)
        self.assertEqual((summary.ethertype, summary.ip_version), (6, 0))

    def test_shortEthernet(self):
        """
        Fewer than 14 octets is no Ethernet frame.
        """
        for n in range(14):
            self.assertIsNone(decode(b"\x01" * n, 0.0))
        self.assertEqual(decode(b"\x01" * 14, 0.0).ethertype, 0x0101)

    def test_rawIpv4(self):
        """
        On a raw IP link the frame starts at the IPv4 header: no MACs, and
        offsets count from the IP header.
        """
        frame = bytes(IP(src="10.1.1.1", dst="10.2.2.2") / TCP(
            sport=5555, dport=443, flags="S", seq=7) / Raw(b"early"))
        summary = self.decodeAgreeing(frame, LINKTYPE_RAW)
        self.assertEqual((summary.eth_src, summary.eth_dst, summary.vlan,
                          summary.ethertype),
                         (None, None, None, ETH_P_IP))
        self.assertEqual((summary.payload_offset, summary.payload),
                         (40, b"early"))

    def test_rawIpv6(self):
        """
        The same for IPv6.
        """
        frame = bytes(IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2)
                      / Raw(b"q"))
        summary = self.decodeAgreeing(frame, LINKTYPE_RAW)
        self.assertEqual((summary.ethertype, summary.payload_offset,
                          summary.payload),
                         (ETH_P_IPV6, 48, b"q"))

    def test_rawUnknownVersion(self):
        """
        On a raw IP link a version nibble other than 4 or 6, or an empty
        frame, is malformed.
        """
        frame = bytes(IP() / TCP())
        self.assertIsNone(decode(b"\x50" + frame[1:], 0.0, linktype=LINKTYPE_RAW))
        self.assertIsNone(decode(b"", 0.0, linktype=LINKTYPE_RAW))

    def test_unknownLinktype(self):
        """
        A link type the parser does not handle gives None.
        """
        frame = bytes(_ether() / IP() / TCP())
        self.assertIsNone(decode(frame, 0.0, linktype=113))

    def test_addressText(self):
        """
        L{address_text} writes 4 octets as dotted quad and 16 as IPv6 text
        (RFC 5952); None stays None.
        """
        self.assertEqual(address_text(b"\xc0\x00\x02\x01"), "192.0.2.1")
        self.assertEqual(
            address_text(bytes.fromhex("20010db8000000000000000000000001")),
            "2001:db8::1",
        )
        self.assertIsNone(address_text(None))

    def test_notIpHasNoAddresses(self):
        """
        ARP and other frames that are not IP have no IP address octets.
        """
        frame = bytes(_ether() / ARP(psrc="192.0.2.1", pdst="192.0.2.2"))
        summary = decode(frame, 0.0)
        self.assertEqual((summary.saddr, summary.daddr, summary.src, summary.dst),
                         (None, None, None, None))

    def test_macText(self):
        """
        L{mac_text} writes six octets as colon-separated hex.
        """
        self.assertEqual(mac_text(b"\x00\x1b\x21\xab\xcd\xef"),
                         "00:1b:21:ab:cd:ef")
        self.assertIsNone(mac_text(None))


class Ipv4Tests(HeaderTestCase):
    """
    IPv4: options, fragments and bad lengths.
    """

    def test_options(self):
        """
        IPv4 options are skipped by the header length: the transport header
        is found after them.
        """
        packet = IP(src="192.0.2.1", dst="192.0.2.2", options=[
            IPOption_RR(routers=["192.0.2.9", "192.0.2.10"])
        ]) / TCP(sport=1000, dport=2000, flags="PA", seq=11, ack=22) / Raw(b"opt")
        frame = bytes(_ether() / packet)
        summary = self.decodeAgreeing(frame)
        self.assertEqual(IP(frame[14:]).ihl, 8)
        self.assertEqual((summary.sport, summary.dport, summary.seq,
                          summary.ack),
                         (1000, 2000, 11, 22))
        self.assertEqual((summary.payload_offset, summary.payload),
                         (14 + 32 + 20, b"opt"))

    def test_ethernetPaddingIsNotPayload(self):
        """
        Octets after the IP total length (Ethernet padding to 60 octets) are
        neither payload nor counted in C{ip_len}; truncating the padding
        away leaves the same summary.
        """
        frame = bytes(_ether() / IP() / TCP(flags="A")) + b"\x00" * 6
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.wire_len, summary.ip_len, summary.payload_len),
                         (60, 40, 0))
        for n in range(54, 61):
            self.assertEqual(decode(frame[:n], 0.0).payload_len, 0)
        self.assertIsNone(decode(frame[:53], 0.0))

    def test_fragments(self):
        """
        The first fragment has the transport header (payload bounded by
        the fragment); later fragments are marked and have no ports.
        """
        datagram = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / UDP(
            sport=5000, dport=6000) / Raw(bytes(range(100)))
        pieces = [bytes(_ether() / f) for f in fragment(datagram, fragsize=32)]
        self.assertEqual(len(pieces), 4)
        first = self.decodeAgreeing(pieces[0])
        self.assertEqual(
            (first.fragment, first.sport, first.dport, first.payload_offset,
             first.payload),
            (False, 5000, 6000, 42, bytes(range(24))),
        )
        for piece in pieces[1:]:
            later = self.decodeAgreeing(piece)
            self.assertEqual(
                (later.fragment, later.proto, later.sport, later.dport,
                 later.payload_offset, later.payload_len),
                (True, 17, 0, 0, 34, later.ip_len - 20),
            )
        self.assertEqual(decode(pieces[1], 0.0).payload, bytes(range(24, 56)))

    def test_badIhl(self):
        """
        A header length under 5 words, or past the total length, is
        malformed.
        """
        good = bytes(_ether() / IP() / UDP(sport=1, dport=2) / Raw(b"abcd"))
        for ihl in range(5):
            frame = bytearray(good)
            frame[14] = 0x40 | ihl
            self.assertIsNone(decode(bytes(frame), 0.0), ihl)
        frame = bytearray(good)
        frame[14] = 0x4F  # 60 octets of header in a 32-octet packet
        self.assertIsNone(decode(bytes(frame), 0.0))
        self.assertIsNotNone(decode(bytes(good), 0.0))

    def test_badVersion(self):
        """
        An IPv4 ethertype with another version nibble is malformed.
        """
        frame = bytearray(bytes(_ether() / IP() / UDP()))
        frame[14] = 0x65
        self.assertIsNone(decode(bytes(frame), 0.0))

    def test_badTotalLength(self):
        """
        A total length past the frame, or under the header length, is
        malformed.
        """
        good = bytes(_ether() / IP() / UDP(sport=1, dport=2) / Raw(b"abcd"))
        for total in (0, 19, len(good) - 14 + 1, 65535):
            frame = good[:16] + struct.pack("!H", total) + good[18:]
            self.assertIsNone(decode(frame, 0.0), total)

    def test_shorterTotalLength(self):
        """
        A total length shorter than the frame bounds the payload.
        """
        good = bytes(_ether() / IP() / TCP(sport=1, dport=2) / Raw(b"abcdef"))
        frame = good[:16] + struct.pack("!H", 40 + 2) + good[18:]
        summary = decode(frame, 0.0)
        self.assertEqual((summary.ip_len, summary.payload), (42, b"ab"))

    def test_otherProtocol(self):
        """
        A protocol without a transport parser (253, experimental) keeps its
        IP fields and its whole IP payload.
        """
        frame = bytes(_ether() / IP(proto=253) / Raw(b"\x00\x00\x08\x00exp"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.proto, summary.sport, summary.payload),
                         (253, 0, b"\x00\x00\x08\x00exp"))


class Ipv6Tests(HeaderTestCase):
    """
    IPv6 and its extension headers.
    """

    def test_hopByHop(self):
        """
        A hop-by-hop options header is walked to TCP.
        """
        frame = bytes(_ether() / IPv6(src="2001:db8::a", dst="2001:db8::b")
                      / IPv6ExtHdrHopByHop() / TCP(sport=22, dport=50000,
                                                     flags="PA") / Raw(b"ssh"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.proto, summary.sport, summary.payload_offset,
                          summary.payload),
                         (6, 22, 14 + 40 + 8 + 20, b"ssh"))

    def test_extensionChain(self):
        """
        Hop-by-hop, routing (24 octets here) and destination options are
        all walked.
        """
        frame = bytes(_ether() / IPv6() / IPv6ExtHdrHopByHop()
                      / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
                      / IPv6ExtHdrDestOpt() / UDP(sport=7, dport=8) / Raw(b"u"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.proto, summary.payload_offset, summary.payload),
                         (17, 14 + 40 + 8 + 24 + 8 + 8, b"u"))

    def test_authenticationHeader(self):
        """
        AH counts its length in 4-octet units minus 2 (RFC 4302).
        """
        ah = struct.pack("!BBHII", 17, 4, 0, 0x100, 1) + b"\xaa" * 12
        udp = struct.pack("!HHHH", 9, 10, 9, 0) + b"!"
        frame = bytes(_ether() / IPv6(nh=51, plen=len(ah) + len(udp))) + ah + udp
        summary = decode(frame, 0.0)
        self.assertEqual((summary.proto, summary.sport, summary.dport,
                          summary.payload_offset, summary.payload),
                         (17, 9, 10, 14 + 40 + 24 + 8, b"!"))

    def test_firstFragment(self):
        """
        A fragment header with offset 0 is walked: the first fragment has
        its transport header.
        """
        frame = bytes(_ether() / IPv6() / IPv6ExtHdrFragment(offset=0, m=1, id=5)
                      / UDP(sport=123, dport=456, len=200) / Raw(b"a" * 16))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.fragment, summary.proto, summary.sport,
                          summary.dport, summary.payload_len),
                         (False, 17, 123, 456, 16))

    def test_laterFragment(self):
        """
        A fragment with an offset is marked, and has no transport header.
        """
        frame = bytes(_ether() / IPv6() / IPv6ExtHdrFragment(offset=2, nh=6, id=5)
                      / Raw(b"\x01\x02" * 10))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.fragment, summary.proto, summary.sport,
                          summary.flags, summary.payload_offset,
                          summary.payload_len),
                         (True, 6, 0, 0, 14 + 48, 20))

    def test_laterFragmentAfterExtension(self):
        """
        In a later fragment the Next Header field names the first header of
        the fragmentable part (RFC 8200 section 4.5): the fragment data is
        not walked as an extension header even when that header is one.
        """
        data = b"\x06\x05" + b"A" * 30
        frame = bytes(_ether() / IPv6() / IPv6ExtHdrFragment(offset=100, nh=60)
                      / Raw(data))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.fragment, summary.proto, summary.payload),
                         (True, 60, data))

    def test_extensionPastPayload(self):
        """
        An extension header longer than the payload is malformed.
        """
        frame = bytearray(bytes(_ether() / IPv6() / IPv6ExtHdrHopByHop()
                                / UDP(sport=1, dport=2)))
        frame[14 + 40 + 1] = 5  # 48 octets of options in a 16-octet payload
        self.assertIsNone(decode(bytes(frame), 0.0))

    def test_badPayloadLength(self):
        """
        A payload length past the frame is malformed.
        """
        frame = bytearray(bytes(_ether() / IPv6() / UDP(sport=1, dport=2)))
        frame[18:20] = struct.pack("!H", 9)
        self.assertIsNone(decode(bytes(frame), 0.0))

    def test_icmpv6Built(self):
        """
        ICMPv6 built by scapy decodes like the captured one.
        """
        frame = bytes(_ether() / IPv6(src="fe80::1", dst="ff02::1", hlim=255)
                      / ICMPv6EchoRequest(id=1, seq=2, data=b"ping"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.icmp_type, summary.ttl, summary.payload),
                         (128, 255, b"\x00\x01\x00\x02ping"))


class TransportTests(HeaderTestCase):
    """
    TCP, UDP and ICMP headers.
    """

    def test_tcpFlags(self):
        """
        The whole flags octet comes through, each bit on its own.
        """
        for flag in (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, FIN | ACK,
                     SYN | ACK | ECE | CWR, 0xFF, 0):
            frame = bytes(_ether() / IP() / TCP(flags=flag))
            self.assertEqual(self.decodeAgreeing(frame).flags, flag)

    def test_tcpNumbers(self):
        """
        Sequence and acknowledgement numbers use all 32 bits.
        """
        frame = bytes(_ether() / IP() / TCP(seq=0xFFFFFFFF, ack=0x80000000,
                                           window=0xFFFF))
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.seq, summary.ack, summary.window),
                         (0xFFFFFFFF, 0x80000000, 0xFFFF))

    def test_tcpDataOffsetUnderFive(self):
        """
        A TCP data offset under 5 words is malformed.
        """
        good = bytearray(bytes(_ether() / IP() / TCP() / Raw(b"data")))
        for words in range(5):
            frame = bytearray(good)
            frame[14 + 20 + 12] = words << 4
            self.assertIsNone(decode(bytes(frame), 0.0), words)

    def test_tcpDataOffsetPastPacket(self):
        """
        A TCP header longer than the IP payload is malformed.
        """
        frame = bytearray(bytes(_ether() / IP() / TCP() / Raw(b"data")))
        frame[14 + 20 + 12] = 7 << 4  # 28 octets of header, 24 in the packet
        self.assertIsNone(decode(bytes(frame), 0.0))
        frame[14 + 20 + 12] = 6 << 4
        self.assertEqual(decode(bytes(frame), 0.0).payload, b"")

    def test_udpLengthBoundsPayload(self):
        """
        The UDP length bounds the payload when shorter than the IP payload.
        """
        frame = bytes(_ether() / IP() / UDP(sport=1, dport=2, len=12)
                      / Raw(b"abcdefgh"))
        summary = self.decodeAgreeing(frame)
        self.assertEqual(summary.payload, b"abcd")

    def test_udpLengthUnderEight(self):
        """
        A UDP length under 8, 0 included, is malformed (RFC 768).
        """
        for length in range(8):
            frame = bytes(_ether() / IP() / UDP(len=length) / Raw(b"abc"))
            self.assertIsNone(decode(frame, 0.0), length)
            frame = bytes(_ether() / IPv6() / UDP(len=length) / Raw(b"abc"))
            self.assertIsNone(decode(frame, 0.0), length)

    def test_truncatedTransportHeaders(self):
        """
        An IP packet too short for its UDP (8 octets), TCP (20) or ICMP (4)
        header is malformed, however long the frame.
        """
        for proto, size in ((17, 8), (6, 20), (1, 4)):
            for keep in range(size):
                frame = bytes(_ether() / IP(proto=proto, len=20 + keep)
                              / Raw(b"\x50" * keep)) + b"\x50" * 20
                self.assertIsNone(decode(frame, 0.0), (proto, keep))
            frame = bytes(_ether() / IP(proto=proto, len=20 + size)
                          / Raw(b"\x50" * size))
            self.assertIsNotNone(decode(frame, 0.0), proto)

    def test_icmpError(self):
        """
        An ICMP error's type and code; the quoted datagram is its payload.
        """
        quoted = IP(src="10.0.0.2", dst="10.0.0.9") / UDP(sport=33434, dport=33435)
        frame = bytes(_ether() / IP(src="10.0.0.1", dst="10.0.0.2")
                      / ICMP(type=3, code=3) / quoted)
        summary = self.decodeAgreeing(frame)
        self.assertEqual((summary.src, summary.icmp_type, summary.icmp_code),
                         ("10.0.0.1", 3, 3))
        self.assertEqual(summary.payload[4:], bytes(quoted))


class GarbageTests(SynchronousTestCase):
    """
    Random and mutated bytes never raise, and whatever decodes is sane.
    """

    def assertSane(self, frame, summary):
        """
        The invariants every summary keeps, whatever its frame.
        """
        self.assertEqual(summary.wire_len, len(frame))
        self.assertGreaterEqual(summary.payload_len, 0)
        self.assertLessEqual(summary.payload_offset + summary.payload_len,
                             len(frame))
        self.assertEqual(len(summary.payload), summary.payload_len)
        self.assertIn(summary.ip_version, (0, 4, 6))
        if summary.ip_version:
            self.assertLessEqual(summary.ip_len, len(frame))
            self.assertGreaterEqual(summary.ip_len, 20)
        else:
            self.assertEqual((summary.src, summary.proto), (None, -1))
        self.assertTrue(0 <= summary.flags <= 255)
        self.assertTrue(0 <= summary.sport <= 65535)

    def test_randomBytes(self):
        """
        Random frames of every size up to 100 octets, as Ethernet and as
        raw IP.
        """
        rng = random.Random(20240601)
        decoded = 0
        for _ in range(3000):
            frame = rng.randbytes(rng.randrange(101))
            for linktype in (LINKTYPE_ETHERNET, LINKTYPE_RAW):
                summary = decode(frame, 0.0, linktype=linktype)
                if summary is not None:
                    decoded += 1
                    self.assertSane(frame, summary)
        # Most random Ethernet frames have an ethertype nobody parses.
        self.assertGreater(decoded, 2500)

    def test_randomAfterHeaders(self):
        """
        Valid Ethernet and IP headers followed by random octets, with the
        protocol and lengths varied: some decode, some do not, none raise.
        """
        rng = random.Random(7)
        outcomes = set()
        for _ in range(3000):
            proto = rng.choice((1, 6, 17, 58, 0, 44, 60))
            size = rng.randrange(60)
            if rng.random() < 0.5:
                head = bytes(_ether() / IP(proto=proto, len=20 + size))
            else:
                head = bytes(_ether() / IPv6(nh=proto, plen=size))
            frame = head + rng.randbytes(size)
            summary = decode(frame, 0.0)
            outcomes.add(summary is None)
            if summary is not None:
                self.assertSane(frame, summary)
        self.assertEqual(outcomes, {True, False})

    def test_mutatedCapturedFrames(self):
        """
        Captured frames with random octets overwritten.
        """
        rng = random.Random(99)
        frames = [frame_of(h) for _, h in LO_FRAMES]
        for _ in range(5000):
            frame = bytearray(rng.choice(frames))
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            frame = bytes(frame[: rng.randrange(len(frame) + 1)])
            summary = decode(frame, 0.0)
            if summary is not None:
                self.assertSane(frame, summary)
