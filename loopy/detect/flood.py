# -*- test-case-name: tests.test_detect_flood -*-
"""
Flood detectors: SYN floods against a service (L{SynFloodDetector}) and
ICMP echo floods (L{IcmpFloodDetector}); and the windowed counting they
share with the detectors of L{loopy.detect.amplification}.

Each detector measures in windows of C{window} seconds.  Within a window it
counts packets per key (a service ``(daddr, dport)`` or a destination
address) in a table of integers (L{KeyTable}); a key whose count reaches an
eighth of the fewest packets that could cross a threshold becomes a
I{suspect} (L{Suspect}): a record of its sources, a few packets and what
its detector needs to judge it.  When the window ends, every suspect is
judged on the rates of the whole window, the counts are forgotten, and
suspects that went quiet are dropped.  A flood found is signalled at every
evaluation until the next window ends, so the alert book ends its alert
C{quiet_after} seconds after the last window that found it.

docs/detectors/flood.md gives the reasons for every threshold.
"""

from __future__ import annotations

import heapq
from collections import deque
from math import ceil
from typing import Any, Callable, Optional

from attrs import field, frozen
from attrs.validators import ge, gt, le

from loopy.detect.base import (
    ICMP, SAMPLE_PACKETS, TCP, DetectorSettings, Networks, packet_line,
)
from loopy.dissect.headers import ACK, IPPROTO_ICMPV6, RST, SYN, address_text

#: Sources an alert's evidence lists, busiest first.
TOP_SOURCES = 10
#: A key becomes a suspect at this share of the packets a window needs to
#: cross its threshold: early enough that a flood's sources and samples are
#: of nearly the whole window, late enough that ordinary traffic stays in
#: the table of integers.
PROMOTE_SHARE = 1 / 8

#: Validators of settings values.
positive = gt(0)
at_least_one = ge(1)
a_share = [gt(0), le(1)]


@frozen
class FloodSettings(DetectorSettings):
    """
    What every flood detector's settings have.

    :ivar window: seconds per measuring window (2.0).  Rates are packets
        counted over a whole window: two seconds hold 400 SYNs at the SYN
        threshold, enough for a ratio to mean something, and several round
        trips, so that handshakes still in flight when a window ends barely
        matter; a flood is alerted on within two windows (at most 4 s).
    :ivar keys_max: keys (services, destinations) counted per window
        (16384, 1 to 2 MiB when full): more than the services or hosts a
        busy server exchanges packets with in two seconds; packets for new
        keys past it are not counted (C{keys_refused}) until the window
        ends.
    :ivar suspects_max: keys watched in detail at once (64, with their
        sources and samples about 30 KiB each when full): a host has a few
        services or peers at an eighth of a flood's rate; past it the least
        recently seen suspect is evicted (C{suspects_evicted}).
    :ivar sources_max: distinct sources counted per suspect and window
        (256): enough to tell one, a few, a botnet and random spoofing
        apart; packets from further sources are counted as untracked, and
        the evidence says the count is at its cap.
    :ivar single_share: share of a flood's packets from one source for that
        source to be named the attacker (0.9).
    :ivar critical_factor: a flood at this multiple of its threshold is
        critical, under it a warning (10.0: an order of magnitude over
        a threshold set near the edge of normal traffic).
    """

    window: float = field(default=2.0, validator=positive)
    keys_max: int = field(default=16384, validator=at_least_one)
    suspects_max: int = field(default=64, validator=at_least_one)
    sources_max: int = field(default=256, validator=at_least_one)
    single_share: float = field(default=0.9, validator=a_share)
    critical_factor: float = field(default=10.0, validator=ge(1))


@frozen
class SpoofableFloodSettings(FloodSettings):
    """
    Settings of floods whose sources may be spoofed.

    :ivar many_sources: distinct sources from which a flood counts as coming
        from many (100).
    :ivar spoofed_per_source: most packets per source and window, on average,
        for many sources to look spoofed at random (3.0): ``hping3
        --rand-source`` draws each packet's address from the whole IPv4
        space, so nearly every source sends one packet, while real hosts of
        a botnet or a busy service's clients send dozens each.
    """

    many_sources: int = field(default=100, validator=at_least_one)
    spoofed_per_source: float = field(default=3.0, validator=positive)


