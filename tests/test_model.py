"""
Tests for L{loopy.model}: validation, versions and summaries.
"""

from __future__ import annotations

import attrs
from twisted.trial.unittest import SynchronousTestCase

from loopy.model import (
    AgentReport,
    AgentSummary,
    CaptureStats,
    Conversation,
    HostTraffic,
    IntervalCounts,
    IpSnapshot,
    ProtocolCount,
    cumulative_counters,
    interval_counts,
    summarize,
)
from loopy import testing


def _report(**changes) -> AgentReport:
    values = dict(agent_id="a", hostname="h", epoch=5, seq=1, ts=testing.T0, interval=1.0)
    values.update(changes)
    return AgentReport(**values)


class AgentReportTests(SynchronousTestCase):
    def test_negative_seq(self):
        error = self.assertRaises(ValueError, _report, seq=-1)
        self.assertEqual(str(error), "'seq' must be >= 0: -1")

    def test_negative_epoch(self):
        error = self.assertRaises(ValueError, _report, epoch=-1)
        self.assertEqual(str(error), "'epoch' must be >= 0: -1")

    def test_non_integer_seq(self):
        self.assertRaises(TypeError, _report, seq=1.5)
        self.assertRaises(TypeError, _report, seq="1")

    def test_agent_id_text(self):
        self.assertRaises(TypeError, _report, agent_id=b"a")

    def test_zero_allowed(self):
        self.assertEqual(_report(epoch=0, seq=0).version, (0, 0))

    def test_frozen(self):
        report = _report()
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, report, "seq", 2)
        self.assertEqual(attrs.evolve(report, seq=2).seq, 2)

    def test_evolve_validates(self):
        self.assertRaises(ValueError, attrs.evolve, _report(), seq=-3)

    def test_defaults(self):
        report = _report()
        self.assertEqual(report.capture, CaptureStats())
        self.assertEqual(report.analysers, {})

    def test_version(self):
        self.assertEqual(_report(epoch=7, seq=3).version, (7, 3))

    def test_version_order(self):
        """
        Versions order by epoch first, so any report of a later run sorts
        after every report of an earlier one.
        """
        reports = [
            _report(epoch=2, seq=1),
            _report(epoch=1, seq=10),
            _report(epoch=1, seq=2),
            _report(epoch=2, seq=0),
        ]
        ordered = sorted(reports, key=lambda r: r.version)
        self.assertEqual([r.version for r in ordered], [(1, 2), (1, 10), (2, 0), (2, 1)])


class TotalsTests(SynchronousTestCase):
    def test_host_bytes_total(self):
        self.assertEqual(HostTraffic("10.0.0.1", 1, 100, 2, 250).bytes_total, 350)

    def test_conversation_bytes_total(self):
        self.assertEqual(Conversation("a", "b", 1, 100, 2, 250).bytes_total, 350)


