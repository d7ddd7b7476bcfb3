# -*- test-case-name: tests.test_agent_service -*-
"""
The agent as a service: a capture source feeding the L{Monitor} (live
sockets, L{CaptureService}, or a capture file, L{PcapSource}), a report every
interval, and the L{Uplink}.
"""

from __future__ import annotations

import os
from itertools import islice
from typing import Callable, Optional

from attrs import frozen
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy.agent.capture import PacketSocket, list_interfaces
from loopy.agent.ring import MIB, RingSocket, RingUnavailable
from loopy.agent.monitor import Monitor
from loopy.agent.pcap import CaptureFile
from loopy.agent.uplink import Uplink
from loopy.errors import CaptureError
from loopy.model import InterfaceStats

log = Logger()


@frozen
class CaptureConfig:
    """
    What to capture.

    :ivar interfaces: interface names; ``("any",)`` for every interface,
        including ones that appear later (checked every C{rescan} seconds).
    :ivar filter_expression: the whole kernel filter (pcap-filter(7)), the
        agent's own hub links already excluded; or None.
    :ivar promisc: promiscuous mode.
    :ivar batch: most frames read per socket per reactor wake-up (socket
        reads).
    :ivar rescan: seconds between looks for new interfaces under ``any``.
    :ivar method: ``ring`` (a TPACKET_V3 ring per interface, L{RingSocket};
        batched reads where the kernel refuses a ring) or ``socket``
        (batched reads, L{PacketSocket}).
    :ivar ring_size: octets of ring per interface.
    :ivar block_timeout: milliseconds before the kernel hands over a ring
        block that is not full.
    :ivar block_size: octets of a ring block (a multiple of the page size;
        the largest frame kept).
    """

    interfaces: tuple[str, ...] = ("any",)
    filter_expression: Optional[str] = None
    promisc: bool = False
    batch: int = 256
    rescan: float = 5.0
    method: str = "ring"
    ring_size: int = 16 * MIB
    block_timeout: int = 100
    block_size: int = MIB


class CaptureService(MultiService):
    """
    Opens the capture sockets (in C{privilegedStartService}, before twistd
    drops privileges) and registers them with the reactor.
    """

    def __init__(self, config: CaptureConfig, sink: Callable, reactor):
        MultiService.__init__(self)
        self._config = config
        self._sink = sink
        self._reactor = reactor
        self.sockets: dict[str, PacketSocket] = {}
        self._rescan: Optional[LoopingCall] = None
        self._skipped: set[str] = set()

    @property
    def _any(self) -> bool:
        return "any" in self._config.interfaces

    def _wanted(self) -> list[str]:
        if self._any:
            return list_interfaces()
        return list(self._config.interfaces)

    def _socket(self, name: str, ring: bool) -> PacketSocket:
        config = self._config
        if ring:
            return RingSocket(
                name, self._sink, config.filter_expression, config.promisc,
                ring_size=config.ring_size, block_size=config.block_size,
                block_timeout=config.block_timeout,
            )
        return PacketSocket(
            name, self._sink, config.filter_expression, config.promisc, config.batch
        )

    def _open(self, name: str, strict: bool) -> None:
        sock = self._socket(name, self._config.method == "ring")
        try:
            try:
                sock.open()
            except RingUnavailable as e:
                log.warn("{error}; reading {interface} with batched reads instead",
                         error=e, interface=name)
                sock = self._socket(name, ring=False)
                sock.open()
        except CaptureError as e:
            if strict:
                raise
            if name not in self._skipped:
                self._skipped.add(name)
                log.warn("not capturing on {interface}: {error}", interface=name, error=e)
            return
        self.sockets[name] = sock
        if self.running:
            self._reactor.addReader(sock)
        log.info("capturing on {interface} ({source})", interface=name,
                 source=sock.source)

    def privilegedStartService(self):
        MultiService.privilegedStartService(self)
        for name in self._wanted():
            if name not in self.sockets:
                self._open(name, strict=not self._any)

    def startService(self):
        if not self.sockets:
            # twist and tests skip privilegedStartService.
            self.privilegedStartService()
        MultiService.startService(self)
        for sock in self.sockets.values():
            self._reactor.addReader(sock)
        if self._any:
            self._rescan = LoopingCall(self._rescan_interfaces)
            self._rescan.clock = self._reactor
            self._rescan.start(self._config.rescan, now=False)

    def _rescan_interfaces(self) -> None:
        try:
            present = set(list_interfaces())
            for name in sorted(present - set(self.sockets)):
                self._open(name, strict=False)
            for name in sorted(set(self.sockets) - present):
                sock = self.sockets.pop(name)
                self._reactor.removeReader(sock)
                sock.close()
                log.info("interface {interface} is gone", interface=name)
        except Exception:
            log.failure("interface rescan failed")

    def stopService(self):
        if self._rescan is not None and self._rescan.running:
            self._rescan.stop()
        for sock in self.sockets.values():
            self._reactor.removeReader(sock)
            sock.close()
        return MultiService.stopService(self)

    def poll_kernel_stats(self) -> None:
        for sock in self.sockets.values():
            sock.poll_kernel_stats()

    def interface_stats(self):
        return [sock.stats() for sock in self.sockets.values()]

    def batch_counters(self) -> tuple[int, int]:
        return (
            sum(s.batches for s in self.sockets.values()),
            sum(s.full_batches for s in self.sockets.values()),
        )


