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
from loopy.dissect.headers import IPPROTO_TCP, IPPROTO_UDP, address_text
from loopy.model import DnsQuery, DnsSnapshot, NameCount

_LENGTH = Struct("!H")
_MAX_TCP_MESSAGES = 8  # per segment
_SERVFAIL, _NXDOMAIN = 2, 3  # RCODEs (RFC 1035 section 4.1.1)


class _Transaction:
    """
    A query, and later its response, inside the analyser; it becomes a
    L{DnsQuery} only when a snapshot reports it (most never are: a report
    lists the newest C{report_queries}).

    :ivar client: the querier's address octets; ``server`` the server's.
    :ivar qtype: the question's TYPE (a number).
    :ivar rcode: the response's RCODE (a number), or None.
    :ivar response_ts: the response's ts, or None.
    :ivar answers: the response message whose answers are still to be
        dissected (within the budget, not reported yet), or None.
    :ivar record: the L{DnsQuery}, once made.
    """

    __slots__ = ("ts", "client", "sport", "server", "dport", "transport", "id",
                 "qname", "qtype", "rcode", "response_ts", "answers", "record")

    def __init__(self, ts, client, sport, server, dport, transport, ident, qname, qtype):
        self.ts = ts
        self.client = client
        self.sport = sport
        self.server = server
        self.dport = dport
        self.transport = transport
        self.id = ident
        self.qname = qname
        self.qtype = qtype
        self.rcode = self.response_ts = self.answers = self.record = None


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
    C{answers_budgeted_out}.  Dissection (scapy, some 150 µs a message)
    waits until a snapshot reports the transaction, so the responses that
    drop out of the recent transactions before a report cost nothing; the
    messages waiting are those of the recent transactions (at most
    C{report_queries}, each at most 64 KiB).

    DNS over TCP is read when a segment holds whole length-prefixed messages
    (RFC 7766 section 8), the usual case; messages split across segments are
    not reassembled.
    """

    name = "dns"

    def __init__(self, config: AnalyserConfig):
        self._config = config
        self._ports = config.dns_ports
        self._pending: dict[tuple, _Transaction] = {}
        self._recent: deque[_Transaction] = deque(maxlen=config.report_queries)
        self._names: dict[str, int] = {}
        # RCODE and TYPE numbers -> messages; mnemonics in snapshots
        self._rcodes: dict[int, int] = {}
        self._qtypes: dict[int, int] = {}
        self._counts = dict.fromkeys(
            ("queries", "responses", "matched", "unanswered", "malformed",
             "pending_evicted", "names_evicted", "budgeted_out", "last_queries",
             "dissected"),
            0,
        )
        self._budget = config.dns_answers_per_second
        self._budget_second = None  # the capture second the budget is for

    def observe(self, packet) -> None:
        # Ports first: they rule out nearly every packet, and they are 0 for
        # anything but TCP and UDP.
        ports = self._ports
        if packet.sport not in ports and packet.dport not in ports:
            return
        proto = packet.proto
        if proto != IPPROTO_UDP and proto != IPPROTO_TCP or not packet.payload_len:
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
        rcode = message.rcode
        self._rcodes[rcode] = self._rcodes.get(rcode, 0) + 1
        key = (packet.daddr, packet.dport, packet.saddr, packet.sport, message.id)
        query = self._pending.pop(key, None)
        if query is None:
            return
        counts["matched"] += 1
        if message.ancount:
            second = int(packet.ts)
            if second != self._budget_second:
                self._budget_second = second
                self._budget = self._config.dns_answers_per_second
            if self._budget > 0:
                self._budget -= 1
                query.answers = data
            else:
                counts["budgeted_out"] += 1
        query.rcode = rcode
        query.response_ts = packet.ts
        self._recent.appendleft(query)

    def _query(self, packet, message, transport: str) -> None:
        counts = self._counts
        counts["queries"] += 1
        qtype = message.qtype
        self._qtypes[qtype] = self._qtypes.get(qtype, 0) + 1
        names = self._names
        qname = message.qname
        if qname not in names and len(names) >= self._config.dns_names_max:
            counts["names_evicted"] += prune_half(names, lambda count: count)
        names[qname] = names.get(qname, 0) + 1
        pending = self._pending
        saddr, sport, daddr, dport = packet.saddr, packet.sport, packet.daddr, packet.dport
        key = (saddr, sport, daddr, dport, message.id)
        # A retry replaces the first query and goes to the end, so that the
        # table stays oldest first.
        pending.pop(key, None)
        if len(pending) >= self._config.dns_pending_max:
            del pending[next(iter(pending))]
            counts["pending_evicted"] += 1
        pending[key] = _Transaction(packet.ts, saddr, sport, daddr, dport, transport,
                                    message.id, qname, qtype)

    def _record(self, transaction: _Transaction) -> DnsQuery:
        """
        The report's record of a transaction, made (and its answers
        dissected) the first time it is reported.
        """
        record = transaction.record
        if record is None:
            answers = ()
            if transaction.answers is not None:
                answers = answers_of(transaction.answers) or ()
                transaction.answers = None
                self._counts["dissected"] += 1
            rcode = latency_ms = None
            if transaction.rcode is not None:
                rcode = rcode_text(transaction.rcode)
                latency_ms = round(max(0.0, transaction.response_ts - transaction.ts) * 1000, 3)
            record = transaction.record = DnsQuery(
                ts=transaction.ts, client=address_text(transaction.client),
                sport=transaction.sport, server=address_text(transaction.server),
                dport=transaction.dport, transport=transaction.transport,
                id=transaction.id, qname=transaction.qname,
                qtype=qtype_text(transaction.qtype), rcode=rcode, answers=answers,
                latency_ms=latency_ms,
            )
        return record

    def dissection_counts(self) -> tuple[int, int]:
        """
        Responses whose answers were dissected with scapy, and responses
        whose answers were not for the per-second budget; both cumulative.

        :returns: ``(dissected, budgeted_out)``.
        """
        return self._counts["dissected"], self._counts["budgeted_out"]

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
            nxdomain=self._rcodes.get(_NXDOMAIN, 0),
            servfail=self._rcodes.get(_SERVFAIL, 0),
            qps=qps,
            rcodes=_by_mnemonic(self._rcodes, rcode_text),
            qtypes=_by_mnemonic(self._qtypes, qtype_text),
            top_names=tuple(NameCount(name, count) for name, count in names),
            queries=tuple(self._record(t) for t in self._recent),
            malformed=counts["malformed"],
            pending=len(pending),
            pending_evicted=counts["pending_evicted"],
            names_evicted=counts["names_evicted"],
            answers_budgeted_out=counts["budgeted_out"],
        )


def _by_mnemonic(counts: dict[int, int], text) -> dict[str, int]:
    """
    Counts by number as counts by mnemonic, in mnemonic order.

    :param text: L{rcode_text} or L{qtype_text} (one mnemonic per number).
    """
    return dict(sorted((text(number), count) for number, count in counts.items()))
