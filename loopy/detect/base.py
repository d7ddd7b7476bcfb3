# -*- test-case-name: tests.test_detect_base -*-
"""
What every detector shares: its interface, its plugin declaration, its
settings' base, the host facts it may ask (L{DetectContext}), address
allow-lists (L{Networks}) and the one-line packet summaries alerts carry as
evidence (L{packet_line}).
"""

from __future__ import annotations

import importlib
import ipaddress
from datetime import datetime, timezone
from typing import Iterable, Optional

from attrs import frozen
from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer

from loopy.dissect.headers import (
    ACK, CWR, ECE, FIN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    PSH, RST, SYN, URG, address_text,
)

#: Packet classes a detector may ask for (L{IDetector.protocols}).
TCP, UDP, ICMP, ARP, DNS = "tcp", "udp", "icmp", "arp", "dns"
PACKET_CLASSES = frozenset({TCP, UDP, ICMP, ARP, DNS})


class IDetector(Interface):
    """
    Watches one kind of suspicious traffic with bounded state.

    The host (L{loopy.detect.host.DetectAnalyser}) calls C{observe} for each
    packet of the classes in C{protocols} (C{observe_dns} for DNS messages),
    and C{evaluate} every check interval (0.25 s by default) and at every
    report.  C{observe} must be cheap and never raise for any packet the
    header parser produced; thresholds are checked in C{evaluate}, which
    says what holds by calling L{loopy.detect.alerts.AlertBook.signal}.
    """

    name = Attribute("The detector's name: its section in the settings file "
                     "and its key in the detect snapshot.")
    kinds = Attribute("The alert kinds it raises (documented words).")
    protocols = Attribute("A frozenset of L{PACKET_CLASSES} it wants.")

    def observe(packet):
        """
        Account for one TCP, UDP, ICMP/ICMPv6 or ARP packet (a
        L{loopy.dissect.headers.PacketSummary}), as C{protocols} asked.
        """

    def observe_dns(packet, message):
        """
        Account for one DNS message (a L{loopy.dissect.dns.DnsMessage}) in
        C{packet}; only called when C{protocols} has L{DNS}.
        """

    def evaluate(now, book):
        """
        Check thresholds at C{now} (seconds since the Unix epoch, capture
        clock), age out old state, and signal every condition that holds to
        C{book}.
        """

    def stats():
        """
        A flat dict of counters and table sizes (str to int), for reports.
        """


@frozen
class DetectorSettings:
    """
    Settings every detector has.  A detector's settings class derives from
    this and adds its thresholds, each with a default and its reason in the
    docstring (docs/detectors/ lists them all).

    :ivar enabled: run this detector.
    :ivar allow: networks (CIDR text, ``192.0.2.0/24``, ``2001:db8::1``)
        whose traffic this detector never alerts on, besides the global
        allow-list; e.g. a monitoring system that scans on purpose.
    """

    enabled: bool = True
    allow: tuple[str, ...] = ()


class IDetectorPlugin(Interface):
    """
    A plugin that declares a detector (L{DetectorPlugin}).
    """

    name = Attribute("The detector's name.")

    def detector_class():
        """
        The detector's class (imports its module).
        """


@implementer(IPlugin, IDetectorPlugin)
@frozen
class DetectorPlugin:
    """
    A detector plugin declaration: detector C{name} is class C{cls} of
    C{module}, imported only when an agent builds it.  The class has a
    C{settings_type} (a L{DetectorSettings} subclass) and is called as
    ``cls(settings, context)``.
    """

    name: str
    module: str
    cls: str

    def detector_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls)


class Networks:
    """
    A set of IP networks, matched against address octets.

    :param cidrs: networks as text (``10.0.0.0/8``, ``2001:db8::/32``, or a
        bare address for one host).
    :raises ValueError: for text that is not an address or network.
    """

    def __init__(self, cidrs: Iterable[str] = ()):
        self.cidrs = tuple(cidrs)
        self._nets = [ipaddress.ip_network(c, strict=False) for c in self.cidrs]
        self._cache: dict[bytes, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._nets)

    def __contains__(self, addr: Optional[bytes]) -> bool:
        """
        Whether C{addr} (4 or 16 octets, or None) is in one of the networks.
        """
        if addr is None or not self._nets:
            return False
        hit = self._cache.get(addr)
        if hit is None:
            ip = ipaddress.ip_address(addr)
            hit = any(ip.version == n.version and ip in n for n in self._nets)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[addr] = hit
        return hit


_LOOPBACK = Networks(["127.0.0.0/8", "::1/128"])


