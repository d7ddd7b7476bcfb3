# -*- test-case-name: tests.test_detect_host -*-
"""
The C{detect} analyser: hosts the detector plugins, gives each the packets
it asks for, evaluates them every check interval, and reads the detectors'
settings file.

The settings file is TOML (``twistd loopy-agent --detect-config FILE``)::

    [detect]                 # what all detectors share
    check_interval = 0.25    # seconds between threshold checks
    allow = ["192.0.2.10"]   # never alert on traffic from or to these

    [port_scan]              # one table per detector, by its name
    ports = 30
    allow = ["198.51.100.0/24"]

Unknown tables or keys are errors, so a misspelt threshold cannot pass
silently.  docs/detectors/ lists every key with its default and reason.
"""

from __future__ import annotations

import tomllib
from typing import Any, Mapping, Optional

import cattrs
from cattrs.v import format_exception
from attrs import field, frozen
from twisted.logger import Logger
from zope.interface import implementer

from loopy.analysis.base import AnalyserConfig, IAnalyser
from loopy.detect.alerts import AlertBook
from loopy.detect.base import (
    ARP, DNS, ICMP, PACKET_CLASSES, TCP, UDP, DetectContext, IDetectorPlugin,
    Networks, read_gateways,
)
from loopy.dissect.dns import parse_message
from loopy.dissect.headers import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from loopy.errors import ConfigError
from loopy.model import DetectSnapshot

log = Logger()


@frozen
class DetectSettings:
    """
    The C{[detect]} table, and the raw tables of the detectors.

    :ivar check_interval: seconds between threshold checks (0.25: an alert
        is raised within a quarter second of the packet that crossed a
        threshold, for a few microseconds of CPU per check).
    :ivar update_interval: least seconds between two updates of one alert
        (1.0: UIs redraw once a second anyway).
    :ivar quiet_after: seconds without its condition before an alert is
        over (10.0: long enough that a scanner pausing between hosts does
        not raise a new alert each time).
    :ivar max_active_alerts: most alerts open at once on the agent; signals
        for new subjects past it are counted as suppressed (1000).
    :ivar allow: networks (CIDR text) never alerted on, by any detector.
    :ivar local_networks: networks that are this host's, besides the
        addresses learned from the packets it sends and loopback.
    :ivar gateways: IPv4 gateway addresses for ARP spoofing checks
        [default: the default routes of ``/proc/net/route``].
    :ivar detectors: detector name to its table, as read (structured into
        each detector's settings when the detectors are built).
    """

    check_interval: float = 0.25
    update_interval: float = 1.0
    quiet_after: float = 10.0
    max_active_alerts: int = 1000
    allow: tuple[str, ...] = ()
    local_networks: tuple[str, ...] = ()
    gateways: Optional[tuple[str, ...]] = None
    detectors: Mapping[str, Mapping[str, Any]] = field(factory=dict)


_converter = cattrs.Converter(forbid_extra_keys=True)


def _structure(value: Mapping, record_type: type, where: str):
    """
    Structure one settings table, with errors that name the key.

    :raises ConfigError: for unknown keys or values of the wrong type.
    """
    try:
        return _converter.structure(dict(value), record_type)
    except Exception as e:
        if isinstance(e, BaseExceptionGroup):
            problems = "; ".join(cattrs.transform_error(
                e, path=where, format_exception=_explain))
        else:
            problems = f"{where}: {e}"
        raise ConfigError(f"bad settings: {problems}") from None


def _explain(exc: BaseException, type_) -> str:
    """
    cattrs' words for a bad value, followed by the exception's own message
    (a detector's check of its threshold says which bound it broke).
    """
    words = format_exception(exc, type_)
    if isinstance(exc, ValueError) and str(exc):
        return f"{words}: {exc}"
    return words


def parse_settings(text: str, source: str = "settings") -> DetectSettings:
    """
    Read the detectors' settings from TOML text.

    :param source: where the text came from, for error messages.
    :raises ConfigError: for TOML errors, unknown keys, bad values or
        networks that do not parse.
    """
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not TOML: {e}") from None
    common = tables.pop("detect", {})
    if not isinstance(common, dict):
        raise ConfigError(f"{source}: [detect] must be a table")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a table ([{name}])")
    settings = _structure(dict(common, detectors=tables), DetectSettings, f"{source} [detect]")
    for cidrs, what in [(settings.allow, "allow"), (settings.local_networks, "local_networks")]:
        try:
            Networks(cidrs)
        except ValueError as e:
            raise ConfigError(f"{source} [detect] {what}: {e}") from None
    build_detectors(settings, DetectContext())
    return settings


