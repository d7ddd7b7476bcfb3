# -*- test-case-name: tests.test_detect_flood -*-
"""
Sliding-window packet rates per key, shared by the flood detectors of
L{loopy.detect.flood} and L{loopy.detect.amplification}.

Packets are counted per key (a service ``(daddr, dport)`` or a destination
address) in a table of integers (L{KeyTable}) that holds the current
I{bucket} only: the packets since the last evaluation that ended a bucket.
A key whose count in one bucket reaches half the packets its threshold
allows in L{BUCKET} seconds becomes a I{suspect} (L{Suspect}): it keeps a
ring of its buckets over the last C{window} seconds, its sources and a few
packets.  At every evaluation each suspect is judged on the suffixes of
its ring (the newest bucket, the newest two, ... up to C{window} seconds)
that span at least C{min_evidence} seconds: it is a flood when one of them
is at or over a threshold, so a flood is found as soon as that much of its
evidence exists, and measured over the whole window once it lasts.

docs/detectors/flood.md gives the reasons for every threshold.
"""

from __future__ import annotations

import heapq
from collections import deque
from math import ceil
from typing import Any, Callable, Optional

from attrs import field, frozen
from attrs.validators import ge, gt, le

from loopy.detect.base import SAMPLE_PACKETS, DetectorSettings, Networks, packet_line
from loopy.dissect.headers import address_text

#: Seconds per bucket: the detect analyser's default check interval.  A
#: bucket ends at the first evaluation at least this long after it began.
BUCKET = 0.25
#: A key becomes a suspect when one bucket holds this share of the packets
#: its threshold allows in L{BUCKET} seconds, and a flood is signalled only
#: while its newest C{min_evidence} seconds hold this share of its
#: threshold (it is still going on).
WATCH_SHARE = 0.5
#: Seconds of slack in comparing capture times: the rounding of timestamps
#: near 1.7e9 (2**-22 s) and of evaluation times.
TOLERANCE = 1e-3
#: Seconds a bucket may begin before C{window} and still count: the
#: analyser evaluates at the first packet after each check interval, so
#: buckets last a little longer than L{BUCKET}, and a window of eight of
#: them a little longer than two seconds.
WINDOW_SLACK = BUCKET / 4
#: Sources an alert's evidence lists, busiest first.
TOP_SOURCES = 10

#: Validators of settings values.
positive = gt(0)
at_least_one = ge(1)
a_share = [gt(0), le(1)]


def within_window(strictly: bool = False) -> Callable:
    """
    A validator of a duration setting: at most (or, C{strictly}, less
    than) the settings' C{window}.
    """
    def validate(instance, attribute, value) -> None:
        if value > instance.window or (strictly and value == instance.window):
            raise ValueError(f"{attribute.name} ({value:g} s) must be "
                             f"{'shorter than' if strictly else 'at most'} window "
                             f"({instance.window:g} s)")
    return validate


