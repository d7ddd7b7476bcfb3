"""
Tests for the history screen's pure logic: L{loopy.ui.timerange} (the
range and how the keys move it), L{loopy.ui.history} (sparklines, the
screen's lines, the ``--json --history`` document) and the screen's
L{HistoryLoader}.
"""

from __future__ import annotations

import calendar
import json
import time

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from loopy.errors import HistoryError
from loopy.history import AgentHistory, DnsName, History, HistoryQuery, Peaks, SeriesPoint
from loopy.model import Conversation, HostTraffic, IntervalCounts
from loopy import testing
from loopy.testing import T0
from loopy.ui import history as hv
from loopy.ui.historyform import HistoryLoader
from loopy.ui.timerange import MAX_SPAN, MIN_SPAN, TimeRange, parse_when, span_text

UTC = time.gmtime


def point(ts: float, bytes_in: int = 0, step: float = 1.0, interval: float = 1.0,
          **counts) -> SeriesPoint:
    return SeriesPoint(ts=ts, step=step, epoch=7, seq=int(ts - T0 + 100), reports=1,
                       interval=interval, counts=IntervalCounts(bytes_in=bytes_in, **counts))


def agent_history(agent_id: str = "agent-a", hostname: str = "host-a",
                  points=None) -> AgentHistory:
    """
    Ten seconds of one agent: 1000 octets in a second, 125000 (1 Mb/s) in
    the fifth; two talkers, a conversation, two DNS names, an alert.
    """
    if points is None:
        points = tuple(point(T0 - 10 + i, 125_000 if i == 4 else 1000, packets_in=10,
                             tcp_syn=1 if i == 2 else 0, dns_queries=2, dns_nxdomain=0)
                       for i in range(10))
    totals = hv.sum_counts(p.counts for p in points)
    return AgentHistory(
        agent_id=agent_id, hostname=hostname, tier="1s", step=1.0, points=points,
        totals=totals,
        talkers=(HostTraffic("10.0.0.2", 5, 600, 7, 130_000),
                 HostTraffic("10.0.0.9", 1, 60, 1, 60)),
        conversations=(Conversation("10.0.0.1", "10.0.0.2", 5, 600, 7, 130_000),),
        dns_names=(DnsName("www.loopy.test", "A", "NOERROR", "10.0.0.1", 12),
                   DnsName("nx.loopy.test", "A", "NXDOMAIN", "10.0.0.1", 3)),
        alerts=(testing.alert(agent_id, ts=T0 - 5),),
    )


def sample_history(agents=None) -> History:
    """
    A hub's answer for the ten seconds before L{T0}: agent-a, agent-b
    (the same shape), and the fleet's sum.
    """
    if agents is None:
        agents = (agent_history(), agent_history("agent-b", "host-b"))
    fleet = tuple(
        SeriesPoint(ts=p.ts, step=1.0, reports=len(agents), interval=float(len(agents)),
                    counts=hv.sum_counts(a.points[i].counts for a in agents))
        for i, p in enumerate(agents[0].points)) if agents else ()
    return History(hub="hub-a", now=T0, since=T0 - 10, until=T0, agents=agents, fleet=fleet)


