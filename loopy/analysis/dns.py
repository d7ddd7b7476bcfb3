# -*- test-case-name: tests.test_analysis_dns -*-
"""
The DNS analyser: queries and responses on the DNS ports (UDP and TCP),
matched by message id and 5-tuple (RFC 1035 section 7.3), with latency,
rcodes, and the most asked names.
"""

from __future__ import annotations

from collections import deque
from struct import Struct

from zope.interface import implementer

from loopy.analysis.base import AnalyserConfig, IAnalyser, prune_half, top
from loopy.dissect.dns import answers_of, parse_message, qtype_text, rcode_text
from loopy.dissect.headers import IPPROTO_TCP, IPPROTO_UDP
from loopy.model import DnsQuery, DnsSnapshot, NameCount

_LENGTH = Struct("!H")
_MAX_TCP_MESSAGES = 8  # per segment


@implementer(IAnalyser)
class DnsAnalyser:
    """
    Follows DNS transactions.

    Tables: pending queries (cap C{dns_pending_max}; at the cap the oldest is
    dropped, counted in C{pending_evicted}), query names (cap
    C{dns_names_max}; at the cap the less-asked half is dropped, counted in
    C{names_evicted}), recent transactions (the newest C{report_queries}).
    Answers are dissected for at most C{dns_answers_per_second} responses in
    each second of capture time (packet timestamps); the rest count in
    C{answers_budgeted_out}.

    DNS over TCP is read when a segment holds whole length-prefixed messages
    (RFC 7766 section 8), the usual case; messages split across segments are
    not reassembled.
    """

    name = "dns"

    def __init__(self, config: AnalyserConfig):
        self._config = config
        self._ports = config.dns_ports
        self._pending: dict[tuple, DnsQuery] = {}
        self._recent: deque[DnsQuery] = deque(maxlen=config.report_queries)
        self._names: dict[str, int] = {}
        self._rcodes: dict[str, int] = {}
        self._qtypes: dict[str, int] = {}
        self._counts = dict.fromkeys(
            ("queries", "responses", "matched", "unanswered", "malformed",
             "pending_evicted", "names_evicted", "budgeted_out", "last_queries"),
            0,
        )
        self._budget = config.dns_answers_per_second
        self._budget_second = None  # the capture second the budget is for

    def observe(self, packet) -> None:
        proto = packet.proto
        if proto != IPPROTO_UDP and proto != IPPROTO_TCP:
            return
        ports = self._ports
        if packet.sport not in ports and packet.dport not in ports:
            return
        if not packet.payload_len:
            return
        payload = packet.payload
        if proto == IPPROTO_UDP:
            self._message(packet, payload, "udp")
            return
        offset = 0
        for _ in range(_MAX_TCP_MESSAGES):
            if offset + 2 > len(payload):
                break
            (size,) = _LENGTH.unpack_from(payload, offset)
            message = payload[offset + 2 : offset + 2 + size]
            if len(message) < size:
                break
            self._message(packet, message, "tcp")
            offset += 2 + size

    def _message(self, packet, data: bytes, transport: str) -> None:
        counts = self._counts
        message = parse_message(data)
        if message is None or message.opcode != 0:
            counts["malformed"] += message is None
            return
        if not message.qr:
            self._query(packet, message, transport)
            return
        counts["responses"] += 1
        rcode = rcode_text(message.rcode)
        self._rcodes[rcode] = self._rcodes.get(rcode, 0) + 1
        key = (packet.dst, packet.dport, packet.src, packet.sport, message.id)
        query = self._pending.pop(key, None)
        if query is None:
            return
        counts["matched"] += 1
        answers = ()
        if message.ancount:
            second = int(packet.ts)
            if second != self._budget_second:
                self._budget_second = second
                self._budget = self._config.dns_answers_per_second
            if self._budget > 0:
                self._budget -= 1
                answers = answers_of(data) or ()
            else:
                counts["budgeted_out"] += 1
        self._recent.appendleft(
            query.__class__(
                ts=query.ts, client=query.client, sport=query.sport,
                server=query.server, dport=query.dport,
                transport=query.transport, id=query.id, qname=query.qname,
                qtype=query.qtype, rcode=rcode, answers=answers,
                latency_ms=round(max(0.0, packet.ts - query.ts) * 1000, 3),
            )
        )

    def _query(self, packet, message, transport: str) -> None:
        counts = self._counts
        counts["queries"] += 1
        qtype = qtype_text(message.qtype)
        self._qtypes[qtype] = self._qtypes.get(qtype, 0) + 1
        names = self._names
        if message.qname not in names and len(names) >= self._config.dns_names_max:
            counts["names_evicted"] += prune_half(names, lambda count: count)
        names[message.qname] = names.get(message.qname, 0) + 1
        pending = self._pending
        key = (packet.src, packet.sport, packet.dst, packet.dport, message.id)
        # A retry replaces the first query and goes to the end, so that the
        # table stays oldest first.
        pending.pop(key, None)
        if len(pending) >= self._config.dns_pending_max:
            del pending[next(iter(pending))]
            counts["pending_evicted"] += 1
        pending[key] = DnsQuery(
            ts=packet.ts, client=packet.src, sport=packet.sport,
            server=packet.dst, dport=packet.dport, transport=transport,
            id=message.id, qname=message.qname, qtype=qtype,
        )

    def snapshot(self, now: float, interval: float) -> DnsSnapshot:
        counts = self._counts
        pending = self._pending
        deadline = now - self._config.dns_timeout
        # Oldest first (insertion order): stop at the first still in time.
        while pending:
            key = next(iter(pending))
            query = pending[key]
            if query.ts > deadline:
                break
            del pending[key]
            counts["unanswered"] += 1
            self._recent.appendleft(query)
        queries_now = counts["queries"]
        qps = (queries_now - counts["last_queries"]) / (interval if interval > 0 else 1.0)
        counts["last_queries"] = queries_now
        names = top(self._names.items(), self._config.top_n, key=lambda kv: kv[1])
        return DnsSnapshot(
            queries_total=queries_now,
            responses_total=counts["responses"],
            matched=counts["matched"],
            unanswered=counts["unanswered"],
            nxdomain=self._rcodes.get("NXDOMAIN", 0),
            servfail=self._rcodes.get("SERVFAIL", 0),
            qps=qps,
            rcodes=dict(sorted(self._rcodes.items())),
            qtypes=dict(sorted(self._qtypes.items())),
            top_names=tuple(NameCount(name, count) for name, count in names),
            queries=tuple(self._recent),
            malformed=counts["malformed"],
            pending=len(pending),
            pending_evicted=counts["pending_evicted"],
            names_evicted=counts["names_evicted"],
            answers_budgeted_out=counts["budgeted_out"],
        )
