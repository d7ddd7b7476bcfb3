"""
Tests for L{loopy.ui.views}, L{loopy.ui.alertviews} and L{loopy.ui.hubs}:
records in, exact text out.  The tables and formats they use are tested in
L{tests.test_ui_tables}.
"""

from __future__ import annotations

import json
import time

import attrs
from twisted.trial.unittest import SynchronousTestCase

from loopy.model import DOWN, LINKED, REACHABLE, SELF, AgentSummary, AlertEntry, FleetView, \
    HubState
from loopy.ui.alertviews import (
    ALERTS,
    alert_detail,
    alert_search_text,
    alerts_title,
    evidence_lines,
    filter_alerts,
    find_alert,
    next_floor,
    render_alerts,
)
from loopy.ui.hubs import HUBS, heard, hub_search_text, hubs_title, render_hubs
from loopy.ui.tables import next_sort, render, reverse_sort, with_text
from loopy.ui.helptext import HELP
from loopy.ui.views import (
    FLEET,
    TABS,
    agent_alert_line,
    agent_alert_marker,
    agent_alerts,
    agent_headline,
    alert_marker,
    dropping_agents,
    fleet_document,
    fleet_search_text,
    hub_text,
    known_hubs,
    mesh_summary,
    render_fleet,
    severity_rank,
    status_line,
)
from loopy import testing
from loopy.testing import T0


class FleetScreenTests(SynchronousTestCase):
    def test_rows(self):
        view = testing.view()
        header, rows, records = render(FLEET, list(view.agents), "", fleet_search_text)
        self.assertEqual(
            header,
            "agent▲           host         status  alerts hub           pps in pps out   bps in"
            "  bps out    tcp  dns/s   drops  drop%  lost  cpu%",
        )
        self.assertEqual(
            rows,
            [
                "agent-a          host-a       online         hub-a             12       8   76.8kb"
                "   9.60kb      1    0.5       2  0.99%        1.2%",
                "agent-b          host-b       stale          hub-a             12       8   76.8kb"
                "   9.60kb      1    0.5       2  0.99%        1.2%",
            ],
        )
        self.assertEqual(records, list(view.agents))

    def test_sort_by_pps_out(self):
        view = testing.view()
        quiet = attrs.evolve(view.agents[0], summary=AgentSummary(pps_out=1.0))
        table = reverse_sort(
            next_sort(next_sort(next_sort(next_sort(next_sort(next_sort(FLEET)))))))
        header, _, records = render(table, [quiet, view.agents[1]], "", fleet_search_text)
        self.assertEqual(header[58:73], " pps in pps o…▼")
        self.assertEqual([e.agent_id for e in records], ["agent-b", "agent-a"])

    def test_filter_by_status(self):
        view = testing.view()
        _, _, records = render(FLEET, list(view.agents), "STALE", fleet_search_text)
        self.assertEqual([e.agent_id for e in records], ["agent-b"])

    def test_search_text(self):
        self.assertEqual(fleet_search_text(testing.entry()), "agent-a host-a online hub-a")


