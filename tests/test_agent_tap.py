"""
Tests for L{loopy.agent.tap}: the agent's options and composition root.
"""

from __future__ import annotations

import os
import socket

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from loopy.agent import tap
from loopy import testing
from loopy.agent.service import CaptureService, ReportLoop
from loopy.agent.spool import MEMORY_MAX_BYTES
from loopy.agent.uplink import Uplink
from loopy.analysis.base import AnalyserConfig
from loopy.detect.host import DetectSettings

EXCLUDE_DEFAULT_HUB = "(not ((tcp and host 127.0.0.1 and port 7420)))"


def parse(*argv: str) -> tap.Options:
    return testing.parse_options(tap.Options, *argv)


class OptionsTests(testing.OptionsTestMixin, SynchronousTestCase):
    options_class = tap.Options

    def test_defaults(self):
        options = parse()
        self.assertEqual(
            {key: options[key] for key in [
                "hubs", "interfaces", "kernel-filter", "filter", "agent-id", "interval",
                "batch", "max-connections", "max-hosts", "analysers", "dns-ports",
                "promisc", "failback", "hub-timeout"]},
            {
                "hubs": ("tcp:127.0.0.1:7420",),
                "failback": 60.0,
                "hub-timeout": 3.0,
                "interfaces": ("any",),
                "kernel-filter": EXCLUDE_DEFAULT_HUB,
                "filter": None,
                "agent-id": socket.gethostname(),
                "interval": 1.0,
                "batch": 256,
                "max-connections": 100000,
                "max-hosts": 10000,
                "analysers": None,
                "dns-ports": [],
                "promisc": 0,
            },
        )

    def test_capture_defaults(self):
        """
        A TPACKET_V3 ring of 16 MiB per interface, blocks handed over after
        100 ms at the latest.
        """
        options = parse()
        self.assertEqual((options["capture"], options["ring-size"], options["block-timeout"]),
                         ("ring", 16, 100))

    def test_capture_method(self):
        options = parse("--capture", "socket", "--ring-size", "64", "--block-timeout", "10")
        self.assertEqual((options["capture"], options["ring-size"], options["block-timeout"]),
                         ("socket", 64, 10))

    def test_bad_capture_method(self):
        error = self.assertUsageError(["--capture", "mmap"])
        self.assertIn("must be one of ring, socket", str(error))

    def test_bad_ring_size(self):
        error = self.assertUsageError(["--ring-size", "0"])
        self.assertIn("must be a positive whole number", str(error))

    def test_hub_address(self):
        options = parse("--hub", "10.0.0.9:7500")
        self.assertEqual(options["hubs"], ("tcp:host=10.0.0.9:port=7500",))
        self.assertEqual(
            options["kernel-filter"], "(not ((tcp and host 10.0.0.9 and port 7500)))"
        )

    def test_hub_list(self):
        """
        C{--hub} repeats: the failover list, in order; the kernel filter
        drops the traffic of every hub of it (a UNIX socket needs none).
        """
        options = parse("--hub", "10.0.0.9:7500", "--hub", "unix:/run/loopy.sock",
                        "--hub", "[2001:db8::2]")
        self.assertEqual(options["hubs"], ("tcp:host=10.0.0.9:port=7500",
                                           "unix:/run/loopy.sock",
                                           "tcp:host=2001\\:db8\\:\\:2:port=7420"))
        self.assertEqual(
            options["kernel-filter"],
            "(not ((tcp and host 10.0.0.9 and port 7500) or "
            "(tcp and host 2001:db8::2 and port 7420)))",
        )

    def test_hub_twice(self):
        self.assertUsageError(["--hub", "10.0.0.9", "--hub", "10.0.0.9:7420"],
                              "--hub '10.0.0.9:7420' is in the list twice")

    def test_bad_hub_in_list(self):
        self.assertUsageError(["--hub", "10.0.0.9", "--hub", "hub:0"],
                              "bad port in hub address 'hub:0': use 1-65535")

    def test_failover_timers(self):
        options = parse("--failback", "0", "--hub-timeout", "1.5")
        self.assertEqual((options["failback"], options["hub-timeout"]), (0.0, 1.5))
        error = self.assertUsageError(["--failback", "-1"])
        self.assertIn("must be a number of seconds, 0 or more", str(error))
        error = self.assertUsageError(["--hub-timeout", "0"])
        self.assertIn("must be a positive number of seconds", str(error))

    def test_spool(self):
        """
        C{--spool} is made absolute; C{--spool-size} takes octets or K, M,
        G (binary) and defaults to the spool's own default (None here).
        """
        options = parse("--spool", "spool-dir", "--spool-size", "512M")
        self.assertEqual(options["spool"], os.path.abspath("spool-dir"))
        self.assertEqual(options["spool-size"], 512 * 1024 * 1024)
        self.assertEqual((parse()["spool"], parse()["spool-size"]), (None, None))
        for given, octets in [("2097152", 2 * 1024**2), ("1G", 1024**3), ("1.5GiB", 1536 * 1024**2),
                              ("4mb", 4 * 1024**2)]:
            self.assertEqual(tap.spool_size(given), octets, given)

    def test_bad_spool(self):
        for given, message in [("10K", "must be at least 1M"), ("lots", "must be a size"),
                               ("inf", "must be a size"), ("", "must be a size")]:
            error = self.assertUsageError(["--spool-size", given])
            self.assertIn(message, str(error))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("")
        self.assertUsageError(["--spool", path],
                              f"--spool {os.path.abspath(path)}: not a directory")

    def test_hub_ipv6(self):
        options = parse("--hub", "[::1]:7500")
        self.assertEqual(options["kernel-filter"], "(not ((tcp and host ::1 and port 7500)))")

    def test_hub_unix(self):
        """
        A hub over a UNIX socket needs no exclusion from the capture.
        """
        options = parse("--hub", "unix:/run/loopy.sock")
        self.assertIsNone(options["kernel-filter"])
        options = parse("--hub", "unix:/run/loopy.sock", "--filter", "udp")
        self.assertEqual(options["kernel-filter"], "(udp)")

    def test_bad_hub_port(self):
        self.assertUsageError(
            ["--hub", "hub:70000"], "bad port in hub address 'hub:70000': use 1-65535"
        )

    def test_empty_hub(self):
        self.assertUsageError(["--hub", " "], "empty hub address")

    def test_bad_hub_endpoint(self):
        """
        An endpoint string Twisted cannot parse is a usage error, not a
        traceback when the service is made.
        """
        self.assertUsageError(
            ["--hub", "tcp:hub"],
            "bad --hub 'tcp:hub': TCP4ClientEndpoint.__init__() missing 1 required "
            "positional argument: 'port'",
        )
        self.assertUsageError(
            ["--hub", "tcp6:hub:1"], "bad --hub 'tcp6:hub:1': Unknown endpoint type: 'tcp6'"
        )

    def test_filter(self):
        """
        A user filter is combined with the exclusion of the agent's hub
        link.
        """
        options = parse("--filter", "udp port 53")
        self.assertEqual(options["filter"], "udp port 53")
        self.assertEqual(options["kernel-filter"], EXCLUDE_DEFAULT_HUB + " and (udp port 53)")

    def test_bad_filter(self):
        """
        A filter libpcap does not compile is a usage error quoting libpcap.
        """
        error = self.assertUsageError(["--filter", "tcp port"])
        self.assertTrue(str(error).startswith("bad capture filter "), str(error))
        self.assertIn("and (tcp port)", str(error))
        self.assertIn("syntax error", str(error))

    def test_interfaces(self):
        options = parse("--interface", "lo", "-i", "lo")
        self.assertEqual(options["interfaces"], ("lo", "lo"))

    def test_any_interface(self):
        self.assertEqual(parse("-i", "any")["interfaces"], ("any",))

    def test_unknown_interface(self):
        self.assertUsageError(
            ["-i", "lo", "-i", "nosuch0"], "no network interface named 'nosuch0'"
        )

    def test_numbers(self):
        options = parse("--interval", "0.25", "--batch", "64", "--max-connections", "5",
                        "--max-hosts", "6")
        self.assertEqual(
            (options["interval"], options["batch"], options["max-connections"],
             options["max-hosts"]),
            (0.25, 64, 5, 6),
        )

    def test_bad_numbers(self):
        for argv in [["--interval", "0"], ["--interval", "-1"], ["--interval", "soon"],
                     ["--batch", "0"], ["--batch", "1.5"], ["--max-connections", "-3"],
                     ["--max-hosts", "many"]]:
            self.assertUsageError(argv)
        self.assertUsageError(
            ["--interval", "0"],
            "Parameter type enforcement failed: must be a positive number of seconds",
        )

    def test_dns_ports(self):
        self.assertEqual(parse("--dns-port", "5353", "--dns-port", "53")["dns-ports"], [5353, 53])

    def test_bad_dns_port(self):
        self.assertUsageError(["--dns-port", "0"], "--dns-port '0': must be a port number, 1-65535")
        self.assertUsageError(["--dns-port", "65536"])
        self.assertUsageError(["--dns-port", "dns"])

    def test_analysers(self):
        self.assertEqual(parse("--analysers", " ip, dns,,")["analysers"], ["ip", "dns"])

    def test_agent_id(self):
        self.assertEqual(parse("--agent-id", "web-1")["agent-id"], "web-1")

    def test_analyser_config(self):
        options = parse("--max-hosts", "7", "--max-connections", "8", "--dns-port", "5353")
        self.assertEqual(
            tap.analyser_config(options),
            AnalyserConfig(hosts_max=7, conversations_max=7, tcp_connections_max=8,
                           dns_ports=frozenset({5353}), detect=DetectSettings()),
        )
        self.assertEqual(tap.analyser_config(parse()).dns_ports, frozenset({53}))


class MakeServiceTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_700_000_000.25)

    def test_children(self):
        """
        The service is capture, uplink and report loop, and starts nothing.
        """
        options = parse("--hub", "10.0.0.9:7500", "-i", "lo", "--analysers", "ip")
        top = tap.makeService(options, self.reactor)
        self.assertIsInstance(top, MultiService)
        self.assertEqual(
            [type(child) for child in top], [CaptureService, Uplink, ReportLoop]
        )
        capture, uplink, _loop = top
        self.assertEqual((capture._config.method, capture._config.ring_size,
                          capture._config.block_timeout), ("ring", 16 * 1024 * 1024, 100))
        self.assertEqual(uplink.endpoints, ("tcp:host=10.0.0.9:port=7500",))
        self.assertEqual(capture.sockets, {})
        self.assertFalse(top.running)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_uplink(self):
        """
        The uplink gets the hub list and its timers, and asks the report
        loop for a report on every new link.
        """
        options = parse("--hub", "10.0.0.9", "--hub", "10.0.0.10", "--failback", "30",
                        "--hub-timeout", "2", "--analysers", "ip")
        _capture, uplink, loop = tap.makeService(options, self.reactor)
        self.assertEqual(uplink.endpoints, ("tcp:host=10.0.0.9:port=7420",
                                            "tcp:host=10.0.0.10:port=7420"))
        self.assertEqual((uplink.failback, uplink.hub_timeout), (30.0, 2.0))
        self.assertEqual(uplink.on_link, loop.report_now)

    def test_hello(self):
        """
        The uplink says hello with the agent id, this host's name, and an
        epoch of the start time in microseconds.
        """
        top = tap.makeService(parse("--agent-id", "web-1", "--analysers", "ip"), self.reactor)
        uplink = list(top)[1]
        self.assertEqual(
            uplink._hello(),
            {"agent_id": "web-1", "hostname": socket.gethostname(),
             "epoch": 1_700_000_000_250_000},
        )

    def test_spool(self):
        """
        The uplink keeps its records in the C{--spool} directory within
        C{--spool-size}, or in memory; the directory is not touched before
        the service starts.
        """
        directory = self.mktemp()
        top = tap.makeService(parse("--spool", directory, "--spool-size", "2M",
                                    "--analysers", "ip"), self.reactor)
        spool = list(top)[1].delivery.spool
        self.assertEqual((spool.directory, spool.max_bytes),
                         (os.path.abspath(directory), 2 * 1024**2))
        self.assertFalse(os.path.exists(directory))
        spool = list(tap.makeService(parse("--analysers", "ip"), self.reactor))[1].delivery.spool
        self.assertEqual((spool.directory, spool.max_bytes), (None, MEMORY_MAX_BYTES))

    def test_unknown_analyser(self):
        error = self.assertRaises(
            usage.UsageError, tap.makeService, parse("--analysers", "ip,nope"), self.reactor
        )
        self.assertTrue(str(error).startswith("no analyser plugin named nope (found: "),
                        str(error))


