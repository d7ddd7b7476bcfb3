# -*- test-case-name: tests.test_detect_flood -*-
"""
Floods of traffic the victim never asked for: one-way UDP, reflected
floods included (L{UdpFloodDetector}), and DNS responses to queries it
never sent (L{DnsAmplificationDetector}).

Both count packets per destination in sliding windows, as
L{loopy.detect.rates} explains; docs/detectors/flood.md gives the reasons
for every threshold.
"""

from __future__ import annotations

import heapq
from typing import Optional

from attrs import field, frozen
from attrs.validators import ge

from loopy.detect.base import DNS, EVIDENCE_ITEMS, UDP, packet_line
from loopy.detect.rates import (
    TOLERANCE, Bucket, Flood, FloodSettings, KeyTable, RateDetector, SlidingDetector,
    SpoofableFloodSettings, Suspect, a_share, at_least_one, bits_crossed, describe_sources,
    mean, merge_counts, per_second, positive, reason,
)
from loopy.dissect.dns import qtype_text
from loopy.dissect.headers import address_text


def _ports(_instance, attribute, value) -> None:
    for port in value:
        if not 0 <= port <= 65535:
            raise ValueError(f"{attribute.name}: {port} is no port")


@frozen
class UdpFloodSettings(SpoofableFloodSettings):
    """
    Settings of the C{udp_flood} detector.

    :ivar packets_per_second: one-way UDP packets per second to one
        destination (2000.0): more than any one-way UDP a server gets in
        ordinary work but the collectors excluded by C{one_way_ports} (a
        media stream is 50 to 1000 packets a second, and its receiver sends
        RTCP back).
    :ivar bits_per_second: or that many bits per second of one-way UDP
        (50,000,000): a flood of jumbo frames under the packet rate (2000
        frames of 9000 octets a second are 144 Mbit/s); a flood of
        ordinary frames crosses the packet rate first (2000 of 1500 octets
        are 24 Mbit/s).
    :ivar reply_ratio: for packets from sources past C{sources_max}, whose
        answers cannot be told apart, the least share of packets the
        destination sends back to other hosts for them to count as
        answered (0.1): a DNS server answers every query, a flooded host
        (ICMP port unreachable aside, which is no UDP) next to nothing.
    :ivar ports_max: distinct destination ports counted per suspect and
        generation of its sources (256).
    :ivar many_ports: distinct destination ports for the technique word
        ``many_ports`` (100): floods to random ports.
    :ivar one_way_ports: destination ports whose UDP is one-way by design
        and never counted: SNMP traps (162), syslog (514), NetFlow (2055,
        9995, 9996), IPFIX (4739), sFlow (6343), StatsD (8125), GELF
        (12201); a collector takes thousands of these a second.
    """

    packets_per_second: float = field(default=2000.0, validator=positive)
    bits_per_second: float = field(default=50_000_000.0, validator=positive)
    reply_ratio: float = field(default=0.1, validator=a_share)
    ports_max: int = field(default=256, validator=at_least_one)
    many_ports: int = field(default=100, validator=at_least_one)
    one_way_ports: tuple[int, ...] = field(
        default=(162, 514, 2055, 4739, 6343, 8125, 9995, 9996, 12201), validator=_ports)


#: Source ports of UDP services used as amplifiers in reflection attacks
#: (US-CERT TA14-017A, "UDP-Based Amplification Attacks").
AMPLIFIERS = {
    17: "qotd", 19: "chargen", 53: "dns", 69: "tftp", 111: "portmap", 123: "ntp",
    137: "netbios", 161: "snmp", 389: "cldap", 520: "rip", 1900: "ssdp",
    3283: "ard", 3702: "ws-discovery", 5353: "mdns", 5683: "coap",
    11211: "memcached", 27015: "steam", 27960: "quake",
}
#: Distinct source ports counted per suspect and generation.
_SPORTS_MAX = 64
#: Octets of the largest packet for promotion: a jumbo frame's payload
#: (9000), so that a flood of them at the bit-rate threshold becomes a
#: suspect within a bucket.
_UDP_LARGEST = 9000