class AgentScreenTests(SynchronousTestCase):
    def tab(self, name, entry=None, filter_text=""):
        table, records, search = TABS[name]
        return render(table, records(entry or testing.entry()), filter_text, search)

    def test_traffic(self):
        header, rows, _ = self.tab("traffic")
        self.assertEqual(header, "host" + " " * 39 + "sent▼ received    pkts")
        self.assertEqual(
            rows,
            ["10.0.0.2" + " " * 34 + "58.6kB   2.93kB      90",
             "10.0.0.1" + " " * 34 + "2.93kB   58.6kB      90"],
        )

    def test_tcp(self):
        header, rows, _ = self.tab("tcp")
        self.assertEqual(
            header,
            "src                    dst                    state            out▼       in"
            "   pkts  rtt ms rexmit",
        )
        self.assertEqual(
            rows,
            ["10.0.0.1:40000         10.0.0.2:443           established    1.46kB   19.5kB"
             "     22     1.2      1"],
        )

    def test_dns(self):
        header, rows, _ = self.tab("dns")
        self.assertEqual(
            header,
            "qname▲                             qtype  rcode     client           server"
            "                ms",
        )
        self.assertEqual(
            rows,
            ["example.com                        A      NOERROR   10.0.0.1         10.0.0.53"
             "           12.5"],
        )

    def test_filter(self):
        self.assertEqual(self.tab("tcp", filter_text=":443")[1][0][:14], "10.0.0.1:40000")
        self.assertEqual(self.tab("tcp", filter_text="closed")[1], [])
        self.assertEqual(self.tab("dns", filter_text="noerror")[2][0]["qname"], "example.com")

    def test_no_report(self):
        """
        An agent without a report (or without that analyser) has empty tabs.
        """
        entry = testing.entry(with_report=False)
        for name in TABS:
            self.assertEqual(self.tab(name, entry)[1], [])
        bare = testing.entry(report=testing.report(analysers={}))
        self.assertEqual(self.tab("tcp", bare)[1], [])

    def test_headline(self):
        self.assertEqual(
            agent_headline(testing.entry(), T0),
            [
                "agent-a (host-a)  online  via hub-a  last report 0.5s ago",
                "in 12pps 76.8kbps   out 8pps 9.60kbps   mix tcp 150  udp 40  arp 10",
                "tcp active 1 half-open 1 syn 3 est 2 fin 1 rst 1 rexmit 4   "
                "dns q 5 0.5/s nxdomain 1 servfail 0",
                "delivery spool 0 records 0B (memory)  acked 0 replayed 0  dropped 0 reports "
                "0 alerts  corrupt 0",
                "capture ring:eth0  frames 200 bytes 105kB  kernel drops 2 (2/s, 0.99%)  "
                "ring fill 12%  malformed 1",
                "per packet p50 3.2µs p99 12.5µs  cpu 1.2%  rss 58.2MB  "
                "scapy dissected 4 budgeted out 1",
            ],
        )

    def test_headline_drop_warning(self):
        """
        At or above the warning threshold the agent screen says so, and what
        to do about it.
        """
        lines = agent_headline(testing.entry(), T0, drop_warning=0.5)
        self.assertEqual(
            lines[-1],
            "!! dropping 0.99% of packets (warning at 0.5%): raise --ring-size or "
            "lighten the load",
        )
        self.assertEqual(len(agent_headline(testing.entry(), T0)), 6)

    def test_headline_dict_snapshots(self):
        """
        Snapshots that arrived as dicts read the same as records.
        """
        report = testing.report(analysers={"ip": {"pps_in": 1500.0, "protocols": {}},
                                           "dns": {"queries_total": 9, "qps": 250.0}})
        lines = agent_headline(testing.entry(report=report), T0)
        self.assertEqual(lines[1], "in 1.50kpps 0bps   out 0pps 0bps   mix ")
        self.assertEqual(
            lines[2],
            "tcp active 0 half-open 0 syn 0 est 0 fin 0 rst 0 rexmit 0   "
            "dns q 9 250/s nxdomain 0 servfail 0",
        )

    def test_headline_waiting(self):
        entry = testing.entry("agent-b", "stale", with_report=False, last_heard=None)
        self.assertEqual(
            agent_headline(entry, T0),
            ["agent-b (host-b)  stale  via hub-a  last report - ago",
             "waiting for the first report…"],
        )

    def test_headline_unknown(self):
        self.assertEqual(agent_headline(None, T0), ["(agent not known to this hub)"])


class StatusLineTests(SynchronousTestCase):
    def test_no_view(self):
        self.assertEqual(
            status_line("connecting", None, None),
            "hub: connecting · no data yet · ? help  q quit",
        )

    def test_view(self):
        self.assertEqual(
            status_line("connected", testing.view(), 0.4),
            "hub hub-a (tcp:7420, connected) · mesh 1 hub · 1/2 agents online · "
            "updated 0.4s ago · ? help  q quit",
        )

    def test_reconnecting(self):
        view = FleetView(hub=testing.hub_info(name="hub-b"))
        self.assertEqual(
            status_line("reconnecting", view, 125),
            "hub hub-b (tcp:7420, reconnecting) · mesh 1 hub · 0/0 agents online · "
            "updated 2m ago · ? help  q quit",
        )


class DropWarningTests(SynchronousTestCase):
    """
    Agents dropping at least the warning threshold of their packets are
    named on the link line, worst first.
    """

    def fleet(self, *ratios, status="online"):
        agents = tuple(
            testing.entry(f"agent-{i}", status, summary=AgentSummary(drop_ratio=ratio))
            for i, ratio in enumerate(ratios)
        )
        return FleetView(hub=testing.hub_info(), agents=agents)

    def test_none(self):
        self.assertEqual(dropping_agents(self.fleet(0.0, 0.009)), "")

    def test_worst_first(self):
        self.assertEqual(dropping_agents(self.fleet(0.01, 0.2, 0.005)),
                         "!! dropping: agent-1 20%, agent-0 1.0%")

    def test_threshold(self):
        self.assertEqual(dropping_agents(self.fleet(0.01, 0.005), drop_warning=0.5),
                         "!! dropping: agent-0 1.0%, agent-1 0.50%")

    def test_more(self):
        self.assertEqual(dropping_agents(self.fleet(0.5, 0.4, 0.3, 0.2, 0.1)),
                         "!! dropping: agent-0 50%, agent-1 40%, agent-2 30% +2 more")

    def test_offline_not_named(self):
        """
        An offline agent's last drop ratio is old news.
        """
        self.assertEqual(dropping_agents(self.fleet(0.5, status="offline")), "")

    def test_status_line(self):
        self.assertEqual(
            status_line("connected", self.fleet(0.02), 1),
            "hub hub-a (tcp:7420, connected) · mesh 1 hub · 1/1 agents online · "
            "updated 1.0s ago · !! dropping: agent-0 2.0% · ? help  q quit",
        )