class DetectOptionsTests(SynchronousTestCase):
    """
    C{--detect-config}: the detectors' settings file, read and checked when
    the options are parsed.
    """

    def write(self, text):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_default(self):
        self.assertEqual(parse()["detect"], DetectSettings())

    def test_file(self):
        path = self.write('[detect]\ncheck_interval = 0.5\nallow = ["192.0.2.10"]\n')
        settings = parse("--detect-config", path)["detect"]
        self.assertEqual((settings.check_interval, settings.allow), (0.5, ("192.0.2.10",)))

    def test_bad_file(self):
        path = self.write("[detect]\ncheck_intervl = 0.5\n")
        error = self.assertRaises(usage.UsageError, parse, "--detect-config", path)
        self.assertIn("--detect-config: bad settings: extra fields found (check_intervl)",
                      str(error))
        error = self.assertRaises(usage.UsageError, parse, "--detect-config", path + ".no")
        self.assertIn("cannot read", str(error))

    def test_wired(self):
        """
        The agent's alert book goes to the detect analyser and sends through
        the uplink; the report loop checks at the settings' interval.
        """
        reactor = MemoryReactorClock()
        path = self.write("[detect]\ncheck_interval = 0.5\n")
        top = tap.makeService(parse("--agent-id", "web-1", "--detect-config", path,
                                    "--analysers", "detect,ip"), reactor)
        _capture, uplink, loop = top
        book = loop._monitor.alerts
        detect = loop._monitor.analysers[0]
        self.assertIs(detect.book, book)
        self.assertEqual((book.agent_id, book.emit), ("web-1", uplink.send_alert))
        self.assertEqual(loop._check_interval, 0.5)