@frozen
class ReplaySummary:
    """
    How a capture file replay went.

    :ivar path: the capture file.
    :ivar frames: frames delivered to the sink.
    :ivar bytes: their octets as captured.
    :ivar seconds: reactor seconds from the start to the end of the replay.
    :ivar unsupported: records not delivered (link type not decoded).
    :ivar damaged: 1 if the file was damaged (the replay stopped there).
    :ivar damage: what the damage was, or None.
    """

    path: str
    frames: int
    bytes: int
    seconds: float
    unsupported: int = 0
    damaged: int = 0
    damage: Optional[str] = None

    @property
    def fps(self) -> float:
        """
        Frames per reactor second (0.0 when no reactor time passed).
        """
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class PcapSource(Service):
    """
    Replays a capture file (L{CaptureFile}) into a frame sink, C{batch}
    frames per reactor turn at most, so the reactor stays responsive.

    Without C{pace} each turn delivers a batch and asks for the next turn at
    once (C{callLater(0, ...)}).  With C{pace} a frame is delivered when its
    offset from the file's first frame has elapsed on C{clock} since the
    replay began; the source sleeps until then.

    The capture's clock, L{now}, is the newest frame's timestamp: reports
    made during a replay use it, so analyser rates and timeouts run in packet
    time.  It stands in for L{CaptureService} in the L{ReportLoop}.

    :ivar capture: the open file, or None before start and after the end.
    :ivar summary: the L{ReplaySummary} once the file is done, else None.
    """

    def __init__(self, path: str, sink: Callable, clock, pace: bool = False,
                 batch: int = 1024):
        """
        :param path: a pcap or pcapng file.
        :param sink: a L{loopy.agent.capture.FrameSink}.
        :param clock: IReactorTime that schedules the batches.
        :param pace: replay at the recorded pace instead of at full speed.
        :param batch: most frames delivered per reactor turn.
        """
        self.path = path
        self._sink = sink
        self._clock = clock
        self._pace = pace
        self._batch = batch
        self.capture: Optional[CaptureFile] = None
        self.summary: Optional[ReplaySummary] = None
        self.batches = self.full_batches = 0
        self.frames = self.bytes = 0
        self._records = None
        self._held = None
        self._call = None
        self._newest: Optional[float] = None
        self._first: Optional[float] = None
        self._started = 0.0
        self._waiting: list[Deferred] = []

    def startService(self):
        """
        Open the file and schedule the first batch.

        :raises CaptureError: if the file is not a capture file.
        """
        self.capture = CaptureFile(self.path)
        self._records = iter(self.capture)
        Service.startService(self)
        self._started = self._clock.seconds()
        log.info("replaying {kind} file {path}{paced}", kind=self.capture.kind,
                 path=self.path, paced=" at the recorded pace" if self._pace else "")
        self._call = self._clock.callLater(0, self._step)

    def stopService(self):
        if self._call is not None:
            try:
                self._call.cancel()
            except (AlreadyCalled, AlreadyCancelled):
                pass
            self._call = None
        if self.capture is not None:
            self.capture.close()
        return Service.stopService(self)

    def now(self) -> Optional[float]:
        """
        The capture's clock: the newest frame's timestamp in seconds since
        the epoch, or None before the first frame.
        """
        return self._newest

    def when_done(self) -> Deferred:
        """
        A Deferred that fires with the L{ReplaySummary} when the whole file
        has been delivered (or its damage reached).
        """
        if self.summary is not None:
            return succeed(self.summary)
        d = Deferred()
        self._waiting.append(d)
        return d

    def _step(self) -> None:
        self._call = None
        try:
            more = self._deliver()
        except Exception:
            log.failure("replaying {path} failed", path=self.path)
            more = False
        if more is None:
            return
        if more:
            self._call = self._clock.callLater(0, self._step)
        else:
            self._finish()

    def _deliver(self):
        """
        Deliver one batch.

        :returns: True if more frames follow at once, False at the end of
            the file, None if a paced wait was scheduled.
        """
        if not self._pace:
            return self._deliver_batch()
        sink, records, clock = self._sink, self._records, self._clock
        count = 0
        while count < self._batch:
            record = self._held
            self._held = None
            if record is None:
                record = next(records, None)
                if record is None:
                    self._count_batch(count, False)
                    return False
            ts = record[1]
            if self._first is None:
                self._first = ts
                self._started = clock.seconds()
            if self._pace:
                wait = self._started + (ts - self._first) - clock.seconds()
                if wait > 0:
                    self._held = record
                    self._count_batch(count, False)
                    self._call = clock.callLater(wait, self._step)
                    return None
            if self._newest is None or ts > self._newest:
                self._newest = ts
            self.frames += 1
            self.bytes += len(record[0])
            sink(*record)
            count += 1
        self._count_batch(count, True)
        return True

    def _deliver_batch(self) -> bool:
        """
        Deliver the next C{batch} frames at once (no pacing): the loop every
        frame of a fast replay goes through, so it does nothing else.

        :returns: True if more frames may follow, False at the end of the file.
        """
        sink = self._sink
        newest = self._newest if self._newest is not None else float("-inf")
        count = octets = 0
        for record in islice(self._records, self._batch):
            frame, ts = record[0], record[1]
            if ts > newest:
                newest = ts
            octets += len(frame)
            count += 1
            sink(*record)
        if count:
            self._newest = newest
            self.frames += count
            self.bytes += octets
        full = count == self._batch
        self._count_batch(count, full)
        return full

    def _count_batch(self, count: int, full: bool) -> None:
        if count:
            self.batches += 1
            if full:
                self.full_batches += 1

    def _finish(self) -> None:
        capture = self.capture
        capture.close()
        self.summary = summary = ReplaySummary(
            path=self.path, frames=self.frames, bytes=self.bytes,
            seconds=round(self._clock.seconds() - self._started, 6),
            unsupported=capture.unsupported, damaged=capture.damaged,
            damage=capture.damage,
        )
        log.info(
            "replayed {path}: {frames} frames, {bytes} bytes in {seconds:.3f} s "
            "({fps:.0f} frames/s); {unsupported} unsupported, damaged: {damage}",
            path=self.path, frames=summary.frames, bytes=summary.bytes,
            seconds=summary.seconds, fps=summary.fps, unsupported=summary.unsupported,
            damage=summary.damage or "no",
        )
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(summary)

    # What the ReportLoop and Monitor ask of a capture source.

    def poll_kernel_stats(self) -> None:
        """
        Nothing to poll: a file has no kernel drops.
        """

    def interface_stats(self) -> list[InterfaceStats]:
        return [InterfaceStats(name=f"pcap:{os.path.basename(self.path)}",
                               frames=self.frames, bytes=self.bytes, source="pcap")]

    def batch_counters(self) -> tuple[int, int]:
        return self.batches, self.full_batches


