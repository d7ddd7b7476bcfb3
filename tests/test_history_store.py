"""
Tests for the hub's history (L{loopy.hub.history}, L{loopy.hub.sqlhistory}
and its schema and reads), on real SQLite files in each test's temporary
directory, through L{SyncRunner} (no threads) and once through the adbapi
pool.
"""

from __future__ import annotations

import os
import random
import sqlite3

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from loopy import testing
from loopy.analysis import tcp as tcp_analyser
from loopy.errors import ConfigError, HistoryError, WireError
from loopy.history import HistoryQuery, SyncRanges
from loopy.hub import history
from loopy.hub.history import DEFAULT_TIERS, Tier, extract, parse_tiers
from loopy.hub.sqlhistory import FILE_NAME, open_history, open_sync
from loopy.hub.sqlquery import choose_tier
from loopy.hub.sqlschema import PRUNE_GRACE
from loopy.model import Conversation, DnsQuery, HostTraffic, TcpConnection
from loopy.wire import to_json_value

#: An hour boundary (a multiple of 3600), the tests' time origin.
B = 1_699_999_200.0
EPOCH = 1_700_000_000_000_000
SMALL_TIERS = parse_tiers("1s:10m,1m:2h,1h:2d")


def value(agent: str = "agent-a", seq: int = 1, ts: float = B, epoch: int = EPOCH,
          counts=None, talkers=(), conversations=(), queries=(), connections=()) -> dict:
    """
    A report's JSON value with the given per-interval lists (interval 1 s).
    """
    v = to_json_value(testing.report(agent_id=agent, seq=seq, epoch=epoch,
                                     hostname=f"host-{agent}"))
    v["ts"] = ts
    v["counts"] = {"frames": 10, "bytes": 1000, "tcp_syn": 1, **(counts or {})}
    ip, tcp, dns = (v["analysers"][name] for name in ("ip", "tcp", "dns"))
    ip["interval_talkers"] = [to_json_value(t) for t in talkers]
    ip["interval_conversations"] = [to_json_value(c) for c in conversations]
    tcp["connections"] = [to_json_value(c) for c in connections]
    dns["queries"] = [to_json_value(q) for q in queries]
    return v


def query_(ts: float, qname: str = "example.com", rcode=None, client: str = "10.0.0.1"):
    return DnsQuery(ts=ts, client=client, sport=5353, server="10.0.0.53", dport=53,
                    transport="udp", id=1, qname=qname, qtype="A", rcode=rcode)


def connection(first: float, last: float, state: str = "established", sport: int = 40000,
               bytes_in: int = 100) -> TcpConnection:
    return TcpConnection(src="10.0.0.1", sport=sport, dst="10.0.0.2", dport=443, state=state,
                         ip_bytes_in=bytes_in, first_seen=first, last_seen=last)


