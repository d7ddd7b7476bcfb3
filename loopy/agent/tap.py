# -*- test-case-name: tests.test_agent_tap -*-
"""
``twistd loopy-agent``: options and the composition root of the agent.
"""

from __future__ import annotations

import os
import socket

from twisted.python import usage

from loopy.analysis.base import AnalyserConfig, find_analysers
from loopy.dissect import bpf
from loopy.endpoints import tcp_target
from loopy.errors import LoopyError
from loopy.options import (
    HubListOptions,
    non_negative_float,
    port,
    positive_float,
    positive_int,
)


CAPTURE_METHODS = ("ring", "socket")
#: Octets per unit suffix of C{--spool-size} (binary: K is 1,024).
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
#: The smallest C{--spool-size}.
SPOOL_MIN_BYTES = 1024**2


def spool_size(value: str) -> int:
    """
    A C{--spool-size}: octets, or a number with a suffix K, M or G (KiB,
    MiB, GiB); at least L{SPOOL_MIN_BYTES}.

    :raises ValueError: otherwise.
    """
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in SIZE_UNITS else ""
    try:
        octets = int(float(text[:len(text) - len(unit)]) * SIZE_UNITS[unit])
    except (ValueError, OverflowError):
        raise ValueError("must be a size in octets, or with a suffix K, M or G") from None
    if octets < SPOOL_MIN_BYTES:
        raise ValueError("must be at least 1M")
    return octets


def capture_method(value: str) -> str:
    """
    A C{--capture} value: one of L{CAPTURE_METHODS}.

    :raises ValueError: for anything else.
    """
    if value not in CAPTURE_METHODS:
        raise ValueError(f"must be one of {', '.join(CAPTURE_METHODS)}")
    return value


class Options(HubListOptions):
    """
    Options of ``twistd loopy-agent``.
    """

    synopsis = "[options]"
    longdesc = (
        "Capture this server's traffic on raw packet sockets, analyse it (IP, "
        "TCP, DNS) and report to a Loopy hub every interval. Needs root or "
        "CAP_NET_RAW. With --pcap FILE it replays a capture file instead "
        "(no raw sockets, no root)."
    )

    optFlags = [
        ["promisc", None, "Put the capture interfaces in promiscuous mode."],
        ["pace", None, "With --pcap: replay at the recorded pace, not at full speed."],
        ["exit-after-pcap", None,
         "With --pcap: stop once the file is replayed and the final report sent."],
    ]
    optParameters = [
        ["failback", None, 60.0,
         "Seconds between tries of the hubs listed before the linked one "
         "(0: stay on the linked hub until it fails).", non_negative_float],
        ["hub-timeout", None, 3.0,
         "Seconds a call to the hub may go unanswered before the link is "
         "dropped and the next hub tried.", positive_float],
        ["filter", None, None,
         "Capture only traffic matching this tcpdump expression (pcap-filter(7))."],
        ["agent-id", None, None, "This agent's id in the fleet [default: host name]."],
        ["interval", None, 1.0, "Seconds between reports.", positive_float],
        ["capture", None, "ring",
         "How frames are read: ring (a TPACKET_V3 ring per interface; batched "
         "reads where the kernel refuses one) or socket (batched reads).", capture_method],
        ["ring-size", None, 16, "MiB of capture ring per interface.", positive_int],
        ["block-timeout", None, 100,
         "Milliseconds before the kernel hands over a partly filled ring block "
         "(the longest a frame waits at low rates).", positive_int],
        ["batch", None, 256,
         "Most frames read per wake-up with --capture socket, and replayed per "
         "reactor turn with --pcap.", positive_int],
        ["max-connections", None, 100000,
         "TCP connection table bound (least recently active dropped).", positive_int],
        ["max-hosts", None, 10000,
         "Host and conversation table bound (lighter half dropped).", positive_int],
        ["analysers", None, None,
         "Comma-separated analysers to run [default: every plugin found]."],
        ["pcap", None, None,
         "Replay this pcap or pcapng file instead of capturing live."],
        ["spool", None, None,
         "Keep the reports and alerts no hub has acknowledged yet in this "
         "directory, so they survive a restart [default: in memory, lost when the "
         "agent stops]. One directory per agent."],
        ["spool-size", None, None,
         "Most octets the spool may take; past it the oldest reports are dropped "
         "first, alerts last (suffixes K, M, G) [default: 256M with --spool, 64M "
         "in memory].", spool_size],
        ["detect-config", None, None,
         "The detectors' thresholds and allow-lists, a TOML file "
         "(docs/detectors/README.md) [default: the documented defaults]."],
    ]

    def __init__(self):
        HubListOptions.__init__(self)
        self["interfaces"] = []
        self["dns-ports"] = []

    def opt_interface(self, name):
        """
        Capture on this interface (repeatable); "any": every interface, also
        ones that appear later [default: any].
        """
        self["interfaces"].append(name)

    opt_i = opt_interface

    def opt_dns_port(self, value):
        """
        Parse UDP and TCP traffic on this port as DNS (repeatable) [default: 53].
        """
        try:
            self["dns-ports"].append(port(value))
        except ValueError as e:
            raise usage.UsageError(f"--dns-port {value!r}: {e}") from None

    def postOptions(self):
        HubListOptions.postOptions(self)
        if self["pcap"] is not None:
            self._pcap_options()
        else:
            for flag in ("pace", "exit-after-pcap"):
                if self[flag]:
                    raise usage.UsageError(f"--{flag} needs --pcap FILE")
            self._live_options()
        if self["analysers"] is not None:
            self["analysers"] = [a.strip() for a in self["analysers"].split(",") if a.strip()]
        self["agent-id"] = self["agent-id"] or socket.gethostname()
        if self["spool"] is not None:
            self["spool"] = os.path.abspath(self["spool"])
            if os.path.exists(self["spool"]) and not os.path.isdir(self["spool"]):
                raise usage.UsageError(f"--spool {self['spool']}: not a directory")
        self["detect"] = self._detect_settings()

    def _detect_settings(self):
        """
        The detectors' settings: read and checked now, so a wrong file
        stops the agent with a usage error naming the key.
        """
        from loopy.detect.host import DetectSettings, load_settings

        if self["detect-config"] is None:
            return DetectSettings()
        try:
            return load_settings(self["detect-config"])
        except LoopyError as e:
            raise usage.UsageError(f"--detect-config: {e}") from None

    def _pcap_options(self):
        """
        Check a replay: a readable capture file and no live-only option.
        """
        from loopy.agent.pcap import sniff

        for given, name in [(self["interfaces"], "--interface"),
                            (self["promisc"], "--promisc"),
                            (self["filter"], "--filter")]:
            if given:
                raise usage.UsageError(
                    f"{name} applies to live capture only; it cannot be used with --pcap")
        if not os.path.isfile(self["pcap"]):
            raise usage.UsageError(f"--pcap {self['pcap']}: no such file")
        try:
            sniff(self["pcap"])
        except LoopyError as e:
            raise usage.UsageError(f"--pcap: {e}") from None
        self["interfaces"] = ()
        self["kernel-filter"] = None

    def _live_options(self):
        self["interfaces"] = tuple(self["interfaces"] or ["any"])
        for name in self["interfaces"]:
            if name != "any" and name not in {n for _, n in socket.if_nameindex()}:
                raise usage.UsageError(f"no network interface named {name!r}")
        targets = [t for t in map(tcp_target, self["hubs"]) if t is not None]
        self["kernel-filter"] = bpf.combine(
            bpf.exclude_endpoints(targets), self["filter"]
        )
        if self["kernel-filter"]:
            try:
                bpf.compile_filter(self["kernel-filter"])
            except LoopyError as e:
                raise usage.UsageError(str(e)) from None


