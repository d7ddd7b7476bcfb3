"""
Tests for L{loopy.agent.monitor.Monitor}.
"""

from __future__ import annotations

from zope.interface import implementer

from twisted.trial.unittest import SynchronousTestCase

from loopy.agent.monitor import MAX_SAMPLES, SAMPLE_EVERY, Monitor, percentile, process_usage
from loopy.analysis.base import IAnalyser
from loopy.dissect.headers import LINKTYPE_RAW
from loopy.model import (
    AgentReport,
    CaptureStats,
    DeliveryStats,
    InterfaceStats,
    IntervalCounts,
)
from loopy import testing
from loopy.testing import T0


class AnalyserBroke(Exception):
    pass


@implementer(IAnalyser)
class Recorder:
    """
    An analyser that keeps what it is given and reports how much it saw.
    """

    def __init__(self, name, fail_observe=False, fail_snapshot=False):
        self.name = name
        self.packets = []
        self.snapshots = []
        self._fail_observe = fail_observe
        self._fail_snapshot = fail_snapshot

    def observe(self, packet):
        if self._fail_observe:
            raise AnalyserBroke(self.name)
        self.packets.append(packet)

    def snapshot(self, now, interval):
        self.snapshots.append((now, interval))
        if self._fail_snapshot:
            raise AnalyserBroke(self.name)
        return {"packets": len(self.packets)}


class MonitorTests(SynchronousTestCase):
    def monitor(self, *analysers, **kw):
        return Monitor("agent-a", "host-a", 42, analysers, **kw)

    def test_frames_to_analysers(self):
        """
        Every decoded frame goes to every analyser, as a packet summary with
        the capture's time, interface and direction.
        """
        first, second = Recorder("one"), Recorder("two")
        monitor = self.monitor(first, second)
        frame = testing.udp_frame()
        monitor.frame(frame, T0, ifindex=3, outgoing=True)
        self.assertEqual(monitor.malformed, 0)
        (packet,) = first.packets
        self.assertEqual(second.packets, [packet])
        self.assertEqual(
            (packet.ts, packet.ifindex, packet.outgoing, packet.src, packet.dst,
             packet.sport, packet.dport, packet.payload),
            (T0, 3, True, "10.0.0.1", "10.0.0.53", 5353, 53, b"hello"),
        )

    def test_raw_link(self):
        """
        Frames of raw IP links (tun devices) start at the IP header.
        """
        analyser = Recorder("one")
        monitor = self.monitor(analyser)
        monitor.frame(testing.udp_frame()[14:], T0, linktype=LINKTYPE_RAW)
        self.assertEqual([p.dst for p in analyser.packets], ["10.0.0.53"])

    def test_malformed(self):
        """
        A frame the header parser refuses is counted and not given to
        analysers.
        """
        analyser = Recorder("one")
        monitor = self.monitor(analyser)
        monitor.frame(b"\x00" * 5, T0)
        monitor.frame(testing.udp_frame()[:30], T0)
        self.assertEqual(monitor.malformed, 2)
        self.assertEqual(analyser.packets, [])

    def test_analyser_raises(self):
        """
        An analyser that raises is counted and logged; the analysers after
        it still see the packet.
        """
        broken, working = Recorder("broken", fail_observe=True), Recorder("working")
        monitor = self.monitor(broken, working)
        monitor.frame(testing.udp_frame(), T0)
        monitor.frame(testing.udp_frame(), T0 + 1)
        self.assertEqual(monitor.analyser_errors, 2)
        self.assertEqual([p.ts for p in working.packets], [T0, T0 + 1])
        self.assertEqual(len(self.flushLoggedErrors(AnalyserBroke)), 2)
        report = monitor.report(T0 + 1)
        self.assertEqual(report.analysers, {"broken": {"packets": 0}, "working": {"packets": 2}})

    def test_analyser_errors_logged_sparingly(self):
        """
        The first ten analyser errors are logged, then one in a thousand.
        """
        monitor = self.monitor(Recorder("broken", fail_observe=True))
        frame = testing.udp_frame()
        for _ in range(2000):
            monitor.frame(frame, T0)
        self.assertEqual(monitor.analyser_errors, 2000)
        self.assertEqual(len(self.flushLoggedErrors(AnalyserBroke)), 12)

    def test_snapshot_raises(self):
        """
        An analyser whose snapshot raises is left out of that report and
        counted; the others report.
        """
        monitor = self.monitor(Recorder("broken", fail_snapshot=True), Recorder("working"))
        report = monitor.report(T0)
        self.assertEqual(report.analysers, {"working": {"packets": 0}})
        self.assertEqual(monitor.analyser_errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(AnalyserBroke)), 1)

    def test_report(self):
        """
        A report carries every analyser's snapshot and the capture's health:
        frames and octets as the capture source counted them.
        """
        monitor = self.monitor(
            Recorder("one"),
            interface_stats=lambda: [InterfaceStats("eth0", 5, 500, 2),
                                     InterfaceStats("lo", 1, 60, 3)],
            capture_counters=lambda: (4, 1),
            usage=lambda: (1.5, 52_000_000),
        )
        frame = testing.udp_frame()
        monitor.frame(frame, T0)
        monitor.frame(b"", T0)
        self.assertEqual(
            monitor.report(T0 + 0.5),
            AgentReport(
                agent_id="agent-a",
                hostname="host-a",
                epoch=42,
                seq=1,
                ts=T0 + 0.5,
                interval=1.0,
                capture=CaptureStats(
                    frames=6,
                    bytes=560,
                    kernel_drops=5,
                    malformed=1,
                    batches=4,
                    full_batches=1,
                    interfaces=(InterfaceStats("eth0", 5, 500, 2),
                                InterfaceStats("lo", 1, 60, 3)),
                    drops_per_second=5.0,
                    drop_ratio=round(5 / 11, 6),
                    cpu_seconds=1.5,
                    rss_bytes=52_000_000,
                ),
                analysers={"one": {"packets": 1}},
                counts=IntervalCounts(frames=6, bytes=560, kernel_drops=5, malformed=1),
            ),
        )

    def test_interval_counts(self):
        """
        Each report counts what happened since the one before: the
        differences of the cumulative counters, so they add up over reports.
        """
        frames = [0]
        monitor = self.monitor(
            interface_stats=lambda: [InterfaceStats("eth0", frames[0], frames[0] * 100, 0)])
        frames[0] = 3
        first = monitor.report(T0)
        frames[0] = 10
        second = monitor.report(T0 + 1)
        third = monitor.report(T0 + 2)
        self.assertEqual((first.counts.frames, first.counts.bytes), (3, 300))
        self.assertEqual((second.counts.frames, second.counts.bytes), (7, 700))
        self.assertEqual(third.counts, IntervalCounts())

    def test_delivery(self):
        """
        A report carries the uplink's delivery counters, once it has them.
        """
        monitor = self.monitor()
        self.assertEqual(monitor.report(T0).delivery, DeliveryStats())
        monitor.delivery = lambda: DeliveryStats(spool_records=3, reports_dropped=1)
        self.assertEqual(monitor.report(T0 + 1).delivery,
                         DeliveryStats(spool_records=3, reports_dropped=1))


    def test_seq_and_interval(self):
        """
        Reports count up from seq 1; the first covers 1 s, each later one the
        time since the one before, rounded to microseconds.
        """
        analyser = Recorder("one")
        monitor = self.monitor(analyser)
        reports = [monitor.report(now) for now in [T0, T0 + 1.0, T0 + 3.5, T0 + 3.5000004]]
        self.assertEqual([r.seq for r in reports], [1, 2, 3, 4])
        self.assertEqual([r.interval for r in reports], [1.0, 1.0, 2.5, 1e-6])
        self.assertEqual([r.ts for r in reports], [T0, T0 + 1.0, T0 + 3.5, T0 + 3.5000004])
        self.assertEqual(
            [interval for _, interval in analyser.snapshots][:3], [1.0, 1.0, 2.5]
        )

    def test_clock_backwards(self):
        """
        A clock that steps back gives a tiny positive interval, never zero or
        negative, to the analysers (they divide by it).
        """
        analyser = Recorder("one")
        monitor = self.monitor(analyser)
        monitor.report(T0)
        monitor.report(T0 - 5)
        self.assertEqual(analyser.snapshots[1], (T0 - 5, 1e-6))

    def test_no_analysers(self):
        monitor = self.monitor()
        monitor.frame(testing.udp_frame(), T0)
        self.assertEqual(monitor.report(T0).analysers, {})
        self.assertEqual(monitor.malformed, 0)


