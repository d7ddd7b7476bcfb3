# -*- test-case-name: tests.test_history_store -*-
"""
The hub's history: what it keeps of every report and alert, and the narrow
interface a storage engine implements (L{IHistoryStore}; the embedded one
is SQLite, L{loopy.hub.sqlhistory}).

Reports are kept in downsampling I{tiers} (L{Tier}, L{parse_tiers}): the
first keeps one row per report (its C{step} is nominal, the agents' report
interval), each coarser one keeps, per agent, one bucket of C{step}
seconds (``[bucket, bucket + step)`` by the report's C{ts}) with the
reports' L{IntervalCounts} summed and their L{Peaks} maxed.  Each tier
keeps its rows for its C{retention} (seconds, by C{ts}).

What is kept of a report is a L{ReportRow}, made by L{extract} from the
report's JSON value (L{loopy.wire.to_json_value}, what the mesh's entries
hold), without structuring the whole report.  Every list in a row is
bounded (L{TOP_TALKERS}, L{TOP_CONVERSATIONS}, L{TOP_DNS_NAMES},
L{TOP_CONNECTIONS}).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Mapping

import attrs
from attrs import frozen
from zope.interface import Attribute, Interface

from loopy.errors import ConfigError, WireError
from loopy.history import DnsName, Peaks, ReportRow
from loopy.model import Conversation, HostTraffic, IntervalCounts, TcpConnection

#: Most rows of each list a L{ReportRow} keeps.
TOP_TALKERS = 20
TOP_CONVERSATIONS = 20
TOP_DNS_NAMES = 50
TOP_CONNECTIONS = 50
#: Most tiers a history may have.
MAX_TIERS = 6

#: The TCP analyser's words for an ended connection (L{loopy.analysis.tcp}
#: C{CLOSED} and C{RESET}; the hub does not import the analysers).
ENDED_STATES = ("closed", "reset")

#: The names of L{IntervalCounts}' fields, in order (one column each).
COUNT_FIELDS = tuple(f.name for f in attrs.fields(IntervalCounts))
#: The names of L{Peaks}' fields, in order.
PEAK_FIELDS = tuple(f.name for f in attrs.fields(Peaks))

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+)([smhdw])")


@frozen
class Tier:
    """
    One downsampling tier.

    :ivar name: its step as written (``1s``, ``1m``, ``1h``).
    :ivar step: bucket width, seconds (a whole number).
    :ivar retention: how long its rows are kept, seconds.
    """

    name: str
    step: float
    retention: float


def parse_duration(text: str) -> int:
    """
    A duration such as ``90s``, ``30d``, ``2w``: a whole number and a unit
    (s, m, h, d, w).

    :returns: seconds, at least 1.
    :raises ConfigError: for anything else.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigError(
            f"{text!r} is not a duration: give a whole number and a unit,"
            " s, m, h, d or w (such as 30d)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be longer than zero")
    return seconds


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """
    Parse downsampling tiers, ``STEP:RETENTION`` separated by commas, finest
    first: ``"1s:6h,1m:30d,1h:365d"`` (L{DEFAULT_TIERS}).

    Steps must be strictly increasing, each a whole multiple of the one
    before; each retention at least its step and at least the retention of
    the tier before.  Two to L{MAX_TIERS} tiers: the first keeps every
    report, the second and coarser keep the top talkers, conversations, DNS
    names and connections per bucket.

    :raises ConfigError: naming the tier at fault and what to change.
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) < 2:
        raise ConfigError(
            f"history tiers {text!r}: give at least two, STEP:RETENTION separated"
            " by commas (such as 1s:6h,1m:30d,1h:365d)")
    if len(items) > MAX_TIERS:
        raise ConfigError(f"history tiers {text!r}: at most {MAX_TIERS} tiers")
    tiers: list[Tier] = []
    for item in items:
        step_text, colon, retention_text = item.partition(":")
        if not colon:
            raise ConfigError(
                f"history tier {item!r}: expected STEP:RETENTION (such as 1m:30d)")
        step = parse_duration(step_text)
        retention = parse_duration(retention_text)
        name = step_text.strip()
        if retention < step:
            raise ConfigError(
                f"history tier {item!r}: retention {retention_text.strip()} is shorter"
                f" than its step {name}")
        if tiers:
            before = tiers[-1]
            if step <= before.step:
                raise ConfigError(
                    f"history tier {item!r}: step {name} must be longer than the step"
                    f" of the tier before it ({before.name})")
            if step % before.step:
                raise ConfigError(
                    f"history tier {item!r}: step {name} is not a whole multiple of"
                    f" the step before it ({before.name})")
            if retention < before.retention:
                raise ConfigError(
                    f"history tier {item!r}: retention {retention_text.strip()} is"
                    f" shorter than the retention of the tier before it")
        tiers.append(Tier(name, float(step), float(retention)))
    return tuple(tiers)


#: The tiers a hub keeps unless told otherwise (``--history-tiers``).
DEFAULT_TIERS_TEXT = "1s:6h,1m:30d,1h:365d"
DEFAULT_TIERS = parse_tiers(DEFAULT_TIERS_TEXT)


class IHistoryStore(Interface):
    """
    A hub's history (ARCHITECTURE.md decision 8): written at ingest, read by
    UIs (L{loopy.wire.GetHistory}) and by peer hubs catching up
    (L{loopy.wire.HistorySync}).  Writes are durable when their Deferred
    fires; duplicates, by C{(agent_id, epoch, seq)}, are stored once, and
    the result does not depend on the order of writes.
    """

    tiers = Attribute("The store's L{Tier}s, finest first (a tuple).")

    def add_report(value):
        """
        Write one report, given as its JSON value.

        :returns: Deferred firing after the commit that holds it, with True
            (new) or False (already held).  Fails with L{WireError} if the
            value has no identity (L{extract}), with L{HistoryError} if the
            write queue is full or the commit failed.
        """

    def add_rows(rows):
        """
        Write report rows a peer sent (catch-up).

        :returns: Deferred firing with the number of rows that were new.
        """

    def add_alert(alert):
        """
        Write one alert revision; the newest revision per
        C{(agent_id, epoch, seq)} wins.

        :returns: Deferred firing with True if it was newer than the one held.
        """

    def query(q, now):
        """
        Answer a L{loopy.history.HistoryQuery} at hub clock C{now}.

        :returns: Deferred firing with a L{loopy.history.History} (its C{hub}
            is the store's name); fails with L{HistoryError} for a bad range.
        """

    def ranges(since):
        """
        What the finest tier holds with C{ts >= since}.

        :returns: Deferred firing with a L{loopy.history.SyncRanges}.
        """

    def missing(have, since, budget):
        """
        Rows and alert revisions since C{since} that C{have} lacks, oldest
        first, about C{budget} octets of JSON at most (at least one).

        :returns: Deferred firing with C{(SyncRows, more)}.
        """

    def expire(now):
        """
        Delete what is older than each tier's retention (bounded work).

        :returns: Deferred firing with the number of rows deleted.
        """

    def stats():
        """
        Counters: a dict of C{reports}, C{duplicates}, C{alerts},
        C{pending}, C{refused}, C{errors}, C{commits}, C{commit_p99}
        (seconds), C{bytes} (on disk) and engine-specific others.
        """

    def close():
        """
        Write what is queued, then close.

        :returns: Deferred firing when closed.
        """


def extract(value: Mapping[str, Any]) -> ReportRow:
    """
    What the history keeps of one report.

    :param value: the report's JSON value (L{loopy.wire.to_json_value} of an
        L{loopy.model.AgentReport}; analysers are JSON objects there).
    :returns: the row.  Counts come from C{value["counts"]} (a missing or
        non-numeric count is 0, a negative one 0); peaks from the capture,
        C{ip}, C{tcp} and C{dns} snapshots; talkers and conversations from
        C{ip.interval_talkers}/C{interval_conversations}; DNS names from
        C{dns.queries} whose C{ts} is in ``(ts - interval, ts]``, counted by
        (qname, qtype, rcode or ``""``, client); connections from
        C{tcp.connections} first seen in that interval or ended in it
        (state ``closed``/``reset``, by C{last_seen}).  Malformed list
        entries are skipped.
    :raises WireError: if C{agent_id}, C{hostname} (strings), C{epoch},
        C{seq} (non-negative integers), C{ts} or C{interval} (finite
        numbers) is missing or of the wrong type.
    """
    if not isinstance(value, Mapping):
        raise WireError("a report value must be a JSON object")
    value = value if type(value) is dict else dict(value)
    agent_id = _identity(value, "agent_id", str)
    hostname = _identity(value, "hostname", str)
    epoch = _identity(value, "epoch", int)
    seq = _identity(value, "seq", int)
    ts = _identity(value, "ts", float)
    interval = _identity(value, "interval", float)
    analysers = _mapping(value.get("analysers"))
    ip = _mapping(analysers.get("ip"))
    tcp = _mapping(analysers.get("tcp"))
    dns = _mapping(analysers.get("dns"))
    capture = _mapping(value.get("capture"))
    counts = _mapping(value.get("counts"))
    lo, hi = ts - interval, ts
    return ReportRow(
        agent_id=agent_id, hostname=hostname, epoch=epoch, seq=seq, ts=ts,
        interval=interval,
        counts=IntervalCounts(*[_count(counts.get(name)) for name in COUNT_FIELDS]),
        peaks=Peaks(
            tcp_active=_count(tcp.get("active")),
            tcp_half_open=_count(tcp.get("half_open")),
            dns_pending=_count(dns.get("pending")),
            hosts_tracked=_count(ip.get("hosts_tracked")),
            cpu_percent=_real(capture.get("cpu_percent")),
            rss_bytes=_count(capture.get("rss_bytes")),
            drops_per_second=_real(capture.get("drops_per_second")),
        ),
        talkers=_top(_talkers(ip.get("interval_talkers")), TOP_TALKERS,
                     lambda t: t.bytes_sent + t.bytes_received),
        conversations=_top(_conversations(ip.get("interval_conversations")),
                           TOP_CONVERSATIONS, lambda c: c.bytes_ab + c.bytes_ba),
        dns_names=_dns_names(dns.get("queries"), lo, hi),
        connections=_top(_connections(tcp.get("connections"), lo, hi),
                         TOP_CONNECTIONS, lambda c: c.last_seen),
    )


def _identity(value: Mapping[str, Any], name: str, kind: type) -> Any:
    item = value.get(name)
    if kind is str:
        good = isinstance(item, str)
    elif kind is int:
        good = isinstance(item, int) and not isinstance(item, bool) and item >= 0
    else:
        good = (isinstance(item, (int, float)) and not isinstance(item, bool)
                and math.isfinite(item))
    if not good:
        raise WireError(f"report value has no valid {name} (got {item!r:.40})")
    return float(item) if kind is float else item


# JSON objects are dicts: checking for dict (not typing.Mapping) keeps
# extract at ~100 µs for a busy report.
def _mapping(item: Any) -> dict[str, Any]:
    return item if type(item) is dict else {}


def _list(item: Any) -> list:
    return item if type(item) is list else []


def _count(item: Any) -> int:
    """
    A non-negative integer from a JSON number; anything else is 0.
    """
    kind = type(item)
    if kind is int:
        return item if item > 0 else 0
    if kind is float and math.isfinite(item) and item > 0:
        return int(item)
    return 0


def _real(item: Any) -> float:
    """
    A non-negative finite float from a JSON number; anything else is 0.0.
    """
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        item = float(item)
        if math.isfinite(item) and item > 0:
            return item
    return 0.0


def _time(item: Any) -> float:
    """
    A finite time from a JSON number, or NaN (outside every interval).
    """
    kind = type(item)
    if kind is float:
        return item if math.isfinite(item) else math.nan
    return float(item) if kind is int else math.nan


def _top(items: list, limit: int, key) -> tuple:
    items.sort(key=key, reverse=True)
    return tuple(items[:limit])


def _talkers(item: Any) -> list[HostTraffic]:
    out = []
    for t in _list(item):
        if type(t) is dict and type(t.get("addr")) is str:
            out.append(HostTraffic(
                t["addr"], _count(t.get("packets_sent")), _count(t.get("bytes_sent")),
                _count(t.get("packets_received")), _count(t.get("bytes_received"))))
    return out


def _conversations(item: Any) -> list[Conversation]:
    out = []
    for c in _list(item):
        if type(c) is dict and type(c.get("a")) is str and type(c.get("b")) is str:
            out.append(Conversation(
                c["a"], c["b"], _count(c.get("packets_ab")), _count(c.get("bytes_ab")),
                _count(c.get("packets_ba")), _count(c.get("bytes_ba"))))
    return out


def _dns_names(item: Any, lo: float, hi: float) -> tuple[DnsName, ...]:
    counts: Counter = Counter()
    for q in _list(item):
        if type(q) is not dict or not lo < _time(q.get("ts")) <= hi:
            continue
        qname, qtype, client = q.get("qname"), q.get("qtype"), q.get("client")
        rcode = q.get("rcode") or ""
        if all(isinstance(v, str) for v in (qname, qtype, client, rcode)):
            counts[qname, qtype, rcode, client] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DNS_NAMES]
    return tuple(DnsName(*key, count) for key, count in ranked)


def _connections(item: Any, lo: float, hi: float) -> list[TcpConnection]:
    out = []
    for c in _list(item):
        if type(c) is not dict:
            continue
        first, last, state = _time(c.get("first_seen")), _time(c.get("last_seen")), c.get("state")
        if not (lo < first <= hi or (state in ENDED_STATES and lo < last <= hi)):
            continue
        src, dst = c.get("src"), c.get("dst")
        if not (isinstance(src, str) and isinstance(dst, str) and isinstance(state, str)):
            continue
        rtt = c.get("rtt_ms")
        out.append(TcpConnection(
            src=src, sport=_count(c.get("sport")), dst=dst, dport=_count(c.get("dport")),
            state=state, packets_out=_count(c.get("packets_out")),
            bytes_out=_count(c.get("bytes_out")), packets_in=_count(c.get("packets_in")),
            bytes_in=_count(c.get("bytes_in")), ip_bytes_out=_count(c.get("ip_bytes_out")),
            ip_bytes_in=_count(c.get("ip_bytes_in")),
            rtt_ms=None if rtt is None else _real(rtt),
            retransmissions=_count(c.get("retransmissions")),
            first_seen=first, last_seen=last))
    return out


def check_row(row: Any) -> ReportRow:
    """
    Check a row a peer sent has a usable identity (as L{extract} checks a
    report's).

    :returns: the row.
    :raises WireError: if it is not a L{ReportRow} or its identity is bad.
    """
    if not isinstance(row, ReportRow):
        raise WireError(f"not a report row: {type(row).__name__}")
    for name, kind in (("agent_id", str), ("hostname", str), ("epoch", int), ("seq", int),
                       ("ts", float), ("interval", float)):
        _identity({name: getattr(row, name)}, name, kind)
    return row