def unicast(addr: Optional[bytes]) -> bool:
    """
    Whether C{addr} is a unicast address: not IPv4 multicast (224/4,
    RFC 5771), the limited broadcast (RFC 919) nor IPv6 multicast (ff00::/8,
    RFC 4291).
    """
    if addr is None:
        return False
    if len(addr) == 4:
        return not (224 <= addr[0] <= 239 or addr == b"\xff\xff\xff\xff")
    return addr[0] != 0xFF


class _UdpBucket(Bucket):
    """
    A destination's UDP in a bucket.

    :ivar fragments: later fragments (no ports) among its packets.
    :ivar replies: UDP packets it sent.
    """

    __slots__ = ("fragments", "replies")
    counters = Bucket.counters + __slots__


class _Destination(Suspect):
    """
    A destination receiving much UDP.  In each generation of its sources:

    :ivar ports: its destination ports, at most C{ports_max}.
    :ivar sports: source ports to packets, at most L{_SPORTS_MAX};
        C{sports_other} packets came from further source ports.
    :ivar answered: sources of either generation it sent UDP to (at most
        twice C{sources_max}): their packets are a conversation, not a
        flood.
    :ivar replies_other: UDP packets it sent to hosts not among its sources.

    The C{past_} attributes are those of the previous generation.
    """

    __slots__ = ("ports", "sports", "sports_other", "answered", "replies_other",
                 "past_ports", "past_sports", "past_sports_other", "past_answered",
                 "past_replies_other")

    bucket_type = _UdpBucket

    def __init__(self, key, pre, ts, previous, start):
        super().__init__(key, pre, ts, previous, start)
        self._clear()
        self.new_generation(ts)

    def _clear(self) -> None:
        self.ports: set[int] = set()
        self.sports: dict[int, int] = {}
        self.answered: set[bytes] = set()
        self.sports_other = self.replies_other = 0

    def new_generation(self, now: float) -> None:
        super().new_generation(now)
        self.past_ports, self.past_sports, self.past_answered = (
            self.ports, self.sports, self.answered)
        self.past_sports_other, self.past_replies_other = self.sports_other, self.replies_other
        self._clear()


