# -*- test-case-name: tests.test_ui_views -*-
"""
The UI's view logic, as pure functions: records in, text rows out.  No
curses, no reactor: the npyscreen forms only place what these return.  This
module has the JSON document, the fleet and agent screens and the link line;
the alert screen is in L{loopy.ui.alertviews}, the hubs screen in
L{loopy.ui.hubs}, the history screen in L{loopy.ui.history}, the help text
in L{loopy.ui.helptext}, and the tables and number formats all of them use
in L{loopy.ui.tables} and L{loopy.ui.formats}.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from loopy.model import (ACTIVE, DOWN, SELF, SEVERITIES, AgentEntry, AlertEntry, FleetView,
                         HubState)
from loopy.ui.formats import age, clock_time, human, ms, octets, percent
from loopy.ui.tables import Column, Table, render, with_text
from loopy.wire import to_json_value

# -- the JSON document ------------------------------------------------------


def agent_document(entry: AgentEntry) -> dict:
    """
    One agent as ``loopy-ui --json`` prints it: identity and status, then
    ``capture`` and one object per analyser (``ip``, ``tcp``, ``dns`` …), all
    counters cumulative since the agent started; ``counts``, what the last
    report's interval alone counted (L{loopy.model.IntervalCounts}); and
    ``delivery``, the agent's spool (L{loopy.model.DeliveryStats}).
    """
    doc: dict[str, Any] = {
        "agent_id": entry.agent_id,
        "hostname": entry.hostname,
        "status": entry.status,
        "hub": entry.hub,
        "epoch": entry.epoch,
        "seq": entry.seq,
        "last_heard": entry.last_heard,
        "summary": to_json_value(entry.summary),
        "alerts_active": entry.alerts_active,
        "alert_severity": entry.alert_severity,
    }
    report = entry.report
    if report is None:
        doc["capture"] = None
        return doc
    doc["ts"] = report.ts
    doc["interval"] = report.interval
    doc["capture"] = to_json_value(report.capture)
    doc["counts"] = to_json_value(report.counts)
    doc["delivery"] = to_json_value(report.delivery)
    for name, snapshot in sorted(report.analysers.items()):
        doc[name] = snapshot if isinstance(snapshot, dict) else to_json_value(snapshot)
    return doc


def alert_document(entry: AlertEntry) -> dict:
    """
    One alert as ``loopy-ui --json`` prints it: the alert's fields, with
    ``state`` the UI's word (``active``, ``over`` or ``acknowledged``),
    ``condition`` the agent's (``active`` or ``over``), and who
    acknowledged it when.
    """
    doc = to_json_value(entry.alert)
    doc["condition"] = entry.alert.state
    doc["state"] = entry.state
    doc["received"] = entry.received
    doc["acknowledged_by"] = entry.acknowledged_by
    doc["acknowledged_at"] = entry.acknowledged_at
    return doc


def fleet_document(view: FleetView) -> dict:
    """
    The whole ``loopy-ui --json`` document: ``{"hub": …, "hubs": […],
    "agents": […], "alerts": […]}``; C{hubs} as L{known_hubs} gives them
    (each a L{HubState}'s fields), alerts newest first.
    """
    return {
        "hub": to_json_value(view.hub),
        "hubs": [to_json_value(h) for h in known_hubs(view)],
        "agents": [agent_document(e) for e in view.agents],
        "alerts": [alert_document(e) for e in view.alerts],
    }


# -- the fleet screen -------------------------------------------------------

#: Percent of packets dropped by the kernel over an agent's last interval at
#: which the UI warns (``loopy-ui --drop-warning``).
DROP_WARNING_PERCENT = 1.0

FLEET = Table(
    columns=(
        Column("agent", 16, lambda e: e.agent_id, lambda e: e.agent_id, right=False),
        Column("host", 12, lambda e: e.hostname, lambda e: e.hostname, right=False),
        Column("status", 7, lambda e: e.status, lambda e: e.status, right=False),
        Column("alerts", 6, lambda e: (severity_rank(e.alert_severity), e.alerts_active),
               lambda e: agent_alert_marker(e), right=False),
        Column("hub", 12, lambda e: e.hub, lambda e: e.hub, right=False),
        Column("pps in", 7, lambda e: e.summary.pps_in, lambda e: human(e.summary.pps_in)),
        Column("pps out", 7, lambda e: e.summary.pps_out, lambda e: human(e.summary.pps_out)),
        Column("bps in", 8, lambda e: e.summary.bps_in, lambda e: human(e.summary.bps_in, "b")),
        Column("bps out", 8, lambda e: e.summary.bps_out, lambda e: human(e.summary.bps_out, "b")),
        Column("tcp", 6, lambda e: e.summary.tcp_active, lambda e: str(e.summary.tcp_active)),
        Column("dns/s", 6, lambda e: e.summary.dns_qps, lambda e: human(e.summary.dns_qps)),
        Column("drops", 7, lambda e: e.summary.kernel_drops, lambda e: human(e.summary.kernel_drops)),
        Column("drop%", 6, lambda e: e.summary.drop_ratio, lambda e: percent(e.summary.drop_ratio)),
        Column("lost", 5, lambda e: e.summary.spool_dropped,
               lambda e: human(e.summary.spool_dropped) if e.summary.spool_dropped else ""),
        Column("cpu%", 5, lambda e: e.summary.cpu_percent,
               lambda e: percent(e.summary.cpu_percent / 100)),
    ),
    sort=0,
    descending=False,
)


def fleet_search_text(entry: AgentEntry) -> str:
    """
    What the fleet screen's filter matches: id, host, status, hub and, for
    an agent with active alerts, their highest severity.
    """
    text = f"{entry.agent_id} {entry.hostname} {entry.status} {entry.hub}"
    return f"{text} {entry.alert_severity}" if entry.alerts_active else text


def render_fleet(table: Table, view: Optional[FleetView], filter_text: str = "",
                 ) -> tuple[str, list[str], list[AgentEntry]]:
    """
    Render the fleet screen as L{render} does, with each agent's C{hub}
    cell as L{hub_text} writes it against the mesh of C{view}
    (``h1 (down)`` for an agent whose hub the mesh has lost); the filter
    also matches ``down`` for those agents.

    :param table: L{FLEET}, sorted as the user chose.
    :param view: the newest view, or None before the first (no rows).
    """
    if view is None:
        return render(table, (), filter_text, fleet_search_text)
    states = {h.name: h.state for h in known_hubs(view)}
    width = next(c.width for c in table.columns if c.title == "hub")

    def searchable(entry: AgentEntry) -> str:
        down = states.get(entry.hub) == DOWN
        return fleet_search_text(entry) + (" down" if down else "")

    marked = with_text(table, "hub", lambda e: hub_text(e.hub, states.get(e.hub), width))
    return render(marked, view.agents, filter_text, searchable)


# -- the mesh ---------------------------------------------------------------


def known_hubs(view: FleetView) -> tuple[HubState, ...]:
    """
    The hubs of the mesh as the UI's hub knows them (L{FleetView.hubs}: the
    UI's hub first, state L{SELF}); a hub that sends no list (one older than
    the mesh) is listed alone, made from its L{HubInfo}.
    """
    if view.hubs:
        return view.hubs
    hub = view.hub
    return (HubState(name=hub.name, endpoint=hub.endpoint, state=SELF, last_heard=hub.now,
                     epoch=round(hub.started * 1_000_000), agents_linked=hub.agents_linked),)


def hub_text(name: str, state: Optional[str], width: int = 0) -> str:
    """
    A hub's name where an agent's is shown (fleet C{hub} column, agent
    screen): ``h1``, or ``h1 (down)`` when the mesh has lost that hub
    (state L{DOWN}: nothing heard for the hubs' C{--peer-timeout}).

    :param state: the hub's state in the mesh, None when it is not known.
    :param width: with a positive width, a name too long to fit with its
        mark is cut (``long-na… (down)``) so the mark always shows.
    """
    if state != DOWN:
        return name
    mark = " (down)"
    if 0 < width < len(name) + len(mark):
        name = name[: max(width - len(mark) - 1, 0)] + "…"
    return name + mark


def mesh_summary(hubs: Sequence[HubState]) -> str:
    """
    The mesh in a phrase for the link line: ``mesh 3 hubs, 1 down``, or
    ``mesh 1 hub`` (a hub alone, or one older than the mesh).
    """
    noun = "hub" if len(hubs) == 1 else "hubs"
    down = sum(1 for h in hubs if h.state == DOWN)
    return f"mesh {len(hubs)} {noun}" + (f", {down} down" if down else "")


# -- the agent screen: traffic, tcp, dns ------------------------------------


def _snap(entry_or_report: Any, name: str) -> Mapping:
    report = getattr(entry_or_report, "report", entry_or_report)
    if report is None:
        return {}
    snapshot = report.analysers.get(name)
    if snapshot is None:
        return {}
    return snapshot if isinstance(snapshot, dict) else to_json_value(snapshot)


TALKERS = Table(
    columns=(
        Column("host", 39, lambda h: h["addr"], lambda h: h["addr"], right=False),
        Column("sent", 8, lambda h: h["bytes_sent"], lambda h: octets(h["bytes_sent"])),
        Column("received", 8, lambda h: h["bytes_received"], lambda h: octets(h["bytes_received"])),
        Column("pkts", 7, lambda h: h["packets_sent"] + h["packets_received"],
               lambda h: human(h["packets_sent"] + h["packets_received"])),
    ),
    sort=1,
)

CONNECTIONS = Table(
    columns=(
        Column("src", 22, lambda c: (c["src"], c["sport"]),
               lambda c: f"{c['src']}:{c['sport']}", right=False),
        Column("dst", 22, lambda c: (c["dst"], c["dport"]),
               lambda c: f"{c['dst']}:{c['dport']}", right=False),
        Column("state", 12, lambda c: c["state"], lambda c: c["state"], right=False),
        Column("out", 8, lambda c: c["bytes_out"], lambda c: octets(c["bytes_out"])),
        Column("in", 8, lambda c: c["bytes_in"], lambda c: octets(c["bytes_in"])),
        Column("pkts", 6, lambda c: c["packets_out"] + c["packets_in"],
               lambda c: human(c["packets_out"] + c["packets_in"])),
        Column("rtt ms", 7, lambda c: c["rtt_ms"], lambda c: ms(c["rtt_ms"])),
        Column("rexmit", 6, lambda c: c["retransmissions"], lambda c: str(c["retransmissions"])),
    ),
    sort=3,
)

QUERIES = Table(
    columns=(
        Column("qname", 34, lambda q: q["qname"], lambda q: q["qname"], right=False),
        Column("qtype", 6, lambda q: q["qtype"], lambda q: q["qtype"], right=False),
        Column("rcode", 9, lambda q: q["rcode"], lambda q: q["rcode"] or "(none)", right=False),
        Column("client", 16, lambda q: q["client"], lambda q: q["client"], right=False),
        Column("server", 16, lambda q: q["server"], lambda q: q["server"], right=False),
        Column("ms", 7, lambda q: q["latency_ms"], lambda q: ms(q["latency_ms"])),
    ),
    sort=0,
    descending=False,
)

#: The agent screen's tabs: name → (table, records of a report, search text).
TABS: dict[str, tuple[Table, Callable[[Any], Sequence], Callable[[Any], str]]] = {
    "traffic": (TALKERS, lambda r: _snap(r, "ip").get("top_talkers", []),
                lambda h: h["addr"]),
    "tcp": (CONNECTIONS, lambda r: _snap(r, "tcp").get("connections", []),
            lambda c: f"{c['src']}:{c['sport']} {c['dst']}:{c['dport']} {c['state']}"),
    "dns": (QUERIES, lambda r: _snap(r, "dns").get("queries", []),
            lambda q: f"{q['qname']} {q['qtype']} {q['rcode']} {q['client']} {q['server']}"),
}


def agent_headline(entry: Optional[AgentEntry], now: float,
                   drop_warning: float = DROP_WARNING_PERCENT,
                   alerts: Sequence[AlertEntry] = (),
                   localtime: Callable[[float], time.struct_time] = time.localtime,
                   hubs: Sequence[HubState] = (),
                   ) -> list[str]:
    """
    The agent screen's summary lines: identity and the hub the agent
    reports through (see L{hub_text}), the agent's alerts when it has any
    (see L{agent_alert_line}), rates, protocol mix, the counters of the TCP
    and DNS analysers, and capture health (see L{capture_lines}).

    :param alerts: the fleet's alerts, newest first; this agent's are shown.
    :param hubs: the mesh's hubs (see L{known_hubs}).
    """
    if entry is None:
        return ["(agent not known to this hub)"]
    state = next((h.state for h in hubs if h.name == entry.hub), None)
    lines = [
        f"{entry.agent_id} ({entry.hostname})  {entry.status}  "
        f"via {hub_text(entry.hub, state)}  "
        f"last report {age(None if entry.last_heard is None else now - entry.last_heard)} ago",
    ]
    mine = agent_alerts(alerts, entry.agent_id)
    if mine:
        lines.append(agent_alert_line(mine, now, localtime))
    if entry.report is None:
        lines.append("waiting for the first report…")
        return lines
    ip, tcp, dns = _snap(entry, "ip"), _snap(entry, "tcp"), _snap(entry, "dns")
    cap = entry.report.capture
    lines.append(
        f"in {human(ip.get('pps_in', 0))}pps {human(ip.get('bps_in', 0), 'b')}ps   "
        f"out {human(ip.get('pps_out', 0))}pps {human(ip.get('bps_out', 0), 'b')}ps   "
        "mix " + "  ".join(
            f"{name} {human(c['packets'])}"
            for name, c in sorted(ip.get("protocols", {}).items(),
                                  key=lambda kv: -kv[1]["packets"])[:6]
        )
    )
    lines.append(
        f"tcp active {tcp.get('active', 0)} half-open {tcp.get('half_open', 0)} "
        f"syn {tcp.get('syn', 0)} est {tcp.get('established', 0)} fin {tcp.get('closed', 0)} "
        f"rst {tcp.get('reset', 0)} rexmit {tcp.get('retransmissions', 0)}   "
        f"dns q {dns.get('queries_total', 0)} {human(dns.get('qps', 0))}/s "
        f"nxdomain {dns.get('nxdomain', 0)} servfail {dns.get('servfail', 0)}"
    )
    lines.append(delivery_line(entry.report.delivery, entry.report.ts))
    lines.extend(capture_lines(cap, drop_warning))
    return lines


def delivery_line(delivery, ts: float) -> str:
    """
    The agent screen's delivery line: what waits in the agent's spool for
    a hub's durable write, how old the oldest is (by the agent's clock at
    its report C{ts}), what was acknowledged and sent again, and what the
    spool dropped at its bound or found corrupt (``!!`` first when it lost
    anything).

    :param delivery: a L{loopy.model.DeliveryStats}.
    """
    d = delivery
    lost = d.reports_dropped + d.alerts_dropped + d.corrupt
    where = "disk" if d.spool_on_disk else "memory"
    bound = f"/{octets(d.spool_max_bytes)}" if d.spool_max_bytes else ""
    oldest = "" if d.oldest_ts is None else f" oldest {age(ts - d.oldest_ts)}"
    return (("!! " if lost else "")
            + f"delivery spool {human(d.spool_records)} records {octets(d.spool_bytes)}"
            f"{bound} ({where}){oldest}  acked {human(d.acked)} "
            f"replayed {human(d.replayed)}  dropped {human(d.reports_dropped)} reports "
            f"{human(d.alerts_dropped)} alerts  corrupt {human(d.corrupt)}")


def capture_lines(cap, drop_warning: float = DROP_WARNING_PERCENT) -> list[str]:
    """
    The capture health of an agent screen: sources, counts, drops, ring
    fill, per-packet cost, CPU and memory; and a warning line when the drop
    ratio over the last interval is at or above C{drop_warning} percent.

    :param cap: a L{loopy.model.CaptureStats}.
    """
    sources = " ".join(sorted({f"{i.source}:{i.name}" for i in cap.interfaces})) or "none"
    lines = [
        f"capture {sources}  frames {human(cap.frames)} bytes {octets(cap.bytes)}  "
        f"kernel drops {human(cap.kernel_drops)} ({human(cap.drops_per_second)}/s, "
        f"{percent(cap.drop_ratio)})  ring fill {percent(cap.ring_fill)}  "
        f"malformed {human(cap.malformed)}",
        f"per packet p50 {cap.packet_time_p50_us:.1f}µs p99 {cap.packet_time_p99_us:.1f}µs  "
        f"cpu {cap.cpu_percent:.1f}%  rss {octets(cap.rss_bytes)}  "
        f"scapy dissected {human(cap.dissected)} budgeted out {human(cap.budgeted_out)}",
    ]
    if is_dropping(cap.drop_ratio, drop_warning):
        lines.append(
            f"!! dropping {percent(cap.drop_ratio)} of packets "
            f"(warning at {drop_warning:g}%): raise --ring-size or lighten the load"
        )
    return lines


def is_dropping(drop_ratio: float, drop_warning: float = DROP_WARNING_PERCENT) -> bool:
    """
    Whether a drop ratio (0 to 1) reaches the warning threshold (percent).
    """
    return drop_ratio > 0 and drop_ratio * 100 >= drop_warning


def dropping_agents(view: FleetView, drop_warning: float = DROP_WARNING_PERCENT) -> str:
    """
    The fleet's drop warning: ``"!! dropping: web-1 3.2%, db-2 1.1%"`` for
    agents online whose capture dropped at least C{drop_warning} percent of
    packets over their last interval (worst first, three named); ``""``
    when none does.
    """
    worst = sorted(
        (a for a in view.agents
         if a.status == "online" and is_dropping(a.summary.drop_ratio, drop_warning)),
        key=lambda a: -a.summary.drop_ratio,
    )
    if not worst:
        return ""
    named = ", ".join(f"{a.agent_id} {percent(a.summary.drop_ratio)}" for a in worst[:3])
    more = f" +{len(worst) - 3} more" if len(worst) > 3 else ""
    return f"!! dropping: {named}{more}"


def status_line(link: str, view: Optional[FleetView], updated_age: Optional[float],
                drop_warning: float = DROP_WARNING_PERCENT, dialing: str = "") -> str:
    """
    The always-visible link line: the fleet's alert marker first (see
    L{alert_marker}), the hub the UI is on (its name, the endpoint it
    listens on as it says, and the link's state), the mesh (see
    L{mesh_summary}), the agents online, how fresh the data is, and which
    agents are dropping packets (see L{dropping_agents}):
    ``hub h1 (tcp:7420, connected) · mesh 3 hubs, 1 down · 2/3 agents
    online · updated 0.4s ago · ? help  q quit``; while the UI is not
    linked, the view is the last hub's and the line says which hub the UI
    is trying: ``hub h1 (tcp:7420, reconnecting to tcp:10.0.0.2:7420)``.

    :param link: the link's state (``connected``, ``reconnecting`` …).
    :param updated_age: seconds since the view arrived, or None.
    :param dialing: the endpoint the UI is trying while not linked, or ``""``.
    """
    if view is None:
        return f"hub: {dialing + ' ' if dialing else ''}{link} · no data yet · ? help  q quit"
    hub = view.hub
    online = sum(1 for a in view.agents if a.status == "online")
    warning = dropping_agents(view, drop_warning)
    marker = alert_marker(view.alerts)
    return (
        (f"{marker} · " if marker else "")
        + f"hub {hub.name} ({hub.endpoint}, {link}{' to ' + dialing if dialing else ''}) · "
        f"{mesh_summary(known_hubs(view))} · "
        f"{online}/{len(view.agents)} agents online · "
        f"updated {age(updated_age)} ago · " + (f"{warning} · " if warning else "")
        + "? help  q quit"
    )


# -- alerts -----------------------------------------------------------------

#: How the fleet screen's C{alerts} column names a severity.
SEVERITY_SHORT = {"info": "info", "warning": "warn", "critical": "crit"}


def severity_rank(severity: str) -> int:
    """
    0 for no severity (``""``), then 1, 2, 3 for info, warning, critical.
    """
    return SEVERITIES.index(severity) + 1 if severity else 0


def agent_alert_marker(entry: AgentEntry) -> str:
    """
    The fleet screen's C{alerts} cell: the agent's active, unacknowledged
    alerts and their highest severity (``2 crit``, ``1 warn``), or ``""``.
    """
    if not entry.alerts_active:
        return ""
    return f"{entry.alerts_active} {SEVERITY_SHORT.get(entry.alert_severity, '?')}"


def alert_marker(alerts: Sequence[AlertEntry]) -> str:
    """
    The fleet-wide marker of the link line: ``"!! 3 alerts (1 critical) —
    press a"`` counting the alerts active and not acknowledged, with how
    many of those have the highest severity among them; ``""`` when none.
    """
    active = [e for e in alerts if e.state == ACTIVE]
    if not active:
        return ""
    worst = max(severity_rank(e.alert.severity) for e in active)
    at_worst = sum(1 for e in active if severity_rank(e.alert.severity) == worst)
    noun = "alert" if len(active) == 1 else "alerts"
    return f"!! {len(active)} {noun} ({at_worst} {SEVERITIES[worst - 1]}) — press a"


def agent_alerts(alerts: Iterable[AlertEntry], agent_id: str) -> tuple[AlertEntry, ...]:
    """
    The alerts of one agent, in the order given.
    """
    return tuple(e for e in alerts if e.alert.agent_id == agent_id)


def agent_alert_line(alerts: Sequence[AlertEntry], now: float,
                     localtime: Callable[[float], time.struct_time] = time.localtime,
                     newest: int = 3) -> str:
    """
    The agent screen's alert line: how many of the agent's alerts are active
    and not acknowledged (``!!`` first when any is), how many there are, and
    the newest few.

    :param alerts: one agent's alerts, newest first.
    """
    active = sum(1 for e in alerts if e.state == ACTIVE)
    shown = ", ".join(
        f"{clock_time(e.alert.ts, now, localtime)} {e.alert.severity} {e.alert.kind} {e.state}"
        for e in alerts[:newest])
    return (("!! " if active else "")
            + f"alerts: {active} active of {len(alerts)} (4 list, a all) · newest {shown}")