class CaptureHealthTests(SynchronousTestCase):
    """
    The capture health in each report: drop rates over the last interval,
    ring fill, dissection counts, sampled per-packet time, CPU and memory.
    """

    def setUp(self):
        self.interfaces = [InterfaceStats("eth0")]
        self.usage = (0.0, 0)
        self.now_ns = 0
        self.analysers = [Recorder("one")]

    def timer(self):
        self.now_ns += 2500
        return self.now_ns

    def monitor(self):
        return Monitor("agent-a", "host-a", 42, self.analysers,
                       interface_stats=lambda: self.interfaces,
                       usage=lambda: self.usage, timer=self.timer)

    def test_dropRateOverInterval(self):
        """
        The drop rate and ratio cover only the interval since the previous
        report: 50 drops beside 950 frames in 2 s is 25 drops/s, 5 %.
        """
        monitor = self.monitor()
        self.interfaces = [InterfaceStats("eth0", frames=1000, kernel_drops=10)]
        first = monitor.report(T0).capture
        self.interfaces = [InterfaceStats("eth0", frames=1950, kernel_drops=60)]
        second = monitor.report(T0 + 2).capture
        self.interfaces = [InterfaceStats("eth0", frames=1950, kernel_drops=60)]
        third = monitor.report(T0 + 3).capture
        self.assertEqual((first.drops_per_second, first.drop_ratio), (10.0, round(10 / 1010, 6)))
        self.assertEqual((second.drops_per_second, second.drop_ratio), (25.0, 0.05))
        self.assertEqual((third.drops_per_second, third.drop_ratio), (0.0, 0.0))
        self.assertEqual(third.kernel_drops, 60)

    def test_ringFill(self):
        """
        The fullest interface's ring fill is the capture's.
        """
        self.interfaces = [InterfaceStats("eth0", ring_fill=0.25, source="ring"),
                           InterfaceStats("eth1", ring_fill=0.5, source="ring"),
                           InterfaceStats("tun0")]
        self.assertEqual(self.monitor().report(T0).capture.ring_fill, 0.5)

    def test_dissectionCounts(self):
        """
        Analysers that dissect with scapy say how much, and how much they
        skipped for the budget; the report sums them.
        """
        first, second = Recorder("dns"), Recorder("arp")
        first.dissection_counts = lambda: (7, 3)
        second.dissection_counts = lambda: (1, 0)
        self.analysers = [first, second, Recorder("ip")]
        capture = self.monitor().report(T0).capture
        self.assertEqual((capture.dissected, capture.budgeted_out), (8, 3))

    def test_packetTimeSamples(self):
        """
        About one packet in SAMPLE_EVERY is timed; the report gives the
        median and 99th percentile in microseconds, then starts afresh.
        """
        monitor = self.monitor()
        frame = testing.udp_frame()
        for _ in range(SAMPLE_EVERY * 100):
            monitor.frame(frame, T0)
        capture = monitor.report(T0).capture
        self.assertEqual((capture.packet_time_p50_us, capture.packet_time_p99_us), (2.5, 2.5))
        self.assertEqual(self.now_ns % 5000, 0)
        self.assertTrue(50 <= self.now_ns // 5000 <= 200, self.now_ns // 5000)
        capture = monitor.report(T0 + 1).capture
        self.assertEqual((capture.packet_time_p50_us, capture.packet_time_p99_us), (0.0, 0.0))

    def test_samplesBounded(self):
        """
        At most MAX_SAMPLES packets are timed per interval.
        """
        monitor = self.monitor()
        frame = testing.udp_frame()
        for _ in range(SAMPLE_EVERY * (MAX_SAMPLES + 500)):
            monitor.frame(frame, T0)
        self.assertEqual(self.now_ns, MAX_SAMPLES * 5000)

    def test_percentile(self):
        ordered = list(range(1, 101))
        self.assertEqual((percentile(ordered, 0.5), percentile(ordered, 0.99)), (51, 100))
        self.assertEqual(percentile([7], 0.99), 7)

    def test_cpuAndMemory(self):
        """
        CPU time is cumulative; its percent of one core covers the last
        interval (none for the first report); the RSS is as read.
        """
        monitor = self.monitor()
        self.usage = (10.0, 40_000_000)
        first = monitor.report(T0).capture
        self.usage = (10.5, 41_000_000)
        second = monitor.report(T0 + 2).capture
        self.assertEqual((first.cpu_seconds, first.cpu_percent, first.rss_bytes),
                         (10.0, 0.0, 40_000_000))
        self.assertEqual((second.cpu_seconds, second.cpu_percent, second.rss_bytes),
                         (10.5, 25.0, 41_000_000))

    def test_processUsage(self):
        """
        This process's own CPU time and memory, from times(2) and /proc.
        """
        cpu, rss = process_usage()
        self.assertGreater(cpu, 0.0)
        self.assertGreater(rss, 10_000_000)


class Checker(Recorder):
    """
    An analyser with C{check} and C{bind_alerts}, as the detect analyser.
    """

    def __init__(self, name, fail_check=False):
        Recorder.__init__(self, name)
        self.checks = []
        self.book = None
        self._fail_check = fail_check

    def check(self, now):
        self.checks.append(now)
        if self._fail_check:
            raise AnalyserBroke(self.name)

    def bind_alerts(self, book):
        self.book = book


class MonitorAlertTests(SynchronousTestCase):
    def test_bindsBook(self):
        """
        The agent's alert book is given to analysers that take one, and
        each report carries the book's recent alerts.
        """
        from loopy.detect.alerts import AlertBook

        book = AlertBook("agent-a", 42)
        checker = Checker("detect")
        monitor = Monitor("agent-a", "host-a", 42, [checker, Recorder("ip")], alerts=book)
        self.assertIs(checker.book, book)
        alert = book.signal("port_scan", "x", T0, "warning", "scan")
        self.assertEqual(monitor.report(T0 + 1).alerts, (alert,))

    def test_noBook(self):
        monitor = Monitor("agent-a", "host-a", 42, [Recorder("ip")])
        self.assertEqual(monitor.report(T0).alerts, ())

    def test_check(self):
        """
        check() reaches the analysers that have one; a failure is counted
        and logged.
        """
        good, bad = Checker("good"), Checker("bad", fail_check=True)
        monitor = Monitor("agent-a", "host-a", 42, [bad, Recorder("ip"), good])
        monitor.check(T0)
        self.assertEqual((good.checks, bad.checks), ([T0], [T0]))
        self.assertEqual(monitor.analyser_errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(AnalyserBroke)), 1)