class Suspect:
    """
    A key watched in detail, in the current window.

    :ivar key: its key in the table.
    :ivar pre: its packets in the window before it became a suspect.
    :ivar seen: its packets since (the rest counts these only).
    :ivar octets: IP octets of the C{seen} packets.
    :ivar sources: source address octets to packets, at most C{sources_max}.
    :ivar untracked: packets from sources past that cap.
    :ivar samples: the newest few packets (kept across windows).
    :ivar last: ts of its newest packet, seconds.
    :ivar fresh: True in the window it became a suspect.
    """

    __slots__ = ("key", "pre", "seen", "octets", "sources", "untracked", "samples",
                 "last", "fresh")

    def __init__(self, key: Any, pre: int, ts: float):
        self.key = key
        self.pre = pre
        self.seen = self.octets = self.untracked = 0
        self.sources: dict[bytes, int] = {}
        self.samples: deque = deque(maxlen=SAMPLE_PACKETS)
        self.last = ts
        self.fresh = True

    @property
    def packets(self) -> int:
        """
        Its packets in the window.
        """
        return self.pre + self.seen

    def add(self, packet, sources_max: int, octets: int) -> None:
        """
        Count C{packet}, of C{octets}, from its source.
        """
        self.seen += 1
        self.octets += octets
        self.last = packet.ts
        sources = self.sources
        addr = packet.saddr
        n = sources.get(addr)
        if n is not None:
            sources[addr] = n + 1
        elif len(sources) < sources_max:
            sources[addr] = 1
        else:
            self.untracked += 1

    def reset(self) -> None:
        """
        Start a new window.
        """
        self.pre = self.seen = self.octets = self.untracked = 0
        self.sources = {}
        self.fresh = False

    def sample_lines(self) -> list[str]:
        return [packet_line(p) for p in self.samples]


class KeyTable:
    """
    Packet counts per key in the current window, and the suspects among the
    keys.

    :ivar counts: key to packets this window (keys not suspects), at most
        C{keys_max}; new keys past it are refused (C{keys_refused}).
    :ivar suspects: key to L{Suspect}, at most C{suspects_max}; the least
        recently seen is evicted for a new one (C{evicted}).
    :ivar promote: packets in a window that make a key a suspect.
    """

    def __init__(self, suspect_type: type, settings: FloodSettings, per_second: float,
                 bits_per_second: Optional[float] = None, largest: int = 1,
                 admit: Optional[Callable[[Any], bool]] = None):
        """
        :param suspect_type: the L{Suspect} subclass to make.
        :param per_second: the detector's packet-rate threshold; with
            C{bits_per_second} and C{largest}, the promotion count
            (L{promotion}).
        :param admit: which keys may become suspects [default: all].
        """
        self.counts: dict = {}
        self.suspects: dict = {}
        self._suspect_type = suspect_type
        self.promote = promotion(settings, per_second, bits_per_second, largest)
        self._keys_max = settings.keys_max
        self._suspects_max = settings.suspects_max
        self._admit = admit
        self.keys_refused = self.evicted = self.promoted = self.dropped = 0

    def count(self, key: Any, ts: float) -> Optional[Suspect]:
        """
        Count a packet for C{key}, not a suspect.

        :returns: its new suspect when this packet makes it one (the caller
            then accounts the packet to it), else None.
        """
        counts = self.counts
        n = counts.get(key)
        if n is None:
            if len(counts) >= self._keys_max:
                self.keys_refused += 1
                return None
            n = 0
        n += 1
        counts[key] = n
        if n != self.promote or (self._admit is not None and not self._admit(key)):
            return None
        suspects = self.suspects
        if len(suspects) >= self._suspects_max:
            oldest = min(suspects.values(), key=lambda s: s.last)
            del suspects[oldest.key]
            self.evicted += 1
        suspect = suspects[key] = self._suspect_type(key, n - 1, ts)
        self.promoted += 1
        return suspect

    def close(self) -> None:
        """
        End the window: forget the counts, drop the suspects that stayed
        under the promotion count, and start the others' new window.
        """
        self.counts.clear()
        suspects = self.suspects
        for key in [k for k, s in suspects.items() if s.packets < self.promote]:
            del suspects[key]
            self.dropped += 1
        for suspect in suspects.values():
            suspect.reset()

    def stats(self) -> dict[str, int]:
        return {
            "keys": len(self.counts),
            "keys_refused": self.keys_refused,
            "suspects": len(self.suspects),
            "suspects_promoted": self.promoted,
            "suspects_dropped": self.dropped,
            "suspects_evicted": self.evicted,
        }