class HeldRunner:
    """
    A runner that holds each interaction until L{release}, then runs it on
    the wrapped runner; or, with C{fail_next}, runs it and raises after it
    (so its writes are rolled back), as a commit failing on a full disk.
    """

    def __init__(self, runner, hold: bool = True):
        self.runner = runner
        self.hold = hold
        self.fail_next = False
        self.held: list = []

    def runInteraction(self, fn, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False

            def boom(txn, *args, **kwargs):
                fn(txn, *args, **kwargs)
                raise sqlite3.OperationalError("database or disk is full")

            return self.runner.runInteraction(boom, *args, **kwargs)
        if not self.hold:
            return self.runner.runInteraction(fn, *args, **kwargs)
        d = Deferred()
        self.held.append((fn, args, kwargs, d))
        return d

    def release(self) -> None:
        held, self.held = self.held, []
        for fn, args, kwargs, d in held:
            self.runner.runInteraction(fn, *args, **kwargs).chainDeferred(d)

    def close(self) -> None:
        self.runner.close()


class TierTests(SynchronousTestCase):
    def test_default(self):
        self.assertEqual(DEFAULT_TIERS, (Tier("1s", 1.0, 6 * 3600.0),
                                         Tier("1m", 60.0, 30 * 86400.0),
                                         Tier("1h", 3600.0, 365 * 86400.0)))

    def test_units(self):
        self.assertEqual([(t.step, t.retention) for t in parse_tiers("10s:90s, 1m:2w")],
                         [(10.0, 90.0), (60.0, 14 * 86400.0)])

    def test_errors(self):
        for text, words in [
            ("", "at least two"),
            ("1s:6h", "at least two"),
            ("1s:6h,1m", "STEP:RETENTION"),
            ("1s:6h,1y:30d", "not a duration"),
            ("1s:6h,1.5m:30d", "not a duration"),
            ("0s:6h,1m:30d", "longer than zero"),
            ("1m:6h,1s:30d", "must be longer than the step"),
            ("1m:6h,1m:30d", "must be longer than the step"),
            ("1m:6h,90s:30d", "whole multiple"),
            ("1m:30s,1h:30d", "shorter than its step"),
            ("1s:6h,1m:1h", "shorter than the retention of the tier before"),
            (",".join(f"{2 ** i}s:1w" for i in range(7)), "at most 6"),
        ]:
            with self.assertRaises(ConfigError, msg=text) as caught:
                parse_tiers(text)
            self.assertIn(words, str(caught.exception), text)

    def test_choose_tier(self):
        """
        The finest tier whose retention covers since and whose buckets in
        the range are at most max_points; else the coarsest.
        """
        now = B + 86400
        self.assertEqual(choose_tier(DEFAULT_TIERS, now - 600, now, now, 720), 0)
        self.assertEqual(choose_tier(DEFAULT_TIERS, now - 3600, now, now, 720), 1)
        self.assertEqual(choose_tier(DEFAULT_TIERS, now - 7 * 3600, now - 7 * 3600 + 60,
                                     now, 720), 1)
        self.assertEqual(choose_tier(DEFAULT_TIERS, now - 40 * 86400, now, now, 720), 2)
        self.assertEqual(choose_tier(DEFAULT_TIERS, now - 900 * 86400, now, now, 720), 2)


class ExtractTests(SynchronousTestCase):
    def test_counts_and_peaks(self):
        v = value(counts={"kernel_drops": 3, "dns_queries": 2.0})
        row = extract(v)
        self.assertEqual((row.agent_id, row.hostname, row.epoch, row.seq, row.ts, row.interval),
                         ("agent-a", "host-agent-a", EPOCH, 1, B, 1.0))
        self.assertEqual((row.counts.frames, row.counts.kernel_drops, row.counts.dns_queries,
                          row.counts.malformed), (10, 3, 2, 0))
        self.assertEqual(row.peaks, history.Peaks(tcp_active=1, tcp_half_open=1, dns_pending=0,
                                                  hosts_tracked=2, cpu_percent=1.2,
                                                  rss_bytes=61_000_000, drops_per_second=2.0))

    def test_lists_in_interval(self):
        """
        DNS transactions and connections count in the interval
        ``(ts - interval, ts]``: queries by time, connections first seen
        in it or ended (closed/reset) in it.
        """
        v = value(
            talkers=[HostTraffic(f"10.0.0.{i}", 1, i) for i in range(30)],
            conversations=[Conversation("10.0.0.1", "10.0.0.2", 1, 5)],
            queries=[query_(B - 0.5), query_(B - 0.2), query_(B - 0.1, rcode="NXDOMAIN"),
                     query_(B - 1.0), query_(B + 0.1)],
            connections=[connection(B - 0.5, B - 0.1, sport=1),
                         connection(B - 9, B - 0.3, "closed", sport=2),
                         connection(B - 9, B - 0.3, "reset", sport=3),
                         connection(B - 9, B - 0.3, "established", sport=4),
                         connection(B - 9, B - 2, "closed", sport=5)])
        row = extract(v)
        self.assertEqual(len(row.talkers), history.TOP_TALKERS)
        self.assertEqual(row.talkers[0].addr, "10.0.0.29")
        self.assertEqual(row.conversations, (Conversation("10.0.0.1", "10.0.0.2", 1, 5),))
        self.assertEqual([(d.rcode, d.count) for d in row.dns_names], [("", 2), ("NXDOMAIN", 1)])
        self.assertEqual(sorted(c.sport for c in row.connections), [1, 2, 3])

    def test_ended_states_are_the_analysers(self):
        self.assertEqual(history.ENDED_STATES, (tcp_analyser.CLOSED, tcp_analyser.RESET))

    def test_malformed_parts(self):
        """
        Missing or non-numeric counts count 0; malformed list entries and
        snapshots that are not objects are skipped; no error.
        """
        v = value()
        v["counts"] = {"frames": "many", "bytes": None, "malformed": True,
                       "kernel_drops": -4, "packets_in": float("nan")}
        v["analysers"]["ip"]["interval_talkers"] = [1, {"addr": 5}, {"addr": "10.0.0.9",
                                                                     "bytes_sent": "x"}]
        v["analysers"]["tcp"] = "garbage"
        v["analysers"]["dns"]["queries"] = [{"ts": "now"}, None, {"ts": B, "qname": 3}]
        v["capture"] = []
        row = extract(v)
        self.assertEqual(attrs.astuple(row.counts), (0,) * len(history.COUNT_FIELDS))
        self.assertEqual(row.talkers, (HostTraffic("10.0.0.9"),))
        self.assertEqual((row.dns_names, row.connections, row.peaks.tcp_active,
                          row.peaks.cpu_percent), ((), (), 0, 0.0))
        del v["counts"]
        self.assertEqual(extract(v).counts.frames, 0)

    def test_identity(self):
        for name, bad in [("agent_id", 7), ("hostname", None), ("epoch", -1), ("epoch", True),
                          ("seq", "1"), ("ts", float("inf")), ("interval", None)]:
            v = value()
            v[name] = bad
            self.assertRaises(WireError, extract, v)
            del v[name]
            self.assertRaises(WireError, extract, v)
        self.assertRaises(WireError, extract, [])


class StoreTestMixin:
    tiers = DEFAULT_TIERS

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(B)

    def store(self, name: str = "hub-a", **options):
        self.directory = self.mktemp()
        store = open_sync(self.directory, name, self.tiers, self.clock, **options)
        self.addCleanup(store.close)
        return store

    def write(self, store, *values) -> list:
        return [self.successResultOf(store.add_report(v)) for v in values]

    def ask(self, store, since, until=None, now=None, **options):
        return self.successResultOf(store.query(
            HistoryQuery(since=since, until=until, **options),
            self.clock.seconds() if now is None else now))


class WriteTests(StoreTestMixin, SynchronousTestCase):
    def test_duplicates_stored_once(self):
        """
        The same report twice, or again as a row from a peer, is stored
        once; the answers say which was new, the counters count both.
        """
        store = self.store()
        v = value()
        self.assertEqual(self.write(store, v, v), [True, False])
        self.assertEqual(self.successResultOf(store.add_rows([extract(v), extract(
            value(seq=2, ts=B + 1))])), 1)
        stats = store.stats()
        self.assertEqual((stats["reports"], stats["duplicates"], stats["pending"]), (2, 2, 0))
        self.assertGreater(stats["bytes"], 0)
        answer = self.ask(store, B - 10, B + 10, now=B + 10)
        self.assertEqual([p.seq for p in answer.agents[0].points], [1, 2])
        self.assertEqual(answer.agents[0].totals.frames, 20)

    def test_coarse_tiers_sum(self):
        """
        Reports fold into 1 m and 1 h buckets: counts summed, peaks maxed,
        the newest (epoch, seq) kept, whatever the order.
        """
        store = self.store()
        v3 = value(seq=3, ts=B + 70, counts={"frames": 5})
        v3["capture"]["cpu_percent"] = 50.0
        self.write(store, v3, value(seq=1, ts=B + 1), value(seq=2, ts=B + 59),
                   value(seq=1, epoch=EPOCH - 1, ts=B + 30))
        now = B + 7 * 3600  # past the 1 s tier's retention
        minute = self.ask(store, B, B + 120, now=now)
        (agent,) = minute.agents
        self.assertEqual((agent.tier, agent.step), ("1m", 60.0))
        self.assertEqual([(p.ts, p.reports, p.counts.frames, p.seq, p.epoch, p.interval)
                          for p in agent.points],
                         [(B, 3, 30, 2, EPOCH, 3.0), (B + 60, 1, 5, 3, EPOCH, 1.0)])
        self.assertEqual([p.peaks.cpu_percent for p in agent.points], [1.2, 50.0])
        hour = self.ask(store, B, now=B + 40 * 86400)
        self.assertEqual([(p.tier, [(q.ts, q.reports, q.counts.frames) for q in p.points])
                          for p in hour.agents], [("1h", [(B, 4, 35)])])

    def test_order_independence(self):
        """
        The same reports written in another order, some twice, give the
        same answers at every tier.
        """
        values = [value(agent=f"agent-{a}", seq=s, ts=B + s * 7 + a,
                        counts={"frames": s * a + 1},
                        talkers=[HostTraffic(f"10.0.{a}.{s % 4}", 1, 10 * s)],
                        queries=[query_(B + s * 7 + a - 0.5, f"n{s % 3}.example")],
                        connections=[connection(B + s * 7 + a - 0.5, B + s * 7 + a,
                                                sport=s)])
                  for a in range(3) for s in range(1, 40)]
        first, second = self.store(), self.store("hub-b")
        self.write(first, *values)
        shuffled = values + values[::5]
        random.Random(4).shuffle(shuffled)
        self.write(second, *shuffled)
        for since, now in [(B, B + 600), (B, B + 7 * 3600), (B, B + 40 * 86400)]:
            a = self.ask(first, since, now=now)
            b = self.ask(second, since, now=now)
            self.assertEqual(attrs.evolve(a, hub=""), attrs.evolve(b, hub=""))
            self.assertEqual(len(a.agents), 3)
            self.assertTrue(a.agents[0].talkers and a.agents[0].dns_names)

    def test_top_lists_over_range(self):
        store = self.store()
        self.write(store, *[value(seq=s, ts=B + 30 * s, talkers=[
            HostTraffic("10.0.0.1", 1, 100), HostTraffic(f"10.0.1.{s}", 1, 60)],
            conversations=[Conversation("10.0.0.1", "10.0.0.2", 1, 10)],
            queries=[query_(B + 30 * s - 0.5, "a.example"),
                     query_(B + 30 * s - 0.4, f"b{s % 2}.example")],
            connections=[connection(B + 30 * s - 0.5, B + 30 * s, sport=s)])
            for s in range(1, 7)])
        # Points at 1 s; top lists from the 1 m buckets B+60 and B+120
        # (reports 2 to 5); connections first seen in the range.
        answer = self.ask(store, B + 60, B + 180, now=B + 200, top=2)
        (agent,) = answer.agents
        self.assertEqual(agent.talkers, (HostTraffic("10.0.0.1", 4, 400),
                                         HostTraffic("10.0.1.2", 1, 60)))
        self.assertEqual(agent.conversations, (Conversation("10.0.0.1", "10.0.0.2", 4, 40),))
        self.assertEqual([(d.qname, d.count) for d in agent.dns_names],
                         [("a.example", 4), ("b0.example", 2)])
        self.assertEqual([c.sport for c in agent.connections], [6, 5, 4, 3])
        self.assertEqual([p.seq for p in agent.points], [2, 3, 4, 5])

    def test_alert_newest_revision(self):
        store = self.store()
        results = [self.successResultOf(store.add_alert(testing.alert(revision=r, ts=B)))
                   for r in (1, 0, 1, 2)]
        self.assertEqual(results, [True, False, False, True])
        self.successResultOf(store.add_alert(testing.alert(seq=2, ts=B + 5)))
        self.successResultOf(store.add_alert(testing.alert(seq=3, ts=B - 5)))
        (agent,) = self.ask(store, B, B + 10).agents
        self.assertEqual([(a.seq, a.revision) for a in agent.alerts], [(2, 0), (1, 2)])
        self.assertEqual((agent.hostname, agent.points), ("agent-a", ()))
        self.assertEqual(store.stats()["alerts"], 4)


class QueryTests(StoreTestMixin, SynchronousTestCase):
    def test_points_merged(self):
        """
        More buckets than max_points: adjacent ones merge into wider ones.
        """
        store = self.store()
        self.write(store, *[value(seq=s, ts=B + s) for s in range(100)])
        (agent,) = self.ask(store, B, B + 100, now=B + 100, max_points=10).agents
        self.assertEqual((agent.tier, agent.step), ("1m", 60.0))
        self.assertEqual([(p.ts, p.reports) for p in agent.points], [(B, 60), (B + 60, 40)])
        # The coarsest tier has 72 buckets in 3 days: merged 8 by 8.
        self.write(store, *[value(seq=1000 + i, ts=B + 7200 * i) for i in range(36)])
        (agent,) = self.ask(store, B, B + 3 * 86400, now=B + 3 * 86400, max_points=10).agents
        self.assertEqual((agent.tier, agent.step), ("1h", 8 * 3600.0))
        self.assertEqual(sum(p.reports for p in agent.points), 136)
        self.assertLessEqual(len(agent.points), 10)
        self.assertEqual({p.ts % (8 * 3600) for p in agent.points}, {0.0})
        self.assertEqual(agent.points[-1].seq, 1035)

    def test_fleet_and_agent(self):
        store = self.store()
        self.write(store, value("a", ts=B + 1), value("b", ts=B + 1.5), value("b", 2, B + 2.2))
        everyone = self.ask(store, B, B + 10, now=B + 10)
        self.assertEqual([a.agent_id for a in everyone.agents], ["a", "b"])
        self.assertEqual([(p.ts, p.reports, p.counts.frames, p.peaks.tcp_active)
                          for p in everyone.fleet], [(B + 1, 2, 20, 2), (B + 2, 1, 10, 1)])
        one = self.ask(store, B, B + 10, now=B + 10, agent_id="b")
        self.assertEqual(([a.agent_id for a in one.agents], one.fleet), (["b"], ()))
        self.assertEqual(one.until, B + 10)

    def test_bad_ranges(self):
        store = self.store()
        for q in [HistoryQuery(since=B, until=B), HistoryQuery(since=B + 1, until=B),
                  HistoryQuery(since=float("nan")), HistoryQuery(since=B - 10, max_points=0)]:
            self.failureResultOf(store.query(q, B), HistoryError)
        self.failureResultOf(store.query(HistoryQuery(since=B + 5), B), HistoryError)


class ExpireTests(StoreTestMixin, SynchronousTestCase):
    tiers = SMALL_TIERS  # 1s:10m, 1m:2h, 1h:2d

    def counts(self) -> dict:
        connection = sqlite3.connect(os.path.join(self.directory, FILE_NAME))
        try:
            return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("reports", "series_60", "series_3600", "talkers_60",
                              "connections", "alerts")}
        finally:
            connection.close()

    def test_retention_per_tier(self):
        store = self.store()
        self.write(store, *[value(seq=s, ts=B + 60 * s, talkers=[HostTraffic("10.0.0.1", 1, 1)],
                                  connections=[connection(B + 60 * s - 0.5, B + 60 * s)])
                            for s in range(10)])
        self.successResultOf(store.add_alert(testing.alert(ts=B)))
        self.ask(store, B, B + 1)  # folds
        self.assertEqual(self.counts(), {"reports": 10, "series_60": 10, "series_3600": 1,
                                         "talkers_60": 10, "connections": 10, "alerts": 1})
        # 10 min after the 5th report: the 1 s tier keeps the last 5.
        self.assertEqual(self.successResultOf(store.expire(B + 60 * 4 + 600 + 1)), 5)
        self.assertEqual(self.counts()["reports"], 5)
        # 2 h after the 5th minute ended: the 1 m buckets up to it go
        # (series, talkers; connections by the minute they were first seen
        # in, half a second before each report), the hour stays.
        deleted = [5, self.successResultOf(store.expire(B + 300 + 7200))]
        self.assertEqual(self.counts(), {"reports": 0, "series_60": 5, "series_3600": 1,
                                         "talkers_60": 5, "connections": 4, "alerts": 1})
        self.assertEqual(deleted[1], 5 + 5 + 5 + 6)
        deleted.append(self.successResultOf(store.expire(B + 3600 + 2 * 86400)))
        self.assertEqual(self.counts(), dict.fromkeys(self.counts(), 0))
        self.assertEqual(store.stats()["expired"], sum(deleted))

    def test_budget(self):
        store = self.store(expire_budget=3)
        self.write(store, *[value(seq=s, ts=B + s) for s in range(10)])
        self.assertEqual(self.successResultOf(store.expire(B + 3600)), 3)
        self.assertEqual(self.counts()["reports"], 7)

    def test_prune_closed_buckets(self):
        """
        Once a bucket is closed, its detail keeps the top C{keep} rows per
        agent; open buckets keep everything.
        """
        store = self.store(keep=2)
        self.write(store, *[value(seq=s, ts=B + s, talkers=[
            HostTraffic(f"10.0.0.{s}", 1, s)]) for s in range(1, 6)])
        self.write(store, value(seq=100, ts=B + 60, talkers=[HostTraffic("10.0.0.1", 1, 1)]))
        self.ask(store, B, B + 1)
        self.successResultOf(store.expire(B + 60 + PRUNE_GRACE))
        (agent,) = self.ask(store, B, B + 120, now=B + 7200).agents
        self.assertEqual(agent.talkers, (HostTraffic("10.0.0.5", 1, 5),
                                         HostTraffic("10.0.0.4", 1, 4),
                                         HostTraffic("10.0.0.1", 1, 1)))
        self.assertEqual(store.stats()["pruned"], 3)