class DetectContext:
    """
    What detectors may ask about this host.

    :ivar allow: the global allow-list (L{Networks}): traffic from or to
        these never raises an alert.
    :ivar local_max: most addresses learned as this host's.
    """

    def __init__(self, allow: Networks = Networks(), local: Networks = Networks(),
                 gateways: Iterable[str] = (), local_max: int = 1024):
        """
        :param local: networks that are this host's besides the learned
            addresses (from the settings' C{local_networks}).
        :param gateways: IPv4 addresses of this host's gateways, as text
            (from the routing table, L{read_gateways}, or the settings).
        """
        self.allow = allow
        self._local = local
        self._learned: set[bytes] = set()
        self.local_max = local_max
        self.gateways = frozenset(gateways)

    def learn_local(self, addr: bytes) -> None:
        """
        Note C{addr} as one of this host's (the source of a packet this host
        sent).  At C{local_max} addresses, new ones are not learned.
        """
        if addr not in self._learned and len(self._learned) < self.local_max:
            self._learned.add(addr)

    def is_local(self, addr: Optional[bytes]) -> bool:
        """
        Whether C{addr} is this host's: loopback, configured, or learned
        from packets this host sent.
        """
        return addr in self._learned or addr in _LOOPBACK or addr in self._local

    @property
    def local_addresses(self) -> int:
        return len(self._learned)

    def allowed(self, addr: Optional[bytes], extra: Optional[Networks] = None) -> bool:
        """
        Whether C{addr} is on the global allow-list or on C{extra} (a
        detector's own).
        """
        return addr in self.allow or (extra is not None and addr in extra)


def read_gateways(path: str = "/proc/net/route") -> list[str]:
    """
    The IPv4 default gateways in the kernel's routing table.

    :param path: the table, in the format of ``/proc/net/route`` (proc(5),
        route(8)): gateway in hexadecimal, host byte order (little endian).
    :returns: gateway addresses as text; empty when the file cannot be read.
    """
    gateways = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return gateways
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[1] != "00000000":
            continue
        try:
            raw = int(fields[2], 16).to_bytes(4, "little")
        except ValueError:
            continue
        if raw != b"\0\0\0\0":
            gateways.append(address_text(raw))
    return gateways


_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."),
                 (URG, "U"), (ECE, "E"), (CWR, "W"))


def tcp_flags_text(flags: int) -> str:
    """
    TCP flags as tcpdump(8) writes them: ``S``, ``S.``, ``F.``, ``none``.
    """
    return "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit) or "none"


def packet_line(packet) -> str:
    """
    One packet as a line of evidence, in tcpdump(8)'s style:
    ``12:00:01.123456 IP 192.0.2.1.4444 > 192.0.2.2.80: tcp [S] 60``
    (time UTC, then addresses and ports, protocol, TCP flags or ICMP
    type/code, and the frame's octets).
    """
    when = datetime.fromtimestamp(packet.ts, timezone.utc).strftime("%H:%M:%S.%f")
    if packet.arp is not None:
        arp = packet.arp
        if arp.op == 1:
            what = f"Request who-has {arp.pdst} tell {arp.psrc} ({arp.hwsrc})"
        elif arp.op == 2:
            what = f"Reply {arp.psrc} is-at {arp.hwsrc} to {arp.pdst} ({arp.hwdst})"
        else:
            what = f"op {arp.op} {arp.psrc} ({arp.hwsrc}) > {arp.pdst}"
        return f"{when} ARP {what} {packet.wire_len}"
    if packet.saddr is None:
        return f"{when} ethertype 0x{packet.ethertype:04x} {packet.wire_len}"
    family = "IP" if packet.ip_version == 4 else "IP6"
    src, dst, proto = packet.src, packet.dst, packet.proto
    if proto == IPPROTO_TCP or proto == IPPROTO_UDP:
        ends = f"{src}.{packet.sport} > {dst}.{packet.dport}"
        if proto == IPPROTO_TCP:
            detail = f"tcp [{tcp_flags_text(packet.flags)}]"
        else:
            detail = "udp"
    else:
        ends = f"{src} > {dst}"
        if proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            name = "icmp" if proto == IPPROTO_ICMP else "icmp6"
            detail = f"{name} type {packet.icmp_type} code {packet.icmp_code}"
        else:
            detail = f"proto {proto}"
    return f"{when} {family} {ends}: {detail} {packet.wire_len}"


#: Packet lines (L{packet_line}) an alert's evidence carries, at most.
SAMPLE_PACKETS = 5
#: Addresses or ports an alert's evidence lists, at most.
EVIDENCE_ITEMS = 50


def bounded(values: Iterable, limit: int) -> list:
    """
    The first C{limit} of C{values}, sorted, as a list (evidence lists).
    """
    return sorted(values)[:limit]


def text_addresses(addrs: Iterable[bytes], limit: int) -> list[str]:
    """
    Up to C{limit} address octets as sorted text.
    """
    return sorted(address_text(a) for a in addrs)[:limit]