def promotion(settings: FloodSettings, per_second: float,
              bits_per_second: Optional[float] = None, largest: int = 1) -> int:
    """
    Packets in a window that make a key a suspect: L{PROMOTE_SHARE} of the
    fewest packets that can cross a threshold.

    :param per_second: the packet-rate threshold.
    :param bits_per_second: the bit-rate threshold, if any.
    :param largest: octets of the largest packet counted, which crosses the
        bit-rate threshold with the fewest packets.
    """
    rate = per_second
    if bits_per_second is not None:
        rate = min(rate, bits_per_second / (8 * largest))
    return max(1, ceil(rate * settings.window * PROMOTE_SHARE))


@frozen
class Flood:
    """
    A flood found at the end of a window, signalled until the next ends.
    """

    kind: str
    subject: Any
    severity: str
    summary: str
    src: Optional[str]
    dst: Optional[str]
    evidence: dict


def describe_sources(suspect: Suspect, settings: FloodSettings, noun: str = "sources",
                     spoofable: bool = True) -> tuple[dict, Optional[bytes], str]:
    """
    The evidence about a suspect's sources.

    :param noun: the word of the evidence keys (``sources``, ``reflectors``).
    :param spoofable: whether to say how the sources are spread
        (C{source_distribution}: ``single`` when one source sent
        C{single_share} of the packets; ``many_spoofed`` for C{many_sources}
        or more sending C{spoofed_per_source} packets or fewer each on
        average; ``many`` for as many sending more; else ``few``).
    :returns: the evidence keys, the single source's octets or None, and a
        phrase for the summary (``192.0.2.9``, ``≥ 1,024 spoofed sources``).
    """
    sources = suspect.sources
    tracked = sum(sources.values())
    attributed = tracked + suspect.untracked
    top = heapq.nlargest(TOP_SOURCES, sources.items(), key=lambda kv: kv[1])
    single = top[0][0] if top and top[0][1] >= settings.single_share * attributed else None
    capped = suspect.untracked > 0
    count = len(sources)
    evidence = {
        f"{noun}_count": count,
        f"{noun}_at_cap": capped,
        f"top_{noun}": [{"src": address_text(a), "packets": n} for a, n in top],
    }
    amount = f"{'≥ ' if capped else ''}{count:,}"
    if single is not None:
        distribution, phrase = "single", address_text(single)
    elif spoofable and count >= settings.many_sources:
        if tracked / count <= settings.spoofed_per_source:
            distribution, phrase = "many_spoofed", f"{amount} likely spoofed {noun}"
        else:
            distribution, phrase = "many", f"{amount} {noun}"
    else:
        distribution, phrase = "few", f"{amount} {noun}"
    if spoofable:
        evidence["source_distribution"] = distribution
    return evidence, single, phrase