class DocumentTests(SynchronousTestCase):
    def test_shape(self):
        doc = fleet_document(testing.view())
        self.assertEqual(sorted(doc), ["agents", "alerts", "hub", "hubs"])
        self.assertEqual(doc["alerts"], [])
        self.assertEqual(doc["hub"]["name"], "hub-a")
        self.assertEqual(doc["hub"]["updates_coalesced"], 0)
        first, second = doc["agents"]
        self.assertEqual(
            sorted(first),
            ["agent_id", "alert_severity", "alerts_active", "arp", "capture", "counts",
             "delivery", "dns", "epoch", "hostname", "hub", "interval", "ip", "last_heard",
             "seq", "status", "summary", "tcp", "ts"],
        )
        self.assertEqual(
            {k: first[k] for k in ["agent_id", "hostname", "status", "hub", "seq"]},
            {"agent_id": "agent-a", "hostname": "host-a", "status": "online",
             "hub": "hub-a", "seq": 1},
        )
        self.assertEqual(
            {k: first["capture"][k] for k in ["frames", "bytes", "kernel_drops", "malformed"]},
            {"frames": 200, "bytes": 108000, "kernel_drops": 2, "malformed": 1},
        )
        self.assertEqual(first["ip"]["top_talkers"][0]["addr"], "10.0.0.2")
        self.assertEqual(
            first["tcp"]["connections"][0],
            {"src": "10.0.0.1", "sport": 40000, "dst": "10.0.0.2", "dport": 443,
             "state": "established", "packets_out": 10, "bytes_out": 1500,
             "packets_in": 12, "bytes_in": 20000, "ip_bytes_out": 2020,
             "ip_bytes_in": 20624, "rtt_ms": 1.25, "retransmissions": 1,
             "first_seen": T0 - 5, "last_seen": T0 - 1},
        )
        self.assertEqual(
            first["dns"]["queries"][0],
            {"ts": T0 - 2, "client": "10.0.0.1", "sport": 5353, "server": "10.0.0.53",
             "dport": 53, "transport": "udp", "id": 4660, "qname": "example.com",
             "qtype": "A", "rcode": "NOERROR", "answers": ["A 93.184.216.34"],
             "latency_ms": 12.5},
        )
        self.assertEqual(first["arp"], {"requests": 3, "replies": [1, 2]})
        self.assertEqual(
            second,
            {"agent_id": "agent-b", "hostname": "host-b", "status": "stale", "hub": "hub-a",
             "epoch": 1_700_000_000_000_000, "seq": 1, "last_heard": T0 - 0.5,
             "summary": {"pps_in": 12.0, "pps_out": 8.0, "bps_in": 76800.0,
                         "bps_out": 9600.0, "tcp_active": 1, "dns_qps": 0.5, "frames": 200,
                         "kernel_drops": 2, "malformed": 1, "drops_per_second": 2.0,
                         "drop_ratio": 0.0099, "cpu_percent": 1.2, "rss_bytes": 61_000_000,
                         "spool_dropped": 0},
             "alerts_active": 0, "alert_severity": "", "capture": None},
        )

    def test_json(self):
        """
        The document is JSON as it is: it survives a dump and load unchanged.
        """
        doc = fleet_document(testing.view())
        self.assertEqual(json.loads(json.dumps(doc)), doc)


# -- alerts -------------------------------------------------------------------

#: T0 in UTC is 2023-11-14 22:13:20; the tests read times with time.gmtime.
UTC = time.gmtime


def scan(**changes) -> AlertEntry:
    """
    A critical port scan, active, raised 5 s before T0.
    """
    entry = AlertEntry(testing.alert(seq=1, severity="critical", ts=T0 - 5), received=T0 - 4)
    return attrs.evolve(entry, **changes)


def spoof() -> AlertEntry:
    """
    A warning ARP spoof, active, raised 1 s before T0, with no dst.
    """
    alert = attrs.evolve(testing.alert(seq=2, kind="arp_spoof", ts=T0 - 1),
                         src="192.0.2.254", dst=None, summary="192.0.2.254 moved",
                         evidence={})
    return AlertEntry(alert, received=T0 - 1)


def listener() -> AlertEntry:
    """
    An info alert of agent-b, over, raised two days before T0.
    """
    alert = testing.alert(agent_id="agent-b", seq=3, severity="info", kind="new_listener",
                          state="over", revision=1, ts=T0 - 2 * 86400)
    return AlertEntry(alert, received=T0 - 2 * 86400)


def acknowledged() -> AlertEntry:
    return scan(acknowledged_by="ann@desk", acknowledged_at=T0 - 2)


