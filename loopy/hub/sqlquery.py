# -*- test-case-name: tests.test_history_store -*-
"""
Reads of the SQLite history (L{loopy.hub.sqlschema}'s tables): a UI's
L{HistoryQuery}, and a peer hub's catch-up (L{read_ranges},
L{read_missing}).  Each function runs inside one transaction on the
writer thread, given a cursor.
"""

from __future__ import annotations

import bisect
import json
import math
from typing import Any, Optional, Sequence

from loopy.history import (
    AgentHistory,
    AlertRevision,
    DnsName,
    History,
    HistoryQuery,
    Peaks,
    SeqRange,
    SeriesPoint,
    SyncRanges,
    SyncRows,
)
from loopy.hub.history import COUNT_FIELDS, PEAK_FIELDS, Tier
from loopy.hub.sqlschema import ROW_COLUMNS, Layout, row_from_db
from loopy.model import Alert, Conversation, HostTraffic, IntervalCounts, TcpConnection
from loopy.wire import converter, to_json_value

#: Most series points in one answer, all agents together (an answer must
#: stay under L{loopy.wire.MAX_RECORD_BYTES} of JSON, about 800 octets a
#: point): with many agents each gets fewer points (merged wider).
MAX_ANSWER_POINTS = 6000
#: Most alerts per agent in one answer, newest first.
MAX_ANSWER_ALERTS = 500
#: Connections per agent in an answer: the query's C{top} times this.
CONNECTIONS_PER_TOP = 5

_N, _P = len(COUNT_FIELDS), len(PEAK_FIELDS)
_CONNECTION_COLUMNS = ("src, sport, dst, dport, state, packets_out, bytes_out, packets_in,"
                       " bytes_in, ip_bytes_out, ip_bytes_in, rtt_ms, retransmissions,"
                       " first_seen, last_seen")


def choose_tier(tiers: Sequence[Tier], since: float, until: float, now: float,
                max_points: int) -> int:
    """
    The index of the finest tier whose retention covers C{since}
    (``now - retention <= since``) and that spans ``[since, until)`` in at
    most C{max_points} buckets; else the coarsest.
    """
    for index, tier in enumerate(tiers):
        if now - tier.retention <= since and _buckets(tier.step, since, until) <= max_points:
            return index
    return len(tiers) - 1


def _buckets(step: float, since: float, until: float) -> int:
    return max(1, math.ceil((until - math.floor(since / step) * step) / step))