class SyncTests(StoreTestMixin, SynchronousTestCase):
    def sync(self, puller, peer, since: float = 0.0, budget: int = 1 << 20) -> int:
        """
        Catch C{puller} up from C{peer}; the number of rounds.
        """
        rounds = 0
        while True:
            rounds += 1
            have = self.successResultOf(puller.ranges(since))
            rows, more = self.successResultOf(peer.missing(have, since, budget))
            self.successResultOf(puller.add_rows(rows.rows))
            for alert in rows.alerts:
                self.successResultOf(puller.add_alert(alert))
            if not more:
                return rounds

    def test_round_trip(self):
        """
        Two stores with different holes catch up from each other and then
        hold and answer the same.
        """
        a, b = self.store("a"), self.store("b")

        def v(s):
            return value(seq=s, ts=B + s, talkers=[HostTraffic("10.0.0.1", 1, s)])

        self.write(a, *[v(s) for s in [*range(1, 11), *range(15, 21)]])
        self.write(b, *[v(s) for s in range(5, 13)])
        self.write(b, value("other", 1, B + 3))
        self.successResultOf(a.add_alert(testing.alert(revision=2, ts=B)))
        self.successResultOf(b.add_alert(testing.alert(revision=1, ts=B)))
        self.successResultOf(b.add_alert(testing.alert(seq=2, ts=B)))
        ranges = self.successResultOf(a.ranges(0))
        self.assertEqual([(r.first, r.last) for r in ranges.reports], [(1, 10), (15, 20)])
        self.sync(a, b)
        self.sync(b, a)
        self.assertEqual(self.successResultOf(a.ranges(0)), self.successResultOf(b.ranges(0)))
        self.assertEqual([(r.agent_id, r.first, r.last)
                          for r in self.successResultOf(b.ranges(0)).reports],
                         [("agent-a", 1, 12), ("agent-a", 15, 20), ("other", 1, 1)])
        self.assertEqual(attrs.evolve(self.ask(a, B, B + 30), hub=""),
                         attrs.evolve(self.ask(b, B, B + 30), hub=""))
        self.assertEqual([x.revision for x in self.ask(b, B, B + 30).agents[0].alerts], [0, 2])
        since = self.successResultOf(a.ranges(B + 16))
        self.assertEqual([(r.first, r.last) for r in since.reports], [(16, 20)])

    def test_budget_and_more(self):
        a, b = self.store("a"), self.store("b")
        self.write(a, *[value(seq=s, ts=B + s) for s in range(1, 6)])
        rows, more = self.successResultOf(a.missing(SyncRanges(), 0, 1))
        self.assertEqual(([r.seq for r in rows.rows], more), ([1], True))
        self.assertEqual(self.sync(b, a, budget=1), 5)
        rows, more = self.successResultOf(a.missing(self.successResultOf(b.ranges(0)), 0, 1))
        self.assertEqual((rows.rows, more), ((), False))
        self.failureResultOf(a.missing(SyncRanges(), 0, 0), HistoryError)