class AlertMarkerTests(SynchronousTestCase):
    """
    The fleet screen's C{alerts} column and the link line's marker.
    """

    def test_severity_rank(self):
        self.assertEqual([severity_rank(s) for s in ["", "info", "warning", "critical"]],
                         [0, 1, 2, 3])

    def test_agent_marker(self):
        cases = [(0, ""), (2, "critical"), (1, "warning"), (3, "info")]
        self.assertEqual(
            [agent_alert_marker(testing.entry(alerts_active=n, alert_severity=s))
             for n, s in cases],
            ["", "2 crit", "1 warn", "3 info"])

    def test_fleet_column(self):
        """
        The column shows the marker, and sorts the worst severity first
        (then the most alerts) when descending.
        """
        quiet = testing.entry("agent-a")
        warned = testing.entry("agent-b", alerts_active=5, alert_severity="warning")
        scanned = testing.entry("agent-c", alerts_active=1, alert_severity="critical")
        table = next_sort(next_sort(next_sort(attrs.evolve(FLEET, descending=True))))
        header, rows, records = render(table, [quiet, warned, scanned])
        self.assertEqual(header[38:44], "aler…▼")
        self.assertEqual([r[38:44] for r in rows], ["1 crit", "5 warn", "      "])
        self.assertEqual([e.agent_id for e in records], ["agent-c", "agent-b", "agent-a"])

    def test_fleet_search_severity(self):
        """
        The fleet filter matches the severity of an agent's active alerts.
        """
        entry = testing.entry(alerts_active=1, alert_severity="critical")
        self.assertEqual(fleet_search_text(entry), "agent-a host-a online hub-a critical")
        _, _, records = render(FLEET, [entry, testing.entry("agent-b")], "CRIT",
                               fleet_search_text)
        self.assertEqual([e.agent_id for e in records], ["agent-a"])

    def test_no_marker(self):
        """
        Alerts over or acknowledged raise no marker.
        """
        self.assertEqual(alert_marker(()), "")
        self.assertEqual(alert_marker([listener(), acknowledged()]), "")

    def test_marker(self):
        """
        The marker counts active, unacknowledged alerts and names how many
        have the highest severity among them.
        """
        self.assertEqual(alert_marker([spoof(), scan(), listener()]),
                         "!! 2 alerts (1 critical) — press a")
        self.assertEqual(alert_marker([spoof(), acknowledged()]),
                         "!! 1 alert (1 warning) — press a")
        two = [spoof(), AlertEntry(attrs.evolve(spoof().alert, seq=9), received=T0)]
        self.assertEqual(alert_marker(two), "!! 2 alerts (2 warning) — press a")

    def test_status_line(self):
        """
        The marker leads the link line; the drop warning still shows.
        """
        view = FleetView(
            hub=testing.hub_info(),
            agents=(testing.entry("agent-0", summary=AgentSummary(drop_ratio=0.02)),),
            alerts=(spoof(), scan()))
        self.assertEqual(
            status_line("connected", view, 1),
            "!! 2 alerts (1 critical) — press a · hub hub-a (tcp:7420, connected) · "
            "mesh 1 hub · 1/1 agents online · updated 1.0s ago · !! dropping: agent-0 2.0% · "
            "? help  q quit",
        )


class AlertScreenTests(SynchronousTestCase):
    def entries(self):
        return [spoof(), scan(), listener()]

    def kinds(self, records):
        return [e.alert.kind for e in records]

    def test_rows(self):
        """
        Newest first; a missing address is ``-``; a day-old alert shows
        its date.
        """
        header, rows, records = render_alerts(ALERTS, self.entries(), T0, localtime=UTC)
        self.assertEqual(
            header.rstrip(),
            "time▼      severity  state        agent        kind         src             "
            "dst             summary")
        self.assertEqual(
            [r.rstrip() for r in rows],
            ["22:13:19   warning   active       agent-a      arp_spoof    192.0.2.254     "
             "-               192.0.2.254 moved",
             "22:13:15   critical  active       agent-a      port_scan    192.0.2.9       "
             "192.0.2.1       192.0.2.9 SYN-scanned 20 ports on 192.0…",
             "2023-11-12 info      over         agent-b      new_listener 192.0.2.9       "
             "192.0.2.1       192.0.2.9 SYN-scanned 21 ports on 192.0…"])
        self.assertEqual(self.kinds(records), ["arp_spoof", "port_scan", "new_listener"])

    def test_acknowledged(self):
        _, rows, _ = render_alerts(ALERTS, [acknowledged()], T0, localtime=UTC)
        self.assertEqual(rows[0][21:33], "acknowledged")

    def test_sort_by_severity(self):
        table = reverse_sort(next_sort(ALERTS))
        header, _, records = render_alerts(table, self.entries(), T0, localtime=UTC)
        self.assertEqual(header[:20], "time       severity▲")
        self.assertEqual(self.kinds(records), ["new_listener", "arp_spoof", "port_scan"])

    def test_search_text(self):
        self.assertEqual(
            alert_search_text(spoof()),
            "agent-a arp_spoof warning active 192.0.2.254 None 192.0.2.254 moved")

    def test_filter(self):
        """
        C{/} matches agent, kind, severity, state, addresses and summary.
        """
        cases = {
            "agent-b": ["new_listener"], "ARP_": ["arp_spoof"], "critical": ["port_scan"],
            "over": ["new_listener"], "192.0.2.254": ["arp_spoof"],
            "192.0.2.1 ": ["port_scan", "new_listener"], "moved": ["arp_spoof"],
            "nothing": [],
        }
        found = {text: self.kinds(render_alerts(ALERTS, self.entries(), T0, text)[2])
                 for text in cases}
        self.assertEqual(found, cases)

    def test_severity_floor(self):
        self.assertEqual([next_floor(f) for f in ["", "warning", "critical"]],
                         ["warning", "critical", ""])
        self.assertEqual(
            [self.kinds(filter_alerts(self.entries(), floor)) for floor in ["", "warning",
                                                                             "critical"]],
            [["arp_spoof", "port_scan", "new_listener"], ["arp_spoof", "port_scan"],
             ["port_scan"]])

    def test_active_only(self):
        """
        Active only hides alerts over and acknowledged ones.
        """
        entries = [spoof(), acknowledged(), listener()]
        self.assertEqual(self.kinds(filter_alerts(entries, active_only=True)), ["arp_spoof"])
        _, rows, _ = render_alerts(ALERTS, entries, T0, "", "critical", True)
        self.assertEqual(rows, [])

    def test_title(self):
        self.assertEqual(alerts_title(3, 3), "3/3 alerts · severity all · any state")
        self.assertEqual(alerts_title(1, 3, "warning", True, "scan"),
                         "1/3 alerts · severity warning+ · active only · filter: scan")
        self.assertEqual(alerts_title(0, 3, "critical"),
                         "0/3 alerts · severity critical · any state")