class ParseWhenTests(SynchronousTestCase):
    def test_relative(self):
        for text, seconds in [("10m", 600), ("2h", 7200), ("7d", 7 * 86400),
                              ("1w", 604800), ("90s", 90), ("-5m", 300), ("1.5h", 5400),
                              (" 3 m ", 180), ("2H", 7200)]:
            self.assertEqual(parse_when(text, T0), T0 - seconds, text)

    def test_now(self):
        self.assertEqual(parse_when("now", T0), T0)
        self.assertEqual(parse_when(" NOW", T0), T0)

    def test_iso_local(self):
        """
        ISO dates and times are local time, as date(1) reads them (here
        UTC, by the mktime given).
        """
        utc = calendar.timegm
        expected = calendar.timegm((2026, 11, 21, 10, 0, 0, 0, 0, 0))
        for text, offset in [("2026-11-21T10:00", 0), ("2026-11-21 10:00", 0),
                             ("2026-11-21T10:00:30", 30), ("2026-11-21 10:00:30.5", 30.5),
                             ("2026-11-21", -36000)]:
            self.assertEqual(parse_when(text, T0, mktime=utc), expected + offset, text)

    def test_iso_local_default(self):
        """
        Without a mktime given, the local time zone: a round trip through
        time.localtime gives the same wall clock.
        """
        ts = parse_when("2026-11-21 10:00", T0)
        self.assertEqual(time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)),
                         "2026-11-21 10:00")

    def test_iso_offset(self):
        self.assertEqual(parse_when("2026-11-21T10:00+01:00", T0),
                         calendar.timegm((2026, 11, 21, 9, 0, 0, 0, 0, 0)))
        self.assertEqual(parse_when("2026-11-21T10:00Z", T0),
                         calendar.timegm((2026, 11, 21, 10, 0, 0, 0, 0, 0)))

    def test_epoch(self):
        self.assertEqual(parse_when("1700000000", 0), 1_700_000_000.0)
        self.assertEqual(parse_when("1700000000.25", 0), 1_700_000_000.25)

    def test_small_number(self):
        """
        A small bare number is more likely a relative time without its
        unit than a time in 1970: the error says so.
        """
        error = self.assertRaises(ValueError, parse_when, "10", T0)
        self.assertEqual(str(error), "cannot read time '10': give a unit (10m, 10h …) or "
                                     "seconds since the epoch")

    def test_garbage(self):
        for text in ["", "yesterday", "10 minutes", "10y", "2026-13-01", "12:00", "nan", "-"]:
            error = self.assertRaises(ValueError, parse_when, text, T0)
            self.assertIn(f"cannot read time {text!r}", str(error))
        error = self.assertRaises(ValueError, parse_when, "soon", T0)
        self.assertIn("give 10m, 2h, 7d, 1w, 90s (ago), now, 2026-11-21T10:00[:SS]", str(error))


