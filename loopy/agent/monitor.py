# -*- test-case-name: tests.test_monitor -*-
"""
The agent's core: frames in, through the header parser and every analyser,
and a versioned L{AgentReport} out every interval.  Knows nothing of sockets
or the hub; a capture source feeds it and the uplink takes its reports.
"""

from __future__ import annotations

import os
import random
from time import perf_counter_ns
from typing import Callable, Iterable, Optional

from twisted.logger import Logger

from loopy.dissect.headers import LINKTYPE_ETHERNET, decode
from loopy.model import (
    AgentReport,
    CaptureStats,
    DeliveryStats,
    InterfaceStats,
    cumulative_counters,
    interval_counts,
)

log = Logger()

#: One packet in this many (on average; the gap is random so that periodic
#: traffic cannot alias) has its processing time measured.
SAMPLE_EVERY = 64
#: Most processing-time samples kept per report interval; later packets in
#: the interval are not sampled.
MAX_SAMPLES = 4096


def process_usage() -> tuple[float, int]:
    """
    This process's CPU time and memory.

    :returns: ``(cpu_seconds, rss_bytes)``: user plus system CPU seconds
        (times(2)) and the resident set size in octets (``/proc/self/statm``,
        proc(5)); 0 for the size where /proc is missing.
    """
    times = os.times()
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = 0
    return times.user + times.system, rss


