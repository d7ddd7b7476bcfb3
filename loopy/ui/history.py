# -*- test-case-name: tests.test_ui_history -*-
"""
The history screen and ``loopy-ui --json --history``, as pure functions: a
L{loopy.history.History} in, text lines or a JSON document out.  The range
the user picks is L{loopy.ui.timerange}; the npyscreen form that places
these lines is L{loopy.ui.historyform}.

Charts are sparklines (one block character per column, ``▁`` to ``█``)
over time: each column covers an equal slice of the range and shows the
highest per-second rate of the points in it; a column with no point is a
space, so gaps in an agent's history show.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any, Callable, Iterable, Optional, Sequence

from loopy.history import AgentHistory, DnsName, History, SeriesPoint
from loopy.model import Alert, Conversation, HostTraffic, IntervalCounts
from loopy.ui import views
from loopy.ui.formats import clock_time, human, octets
from loopy.ui.tables import Column, Table, render, with_text
from loopy.wire import to_json_value

#: Sparkline levels, lowest first: ``▁`` is zero, a value above zero is at
#: least ``▂``.
BLOCKS = "▁▂▃▄▅▆▇█"

#: Width of a chart line's label and of its peak value.
LABEL_WIDTH = 12
PEAK_WIDTH = 8
#: The terminal width the lines are laid out for unless told otherwise.
WIDTH = 80


def sparkline(values: Sequence[Optional[float]], width: int) -> str:
    """
    Values as C{width} block characters, scaled to their highest.

    More values than columns: each column shows the highest of its share
    (so a one-second spike is never averaged away).  Fewer: each value
    spans several columns.  A value of zero (or below) is ``▁``; above zero
    at least ``▂``, the highest ``█``; None (no data) and non-finite values
    are a space.  All zeros are all ``▁``: a quiet series, not a missing
    one.

    :returns: exactly C{width} characters (empty for C{width} < 1).
    """
    if width < 1:
        return ""
    clean = [v if v is not None and math.isfinite(v) else None for v in values]
    count = len(clean)
    columns: list[Optional[float]] = []
    for i in range(width):
        share = clean[i * count // width: max((i + 1) * count // width, i * count // width + 1)]
        present = [v for v in share if v is not None]
        columns.append(max(present) if present else None)
    top = max((v for v in columns if v is not None), default=0.0)
    return "".join(_block(v, top) for v in columns)


def _block(value: Optional[float], top: float) -> str:
    if value is None:
        return " "
    if value <= 0 or top <= 0:
        return BLOCKS[0]
    return BLOCKS[min(max(round(value / top * (len(BLOCKS) - 1)), 1), len(BLOCKS) - 1)]


def chart_line(label: str, values: Sequence[Optional[float]], unit: str = "",
               width: int = WIDTH) -> str:
    """
    One chart: the label, the highest value with its unit (L{human}; one
    significant digit below 0.05, as ``0.02``),
    then the sparkline filling the rest of C{width}:
    ``bits/s in        2.40Mb ▁▁▂█▃▁``.
    """
    present = [v for v in values if v is not None and math.isfinite(v)]
    top = max(present, default=None)
    if top is None:
        peak = "-"
    elif 0 < top < 0.05:
        peak = f"{top:.1g}{unit}"  # one drop a minute is not 0.0
    else:
        peak = human(top, unit)
    chart = sparkline(values, width - LABEL_WIDTH - PEAK_WIDTH - 1)
    return f"{label[:LABEL_WIDTH]:<{LABEL_WIDTH}}{peak:>{PEAK_WIDTH}} {chart}"


def columns(points: Iterable[SeriesPoint], since: float, until: float, width: int,
            value: Callable[[SeriesPoint], Optional[float]]) -> list[Optional[float]]:
    """
    Points to C{width} time columns over ``[since, until)``: a point covers
    the columns its bucket ``[ts, ts + step)`` overlaps; each column keeps
    the highest C{value} of its points, None where there is none.
    """
    out: list[Optional[float]] = [None] * max(width, 0)
    if width < 1 or until <= since:
        return out
    slot = (until - since) / width
    for point in points:
        v = value(point)
        if v is None or point.ts >= until or point.ts + point.step <= since:
            continue
        first = max(int((point.ts - since) / slot), 0)
        last = min(max(math.ceil((point.ts + point.step - since) / slot) - 1, first), width - 1)
        for i in range(first, last + 1):
            out[i] = v if out[i] is None else max(out[i], v)
    return out


def per_second(count: Callable[[IntervalCounts], float], fleet: bool = False,
               ) -> Callable[[SeriesPoint], Optional[float]]:
    """
    A point's rate of C{count}: over the seconds its reports cover (its
    C{interval}), or over its bucket (C{step}) for a fleet point, whose
    C{interval} sums every agent's.  None for a point covering no time.
    """
    def rate(point: SeriesPoint) -> Optional[float]:
        seconds = point.step if fleet or point.interval <= 0 else point.interval
        return count(point.counts) / seconds if seconds > 0 else None

    return rate


#: The history screen's charts: label, unit of the peak, and the count per
#: point (made a rate per second).
CHARTS: tuple[tuple[str, str, Callable[[IntervalCounts], float]], ...] = (
    ("bits/s in", "b", lambda c: c.bytes_in * 8),
    ("bits/s out", "b", lambda c: c.bytes_out * 8),
    ("packets/s", "", lambda c: c.packets_in + c.packets_out),
    ("tcp syn/s", "", lambda c: c.tcp_syn),
    ("tcp est/s", "", lambda c: c.tcp_established),
    ("tcp rst/s", "", lambda c: c.tcp_reset),
    ("dns q/s", "", lambda c: c.dns_queries),
    ("nxdomain/s", "", lambda c: c.dns_nxdomain),
    ("drops/s", "", lambda c: c.kernel_drops),
)


def chart_lines(points: Sequence[SeriesPoint], since: float, until: float,
                fleet: bool = False, width: int = WIDTH,
                localtime: Callable[[float], time.struct_time] = time.localtime,
                ) -> list[str]:
    """
    The L{CHARTS} of a series over ``[since, until)``, then a time axis.
    """
    chart_width = width - LABEL_WIDTH - PEAK_WIDTH - 1
    lines = [
        chart_line(label, columns(points, since, until, chart_width, per_second(count, fleet)),
                   unit, width)
        for label, unit, count in CHARTS
    ]
    lines.append(" " * (LABEL_WIDTH + PEAK_WIDTH + 1)
                 + axis(since, until, chart_width, localtime))
    return lines


def axis(since: float, until: float, width: int,
         localtime: Callable[[float], time.struct_time] = time.localtime) -> str:
    """
    The time under a chart: the start at the left, the end at the right
    (``HH:MM:SS``, or ``MM-DD HH:MM`` for ranges of a day or more).
    """
    stamp = "%m-%d %H:%M" if until - since >= 86400 else "%H:%M:%S"
    left = time.strftime(stamp, localtime(since))
    right = time.strftime(stamp, localtime(until))
    gap = width - len(left) - len(right)
    if gap < 2:
        return left[:width]
    return left + " " + "─" * (gap - 2) + " " + right


def totals_lines(counts: IntervalCounts) -> list[str]:
    """
    A range's totals in two lines of at most 80 characters.
    """
    return [f"totals  in {octets(counts.bytes_in)} out {octets(counts.bytes_out)}  "
            f"packets {human(counts.packets_in + counts.packets_out)}  "
            f"kernel drops {human(counts.kernel_drops)}",
            f"        tcp syn {human(counts.tcp_syn)} est {human(counts.tcp_established)} "
            f"rst {human(counts.tcp_reset)}  dns {human(counts.dns_queries)} "
            f"nxdomain {human(counts.dns_nxdomain)} servfail {human(counts.dns_servfail)}"]


# -- the tables under the charts ----------------------------------------------

CONVERSATIONS = Table(
    columns=(
        Column("a", 24, lambda c: c.a, lambda c: c.a, right=False),
        Column("b", 24, lambda c: c.b, lambda c: c.b, right=False),
        Column("a→b", 8, lambda c: c.bytes_ab, lambda c: octets(c.bytes_ab)),
        Column("b→a", 8, lambda c: c.bytes_ba, lambda c: octets(c.bytes_ba)),
        Column("pkts", 7, lambda c: c.packets_ab + c.packets_ba,
               lambda c: human(c.packets_ab + c.packets_ba)),
    ),
    sort=2,
)

DNS_NAMES = Table(
    columns=(
        Column("qname", 34, lambda q: q.qname, lambda q: q.qname, right=False),
        Column("qtype", 6, lambda q: q.qtype, lambda q: q.qtype, right=False),
        Column("rcode", 9, lambda q: q.rcode, lambda q: q.rcode or "(none)", right=False),
        Column("client", 16, lambda q: q.client, lambda q: q.client, right=False),
        Column("count", 7, lambda q: q.count, lambda q: human(q.count)),
    ),
    sort=4,
)

#: Alerts in the range, newest first; the C{time} column's text depends on
#: the time of rendering.
ALERTS = Table(
    columns=(
        Column("time", 10, lambda a: a.ts, lambda a: str(a.ts), right=False),
        Column("severity", 8, lambda a: views.severity_rank(a.severity),
               lambda a: a.severity, right=False),
        Column("state", 6, lambda a: a.state, lambda a: a.state, right=False),
        Column("agent", 12, lambda a: a.agent_id, lambda a: a.agent_id, right=False),
        Column("kind", 12, lambda a: a.kind, lambda a: a.kind, right=False),
        Column("summary", 25, lambda a: a.summary, lambda a: a.summary, right=False),
    ),
    sort=0,
)

#: The fleet history's agents.
AGENTS = Table(
    columns=(
        Column("agent", 16, lambda h: h.agent_id, lambda h: h.agent_id, right=False),
        Column("host", 12, lambda h: h.hostname, lambda h: h.hostname, right=False),
        Column("tier", 4, lambda h: h.step, lambda h: h.tier, right=False),
        Column("in", 8, lambda h: h.totals.bytes_in, lambda h: octets(h.totals.bytes_in)),
        Column("out", 8, lambda h: h.totals.bytes_out, lambda h: octets(h.totals.bytes_out)),
        Column("pkts", 7, lambda h: h.totals.packets_in + h.totals.packets_out,
               lambda h: human(h.totals.packets_in + h.totals.packets_out)),
        Column("drops", 7, lambda h: h.totals.kernel_drops,
               lambda h: human(h.totals.kernel_drops)),
        Column("alerts", 6, lambda h: len(h.alerts), lambda h: str(len(h.alerts))),
    ),
    sort=3,
)


def _section(title: str, table: Table, records: Sequence[Any], filter_text: str,
             search: Callable[[Any], str], top: int) -> list[str]:
    header, rows, _kept = render(table, records, filter_text, search)
    return ["", f"{title} ({len(rows)})", header] + (rows[:top] or ["  (none)"])


def detail_lines(talkers: Sequence[HostTraffic], conversations: Sequence[Conversation],
                 dns_names: Sequence[DnsName], alerts: Sequence[Alert], now: float,
                 filter_text: str = "", top: int = 20,
                 localtime: Callable[[float], time.struct_time] = time.localtime,
                 ) -> list[str]:
    """
    The top talkers, conversations and DNS names over the range, then its
    alerts, each a titled table of at most C{top} rows; C{filter_text}
    keeps the rows that contain it (addresses, names, kinds …).
    """
    talker_rows = [to_json_value(h) for h in talkers]
    timed = with_text(ALERTS, "time", lambda a: clock_time(a.ts, now, localtime))
    return (
        _section("top talkers", views.TALKERS, talker_rows, filter_text,
                 lambda h: h["addr"], top)
        + _section("conversations", CONVERSATIONS, conversations, filter_text,
                   lambda c: f"{c.a} {c.b}", top)
        + _section("DNS names", DNS_NAMES, dns_names, filter_text,
                   lambda q: f"{q.qname} {q.qtype} {q.rcode} {q.client}", top)
        + _section("alerts", timed, alerts, filter_text,
                   lambda a: f"{a.agent_id} {a.kind} {a.severity} {a.state} {a.src} "
                             f"{a.dst} {a.summary}", top)
    )


def agent_lines(agent: AgentHistory, since: float, until: float, now: float,
                filter_text: str = "", width: int = WIDTH,
                localtime: Callable[[float], time.struct_time] = time.localtime,
                ) -> list[str]:
    """
    One agent's history screen: who and at which tier, the charts, the
    totals, then the tables of L{detail_lines}.
    """
    head = (f"{agent.agent_id} ({agent.hostname}) · {len(agent.points)} points of "
            f"{human(agent.step)}s (tier {agent.tier})")
    return ([head] + chart_lines(agent.points, since, until, False, width, localtime)
            + totals_lines(agent.totals)
            + detail_lines(agent.talkers, agent.conversations, agent.dns_names, agent.alerts,
                           now, filter_text, localtime=localtime))


def fleet_lines(history: History, filter_text: str = "", width: int = WIDTH,
                localtime: Callable[[float], time.struct_time] = time.localtime,
                ) -> list[str]:
    """
    The fleet's history screen: the charts of C{history.fleet}, the totals,
    the agents, then the talkers, conversations and DNS names of every
    agent merged (summed by host, pair, name) and every alert.
    """
    agents = history.agents
    step = max((a.step for a in agents), default=0.0)
    head = f"fleet · {len(agents)} agents · {len(history.fleet)} points of {human(step)}s"
    totals = sum_counts(a.totals for a in agents)
    header, rows, _kept = render(AGENTS, agents, filter_text,
                                 lambda h: f"{h.agent_id} {h.hostname}")
    alerts = sorted((a for h in agents for a in h.alerts), key=lambda a: -a.ts)
    return ([head] + chart_lines(history.fleet, history.since, history.until, True, width,
                                 localtime)
            + totals_lines(totals) + ["", f"agents ({len(rows)})", header]
            + (rows or ["  (no agent has history in this range)"])
            + detail_lines(merge_talkers(agents), merge_conversations(agents),
                           merge_dns_names(agents), alerts, history.now, filter_text,
                           localtime=localtime))


def history_lines(history: Optional[History], agent_id: Optional[str] = None,
                  filter_text: str = "", width: int = WIDTH,
                  localtime: Callable[[float], time.struct_time] = time.localtime,
                  ) -> list[str]:
    """
    The history screen's lines: the fleet's (C{agent_id} None), or one
    agent's; a line saying so when there is nothing.
    """
    if history is None:
        return ["(asking the hub…)"]
    if agent_id is None:
        return fleet_lines(history, filter_text, width, localtime)
    for agent in history.agents:
        if agent.agent_id == agent_id:
            return agent_lines(agent, history.since, history.until, history.now,
                               filter_text, width, localtime)
    return [f"(no history of {agent_id} in this range)"]


# -- merging the fleet's agents -----------------------------------------------


def sum_counts(counts: Iterable[IntervalCounts]) -> IntervalCounts:
    """
    The field-by-field sum of some L{IntervalCounts}.
    """
    total = defaultdict(int)
    for c in counts:
        for name, value in to_json_value(c).items():
            total[name] += value
    return IntervalCounts(**total)


def merge_talkers(agents: Sequence[AgentHistory]) -> list[HostTraffic]:
    """
    Every agent's top talkers summed by address, most octets first.
    """
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for agent in agents:
        for h in agent.talkers:
            m = merged[h.addr]
            m[0] += h.packets_sent
            m[1] += h.bytes_sent
            m[2] += h.packets_received
            m[3] += h.bytes_received
    hosts = [HostTraffic(addr, *m) for addr, m in merged.items()]
    return sorted(hosts, key=lambda h: (-h.bytes_total, h.addr))


def merge_conversations(agents: Sequence[AgentHistory]) -> list[Conversation]:
    """
    Every agent's top conversations summed by host pair, most octets first.
    """
    merged: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for agent in agents:
        for c in agent.conversations:
            m = merged[(c.a, c.b)]
            m[0] += c.packets_ab
            m[1] += c.bytes_ab
            m[2] += c.packets_ba
            m[3] += c.bytes_ba
    pairs = [Conversation(a, b, *m) for (a, b), m in merged.items()]
    return sorted(pairs, key=lambda c: (-c.bytes_total, c.a, c.b))


def merge_dns_names(agents: Sequence[AgentHistory]) -> list[DnsName]:
    """
    Every agent's DNS names summed by name, type, rcode and client, most
    frequent first.
    """
    merged: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for agent in agents:
        for q in agent.dns_names:
            merged[(q.qname, q.qtype, q.rcode, q.client)] += q.count
    names = [DnsName(*key, count=count) for key, count in merged.items()]
    return sorted(names, key=lambda q: (-q.count, q.qname))


# -- the JSON document ----------------------------------------------------------


def point_json(point: SeriesPoint) -> dict:
    """
    A series point for ``--json --history``: ``ts``, ``step``, ``epoch``,
    ``seq``, ``reports``, ``interval``, every L{IntervalCounts} field at the
    top level, and ``peaks``.
    """
    doc = {"ts": point.ts, "step": point.step, "epoch": point.epoch, "seq": point.seq,
           "reports": point.reports, "interval": point.interval}
    doc.update(to_json_value(point.counts))
    doc["peaks"] = to_json_value(point.peaks)
    return doc


def history_json(history: History) -> dict:
    """
    The ``loopy-ui --json --history`` document: the range (``since``,
    ``until``, the hub's ``now``), per agent its ``series`` (see
    L{point_json}), ``totals``, ``talkers``, ``conversations``,
    ``dns_names``, ``connections`` and ``alerts``, then the ``fleet``
    series.  docs/reference.md describes it.
    """
    agents = []
    for agent in history.agents:
        doc = to_json_value(agent)
        del doc["points"]
        doc["series"] = [point_json(p) for p in agent.points]
        agents.append(doc)
    return {
        "hub": history.hub,
        "now": history.now,
        "since": history.since,
        "until": history.until,
        "agents": agents,
        "fleet": [point_json(p) for p in history.fleet],
    }