class AgentAlertTests(SynchronousTestCase):
    def test_agent_alerts(self):
        entries = [spoof(), listener(), scan()]
        self.assertEqual(agent_alerts(entries, "agent-a"), (spoof(), scan()))
        self.assertEqual(agent_alerts(entries, "agent-z"), ())

    def test_line(self):
        self.assertEqual(
            agent_alert_line([spoof(), acknowledged(), listener()], T0, UTC),
            "!! alerts: 1 active of 3 (4 list, a all) · newest 22:13:19 warning arp_spoof "
            "active, 22:13:15 critical port_scan acknowledged, 2023-11-12 info new_listener over")

    def test_line_newest_few(self):
        """
        At most C{newest} alerts are named; no C{!!} when none is active.
        """
        self.assertEqual(
            agent_alert_line([acknowledged(), listener()], T0, UTC, newest=1),
            "alerts: 0 active of 2 (4 list, a all) · newest 22:13:15 critical port_scan "
            "acknowledged")

    def test_headline(self):
        """
        The agent screen's second line lists that agent's alerts; none,
        no line.
        """
        lines = agent_headline(testing.entry(), T0, alerts=[listener(), scan()],
                               localtime=UTC)
        self.assertEqual(len(lines), 7)
        self.assertEqual(lines[1], "!! alerts: 1 active of 1 (4 list, a all) · newest "
                                   "22:13:15 critical port_scan active")
        self.assertEqual(agent_headline(testing.entry(), T0, alerts=[listener()]),
                         agent_headline(testing.entry(), T0))


class AlertDetailTests(SynchronousTestCase):
    def test_find(self):
        entries = [spoof(), scan()]
        self.assertEqual(find_alert(entries, scan().alert.key), scan())
        self.assertIsNone(find_alert(entries, ("agent-a", 1, 99)))

    def test_detail(self):
        self.assertEqual(
            alert_detail(acknowledged(), T0, UTC),
            ["critical port_scan · acknowledged",
             "192.0.2.9 SYN-scanned 20 ports on 192.0.2.1",
             "",
             "agent         agent-a (epoch 1700000000000000, alert 1, revision 0)",
             "src           192.0.2.9",
             "dst           192.0.2.1",
             "raised        2023-11-14 22:13:15 (5.0s ago)",
             "updated       2023-11-14 22:13:15 (5.0s ago)",
             "received      2023-11-14 22:13:16 (hub clock)",
             "condition     active",
             "acknowledged  by ann@desk at 2023-11-14 22:13:18",
             "",
             "evidence",
             "  ports: [22, 80, 443]",
             "  ports_count: 20",
             "  technique: syn"])

    def test_detail_not_acknowledged(self):
        """
        The detail says how to acknowledge; missing addresses and empty
        evidence read ``-`` and ``(none)``.
        """
        lines = alert_detail(spoof(), T0, UTC)
        self.assertEqual(lines[0], "warning arp_spoof · active")
        self.assertEqual(lines[5], "dst           -")
        self.assertEqual(lines[10], "acknowledged  no (k to acknowledge)")
        self.assertEqual(lines[-2:], ["evidence", "  (none)"])

    def test_evidence(self):
        """
        Nested objects indent; short lists of scalars stay inline; samples,
        long lists and lists of objects take a line per item; scalars that
        are not words read as JSON.
        """
        evidence = {
            "samples": ["IP 192.0.2.9.40000 > 192.0.2.1.22: Flags [S]"],
            "threshold": {"ports": 20, "window_s": 5.0},
            "targets": [f"192.0.2.{i}" for i in range(1, 8)],
            "macs": [{"mac": "02:00:00:00:00:01", "seen": 3}],
            "gateway": True, "name": None, "ports": [], "extra": {},
        }
        self.assertEqual(evidence_lines(evidence), [
            "  extra: {}",
            "  gateway: true",
            "  macs:",
            "    -",
            "      mac: 02:00:00:00:00:01",
            "      seen: 3",
            "  name: null",
            "  ports: []",
            "  samples:",
            "    - IP 192.0.2.9.40000 > 192.0.2.1.22: Flags [S]",
            "  targets:",
        ] + [f"    - 192.0.2.{i}" for i in range(1, 8)] + [
            "  threshold:",
            "    ports: 20",
            "    window_s: 5.0",
        ])