def read_history(txn: Any, layout: Layout, q: HistoryQuery, since: float, until: float,
                 now: float, hub: str) -> History:
    """
    Answer C{q} over ``[since, until)``.  Points come from the tier
    L{choose_tier} picks, merged (C{k} adjacent buckets into one) when they
    are still more than the agent's share of points: C{q.max_points}, or
    fewer with many agents (L{MAX_ANSWER_POINTS}).  Top lists and
    connections come from the detail tables of that tier, or of the second
    tier when the first is chosen.  Fleet points (no C{q.agent_id}) sum
    every agent's counts and peaks per bucket of at most C{q.max_points}.
    """
    index = choose_tier(layout.tiers, since, until, now, q.max_points)
    tier = layout.tiers[index]
    detail_step = layout.steps[max(index, 1) - 1]
    if q.agent_id is None:
        txn.execute("SELECT id, agent_id, hostname FROM agents")
    else:
        txn.execute("SELECT id, agent_id, hostname FROM agents WHERE agent_id = ?",
                    (q.agent_id,))
    agents = {agent_id: (ident, hostname) for ident, agent_id, hostname in txn.fetchall()}
    txn.execute("SELECT DISTINCT agent_id FROM alerts WHERE ts >= ? AND ts < ?", (since, until))
    for (agent_id,) in txn.fetchall():
        if q.agent_id in (None, agent_id):
            agents.setdefault(agent_id, (None, agent_id))
    share = min(q.max_points, max(1, MAX_ANSWER_POINTS // max(1, len(agents))))
    width = tier.step * math.ceil(_buckets(tier.step, since, until) / share)
    answers, fleet = [], {}
    for agent_id, (ident, hostname) in agents.items():
        records = [] if ident is None else _records(txn, layout, index, ident, since, until)
        alerts = _alerts(txn, agent_id, since, until)
        if not records and not alerts:
            continue
        if q.agent_id is None:
            _add_fleet(fleet, records, tier.step * math.ceil(
                _buckets(tier.step, since, until) / q.max_points))
        merged = width > tier.step or index > 0
        points = tuple(_point(key, width, group)
                       for key, group, _first in _groups(records, width if merged else None))
        answers.append(AgentHistory(
            agent_id=agent_id, hostname=hostname, tier=tier.name, step=width,
            points=points, totals=_sum_counts(records), alerts=alerts,
            **({} if ident is None else _detail(
                txn, layout, detail_step, ident, since, until, q.top))))
    answers.sort(key=lambda a: (a.hostname, a.agent_id))
    fleet_points = tuple(
        SeriesPoint(ts=float(key), step=step, reports=reports, interval=interval,
                    counts=IntervalCounts(*counts), peaks=Peaks(*_peak_types(peaks)))
        for key, (step, reports, interval, counts, peaks) in sorted(fleet.items()))
    return History(hub=hub, now=now, since=since, until=until, agents=tuple(answers),
                   fleet=fleet_points)


def _records(txn: Any, layout: Layout, index: int, agent: int, since: float,
             until: float) -> list[tuple]:
    """
    An agent's rows of tier C{index} in range, oldest first, as
    C{(ts, epoch, seq, reports, interval, *counts, *peaks)}.
    """
    columns = f"epoch, seq, {{}}, interval, {', '.join(COUNT_FIELDS)}, {', '.join(PEAK_FIELDS)}"
    if index == 0:
        txn.execute(f"SELECT ts, {columns.format(1)} FROM reports WHERE agent = ?"
                    f" AND ts >= ? AND ts < ? ORDER BY ts", (agent, since, until))
    else:
        step = layout.steps[index - 1]
        txn.execute(f"SELECT bucket, {columns.format('reports')} FROM series_{step}"
                    f" WHERE agent = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
                    (agent, math.floor(since / step) * step, until))
    return txn.fetchall()


def _groups(records: list[tuple], width: Optional[float]):
    """
    C{(bucket start, records, first record)} per bucket of C{width}
    seconds, or per record when C{width} is None.
    """
    if width is None:
        for record in records:
            yield record[0], [record], record
        return
    group: list = []
    key = None
    for record in records:
        start = math.floor(record[0] / width) * width
        if group and start != key:
            yield key, group, group[0]
            group = []
        key = start
        group.append(record)
    if group:
        yield key, group, group[0]


def _point(ts: float, width: float, group: list[tuple]) -> SeriesPoint:
    counts = [sum(r[5 + i] for r in group) for i in range(_N)]
    peaks = [max(r[5 + _N + i] for r in group) for i in range(_P)]
    epoch, seq = max((r[1], r[2]) for r in group)
    return SeriesPoint(
        ts=float(ts), step=width, epoch=epoch, seq=seq, reports=sum(r[3] for r in group),
        interval=sum(r[4] for r in group), counts=IntervalCounts(*counts),
        peaks=Peaks(*_peak_types(peaks)))


_PEAK_TYPES = [type(getattr(Peaks(), name)) for name in PEAK_FIELDS]


def _peak_types(peaks: Sequence) -> list:
    return [kind(value) for kind, value in zip(_PEAK_TYPES, peaks)]


def _sum_counts(records: list[tuple]) -> IntervalCounts:
    return IntervalCounts(*[sum(r[5 + i] for r in records) for i in range(_N)])


def _add_fleet(fleet: dict, records: list[tuple], width: float) -> None:
    """
    Add one agent's records into the fleet's buckets: counts summed, and
    the agent's highest peaks in the bucket added to the others'.
    """
    for key, group, _first in _groups(records, width):
        held = fleet.setdefault(key, [width, 0, 0.0, [0] * _N, [0] * _P])
        held[1] += sum(r[3] for r in group)
        held[2] += sum(r[4] for r in group)
        for i in range(_N):
            held[3][i] += sum(r[5 + i] for r in group)
        for i in range(_P):
            held[4][i] += max(r[5 + _N + i] for r in group)


def _detail(txn: Any, layout: Layout, step: int, agent: int, since: float, until: float,
            top: int) -> dict[str, tuple]:
    """
    An agent's top lists over the range from tier C{step}'s detail tables,
    and its connections first seen in the range.
    """
    start = math.floor(since / step) * step
    where = "WHERE agent = ? AND bucket >= ? AND bucket < ?"
    span = (agent, start, until)
    txn.execute(f"SELECT addr, sum(packets_sent), sum(bytes_sent), sum(packets_received),"
                f" sum(bytes_received) FROM talkers_{step} {where} GROUP BY addr"
                f" ORDER BY sum(bytes_sent) + sum(bytes_received) DESC, addr LIMIT ?",
                (*span, top))
    talkers = tuple(HostTraffic(*r) for r in txn.fetchall())
    txn.execute(f"SELECT a, b, sum(packets_ab), sum(bytes_ab), sum(packets_ba), sum(bytes_ba)"
                f" FROM conversations_{step} {where} GROUP BY a, b"
                f" ORDER BY sum(bytes_ab) + sum(bytes_ba) DESC, a, b LIMIT ?", (*span, top))
    conversations = tuple(Conversation(*r) for r in txn.fetchall())
    txn.execute(f"SELECT qname, qtype, rcode, client, sum(count) FROM dns_{step} {where}"
                f" GROUP BY qname, qtype, rcode, client"
                f" ORDER BY sum(count) DESC, qname, qtype, rcode, client LIMIT ?", (*span, top))
    dns_names = tuple(DnsName(*r) for r in txn.fetchall())
    first = layout.steps[0]
    txn.execute(f"SELECT {_CONNECTION_COLUMNS} FROM connections {where} AND first_seen >= ?"
                f" AND first_seen < ? ORDER BY first_seen DESC, src, sport, dst, dport LIMIT ?",
                (agent, math.floor(since / first) * first, until, since, until,
                 top * CONNECTIONS_PER_TOP))
    connections = tuple(TcpConnection(*r) for r in txn.fetchall())
    return dict(talkers=talkers, conversations=conversations, dns_names=dns_names,
                connections=connections)


def _alerts(txn: Any, agent_id: str, since: float, until: float) -> tuple[Alert, ...]:
    txn.execute("SELECT value FROM alerts WHERE agent_id = ? AND ts >= ? AND ts < ?"
                " ORDER BY ts DESC, epoch DESC, seq DESC LIMIT ?",
                (agent_id, since, until, MAX_ANSWER_ALERTS))
    return tuple(converter.structure(json.loads(value), Alert) for (value,) in txn.fetchall())


# -- catch-up between peers -------------------------------------------------


def _runs(txn: Any, since: float) -> list[tuple]:
    """
    Maximal runs of consecutive seqs held with C{ts >= since}, as
    C{(agent_id, epoch, first, last, oldest ts, agent row id)}, by agent,
    epoch and first seq (gaps and islands with C{row_number()}).
    """
    txn.execute(
        "SELECT a.agent_id, r.epoch, min(r.seq), max(r.seq), min(r.ts), r.agent FROM"
        " (SELECT agent, epoch, seq, ts, seq - row_number() OVER (PARTITION BY agent, epoch"
        " ORDER BY seq) AS run FROM reports WHERE ts >= ?) r JOIN agents a ON a.id = r.agent"
        " GROUP BY r.agent, r.epoch, r.run ORDER BY a.agent_id, r.epoch, min(r.seq)", (since,))
    return txn.fetchall()


def read_ranges(txn: Any, since: float, max_ranges: int) -> tuple[SyncRanges, int]:
    """
    What the first tier holds since C{since}: seq runs (at most
    C{max_ranges}; those past it are left out, so a peer may send rows
    again, which are then counted as duplicates) and alert revisions with
    C{ts >= since}.

    :returns: the ranges and the number of runs left out.
    """
    runs = _runs(txn, since)
    txn.execute("SELECT agent_id, epoch, seq, revision FROM alerts WHERE ts >= ?"
                " ORDER BY agent_id, epoch, seq", (since,))
    alerts = tuple(AlertRevision(*r) for r in txn.fetchall())
    reports = tuple(SeqRange(r[0], r[1], r[2], r[3]) for r in runs[:max_ranges])
    return SyncRanges(reports=reports, alerts=alerts), max(0, len(runs) - max_ranges)


def _lacking(first: int, last: int, held: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """
    The parts of C{[first, last]} outside the sorted, disjoint ranges
    C{held}.
    """
    out = []
    index = max(0, bisect.bisect_right(held, (first, math.inf)) - 1)
    at = first
    for lo, hi in held[index:]:
        if lo > last:
            break
        if hi < at:
            continue
        if lo > at:
            out.append((at, lo - 1))
        at = max(at, hi + 1)
        if at > last:
            return out
    if at <= last:
        out.append((at, last))
    return out


def read_missing(txn: Any, have: SyncRanges, since: float, budget: int
                 ) -> tuple[SyncRows, bool]:
    """
    Alert revisions (first) and report rows (oldest run first, in seq
    order) with C{ts >= since} that C{have} lacks, until their JSON passes
    C{budget} octets (at least one item goes).

    :returns: the rows and alerts, and whether others remain.
    """
    held: dict[tuple[str, int], list] = {}
    for r in have.reports:
        held.setdefault((r.agent_id, r.epoch), []).append((r.first, r.last))
    for ranges in held.values():
        ranges.sort()
    revisions = {(a.agent_id, a.epoch, a.seq): a.revision for a in have.alerts}
    used = 0
    alerts: list[Alert] = []
    rows: list = []
    txn.execute("SELECT agent_id, epoch, seq, revision, value FROM alerts WHERE ts >= ?"
                " ORDER BY ts, agent_id, epoch, seq", (since,))
    for agent_id, epoch, seq, revision, value in txn.fetchall():
        if revisions.get((agent_id, epoch, seq), -1) >= revision:
            continue
        if used >= budget:
            return SyncRows(alerts=tuple(alerts)), True
        used += len(value)
        alerts.append(converter.structure(json.loads(value), Alert))
    lacking = []
    for agent_id, epoch, first, last, oldest, agent in _runs(txn, since):
        for lo, hi in _lacking(first, last, held.get((agent_id, epoch), [])):
            lacking.append((oldest, agent_id, epoch, lo, hi, agent))
    lacking.sort()
    hostnames = dict(txn.execute("SELECT agent_id, hostname FROM agents").fetchall())
    for _oldest, agent_id, epoch, lo, hi, agent in lacking:
        txn.execute(f"SELECT {ROW_COLUMNS} FROM reports WHERE agent = ? AND epoch = ?"
                    f" AND seq BETWEEN ? AND ? AND ts >= ? ORDER BY seq",
                    (agent, epoch, lo, hi, since))
        for record in txn.fetchall():
            if used >= budget:
                return SyncRows(rows=tuple(rows), alerts=tuple(alerts)), True
            row = row_from_db(agent_id, hostnames[agent_id], record)
            used += len(json.dumps(to_json_value(row), separators=(",", ":")))
            rows.append(row)
    return SyncRows(rows=tuple(rows), alerts=tuple(alerts)), False