class TimeRangeTests(SynchronousTestCase):
    def test_span_text(self):
        self.assertEqual([span_text(s) for s in [45, 90, 1800, 3600, 5400, 86400, 604800]],
                         ["45s", "1.5m", "30m", "1h", "1.5h", "1d", "7d"])

    def test_last(self):
        r = TimeRange.last(3600)
        self.assertTrue(r.live)
        self.assertEqual(r.bounds(T0), (T0 - 3600, T0))
        self.assertEqual(r.query(T0), HistoryQuery(since=T0 - 3600, until=None))
        self.assertEqual(r.query(T0, "agent-a", max_points=60, top=5),
                         HistoryQuery(since=T0 - 3600, until=None, agent_id="agent-a",
                                      max_points=60, top=5))
        self.assertEqual(TimeRange.last(1).span, MIN_SPAN)
        self.assertEqual(TimeRange.last(10 * MAX_SPAN).span, MAX_SPAN)

    def test_between(self):
        r = TimeRange.between(T0 - 7200, T0 - 3600, T0)
        self.assertEqual((r.span, r.until, r.live), (3600, T0 - 3600, False))
        self.assertEqual(r.query(T0), HistoryQuery(since=T0 - 7200, until=T0 - 3600))
        # An end at or after now follows now.
        self.assertEqual(TimeRange.between(T0 - 600, T0, T0), TimeRange(600))
        self.assertEqual(TimeRange.between(T0 - 600, T0 + 50, T0), TimeRange(600))

    def test_between_bad(self):
        for since, until in [(T0, T0 - 1), (T0, T0), (T0 + 10, T0 + 20)]:
            error = self.assertRaises(ValueError, TimeRange.between, since, until, T0)
            self.assertEqual(str(error), "the start must be before the end (and before now)")
        self.assertRaises(ValueError, TimeRange.between, float("nan"), T0, T0)

    def test_earlier_later(self):
        """
        C{[} and C{]} move by half the span; moving later stops at now, and
        the range then follows now again.
        """
        r = TimeRange.last(3600).earlier(T0)
        self.assertEqual(r, TimeRange(3600, T0 - 1800))
        r = r.earlier(T0)
        self.assertEqual(r.bounds(T0), (T0 - 7200, T0 - 3600))
        r = r.later(T0)
        self.assertEqual(r, TimeRange(3600, T0 - 1800))
        self.assertEqual(r.later(T0), TimeRange(3600))
        self.assertEqual(TimeRange(3600, T0 - 100).later(T0), TimeRange(3600))
        self.assertEqual(TimeRange.last(3600).later(T0), TimeRange(3600))

    def test_later_snaps_to_now(self):
        """
        C{[} and, a few seconds later, C{]}: the range ends a few seconds
        before now, so it follows now again; a range ending more than a
        quarter of its span before now stays put.
        """
        back = TimeRange.last(3600).earlier(T0)
        self.assertEqual(back.later(T0 + 5), TimeRange(3600))
        self.assertEqual(TimeRange(3600, T0 - 2701).later(T0), TimeRange(3600, T0 - 901))

    def test_zoom_fixed(self):
        """
        A fixed range zooms around its middle.
        """
        r = TimeRange(3600, T0 - 7200)  # middle T0 - 9000
        zoomed = r.zoom_in(T0)
        self.assertEqual(zoomed.bounds(T0), (T0 - 9900, T0 - 8100))
        self.assertEqual(zoomed.zoom_out(T0), r)
        self.assertEqual(r.zoom_out(T0).bounds(T0), (T0 - 12600, T0 - 5400))

    def test_zoom_never_past_now(self):
        """
        Zooming out a range near now would end after now: it ends now
        instead (and follows it).
        """
        r = TimeRange(3600, T0 - 600)
        self.assertEqual(r.zoom_out(T0), TimeRange(7200))

    def test_zoom_live(self):
        """
        A range that follows now keeps following it: zooming in keeps its
        newest half.
        """
        self.assertEqual(TimeRange.last(3600).zoom_in(T0), TimeRange(1800))
        self.assertEqual(TimeRange.last(3600).zoom_out(T0), TimeRange(7200))

    def test_zoom_bounds(self):
        self.assertEqual(TimeRange.last(MIN_SPAN).zoom_in(T0).span, MIN_SPAN)
        self.assertEqual(TimeRange.last(MAX_SPAN).zoom_out(T0).span, MAX_SPAN)

    def test_label(self):
        self.assertEqual(TimeRange.last(86400).label(T0), "last 1d (until now)")
        self.assertEqual(TimeRange(5400, T0).label(T0 + 99, UTC),
                         "2023-11-14 20:43:20 → 2023-11-14 22:13:20 (1.5h)")


class SparklineTests(SynchronousTestCase):
    def test_scale(self):
        self.assertEqual(hv.sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8), "▁▂▃▄▅▆▇█")
        self.assertEqual(hv.sparkline([0, 0.001, 100], 3), "▁▂█")

    def test_all_zeros(self):
        """
        A quiet series is a row of the lowest block, not blank.
        """
        self.assertEqual(hv.sparkline([0, 0, 0], 3), "▁▁▁")

    def test_missing(self):
        self.assertEqual(hv.sparkline([None, 4, None, float("nan"), 2], 5), " █  ▅")
        self.assertEqual(hv.sparkline([], 4), "    ")
        self.assertEqual(hv.sparkline([1, 2], 0), "")

    def test_resample_max(self):
        """
        More values than columns: each column shows the highest of its
        share, so a one-value spike survives.
        """
        values = [1] * 100
        values[37] = 50
        line = hv.sparkline(values, 10)
        self.assertEqual(len(line), 10)
        self.assertEqual(line, "▂▂▂█▂▂▂▂▂▂")

    def test_stretch(self):
        self.assertEqual(hv.sparkline([0, 8], 6), "▁▁▁███")

    def test_negative(self):
        self.assertEqual(hv.sparkline([-5, 5], 2), "▁█")

    def test_chart_line(self):
        line = hv.chart_line("bits/s in", [0, 1_200_000, None, 600_000], "b", width=40)
        self.assertEqual(line, "bits/s in     1.20Mb " + "▁▁▁▁▁█████     ▅▅▅▅")
        self.assertEqual(len(line), 40)
        self.assertEqual(hv.chart_line("drops/s", [0, 1 / 60], width=23), "drops/s         0.02 ▁█")
        self.assertEqual(hv.chart_line("drops/s", [None, None], width=30),
                         "drops/s            - " + " " * 9)