class AlertDocumentTests(SynchronousTestCase):
    def test_fields(self):
        """
        C{loopy-ui --json} lists alerts newest first with the UI's state,
        the agent's condition and the acknowledgement.
        """
        view = attrs.evolve(testing.view(), alerts=(spoof(), acknowledged()))
        first, second = fleet_document(view)["alerts"]
        self.assertEqual(
            sorted(second),
            ["acknowledged_at", "acknowledged_by", "agent_id", "condition", "dst", "epoch",
             "evidence", "kind", "received", "revision", "seq", "severity", "src", "state",
             "summary", "ts", "updated"])
        self.assertEqual(
            {k: second[k] for k in ["kind", "state", "condition", "acknowledged_by",
                                    "acknowledged_at", "seq"]},
            {"kind": "port_scan", "state": "acknowledged", "condition": "active",
             "acknowledged_by": "ann@desk", "acknowledged_at": T0 - 2, "seq": 1})
        self.assertEqual((first["kind"], first["state"], first["dst"]),
                         ("arp_spoof", "active", None))


# -- the mesh -----------------------------------------------------------------


def mesh_view() -> FleetView:
    """
    The UI on hub-a of four hubs: hub-b linked, hub-c heard through hub-b,
    hub-d down; agent-a on hub-a, agent-d on hub-d, agent-x on a hub the
    mesh does not list.
    """
    hubs = (
        HubState("hub-a", "tcp:7420", SELF, last_heard=T0, epoch=1_699_999_940_000_000,
                 agents_linked=1, peers=("hub-b",)),
        HubState("hub-b", "tcp:10.0.0.2:7420", LINKED, last_heard=T0 - 0.2,
                 epoch=1_699_999_000_000_000, agents_linked=2, peers=("hub-a", "hub-c")),
        HubState("hub-c", "tcp:10.0.0.3:7420", REACHABLE, last_heard=T0 - 0.7,
                 agents_linked=0, peers=("hub-b",)),
        HubState("hub-d", "tcp:10.0.0.4:7420", DOWN, last_heard=T0 - 125,
                 agents_linked=3),
    )
    agents = (testing.entry("agent-a"), testing.entry("agent-d", "offline", hub="hub-d"),
              testing.entry("agent-x", hub="hub-x"))
    return FleetView(hub=testing.hub_info(), agents=agents, hubs=hubs)


class KnownHubsTests(SynchronousTestCase):
    def test_listed(self):
        """
        The hubs the UI's hub sends are the mesh, in its order.
        """
        view = mesh_view()
        self.assertEqual(known_hubs(view), view.hubs)

    def test_hub_without_list(self):
        """
        A hub that sends no list (older than the mesh) is the mesh alone,
        state self, made from what it says of itself.
        """
        view = testing.view()
        self.assertEqual(known_hubs(view), (
            HubState("hub-a", "tcp:7420", SELF, last_heard=T0,
                     epoch=1_699_999_940_000_000, agents_linked=1),))

    def test_mesh_summary(self):
        hub = HubState("h", "tcp:1", SELF)
        self.assertEqual(
            [mesh_summary(hubs) for hubs in [
                (hub,), mesh_view().hubs, mesh_view().hubs[:3],
                (hub, attrs.evolve(hub, name="i", state=DOWN),
                 attrs.evolve(hub, name="j", state=DOWN))]],
            ["mesh 1 hub", "mesh 4 hubs, 1 down", "mesh 3 hubs", "mesh 3 hubs, 2 down"])

    def test_status_line(self):
        """
        The link line names the UI's hub, its endpoint and the link state,
        then the mesh.
        """
        self.assertEqual(
            status_line("connected", mesh_view(), 0.4),
            "hub hub-a (tcp:7420, connected) · mesh 4 hubs, 1 down · 2/3 agents online · "
            "updated 0.4s ago · ? help  q quit",
        )

    def test_status_line_dialing(self):
        """
        Before the first view, the link line says what the UI dials.
        """
        self.assertEqual(
            status_line("connecting", None, None, dialing="tcp:127.0.0.1:7420"),
            "hub: tcp:127.0.0.1:7420 connecting · no data yet · ? help  q quit",
        )

    def test_status_line_failing_over(self):
        """
        While not linked, the line keeps the last hub's view and says which
        hub the UI is trying.
        """
        self.assertEqual(
            status_line("reconnecting", mesh_view(), 2.5, dialing="tcp:10.0.0.2:7420"),
            "hub hub-a (tcp:7420, reconnecting to tcp:10.0.0.2:7420) · mesh 4 hubs, 1 down · "
            "2/3 agents online · updated 2.5s ago · ? help  q quit",
        )

    def test_document(self):
        """
        C{loopy-ui --json} lists every hub with its fields; each agent says
        its hub.
        """
        doc = fleet_document(mesh_view())
        self.assertEqual(json.loads(json.dumps(doc)), doc)
        self.assertEqual(doc["hubs"][0], {
            "name": "hub-a", "endpoint": "tcp:7420", "state": "self", "last_heard": T0,
            "epoch": 1_699_999_940_000_000, "agents_linked": 1, "peers": ["hub-b"]})
        self.assertEqual([(h["name"], h["state"], h["last_heard"], h["peers"])
                          for h in doc["hubs"][1:]],
                         [("hub-b", "linked", T0 - 0.2, ["hub-a", "hub-c"]),
                          ("hub-c", "reachable", T0 - 0.7, ["hub-b"]),
                          ("hub-d", "down", T0 - 125, [])])
        self.assertEqual([a["hub"] for a in doc["agents"]], ["hub-a", "hub-d", "hub-x"])

    def test_document_hub_without_list(self):
        self.assertEqual(
            fleet_document(testing.view())["hubs"],
            [{"name": "hub-a", "endpoint": "tcp:7420", "state": "self", "last_heard": T0,
              "epoch": 1_699_999_940_000_000, "agents_linked": 1, "peers": []}])


