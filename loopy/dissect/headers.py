# -*- test-case-name: tests.test_headers -*-
"""
The fast header path: one frame to one L{PacketSummary}, with C{struct}.

Decodes Ethernet II (IEEE 802.3), 802.1Q/802.1ad VLAN tags (up to two), ARP
(RFC 826), IPv4 (RFC 791, options skipped, fragments noted), IPv6 (RFC 8200,
extension headers walked), TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792) and
ICMPv6 (RFC 4443).  Frames may also start at the IP header (raw IP links such
as tun devices; L{LINKTYPE_RAW}).
"""

from __future__ import annotations

from socket import AF_INET6, inet_ntop
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

_ETH = Struct("!6s6sH")
_VLAN = Struct("!HH")
_IPV4 = Struct("!BBHHHBBH4s4s")
_IPV6 = Struct("!IHBB16s16s")
_TCP = Struct("!HHIIBBH")
_UDP = Struct("!HHH")
_ICMP = Struct("!BB")
_ARP = Struct("!HHBBH")
_EXT = Struct("!BB")

_ntop4_cache: dict[bytes, str] = {}


def _ntop4(raw: bytes) -> str:
    # Address text is asked for on every packet; the same few hosts recur.
    text = _ntop4_cache.get(raw)
    if text is None:
        if len(_ntop4_cache) > 65536:
            _ntop4_cache.clear()
        text = _ntop4_cache[raw] = "%d.%d.%d.%d" % tuple(raw)
    return text


def _ntop6(raw: bytes) -> str:
    return inet_ntop(AF_INET6, raw)


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


@frozen
class PacketSummary:
    """
    The headers of one frame.

    :ivar ts: capture time, seconds since the Unix epoch.
    :ivar ifindex: the interface's index (0 when unknown, e.g. pcap files).
    :ivar outgoing: True when this host sent the frame.
    :ivar wire_len: octets of the frame as captured.
    :ivar ethertype: the innermost ethertype (0x0800 IPv4, 0x86DD IPv6 …).
    :ivar vlan: the outermost 802.1Q VLAN id, or None.
    :ivar eth_src: source MAC (6 octets) or None on raw IP links.
    :ivar eth_dst: destination MAC or None.
    :ivar ip_version: 4, 6, or 0 when not IP.
    :ivar src: IP source address text, or None.
    :ivar dst: IP destination address text, or None.
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

    ts: float
    ifindex: int
    outgoing: bool
    wire_len: int
    ethertype: int
    vlan: Optional[int]
    eth_src: Optional[bytes]
    eth_dst: Optional[bytes]
    ip_version: int
    src: Optional[str]
    dst: Optional[str]
    proto: int
    ip_len: int
    ttl: int
    fragment: bool
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    window: int
    icmp_type: int
    icmp_code: int
    payload_offset: int
    payload_len: int
    arp: Optional[ArpFields]
    frame: bytes

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
    try:
        return _decode(frame, ts, ifindex, outgoing, linktype)
    except Exception:
        # struct.error on truncation, IndexError, ValueError: all malformed.
        return None


def _decode(frame, ts, ifindex, outgoing, linktype):
    n = len(frame)
    vlan = None
    eth_src = eth_dst = None
    if linktype == LINKTYPE_ETHERNET:
        eth_dst, eth_src, ethertype = _ETH.unpack_from(frame, 0)
        offset = 14
        for _ in range(2):
            if ethertype != ETH_P_8021Q and ethertype != ETH_P_8021AD:
                break
            tci, ethertype = _VLAN.unpack_from(frame, offset)
            if vlan is None:
                vlan = tci & 0x0FFF
            offset += 4
    elif linktype == LINKTYPE_RAW:
        offset = 0
        version = frame[0] >> 4
        ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else 0
        if not ethertype:
            return None
    else:
        return None

    arp = None
    ip_version = 0
    src = dst = None
    proto = -1
    ip_len = ttl = 0
    fragment = False
    if ethertype == ETH_P_IP:
        (vihl, _tos, total, _ident, frag, ttl, proto, _csum, rsrc, rdst) = (
            _IPV4.unpack_from(frame, offset)
        )
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or total < ihl or offset + total > n:
            return None
        ip_version = 4
        ip_len = total
        src = _ntop4(rsrc)
        dst = _ntop4(rdst)
        fragment = (frag & 0x1FFF) != 0
        l4 = offset + ihl
        end = offset + total
    elif ethertype == ETH_P_IPV6:
        (vtcfl, plen, nxt, ttl, rsrc, rdst) = _IPV6.unpack_from(frame, offset)
        if vtcfl >> 28 != 6 or offset + 40 + plen > n:
            return None
        ip_version = 6
        ip_len = 40 + plen
        src = _ntop6(rsrc)
        dst = _ntop6(rdst)
        l4 = offset + 40
        end = l4 + plen
        for _ in range(_IPV6_MAX_EXTENSIONS):
            if nxt not in _IPV6_EXTENSIONS:
                break
            following, hlen = _EXT.unpack_from(frame, l4)
            if nxt == 44:  # fragment header: fixed 8 octets
                (frag,) = Struct("!H").unpack_from(frame, l4 + 2)
                fragment = (frag & 0xFFF8) != 0
                size = 8
            elif nxt == 51:  # AH: length in 4-octet units, minus 2
                size = (hlen + 2) * 4
            else:
                size = (hlen + 1) * 8
            l4 += size
            nxt = following
            if l4 > end:
                return None
            if fragment:
                # A later fragment's Next Header names the first header of
                # the fragmentable part, which is not here (RFC 8200 4.5).
                break
        proto = nxt
    elif ethertype == ETH_P_ARP:
        htype, ptype, hlen, plen_, op = _ARP.unpack_from(frame, offset)
        if htype == 1 and ptype == ETH_P_IP and hlen == 6 and plen_ == 4:
            body = frame[offset + 8 : offset + 28]
            if len(body) < 20:
                return None
            arp = ArpFields(
                op=op,
                hwsrc=mac_text(body[0:6]),
                psrc=_ntop4(body[6:10]),
                hwdst=mac_text(body[10:16]),
                pdst=_ntop4(body[16:20]),
            )
        return _summary(frame, ts, ifindex, outgoing, ethertype, vlan, eth_src,
                        eth_dst, arp=arp, payload_offset=offset)
    else:
        return _summary(frame, ts, ifindex, outgoing, ethertype, vlan, eth_src,
                        eth_dst, payload_offset=offset)

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
            if ulen < 8:
                return None
            payload_offset = l4 + 8
            if payload_offset > end:
                return None
            if ulen:
                end = min(end, l4 + ulen)
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            icmp_type, icmp_code = _ICMP.unpack_from(frame, l4)
            payload_offset = l4 + 4
            if payload_offset > end:
                return None
    return PacketSummary(
        ts, ifindex, outgoing, n, ethertype, vlan, eth_src, eth_dst,
        ip_version, src, dst, proto, ip_len, ttl, fragment, sport, dport,
        flags, seq, ack, window, icmp_type, icmp_code, payload_offset,
        max(0, end - payload_offset), None, frame,
    )


def _summary(frame, ts, ifindex, outgoing, ethertype, vlan, eth_src, eth_dst,
             arp=None, payload_offset=0):
    return PacketSummary(
        ts, ifindex, outgoing, len(frame), ethertype, vlan, eth_src, eth_dst,
        0, None, None, -1, 0, 0, False, 0, 0, 0, 0, 0, 0, -1, -1,
        payload_offset, max(0, len(frame) - payload_offset), arp, frame,
    )