class ColumnsTests(SynchronousTestCase):
    def test_one_point_per_column(self):
        points = [point(T0 + i, i) for i in range(4)]
        self.assertEqual(hv.columns(points, T0, T0 + 4, 4, lambda p: p.counts.bytes_in),
                         [0, 1, 2, 3])

    def test_gap(self):
        points = [point(T0, 5), point(T0 + 3, 6)]
        self.assertEqual(hv.columns(points, T0, T0 + 4, 4, lambda p: p.counts.bytes_in),
                         [5, None, None, 6])

    def test_wide_bucket(self):
        """
        A coarse point covers every column its bucket overlaps.
        """
        points = [point(T0 + 60, 9, step=60)]
        self.assertEqual(hv.columns(points, T0, T0 + 240, 8, lambda p: p.counts.bytes_in),
                         [None, None, 9, 9, None, None, None, None])

    def test_outside(self):
        points = [point(T0 - 1, 1), point(T0 + 4, 2), point(T0 - 30, 3, step=60)]
        self.assertEqual(hv.columns(points, T0, T0 + 4, 2, lambda p: p.counts.bytes_in),
                         [3, 3])
        self.assertEqual(hv.columns(points, T0, T0, 2, lambda p: 1), [None, None])

    def test_per_second(self):
        p = point(T0, 1000, step=60, interval=30.0)
        self.assertEqual(hv.per_second(lambda c: c.bytes_in)(p), 1000 / 30)
        self.assertEqual(hv.per_second(lambda c: c.bytes_in, fleet=True)(p), 1000 / 60)
        idle = point(T0, 1000, step=60, interval=0.0)
        self.assertEqual(hv.per_second(lambda c: c.bytes_in)(idle), 1000 / 60)
        self.assertIsNone(hv.per_second(lambda c: c.bytes_in)(point(T0, 1, step=0,
                                                                     interval=0)))


