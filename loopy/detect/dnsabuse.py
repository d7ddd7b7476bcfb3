# -*- test-case-name: tests.test_detect_dnsabuse -*-
"""
Abuse of DNS: tunnels and exfiltration through query names
(L{DnsTunnelDetector}, kind C{dns_tunnel}) and NXDOMAIN storms of
domain-generation malware (L{DnsNxdomainDetector}, kind
C{dns_nxdomain_storm}).

Both count over a sliding window made of two half-windows (the current one
and the one before), swapped whole in C{evaluate}: O(1) ageing, and the
counts cover between half a window and a whole one of history (a whole one
at each swap).  docs/detectors/dns.md explains the thresholds and the
benign traffic each is designed to ignore.
"""

from __future__ import annotations

from collections import Counter, deque
from math import log2
from typing import Iterable, Optional

from attrs import field, frozen
from attrs.validators import and_, ge, gt, le

from loopy.detect.base import (
    DNS, EVIDENCE_ITEMS, SAMPLE_PACKETS, DetectorSettings, Networks, packet_line,
    text_addresses,
)
from loopy.dissect.dns import qtype_text
from loopy.dissect.headers import address_text

#: Second-level labels under which a two-letter country-code TLD delegates
#: registrations (``example.co.uk``, ``example.com.au``, ``example.ac.jp``):
#: the registered domain then has three labels.  An approximation of the
#: Public Suffix List (https://publicsuffix.org/), which is not downloaded.
SECOND_LEVELS = frozenset({
    "ac", "co", "com", "edu", "go", "gob", "gov", "govt", "ltd", "mil", "ne",
    "net", "nic", "or", "org", "plc", "sch",
})

#: NXDOMAIN (RFC 1035 section 4.1.1).
NXDOMAIN = 3

#: Private-use RR TYPEs (RFC 6895 section 3.1), always unusual.
PRIVATE_QTYPES = range(65280, 65535)

_positive = gt(0)
_count = ge(1)
_bound = ge(0)
_share = and_(ge(0), le(1))


def _qtypes(_instance, attribute, value) -> None:
    for qtype in value:
        if not 0 <= qtype <= 65535:
            raise ValueError(f"{attribute.name}: {qtype} is not a TYPE (0-65535)")


#: Query names an alert's evidence lists, at most, and their length.
EXAMPLE_NAMES = 5
EXAMPLE_CHARS = 100

#: Distinct qtypes counted in a bucket: the first 15 one by one, the rest
#: together under C{-1} (``other`` in evidence).
_QTYPES_MAX = 16

#: Servers kept per client when the recursive-resolver test is off.
_SERVERS_KEPT = 8

#: A server address standing for "more than one".
_MANY = b""


def registered_domain(qname: str) -> str:
    """
    The registered domain a query name is under: its last two labels, or
    the last three when the TLD has two letters and the second-level label
    is one of L{SECOND_LEVELS} (``a.b.example.co.uk`` is under
    ``example.co.uk``).  Private suffixes of the Public Suffix List
    (``cloudfront.net``, ``github.io``) count as registered domains here,
    so all their customers' names share one.

    :param qname: lower case, no trailing dot (L{loopy.dissect.dns.DnsMessage.qname}).
    :returns: the registered domain; the name itself when it has no more
        labels than that.
    """
    last = qname.rfind(".")
    if last < 0:
        return qname
    second = qname.rfind(".", 0, last)
    if second < 0:
        return qname
    if len(qname) - last == 3 and qname[second + 1:last] in SECOND_LEVELS:
        third = qname.rfind(".", 0, second)
        return qname if third < 0 else qname[third + 1:]
    return qname[second + 1:]


#: ``c * log2(c)`` for counts below 1024 (a name's text is at most 1020
#: characters: 255 octets, each written at most as ``\DDD``).
_CLOG2C = tuple(c * log2(c) if c else 0.0 for c in range(1024))


