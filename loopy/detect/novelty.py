# -*- test-case-name: tests.test_detect_novelty -*-
"""
Novelty: what this host does that it did not do while the detectors
learned.  L{NewListenerDetector} (kind C{new_listener}) notices a local TCP
port that starts accepting connections; L{NewOutboundDetector} (kind
C{new_outbound}) a TCP or UDP destination port this host starts using.

Both learn for C{learning_period} seconds from their first evaluation (the
first packet's time, as the detect analyser evaluates at once).  After
that, the first packet of a new port raises an alert, updated while more
come; once the alert is over the port is known, so each alerts once per
agent run.  Ports at or above C{ephemeral_min} (Linux's default
``ip_local_port_range`` starts at 32768) are grouped, one alert for all of
them per listening address (or per protocol, outbound), and known at once:
FTP data connections, RPC services and peer-to-peer traffic use them by
the hundred.  docs/detectors/novelty.md has the details.
"""

from __future__ import annotations

from collections import deque
from struct import pack
from typing import Iterable, Optional

from attrs import field, frozen
from attrs.validators import and_, ge, le

from loopy.detect.base import (
    EVIDENCE_ITEMS, SAMPLE_PACKETS, TCP, UDP, DetectorSettings, Networks, bounded,
    packet_line, text_addresses,
)
from loopy.dissect.headers import ACK, IPPROTO_TCP, RST, SYN, address_text

#: The address of a listener bound to every address (0.0.0.0 or ::).
ANY_ADDRESS = b""

#: /proc/net/tcp state of a listening socket (include/net/tcp_states.h).
_TCP_LISTEN = "0A"

_SYN_ACK_RST = SYN | ACK | RST
_SYN_ACK = SYN | ACK
#: Outbound UDP: least source port (unprivileged) and the first port of
#: the dynamic range (RFC 6335 section 6), which is never a destination.
_UDP_CLIENT_MIN = 1024
_UDP_DYNAMIC = 49152


def read_listeners(paths: Iterable[str]) -> set[tuple[bytes, int]]:
    """
    The TCP sockets listening now, from ``/proc/net/tcp`` and
    ``/proc/net/tcp6`` (proc(5)): state ``0A``; the local address is hex
    of 32-bit words in host byte order, the port hex.

    :param paths: the files to read; one that cannot be read is skipped.
    :returns: ``(address octets, port)`` pairs; a listener on every address
        has L{ANY_ADDRESS}.
    """
    found = set()
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _TCP_LISTEN:
                continue
            address, _, port = fields[1].partition(":")
            try:
                if len(address) not in (8, 32):
                    continue
                raw = b"".join(pack("=I", int(address[i:i + 8], 16))
                               for i in range(0, len(address), 8))
                key = (ANY_ADDRESS if not raw.strip(b"\0") else raw, int(port, 16))
            except ValueError:
                continue
            found.add(key)
    return found


@frozen
class NoveltySettings(DetectorSettings):
    """
    What both novelty detectors share.

    :ivar learning_period: seconds of learning from the first packet (300.0:
        five minutes see the ports a server uses all the time; rarer ones
        alert once, after which they are known for the agent's run).
    :ivar ephemeral_min: first port of the ephemeral range (32768, Linux's
        ``net.ipv4.ip_local_port_range``): ports from it up are grouped and
        alerted as info (65536: none are).
    :ivar known_max: ports known at most; at the bound nothing more is
        learned, new ports keep alerting and are counted (65536).
    :ivar novel_max: alerts (new ports, or groups) followed at once; past
        it, new ports are learned without an alert and counted (100: a burst
        of new ports is a scan, which the scan detectors report).
    """

    learning_period: float = field(default=300.0, validator=ge(0))
    ephemeral_min: int = field(default=32768, validator=and_(ge(0), le(65536)))
    known_max: int = field(default=65536, validator=ge(0))
    novel_max: int = field(default=100, validator=ge(0))


class _Novel:
    """
    A new port (or a group of new ephemeral ports) being alerted on.

    :ivar keys: its keys that are not known yet (they become known when the
        alert is over).
    :ivar ports: ports seen, at most L{EVIDENCE_ITEMS}; ``port_count`` all.
    :ivar peers: remote addresses, at most L{EVIDENCE_ITEMS}; ``peer_count``
        counts new ones until that bound, then every packet from an
        unlisted one.
    :ivar locals: local addresses, at most L{EVIDENCE_ITEMS}.
    """

    __slots__ = ("keys", "ports", "port_count", "packets", "first_ts", "last_ts",
                 "first_peer", "peers", "peer_count", "locals", "samples", "active")

    def __init__(self, packet, peer: bytes):
        self.keys: set = set()
        self.ports: set[int] = set()
        self.port_count = 0
        self.packets = 0
        self.first_ts = self.last_ts = packet.ts
        self.first_peer = peer
        self.peers: set[bytes] = set()
        self.peer_count = 0
        self.locals: set[bytes] = set()
        self.samples: deque = deque(maxlen=SAMPLE_PACKETS)
        self.active = False

    def add(self, packet, port: int, peer: bytes, local: bytes) -> None:
        self.packets += 1
        self.last_ts = packet.ts
        self.active = True
        self.samples.append(packet)
        if port not in self.ports:
            if len(self.ports) < EVIDENCE_ITEMS:
                self.ports.add(port)
            self.port_count += 1
        if peer not in self.peers:
            if len(self.peers) < EVIDENCE_ITEMS:
                self.peers.add(peer)
            self.peer_count += 1
        if local not in self.locals and len(self.locals) < EVIDENCE_ITEMS:
            self.locals.add(local)