class ScreenTests(SynchronousTestCase):
    def test_agent(self):
        history = sample_history()
        lines = hv.history_lines(history, "agent-a", width=80, localtime=UTC)
        self.assertEqual(lines[0], "agent-a (host-a) · 10 points of 1s (tier 1s)")
        charts = lines[1:10]
        self.assertEqual([c[:12].strip() for c in charts], [c[0] for c in hv.CHARTS])
        self.assertTrue(all(len(c) == 80 for c in charts), [len(c) for c in charts])
        # 125000 octets in the fifth second: 1 Mb/s at its peak.
        self.assertEqual(charts[0][:21], "bits/s in     1.00Mb ")
        self.assertEqual(charts[0][21:], "▂" * 23 + "█" * 7 + "▂" * 29)
        self.assertEqual(charts[2][:21], "packets/s         10 ")
        self.assertEqual(set(charts[2][21:]), {"█"})
        self.assertEqual(charts[3][21:].index("█"), 11)  # the syn, third second
        self.assertEqual(charts[8][:21], "drops/s            0 ")
        self.assertEqual(lines[10], " " * 21 + "22:13:10 " + "─" * 41 + " 22:13:20")
        self.assertEqual(lines[11:13], [
            "totals  in 131kB out 0B  packets 100  kernel drops 0",
            "        tcp syn 1 est 0 rst 0  dns 20 nxdomain 0 servfail 0"])
        text = "\n".join(lines)
        for needle in ["top talkers (2)", "10.0.0.2", "conversations (1)", "10.0.0.1",
                       "DNS names (2)", "www.loopy.test", "NXDOMAIN", "alerts (1)",
                       "port_scan", "22:13:15"]:
            self.assertIn(needle, text)
        self.assertTrue(all(len(line) <= 80 for line in lines),
                        [line for line in lines if len(line) > 80])

    def test_filter(self):
        lines = hv.history_lines(sample_history(), "agent-a", "nx.", localtime=UTC)
        text = "\n".join(lines)
        self.assertIn("DNS names (1)", text)
        self.assertIn("nx.loopy.test", text)
        self.assertNotIn("www.loopy.test", text)
        self.assertIn("top talkers (0)", text)

    def test_fleet(self):
        lines = hv.history_lines(sample_history(), None, width=100, localtime=UTC)
        self.assertEqual(lines[0], "fleet · 2 agents · 10 points of 1s")
        self.assertEqual(len(lines[1]), 100)
        # The fleet's rate is over each bucket (1 s), not the sum of the
        # agents' intervals: twice one agent's peak.
        self.assertEqual(lines[1][:21], "bits/s in     2.00Mb ")
        self.assertEqual(lines[11], "totals  in 262kB out 0B  packets 200  kernel drops 0")
        text = "\n".join(lines)
        self.assertIn("agents (2)", text)
        self.assertIn("agent-b          host-b       1s      131kB", text)
        # Talkers merged by address across agents.
        self.assertIn("top talkers (2)", text)
        talkers = lines.index("top talkers (2)")
        self.assertEqual(lines[talkers + 2].split(), ["10.0.0.2", "1.17kB", "254kB", "24"])
        self.assertIn("alerts (2)", text)

    def test_nothing(self):
        self.assertEqual(hv.history_lines(None), ["(asking the hub…)"])
        self.assertEqual(hv.history_lines(sample_history(), "agent-z"),
                         ["(no history of agent-z in this range)"])
        empty = hv.history_lines(sample_history(agents=()), None, localtime=UTC)
        self.assertIn("  (no agent has history in this range)", empty)
        self.assertTrue(empty[1].startswith("bits/s in          - "))

    def test_axis_days(self):
        self.assertEqual(hv.axis(T0 - 7 * 86400, T0, 30, UTC), "11-07 22:13 ────── 11-14 22:13")
        self.assertEqual(hv.axis(T0, T0 + 1, 10, UTC), "22:13:20")


class MergeTests(SynchronousTestCase):
    def test_sum_counts(self):
        self.assertEqual(hv.sum_counts([IntervalCounts(frames=1, dns_queries=2),
                                        IntervalCounts(frames=3)]),
                         IntervalCounts(frames=4, dns_queries=2))
        self.assertEqual(hv.sum_counts([]), IntervalCounts())

    def test_merge(self):
        a = agent_history()
        b = agent_history("agent-b")
        self.assertEqual(hv.merge_talkers([a, b])[0],
                         HostTraffic("10.0.0.2", 10, 1200, 14, 260_000))
        self.assertEqual(hv.merge_conversations([a, b]),
                         [Conversation("10.0.0.1", "10.0.0.2", 10, 1200, 14, 260_000)])
        self.assertEqual([(q.qname, q.count) for q in hv.merge_dns_names([a, b])],
                         [("www.loopy.test", 24), ("nx.loopy.test", 6)])


