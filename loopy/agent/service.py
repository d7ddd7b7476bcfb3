# -*- test-case-name: tests.test_agent_service -*-
"""
The agent as a service: capture sockets feeding the L{Monitor}, a report
every interval, and the L{Uplink}.
"""

from __future__ import annotations

from typing import Callable, Optional

from attrs import frozen
from twisted.application.service import MultiService
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy.agent.capture import PacketSocket, list_interfaces
from loopy.agent.monitor import Monitor
from loopy.agent.uplink import Uplink
from loopy.errors import CaptureError

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
    :ivar batch: most frames read per socket per reactor wake-up.
    :ivar rescan: seconds between looks for new interfaces under ``any``.
    """

    interfaces: tuple[str, ...] = ("any",)
    filter_expression: Optional[str] = None
    promisc: bool = False
    batch: int = 256
    rescan: float = 5.0


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

    def _open(self, name: str, strict: bool) -> None:
        config = self._config
        sock = PacketSocket(
            name, self._sink, config.filter_expression, config.promisc, config.batch
        )
        try:
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
        log.info("capturing on {interface}", interface=name)

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


class ReportLoop(MultiService):
    """
    Every C{interval} seconds: poll kernel counters, make a report, send it.
    """

    def __init__(self, monitor: Monitor, capture: CaptureService, uplink: Uplink,
                 interval: float, clock):
        MultiService.__init__(self)
        self._monitor = monitor
        self._capture = capture
        self._uplink = uplink
        self._clock = clock
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock
        self._interval = interval

    def startService(self):
        MultiService.startService(self)
        self._loop.start(self._interval, now=False)

    def stopService(self):
        if self._loop.running:
            self._loop.stop()
        return MultiService.stopService(self)

    def tick(self) -> None:
        try:
            self._capture.poll_kernel_stats()
            report = self._monitor.report(self._clock.seconds())
            self._uplink.send(report)
        except Exception:
            log.failure("making or sending a report failed")
