# -*- test-case-name: tests.test_ui_views -*-
"""
The alert screen and an alert's details, as pure functions: alert entries in,
text rows out.  What other screens show of alerts (the fleet's C{alerts}
column, the link line's marker, the agent screen's alert line) is in
L{loopy.ui.views}.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from loopy.model import ACTIVE, AlertEntry
from loopy.ui.formats import age, clock_time, full_time
from loopy.ui.tables import Column, Table, render, with_text
from loopy.ui.views import severity_rank

#: The alert screen's severity floors, in the order C{f} cycles them:
#: every alert, warning and critical, critical only.
SEVERITY_FLOORS = ("", "warning", "critical")


#: The alert screen's table, newest first.  The C{time} column's text depends
#: on the time of rendering (see L{render_alerts}).
ALERTS = Table(
    columns=(
        Column("time", 10, lambda e: e.alert.ts, lambda e: str(e.alert.ts), right=False),
        Column("severity", 9, lambda e: severity_rank(e.alert.severity),
               lambda e: e.alert.severity, right=False),
        Column("state", 12, lambda e: e.state, lambda e: e.state, right=False),
        Column("agent", 12, lambda e: e.alert.agent_id, lambda e: e.alert.agent_id,
               right=False),
        Column("kind", 12, lambda e: e.alert.kind, lambda e: e.alert.kind, right=False),
        Column("src", 15, lambda e: e.alert.src, lambda e: e.alert.src or "-", right=False),
        Column("dst", 15, lambda e: e.alert.dst, lambda e: e.alert.dst or "-", right=False),
        Column("summary", 40, lambda e: e.alert.summary, lambda e: e.alert.summary,
               right=False),
    ),
    sort=0,
)


def alert_search_text(entry: AlertEntry) -> str:
    """
    What the alert screen's C{/} filter matches: agent, kind, severity,
    state, addresses and summary.
    """
    a = entry.alert
    return f"{a.agent_id} {a.kind} {a.severity} {entry.state} {a.src} {a.dst} {a.summary}"


def next_floor(floor: str) -> str:
    """
    The severity floor after C{floor} (key C{f}): all → warning → critical
    → all.
    """
    return SEVERITY_FLOORS[(SEVERITY_FLOORS.index(floor) + 1) % len(SEVERITY_FLOORS)]


def filter_alerts(entries: Iterable[AlertEntry], floor: str = "",
                  active_only: bool = False) -> list[AlertEntry]:
    """
    The alerts at or above severity C{floor} (``""`` for all) and, with
    C{active_only}, only those active and not acknowledged.
    """
    rank = severity_rank(floor)
    return [e for e in entries
            if severity_rank(e.alert.severity) >= rank
            and (not active_only or e.state == ACTIVE)]


def render_alerts(table: Table, entries: Iterable[AlertEntry], now: float,
                  filter_text: str = "", floor: str = "", active_only: bool = False,
                  localtime: Callable[[float], time.struct_time] = time.localtime,
                  ) -> tuple[str, list[str], list[AlertEntry]]:
    """
    Render alerts as L{render} does, after the quick filters of
    L{filter_alerts}, with times as L{clock_time} writes them at C{now}.

    :param table: L{ALERTS}, sorted as the user chose.
    """
    timed = with_text(table, "time", lambda e: clock_time(e.alert.ts, now, localtime))
    return render(timed, filter_alerts(entries, floor, active_only), filter_text,
                  alert_search_text)


def alerts_title(shown: int, total: int, floor: str = "", active_only: bool = False,
                 filter_text: str = "") -> str:
    """
    The alert screen's title line: ``"2/5 alerts · severity warning+ ·
    active only · filter: scan"``.
    """
    level = {"": "all", "critical": "critical"}.get(floor, f"{floor}+")
    return (f"{shown}/{total} alerts · severity {level} · "
            + ("active only" if active_only else "any state")
            + (f" · filter: {filter_text}" if filter_text else ""))


def find_alert(alerts: Iterable[AlertEntry], key: tuple) -> Optional[AlertEntry]:
    """
    The alert with identity C{key} (``(agent_id, epoch, seq)``), or None.
    """
    for entry in alerts:
        if entry.alert.key == key:
            return entry
    return None


def alert_detail(entry: AlertEntry, now: float,
                 localtime: Callable[[float], time.struct_time] = time.localtime,
                 ) -> list[str]:
    """
    Every field of an alert, one per line, then its evidence (see
    L{evidence_lines}).
    """
    a = entry.alert
    if entry.acknowledged_by is None:
        acknowledged = "no (k to acknowledge)"
    else:
        acknowledged = (f"by {entry.acknowledged_by} at "
                        f"{full_time(entry.acknowledged_at, localtime)}")
    return [
        f"{a.severity} {a.kind} · {entry.state}",
        a.summary,
        "",
        f"agent         {a.agent_id} (epoch {a.epoch}, alert {a.seq}, revision {a.revision})",
        f"src           {a.src or '-'}",
        f"dst           {a.dst or '-'}",
        f"raised        {full_time(a.ts, localtime)} ({age(now - a.ts)} ago)",
        f"updated       {full_time(a.updated, localtime)} ({age(now - a.updated)} ago)",
        f"received      {full_time(entry.received, localtime)} (hub clock)",
        f"condition     {a.state}",
        f"acknowledged  {acknowledged}",
        "",
        "evidence",
    ] + (evidence_lines(a.evidence) or ["  (none)"])


#: Inline lists up to this many characters; longer ones get a line per item.
_INLINE_WIDTH = 72


def evidence_lines(value: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """
    JSON-shaped evidence as indented ``key: value`` lines, keys sorted:
    short lists of numbers or words inline (``ports: [22, 80]``), longer
    ones and C{samples} (packets' one-line summaries) one item a line.
    """
    lines = []
    for key in sorted(value):
        item = value[key]
        if isinstance(item, Mapping) and item:
            lines.append(f"{indent}{key}:")
            lines.extend(evidence_lines(item, indent + "  "))
        elif isinstance(item, (list, tuple)) and item:
            inline = "[" + ", ".join(_scalar(v) for v in item) + "]"
            scalars = not any(isinstance(v, (Mapping, list, tuple)) for v in item)
            if scalars and key != "samples" and len(indent + key + inline) <= _INLINE_WIDTH:
                lines.append(f"{indent}{key}: {inline}")
                continue
            lines.append(f"{indent}{key}:")
            for v in item:
                if isinstance(v, Mapping):
                    lines.append(f"{indent}  -")
                    lines.extend(evidence_lines(v, indent + "    "))
                else:
                    lines.append(f"{indent}  - {_scalar(v)}")
        else:
            lines.append(f"{indent}{key}: {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    # Words as they are; numbers, booleans, null and empty containers as JSON.
    return value if isinstance(value, str) else json.dumps(value)