class JsonTests(SynchronousTestCase):
    def test_document(self):
        history = sample_history()
        doc = hv.history_json(history)
        self.assertEqual(json.loads(json.dumps(doc)), doc)
        self.assertEqual(sorted(doc), ["agents", "fleet", "hub", "now", "since", "until"])
        self.assertEqual((doc["hub"], doc["since"], doc["until"]), ("hub-a", T0 - 10, T0))
        agent = doc["agents"][0]
        self.assertEqual(sorted(agent),
                         ["agent_id", "alerts", "connections", "conversations", "dns_names",
                          "hostname", "series", "step", "talkers", "tier", "totals"])
        first = agent["series"][0]
        self.assertEqual(
            {k: first[k] for k in ["ts", "step", "epoch", "seq", "reports", "interval",
                                   "bytes_in", "packets_in", "kernel_drops", "tcp_syn",
                                   "dns_queries", "dns_nxdomain"]},
            {"ts": T0 - 10, "step": 1.0, "epoch": 7, "seq": 90, "reports": 1,
             "interval": 1.0, "bytes_in": 1000, "packets_in": 10, "kernel_drops": 0,
             "tcp_syn": 0, "dns_queries": 2, "dns_nxdomain": 0})
        self.assertEqual(first["peaks"], {"tcp_active": 0, "tcp_half_open": 0,
                                          "dns_pending": 0, "hosts_tracked": 0,
                                          "cpu_percent": 0.0, "rss_bytes": 0,
                                          "drops_per_second": 0.0})
        self.assertEqual(len(agent["series"]), 10)
        self.assertEqual(agent["totals"]["bytes_in"], 9 * 1000 + 125_000)
        self.assertEqual(agent["dns_names"][0], {"qname": "www.loopy.test", "qtype": "A",
                                                 "rcode": "NOERROR", "client": "10.0.0.1",
                                                 "count": 12})
        self.assertEqual(agent["talkers"][0]["addr"], "10.0.0.2")
        self.assertEqual(agent["alerts"][0]["kind"], "port_scan")
        self.assertEqual([p["bytes_in"] for p in doc["fleet"]][3:6], [2000, 250_000, 2000])
        self.assertEqual(doc["fleet"][0]["reports"], 2)

    def test_peaks(self):
        p = SeriesPoint(ts=T0, step=60, peaks=Peaks(tcp_active=9, cpu_percent=3.5))
        doc = hv.point_json(p)
        self.assertEqual((doc["peaks"]["tcp_active"], doc["peaks"]["cpu_percent"]), (9, 3.5))
        self.assertEqual(doc["frames"], 0)


class FakeClient:
    """
    A L{HubClient}'s C{get_history}: each question waits on a Deferred the
    test fires.
    """

    def __init__(self):
        self.questions: list[tuple[HistoryQuery, Deferred]] = []

    def get_history(self, query):
        d = Deferred()
        self.questions.append((query, d))
        return d


class HistoryLoaderTests(SynchronousTestCase):
    def setUp(self):
        self.client = FakeClient()
        self.loader = HistoryLoader(self.client)

    def test_answer(self):
        q = HistoryQuery(since=T0 - 10)
        self.loader.ask("k1", q)
        self.assertEqual((self.loader.in_flight, self.loader.latest), ("k1", (None, None, "")))
        self.client.questions[0][1].callback(sample_history())
        self.assertEqual(self.loader.latest, ("k1", sample_history(), ""))
        self.assertIsNone(self.loader.in_flight)
        self.assertEqual(self.loader.asked, 1)

    def test_one_in_flight(self):
        """
        Questions asked while one is in flight wait; only the newest of
        them is sent once the answer comes, the others counted.
        """
        for i in range(4):
            self.loader.ask(f"k{i}", HistoryQuery(since=T0 - i))
        self.assertEqual(len(self.client.questions), 1)
        self.client.questions[0][1].callback(sample_history())
        self.assertEqual(self.loader.latest[0], "k0")
        self.assertEqual([q.since for q, _d in self.client.questions], [T0, T0 - 3])
        self.assertEqual((self.loader.in_flight, self.loader.superseded), ("k3", 2))

    def test_failure_keeps_last_answer(self):
        self.loader.ask("k1", HistoryQuery(since=T0 - 10))
        self.client.questions[0][1].callback(sample_history())
        self.loader.ask("k2", HistoryQuery(since=T0 - 20))
        self.client.questions[1][1].errback(HistoryError("history store failed: disk full"))
        self.assertEqual(self.loader.latest,
                         ("k2", sample_history(), "history store failed: disk full"))
        self.flushLoggedErrors()

    def test_synchronous_client(self):
        """
        A client answering at once (or failing at once, with no hub
        linked) leaves nothing in flight.
        """
        loader = HistoryLoader(type("C", (), {"get_history": lambda self, q: succeed(1)})())
        loader.ask("k", HistoryQuery(since=T0))
        self.assertEqual((loader.latest, loader.in_flight), (("k", 1, ""), None))
        failing = HistoryLoader(type("C", (), {
            "get_history": lambda self, q: fail(HistoryError("no"))})())
        failing.ask("k", HistoryQuery(since=T0))
        self.assertEqual(failing.latest, ("k", None, "no"))