class UdpFloodDetector(RateDetector):
    """
    One-way UDP floods on one destination: UDP from sources it does not
    answer at C{packets_per_second} or C{bits_per_second}.

    A source is answered when the destination sends it any UDP within the
    sources' two generations (one to two half windows): a QUIC download
    (the client acknowledges), a DNS or game server and its clients, a VoIP
    call are conversations, whatever their rates.  Sources past
    C{sources_max} count as answered together when the destination sent at
    least C{reply_ratio} as many packets to other hosts.  The rate judged is
    the destination's packets times the share of its sources' packets that
    are one-way.  Multicast and broadcast destinations are not judged.
    """

    name = "udp_flood"
    kinds = ("udp_flood",)
    protocols = frozenset({UDP})
    settings_type = UdpFloodSettings

    def __init__(self, settings: UdpFloodSettings, context):
        super().__init__(settings, context)
        self._table = KeyTable(_Destination, settings, settings.packets_per_second,
                               settings.bits_per_second, _UDP_LARGEST, admit=unicast)
        self._tables = [("udp", self._table)]
        self._suspects = self._table.suspects
        self._sources_max = settings.sources_max
        self._answered_max = 2 * settings.sources_max
        self._ports_max = settings.ports_max
        self._one_way_ports = frozenset(settings.one_way_ports)

    def observe(self, packet) -> None:
        if packet.dport in self._one_way_ports:
            return
        daddr = packet.daddr
        suspects = self._suspects
        target = suspects.get(daddr)
        if target is None:
            target = self._table.count(daddr, packet.ts)
        if target is not None:
            target.add(packet, self._sources_max, packet.ip_len)
            target.samples.append(packet)
            if packet.fragment:
                target.bucket.fragments += 1
            else:
                ports = target.ports
                if len(ports) < self._ports_max:
                    ports.add(packet.dport)
                sports = target.sports
                n = sports.get(packet.sport)
                if n is not None:
                    sports[packet.sport] = n + 1
                elif len(sports) < _SPORTS_MAX:
                    sports[packet.sport] = 1
                else:
                    target.sports_other += 1
        peer = suspects.get(packet.saddr)
        if peer is not None:
            peer.bucket.replies += 1
            if daddr in peer.sources or daddr in peer.past_sources:
                answered = peer.answered
                if len(answered) < self._answered_max:
                    answered.add(daddr)
            else:
                peer.replies_other += 1

    def _share(self, what: str, target: _Destination) -> float:
        """
        The share of the target's packets from sources it did not answer
        (allowed sources left out), in both generations.
        """
        sources, untracked = target.all_sources(self._sources_max)
        answered, past = target.answered, target.past_answered
        screen = bool(self.context.allow or self._allow)
        one_way = sum(n for addr, n in sources.items()
                      if addr not in answered and addr not in past
                      and not (screen and self._allowed(addr)))
        replies_other = target.replies_other + target.past_replies_other
        if replies_other < self.settings.reply_ratio * untracked:
            one_way += untracked
        attributed = sum(sources.values()) + untracked
        return one_way / attributed if attributed else 0.0

    def _describe(self, what, target, total, span, share, now) -> Flood:
        settings = self.settings
        rate, bps = self._measures(total, span, share)
        dst = address_text(target.key)
        sources, single, phrase = describe_sources(target, settings)
        ports = target.ports | target.past_ports
        ports_at_cap = len(ports) >= settings.ports_max
        ports = sorted(ports)[:settings.ports_max]
        all_sports, other = merge_counts(target.sports, target.past_sports, _SPORTS_MAX)
        sports = heapq.nlargest(5, all_sports.items(), key=lambda kv: kv[1])
        with_ports = (sum(all_sports.values()) + other + target.sports_other
                      + target.past_sports_other)
        reflector = None
        if sports and sports[0][1] >= 0.5 * with_ports:
            reflector = AMPLIFIERS.get(sports[0][0])
        if reflector is not None:
            technique = "reflection"
        elif len(ports) >= settings.many_ports:
            technique = "many_ports"
        elif len(ports) == 1:
            technique = "one_port"
        else:
            technique = "few_ports"
        evidence = {
            "technique": technique,
            "packets_per_second": per_second(total.packets, span),
            "one_way_per_second": round(rate, 1),
            "bits_per_second": round(bps),
            "mean_octets": round(mean(total.octets, total.seen)),
            "replies_per_second": per_second(total.replies, span),
            "answered_sources": len(target.answered | target.past_answered),
            "ports_count": len(ports),
            "ports_at_cap": ports_at_cap,
            "ports": ports[:EVIDENCE_ITEMS],
            "top_source_ports": [{"sport": p, "packets": n} for p, n in sports],
            "fragments": total.fragments,
            **sources,
            "reason": reason(rate, settings.packets_per_second, "unanswered packets", bps,
                             settings.bits_per_second),
            **self._window_evidence(target, span, now,
                                    packets_per_second=settings.packets_per_second,
                                    bits_per_second=settings.bits_per_second),
            "samples": target.sample_lines(),
        }
        if reflector is not None:
            evidence["reflected_service"] = reflector
        where = (f"port {ports[0]}" if len(ports) == 1
                 else f"{len(ports):,}{'+' if ports_at_cap else ''} ports")
        how = f"{reflector} reflection " if reflector is not None else ""
        summary = (f"UDP {how}flood on {dst}: {rate:,.0f} unanswered packets/s "
                   f"({bps / 1e6:,.1f} Mbit/s) to {where} from {phrase}")
        return self._flood(target.key, (rate / settings.packets_per_second,
                           bps / settings.bits_per_second), summary, single, dst, evidence)

    def stats(self) -> dict[str, int]:
        return {**self._table.stats(), **self._stats()}