class ReportLoop(MultiService):
    """
    Every C{interval} seconds: poll kernel counters, make a report, send it;
    and every C{check_interval} seconds, let the detectors check their
    thresholds (L{Monitor.check}), so an alert is raised on time even when
    no further packet arrives.

    A report's time comes from C{now}: the reactor clock for live capture,
    the capture's clock (L{PcapSource.now}) for a replay.
    """

    def __init__(self, monitor: Monitor, capture, uplink: Uplink,
                 interval: float, clock,
                 now: Optional[Callable[[], Optional[float]]] = None,
                 check_interval: Optional[float] = None):
        """
        :param capture: a L{CaptureService} or L{PcapSource}.
        :param clock: IReactorTime that runs the loop.
        :param now: returns the report time in seconds since the epoch, or
            None while there is none yet (no report is made then)
            [default: C{clock.seconds}].
        :param check_interval: seconds between threshold checks, or None
            for none.
        """
        MultiService.__init__(self)
        self._monitor = monitor
        self._capture = capture
        self._uplink = uplink
        self._clock = clock
        self._now = now if now is not None else clock.seconds
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._interval = interval
        self._check_loop = LoopingCall(self._check)
        self._check_loop.clock = clock
        self._check_interval = check_interval
        self._reported = False

    def startService(self):
        MultiService.startService(self)
        self._loop.start(self._interval, now=False)
        if self._check_interval:
            self._check_loop.start(self._check_interval, now=False)

    def stopService(self):
        for loop in (self._loop, self._check_loop):
            if loop.running:
                loop.stop()
        return MultiService.stopService(self)

    def _check(self) -> None:
        try:
            now = self._now()
            if now is not None:
                self._monitor.check(now)
        except Exception:
            log.failure("checking detector thresholds failed")

    def _tick(self) -> None:
        # Not waiting for the hub's answer: the loop keeps its own beat.
        self.tick()

    def report_now(self) -> Deferred:
        """
        Make and send a report at once, and count the next interval from
        now: the uplink calls this when a hub accepts the agent, so a new
        link gets the agent's whole state (reports are full snapshots and
        carry the open alerts) without waiting for the beat.  Before the
        loop's first report there is no interval to measure rates over, and
        nothing is sent: the first report follows within an interval.

        :returns: as L{tick}.
        """
        if not self._reported:
            return succeed(None)
        if self._loop.running:
            self._loop.reset()
        return self.tick()

    def tick(self) -> Deferred:
        """
        Make and send one report.

        :returns: a Deferred that fires (never fails) when the hub has
            answered it, or at once if it was not sent.
        """
        try:
            self._capture.poll_kernel_stats()
            now = self._now()
            if now is None:
                return succeed(None)
            report = self._monitor.report(now)
            self._reported = True
            return self._uplink.send(report)
        except Exception:
            log.failure("making or sending a report failed")
            return succeed(None)

    def final_report(self, link_wait: float = 10.0) -> Deferred:
        """
        Send one last report, waiting up to C{link_wait} seconds for a hub
        link first (a fast replay can end before the uplink connects).

        :returns: a Deferred that fires (never fails) once the report has
            been answered, failed or found no hub.
        """
        d = self._uplink.when_linked()
        d.addTimeout(link_wait, self._clock)
        d.addErrback(lambda _: None)
        d.addCallback(lambda _: self.tick())
        return d