class _NoveltyDetector:
    """
    Learning, then alerting on new keys: what both detectors share.

    A subclass's C{observe} drops packets of known keys with one set lookup
    and calls L{_seen} for the rest.
    """

    kind: str
    settings_type = NoveltySettings

    def __init__(self, settings: NoveltySettings, context):
        self.settings = settings
        self._context = context
        self._allow = Networks(settings.allow)
        self._known: set = set()
        self._learning = True
        self._learn_until: Optional[float] = None
        self._novel: dict = {}      # subject -> _Novel
        self._pending: dict = {}    # key not yet known -> its _Novel
        self.learned = self.known_full = self.novel_dropped = self.ignored = 0

    def _learn(self, key) -> None:
        if len(self._known) >= self.settings.known_max:
            self.known_full += 1
        else:
            self._known.add(key)
            self.learned += 1

    def _seen(self, packet, key, port: int, local: bytes, peer: bytes, grouped_subject) -> None:
        """
        A packet of a key not known (the subclass checked it is this host's).

        :param grouped_subject: the subject for ports from C{ephemeral_min}
            up (grouped, and known at once).
        """
        if self._learning:
            self._learn(key)
            return
        context = self._context
        if context.allowed(local, self._allow) or context.allowed(peer, self._allow):
            self.ignored += 1
            return
        novel = self._pending.get(key)
        if novel is None:
            grouped = port >= self.settings.ephemeral_min
            subject = grouped_subject if grouped else key
            novel = self._novel.get(subject)
            if novel is None:
                if len(self._novel) >= self.settings.novel_max:
                    self.novel_dropped += 1
                    self._learn(key)
                    return
                novel = self._novel[subject] = _Novel(packet, peer)
            if grouped:
                self._learn(key)
            else:
                self._pending[key] = novel
                novel.keys.add(key)
        novel.add(packet, port, peer, local)

    def evaluate(self, now: float, book) -> None:
        if self._learn_until is None:
            self._learn_until = now + self.settings.learning_period
        if self._learning and now >= self._learn_until:
            self._learning = False
        for subject, novel in list(self._novel.items()):
            if novel.active:
                novel.active = False
                self._signal(book, now, subject, novel)
            elif book.active(self.kind, subject) is None:
                # The alert is over (or was never raised: the book was
                # full): from now on the port is known.
                del self._novel[subject]
                for key in novel.keys:
                    del self._pending[key]
                    self._learn(key)

    def _signal(self, book, now: float, subject, novel: _Novel) -> None:
        raise NotImplementedError

    def _evidence(self, novel: _Novel, peer: str) -> dict:
        """
        The evidence both detectors give; C{peer} names a remote end
        (``client``, ``destination``).
        """
        return {
            "port_count": novel.port_count,
            "ports": bounded(novel.ports, EVIDENCE_ITEMS),
            "packets": novel.packets,
            "first_seen": novel.first_ts,
            "last_seen": novel.last_ts,
            f"first_{peer}": address_text(novel.first_peer),
            f"{peer}s": novel.peer_count,
            f"{peer}_list": text_addresses(novel.peers, EVIDENCE_ITEMS),
            "learning_period": self.settings.learning_period,
            "samples": [packet_line(p) for p in novel.samples],
        }

    def stats(self) -> dict[str, int]:
        return {
            "learning": int(self._learning),
            "known": len(self._known),
            "learned": self.learned,
            "known_full": self.known_full,
            "novel": len(self._novel),
            "novel_dropped": self.novel_dropped,
            "ignored": self.ignored,
        }


@frozen
class NewListenerSettings(NoveltySettings):
    """
    Settings of C{new_listener} (docs/detectors/novelty.md).

    :ivar listeners_files: files listing the host's listening TCP sockets,
        read once at start so that listeners idle during learning are known
        (``/proc/net/tcp`` and ``/proc/net/tcp6``; empty to learn only from
        traffic, e.g. when replaying another host's capture).
    """

    listeners_files: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6")