@frozen
class FloodSettings(DetectorSettings):
    """
    What every flood detector's settings have.

    :ivar window: seconds of the longest rate measured (2.0, more than one
        bucket): rates are judged over the last C{min_evidence} to
        C{window} seconds; two seconds hold 400 SYNs at the SYN threshold,
        enough for a completion ratio to mean something, and smooth a
        flood's jitter.
    :ivar min_evidence: seconds of the shortest rate measured (0.5, two
        buckets): a flood is found once the packets of its newest half
        second are at its threshold (100 SYNs, 250 echo requests), more than
        a burst of a few packets, and within the detection latency goal of
        issue 4 (docs/detectors/flood.md).
    :ivar keys_max: keys (services, destinations) counted per bucket
        (16384, 1 to 2 MiB when full): more than the services or hosts a
        busy server exchanges packets with in a quarter second; packets for
        new keys past it are not counted (C{keys_refused}) until the bucket
        ends.
    :ivar suspects_max: keys watched in detail at once (64, with their
        sources and samples about 50 KiB each when full, 80 KiB for
        C{udp_flood}): a host has a few services or peers at half a flood's
        rate; past it the least recently seen suspect is evicted
        (C{suspects_evicted}).
    :ivar sources_max: distinct sources counted per suspect and generation
        of its sources (256; a generation lasts half a window, and the
        evidence adds up the current and the previous one): enough to tell
        one, a few, a botnet and random spoofing apart; packets from further
        sources are counted as untracked, and the evidence says the count
        is at its cap.
    :ivar single_share: share of a flood's packets from one source for that
        source to be named the attacker (0.9).
    :ivar critical_factor: a flood at this multiple of its threshold is
        critical, under it a warning (10.0: an order of magnitude over
        a threshold set near the edge of normal traffic).
    """

    window: float = field(default=2.0, validator=gt(BUCKET))
    min_evidence: float = field(default=0.5, validator=[positive, within_window()])
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
    :ivar spoofed_per_source: most packets per source, on average over the
        sources counted (one to two half windows), for many sources to look
        spoofed at random (3.0): ``hping3 --rand-source`` draws each
        packet's address from the whole IPv4 space, so nearly every source
        sends one packet, while real hosts of a botnet or a busy service's
        clients send dozens each.
    """

    many_sources: int = field(default=100, validator=at_least_one)
    spoofed_per_source: float = field(default=3.0, validator=positive)


class Bucket:
    """
    A suspect's packets between two evaluations.

    :ivar start: when the bucket began, seconds (capture clock).
    :ivar end: when it ended, or None while it is the current one.
    :ivar pre: packets counted before the key became a suspect.
    :ivar seen: packets counted since (all the rest counts these only).
    :ivar octets: IP octets of the C{seen} packets.

    A subclass adds its own counters to C{__slots__} and C{counters}.
    """

    __slots__ = ("start", "end", "pre", "seen", "octets")
    #: The counts a bucket has, which L{add} adds up.
    counters: tuple[str, ...] = ("pre", "seen", "octets")

    def __init__(self, start: float):
        self.start = start
        self.end: Optional[float] = None
        for name in self.counters:
            setattr(self, name, 0)

    @property
    def packets(self) -> int:
        return self.pre + self.seen

    def add(self, other: Bucket) -> None:
        """
        Add C{other}'s counts to this one's (a total of buckets).
        """
        for name in self.counters:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def copy(self) -> Bucket:
        total = type(self)(self.start)
        total.add(self)
        return total


class Suspect:
    """
    A key watched in detail.

    :ivar key: its key in the table.
    :ivar ring: its buckets over the last C{window} seconds, oldest first;
        the last is the current one (C{bucket}).
    :ivar sources: source address octets to packets in the current
        generation, at most C{sources_max}; C{untracked} packets came from
        further sources.  C{past_sources} and C{past_untracked} are those of
        the previous generation (empty before there was one).
    :ivar since: when the current generation began; C{past_since} the
        previous one.
    :ivar samples: the newest few packets.
    :ivar last: ts of its newest packet, seconds.
    """

    __slots__ = ("key", "ring", "bucket", "sources", "untracked", "past_sources",
                 "past_untracked", "since", "past_since", "samples", "last")

    bucket_type: type = Bucket

    def __init__(self, key: Any, pre: int, ts: float, previous: Optional[float],
                 start: Optional[float]):
        """
        :param pre: its packets in the current bucket before this one.
        :param previous: when the previous bucket began, if there was one: it
            joins the ring empty (the key had fewer packets in it than make
            a suspect), so that a flood's first rate spans both.
        :param start: when the current bucket began [default: C{ts}].
        """
        self.key = key
        self.ring: deque = deque()
        start = ts if start is None else start
        if previous is not None:
            empty = self.bucket_type(previous)
            empty.end = start
            self.ring.append(empty)
        self.bucket = self.bucket_type(start)
        self.bucket.pre = pre
        self.ring.append(self.bucket)
        self.sources: dict[bytes, int] = {}
        self.untracked = 0
        self.past_sources: dict[bytes, int] = {}
        self.past_untracked = 0
        self.since = ts
        self.past_since = ts
        self.samples: deque = deque(maxlen=SAMPLE_PACKETS)
        self.last = ts

    def add(self, packet, sources_max: int, octets: int) -> None:
        """
        Count C{packet}, of C{octets}, from its source.
        """
        bucket = self.bucket
        bucket.seen += 1
        bucket.octets += octets
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

    def close(self, now: float, oldest: float) -> None:
        """
        End the current bucket at C{now}, start the next, and forget the
        buckets that began before C{oldest}.
        """
        self.bucket.end = now
        self.bucket = self.bucket_type(now)
        ring = self.ring
        ring.append(self.bucket)
        while ring[0].start < oldest:
            ring.popleft()

    def recent(self) -> int:
        """
        Its packets in the ring.
        """
        return sum(b.pre + b.seen for b in self.ring)

    def new_generation(self, now: float) -> None:
        """
        Start counting sources afresh, keeping the current generation as the
        previous one.
        """
        self.past_sources, self.past_untracked = self.sources, self.untracked
        self.sources, self.untracked = {}, 0
        self.past_since, self.since = self.since, now

    def all_sources(self, cap: int) -> tuple[dict[bytes, int], int]:
        """
        The sources of both generations, at most C{cap} (the current
        generation's first), and the packets from the others.
        """
        merged, overflow = merge_counts(self.sources, self.past_sources, cap)
        return merged, self.untracked + self.past_untracked + overflow

    def sample_lines(self) -> list[str]:
        return [packet_line(p) for p in self.samples]


def merge_counts(new: dict, old: dict, cap: int) -> tuple[dict, int]:
    """
    C{new} plus C{old} (counts by key), with at most C{cap} keys: C{new}'s
    all, then C{old}'s while there is room.

    :returns: the merged counts, and what C{old}'s keys left out counted.
    """
    merged = dict(new)
    overflow = 0
    for key, n in old.items():
        m = merged.get(key)
        if m is not None:
            merged[key] = m + n
        elif len(merged) < cap:
            merged[key] = n
        else:
            overflow += n
    return merged, overflow


def promotion(per_second: float, bits_per_second: Optional[float] = None,
              largest: int = 1) -> int:
    """
    Packets in one bucket that make a key a suspect: L{WATCH_SHARE} of the
    fewest packets that cross a threshold in L{BUCKET} seconds.

    :param per_second: the packet-rate threshold.
    :param bits_per_second: the bit-rate threshold, if any.
    :param largest: octets of the largest packet counted, which crosses the
        bit-rate threshold with the fewest packets.
    """
    rate = per_second
    if bits_per_second is not None:
        rate = min(rate, bits_per_second / (8 * largest))
    return max(1, ceil(rate * BUCKET * WATCH_SHARE))


class KeyTable:
    """
    Packet counts per key in the current bucket, and the suspects among the
    keys.

    :ivar counts: key to packets this bucket (keys not suspects), at most
        C{keys_max}; new keys past it are refused (C{keys_refused}).
    :ivar suspects: key to L{Suspect}, at most C{suspects_max}; the least
        recently seen is evicted for a new one (C{evicted}).
    :ivar promote: packets in a bucket that make a key a suspect.
    :ivar start: when the current bucket began (None before the first
        evaluation); C{previous} when the one before it began.
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
        self.promote = promotion(per_second, bits_per_second, largest)
        self._window = settings.window
        self._keys_max = settings.keys_max
        self._suspects_max = settings.suspects_max
        self._admit = admit
        self.start: Optional[float] = None
        self.previous: Optional[float] = None
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
        suspect = suspects[key] = self._suspect_type(key, n - 1, ts, self.previous, self.start)
        self.promoted += 1
        return suspect

    def rotate(self, now: float) -> None:
        """
        End the bucket at C{now}: forget the counts, end every suspect's
        bucket, drop the suspects with fewer packets in their window than
        make one, and start a new generation of sources for those whose
        current one is half a window old.
        """
        self.counts.clear()
        oldest = now - self._window - WINDOW_SLACK
        generation = self._window / 2 - TOLERANCE
        quiet = []
        for key, suspect in self.suspects.items():
            suspect.close(now, oldest)
            if suspect.recent() < self.promote:
                quiet.append(key)
            elif now - suspect.since >= generation:
                suspect.new_generation(now)
        for key in quiet:
            del self.suspects[key]
        self.dropped += len(quiet)
        self.previous, self.start = self.start, now

    def restart(self, now: float) -> None:
        """
        Forget everything and start a bucket at C{now} (the clock stepped
        back: a replay of another capture).
        """
        self.counts.clear()
        self.suspects.clear()
        self.previous, self.start = None, now

    def stats(self) -> dict[str, int]:
        return {
            "keys": len(self.counts),
            "keys_refused": self.keys_refused,
            "suspects": len(self.suspects),
            "suspects_promoted": self.promoted,
            "suspects_dropped": self.dropped,
            "suspects_evicted": self.evicted,
        }


@frozen
class Flood:
    """
    A flood found at an evaluation, signalled to the alert book.
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
    The evidence about a suspect's sources (both generations).

    :param noun: the word of the evidence keys (``sources``, ``reflectors``).
    :param spoofable: whether to say how the sources are spread
        (C{source_distribution}: ``single`` when one source sent
        C{single_share} of the packets; ``many_spoofed`` for C{many_sources}
        or more sending C{spoofed_per_source} packets or fewer each on
        average; ``many`` for as many sending more; else ``few``).
    :returns: the evidence keys, the single source's octets or None, and a
        phrase for the summary (``192.0.2.9``, ``≥ 1,024 spoofed sources``).
    """
    sources, untracked = suspect.all_sources(settings.sources_max)
    tracked = sum(sources.values())
    attributed = tracked + untracked
    top = heapq.nlargest(TOP_SOURCES, sources.items(), key=lambda kv: kv[1])
    single = top[0][0] if top and top[0][1] >= settings.single_share * attributed else None
    capped = untracked > 0
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


class SlidingDetector:
    """
    What the flood detectors share: the bucket clock, judging every
    suspect on the suffixes of its ring at every evaluation, the
    allow-lists, and signalling the floods found.

    A subclass sets C{settings_type}, lists its tables in C{_tables} (with
    the word each passes to the judging hooks) and implements
    L{_strength}, L{_crosses} and L{_describe}.

    :ivar windows: buckets ended.
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
        self._tables: list[tuple[str, KeyTable]] = []
        self._floods = 0
        self.windows = 0

    def evaluate(self, now: float, book) -> None:
        """
        End the bucket when it is L{BUCKET} old, judge every suspect, and
        signal the floods found.  An evaluation before the last one is
        ignored, unless the clock stepped back more than C{window} (a
        replay of another capture): then everything starts afresh.
        """
        start = self._start
        if start is None:
            self._start = now
            for _, table in self._tables:
                table.start = now
        elif now < start - self.settings.window:
            # A clock that stepped back (a replay of another file): start
            # afresh from now.
            self._start = now
            for _, table in self._tables:
                table.restart(now)
        elif now < start:
            return  # an evaluation before the last one: that one stands
        elif now - start >= BUCKET - TOLERANCE:
            self._rotate(now)
            self._start = now
            self.windows += 1
        floods = []
        for what, table in self._tables:
            for suspect in table.suspects.values():
                if not self._allowed(self._target(suspect)):
                    flood = self._judge(what, suspect, now)
                    if flood is not None:
                        floods.append(flood)
        self._floods = len(floods)
        for f in floods:
            book.signal(f.kind, f.subject, now, f.severity, f.summary,
                        src=f.src, dst=f.dst, evidence=f.evidence)

    def _rotate(self, now: float) -> None:
        """
        End the bucket at C{now} in every table.
        """
        for _, table in self._tables:
            table.rotate(now)

    def _target(self, suspect: Suspect) -> bytes:
        """
        The address a suspect's key is about (never alerted on when allowed).
        """
        return suspect.key

    def _judge(self, what: str, suspect: Suspect, now: float) -> Optional[Flood]:
        """
        The flood C{suspect} is at C{now}, or None.

        The suffixes of its ring that span C{min_evidence} to C{window}
        seconds are judged, newest first: none is a flood unless the
        shortest is at L{WATCH_SHARE} of a threshold (the flood goes on);
        the longest that crosses a threshold (L{_crosses}) is described.
        """
        settings = self.settings
        oldest = now - settings.window - WINDOW_SLACK
        least = settings.min_evidence - TOLERANCE
        self._prepare(what, suspect, now)
        total = suspect.bucket_type(now)
        share = None
        best = None
        for bucket in reversed(suspect.ring):
            if bucket.start < oldest:
                break
            total.add(bucket)
            span = now - bucket.start
            if span < least:
                continue
            if share is None:
                # The newest suffix long enough says whether the flood goes
                # on.  Its raw count bounds what is left once allowed or
                # answered sources are left out, which costs more to tell.
                if self._strength(what, suspect, total, span, 1.0) < WATCH_SHARE:
                    return None
                share = self._share(what, suspect)
                if self._strength(what, suspect, total, span, share) < WATCH_SHARE:
                    return None
            if self._crosses(what, suspect, total, span, share):
                best = total.copy(), span
        if best is None:
            return None
        return self._describe(what, suspect, best[0], best[1], share, now)

    def _prepare(self, what: str, suspect: Suspect, now: float) -> None:
        """
        Bring the suspect's ring up to date before it is judged (nothing to
        do by default).
        """

    def _share(self, what: str, suspect: Suspect) -> float:
        """
        The share of the suspect's packets that count: those not from
        allowed sources, in the proportion of its sources' packets.
        """
        if not (self.context.allow or self._allow):
            return 1.0
        sources, untracked = suspect.all_sources(self.settings.sources_max)
        attributed = sum(sources.values()) + untracked
        allowed = sum(n for addr, n in sources.items() if self._allowed(addr))
        return 1.0 - allowed / attributed if attributed else 1.0

    def _strength(self, what: str, suspect: Suspect, total: Bucket, span: float,
                  share: float) -> float:
        """
        The largest of C{total}'s measures over its threshold, over C{span}
        seconds, counting C{share} of the packets.
        """
        raise NotImplementedError()

    def _crosses(self, what: str, suspect: Suspect, total: Bucket, span: float,
                 share: float) -> bool:
        """
        Whether C{total} over C{span} seconds is a flood.
        """
        raise NotImplementedError()

    def _describe(self, what: str, suspect: Suspect, total: Bucket, span: float,
                  share: float, now: float) -> Flood:
        """
        The flood C{total} over C{span} seconds is.
        """
        raise NotImplementedError()

    def _allowed(self, addr: Optional[bytes]) -> bool:
        return self.context.allowed(addr, self._allow)

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

    def _window_evidence(self, suspect: Suspect, span: float, now: float,
                         **thresholds) -> dict:
        """
        The evidence keys every flood has: the seconds its rates and its
        sources were measured over, and its thresholds.
        """
        return {
            "window_seconds": round(span, 3),
            "sources_seconds": round(now - suspect.past_since, 3),
            "thresholds": thresholds,
        }

    def _stats(self) -> dict[str, int]:
        return {"windows": self.windows, "floods": self._floods}


class RateDetector(SlidingDetector):
    """
    A sliding detector whose floods are a packet rate or a bit rate at or
    over its threshold, named by C{rate_setting} and C{bits_setting}.
    """

    rate_setting = "packets_per_second"
    bits_setting = "bits_per_second"

    def _count(self, total: Bucket, share: float) -> float:
        """
        The packets of C{total} that count.
        """
        return total.packets * share

    def _measures(self, total: Bucket, span: float, share: float) -> tuple[float, float]:
        """
        The packets per second that count over C{span}, and their bits per
        second.
        """
        count = self._count(total, share)
        if count <= 0:
            return 0.0, 0.0
        return count / span, mean(total.octets, total.seen) * count * 8 / span

    def _strength(self, what, suspect, total, span, share) -> float:
        rate, bps = self._measures(total, span, share)
        settings = self.settings
        return max(rate / getattr(settings, self.rate_setting),
                   bps / getattr(settings, self.bits_setting))

    def _crosses(self, what, suspect, total, span, share) -> bool:
        return self._strength(what, suspect, total, span, share) >= 1.0


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


def mean(octets: int, seen: int) -> float:
    """
    Octets per packet of the packets seen (0 for none).
    """
    return octets / seen if seen else 0.0