def shannon_entropy(text: str) -> float:
    """
    The Shannon entropy of C{text}'s characters, in bits per character:
    ``-sum(p * log2(p))`` over the characters' frequencies (0.0 for empty
    text; at most ``log2(len(text))``).
    """
    n = len(text)
    if n == 0:
        return 0.0
    if n < len(_CLOG2C):
        return log2(n) - sum(map(_CLOG2C.__getitem__, map(text.count, set(text)))) / n
    return log2(n) - sum(c * log2(c) for c in Counter(text).values()) / n


class DomainList:
    """
    Domains whose names (the domain itself and every name under it) a
    detector ignores.

    :param domains: domain names, any case, with or without a final dot.
    """

    def __init__(self, domains: Iterable[str] = ()):
        self.domains = frozenset(d.strip(".").lower() for d in domains if d.strip("."))
        self._suffixes = tuple("." + d for d in self.domains)

    def __contains__(self, qname: str) -> bool:
        return qname in self.domains or (bool(self._suffixes) and qname.endswith(self._suffixes))


def _truncated(name: str) -> str:
    return name if len(name) <= EXAMPLE_CHARS else name[:EXAMPLE_CHARS - 1] + "…"


def _samples(*buckets) -> list[str]:
    """
    The last L{SAMPLE_PACKETS} packets kept by C{buckets} (oldest bucket
    first; None for an absent one), as L{packet_line} text.
    """
    packets = []
    for bucket in buckets:
        if bucket is not None and bucket.samples is not None:
            packets.extend(bucket.samples)
    return [packet_line(p) for p in packets[-SAMPLE_PACKETS:]]


def _examples(*buckets) -> list[str]:
    """
    Up to L{EXAMPLE_NAMES} names kept by C{buckets}, newest first, truncated
    to L{EXAMPLE_CHARS} characters.
    """
    names: list[str] = []
    for bucket in reversed(buckets):
        if bucket is not None and bucket.examples is not None:
            names.extend(n for n in reversed(bucket.examples) if n not in names)
    return [_truncated(n) for n in names[:EXAMPLE_NAMES]]


def _took_active(prev, cur) -> bool:
    """
    Whether either bucket (None for an absent one) saw activity since the
    last evaluation (the previous one's, when a half ended in between);
    clears both marks.
    """
    active = False
    for bucket in (prev, cur):
        if bucket is not None and bucket.active:
            bucket.active = False
            active = True
    return active