class WindowedDetector:
    """
    What the flood detectors share: the window clock, the allow-lists, and
    signalling the floods the last window found.

    A subclass sets C{settings_type} and implements L{_judge_window}.

    :ivar windows: windows ended.
    """

    name = ""
    kinds: tuple[str, ...] = ()
    protocols: frozenset = frozenset()
    settings_type: type = FloodSettings

    def __init__(self, settings: FloodSettings, context):
        self.settings = settings
        self.context = context
        self._allow = Networks(settings.allow)
        self._start: Optional[float] = None
        self._floods: list[Flood] = []
        self.windows = 0

    def evaluate(self, now: float, book) -> None:
        """
        End the window when it is over, and signal the floods it found.
        """
        start = self._start
        if start is None or now < start:
            # The first evaluation, or a clock that stepped back (a replay
            # of another file): a new window from now.
            self._start = now
        elif now - start >= self.settings.window:
            self._floods = self._judge_window(now, now - start)
            self._start = now
            self.windows += 1
        for f in self._floods:
            book.signal(f.kind, f.subject, now, f.severity, f.summary,
                        src=f.src, dst=f.dst, evidence=f.evidence)

    def _judge_window(self, now: float, elapsed: float) -> list[Flood]:
        """
        Judge the suspects of the window that ends at C{now}, and start the
        next.

        :param elapsed: the window's length, seconds (at least C{window}).
        """
        raise NotImplementedError()

    def _allowed(self, addr: Optional[bytes]) -> bool:
        return self.context.allowed(addr, self._allow)

    def _allowed_packets(self, suspect: Suspect) -> int:
        """
        The suspect's packets from allow-listed sources.
        """
        if not (self.context.allow or self._allow):
            return 0
        return sum(n for addr, n in suspect.sources.items() if self._allowed(addr))

    def _flood(self, subject: Any, ratios: tuple[float, ...], summary: str,
               single: Optional[bytes], dst: str, evidence: dict) -> Flood:
        """
        The flood of this detector's kind on C{subject}: ``critical`` when
        a measure is C{critical_factor} times its threshold (C{ratios}:
        measure over threshold), else a ``warning``; from C{single}, the
        one source's octets, or None.
        """
        severity = "critical" if max(ratios) >= self.settings.critical_factor else "warning"
        return Flood(self.kinds[0], subject, severity, summary, address_text(single), dst,
                     evidence)

    def _window_evidence(self, elapsed: float, **thresholds) -> dict:
        """
        The evidence keys every flood has.
        """
        return {
            "window_seconds": round(elapsed, 3),
            "thresholds": thresholds,
        }

    def _stats(self) -> dict[str, int]:
        return {"windows": self.windows, "floods": len(self._floods)}


def reason(rate: float, threshold: float, what: str, bps: float, bps_threshold: float) -> str:
    """
    The thresholds a flood crossed, for its evidence: ``1,000 echo
    requests/s >= 500`` and/or ``13.1 Mbit/s >= 10 Mbit/s``.
    """
    crossed = [f"{rate:,.0f} {what}/s >= {threshold:,g}"] if rate >= threshold else []
    return " and ".join(crossed + bits_crossed(bps, bps_threshold))


def bits_crossed(bps: float, threshold: float) -> list[str]:
    """
    ``13.1 Mbit/s >= 10 Mbit/s`` when C{bps} crossed C{threshold}, in a list.
    """
    return [f"{bps / 1e6:,.1f} Mbit/s >= {threshold / 1e6:,g} Mbit/s"] if bps >= threshold else []


def per_second(count: float, elapsed: float) -> float:
    """
    C{count} over C{elapsed} seconds, per second, to a tenth.
    """
    return round(count / elapsed, 1)


@frozen
class SynFloodSettings(SpoofableFloodSettings):
    """
    Settings of the C{syn_flood} detector.

    :ivar syn_per_second: SYNs per second to one service (200.0): a busy
        web server takes thousands of connections a second, but those
        complete; 200 a second that do not is no mistyped address or
        restarting client, and fills a Linux listener's SYN queue (at most
        ``tcp_max_syn_backlog``, 128 on small machines and more with
        memory, and the listen backlog; each half-open connection kept
        about a minute by ``tcp_synack_retries`` 5) within seconds.
    :ivar completion_ratio_max: most handshakes completed per SYN for a
        flood (0.5): a working service completes nearly all (0.9 and more,
        retransmitted SYNs of lossy clients included), a flood next to none;
        0.5 finds a flood once it is as large as the legitimate connection
        rate (0.2 would need four times as large).
    :ivar pending_max: SYNs of suspect services awaiting their handshake's
        last ACK (32768, about 2.5 MiB): in two generations, one per window;
        when the current one is full, further SYNs are not followed
        (C{pending_refused}) and the ratio is of those followed.
    """

    syn_per_second: float = field(default=200.0, validator=positive)
    completion_ratio_max: float = field(default=0.5, validator=a_share)
    pending_max: int = field(default=32768, validator=ge(2))