@frozen
class DnsAmplificationSettings(FloodSettings):
    """
    Settings of the C{dns_amplification} detector.

    :ivar responses_per_second: unsolicited responses per second to one
        host, with C{mean_octets} (50.0): a host gets the answers to what it
        asks, and a few late ones after a query was forgotten; fifty a
        second it never asked for is a reflection.
    :ivar mean_octets: least mean DNS message size, octets, of those
        (512.0: the largest plain DNS over UDP, RFC 1035 section 4.2.1;
        reflectors are asked for larger answers, ANY or DNSSEC records of
        several kilo-octets, to amplify).
    :ivar bits_per_second: or that many bits per second of unsolicited
        responses, whatever their count and size (1,000,000).
    :ivar query_timeout: seconds a query waits for its response
        (10.0: resolvers give up after 5, glibc's default, RFC 1536
        section 1 asks for at least 2 to 5); a query is kept 10 to 20 s.
    :ivar queries_max: queries awaiting their response (50000, about
        4 MiB); answered ones leave at once, so it holds those in flight and
        unanswered.  Past half of it within a generation, queries are not
        kept (C{queries_refused}) and responses to their clients are not
        judged for two timeouts (C{responses_unjudged}): they would look
        unsolicited.
    """

    responses_per_second: float = field(default=50.0, validator=positive)
    mean_octets: float = field(default=512.0, validator=ge(0))
    bits_per_second: float = field(default=1_000_000.0, validator=positive)
    query_timeout: float = field(default=10.0, validator=positive)
    queries_max: int = field(default=50000, validator=ge(2))


#: Query types asked of reflectors for their large answers (Rossow,
#: "Amplification Hell", NDSS 2014; RFC 8482 section 1 for ANY).
AMPLIFYING_QTYPES = frozenset({255, 16, 48, 46, 43})  # ANY TXT DNSKEY RRSIG DS
#: Distinct query types and names counted per victim and generation.
_QTYPES_MAX = 32
_QNAMES_MAX = 32
#: Clients whose refused queries make their responses unjudged, at most.
_BLIND_MAX = 1024
_DNS_LARGEST = 4096  # octets: the usual EDNS buffer that reflectors fill


class _DnsBucket(Bucket):
    """
    A victim's unsolicited responses in a bucket.

    :ivar message_octets: DNS message octets of the C{seen} responses.
    """

    __slots__ = ("message_octets",)
    counters = Bucket.counters + __slots__


class _Victim(Suspect):
    """
    A host receiving DNS responses it never asked for.

    :ivar qtypes: query type to responses, at most L{_QTYPES_MAX} types, in
        the current generation (C{past_qtypes} the previous one).
    :ivar qnames: query name to responses, at most L{_QNAMES_MAX} names.
    :ivar samples: ``(packet, qtype, qname)`` of the newest few.
    """

    __slots__ = ("qtypes", "qnames", "past_qtypes", "past_qnames")

    bucket_type = _DnsBucket

    def __init__(self, key, pre, ts, previous, start):
        super().__init__(key, pre, ts, previous, start)
        self.qtypes: dict[int, int] = {}
        self.qnames: dict[str, int] = {}
        self.new_generation(ts)

    def new_generation(self, now: float) -> None:
        super().new_generation(now)
        self.past_qtypes, self.past_qnames = self.qtypes, self.qnames
        self.qtypes, self.qnames = {}, {}

    def sample_lines(self) -> list[str]:
        return [f"{packet_line(p)} dns response {qtype_text(qtype)} {qname or '.'}"
                for p, qtype, qname in self.samples]


