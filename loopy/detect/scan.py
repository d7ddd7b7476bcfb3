# -*- test-case-name: tests.test_detect_scan -*-
"""
Port scans, vertical (many ports on one host) and horizontal (one port on
many hosts), by TCP SYN, connect, FIN, NULL and Xmas probes and by UDP.

After Zeek's scan policy (``policy/misc/scan.zeek``): what is counted is
I{failed} attempts, per scanner, over a sliding window: distinct ports per
(scanner, target) for a vertical scan and distinct targets per (scanner,
port) for a horizontal one.  A busy server's clients and a browser's
connections succeed, so they are never counted, however many there are.

An attempt fails when:

 - a SYN is answered by RST, or by ICMP destination unreachable, or not
   answered within C{probe_timeout} (filtered);
 - a SYN is answered by SYN-ACK and the prober tears the connection down
   with no data either way (Zeek's C{is_failed_conn}): a RST without ACK
   is the prober's kernel refusing a SYN-ACK it never asked for (a
   half-open SYN scan); a RST or FIN carrying ACK after the handshake is a
   connect scan;
 - a UDP datagram is answered by ICMP port (or host, or administratively)
   unreachable, or by nothing within C{probe_timeout};
 - a FIN, NULL or Xmas (FIN, PSH, URG) segment without ACK is seen at all:
   no conforming stack sends one (ACK is always set once a connection is
   established, RFC 9293 section 3.1), so each is a probe, counted against
   a lower threshold.

Whether a SYN's connection failed is read from sequence numbers rather
than by following the connection: the prober's RST or FIN carries SEQ =
ISN + 1 and ACK = the target's ISN + 1 only when neither side sent data.
So only SYN, SYN-ACK, RST and FIN segments are looked up; the bulk of a
connection's segments cost two bit tests.

A source whose attempts at a port (or target) mostly succeed is a client,
not a scanner (Jung et al., "Fast Portscan Detection Using Sequential
Hypothesis Testing", IEEE S&P 2004): a threshold counts only while the
failures outnumber the successes there.  docs/detectors/scan.md has the
design, defaults and their reasons, and the known false positives.
"""

from __future__ import annotations

from collections import OrderedDict
from struct import Struct
from typing import Optional

from attrs import field, frozen

from loopy.detect.base import (
    EVIDENCE_ITEMS, ICMP, SAMPLE_PACKETS, TCP, UDP, DetectorSettings, Networks,
    packet_line,
)
from loopy.dissect.headers import (
    ACK, FIN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, PSH, RST, SYN, URG,
    address_text,
)

KIND = "port_scan"

# Probe classes: each has its own thresholds.
_TCP, _UDP, _STEALTH = 0, 1, 2
_CLASS_NAMES = ("tcp", "udp", "stealth")

# Techniques, as counted per scanner (indexes into _Scanner.counts).
# _HALF_OPEN is SYN scanning seen on an open port; it is reported as "syn".
_SYN, _HALF_OPEN, _CONNECT, _FIN, _NULL, _XMAS, _UDPT = range(7)
TECHNIQUES = ("syn", "connect", "fin", "null", "xmas", "udp")
_VERBS = {"syn": "SYN-scanned", "connect": "connect-scanned", "fin": "FIN-scanned",
          "null": "NULL-scanned", "xmas": "Xmas-scanned", "udp": "UDP-scanned"}

# Outcomes of failed attempts (indexes into _Scanner.counts, after the
# techniques).
_REJECTED, _UNANSWERED, _OPEN, _PROBE = range(7, 11)
_OUTCOMES = ("rejected", "unanswered", "open", "stealth")

_SEQ = 0xFFFFFFFF
# A SYN's answer acknowledges ISN + 1, or more when the SYN carried data
# (TCP Fast Open, RFC 7413): accept this much above ISN + 1.
_SYN_DATA = 65536
_XMAS_FLAGS = FIN | PSH | URG
_PORTS = Struct("!HH")
# ICMP destination unreachable codes that are not a failed attempt:
# fragmentation needed (path MTU discovery, RFC 1191).
_ICMP_NOT_FAILED = frozenset({4})