class AgentHubTests(SynchronousTestCase):
    """
    Each agent's hub, marked when the mesh has lost it.
    """

    def test_hub_text(self):
        self.assertEqual(
            [hub_text("hub-a", s) for s in (SELF, LINKED, REACHABLE, None, DOWN)],
            ["hub-a", "hub-a", "hub-a", "hub-a", "hub-a (down)"])

    def test_hub_text_cut(self):
        """
        In a narrow cell the name is cut, never the mark.
        """
        self.assertEqual(hub_text("hub-a", DOWN, width=12), "hub-a (down)")
        self.assertEqual(hub_text("london-1", DOWN, width=14), "london… (down)")
        self.assertEqual(hub_text("london-1", LINKED, width=14), "london-1")

    def test_fleet_rows(self):
        header, rows, records = render_fleet(FLEET, mesh_view())
        self.assertEqual(header, render(FLEET, [])[0])
        self.assertEqual([r[45:57] for r in rows],
                         ["hub-a       ", "hub-d (down)", "hub-x       "])
        self.assertEqual([e.agent_id for e in records], ["agent-a", "agent-d", "agent-x"])

    def test_fleet_sort_by_hub(self):
        """
        The hub column sorts by the hub's name, whatever its mark.
        """
        table = reverse_sort(next_sort(next_sort(next_sort(next_sort(FLEET)))))
        _, rows, records = render_fleet(table, mesh_view())
        self.assertEqual([e.agent_id for e in records], ["agent-x", "agent-d", "agent-a"])
        self.assertEqual(rows[1][45:57], "hub-d (down)")

    def test_fleet_filter_down(self):
        """
        C{/ down} lists the agents whose hub the mesh has lost.
        """
        _, _, records = render_fleet(FLEET, mesh_view(), "DOWN")
        self.assertEqual([e.agent_id for e in records], ["agent-d"])

    def test_fleet_no_view(self):
        self.assertEqual(render_fleet(FLEET, None), (render(FLEET, [])[0], [], []))

    def test_fleet_hub_without_list(self):
        _, rows, _ = render_fleet(FLEET, testing.view())
        self.assertEqual(rows, render(FLEET, testing.view().agents)[1])

    def test_headline(self):
        view = mesh_view()
        self.assertEqual(
            agent_headline(view.agents[1], T0, hubs=view.hubs)[0],
            "agent-d (host-d)  offline  via hub-d (down)  last report 0.5s ago")
        self.assertEqual(
            agent_headline(view.agents[0], T0, hubs=view.hubs)[0],
            "agent-a (host-a)  online  via hub-a  last report 0.5s ago")

    def test_with_text(self):
        table = with_text(FLEET, "hub", lambda e: "x")
        self.assertEqual([c.title for c in table.columns], [c.title for c in FLEET.columns])
        self.assertEqual(table.columns[4].text(testing.entry()), "x")
        self.assertEqual((table.sort, table.descending), (FLEET.sort, FLEET.descending))
        self.assertRaises(ValueError, with_text, FLEET, "nope", str)