#: Fewest followed handshakes for a completion ratio to be judged.
MIN_HANDSHAKES = 20


class _Service(Suspect):
    """
    A service receiving many SYNs.

    :ivar syn_acks: SYN-ACKs it sent this window; C{rsts} resets it sent.
    :ivar followed: its SYNs whose handshake is followed (in the pending table).
    :ivar completed: handshakes completed (the client's ACK of the SYN-ACK).
    """

    __slots__ = ("syn_acks", "rsts", "followed", "completed")

    def __init__(self, key, pre, ts):
        super().__init__(key, pre, ts)
        self.syn_acks = self.rsts = self.followed = self.completed = 0

    def reset(self) -> None:
        super().reset()
        self.syn_acks = self.rsts = self.followed = self.completed = 0


_SEQ = 0xFFFFFFFF


class SynFloodDetector(WindowedDetector):
    """
    SYN floods against one service ``(daddr, dport)``: SYNs at
    C{syn_per_second} or more, of which fewer than C{completion_ratio_max}
    complete their handshake.

    A handshake completes when the client's next segment (ACK, no SYN nor
    RST) carries the SYN's sequence number plus one (RFC 9293 section
    3.5): SYNs of suspect services are kept by ``(sport, dport, ISN + 1)``
    in a pending table of two generations, one per window, so a handshake
    has one to two windows to complete.  The SYN-ACKs and RSTs the service
    sends back say how it copes (C{server_response}).
    """

    name = "syn_flood"
    kinds = ("syn_flood",)
    protocols = frozenset({TCP})
    settings_type = SynFloodSettings

    def __init__(self, settings: SynFloodSettings, context):
        super().__init__(settings, context)
        self._table = KeyTable(_Service, settings, settings.syn_per_second)
        self._suspects = self._table.suspects
        self._sources_max = settings.sources_max
        self._pending: dict[int, _Service] = {}
        self._old: dict[int, _Service] = {}
        self._generation_max = settings.pending_max // 2
        self.pending_refused = self.pending_expired = 0

    def observe(self, packet) -> None:
        flags = packet.flags
        if flags & SYN:
            if flags & ACK:
                service = self._suspects.get((packet.saddr, packet.sport))
                if service is not None:
                    service.syn_acks += 1
                return
            key = (packet.daddr, packet.dport)
            service = self._suspects.get(key)
            if service is None:
                service = self._table.count(key, packet.ts)
                if service is None:
                    return
            service.add(packet, self._sources_max, packet.ip_len)
            service.samples.append(packet)
            pending = self._pending
            if len(pending) < self._generation_max:
                pending[((packet.sport << 16 | packet.dport) << 32)
                        | ((packet.seq + 1) & _SEQ)] = service
                service.followed += 1
            else:
                self.pending_refused += 1
        elif flags & RST:
            # A reset from the service: the port is closed or it refuses.
            # (A reset from a spoofed source's real owner carries the SYN's
            # ISN + 1 too, and must not count as a completed handshake.)
            service = self._suspects.get((packet.saddr, packet.sport))
            if service is not None:
                service.rsts += 1
        elif flags & ACK:
            pending = self._pending
            old = self._old
            if pending or old:
                key = (packet.sport << 16 | packet.dport) << 32 | packet.seq
                service = pending.pop(key, None)
                if service is None and old:
                    service = old.pop(key, None)
                if service is not None:
                    service.completed += 1

    def _judge_window(self, now: float, elapsed: float) -> list[Flood]:
        floods = []
        for service in self._suspects.values():
            # A service's first window is not judged: it was followed for
            # part of it, and its last handshakes had no time to complete.
            if not service.fresh and not self._allowed(service.key[0]):
                flood = self._judge(service, elapsed)
                if flood is not None:
                    floods.append(flood)
        self._table.close()
        self.pending_expired += len(self._old)
        self._old = self._pending
        self._pending = {}
        return floods

    def _judge(self, service: _Service, elapsed: float) -> Optional[Flood]:
        settings = self.settings
        syns = service.packets - self._allowed_packets(service)
        rate = syns / elapsed
        if rate < settings.syn_per_second or service.followed < MIN_HANDSHAKES:
            return None
        completion = min(1.0, service.completed / service.followed)
        if completion >= settings.completion_ratio_max:
            return None
        daddr, dport = service.key
        dst = address_text(daddr)
        if service.syn_acks >= 0.5 * service.packets:
            response = "syn_ack"
        elif service.rsts >= 0.5 * service.packets:
            response = "rst"
        else:
            response = "none"
        sources, single, phrase = describe_sources(service, settings)
        evidence = {
            "dport": dport,
            "syn_per_second": round(rate, 1),
            "syn_ack_per_second": per_second(service.syn_acks, elapsed),
            "rst_per_second": per_second(service.rsts, elapsed),
            "completion_ratio": round(completion, 3),
            "syn_ack_ratio": round(service.syn_acks / max(1, service.packets), 3),
            "server_response": response,
            "syns": syns,
            "handshakes_followed": service.followed,
            "handshakes_completed": service.completed,
            **sources,
            "reason": (f"{rate:,.0f} SYN/s >= {settings.syn_per_second:g} and "
                       f"{completion:.0%} of handshakes completed < "
                       f"{settings.completion_ratio_max:.0%}"),
            **self._window_evidence(elapsed, syn_per_second=settings.syn_per_second,
                                    completion_ratio_max=settings.completion_ratio_max),
            "samples": service.sample_lines(),
        }
        summary = (f"SYN flood on {dst} port {dport}: {rate:,.0f} SYN/s from {phrase}, "
                   f"{completion:.0%} of handshakes completed")
        return self._flood(service.key, (rate / settings.syn_per_second,), summary, single,
                           dst, evidence)

    def stats(self) -> dict[str, int]:
        return {
            **self._table.stats(),
            "pending": len(self._pending) + len(self._old),
            "pending_refused": self.pending_refused,
            "pending_expired": self.pending_expired,
            **self._stats(),
        }