class SummarizeTests(SynchronousTestCase):
    def test_records(self):
        self.assertEqual(
            summarize(testing.report()),
            AgentSummary(
                pps_in=12.0,
                pps_out=8.0,
                bps_in=76800.0,
                bps_out=9600.0,
                tcp_active=1,
                dns_qps=0.5,
                frames=200,
                kernel_drops=2,
                malformed=1,
                drops_per_second=2.0,
                drop_ratio=0.0099,
                cpu_percent=1.2,
                rss_bytes=61_000_000,
            ),
        )

    def test_dicts(self):
        """
        Snapshots that arrived as dicts (an analyser this process does not
        know by that name) are read by key; missing keys read as zero.
        """
        report = _report(
            capture=CaptureStats(frames=9, kernel_drops=4, malformed=3),
            analysers={
                "ip": {"pps_in": 1.5, "bps_out": 800.0},
                "tcp": {"active": 7},
                "dns": {"qps": 2.25},
            },
        )
        self.assertEqual(
            summarize(report),
            AgentSummary(
                pps_in=1.5,
                bps_out=800.0,
                tcp_active=7,
                dns_qps=2.25,
                frames=9,
                kernel_drops=4,
                malformed=3,
            ),
        )

    def test_no_analysers(self):
        report = _report(capture=CaptureStats(frames=5))
        self.assertEqual(summarize(report), AgentSummary(frames=5))

    def test_spool_dropped(self):
        """
        The fleet's C{lost} marker: reports and alerts the agent's spool
        dropped at its bound, from a record or a JSON value alike.
        """
        from loopy.model import DeliveryStats, summarize_value
        from loopy.wire import to_json_value

        report = _report(delivery=DeliveryStats(reports_dropped=7, alerts_dropped=2,
                                                corrupt=1, spool_records=4))
        self.assertEqual(summarize(report), AgentSummary(spool_dropped=9))
        self.assertEqual(summarize_value(to_json_value(report)), AgentSummary(spool_dropped=9))
        self.assertEqual(summarize_value({"delivery": {"reports_dropped": "x"}}),
                         AgentSummary())

    def test_other_record(self):
        """
        A record without the field asked for reads as zero.
        """
        report = _report(analysers={"tcp": testing.dns_snapshot(), "ip": testing.tcp_snapshot()})
        self.assertEqual(summarize(report), AgentSummary())


class IntervalCountsTests(SynchronousTestCase):
    """
    L{cumulative_counters} and L{interval_counts}: what a report counts
    over its own interval.
    """

    def snapshots(self, scale):
        return {
            "ip": IpSnapshot(packets_in=10 * scale, packets_out=5 * scale,
                             bytes_in=1000 * scale, bytes_out=500 * scale,
                             protocols={"tcp": ProtocolCount(4 * scale, 400 * scale),
                                        "icmpv6": ProtocolCount(1 * scale, 64 * scale),
                                        "icmp": ProtocolCount(2 * scale, 84 * scale),
                                        "arp": ProtocolCount(3 * scale, 126 * scale)}),
            "tcp": {"syn": 7 * scale, "established": 6 * scale, "reset": scale},
            "dns": {"queries_total": 9 * scale, "nxdomain": 2 * scale},
            "detect": {"alerts_raised": scale},
        }

    def test_cumulative(self):
        """
        The counters come from the capture and the snapshots (records or
        dicts); ICMP and ICMPv6 share a column, other buckets are "other".
        """
        totals = cumulative_counters(CaptureStats(frames=20, kernel_drops=3),
                                     self.snapshots(1))
        self.assertEqual(totals["frames"], 20)
        self.assertEqual(totals["kernel_drops"], 3)
        self.assertEqual((totals["packets_in"], totals["bytes_out"]), (10, 500))
        self.assertEqual((totals["tcp_packets"], totals["tcp_bytes"]), (4, 400))
        self.assertEqual((totals["icmp_packets"], totals["icmp_bytes"]), (3, 148))
        self.assertEqual((totals["other_packets"], totals["other_bytes"]), (3, 126))
        self.assertEqual((totals["udp_packets"], totals["dns_queries"]), (0, 9))
        self.assertEqual((totals["tcp_syn"], totals["alerts_raised"]), (7, 1))
        self.assertEqual(set(totals), set(attrs.fields_dict(IntervalCounts)))

    def test_differences(self):
        """
        A report counts the difference from the one before; the first one
        counts everything; a counter that went backwards counts 0.
        """
        before = cumulative_counters({"frames": 5}, self.snapshots(1))
        now = cumulative_counters({"frames": 4}, self.snapshots(3))
        counts = interval_counts(now, before)
        self.assertEqual(counts.frames, 0)
        self.assertEqual(counts.tcp_syn, 14)
        self.assertEqual(counts.icmp_packets, 6)
        self.assertEqual(interval_counts(before, None).tcp_syn, 7)

    def test_malformed(self):
        """
        What is missing or not a number counts 0.
        """
        totals = cumulative_counters({"frames": "x"}, {"ip": {"protocols": [1]},
                                                       "tcp": None})
        self.assertEqual(set(totals.values()), {0})