def analyser_config(options: Options) -> AnalyserConfig:
    """
    The analysers' bounds from the options.
    """
    return AnalyserConfig(
        hosts_max=options["max-hosts"],
        conversations_max=options["max-hosts"],
        tcp_connections_max=options["max-connections"],
        dns_ports=frozenset(options["dns-ports"] or [53]),
        detect=options["detect"],
    )


def makeService(options: Options, reactor=None):
    """
    Assemble the agent: capture (live sockets, or a capture file with
    C{--pcap}) → monitor → report loop → uplink (which spools every record,
    in C{--spool} or in memory, until a hub acknowledges it, and asks the
    loop for a report at once on every new hub link).  Starts nothing: the
    spool directory is locked and read when the uplink starts.

    :raises usage.UsageError: if an analyser plugin is missing.
    """
    if reactor is None:
        from twisted.internet import reactor
    from twisted.application.service import MultiService

    from loopy.agent.monitor import Monitor
    from loopy.agent.ring import MIB
    from loopy.agent.service import CaptureConfig, CaptureService, PcapSource, ReportLoop
    from loopy.agent.spool import Spool
    from loopy.agent.uplink import Uplink
    from loopy.detect.alerts import AlertBook

    try:
        analysers = find_analysers(analyser_config(options), options["analysers"])
    except LoopyError as e:
        raise usage.UsageError(str(e)) from None
    epoch = int(reactor.seconds() * 1_000_000)
    hostname = socket.gethostname()
    top = MultiService()
    settings = options["detect"]
    book = AlertBook(options["agent-id"], epoch, update_interval=settings.update_interval,
                     quiet_after=settings.quiet_after, max_active=settings.max_active_alerts)
    monitor = Monitor(options["agent-id"], hostname, epoch, analysers, alerts=book)
    if options["pcap"] is not None:
        capture = PcapSource(options["pcap"], monitor.frame, reactor,
                             pace=bool(options["pace"]), batch=options["batch"])
        now = capture.now
    else:
        capture = CaptureService(
            CaptureConfig(
                interfaces=options["interfaces"],
                filter_expression=options["kernel-filter"],
                promisc=options["promisc"],
                batch=options["batch"],
                method=options["capture"],
                ring_size=options["ring-size"] * MIB,
                block_timeout=options["block-timeout"],
            ),
            monitor.frame,
            reactor,
        )
        now = None
    monitor.attach_capture(capture)
    uplink = Uplink(
        options["hubs"],
        reactor,
        lambda: {"agent_id": options["agent-id"], "hostname": hostname, "epoch": epoch},
        hub_timeout=options["hub-timeout"],
        failback=options["failback"],
        spool=Spool(options["spool"], reactor, options["spool-size"]),
    )
    book.emit = uplink.send_alert
    capture.setServiceParent(top)
    uplink.setServiceParent(top)
    loop = ReportLoop(monitor, capture, uplink, options["interval"], reactor, now=now,
                      check_interval=settings.check_interval)
    loop.setServiceParent(top)
    uplink.on_link = loop.report_now
    if options["pcap"] is not None:
        capture.when_done().addCallback(
            after_replay, loop, reactor, bool(options["exit-after-pcap"]))
    return top


def after_replay(summary, loop, reactor, exit_after: bool):
    """
    When a replay is done: send the final report, then stop the reactor if
    C{exit_after} (whether that report was answered, failed or found no hub
    within the wait of L{ReportLoop.final_report}).

    :returns: a Deferred that fires when that is done.
    """
    from twisted.internet.error import ReactorNotRunning

    def stop(_):
        try:
            reactor.stop()
        except ReactorNotRunning:
            pass

    d = loop.final_report()
    if exit_after:
        d.addBoth(stop)
    return d