class NewListenerDetector(_NoveltyDetector):
    """
    A local TCP port that starts accepting connections: a SYN-ACK from this
    host's address and port P, where (address, P) was not a listener in
    C{listeners_files} at start nor seen sending SYN-ACKs while learning.

    Per TCP packet: one test of the flags; a SYN-ACK costs one set lookup.
    Severity warning; info for the group of ephemeral ports.
    """

    name = "new_listener"
    kind = "new_listener"
    kinds = ("new_listener",)
    protocols = frozenset({TCP})
    settings_type = NewListenerSettings

    def __init__(self, settings: NewListenerSettings, context):
        super().__init__(settings, context)
        for key in read_listeners(settings.listeners_files):
            self._learn(key)
        self.seeded = len(self._known)

    def observe(self, packet) -> None:
        if packet.flags & _SYN_ACK_RST != _SYN_ACK:
            return
        key = (packet.saddr, packet.sport)
        if key in self._known:
            return
        saddr = packet.saddr
        if not (packet.outgoing or self._context.is_local(saddr)):
            return
        port = packet.sport
        if (ANY_ADDRESS, port) in self._known:
            return
        self._seen(packet, key, port, saddr, packet.daddr, (saddr, None))

    def _signal(self, book, now: float, subject, novel: _Novel) -> None:
        address, port = subject
        address_str = address_text(address)
        client = address_text(novel.first_peer)
        severity = "info" if port is None else "warning"
        evidence = dict(self._evidence(novel, "client"), address=address_str, port=port,
                        ephemeral=port is None)
        if port is None:
            ports = ", ".join(map(str, bounded(novel.ports, 5)))
            more = ", …" if novel.port_count > 5 else ""
            what = (f"{novel.port_count} new ephemeral TCP port"
                    f"{'s' if novel.port_count != 1 else ''} ({ports}{more})")
        else:
            what = f"new TCP port {port}"
        peers = client if novel.peer_count == 1 else f"{novel.peer_count} clients"
        summary = (f"{address_str} began accepting connections on {what}: "
                   f"{novel.packets} SYN-ACK{'s' if novel.packets != 1 else ''} to {peers}")
        book.signal(self.kind, subject, now, severity, summary,
                    src=client if novel.peer_count == 1 else None, dst=address_str,
                    evidence=evidence)

    def stats(self) -> dict[str, int]:
        return dict(super().stats(), seeded=self.seeded)


class NewOutboundDetector(_NoveltyDetector):
    """
    A destination port this host never used before: a TCP SYN (no ACK) or a
    UDP datagram from this host to a port not seen while learning.

    A UDP datagram counts only when it looks like a client's: source port
    unprivileged (>= 1024), destination port below the dynamic range
    (< 49152) and not above the source port (a server's reply goes from its
    low port to the client's higher one).  Per packet: a test of the flags
    or ports, then one set lookup.  Severity info.
    """

    name = "new_outbound"
    kind = "new_outbound"
    kinds = ("new_outbound",)
    protocols = frozenset({TCP, UDP})

    def observe(self, packet) -> None:
        dport = packet.dport
        if packet.proto == IPPROTO_TCP:
            if packet.flags & _SYN_ACK != SYN:
                return
            key = 0x60000 | dport  # IPPROTO_TCP << 16
        else:
            sport = packet.sport
            if sport < _UDP_CLIENT_MIN or dport >= _UDP_DYNAMIC or dport > sport:
                return
            key = 0x110000 | dport  # IPPROTO_UDP << 16
        if key in self._known:
            return
        saddr = packet.saddr
        if not (packet.outgoing or self._context.is_local(saddr)):
            return
        self._seen(packet, key, dport, saddr, packet.daddr, (packet.proto, None))

    def _signal(self, book, now: float, subject, novel: _Novel) -> None:
        if isinstance(subject, int):  # a key: protocol << 16 | port
            proto, port = subject >> 16, subject & 0xFFFF
        else:
            proto, port = subject
        tcp = proto == IPPROTO_TCP
        word = "TCP" if tcp else "UDP"
        what, unit = ("opened connections", "SYN") if tcp else ("sent datagrams", "datagram")
        evidence = dict(self._evidence(novel, "destination"),
                        proto=word.lower(), dport=port, ephemeral=port is None,
                        sources=text_addresses(novel.locals, EVIDENCE_ITEMS))
        if port is None:
            ports = ", ".join(map(str, bounded(novel.ports, 5)))
            more = ", …" if novel.port_count > 5 else ""
            target = f"{novel.port_count} new ephemeral {word} ports ({ports}{more})"
        else:
            target = f"{word} port {port} for the first time"
        single = novel.peer_count == 1
        peers = address_text(novel.first_peer) if single else f"{novel.peer_count} hosts"
        source = address_text(next(iter(novel.locals))) if len(novel.locals) == 1 else None
        summary = (f"{source or 'this host'} {what} to {target}: "
                   f"{novel.packets} {unit}{'s' if novel.packets != 1 else ''} to {peers}")
        book.signal(self.kind, subject, now, "info", summary, src=source,
                    dst=peers if single else None, evidence=evidence)