class HubsScreenTests(SynchronousTestCase):
    def test_rows(self):
        """
        One row per hub, the UI's own first and marked; last heard is an age
        by the hub clock of the view.
        """
        header, rows, records = render_hubs(HUBS, mesh_view())
        self.assertEqual(
            header,
            "hub▲             endpoint                       state     last heard agents peers"
            + " " * 35)
        self.assertEqual([r.rstrip() for r in rows], [
            "▸ hub-a          tcp:7420                       self            0.0s      1 hub-b",
            "  hub-b          tcp:10.0.0.2:7420              linked          0.2s      2 "
            "hub-a hub-c",
            "  hub-c          tcp:10.0.0.3:7420              reachable       0.7s      0 hub-b",
            "  hub-d          tcp:10.0.0.4:7420              down              2m      3 -",
        ])
        self.assertEqual(records, list(mesh_view().hubs))

    def test_self_first(self):
        """
        Sorted by name, the UI's hub stays first.
        """
        view = attrs.evolve(mesh_view(), hub=testing.hub_info(name="hub-c"), hubs=(
            attrs.evolve(mesh_view().hubs[2], state=SELF),
            attrs.evolve(mesh_view().hubs[0], state=LINKED)) + mesh_view().hubs[1::2])
        _, rows, _ = render_hubs(HUBS, view)
        self.assertEqual([r[:7] for r in rows], ["▸ hub-c", "  hub-a", "  hub-b", "  hub-d"])

    def test_sort_by_state(self):
        table = reverse_sort(next_sort(next_sort(HUBS)))
        _, _, records = render_hubs(table, mesh_view())
        self.assertEqual([h.state for h in records], [DOWN, REACHABLE, LINKED, SELF])

    def test_never_heard(self):
        self.assertEqual(heard(HubState("h", "tcp:1", DOWN), T0), "-")
        self.assertEqual(heard(mesh_view().hubs[1], T0), "0.2s")

    def test_filter(self):
        _, _, records = render_hubs(HUBS, mesh_view(), "hub-c")
        self.assertEqual([h.name for h in records], ["hub-b", "hub-c"])
        _, _, records = render_hubs(HUBS, mesh_view(), "10.0.0.4")
        self.assertEqual([h.name for h in records], ["hub-d"])

    def test_search_text(self):
        self.assertEqual(hub_search_text(mesh_view().hubs[1]),
                         "hub-b tcp:10.0.0.2:7420 linked hub-a hub-c")

    def test_hub_without_list(self):
        _, rows, _ = render_hubs(HUBS, testing.view())
        self.assertEqual([r.rstrip() for r in rows], [
            "▸ hub-a          tcp:7420                       self            0.0s      1 -"])

    def test_no_view(self):
        self.assertEqual(render_hubs(HUBS, None)[1:], ([], []))
        self.assertEqual(hubs_title(None, 0), "no data yet")

    def test_title(self):
        view = mesh_view()
        self.assertEqual(hubs_title(view, 4), "on hub-a · 4/4 hubs: 1 linked, 1 reachable, 1 down")
        self.assertEqual(hubs_title(view, 1, "hub-d"),
                         "on hub-a · 1/4 hubs: 1 linked, 1 reachable, 1 down · filter: hub-d")
        self.assertEqual(hubs_title(testing.view(), 1), "on hub-a · 1/1 hubs")

    def test_help(self):
        """
        The help names the hubs key and the states.
        """
        self.assertIn("  h        hubs of the mesh", HELP)
        for word in ("self", "linked", "reachable", "down", "h1 (down)"):
            self.assertIn(word, HELP)


class DeliveryTests(SynchronousTestCase):
    """
    The agent's spool on the agent screen (L{delivery_line}) and the
    fleet's C{lost} column.
    """

    def test_line(self):
        from loopy.model import DeliveryStats
        from loopy.ui.views import delivery_line

        stats = DeliveryStats(spool_records=1200, spool_bytes=3 * 1024 * 1024,
                              spool_max_bytes=64 * 1024 * 1024, spool_on_disk=True,
                              oldest_ts=T0 - 42, replayed=1100, acked=5000)
        self.assertEqual(
            delivery_line(stats, T0),
            "delivery spool 1.20k records 3.00MB/64.0MB (disk) oldest 42s  acked 5.00k "
            "replayed 1.10k  dropped 0 reports 0 alerts  corrupt 0")
        lost = attrs.evolve(stats, reports_dropped=300, alerts_dropped=2)
        self.assertTrue(delivery_line(lost, T0).startswith("!! delivery spool"))
        self.assertIn("dropped 300 reports 2 alerts", delivery_line(lost, T0))
        corrupt = attrs.evolve(stats, corrupt=1)
        self.assertTrue(delivery_line(corrupt, T0).startswith("!! "))

    def test_headline(self):
        from loopy.model import DeliveryStats

        report = attrs.evolve(testing.report(), delivery=DeliveryStats(reports_dropped=3))
        lines = agent_headline(testing.entry(report=report), T0)
        self.assertTrue(lines[3].startswith("!! delivery spool 0 records"), lines[3])

    def test_fleet_marker(self):
        """
        An agent whose spool dropped anything has the count in the C{lost}
        column; the others have it blank.
        """
        view = testing.view()
        lossy = attrs.evolve(view.agents[0], summary=AgentSummary(spool_dropped=1500))
        header, rows, _records = render(FLEET, [lossy, view.agents[1]], "", fleet_search_text)
        start = header.index(" lost")
        self.assertEqual([row[start:start + 5] for row in rows], ["1.50k", "     "])