def _bump(table: dict, key, limit: int) -> None:
    n = table.get(key)
    if n is not None:
        table[key] = n + 1
    elif len(table) < limit:
        table[key] = 1


class DnsAmplificationDetector(SlidingDetector):
    """
    DNS amplification: responses arriving for a host that never sent their
    query, at C{responses_per_second} with a mean size of C{mean_octets}, or
    at C{bits_per_second}.

    Every query seen is kept by ``(client, sport, server, dport, id)``
    (RFC 5452 section 4.3: what a resolver itself matches) until its
    response or for one to two C{query_timeout}s; a response that matches
    none, not sent by this host, is unsolicited and counts for its
    destination, the victim.
    """

    name = "dns_amplification"
    kinds = ("dns_amplification",)
    protocols = frozenset({DNS})
    settings_type = DnsAmplificationSettings

    def __init__(self, settings: DnsAmplificationSettings, context):
        super().__init__(settings, context)
        self._table = KeyTable(_Victim, settings, settings.responses_per_second,
                               settings.bits_per_second, _DNS_LARGEST)
        self._tables = [("dns", self._table)]
        self._suspects = self._table.suspects
        self._sources_max = settings.sources_max
        self._pending: set[int] = set()
        self._old: set[int] = set()
        self._generation_max = settings.queries_max // 2
        self._rotated: Optional[float] = None
        self._blind: dict[bytes, float] = {}
        self.matched = self.unmatched = self.queries_expired = 0
        self.queries_refused = self.responses_unjudged = 0

    def observe(self, packet) -> None:
        """
        Nothing: this detector reads DNS messages only (L{observe_dns}).
        """

    def observe_dns(self, packet, message) -> None:
        if not message.qr:
            key = hash((packet.saddr, packet.sport, packet.daddr, packet.dport, message.id))
            if len(self._pending) < self._generation_max:
                self._pending.add(key)
            else:
                self.queries_refused += 1
                blind = self._blind
                if packet.saddr in blind or len(blind) < _BLIND_MAX:
                    blind[packet.saddr] = packet.ts
            return
        key = hash((packet.daddr, packet.dport, packet.saddr, packet.sport, message.id))
        pending = self._pending
        if key in pending:
            pending.remove(key)
            self.matched += 1
            return
        old = self._old
        if key in old:
            old.remove(key)
            self.matched += 1
            return
        if packet.outgoing or self.context.is_local(packet.saddr):
            return  # this host's own response: it is the reflector, not the victim
        victim = packet.daddr
        if self._blind:
            refused = self._blind.get(victim)
            if refused is not None and packet.ts - refused < 2 * self.settings.query_timeout:
                self.responses_unjudged += 1
                return
        self.unmatched += 1
        target = self._suspects.get(victim)
        if target is None:
            target = self._table.count(victim, packet.ts)
            if target is None:
                return
        # The UDP length, not the captured payload: a large response comes
        # in fragments, of which this is the first.
        frame, offset = packet.frame, packet.payload_offset
        datagram = frame[offset - 4] << 8 | frame[offset - 3]
        ip_header = packet.ip_len - packet.payload_len - 8
        target.add(packet, self._sources_max, ip_header + datagram)
        target.bucket.message_octets += datagram - 8
        _bump(target.qtypes, message.qtype, _QTYPES_MAX)
        _bump(target.qnames, message.qname, _QNAMES_MAX)
        target.samples.append((packet, message.qtype, message.qname))

    def _rotate(self, now: float) -> None:
        super()._rotate(now)
        timeout = self.settings.query_timeout
        if self._rotated is None or now < self._rotated:
            self._rotated = now
        elif now - self._rotated >= timeout - TOLERANCE:
            self.queries_expired += len(self._old)
            self._old = self._pending
            self._pending = set()
            self._rotated = now
            self._blind = {a: t for a, t in self._blind.items() if now - t < 2 * timeout}

    def _measures(self, total: _DnsBucket, span: float,
                  share: float) -> tuple[float, float, float]:
        """
        Unsolicited responses per second, their mean DNS message octets,
        and their bits per second (whole datagrams).
        """
        count = total.packets * share
        return (count / span, mean(total.message_octets, total.seen),
                mean(total.octets, total.seen) * count * 8 / span)

    def _strength(self, what, target, total, span, share) -> float:
        rate, _, bps = self._measures(total, span, share)
        settings = self.settings
        return max(rate / settings.responses_per_second, bps / settings.bits_per_second)

    def _crosses(self, what, target, total, span, share) -> bool:
        rate, size, bps = self._measures(total, span, share)
        settings = self.settings
        return ((rate >= settings.responses_per_second and size >= settings.mean_octets)
                or bps >= settings.bits_per_second)

    def _describe(self, what, target, total, span, share, now) -> Flood:
        settings = self.settings
        rate, size, bps = self._measures(total, span, share)
        dst = address_text(target.key)
        reflectors, single, phrase = describe_sources(target, settings, "reflectors",
                                                      spoofable=False)
        all_qtypes = merge_counts(target.qtypes, target.past_qtypes, _QTYPES_MAX)[0]
        all_qnames = merge_counts(target.qnames, target.past_qnames, _QNAMES_MAX)[0]
        qtypes = heapq.nlargest(10, all_qtypes.items(), key=lambda kv: kv[1])
        qnames = heapq.nlargest(5, all_qnames.items(), key=lambda kv: kv[1])
        amplifying = sum(n for qtype, n in all_qtypes.items() if qtype in AMPLIFYING_QTYPES)
        evidence = {
            "technique": "reflection",
            "responses_per_second": round(rate, 1),
            "bits_per_second": round(bps),
            "mean_response_octets": round(size),
            "responses": round(rate * span),
            "qtypes": {qtype_text(qtype): n for qtype, n in qtypes},
            "amplifying_qtypes": amplifying,
            "qnames": [{"qname": name, "responses": n} for name, n in qnames],
            **reflectors,
            "reason": self._reason(rate, size, bps),
            **self._window_evidence(target, span, now,
                                    responses_per_second=settings.responses_per_second,
                                    mean_octets=settings.mean_octets,
                                    bits_per_second=settings.bits_per_second),
            "samples": target.sample_lines(),
        }
        mostly = ""
        if qtypes and qtypes[0][1] >= 0.5 * sum(all_qtypes.values()):
            mostly = f", mostly {qtype_text(qtypes[0][0])}"
        summary = (f"DNS amplification against {dst}: {rate:,.0f} unsolicited responses/s "
                   f"({bps / 1e6:,.1f} Mbit/s, mean {size:,.0f} octets) from {phrase}{mostly}")
        return self._flood(target.key, (rate / settings.responses_per_second,
                           bps / settings.bits_per_second), summary, single, dst, evidence)

    def _reason(self, rate: float, size: float, bps: float) -> str:
        settings = self.settings
        crossed = []
        if rate >= settings.responses_per_second and size >= settings.mean_octets:
            crossed.append(f"{rate:,.0f} unsolicited responses/s >= "
                           f"{settings.responses_per_second:,g} of mean {size:,.0f} octets "
                           f">= {settings.mean_octets:,g}")
        return " and ".join(crossed + bits_crossed(bps, settings.bits_per_second))

    def stats(self) -> dict[str, int]:
        return {
            **self._table.stats(),
            "queries": len(self._pending) + len(self._old),
            "queries_refused": self.queries_refused,
            "queries_expired": self.queries_expired,
            "responses_matched": self.matched,
            "responses_unmatched": self.unmatched,
            "responses_unjudged": self.responses_unjudged,
            "blind_clients": len(self._blind),
            **self._stats(),
        }