def _positive(instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be more than 0, not {value!r}")


def _port_range(instance, attribute, value) -> None:
    low, high = value
    if not 0 <= low <= high <= 65535:
        raise ValueError(f"{attribute.name} must be [low, high] ports, not {list(value)!r}")


@frozen
class PortScanSettings(DetectorSettings):
    """
    The C{[port_scan]} table.  Counts are of distinct items with a failed
    attempt within the last C{window} seconds.

    :ivar window: seconds over which failed attempts are counted (10.0).  A
        scan is caught when it fails on C{ports} ports (or C{hosts} hosts)
        within this time: 2 probes/s at the defaults, so nmap's ``-T2``
        (0.4 s between probes) is caught and ``-T1`` (15 s) is not.  Zeek
        uses 5 minutes; 10 s keeps the state of a busy host small and a
        scanner's alert ends soon after it stops.
    :ivar ports: distinct TCP ports with failed SYN or connect attempts on
        one target that make a vertical scan (20).  Zeek's
        C{port_scan_threshold} is 15 over 5 minutes; a client retrying a
        few fallback ports stays far below 20 in 10 s, and nmap's default
        scan passes it within its first 20 probes.
    :ivar hosts: distinct targets with failed TCP attempts on one port that
        make a horizontal scan (20).  Zeek's C{addr_scan_threshold} is 25
        over 5 minutes.
    :ivar udp_ports: distinct UDP ports with failed probes on one target
        (10).  Lower than C{ports} because UDP scans are slow: Linux sends
        at most one ICMP port unreachable a second to a source after a
        burst of 6 (C{net.ipv4.icmp_ratelimit}, ip-sysctl), so nmap slows
        down; the probes it sent in its first second fail (unanswered)
        after C{probe_timeout}, and 10 of them arrive within about 1.5 s.
    :ivar udp_hosts: distinct targets with failed UDP probes on one port
        (20), as C{hosts}.
    :ivar stealth_ports: distinct ports probed with FIN, NULL or Xmas
        segments on one target (5).  Such segments are never sent by a
        conforming stack, so a few suffice; 5 rules out one mangled
        segment.
    :ivar stealth_hosts: distinct targets probed on one port with FIN, NULL
        or Xmas segments (5).
    :ivar probe_timeout: seconds a SYN or UDP datagram may go unanswered
        before it counts as failed (1.0): longer than nearly every
        round-trip time, and short enough that a scan of a firewalled host
        is reported within about a second and a half.
    :ivar critical_ports: distinct ports at which the alert is critical
        (100; nmap's smallest preset, ``-F``, is 100 ports): a tool is
        surveying the host, beyond what any misconfigured client does.
    :ivar critical_hosts: distinct targets at which the alert is critical
        (100): a sweep of a network, not a few hosts.
    :ivar traceroute_ports: UDP destination ports not counted, [low, high]
        ([33434, 33534]): traceroute(8)'s default probes, which hop by hop
        go to ever higher ports and are often unanswered.
    :ivar scanners_max: sources with failed attempts tracked (10000); at
        the cap the least recently failing one is forgotten
        (C{scanners_evicted}).
    :ivar scanner_items_max: distinct (target, port) items kept per source
        (4096); past it the source's oldest item is forgotten
        (C{items_evicted}) and its counts are lower bounds (C{truncated}).
    :ivar items_max: items kept for all sources together (32768: eight
        sources at C{scanner_items_max}, about 9 MiB); at the cap the least
        recently failing source loses its oldest item (C{items_evicted}).
    :ivar probes_max: SYNs awaiting an answer, and UDP datagrams (16384
        each: 13,000 new connections a second at C{probe_timeout}); past it
        new ones are not followed (C{probes_dropped}).  Also the most UDP
        flows remembered for a window (C{udp_flows_dropped} past it): once
        a datagram is answered, the rest of its flow (a QUIC connection's
        last packets, an RTP stream's end) is not probes, and an answer
        after C{probe_timeout} is a late reply, not a probe.
    """

    window: float = field(default=10.0, validator=_positive)
    ports: int = field(default=20, validator=_positive)
    hosts: int = field(default=20, validator=_positive)
    udp_ports: int = field(default=10, validator=_positive)
    udp_hosts: int = field(default=20, validator=_positive)
    stealth_ports: int = field(default=5, validator=_positive)
    stealth_hosts: int = field(default=5, validator=_positive)
    probe_timeout: float = field(default=1.0, validator=_positive)
    critical_ports: int = field(default=100, validator=_positive)
    critical_hosts: int = field(default=100, validator=_positive)
    traceroute_ports: tuple[int, int] = field(default=(33434, 33534), validator=_port_range)
    scanners_max: int = field(default=10000, validator=_positive)
    scanner_items_max: int = field(default=4096, validator=_positive)
    items_max: int = field(default=32768, validator=_positive)
    probes_max: int = field(default=16384, validator=_positive)


class _Scanner:
    """
    A source with failed attempts in the window.  Kept small: there may be
    C{scanners_max} of them, most with one item.

    :ivar items: ``(class, target, port)`` to the time of its last failed
        attempt, least recent first (a refreshed item moves to the end).
    :ivar fanout: ``(class, target)`` to the distinct ports failed there,
        and ``(class, port)`` to the distinct targets failed on it (a target
        is octets and a port an int, so the two kinds of key never meet).
    :ivar ok: the same keys to successful attempts since C{ok_since}
        (only keys with failures, at most C{scanner_items_max}; cleared
        every window), or None before the first.
    :ivar counts: failed attempts by technique (C{_SYN} …) and by outcome
        (C{_REJECTED} …), cumulative.
    :ivar opened: ``(target, port)`` found open, at most L{EVIDENCE_ITEMS},
        or None before the first.
    :ivar samples: the newest packets of the scanner or answering it, at
        most L{SAMPLE_PACKETS}.
    :ivar signal: the alert as last assessed, or None below thresholds.
    """

    __slots__ = ("addr", "first", "last", "items", "fanout", "ok", "ok_since", "counts",
                 "opened", "samples", "truncated", "changed", "signal")

    def __init__(self, addr: bytes, now: float):
        self.addr = addr
        self.first = self.last = self.ok_since = now
        self.items: dict[tuple, float] = {}
        self.fanout: dict[tuple, int] = {}
        self.ok: Optional[dict[tuple, int]] = None
        self.counts = [0] * 11
        self.opened: Optional[dict[tuple, None]] = None
        self.samples: list = []
        self.truncated = False
        self.changed = True
        self.signal = None

    def sample(self, packet) -> None:
        samples = self.samples
        samples.append(packet)
        if len(samples) > SAMPLE_PACKETS:
            del samples[0]


class PortScanDetector:
    """
    Detects port scans (kind C{port_scan}) against this host, from it, or
    through it; one alert per scanner.

    Tables: pending TCP probes (SYN seen: ``[ts, ISN + 1, target ISN + 1 or
    -1]`` by ``(src, dst, sport, dport)``), pending UDP probes (ts by the
    same key), UDP flows of the last window (``(ts, answered)`` by their
    first probe's key: an answered flow's later datagrams either way are no
    probes, and an answer to an unanswered one is a late reply, not a
    probe), and the scanners.
    """

    name = "port_scan"
    kinds = (KIND,)
    protocols = frozenset({TCP, UDP, ICMP})
    settings_type = PortScanSettings

    def __init__(self, settings: PortScanSettings, context):
        """
        :param settings: the C{[port_scan]} table.
        :param context: the host's L{loopy.detect.base.DetectContext}.
        """
        self.settings = settings
        self._context = context
        self._allow = Networks(settings.allow)
        self._window = settings.window
        self._timeout = settings.probe_timeout
        self._probes_max = settings.probes_max
        self._trace_low, self._trace_high = settings.traceroute_ports
        self._vertical = (settings.ports, settings.udp_ports, settings.stealth_ports)
        self._horizontal = (settings.hosts, settings.udp_hosts, settings.stealth_hosts)
        self._tcp: dict[tuple, list] = {}
        self._udp: dict[tuple, float] = {}
        self._flows: dict[tuple, tuple[float, bool]] = {}
        self._scanners: OrderedDict[bytes, _Scanner] = OrderedDict()
        self._watch: set[bytes] = set()
        self._items = 0
        self._counters = dict.fromkeys(
            ("probes_dropped", "udp_flows_dropped", "failures", "successes",
             "late_replies", "icmp_errors", "scanners_evicted", "items_evicted"), 0)

    # -- per packet --------------------------------------------------------

    def observe(self, packet) -> None:
        """
        Follow one TCP, UDP or ICMP/ICMPv6 packet.  Plain segments (ACK,
        no SYN, RST or FIN) return after two bit tests.
        """
        proto = packet.proto
        if proto == IPPROTO_TCP:
            flags = packet.flags
            if flags & (SYN | RST | FIN | ACK) == ACK or packet.fragment:
                return
            self._segment(packet, flags)
        elif proto == IPPROTO_UDP:
            if packet.fragment:
                return
            saddr, daddr, sport, dport = packet.saddr, packet.daddr, packet.sport, packet.dport
            probes = self._udp
            reply = (daddr, saddr, dport, sport)
            if reply in probes:
                del probes[reply]
                self._answered(reply, packet.ts, False)
                return
            key = (saddr, daddr, sport, dport)
            if key in probes:
                return
            flows = self._flows
            if flows:
                flow = flows.get(reply)
                if flow is not None:
                    if not flow[1]:
                        self._answered(reply, packet.ts, True)
                    return  # the answering side of a flow
                flow = flows.get(key)
                if flow is not None and flow[1]:
                    return  # more from the side whose probe was answered
            if self._trace_low <= dport <= self._trace_high or (
                    daddr[0] >= 224 if len(daddr) == 4 else daddr[0] == 0xFF):
                return  # traceroute, or multicast and broadcast (never answered as such)
            if len(probes) >= self._probes_max:
                self._counters["probes_dropped"] += 1
                return
            probes[key] = packet.ts
            if self._scanners:
                scanner = self._scanners.get(saddr)
                if scanner is not None:
                    scanner.sample(packet)
        elif not packet.fragment:
            self._icmp(packet)

    def _answered(self, key: tuple, now: float, late: bool) -> None:
        """
        The UDP probe C{key} was answered (C{late}: after it had timed out
        and counted as failed): remember its flow for a window, so that
        neither side's later datagrams are taken for probes, and count a
        success for the prober.
        """
        flows = self._flows
        if late:
            self._counters["late_replies"] += 1
        flows.pop(key, None)  # kept in time order, for the sweep
        if len(flows) < self._probes_max:
            flows[key] = (now, True)
        else:
            self._counters["udp_flows_dropped"] += 1
        if key[0] in self._scanners:
            self._succeed(key[0], key[1], key[3], _UDP, now)

    def _segment(self, packet, flags: int) -> None:
        """
        A TCP segment with SYN, RST or FIN, or without ACK.
        """
        probes = self._tcp
        saddr, daddr, sport, dport = packet.saddr, packet.daddr, packet.sport, packet.dport
        if not flags & ACK:
            bits = flags & 0x3F  # without ECE and CWR
            if bits & SYN:
                if bits & RST:
                    return
                key = (saddr, daddr, sport, dport)
                if key in probes:
                    return  # retransmission
                if len(probes) >= self._probes_max:
                    self._counters["probes_dropped"] += 1
                    return
                probes[key] = [packet.ts, (packet.seq + 1) & _SEQ, -1]
                if self._scanners:
                    scanner = self._scanners.get(saddr)
                    if scanner is not None:
                        scanner.sample(packet)
            elif bits & RST:
                # The prober's kernel refusing a SYN-ACK it never asked for:
                # SEQ is the SYN-ACK's ACK (RFC 9293 3.10.7.1).
                key = (saddr, daddr, sport, dport)
                entry = probes.get(key)
                if entry is not None and entry[2] >= 0:
                    del probes[key]
                    if packet.seq == entry[1]:
                        self._fail(saddr, daddr, dport, _TCP, _HALF_OPEN, _OPEN, packet.ts, packet)
                    else:
                        self._succeed(saddr, daddr, dport, _TCP, packet.ts)
            elif bits == FIN:
                self._fail(saddr, daddr, dport, _STEALTH, _FIN, _PROBE, packet.ts, packet)
            elif bits == 0:
                self._fail(saddr, daddr, dport, _STEALTH, _NULL, _PROBE, packet.ts, packet)
            elif bits == _XMAS_FLAGS:
                self._fail(saddr, daddr, dport, _STEALTH, _XMAS, _PROBE, packet.ts, packet)
            return
        if flags & SYN:
            if flags & (RST | FIN):
                return
            entry = probes.get((daddr, saddr, dport, sport))
            if entry is not None and entry[2] < 0 and (packet.ack - entry[1]) & _SEQ < _SYN_DATA:
                entry[2] = (packet.seq + 1) & _SEQ
            return
        if flags & RST:
            # The target refusing the SYN?
            key = (daddr, saddr, dport, sport)
            entry = probes.get(key)
            if entry is not None:
                if entry[2] < 0 and (packet.ack - entry[1]) & _SEQ < _SYN_DATA:
                    del probes[key]
                    self._fail(daddr, saddr, sport, _TCP, _SYN, _REJECTED, packet.ts, packet)
                return
        # The prober ending a connection it opened (RST or FIN, with ACK).
        key = (saddr, daddr, sport, dport)
        entry = probes.get(key)
        if entry is not None and entry[2] >= 0:
            del probes[key]
            if packet.seq == entry[1] and packet.ack == entry[2]:
                self._fail(saddr, daddr, dport, _TCP, _CONNECT, _OPEN, packet.ts, packet)
            else:
                self._succeed(saddr, daddr, dport, _TCP, packet.ts)

    def _icmp(self, packet) -> None:
        """
        An ICMP or ICMPv6 error quoting a probe: destination unreachable
        fails it; time exceeded (traceroute) ends it uncounted.
        """
        kind, code = packet.icmp_type, packet.icmp_code
        if packet.proto == IPPROTO_ICMP:
            if kind == 3:
                failed = code not in _ICMP_NOT_FAILED
            elif kind == 11:
                failed = False
            else:
                return
        elif kind == 1:  # ICMPv6 destination unreachable (RFC 4443 3.1)
            failed = True
        elif kind == 3:  # ICMPv6 time exceeded
            failed = False
        else:
            return
        quoted = _quoted(packet.payload)
        if quoted is None:
            return
        proto, key = quoted
        self._counters["icmp_errors"] += 1
        if proto == IPPROTO_UDP:
            if self._udp.pop(key, None) is None:
                return
            technique, cls = _UDPT, _UDP
        else:
            entry = self._tcp.get(key)
            if entry is None or entry[2] >= 0:
                return
            del self._tcp[key]
            technique, cls = _SYN, _TCP
        if failed:
            self._fail(key[0], key[1], key[3], cls, technique, _REJECTED, packet.ts, packet)

    # -- failed and successful attempts --------------------------------------

    def _fail(self, scanner: bytes, target: bytes, port: int, cls: int, technique: int,
              outcome: int, now: float, packet) -> None:
        """
        Count one failed attempt of C{scanner} at C{target}'s C{port}.
        """
        context, allow = self._context, self._allow
        if context.allowed(scanner, allow) or context.allowed(target, allow):
            return
        self._counters["failures"] += 1
        scanners = self._scanners
        s = scanners.get(scanner)
        if s is None:
            if len(scanners) >= self.settings.scanners_max:
                _, old = scanners.popitem(last=False)
                self._forget(old)
                self._counters["scanners_evicted"] += 1
            s = scanners[scanner] = _Scanner(scanner, now)
        else:
            scanners.move_to_end(scanner)
        s.last = now
        counts = s.counts
        counts[technique] += 1
        counts[outcome] += 1
        s.changed = True
        if packet is not None:
            s.sample(packet)
        if outcome == _OPEN:
            if s.opened is None:
                s.opened = {}
            if len(s.opened) < EVIDENCE_ITEMS:
                s.opened[(target, port)] = None
        self._watch.add(scanner)
        item = (cls, target, port)
        items = s.items
        if item in items:
            del items[item]
            items[item] = now
            return
        if len(items) >= self.settings.scanner_items_max:
            s.truncated = True
            self._evict(s, keep=True)
        elif self._items >= self.settings.items_max:
            victim = next(iter(scanners.values()))
            self._evict(victim, keep=victim is s)
        items[item] = now
        self._items += 1
        fanout = s.fanout
        for key in ((cls, target), (cls, port)):
            fanout[key] = fanout.get(key, 0) + 1

    def _succeed(self, scanner: bytes, target: bytes, port: int, cls: int, now: float) -> None:
        """
        Count one successful attempt of a scanner (a source with failed
        attempts), against its failures there.
        """
        s = self._scanners.get(scanner)
        if s is None:
            return
        self._counters["successes"] += 1
        ok = s.ok
        if ok is None or now - s.ok_since >= self._window:
            ok = s.ok = {}
            s.ok_since = now
        most = self.settings.scanner_items_max
        for key in ((cls, target), (cls, port)):
            if key in s.fanout and (key in ok or len(ok) < most):
                ok[key] = ok.get(key, 0) + 1
                s.changed = True
                self._watch.add(scanner)

    def _evict(self, s: _Scanner, keep: bool) -> None:
        """
        Forget C{s}'s oldest item (a cap was reached); forget C{s} too when
        it has none left, unless C{keep}.
        """
        item = next(iter(s.items))
        del s.items[item]
        self._drop_item(s, item)
        self._counters["items_evicted"] += 1
        if not s.items and not keep:
            del self._scanners[s.addr]
            self._forget(s)

    def _drop_item(self, s: _Scanner, item: tuple) -> None:
        cls, target, port = item
        self._items -= 1
        s.changed = True
        fanout = s.fanout
        for key in ((cls, target), (cls, port)):
            n = fanout[key] - 1
            if n:
                fanout[key] = n
            else:
                del fanout[key]

    def _forget(self, s: _Scanner) -> None:
        self._items -= len(s.items)
        self._watch.discard(s.addr)

    # -- thresholds ----------------------------------------------------------

    def evaluate(self, now: float, book) -> None:
        """
        Time out unanswered probes, age the window, and signal every
        scanner over a threshold.
        """
        self._sweep(now)
        cutoff = now - self._window
        scanners = self._scanners
        while scanners:
            s = next(iter(scanners.values()))
            if s.last >= cutoff:
                break
            del scanners[s.addr]
            self._forget(s)
        for addr in list(self._watch):
            s = scanners.get(addr)
            if s is None:
                self._watch.discard(addr)
                continue
            for item, _ in _expired(s.items, cutoff):
                self._drop_item(s, item)
            if s.changed:
                s.signal = self._assess(s)
                s.changed = False
            if s.signal is None:
                self._watch.discard(addr)
                continue
            severity, summary, src, dst, evidence = s.signal
            book.signal(KIND, addr, now, severity, summary, src=src, dst=dst,
                        evidence=evidence)

    def _sweep(self, now: float) -> None:
        """
        Probes unanswered for C{probe_timeout}: an unanswered SYN or UDP
        datagram failed; a connection answered and not torn down at once
        succeeded.  UDP flows are remembered for a window.
        """
        cutoff = now - self._timeout
        for key, entry in _expired(self._tcp, cutoff, 0):
            if entry[2] < 0:
                self._fail(key[0], key[1], key[3], _TCP, _SYN, _UNANSWERED, now, None)
            else:
                self._succeed(key[0], key[1], key[3], _TCP, now)
        flows = self._flows
        for key, _ in _expired(self._udp, cutoff):
            self._fail(key[0], key[1], key[3], _UDP, _UDPT, _UNANSWERED, now, None)
            flows.pop(key, None)
            if len(flows) < self._probes_max:
                flows[key] = (now, False)
            else:
                self._counters["udp_flows_dropped"] += 1
        _expired(flows, now - self._window, 0)

    def _assess(self, s: _Scanner) -> Optional[tuple]:
        """
        The alert for C{s} as ``(severity, summary, src, dst, evidence)``,
        or None when no threshold is crossed.
        """
        ok = s.ok or {}
        vertical, horizontal = [], []
        for key, n in s.fanout.items():
            cls, where = key
            if where.__class__ is int:
                if n >= self._horizontal[cls] and n > ok.get(key, 0):
                    horizontal.append((n, cls, where))
            elif n >= self._vertical[cls] and n > ok.get(key, 0):
                vertical.append((n, cls, where))
        if not vertical and not horizontal:
            return None
        hit_targets = {(cls, target) for _, cls, target in vertical}
        hit_ports = {(cls, port) for _, cls, port in horizontal}
        ports, targets = set(), set()
        for cls, target, port in s.items:
            if (cls, target) in hit_targets or (cls, port) in hit_ports:
                ports.add(port)
                targets.add(target)
        techniques = _techniques(s.counts)
        technique = max(techniques, key=techniques.get)
        src = address_text(s.addr)
        dst = address_text(next(iter(targets))) if len(targets) == 1 else None
        shape = "block" if vertical and horizontal else "vertical" if vertical else "horizontal"
        if any(self._context.is_local(t) for t in targets):
            direction = "inbound"
        elif self._context.is_local(s.addr):
            direction = "outbound"
        else:
            direction = "transit"
        evidence = {
            "technique": technique,
            "techniques": techniques,
            "shape": shape,
            "direction": direction,
            "ports": sorted(ports)[:EVIDENCE_ITEMS],
            "ports_count": len(ports),
            "targets": [address_text(t) for t in sorted(targets)[:EVIDENCE_ITEMS]],
            "targets_count": len(targets),
            "attempts": sum(s.counts[:_REJECTED]),
            "outcomes": {name: n for name, n in zip(_OUTCOMES, s.counts[_REJECTED:]) if n},
            "open": [_endpoint(t, p) for t, p in sorted(s.opened or ())],
            "window": self._window,
            "truncated": s.truncated,
            "first_seen": s.first,
            "samples": [packet_line(p) for p in s.samples],
        }
        if vertical:
            n, cls, target = max(vertical)
            evidence["vertical"] = {"target": address_text(target), "probes": _CLASS_NAMES[cls],
                                    "ports_count": n, "threshold": self._vertical[cls]}
        if horizontal:
            n, cls, port = max(horizontal)
            evidence["horizontal"] = {"port": port, "probes": _CLASS_NAMES[cls],
                                      "targets_count": n, "threshold": self._horizontal[cls]}
        settings = self.settings
        critical = (len(ports) >= settings.critical_ports
                    or len(targets) >= settings.critical_hosts)
        summary = _summary(src, dst, technique, sorted(ports), targets, s.truncated)
        return ("critical" if critical else "warning", summary, src, dst, evidence)

    def stats(self) -> dict[str, int]:
        """
        Table sizes: C{scanners}, C{items} (theirs, all together),
        C{tcp_probes}, C{udp_probes}, C{udp_flows}, C{suspects} (scanners
        over a threshold or with news to assess).  Counters, cumulative:
        C{failures} and C{successes} (of tracked scanners) counted,
        C{late_replies}, C{icmp_errors} (quoting a TCP or UDP header), and
        what the caps cost: C{probes_dropped}, C{udp_flows_dropped},
        C{scanners_evicted}, C{items_evicted}.
        """
        return {
            "scanners": len(self._scanners),
            "items": self._items,
            "tcp_probes": len(self._tcp),
            "udp_probes": len(self._udp),
            "udp_flows": len(self._flows),
            "suspects": len(self._watch),
            **self._counters,
        }


def _expired(table: dict, cutoff: float, at: Optional[int] = None) -> list[tuple]:
    """
    Remove and return the entries of C{table} older than C{cutoff}.

    :param table: key to a time (or to a sequence whose item C{at} is the
        time), in order of time: only the front is looked at.
    :returns: the ``(key, value)`` pairs removed, oldest first.
    """
    stale = []
    for key, value in table.items():
        if (value if at is None else value[at]) >= cutoff:
            break
        stale.append((key, value))
    for key, _ in stale:
        del table[key]
    return stale


def _quoted(payload: bytes) -> Optional[tuple[int, tuple]]:
    """
    The probe an ICMP error quotes (RFC 792, RFC 4443: after 4 octets, the
    original IP header and at least 8 octets of what followed).

    :param payload: the ICMP body after type, code and checksum.
    :returns: ``(protocol, (src, dst, sport, dport))`` for a quoted TCP or
        UDP header, else None (truncated, a later fragment, IPv6 extension
        headers).
    """
    if len(payload) < 32:
        return None
    version = payload[4] >> 4
    if version == 4:
        ihl = (payload[4] & 0x0F) * 4
        if ihl < 20 or (payload[10] & 0x1F or payload[11]):
            return None
        proto, src, dst, start = payload[13], payload[16:20], payload[20:24], 4 + ihl
    elif version == 6:
        proto, src, dst, start = payload[10], payload[12:28], payload[28:44], 44
    else:
        return None
    if (proto != IPPROTO_UDP and proto != IPPROTO_TCP) or len(payload) < start + 4:
        return None
    sport, dport = _PORTS.unpack_from(payload, start)
    return proto, (src, dst, sport, dport)


def _techniques(counts: list[int]) -> dict[str, int]:
    """
    Failed attempts by technique name.  A SYN refused or unanswered looks
    the same from a SYN scan and a connect scan; it is counted as
    C{connect} when the scanner completed handshakes it tore down and never
    left one half-open, else as C{syn}.
    """
    syn, connect = counts[_SYN], counts[_CONNECT]
    if connect and not counts[_HALF_OPEN]:
        syn, connect = 0, connect + syn
    else:
        syn += counts[_HALF_OPEN]
    named = dict(zip(TECHNIQUES, (syn, connect, counts[_FIN], counts[_NULL], counts[_XMAS],
                                  counts[_UDPT])))
    return {name: n for name, n in named.items() if n}


def _endpoint(addr: bytes, port: int) -> str:
    text = address_text(addr)
    return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"


def _span(values: list) -> str:
    """
    ``ports 1-1024`` for a long sorted list, ``ports 21, 22, 80`` for a
    short one (of ports; of hosts, without the word).
    """
    word = "ports " if values and values[0].__class__ is int else ""
    if len(values) <= 3:
        return word + ", ".join(str(v) for v in values)
    return f"{word}{values[0]}-{values[-1]}"


def _summary(src: str, dst: Optional[str], technique: str, ports: list, targets: set,
             truncated: bool) -> str:
    """
    One line: ``192.0.2.9 SYN-scanned 1000 ports on 192.0.2.1 (ports 1-1024)``.
    """
    verb = _VERBS[technique]
    more = "+" if truncated else ""
    if dst is not None:
        return f"{src} {verb} {_count(len(ports), more, 'port')} on {dst} ({_span(ports)})"
    hosts = [address_text(t) for t in sorted(targets)]
    on_hosts = f"on {_count(len(hosts), more, 'host')}"
    if len(ports) == 1:
        return f"{src} {verb} port {ports[0]} {on_hosts} ({_span(hosts)})"
    return f"{src} {verb} {_count(len(ports), more, 'port')} {on_hosts}"


def _count(n: int, more: str, noun: str) -> str:
    return f"{n}{more} {noun}" + ("" if n == 1 and not more else "s")