@frozen
class IcmpFloodSettings(SpoofableFloodSettings):
    """
    Settings of the C{icmp_flood} detector.

    :ivar echo_per_second: echo requests per second to one destination, or
        unsolicited echo replies to one (500.0): ping(8) sends one a
        second, ``ping -i 0.2`` (the least interval an unprivileged user
        may ask) five, monitoring systems a few to tens; ``ping -f`` sends
        at least 100 and as fast as replies come, thousands a second on a
        LAN.
    :ivar bits_per_second: or that many bits per second of them, fragments
        included (10,000,000): a flood of large pings (``ping -s 65000``)
        under the packet rate; ordinary pings of 84 octets a second are
        700 bit/s.
    """

    echo_per_second: float = field(default=500.0, validator=positive)
    bits_per_second: float = field(default=10_000_000.0, validator=positive)


#: ICMP echo request and reply types: ICMP (RFC 792) and ICMPv6 (RFC 4443).
_ECHO_REQUEST = {False: 8, True: 128}
_ECHO_REPLY = {False: 0, True: 129}
_ECHO_LARGEST = 65535  # octets of the largest echo request, fragments included


class IcmpFloodDetector(WindowedDetector):
    """
    ICMP and ICMPv6 echo floods on one destination: echo requests at
    C{echo_per_second} or C{bits_per_second} (technique ``echo_request``),
    or echo replies the destination did not ask for at those rates
    (``echo_reply``: replies beyond the requests it sent in the window,
    as in a smurf attack or the backscatter of a ping flood with the
    victim's address as source).
    """

    name = "icmp_flood"
    kinds = ("icmp_flood",)
    protocols = frozenset({ICMP})
    settings_type = IcmpFloodSettings

    def __init__(self, settings: IcmpFloodSettings, context):
        super().__init__(settings, context)
        thresholds = (settings.echo_per_second, settings.bits_per_second, _ECHO_LARGEST)
        self._requests = KeyTable(Suspect, settings, *thresholds)
        self._replies = KeyTable(Suspect, settings, *thresholds)
        self._asked: dict[bytes, int] = {}
        self._sources_max = settings.sources_max
        self._keys_max = settings.keys_max
        self.askers_refused = 0

    def observe(self, packet) -> None:
        kind = packet.icmp_type
        v6 = packet.proto == IPPROTO_ICMPV6
        if kind == _ECHO_REQUEST[v6]:
            table = self._requests
            # Requests each host sent, to tell the replies it asked for.
            asked = self._asked
            n = asked.get(packet.saddr)
            if n is not None:
                asked[packet.saddr] = n + 1
            elif len(asked) < self._keys_max:
                asked[packet.saddr] = 1
            else:
                self.askers_refused += 1
        elif kind == _ECHO_REPLY[v6]:
            table = self._replies
        else:
            if packet.fragment:
                # A later fragment of a large echo request, perhaps.
                target = self._requests.suspects.get(packet.daddr)
                if target is not None:
                    target.octets += packet.ip_len
            return
        target = table.suspects.get(packet.daddr)
        if target is None:
            target = table.count(packet.daddr, packet.ts)
            if target is None:
                return
        target.add(packet, self._sources_max, packet.ip_len)
        target.samples.append(packet)

    def _judge_window(self, now: float, elapsed: float) -> list[Flood]:
        floods = []
        for technique, table in (("echo_request", self._requests), ("echo_reply", self._replies)):
            for target in table.suspects.values():
                if not self._allowed(target.key):
                    flood = self._judge(technique, target, elapsed)
                    if flood is not None:
                        floods.append(flood)
            table.close()
        self._asked.clear()
        return floods

    def _judge(self, technique: str, target: Suspect, elapsed: float) -> Optional[Flood]:
        settings = self.settings
        count = target.packets - self._allowed_packets(target)
        asked = 0
        if technique == "echo_reply":
            asked = self._asked.get(target.key, 0)
            count -= asked
        if count <= 0 or not target.seen:
            return None
        rate = count / elapsed
        bps = target.octets / target.seen * count * 8 / elapsed
        if rate < settings.echo_per_second and bps < settings.bits_per_second:
            return None
        dst = address_text(target.key)
        sources, single, phrase = describe_sources(target, settings)
        what = "echo requests" if technique == "echo_request" else "unsolicited echo replies"
        evidence = {
            "technique": technique,
            "packets_per_second": round(rate, 1),
            "bits_per_second": round(bps),
            "mean_octets": round(target.octets / target.seen),
            "packets": count,
            **sources,
            "reason": reason(rate, settings.echo_per_second, what, bps, settings.bits_per_second),
            **self._window_evidence(elapsed, echo_per_second=settings.echo_per_second,
                                    bits_per_second=settings.bits_per_second),
            "samples": target.sample_lines(),
        }
        if technique == "echo_reply":
            evidence["requests_sent"] = asked
        summary = (f"ICMP echo flood on {dst}: {rate:,.0f} {what}/s "
                   f"({bps / 1e6:,.1f} Mbit/s) from {phrase}")
        return self._flood((target.key, technique), (rate / settings.echo_per_second,
                           bps / settings.bits_per_second), summary, single, dst, evidence)

    def stats(self) -> dict[str, int]:
        requests = {f"requests_{k}": v for k, v in self._requests.stats().items()}
        replies = {f"replies_{k}": v for k, v in self._replies.stats().items()}
        return {**requests, **replies, "askers": len(self._asked),
                "askers_refused": self.askers_refused, **self._stats()}