class QueueTests(StoreTestMixin, SynchronousTestCase):
    def test_group_commit_and_bound(self):
        """
        One transaction at a time; writes queued meanwhile go together in
        the next; past max_pending a write fails at once and is counted.
        """
        store = self.store(max_pending=2)
        runner = store._runner = HeldRunner(store._runner)
        first = store.add_report(value(seq=1))
        second = store.add_report(value(seq=2, ts=B + 1))
        third = store.add_report(value(seq=3, ts=B + 2))
        self.failureResultOf(store.add_report(value(seq=4, ts=B + 3)), HistoryError)
        self.assertEqual((store.stats()["refused"], store.stats()["pending"], len(runner.held)),
                         (1, 2, 1))
        self.assertNoResult(first)
        runner.release()
        self.assertEqual(self.successResultOf(first), True)
        self.assertNoResult(second)
        self.assertEqual(len(runner.held), 1)
        runner.release()
        self.assertEqual((self.successResultOf(second), self.successResultOf(third)),
                         (True, True))
        self.assertEqual(store.stats()["commits"], 2)
        runner.hold = False

    def test_failed_commit(self):
        """
        A failed commit fails each of its waiters with HistoryError (and
        keeps none of their writes); the next write works.
        """
        store = self.store()
        runner = store._runner = HeldRunner(store._runner, hold=False)
        runner.fail_next = True
        failure = self.failureResultOf(store.add_report(value()), HistoryError)
        self.assertIn("disk is full", str(failure.value))
        self.assertEqual(store.stats()["errors"], 1)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.assertEqual(self.write(store, value(), value()), [True, False])
        self.assertEqual(store.stats()["reports"], 1)
        (agent,) = self.ask(store, B - 10, B + 10, now=B + 10).agents
        self.assertEqual((agent.hostname, len(agent.points)), ("host-agent-a", 1))

    def test_bad_rows_from_peers(self):
        store = self.store()
        good = extract(value())
        bad = attrs.evolve(good, seq=-1)
        self.assertEqual(self.successResultOf(store.add_rows([bad, "x", good])), 1)
        self.assertEqual(store.stats()["rejected"], 2)
        self.failureResultOf(store.add_report({"agent_id": "x"}), WireError)

    def test_recovers_unfolded(self):
        """
        Reports written but not folded into the detail tables when the hub
        stopped are folded when it opens the history again.
        """
        store = self.store(fold_seconds=1e9)
        self.write(store, value(talkers=[HostTraffic("10.0.0.7", 1, 1)]))
        self.assertEqual(store.stats()["unfolded"], 1)
        store._runner.close()  # as if killed
        again = open_sync(self.directory, "hub-a", self.tiers, self.clock)
        self.addCleanup(again.close)
        self.assertEqual(again.stats()["unfolded"], 1)
        (agent,) = self.ask(again, B - 60, B + 60, now=B + 7 * 3600).agents
        self.assertEqual(agent.talkers, (HostTraffic("10.0.0.7", 1, 1),))
        store._closed = succeed(None)  # closed already


