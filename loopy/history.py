# -*- test-case-name: tests.test_history_store -*-
"""
Records of the fleet's history, as a hub's history store answers a
L{loopy.wire.GetHistory} and a UI shows it (``loopy-ui --json --history``
prints them as JSON).

Times are seconds since the Unix epoch (agent clock for ``ts``), octets
are ``bytes_*``.  A series point covers one bucket of a downsampling tier
(L{loopy.hub.history}): one report at the finest tier (1 s by default),
or every report whose ``ts`` falls in ``[ts, ts + step)`` at a coarser one.
"""

from __future__ import annotations

from typing import Optional

from attrs import field, frozen

from loopy.model import Alert, Conversation, HostTraffic, IntervalCounts, TcpConnection


@frozen
class Peaks:
    """
    The highest values of an agent's gauges over a bucket's reports.

    :ivar tcp_active: TCP connections tracked and open (L{TcpSnapshot.active}).
    :ivar tcp_half_open: connections in the handshake.
    :ivar dns_pending: DNS queries waiting for an answer.
    :ivar hosts_tracked: hosts in the IP analyser's table.
    :ivar cpu_percent: the agent's CPU, percent of one core.
    :ivar rss_bytes: the agent's resident set size, octets.
    :ivar drops_per_second: kernel drops per second.
    """

    tcp_active: int = 0
    tcp_half_open: int = 0
    dns_pending: int = 0
    hosts_tracked: int = 0
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    drops_per_second: float = 0.0


@frozen
class SeriesPoint:
    """
    One bucket of an agent's (or, summed, the fleet's) time series.

    :ivar ts: start of the bucket; at the finest tier, the report's own
        ``ts``.
    :ivar step: the tier's bucket width, seconds.
    :ivar epoch: the agent run of the newest report in the bucket (0 for a
        fleet point).
    :ivar seq: that report's ``seq`` (0 for a fleet point).
    :ivar reports: reports counted in the bucket.
    :ivar interval: seconds those reports cover (the sum of their
        intervals).
    :ivar counts: the sum of their L{IntervalCounts}.
    :ivar peaks: the highest of their gauges.
    """

    ts: float
    step: float
    epoch: int = 0
    seq: int = 0
    reports: int = 0
    interval: float = 0.0
    counts: IntervalCounts = field(factory=IntervalCounts)
    peaks: Peaks = field(factory=Peaks)


@frozen
class DnsName:
    """
    DNS transactions over a range, by name, type, response code and client.

    :ivar rcode: the response code mnemonic, or ``""`` for a query that had
        no answer when the agent reported it.
    :ivar count: transactions.
    """

    qname: str
    qtype: str
    rcode: str
    client: str
    count: int


@frozen
class AgentHistory:
    """
    One agent's history over a range.

    :ivar tier: the downsampling tier the points come from (``1s``, ``1m``,
        ``1h`` …).
    :ivar step: that tier's bucket width, seconds (points may be merged
        further to keep at most the query's C{max_points}, then C{step} is
        the merged width).
    :ivar points: the series, oldest first.
    :ivar totals: the sum of the points' counts.
    :ivar talkers: hosts with the most octets over the range (counts over
        the range), most first.
    :ivar conversations: host pairs with the most octets over the range.
    :ivar dns_names: the most frequent DNS transactions over the range.
    :ivar connections: TCP connections first seen in the range, newest
        first.
    :ivar alerts: alerts raised in the range (their newest revision),
        newest first.
    """

    agent_id: str
    hostname: str
    tier: str
    step: float
    points: tuple[SeriesPoint, ...] = ()
    totals: IntervalCounts = field(factory=IntervalCounts)
    talkers: tuple[HostTraffic, ...] = ()
    conversations: tuple[Conversation, ...] = ()
    dns_names: tuple[DnsName, ...] = ()
    connections: tuple[TcpConnection, ...] = ()
    alerts: tuple[Alert, ...] = ()


@frozen
class HistoryQuery:
    """
    What a UI asks a hub's history for.

    :ivar since: start of the range (inclusive), seconds since the epoch.
    :ivar until: end of the range (exclusive), or None for "now".
    :ivar agent_id: one agent, or None for every agent (and the fleet's
        sum).
    :ivar max_points: most points per series; the finest tier that covers
        the range within this many points is used.
    :ivar top: most rows in each top list.
    """

    since: float
    until: Optional[float] = None
    agent_id: Optional[str] = None
    max_points: int = 720
    top: int = 20


@frozen
class History:
    """
    A hub's answer to a L{HistoryQuery}.

    :ivar hub: the hub's name.
    :ivar now: hub clock when the answer was made.
    :ivar since: the range's start.
    :ivar until: the range's end (``now`` if the query gave none).
    :ivar agents: one per agent with history in the range, by hostname.
    :ivar fleet: the points of every agent summed per bucket (empty when
        the query named one agent).
    """

    hub: str
    now: float
    since: float
    until: float
    agents: tuple[AgentHistory, ...] = ()
    fleet: tuple[SeriesPoint, ...] = ()


@frozen
class ReportRow:
    """
    What the history keeps of one report (made from the report by
    L{loopy.hub.history.extract}); the unit of a hub's writes and of the
    catch-up between peer hubs.

    :ivar counts: the report's L{IntervalCounts}.
    :ivar peaks: its gauges.
    :ivar talkers: the report's C{interval_talkers} (counts over its
        interval).
    :ivar conversations: its C{interval_conversations}.
    :ivar dns_names: its DNS transactions whose query fell in its interval,
        counted by name, type, rcode and client.
    :ivar connections: its TCP connections first seen, or ended (closed or
        reset), in its interval.
    """

    agent_id: str
    hostname: str
    epoch: int
    seq: int
    ts: float
    interval: float
    counts: IntervalCounts = field(factory=IntervalCounts)
    peaks: Peaks = field(factory=Peaks)
    talkers: tuple[HostTraffic, ...] = ()
    conversations: tuple[Conversation, ...] = ()
    dns_names: tuple[DnsName, ...] = ()
    connections: tuple[TcpConnection, ...] = ()


@frozen
class SeqRange:
    """
    Reports ``first`` to ``last`` (inclusive) of one agent run, all held.
    """

    agent_id: str
    epoch: int
    first: int
    last: int


@frozen
class AlertRevision:
    """
    The newest revision of alert ``(agent_id, epoch, seq)`` a history holds.
    """

    agent_id: str
    epoch: int
    seq: int
    revision: int


@frozen
class SyncRanges:
    """
    What a hub's history holds at its finest tier since a time: the
    question of a L{loopy.wire.HistorySync}.
    """

    reports: tuple[SeqRange, ...] = ()
    alerts: tuple[AlertRevision, ...] = ()


@frozen
class SyncRows:
    """
    The answer of a L{loopy.wire.HistorySync}: rows and alert revisions the
    asker lacks.
    """

    rows: tuple[ReportRow, ...] = ()
    alerts: tuple[Alert, ...] = ()