def load_settings(path: str) -> DetectSettings:
    """
    Read the detectors' settings file.

    :raises ConfigError: when it cannot be read or is wrong (L{parse_settings}).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    return parse_settings(text, path)


def detector_plugins() -> dict[str, Any]:
    """
    The detector plugins found, by name.
    """
    from twisted.plugin import getPlugins

    from loopy import plugins

    return {p.name: p for p in getPlugins(IDetectorPlugin, plugins)}


def build_detectors(settings: DetectSettings, context: DetectContext) -> list:
    """
    Build every enabled detector with its settings.

    :returns: the detectors, in name order.
    :raises ConfigError: for a table that names no detector, or a bad table.
    """
    found = detector_plugins()
    unknown = sorted(set(settings.detectors) - set(found))
    if unknown:
        raise ConfigError(
            f"no detector named {', '.join(unknown)} (detectors: {', '.join(sorted(found))})")
    detectors = []
    for name in sorted(found):
        cls = found[name].detector_class()
        own = _structure(settings.detectors.get(name, {}), cls.settings_type, f"[{name}]")
        try:
            Networks(own.allow)
        except ValueError as e:
            raise ConfigError(f"[{name}] allow: {e}") from None
        if own.enabled:
            detectors.append(cls(own, context))
    return detectors


@implementer(IAnalyser)
class DetectAnalyser:
    """
    Runs the detectors.

    Packets are routed by class: TCP, UDP, ICMP/ICMPv6, ARP, and DNS
    messages on the DNS ports over UDP (parsed once for every DNS detector;
    DNS over TCP is not given to detectors).  Every C{check_interval}
    seconds of capture time, and at each report, each detector evaluates
    and the alert book ends the alerts gone quiet.

    :ivar errors: exceptions raised by detectors (logged, sparingly).
    """

    name = "detect"

    def __init__(self, config: AnalyserConfig, book: Optional[AlertBook] = None):
        settings = config.detect or DetectSettings()
        self.settings = settings
        gateways = settings.gateways if settings.gateways is not None else read_gateways()
        self.context = DetectContext(
            allow=Networks(settings.allow), local=Networks(settings.local_networks),
            gateways=gateways)
        self.detectors = build_detectors(settings, self.context)
        self._dns_ports = config.dns_ports
        self._book = book if book is not None else AlertBook(
            "", 0, update_interval=settings.update_interval,
            quiet_after=settings.quiet_after, max_active=settings.max_active_alerts)
        self._check_interval = settings.check_interval
        self._next_check = 0.0
        self.errors = 0
        self.checks = 0

        def wanting(kind):
            return [d for d in self.detectors if kind in d.protocols]

        self._tcp = [d.observe for d in wanting(TCP)]
        self._udp = [d.observe for d in wanting(UDP)]
        self._icmp = [d.observe for d in wanting(ICMP)]
        self._arp = [d.observe for d in wanting(ARP)]
        self._dns = [d.observe_dns for d in wanting(DNS)]
        for d in self.detectors:
            unknown = set(d.protocols) - PACKET_CLASSES
            if unknown:
                raise ConfigError(f"detector {d.name} asks for {sorted(unknown)}")

    @property
    def book(self) -> AlertBook:
        return self._book

    def bind_alerts(self, book: AlertBook) -> None:
        """
        Signal to C{book} (the agent's, which knows its id, epoch and where
        alerts go) instead of the analyser's own.
        """
        self._book = book

    def observe(self, packet) -> None:
        # One branch per class; a detector that raises is counted and the
        # rest still see the packet (try blocks cost nothing until raised).
        proto = packet.proto
        if packet.outgoing and packet.saddr is not None:
            self.context.learn_local(packet.saddr)
        if proto == IPPROTO_TCP:
            observers = self._tcp
        elif proto == IPPROTO_UDP:
            observers = self._udp
            if self._dns and packet.payload_len and (
                    packet.sport in self._dns_ports or packet.dport in self._dns_ports):
                self._observe_dns(packet)
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            observers = self._icmp
        elif packet.arp is not None:
            observers = self._arp
        else:
            observers = ()
        for observe in observers:
            try:
                observe(packet)
            except Exception:
                self._failed("a detector failed on a packet")
        if packet.ts >= self._next_check:
            self.check(packet.ts)

    def _observe_dns(self, packet) -> None:
        message = parse_message(packet.payload)
        if message is None:
            return
        for observe in self._dns:
            try:
                observe(packet, message)
            except Exception:
                self._failed("a detector failed on a DNS message")

    def check(self, now: float) -> None:
        """
        Evaluate every detector and sweep the alert book, unless that was
        done less than C{check_interval} seconds before C{now}.

        :param now: seconds since the Unix epoch (capture clock).
        """
        if now < self._next_check:
            return
        self._next_check = now + self._check_interval
        self._evaluate(now)

    def _evaluate(self, now: float) -> None:
        self.checks += 1
        for detector in self.detectors:
            try:
                detector.evaluate(now, self._book)
            except Exception:
                self._failed(f"detector {detector.name} failed to evaluate")
        self._book.sweep(now)

    def _failed(self, what: str) -> None:
        self.errors += 1
        if self.errors <= 10 or self.errors % 1000 == 0:
            log.failure("{what} ({count} so far)", what=what, count=self.errors)

    def snapshot(self, now: float, interval: float) -> DetectSnapshot:
        self._evaluate(now)
        self._next_check = now + self._check_interval
        stats = {}
        for detector in self.detectors:
            try:
                stats[detector.name] = dict(detector.stats())
            except Exception:
                self._failed(f"detector {detector.name} failed to report")
        return DetectSnapshot(
            detectors=stats,
            local_addresses=self.context.local_addresses,
            errors=self.errors,
            checks=self.checks,
            **self._book.counts(),
        )