class _HalfWindows:
    """
    The clock of two half-windows: says when the current half is over.

    :ivar half: seconds in a half-window.
    :ivar end: when the current half ends (None before the first C{due}).
    """

    def __init__(self, window: float):
        self.half = window / 2
        self.end: Optional[float] = None

    def due(self, now: float) -> int:
        """
        How many halves ended by C{now}: 0 (keep both), 1 (the current half
        becomes the previous one) or 2 (a whole window passed: both are
        stale).  Starts the first half at the first call.
        """
        if self.end is None:
            self.end = now + self.half
            return 0
        if now < self.end:
            return 0
        passed = 1 + int((now - self.end) // self.half)
        self.end += passed * self.half
        return min(passed, 2)


class _DnsDetector:
    """
    What both DNS detectors share: DNS messages only, allow-lists of
    addresses and domains, half-windows, the set of suspects (keys whose
    counts crossed a threshold) and the count of buckets keeping evidence.
    """

    protocols = frozenset({DNS})

    def __init__(self, settings, context):
        self.settings = settings
        self._context = context
        self._allow = Networks(settings.allow)
        self._allow_domains = DomainList(settings.allow_domains)
        self._halves = _HalfWindows(settings.window)
        self._hot: set = set()
        self._sampled = 0

    def observe(self, packet) -> None:
        """
        Nothing: DNS detectors read DNS messages only (C{observe_dns}).
        """

    def _allowed(self, client: bytes, server: bytes) -> bool:
        """
        Whether the client or the server is on an allow-list.
        """
        context = self._context
        return context.allowed(client, self._allow) or context.allowed(server, self._allow)


@frozen
class DnsTunnelSettings(DetectorSettings):
    """
    Settings of C{dns_tunnel} (docs/detectors/dns.md).

    :ivar window: seconds of history the counts cover (60.0: idle tunnels
        poll every second or few — dnscat2 every second, iodine every 4 s —
        so a busy minute holds dozens of their names; counts cover 30 to
        60 s of it).
    :ivar unique_names: distinct names under one registered domain from one
        client in the window, at least (50: a page load touches a few to a
        few tens of a site's names; a tunnel needs a new name for every
        message, since resolvers cache repeated ones).
    :ivar encoded_share: share of those names that must look encoded
        (0.5: a tunnel's names nearly all do, a CDN's or a DNSBL's none).
    :ivar long_label: characters of the longest label left of the
        registered domain that make a name long (30: hostnames are short,
        encoders fill labels towards the 63-octet limit of RFC 1035 2.3.4).
    :ivar long_name: characters of a whole name that make it long (100:
        for tunnels that use many short labels).
    :ivar min_entropy: bits per character, over the labels left of the
        registered domain, a long name needs to look encoded (3.5: random
        hex of 30 characters measures 3.6 on average, base32 4.1, a padded
        or repeated label much less).
    :ivar odd_names: distinct names under one registered domain queried by
        one client with an unusual TYPE in the window, at least (30: a mail
        server looks up a handful of TXT names per domain for SPF, DKIM and
        DMARC; an idle dnscat2 polls TXT/CNAME/MX once a second).
    :ivar odd_qtypes: TYPEs counted as unusual (CNAME 5, NULL 10, MX 15,
        TXT 16, SRV 33: those iodine and dnscat2 use besides A/AAAA), and
        always the private-use TYPEs 65280-65534.
    :ivar critical_names: distinct names in the window that make the alert
        critical (500: bulk transfer, tens of kilobytes a minute).
    :ivar allow_domains: domains (and all names under them) never counted:
        hash blocklists and reputation services that encode data in names on
        purpose (e.g. ``sophosxl.net``).
    :ivar names_max: (client, name) pairs indexed per half-window; past it,
        new names are counted as new each time, unassessed (10000).
    :ivar names_per_domain: names indexed per (client, domain) per
        half-window; past it, counted unassessed (1000).
    :ivar flows_max: (client, domain) pairs counted per half-window; past
        it, names of new pairs are dropped and counted (4096).
    :ivar facts_max: names whose registered domain is cached; the cache is
        emptied when full (10000).
    :ivar suspects_max: pairs near a threshold that keep evidence (the
        last names and packets) per half-window; past it, more are alerted
        on without it (256).
    """

    window: float = field(default=60.0, validator=_positive)
    unique_names: int = field(default=50, validator=_count)
    encoded_share: float = field(default=0.5, validator=_share)
    long_label: int = field(default=30, validator=_count)
    long_name: int = field(default=100, validator=_count)
    min_entropy: float = field(default=3.5, validator=_bound)
    odd_names: int = field(default=30, validator=_count)
    odd_qtypes: tuple[int, ...] = field(default=(5, 10, 15, 16, 33), validator=_qtypes)
    critical_names: int = field(default=500, validator=_count)
    allow_domains: tuple[str, ...] = ()
    names_max: int = field(default=10000, validator=_bound)
    names_per_domain: int = field(default=1000, validator=_bound)
    flows_max: int = field(default=4096, validator=_count)
    facts_max: int = field(default=10000, validator=_count)
    suspects_max: int = field(default=256, validator=_bound)


class _Flow:
    """
    One client's queries under one registered domain in one half-window.

    ``unique`` counts names first seen in this half (not in the previous
    one); of those, ``assessed`` were looked at and ``unassessed`` were past
    a bound.  Of the assessed, ``long`` were long enough to measure
    (``entropy_sum`` their entropies) and ``encoded`` looked encoded.
    ``odd`` counts new names asked with an unusual TYPE.  ``examples`` and
    ``samples`` (None until the flow nears a threshold) keep the last
    suspect names and their packets.  ``active`` says a new name came since
    the last evaluation.
    """

    __slots__ = ("queries", "indexed", "unique", "assessed", "unassessed", "long", "encoded",
                 "entropy_sum", "odd", "qtypes", "server", "examples", "samples", "active")

    def __init__(self, server: bytes):
        self.queries = self.indexed = self.unique = 0
        self.assessed = self.unassessed = self.long = self.encoded = self.odd = 0
        self.entropy_sum = 0.0
        self.qtypes: dict[int, int] = {}
        self.server = server
        self.examples: Optional[deque] = None
        self.samples: Optional[deque] = None
        self.active = False


class DnsTunnelDetector(_DnsDetector):
    """
    DNS tunnelling and exfiltration: many distinct, long, high-entropy
    names under one registered domain from one client, or many distinct
    names asked with unusual TYPEs (NULL, TXT, CNAME, MX, SRV, private).

    Counts queries (not responses) per (client, registered domain); the
    client is the query's source.  Per query: one dict lookup for a name
    the client already asked in this half-window (0.4 µs a message on a
    resolver's mix); a new name costs its registered domain (cached) and,
    when it is long, its entropy: 3-8 µs, measured at most C{names_max}
    times a half-window.
    """

    name = "dns_tunnel"
    kinds = ("dns_tunnel",)
    settings_type = DnsTunnelSettings

    def __init__(self, settings: DnsTunnelSettings, context):
        super().__init__(settings, context)
        self._odd_qtypes = frozenset(settings.odd_qtypes)
        self._seen: dict[tuple, _Flow] = {}
        self._seen_prev: dict[tuple, _Flow] = {}
        self._flows: dict[tuple, _Flow] = {}
        self._flows_prev: dict[tuple, _Flow] = {}
        self._facts: dict[str, Optional[str]] = {}
        self.queries = self.new_names = self.ignored_queries = 0
        self.names_unindexed = self.flows_dropped = self.facts_cleared = 0
        self.samples_dropped = 0

    def observe_dns(self, packet, message) -> None:
        if message.qr or message.opcode or not message.qname:
            return
        self.queries += 1
        flow = self._seen.get((packet.saddr, message.qname))
        if flow is not None:
            flow.queries += 1
            return
        self._new_name(packet, message)

    def _new_name(self, packet, message) -> None:
        """
        A name this client has not asked in the current half-window.
        """
        client = packet.saddr
        qname = message.qname
        facts = self._facts
        base = facts.get(qname, "")
        if base == "":
            if len(facts) >= self.settings.facts_max:
                facts.clear()
                self.facts_cleared += 1
            base = facts[qname] = (None if qname in self._allow_domains
                                   else registered_domain(qname))
        if base is None or self._allowed(client, packet.daddr):
            self.ignored_queries += 1
            return
        fkey = (client, base)
        flow = self._flows.get(fkey)
        if flow is None:
            if len(self._flows) >= self.settings.flows_max:
                self.flows_dropped += 1
                return
            flow = self._flows[fkey] = _Flow(packet.daddr)
        elif flow.server != packet.daddr:
            flow.server = _MANY
        flow.queries += 1
        flow.active = True
        self.new_names += 1
        key = (client, qname)
        fresh = key not in self._seen_prev
        settings = self.settings
        if flow.indexed >= settings.names_per_domain or len(self._seen) >= settings.names_max:
            # Not indexed: a repeat of this name comes here again and counts
            # as new; past these bounds the thresholds are crossed anyway.
            self.names_unindexed += 1
            if fresh:
                flow.unique += 1
                flow.unassessed += 1
                self._tally(fkey, flow, packet, message, False)
            return
        self._seen[key] = flow
        flow.indexed += 1
        if not fresh:
            return
        flow.unique += 1
        flow.assessed += 1
        encoded = False
        # The labels left of the registered domain, dots included.
        sub = qname[:len(qname) - len(base) - 1]
        if len(qname) >= settings.long_name or (
                len(sub) >= settings.long_label
                and max(map(len, sub.split("."))) >= settings.long_label):
            # Only long names are measured: short ones cannot look encoded.
            entropy = shannon_entropy(sub.replace(".", ""))
            flow.long += 1
            flow.entropy_sum += entropy
            if entropy >= settings.min_entropy:
                encoded = True
                flow.encoded += 1
        self._tally(fkey, flow, packet, message, encoded)

    def _tally(self, fkey: tuple, flow: _Flow, packet, message, encoded: bool) -> None:
        """
        Count a new name's TYPE; mark the flow for evaluation once its
        counts cross a threshold, and keep the name and its packet as
        evidence when the flow is near one and the name looks like a
        tunnel's (encoded, or of an unusual TYPE).
        """
        qtype = message.qtype
        odd = qtype in self._odd_qtypes or qtype in PRIVATE_QTYPES
        if odd:
            flow.odd += 1
        qtypes = flow.qtypes
        if qtype not in qtypes and len(qtypes) >= _QTYPES_MAX - 1:
            qtype = -1
        qtypes[qtype] = qtypes.get(qtype, 0) + 1
        settings = self.settings
        unique, odd_names = flow.unique, flow.odd
        prev = self._flows_prev.get(fkey)
        if prev is not None:
            unique += prev.unique
            odd_names += prev.odd
        if unique >= settings.unique_names or odd_names >= settings.odd_names:
            self._hot.add(fkey)
        if not (encoded or odd) or (unique <= settings.unique_names - SAMPLE_PACKETS
                                    and odd_names <= settings.odd_names - SAMPLE_PACKETS):
            return
        if flow.samples is None:
            if self._sampled >= settings.suspects_max:
                self.samples_dropped += 1
                return
            self._sampled += 1
            flow.samples = deque(maxlen=SAMPLE_PACKETS)
            flow.examples = deque(maxlen=EXAMPLE_NAMES)
        flow.samples.append(packet)
        flow.examples.append(message.qname)

    def evaluate(self, now: float, book) -> None:
        due = self._halves.due(now)
        if due:
            self._seen_prev = self._seen if due == 1 else {}
            self._flows_prev = self._flows if due == 1 else {}
            self._seen = {}
            self._flows = {}
            self._sampled = 0
        for fkey in list(self._hot):
            cur = self._flows.get(fkey)
            prev = self._flows_prev.get(fkey)
            if cur is None and prev is None:
                self._hot.discard(fkey)
                continue
            found = self._measure(prev, cur)
            if not found["reasons"]:
                self._hot.discard(fkey)
                continue
            if _took_active(prev, cur):
                self._signal(book, now, fkey, prev, cur, found)

    def _measure(self, prev: Optional[_Flow], cur: Optional[_Flow]) -> dict:
        """
        The counts of both halves and the reasons they give for an alert.
        """
        flows = [f for f in (prev, cur) if f is not None]
        unique = sum(f.unique for f in flows)
        assessed = sum(f.assessed for f in flows)
        encoded = sum(f.encoded for f in flows)
        odd = sum(f.odd for f in flows)
        share = encoded / assessed if assessed else 0.0
        reasons = []
        settings = self.settings
        if unique >= settings.unique_names and share >= settings.encoded_share:
            reasons.append("long_high_entropy_names")
        if odd >= settings.odd_names:
            reasons.append("unusual_qtypes")
        return {"unique": unique, "assessed": assessed, "encoded": encoded, "odd": odd,
                "share": share, "reasons": reasons}

    def _signal(self, book, now: float, fkey: tuple, prev, cur, found: dict) -> None:
        client, domain = fkey
        flows = [f for f in (prev, cur) if f is not None]
        settings = self.settings
        qtypes: dict[str, int] = {}
        for f in flows:
            for qtype, n in f.qtypes.items():
                word = "other" if qtype < 0 else qtype_text(qtype)
                qtypes[word] = qtypes.get(word, 0) + n
        servers = {f.server for f in flows}
        server = None
        if len(servers) == 1 and _MANY not in servers:
            server = address_text(servers.pop())
        long = sum(f.long for f in flows)
        mean_entropy = sum(f.entropy_sum for f in flows) / long if long else 0.0
        unique = found["unique"]
        client_text = address_text(client)
        top = max(qtypes.items(), key=lambda item: item[1])[0]
        if "long_high_entropy_names" in found["reasons"]:
            how = f"{found['share']:.0%} long high-entropy"
        else:
            how = f"{found['odd']} of unusual TYPEs"
        summary = (f"{client_text} asked {unique} distinct names under {domain} in "
                   f"{settings.window:g} s ({how}, mostly {top}): possible DNS tunnel")
        severity = "critical" if unique >= settings.critical_names else "warning"
        evidence = {
            "client": client_text,
            "domain": domain,
            "server": server,
            "unique_subdomains": unique,
            "queries": sum(f.queries for f in flows),
            "long_names": long,
            "encoded_names": found["encoded"],
            "unassessed_names": sum(f.unassessed for f in flows),
            "long_label_share": round(found["share"], 3),
            "mean_entropy": round(mean_entropy, 2),
            "odd_qtype_names": found["odd"],
            "qtypes": qtypes,
            "reasons": found["reasons"],
            "window": settings.window,
            "thresholds": {
                "unique_names": settings.unique_names,
                "encoded_share": settings.encoded_share,
                "long_label": settings.long_label,
                "long_name": settings.long_name,
                "min_entropy": settings.min_entropy,
                "odd_names": settings.odd_names,
            },
            "examples": _examples(prev, cur),
            "samples": _samples(prev, cur),
        }
        book.signal("dns_tunnel", fkey, now, severity, summary, src=client_text, dst=server,
                    evidence=evidence)

    def stats(self) -> dict[str, int]:
        return {
            "queries": self.queries,
            "new_names": self.new_names,
            "ignored_queries": self.ignored_queries,
            "names_indexed": len(self._seen) + len(self._seen_prev),
            "names_unindexed": self.names_unindexed,
            "flows": len(self._flows) + len(self._flows_prev),
            "flows_dropped": self.flows_dropped,
            "facts": len(self._facts),
            "facts_cleared": self.facts_cleared,
            "suspects": len(self._hot),
            "samples_dropped": self.samples_dropped,
        }


@frozen
class DnsNxdomainSettings(DetectorSettings):
    """
    Settings of C{dns_nxdomain} (docs/detectors/dns.md).

    :ivar window: seconds of history the counts cover (60.0; counts cover
        30 to 60 s of it).
    :ivar nxdomains: NXDOMAIN responses to one client in the window, at
        least (50: a stub client's search list adds a few NXDOMAINs per
        lookup, to few domains; DGA malware tries hundreds or thousands of
        names in a burst until one resolves).
    :ivar domains: distinct registered domains among those names, at least
        (20: search-list and Kubernetes ``ndots`` expansions, DNSBL "not
        listed" answers all fall under a handful of domains; each DGA name
        is a domain of its own).  Single-label names (Chromium's
        intranet-redirect probes) are not counted as domains.
    :ivar min_share: least share of NXDOMAIN among the client's responses
        (0.25: most of a DGA host's lookups fail during a burst; a busy
        host's 5-20 %).
    :ivar resolver_servers: distinct servers sending NXDOMAIN to one client
        in the window that mark it as a recursive resolver, never alerted
        (10: a stub asks one to three configured resolvers, a recursive
        resolver asks every zone's servers); 0 turns the test off.
    :ivar allow_domains: domains (and names under them) whose NXDOMAINs are
        not counted (e.g. DNSBL zones, ``zen.spamhaus.org``).
    :ivar clients_max: clients whose responses are counted per half-window;
        past it, new clients' responses are not counted (10000).
    :ivar nx_clients_max: clients whose NXDOMAINs are counted per
        half-window; past it, new clients are dropped and counted (2000).
    :ivar names_max: names and domains kept per half-window, all clients
        together, to count distinct ones; past it, a client's new names
        count as distinct names but not as domains (20000).
    :ivar names_per_client: names and domains kept per client per
        half-window, each (256).
    :ivar suspects_max: clients near the threshold that keep evidence (the
        last names and packets) per half-window (256).
    """

    window: float = field(default=60.0, validator=_positive)
    nxdomains: int = field(default=50, validator=_count)
    domains: int = field(default=20, validator=_bound)
    min_share: float = field(default=0.25, validator=_share)
    resolver_servers: int = field(default=10, validator=_bound)
    allow_domains: tuple[str, ...] = ()
    clients_max: int = field(default=10000, validator=_bound)
    nx_clients_max: int = field(default=2000, validator=_bound)
    names_max: int = field(default=20000, validator=_bound)
    names_per_client: int = field(default=256, validator=_bound)
    suspects_max: int = field(default=256, validator=_bound)


class _Client:
    """
    NXDOMAIN responses to one client in one half-window.

    ``names``/``bases`` hold the distinct names and registered domains;
    ``fresh_names``/``fresh_bases`` count those not in the previous half;
    ``overflow`` counts new names past a bound.  ``server`` is the first
    server, ``servers`` (None while there is one) all of them up to a bound.
    """

    __slots__ = ("nx", "names", "bases", "fresh_names", "fresh_bases", "overflow",
                 "server", "servers", "examples", "samples", "active")

    def __init__(self, server: bytes):
        self.nx = self.fresh_names = self.fresh_bases = self.overflow = 0
        self.names: set[str] = set()
        self.bases: set[str] = set()
        self.server = server
        self.servers: Optional[set[bytes]] = None
        self.examples: Optional[deque] = None
        self.samples: Optional[deque] = None
        self.active = False

    def all_servers(self) -> set[bytes]:
        return self.servers if self.servers is not None else {self.server}


class DnsNxdomainDetector(_DnsDetector):
    """
    NXDOMAIN storms: one client getting many NXDOMAIN responses for many
    distinct names under many registered domains, as domain-generation
    (DGA) malware does while it looks for its controller.

    The client of a response is its destination.  Per response: one dict
    update (responses per client); an NXDOMAIN also costs set lookups and
    its name's registered domain.
    """

    name = "dns_nxdomain"
    kinds = ("dns_nxdomain_storm",)
    settings_type = DnsNxdomainSettings

    def __init__(self, settings: DnsNxdomainSettings, context):
        super().__init__(settings, context)
        self._responses: dict[bytes, int] = {}
        self._responses_prev: dict[bytes, int] = {}
        self._clients: dict[bytes, _Client] = {}
        self._clients_prev: dict[bytes, _Client] = {}
        self._stored = 0
        self.responses = self.nxdomains = self.ignored = 0
        self.clients_dropped = self.nx_clients_dropped = self.names_unstored = 0
        self.recursive_skipped = self.samples_dropped = 0

    def observe_dns(self, packet, message) -> None:
        if not message.qr:
            return
        self.responses += 1
        client = packet.daddr
        responses = self._responses
        n = responses.get(client)
        if n is not None:
            responses[client] = n + 1
        elif len(responses) < self.settings.clients_max:
            responses[client] = 1
        else:
            self.clients_dropped += 1
        if message.rcode == NXDOMAIN and not message.opcode:
            self._nxdomain(packet, message, client)

    def _nxdomain(self, packet, message, client: bytes) -> None:
        self.nxdomains += 1
        qname = message.qname
        settings = self.settings
        if qname in self._allow_domains or self._allowed(client, packet.saddr):
            self.ignored += 1
            return
        bucket = self._clients.get(client)
        if bucket is None:
            if len(self._clients) >= settings.nx_clients_max:
                self.nx_clients_dropped += 1
                return
            bucket = self._clients[client] = _Client(packet.saddr)
        elif packet.saddr != bucket.server:
            if bucket.servers is None:
                bucket.servers = {bucket.server}
            if len(bucket.servers) < (settings.resolver_servers or _SERVERS_KEPT):
                bucket.servers.add(packet.saddr)
        bucket.nx += 1
        bucket.active = True
        prev = self._clients_prev.get(client)
        if qname and qname not in bucket.names:
            self._new_name(bucket, prev, qname)
        nx = bucket.nx + (prev.nx if prev is not None else 0)
        if nx >= settings.nxdomains:
            self._hot.add(client)
        if nx > settings.nxdomains - SAMPLE_PACKETS:
            if bucket.samples is None:
                if self._sampled >= settings.suspects_max:
                    self.samples_dropped += 1
                    return
                self._sampled += 1
                bucket.samples = deque(maxlen=SAMPLE_PACKETS)
                bucket.examples = deque(maxlen=EXAMPLE_NAMES)
            bucket.samples.append(packet)
            if qname and qname not in bucket.examples:
                bucket.examples.append(qname)

    def _new_name(self, bucket: _Client, prev: Optional[_Client], qname: str) -> None:
        """
        A name C{bucket} has not stored: store it and its domain, within
        the bounds.
        """
        settings = self.settings
        if len(bucket.names) >= settings.names_per_client or self._stored >= settings.names_max:
            bucket.overflow += 1
            self.names_unstored += 1
            return
        bucket.names.add(qname)
        self._stored += 1
        if prev is None or qname not in prev.names:
            bucket.fresh_names += 1
        base = registered_domain(qname)
        # One label is not a domain: Chromium's random intranet probes and
        # unqualified names under no search list.
        if ("." in base and base not in bucket.bases
                and len(bucket.bases) < settings.names_per_client):
            bucket.bases.add(base)
            self._stored += 1
            if prev is None or base not in prev.bases:
                bucket.fresh_bases += 1

    def evaluate(self, now: float, book) -> None:
        due = self._halves.due(now)
        if due:
            self._responses_prev = self._responses if due == 1 else {}
            self._clients_prev = self._clients if due == 1 else {}
            self._responses = {}
            self._clients = {}
            self._stored = self._sampled = 0
        settings = self.settings
        for client in list(self._hot):
            cur = self._clients.get(client)
            prev = self._clients_prev.get(client)
            buckets = [b for b in (prev, cur) if b is not None]
            nx = sum(b.nx for b in buckets)
            if nx < settings.nxdomains:
                self._hot.discard(client)
                continue
            if not _took_active(prev, cur):
                continue
            servers = set().union(*(b.all_servers() for b in buckets))
            if settings.resolver_servers and len(servers) >= settings.resolver_servers:
                self.recursive_skipped += 1
                continue
            names = domains = 0
            for b in buckets:
                fresh = b is cur and prev is not None
                names += (b.fresh_names if fresh else len(b.names)) + b.overflow
                domains += b.fresh_bases if fresh else len(b.bases)
            responses = max(self._responses.get(client, 0)
                            + self._responses_prev.get(client, 0), nx)
            if domains < settings.domains or nx / responses < settings.min_share:
                continue
            self._signal(book, now, client, prev, cur, nx, names, domains, responses, servers)

    def _signal(self, book, now, client, prev, cur, nx, names, domains, responses,
                servers) -> None:
        settings = self.settings
        client_text = address_text(client)
        server = address_text(next(iter(servers))) if len(servers) == 1 else None
        summary = (f"{client_text} got {nx} NXDOMAIN answers for {names} names under "
                   f"{domains} domains in {settings.window:g} s "
                   f"({nx / responses:.0%} of its answers): possible DGA malware")
        evidence = {
            "client": client_text,
            "nxdomains": nx,
            "responses": responses,
            "nxdomain_share": round(nx / responses, 3),
            "distinct_names": names,
            "distinct_domains": domains,
            "servers": text_addresses(servers, EVIDENCE_ITEMS),
            "window": settings.window,
            "thresholds": {
                "nxdomains": settings.nxdomains,
                "domains": settings.domains,
                "min_share": settings.min_share,
                "resolver_servers": settings.resolver_servers,
            },
            "examples": _examples(prev, cur),
            "samples": _samples(prev, cur),
        }
        book.signal("dns_nxdomain_storm", client, now, "warning", summary, src=client_text,
                    dst=server, evidence=evidence)

    def stats(self) -> dict[str, int]:
        return {
            "responses": self.responses,
            "nxdomains": self.nxdomains,
            "ignored": self.ignored,
            "clients": len(self._responses) + len(self._responses_prev),
            "clients_dropped": self.clients_dropped,
            "nx_clients": len(self._clients) + len(self._clients_prev),
            "nx_clients_dropped": self.nx_clients_dropped,
            "names_stored": self._stored,
            "names_unstored": self.names_unstored,
            "recursive_skipped": self.recursive_skipped,
            "samples_dropped": self.samples_dropped,
            "suspects": len(self._hot),
        }
