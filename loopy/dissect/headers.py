# -*- test-case-name: tests.test_headers -*-
"""
The fast header path: one frame to one L{PacketSummary}, with C{struct}.

Decodes Ethernet II (IEEE 802.3), 802.1Q/802.1ad VLAN tags (up to two), ARP
(RFC 826), IPv4 (RFC 791, options skipped, fragments noted), IPv6 (RFC 8200,
extension headers walked), TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792) and
ICMPv6 (RFC 4443).  Frames may also start at the IP header (raw IP links such
as tun devices; L{LINKTYPE_RAW}).

This runs for every frame the agent captures, so it does as little as it
can: one C{struct} unpack per header, addresses kept as their raw octets
(L{PacketSummary.saddr}; text only on demand, L{address_text}), MAC
addresses sliced only when asked for, and a plain slotted record.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop
from struct import Struct
from typing import Optional

from attrs import frozen

#: Link types (pcap LINKTYPE_* values, https://www.tcpdump.org/linktypes.html).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

#: TCP flag bits (RFC 9293 section 3.1).
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128

#: IPv6 extension headers walked to find the upper layer.
_IPV6_EXTENSIONS = frozenset({0, 43, 44, 51, 60, 135, 139, 140})
_IPV6_MAX_EXTENSIONS = 8

_ETHERTYPE = Struct("!H")  # at octet 12 of an Ethernet header
_VLAN = Struct("!HH")
# Version/IHL, total length, flags/fragment offset, TTL, protocol, source,
# destination; TOS, identification and checksum skipped.
_IPV4 = Struct("!BxH2xHBB2x4s4s")
_IPV6 = Struct("!IHBB16s16s")
_TCP = Struct("!HHIIBBH")
_UDP = Struct("!HHH")
_ICMP = Struct("!BB")
_ARP = Struct("!HHBBH")
_EXT = Struct("!BB")
_FRAGMENT = Struct("!H")

_new = object.__new__


def address_text(raw: Optional[bytes]) -> Optional[str]:
    """
    An IP address in its usual text form: ``192.0.2.1`` for 4 octets,
    ``2001:db8::1`` (RFC 5952, as inet_ntop(3) writes it) for 16.

    :param raw: the address's octets, network order, or None.
    :returns: the text, or None for None.
    """
    if raw is None:
        return None
    return inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)


def mac_text(raw: Optional[bytes]) -> Optional[str]:
    """
    A MAC address as ``aa:bb:cc:dd:ee:ff``, or None.
    """
    if raw is None:
        return None
    return ":".join("%02x" % b for b in raw)


@frozen
class ArpFields:
    """
    An ARP packet for Ethernet/IPv4 (RFC 826).

    :ivar op: 1 request, 2 reply.
    :ivar hwsrc: sender MAC; ``psrc`` sender IPv4; ``hwdst``/``pdst`` target.
    """

    op: int
    hwsrc: str
    psrc: str
    hwdst: str
    pdst: str


class PacketSummary:
    """
    The headers of one frame.

    Made for every captured frame, and only by L{decode}, so it is a plain
    class with C{__slots__} that L{decode} fills in directly, rather than an
    attrs frozen record: a frozen record's C{__init__} sets each field
    through C{object.__setattr__}, which cost 1 µs a packet, and even a
    plain C{__init__} call with 26 arguments costs 0.15 µs more than the
    stores.  Treat it as read-only all the same: every analyser sees the
    same instance.

    :ivar ts: capture time, seconds since the Unix epoch.
    :ivar ifindex: the interface's index (0 when unknown, e.g. pcap files).
    :ivar outgoing: True when this host sent the frame.
    :ivar wire_len: octets of the frame as captured.
    :ivar linktype: L{LINKTYPE_ETHERNET} or L{LINKTYPE_RAW}.
    :ivar ethertype: the innermost ethertype (0x0800 IPv4, 0x86DD IPv6 …).
    :ivar vlan: the outermost 802.1Q VLAN id, or None.
    :ivar ip_version: 4, 6, or 0 when not IP.
    :ivar saddr: IP source address, its 4 or 16 octets (network order), or
        None when not IP.  Use these as table keys; L{src} is the text.
    :ivar daddr: IP destination address octets, or None.
    :ivar proto: IP protocol number (6 TCP, 17 UDP …), or -1 when not IP.
    :ivar ip_len: octets of the IP packet (header and payload).
    :ivar ttl: IPv4 TTL or IPv6 hop limit.
    :ivar fragment: True for an IPv4/IPv6 fragment that is not the first
        (its transport header is absent).
    :ivar sport: transport source port (0 when none).
    :ivar dport: transport destination port (0 when none).
    :ivar flags: TCP flags byte (L{SYN}, L{ACK} …), 0 when not TCP.
    :ivar seq: TCP sequence number.
    :ivar ack: TCP acknowledgement number.
    :ivar window: TCP window (unscaled).
    :ivar icmp_type: ICMP/ICMPv6 type, -1 when not ICMP.
    :ivar icmp_code: ICMP/ICMPv6 code.
    :ivar payload_offset: where the transport payload starts in C{frame}.
    :ivar payload_len: octets of transport payload (bounded by the IP length).
    :ivar arp: the ARP fields, for ARP frames.
    :ivar frame: the frame itself (read-only bytes).
    """

    __slots__ = (
        "ts", "ifindex", "outgoing", "wire_len", "linktype", "ethertype", "vlan",
        "ip_version", "saddr", "daddr", "proto", "ip_len", "ttl", "fragment",
        "sport", "dport", "flags", "seq", "ack", "window", "icmp_type",
        "icmp_code", "payload_offset", "payload_len", "arp", "frame",
    )

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}"
                           for name in self.__slots__ if name != "frame")
        return f"PacketSummary({fields})"

    @property
    def src(self) -> Optional[str]:
        """
        The IP source address as text (L{address_text}), or None.
        """
        return address_text(self.saddr)

    @property
    def dst(self) -> Optional[str]:
        """
        The IP destination address as text, or None.
        """
        return address_text(self.daddr)

    @property
    def eth_src(self) -> Optional[bytes]:
        """
        The source MAC (6 octets), or None on raw IP links.
        """
        return self.frame[6:12] if self.linktype == LINKTYPE_ETHERNET else None

    @property
    def eth_dst(self) -> Optional[bytes]:
        """
        The destination MAC (6 octets), or None on raw IP links.
        """
        return self.frame[0:6] if self.linktype == LINKTYPE_ETHERNET else None

    @property
    def payload(self) -> bytes:
        """
        The transport payload (TCP/UDP data, ICMP body).
        """
        start = self.payload_offset
        return self.frame[start : start + self.payload_len]


def decode(
    frame: bytes,
    ts: float,
    ifindex: int = 0,
    outgoing: bool = False,
    linktype: int = LINKTYPE_ETHERNET,
) -> Optional[PacketSummary]:
    """
    Decode one frame's headers.

    :param frame: the frame, link header first (or IP header first when
        C{linktype} is L{LINKTYPE_RAW}).
    :param ts: its capture time, seconds since the Unix epoch.
    :param ifindex: the interface it came from.
    :param outgoing: whether this host sent it (``PACKET_OUTGOING``).
    :param linktype: L{LINKTYPE_ETHERNET} or L{LINKTYPE_RAW}.
    :returns: the summary, or None when the frame is malformed (truncated
        headers, bad lengths, unknown IP version).  Frames of ethertypes this
        parser does not know decode with only the link fields set.
    """
    # One function with the common path (Ethernet, IPv4 or IPv6, TCP or UDP)
    # written straight through: a Python call costs as much as a header.
    # struct.error on truncation, IndexError, ValueError: all malformed.
    try:
        n = len(frame)
        vlan = None
        if linktype == LINKTYPE_ETHERNET:
            (ethertype,) = _ETHERTYPE.unpack_from(frame, 12)
            offset = 14
            if ethertype == ETH_P_8021Q or ethertype == ETH_P_8021AD:
                vlan, ethertype, offset = _vlan_tags(frame, ethertype)
        elif linktype == LINKTYPE_RAW:
            offset = 0
            version = frame[0] >> 4
            if version == 4:
                ethertype = ETH_P_IP
            elif version == 6:
                ethertype = ETH_P_IPV6
            else:
                return None
        else:
            return None

        fragment = False
        arp = None
        if ethertype == ETH_P_IP:
            vihl, ip_len, frag, ttl, proto, saddr, daddr = _IPV4.unpack_from(frame, offset)
            ihl = (vihl & 0x0F) * 4
            if vihl >> 4 != 4 or ihl < 20 or ip_len < ihl or offset + ip_len > n:
                return None
            ip_version = 4
            if frag & 0x1FFF:
                fragment = True
            l4 = offset + ihl
            end = offset + ip_len
        elif ethertype == ETH_P_IPV6:
            vtcfl, plen, proto, ttl, saddr, daddr = _IPV6.unpack_from(frame, offset)
            if vtcfl >> 28 != 6 or offset + 40 + plen > n:
                return None
            ip_version = 6
            ip_len = 40 + plen
            l4 = offset + 40
            end = l4 + plen
            if proto in _IPV6_EXTENSIONS:
                proto, l4, fragment = _ipv6_extensions(frame, proto, l4, end)
        else:
            # Not IP: the link fields, ARP's, and the rest of the frame as
            # the payload.
            if ethertype == ETH_P_ARP:
                arp = _arp_fields(frame, offset)
            ip_version = ip_len = ttl = 0
            saddr = daddr = None
            proto = -1
            l4 = offset
            end = n

        sport = dport = flags = seq = ack = window = 0
        icmp_type = icmp_code = -1
        payload_offset = l4
        if not fragment:
            if proto == IPPROTO_TCP:
                sport, dport, seq, ack, off, flags, window = _TCP.unpack_from(frame, l4)
                doff = (off >> 4) * 4
                if doff < 20 or l4 + doff > end:
                    return None
                payload_offset = l4 + doff
            elif proto == IPPROTO_UDP:
                sport, dport, ulen = _UDP.unpack_from(frame, l4)
                # Under 8, 0 included, is malformed (RFC 768).  A jumbogram's
                # UDP length 0 (RFC 2675) never gets here: its IPv6 payload
                # length is 0 too.
                payload_offset = l4 + 8
                if ulen < 8 or payload_offset > end:
                    return None
                if l4 + ulen < end:
                    end = l4 + ulen
            elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
                icmp_type, icmp_code = _ICMP.unpack_from(frame, l4)
                payload_offset = l4 + 4
                if payload_offset > end:
                    return None
    except Exception:
        return None

    packet = _new(PacketSummary)
    packet.ts = ts
    packet.ifindex = ifindex
    packet.outgoing = outgoing
    packet.wire_len = n
    packet.linktype = linktype
    packet.ethertype = ethertype
    packet.vlan = vlan
    packet.ip_version = ip_version
    packet.saddr = saddr
    packet.daddr = daddr
    packet.proto = proto
    packet.ip_len = ip_len
    packet.ttl = ttl
    packet.fragment = fragment
    packet.sport = sport
    packet.dport = dport
    packet.flags = flags
    packet.seq = seq
    packet.ack = ack
    packet.window = window
    packet.icmp_type = icmp_type
    packet.icmp_code = icmp_code
    packet.payload_offset = payload_offset
    packet.payload_len = end - payload_offset if end > payload_offset else 0
    packet.arp = arp
    packet.frame = frame
    return packet


def _vlan_tags(frame: bytes, ethertype: int) -> tuple[int, int, int]:
    """
    Walk up to two VLAN tags after the Ethernet header.

    :returns: the outermost VLAN id, the ethertype after the tags, and the
        offset of what follows them.
    :raises struct.error: when a tag is truncated.
    """
    vlan = None
    offset = 14
    for _ in range(2):
        if ethertype != ETH_P_8021Q and ethertype != ETH_P_8021AD:
            break
        tci, ethertype = _VLAN.unpack_from(frame, offset)
        if vlan is None:
            vlan = tci & 0x0FFF
        offset += 4
    return vlan, ethertype, offset


def _ipv6_extensions(frame: bytes, nxt: int, l4: int, end: int) -> tuple[int, int, bool]:
    """
    Walk IPv6 extension headers (RFC 8200 section 4) from C{l4}.

    :param nxt: the Next Header value naming the first extension header.
    :param end: where the IPv6 payload ends in C{frame}.
    :returns: the upper-layer protocol, its offset, and whether this is a
        fragment other than the first.
    :raises ValueError: when a header runs past the payload.
    """
    fragment = False
    for _ in range(_IPV6_MAX_EXTENSIONS):
        if nxt not in _IPV6_EXTENSIONS:
            break
        following, hlen = _EXT.unpack_from(frame, l4)
        if nxt == 44:  # fragment header: fixed 8 octets
            (frag,) = _FRAGMENT.unpack_from(frame, l4 + 2)
            fragment = (frag & 0xFFF8) != 0
            size = 8
        elif nxt == 51:  # AH: length in 4-octet units, minus 2
            size = (hlen + 2) * 4
        else:
            size = (hlen + 1) * 8
        l4 += size
        nxt = following
        if l4 > end:
            raise ValueError("IPv6 extension header past the payload")
        if fragment:
            # A later fragment's Next Header names the first header of the
            # fragmentable part, which is not here (RFC 8200 4.5).
            break
    return nxt, l4, fragment


def _arp_fields(frame: bytes, offset: int) -> Optional[ArpFields]:
    """
    The fields of an ARP packet at C{offset}, when it is for Ethernet and
    IPv4; None for other hardware or protocol types.

    :raises ValueError: when the packet is cut short of its 28 octets.
    """
    htype, ptype, hlen, plen, op = _ARP.unpack_from(frame, offset)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    body = frame[offset + 8 : offset + 28]
    if len(body) < 20:
        raise ValueError("truncated ARP packet")
    return ArpFields(
        op=op,
        hwsrc=mac_text(body[0:6]),
        psrc=address_text(body[6:10]),
        hwdst=mac_text(body[10:16]),
        pdst=address_text(body[16:20]),
    )
