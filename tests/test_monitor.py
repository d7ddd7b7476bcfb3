"""
Tests for L{loopy.agent.monitor.Monitor}.
"""

from __future__ import annotations

from zope.interface import implementer

from twisted.trial.unittest import SynchronousTestCase

from loopy.agent.monitor import Monitor
from loopy.analysis.base import IAnalyser
from loopy.dissect.headers import LINKTYPE_RAW
from loopy.model import AgentReport, CaptureStats, InterfaceStats
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
        self.assertEqual((monitor.frames, monitor.bytes, monitor.malformed), (1, len(frame), 0))
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
        A frame the header parser refuses is counted, with its octets, and
        not given to analysers.
        """
        analyser = Recorder("one")
        monitor = self.monitor(analyser)
        monitor.frame(b"\x00" * 5, T0)
        monitor.frame(testing.udp_frame()[:30], T0)
        self.assertEqual((monitor.frames, monitor.bytes, monitor.malformed), (2, 35, 2))
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
        monitor = self.monitor(
            Recorder("one"),
            interface_stats=lambda: [InterfaceStats("eth0", 5, 500, 2),
                                     InterfaceStats("lo", 1, 60, 3)],
            capture_counters=lambda: (4, 1),
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
                    frames=2,
                    bytes=len(frame),
                    kernel_drops=5,
                    malformed=1,
                    batches=4,
                    full_batches=1,
                    interfaces=(InterfaceStats("eth0", 5, 500, 2),
                                InterfaceStats("lo", 1, 60, 3)),
                ),
                analysers={"one": {"packets": 1}},
            ),
        )

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
        self.assertEqual(monitor.frames, 1)