def percentile(ordered: list, fraction: float):
    """
    The nearest-rank percentile of an ordered, non-empty list.

    :param fraction: 0.5 for the median, 0.99 for the 99th percentile.
    """
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Monitor:
    """
    Runs analysers over frames and makes reports.

    Frames and octets are counted by the capture source (its
    C{interface_stats()}); the monitor counts what the header parser
    refused, analyser failures, and samples the time each packet takes.

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
        usage: Callable[[], tuple[float, int]] = process_usage,
        timer: Callable[[], int] = perf_counter_ns,
        alerts=None,
        delivery: Optional[Callable[[], DeliveryStats]] = None,
    ):
        """
        :param agent_id: the agent's id in the fleet.
        :param hostname: this host's name.
        :param epoch: this run's epoch (see L{AgentReport}).
        :param analysers: L{IAnalyser} providers; one may also have
            C{dissection_counts()} returning ``(dissected, budgeted_out)``
            packets (cumulative) for the capture health.
        :param interface_stats: returns the capture sockets' counters.
        :param capture_counters: returns ``(batches, full_batches)``.
        :param usage: returns ``(cpu_seconds, rss_bytes)`` of this process
            (L{process_usage}).
        :param timer: a monotonic clock in nanoseconds, for the per-packet
            time samples.
        :param alerts: the agent's L{loopy.detect.alerts.AlertBook}, or
            None.  Analysers with C{bind_alerts(book)} (the detect
            analyser) signal to it, and each report carries its recent
            alerts.
        """
        self.agent_id = agent_id
        self.hostname = hostname
        self.epoch = epoch
        self.analysers = list(analysers)
        self._observers = [a.observe for a in self.analysers]
        self._checkers = [a.check for a in self.analysers if hasattr(a, "check")]
        self.alerts = alerts
        self.delivery = delivery
        if alerts is not None:
            for analyser in self.analysers:
                bind = getattr(analyser, "bind_alerts", None)
                if bind is not None:
                    bind(alerts)
        self._interface_stats = interface_stats
        self._capture_counters = capture_counters
        self._usage = usage
        self._timer = timer
        self._random = random.Random(epoch)
        self._until_sample = self._sample_gap()
        self._samples: list[int] = []
        self.seq = 0
        self.malformed = 0
        self.analyser_errors = 0
        self._last_report: Optional[float] = None
        self._last_totals = (0, 0)  # frames, kernel drops at the last report
        self._last_cpu: Optional[float] = None
        #: cumulative_counters() at the previous report, for IntervalCounts.
        self._last_counters: Optional[dict[str, int]] = None

    def attach_capture(self, source) -> None:
        """
        Take capture counters from C{source}, which has C{interface_stats()}
        (L{InterfaceStats} per socket) and C{batch_counters()} (``(batches,
        full_batches)``): a L{CaptureService} or a replay source.  The source
        is built after the monitor because the monitor is its frame sink.
        """
        self._interface_stats = source.interface_stats
        self._capture_counters = source.batch_counters

    def _sample_gap(self) -> int:
        return self._random.randint(1, 2 * SAMPLE_EVERY - 1)

    def frame(
        self,
        data: bytes,
        ts: float,
        ifindex: int = 0,
        outgoing: bool = False,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        """
        Decode one frame and give it to every analyser (see
        L{loopy.agent.capture.FrameSink}); time it now and then.

        This runs for every frame, so it is written for speed: one call per
        analyser and nothing else in the common case.
        """
        self._until_sample -= 1
        started = self._start_sample() if not self._until_sample else 0
        packet = decode(data, ts, ifindex, outgoing, linktype)
        if packet is None:
            self.malformed += 1
        else:
            try:
                for observe in self._observers:
                    observe(packet)
            except Exception:
                self._analyser_failed(packet, observe)
        if started:
            self._samples.append(self._timer() - started)

    def _start_sample(self) -> int:
        """
        Start timing this packet: the timer's value, or 0 (no timing) when
        this interval has its samples already.
        """
        self._until_sample = self._sample_gap()
        if len(self._samples) >= MAX_SAMPLES:
            return 0
        return self._timer()

    def _analyser_failed(self, packet, failed) -> None:
        """
        Count and (sparingly) log an analyser's failure on C{packet}, then
        give the packet to the analysers after the one that failed.
        """
        self.analyser_errors += 1
        if self.analyser_errors <= 10 or self.analyser_errors % 1000 == 0:
            log.failure("analyser failed on a packet ({count} so far)",
                        count=self.analyser_errors)
        observers = self._observers
        for observe in observers[observers.index(failed) + 1:]:
            try:
                observe(packet)
            except Exception:
                self._analyser_failed(packet, observe)
                return

    def check(self, now: float) -> None:
        """
        Let analysers that check thresholds on a timer (the detect
        analyser's C{check}) do so at C{now}, even when no packet arrives.

        :param now: seconds since the Unix epoch, the capture's clock.
        """
        for check in self._checkers:
            try:
                check(now)
            except Exception:
                self.analyser_errors += 1
                log.failure("analyser check failed")

    def report(self, now: float) -> AgentReport:
        """
        The next report: every analyser's snapshot at C{now}, and the
        capture's health.

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
        capture = self._capture_stats(interval)
        totals = cumulative_counters(capture, snapshots)
        counts = interval_counts(totals, self._last_counters)
        self._last_counters = totals
        return AgentReport(
            agent_id=self.agent_id,
            hostname=self.hostname,
            epoch=self.epoch,
            seq=self.seq,
            ts=now,
            interval=round(interval, 6),
            capture=capture,
            analysers=snapshots,
            alerts=self.alerts.recent(now) if self.alerts is not None else (),
            counts=counts,
            delivery=self.delivery() if self.delivery is not None else DeliveryStats(),
        )

    def _capture_stats(self, interval: float) -> CaptureStats:
        interfaces = tuple(self._interface_stats())
        frames = sum(i.frames for i in interfaces)
        drops = sum(i.kernel_drops for i in interfaces)
        last_frames, last_drops = self._last_totals
        self._last_totals = (frames, drops)
        new_drops = max(0, drops - last_drops)
        offered = max(0, frames - last_frames) + new_drops
        batches, full_batches = self._capture_counters()
        dissected = budgeted_out = 0
        for analyser in self.analysers:
            counts = getattr(analyser, "dissection_counts", None)
            if counts is not None:
                more, fewer = counts()
                dissected += more
                budgeted_out += fewer
        samples, self._samples = sorted(self._samples), []
        cpu, rss = self._usage()
        cpu_percent = 0.0 if self._last_cpu is None else (cpu - self._last_cpu) / interval * 100
        self._last_cpu = cpu
        return CaptureStats(
            frames=frames,
            bytes=sum(i.bytes for i in interfaces),
            kernel_drops=drops,
            malformed=self.malformed,
            batches=batches,
            full_batches=full_batches,
            interfaces=interfaces,
            drops_per_second=round(new_drops / interval, 3),
            drop_ratio=round(new_drops / offered, 6) if offered else 0.0,
            ring_fill=max((i.ring_fill for i in interfaces), default=0.0),
            dissected=dissected,
            budgeted_out=budgeted_out,
            packet_time_p50_us=round(percentile(samples, 0.5) / 1000, 2) if samples else 0.0,
            packet_time_p99_us=round(percentile(samples, 0.99) / 1000, 2) if samples else 0.0,
            cpu_seconds=round(cpu, 3),
            cpu_percent=round(max(0.0, cpu_percent), 2),
            rss_bytes=rss,
        )
