# -*- test-case-name: tests.test_monitor -*-
"""
The agent's core: frames in, through the header parser and every analyser,
and a versioned L{AgentReport} out every interval.  Knows nothing of sockets
or the hub; a capture source feeds it and the uplink takes its reports.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from twisted.logger import Logger

from loopy.dissect.headers import LINKTYPE_ETHERNET, decode
from loopy.model import AgentReport, CaptureStats, InterfaceStats

log = Logger()


class Monitor:
    """
    Runs analysers over frames and makes reports.

    :ivar malformed: frames the header parser rejected.
    :ivar analyser_errors: exceptions raised by analysers (each logged, the
        packet skipped for that analyser's remaining work).
    """

    def __init__(
        self,
        agent_id: str,
        hostname: str,
        epoch: int,
        analysers: Iterable,
        interface_stats: Callable[[], Iterable[InterfaceStats]] = lambda: (),
        capture_counters: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ):
        """
        :param agent_id: the agent's id in the fleet.
        :param hostname: this host's name.
        :param epoch: this run's epoch (see L{AgentReport}).
        :param analysers: L{IAnalyser} providers.
        :param interface_stats: returns the capture sockets' counters.
        :param capture_counters: returns ``(batches, full_batches)``.
        """
        self.agent_id = agent_id
        self.hostname = hostname
        self.epoch = epoch
        self.analysers = list(analysers)
        self._observers = [a.observe for a in self.analysers]
        self._interface_stats = interface_stats
        self._capture_counters = capture_counters
        self.seq = 0
        self.frames = 0
        self.bytes = 0
        self.malformed = 0
        self.analyser_errors = 0
        self._last_report: Optional[float] = None

    def attach_capture(self, source) -> None:
        """
        Take capture counters from C{source}, which has C{interface_stats()}
        (L{InterfaceStats} per socket) and C{batch_counters()} (``(batches,
        full_batches)``): a L{CaptureService} or a replay source.  The source
        is built after the monitor because the monitor is its frame sink.
        """
        self._interface_stats = source.interface_stats
        self._capture_counters = source.batch_counters

    def frame(
        self,
        data: bytes,
        ts: float,
        ifindex: int = 0,
        outgoing: bool = False,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        """
        Account for one frame (see L{loopy.agent.capture.FrameSink}).
        """
        self.frames += 1
        self.bytes += len(data)
        packet = decode(data, ts, ifindex, outgoing, linktype)
        if packet is None:
            self.malformed += 1
            return
        for observe in self._observers:
            try:
                observe(packet)
            except Exception:
                self.analyser_errors += 1
                if self.analyser_errors <= 10 or self.analyser_errors % 1000 == 0:
                    log.failure(
                        "analyser failed on a packet ({count} so far)",
                        count=self.analyser_errors,
                    )

    def report(self, now: float) -> AgentReport:
        """
        The next report: every analyser's snapshot at C{now}.

        :param now: seconds since the Unix epoch, the capture's clock.
        """
        interval = 1.0 if self._last_report is None else max(now - self._last_report, 1e-6)
        self._last_report = now
        self.seq += 1
        snapshots = {}
        for analyser in self.analysers:
            try:
                snapshots[analyser.name] = analyser.snapshot(now, interval)
            except Exception:
                self.analyser_errors += 1
                log.failure("analyser {name} failed to report", name=analyser.name)
        interfaces = tuple(self._interface_stats())
        batches, full_batches = self._capture_counters()
        capture = CaptureStats(
            frames=self.frames,
            bytes=self.bytes,
            kernel_drops=sum(i.kernel_drops for i in interfaces),
            malformed=self.malformed,
            batches=batches,
            full_batches=full_batches,
            interfaces=interfaces,
        )
        return AgentReport(
            agent_id=self.agent_id,
            hostname=self.hostname,
            epoch=self.epoch,
            seq=self.seq,
            ts=now,
            interval=round(interval, 6),
            capture=capture,
            analysers=snapshots,
        )
