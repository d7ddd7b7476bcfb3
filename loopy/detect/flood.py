# -*- test-case-name: tests.test_detect_flood -*-
"""
Flood detectors: SYN floods against a service (L{SynFloodDetector}) and
ICMP echo floods (L{IcmpFloodDetector}).

Both count packets per key in sliding windows (L{loopy.detect.rates}):
judged at every evaluation over the last C{min_evidence} to C{window}
seconds, a flood is signalled as soon as one of those spans is at or over
its threshold, and no longer once it stops, so the alert book ends its
alert C{quiet_after} seconds later.

docs/detectors/flood.md gives the reasons for every threshold.
"""

from __future__ import annotations

from collections import deque
from math import floor
from typing import Optional

from attrs import field, frozen
from attrs.validators import ge

from loopy.detect.base import ICMP, TCP
from loopy.detect.rates import (
    TOLERANCE, Bucket, Flood, KeyTable, RateDetector, SlidingDetector, SpoofableFloodSettings,
    Suspect,
    a_share, describe_sources, mean, per_second, positive, reason, within_window,
)
from loopy.dissect.headers import ACK, IPPROTO_ICMPV6, RST, SYN, address_text


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
    :ivar handshake_grace: seconds a SYN is given to complete its handshake
        before it counts in the completion ratio (0.3): the third segment
        comes one round trip of the client after the SYN, and 0.3 s is more
        than the round trip of nearly every terrestrial path (within a
        continent under 0.1 s, between continents 0.1 to 0.3 s); a flood is
        alerted on this much later than its rate alone would allow.
    :ivar pending_max: SYNs of suspect services awaiting their handshake's
        last ACK (32768, about 2.5 MiB): in two generations of C{window}
        seconds each; when the current one is full, further SYNs are not
        followed (C{pending_refused}) and the ratio is of those followed.
    """

    syn_per_second: float = field(default=200.0, validator=positive)
    completion_ratio_max: float = field(default=0.5, validator=a_share)
    handshake_grace: float = field(default=0.3, validator=[ge(0), within_window(strictly=True)])
    pending_max: int = field(default=32768, validator=ge(2))


#: Fewest followed handshakes for a completion ratio to be judged.
MIN_HANDSHAKES = 20
#: Seconds per slot of followed handshakes: how finely their age is known.
HANDSHAKE_SLOT = 0.05


class _Slot:
    """
    The SYNs of a suspect service followed in one L{HANDSHAKE_SLOT}, ending
    at C{until} (seconds), and how many of them completed.
    """

    __slots__ = ("until", "followed", "completed")

    def __init__(self, until: float):
        self.until = until
        self.followed = self.completed = 0


class _SynBucket(Bucket):
    """
    A service's SYNs in a bucket, and what it sent back.

    :ivar syn_acks: SYN-ACKs it sent; C{rsts} resets it sent.
    :ivar followed: SYNs followed in the slots that end in this bucket and
        are C{handshake_grace} old, as of the last judgement;
        C{completed} those of them that completed.
    """

    __slots__ = ("syn_acks", "rsts", "followed", "completed")
    counters = Bucket.counters + __slots__


class _Service(Suspect):
    """
    A service receiving many SYNs.

    :ivar slots: the slots of its followed SYNs, oldest first; C{slot} the
        current one.
    :ivar window_followed: followed SYNs old enough to judge in the whole
        window, as of the last judgement; C{window_completed} those of
        them that completed.
    """

    __slots__ = ("slots", "slot", "window_followed", "window_completed")

    bucket_type = _SynBucket

    def __init__(self, key, pre, ts, previous, start):
        super().__init__(key, pre, ts, previous, start)
        self.slot = _Slot(0.0)
        self.slots: deque[_Slot] = deque()
        self.window_followed = self.window_completed = 0

    def next_slot(self, ts: float) -> _Slot:
        """
        Start the slot that C{ts} falls in.
        """
        slot = self.slot = _Slot((floor(ts / HANDSHAKE_SLOT) + 1) * HANDSHAKE_SLOT)
        self.slots.append(slot)
        return slot

    def close(self, now: float, oldest: float) -> None:
        super().close(now, oldest)
        slots = self.slots
        while slots and slots[0].until < oldest:
            slots.popleft()


_SEQ = 0xFFFFFFFF


class SynFloodDetector(SlidingDetector):
    """
    SYN floods against one service ``(daddr, dport)``: SYNs at
    C{syn_per_second} or more, of which fewer than C{completion_ratio_max}
    complete their handshake.

    A handshake completes when the client's next segment (ACK, no SYN nor
    RST) carries the SYN's sequence number plus one (RFC 9293 section
    3.5): SYNs of suspect services are kept by ``(sport, dport, ISN + 1)``
    in a pending table of two generations of C{window} seconds, and counted
    in slots of L{HANDSHAKE_SLOT} seconds; the completion ratio is of the
    SYNs at least C{handshake_grace} old, over the rate's span and over the
    whole window.  The SYN-ACKs and RSTs the service sends back say how it
    copes (C{server_response}).
    """

    name = "syn_flood"
    kinds = ("syn_flood",)
    protocols = frozenset({TCP})
    settings_type = SynFloodSettings

    def __init__(self, settings: SynFloodSettings, context):
        super().__init__(settings, context)
        self._table = KeyTable(_Service, settings, settings.syn_per_second)
        self._tables = [("syn", self._table)]
        self._suspects = self._table.suspects
        self._sources_max = settings.sources_max
        self._pending: dict[int, _Slot] = {}
        self._old: dict[int, _Slot] = {}
        self._pending_since: Optional[float] = None
        self._generation_max = settings.pending_max // 2
        self.pending_refused = self.pending_expired = 0

    def observe(self, packet) -> None:
        flags = packet.flags
        if flags & SYN:
            if flags & ACK:
                service = self._suspects.get((packet.saddr, packet.sport))
                if service is not None:
                    service.bucket.syn_acks += 1
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
                slot = service.slot
                if packet.ts >= slot.until:
                    slot = service.next_slot(packet.ts)
                pending[((packet.sport << 16 | packet.dport) << 32)
                        | ((packet.seq + 1) & _SEQ)] = slot
                slot.followed += 1
            else:
                self.pending_refused += 1
        elif flags & RST:
            # A reset from the service: the port is closed or it refuses.
            # (A reset from a spoofed source's real owner carries the SYN's
            # ISN + 1 too, and must not count as a completed handshake.)
            service = self._suspects.get((packet.saddr, packet.sport))
            if service is not None:
                service.bucket.rsts += 1
        elif flags & ACK:
            pending = self._pending
            old = self._old
            if pending or old:
                key = (packet.sport << 16 | packet.dport) << 32 | packet.seq
                slot = pending.pop(key, None)
                if slot is None and old:
                    slot = old.pop(key, None)
                if slot is not None:
                    slot.completed += 1

    def _rotate(self, now: float) -> None:
        super()._rotate(now)
        since = self._pending_since
        if since is None or now < since:
            self._pending_since = now
        elif now - since >= self.settings.window - TOLERANCE:
            self.pending_expired += len(self._old)
            self._old = self._pending
            self._pending = {}
            self._pending_since = now

    def _prepare(self, what: str, service: _Service, now: float) -> None:
        """
        Count the followed SYNs old enough to judge into the buckets their
        slots end in, and over the whole window.
        """
        ring = service.ring
        for bucket in ring:
            bucket.followed = bucket.completed = 0
        ripe = now - self.settings.handshake_grace + TOLERANCE
        i = len(ring) - 1
        first = ring[0].start
        followed = completed = 0
        for slot in reversed(service.slots):
            if slot.until > ripe:
                continue
            if slot.until <= first:
                break
            while i > 0 and ring[i].start >= slot.until:
                i -= 1
            bucket = ring[i]
            bucket.followed += slot.followed
            bucket.completed += slot.completed
            followed += slot.followed
            completed += slot.completed
        service.window_followed, service.window_completed = followed, completed

    def _strength(self, what, service, total, span, share) -> float:
        return total.packets * share / span / self.settings.syn_per_second

    def _crosses(self, what, service, total, span, share) -> bool:
        settings = self.settings
        most = settings.completion_ratio_max
        return (total.packets * share / span >= settings.syn_per_second
                and total.followed >= MIN_HANDSHAKES
                and total.completed < most * total.followed
                and service.window_completed < most * service.window_followed)

    def _target(self, service: _Service) -> bytes:
        return service.key[0]

    def _describe(self, what, service, total, span, share, now) -> Flood:
        settings = self.settings
        syns = total.packets * share
        rate = syns / span
        completion = total.completed / total.followed
        daddr, dport = service.key
        dst = address_text(daddr)
        if total.syn_acks >= 0.5 * total.packets:
            response = "syn_ack"
        elif total.rsts >= 0.5 * total.packets:
            response = "rst"
        else:
            response = "none"
        sources, single, phrase = describe_sources(service, settings)
        evidence = {
            "dport": dport,
            "syn_per_second": round(rate, 1),
            "syn_ack_per_second": per_second(total.syn_acks, span),
            "rst_per_second": per_second(total.rsts, span),
            "completion_ratio": round(completion, 3),
            "syn_ack_ratio": round(total.syn_acks / max(1, total.packets), 3),
            "server_response": response,
            "syns": round(syns),
            "handshakes_followed": total.followed,
            "handshakes_completed": total.completed,
            **sources,
            "reason": (f"{rate:,.0f} SYN/s >= {settings.syn_per_second:g} and "
                       f"{completion:.0%} of handshakes completed < "
                       f"{settings.completion_ratio_max:.0%}"),
            **self._window_evidence(service, span, now,
                                    syn_per_second=settings.syn_per_second,
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


class _EchoBucket(Bucket):
    """
    A destination's echo messages in a bucket.

    :ivar asked: echo requests the destination itself sent (for replies).
    """

    __slots__ = ("asked",)
    counters = Bucket.counters + __slots__


class _Echoed(Suspect):
    """
    A destination receiving many echo requests or replies.
    """

    __slots__ = ()

    bucket_type = _EchoBucket


class IcmpFloodDetector(RateDetector):
    """
    ICMP and ICMPv6 echo floods on one destination: echo requests at
    C{echo_per_second} or C{bits_per_second} (technique ``echo_request``),
    or echo replies the destination did not ask for at those rates
    (``echo_reply``: replies beyond the requests it sent over the same
    span, as in a smurf attack or the backscatter of a ping flood with the
    victim's address as source).
    """

    name = "icmp_flood"
    kinds = ("icmp_flood",)
    protocols = frozenset({ICMP})
    settings_type = IcmpFloodSettings
    rate_setting = "echo_per_second"

    def __init__(self, settings: IcmpFloodSettings, context):
        super().__init__(settings, context)
        thresholds = (settings.echo_per_second, settings.bits_per_second, _ECHO_LARGEST)
        self._requests = KeyTable(_Echoed, settings, *thresholds)
        self._replies = KeyTable(_Echoed, settings, *thresholds)
        self._tables = [("echo_request", self._requests), ("echo_reply", self._replies)]
        self._asked: dict[bytes, int] = {}
        self._sources_max = settings.sources_max
        self._keys_max = settings.keys_max
        self.askers_refused = 0

    def observe(self, packet) -> None:
        kind = packet.icmp_type
        v6 = packet.proto == IPPROTO_ICMPV6
        if kind == _ECHO_REQUEST[v6]:
            table = self._requests
            # Requests each host sent this bucket, to tell the replies it
            # asked for.
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
                    target.bucket.octets += packet.ip_len
            return
        target = table.suspects.get(packet.daddr)
        if target is None:
            target = table.count(packet.daddr, packet.ts)
            if target is None:
                return
        target.add(packet, self._sources_max, packet.ip_len)
        target.samples.append(packet)

    def _rotate(self, now: float) -> None:
        for target in self._replies.suspects.values():
            target.bucket.asked = self._asked.get(target.key, 0)
        super()._rotate(now)
        self._asked.clear()

    def _prepare(self, what: str, target: _Echoed, now: float) -> None:
        if what == "echo_reply":
            target.bucket.asked = self._asked.get(target.key, 0)

    def _count(self, total: _EchoBucket, share: float) -> float:
        """
        The echo messages that count: replies beyond the requests their
        destination sent.
        """
        return total.packets * share - total.asked

    def _describe(self, what, target, total, span, share, now) -> Flood:
        settings = self.settings
        rate, bps = self._measures(total, span, share)
        dst = address_text(target.key)
        sources, single, phrase = describe_sources(target, settings)
        kind = "echo requests" if what == "echo_request" else "unsolicited echo replies"
        evidence = {
            "technique": what,
            "packets_per_second": round(rate, 1),
            "bits_per_second": round(bps),
            "mean_octets": round(mean(total.octets, total.seen)),
            "packets": round(rate * span),
            **sources,
            "reason": reason(rate, settings.echo_per_second, kind, bps, settings.bits_per_second),
            **self._window_evidence(target, span, now, echo_per_second=settings.echo_per_second,
                                    bits_per_second=settings.bits_per_second),
            "samples": target.sample_lines(),
        }
        if what == "echo_reply":
            evidence["requests_sent"] = total.asked
        summary = (f"ICMP echo flood on {dst}: {rate:,.0f} {kind}/s "
                   f"({bps / 1e6:,.1f} Mbit/s) from {phrase}")
        return self._flood((target.key, what), (rate / settings.echo_per_second,
                           bps / settings.bits_per_second), summary, single, dst, evidence)

    def stats(self) -> dict[str, int]:
        requests = {f"requests_{k}": v for k, v in self._requests.stats().items()}
        replies = {f"replies_{k}": v for k, v in self._replies.stats().items()}
        return {**requests, **replies, "askers": len(self._asked),
                "askers_refused": self.askers_refused, **self._stats()}