class OpenTests(SynchronousTestCase):
    def test_not_a_history(self):
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, FILE_NAME), "wb") as f:
            f.write(b"not sqlite at all" * 100)
        with self.assertRaises(ConfigError) as caught:
            open_sync(directory, "hub", reactor=Clock())
        self.assertIn("not a usable Loopy history", str(caught.exception))

    def test_other_programs_file(self):
        directory = self.mktemp()
        os.makedirs(directory)
        connection = sqlite3.connect(os.path.join(directory, FILE_NAME))
        connection.execute("CREATE TABLE t (x)")
        connection.close()
        with self.assertRaises(ConfigError) as caught:
            open_sync(directory, "hub", reactor=Clock())
        self.assertIn("not a Loopy history", str(caught.exception))

    def test_newer_schema(self):
        directory = self.mktemp()
        open_sync(directory, "hub", reactor=Clock()).close()
        connection = sqlite3.connect(os.path.join(directory, FILE_NAME))
        connection.execute("PRAGMA user_version = 99")
        connection.close()
        with self.assertRaises(ConfigError) as caught:
            open_sync(directory, "hub", reactor=Clock())
        self.assertIn("schema version 99", str(caught.exception))

    def test_not_writable(self):
        directory = self.mktemp()
        with open(directory, "w"):
            pass  # a file where the directory should be
        with self.assertRaises(ConfigError) as caught:
            open_sync(os.path.join(directory, "sub"), "hub", reactor=Clock())
        self.assertIn("cannot make the history directory", str(caught.exception))


class PoolTests(TestCase):
    """
    Through the adbapi pool and its thread, as a hub runs it.
    """

    @inlineCallbacks
    def test_write_and_query(self):
        store = open_history(self.mktemp(), "hub-a", reactor=reactor)
        try:
            self.assertEqual((yield store.add_report(value())), True)
            self.assertEqual((yield store.add_report(value())), False)
            answer = yield store.query(HistoryQuery(since=B - 10, until=B + 10), B + 10)
            self.assertEqual([p.seq for p in answer.agents[0].points], [1])
            self.assertEqual(store.stats()["commits"], 3)
        finally:
            yield store.close()
