"""
Tests for L{loopy.hub.tap}: the hub's options and composition root.
"""

from __future__ import annotations

import os
import socket

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from loopy.hub import sqlhistory, tap
from loopy.hub.historysync import HistoryKeeper
from loopy import testing
from loopy.hub.server import Hub


def parse(*argv: str) -> tap.Options:
    return testing.parse_options(tap.Options, *argv)


class OptionsTests(testing.OptionsTestMixin, SynchronousTestCase):
    options_class = tap.Options

    def test_defaults(self):
        options = parse()
        self.assertEqual(
            {key: options[key] for key in
             ["listen", "name", "stale-after", "push-interval", "max-agents"]},
            {
                "listen": "tcp:7420:interface=127.0.0.1",
                "name": socket.gethostname(),
                "stale-after": 3.0,
                "push-interval": 1.0,
                "max-agents": 10000,
            },
        )

    def test_values(self):
        options = parse("--listen", "tcp:7500", "--name", "hub-a", "--stale-after", "2.5",
                        "--push-interval", "0.5", "--max-agents", "3")
        self.assertEqual(
            (options["listen"], options["name"], options["stale-after"],
             options["push-interval"], options["max-agents"]),
            ("tcp:7500", "hub-a", 2.5, 0.5, 3),
        )

    def test_unix_listen(self):
        self.assertEqual(parse("--listen", "unix:/run/loopy.sock")["listen"],
                         "unix:/run/loopy.sock")

    def test_bad_listen(self):
        self.assertUsageError(
            ["--listen", "bogus:7420"], "bad --listen 'bogus:7420': Unknown endpoint type: 'bogus'"
        )
        self.assertUsageError(
            ["--listen", "tcp:seven"],
            "bad --listen 'tcp:seven': invalid literal for int() with base 10: 'seven'",
        )

    def test_listen_port_range(self):
        self.assertUsageError(
            ["--listen", "tcp:70000"], "bad --listen 'tcp:70000': use a port 0-65535"
        )
        self.assertUsageError(["--listen", "tcp:-1"], "bad --listen 'tcp:-1': use a port 0-65535")
        self.assertEqual(parse("--listen", "tcp:0")["listen"], "tcp:0")
        self.assertEqual(parse("--listen", "tcp:65535")["listen"], "tcp:65535")

    def test_advertise(self):
        """
        --advertise is checked as a hub address and becomes the endpoint
        the hub gives; without it the hub gives its --listen string.
        """
        self.patch(sqlhistory, "open_history", sqlhistory.open_sync)
        data = ("--data", self.mktemp())
        options = parse("--listen", "tcp:7500", "--advertise", "hub-a.example.net", *data)
        self.assertEqual(options["advertise"], "tcp:host=hub-a.example.net:port=7420")
        hub = tap.makeService(options, MemoryReactorClock()).hub
        self.assertEqual(hub.endpoint, "tcp:host=hub-a.example.net:port=7420")
        hub.history.close()
        hub = tap.makeService(parse("--listen", "tcp:7500", *data), MemoryReactorClock()).hub
        hub.history.close()
        self.assertEqual(hub.endpoint, "tcp:7500")
        self.assertIn("bad --advertise", self.assertRaises(
            usage.UsageError, parse, "--advertise", "tcp:x").args[0])

    def test_history_options(self):
        """
        --data defaults to a directory per hub name under the user's data
        directory; --tiers is parsed, and a bad one is a usage error.
        """
        self.patch(os, "environ", {"XDG_DATA_HOME": "/srv/data"})
        options = parse("--name", "berlin")
        self.assertEqual(options["data"], "/srv/data/loopy/hub-berlin")
        self.assertEqual([tier.name for tier in options["tiers"]], ["1s", "1m", "1h"])
        self.assertEqual(options["history-top"], 10)
        self.assertIn("bad --tiers", self.assertRaises(
            usage.UsageError, parse, "--tiers", "1m:1h,1s:1d").args[0])

    def test_unusable_data(self):
        """
        A --data that cannot be used stops the hub at start with a usage
        error naming it.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a directory")
        error = self.assertRaises(usage.UsageError, tap.makeService,
                                  parse("--data", path), MemoryReactorClock())
        self.assertIn(f"--data {path}", str(error))

    def test_peer_timeout_above_interval(self):
        self.assertUsageError(["--gossip-interval", "2", "--peer-timeout", "1"],
                              "--peer-timeout must be longer than --gossip-interval")
        self.assertUsageError(["--peer", "host:port"],
                              "bad port in hub address 'host:port': use 1-65535")
        self.assertUsageError(["--peer", "tcp:x"])
        self.assertIn("bad --peer 'tcp:x'", self.assertRaises(
            usage.UsageError, parse, "--peer", "tcp:x").args[0])

    def test_bad_numbers(self):
        for argv in [["--stale-after", "0"], ["--stale-after", "later"],
                     ["--push-interval", "-1"], ["--max-agents", "0"],
                     ["--max-agents", "2.5"]]:
            self.assertUsageError(argv)
        self.assertUsageError(
            ["--max-agents", "0"],
            "Parameter type enforcement failed: must be a positive whole number",
        )


class MakeServiceTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000)
        # The store's transactions run at once here (no thread pool).
        self.patch(sqlhistory, "open_history", sqlhistory.open_sync)
        self.data = self.mktemp()

    def test_children(self):
        """
        The hub is one server endpoint service serving the L{Hub} factory,
        and its peer links, made from the options, and starts nothing.
        """
        options = parse("--listen", "tcp:7500:interface=10.0.0.1", "--name", "hub-a",
                        "--stale-after", "5", "--push-interval", "2", "--max-agents", "9",
                        "--peer", "10.0.0.2", "--peer", "tcp:10.0.0.3:7421",
                        "--peer", "10.0.0.2", "--gossip-interval", "0.5",
                        "--peer-timeout", "4", "--data", self.data, "--tiers", "1s:1h,1m:1d",
                        "--history-top", "5")
        top = tap.makeService(options, self.reactor)
        self.assertIsInstance(top, MultiService)
        (keeper, server, peers, syncer) = top
        self.assertIsInstance(keeper, HistoryKeeper)
        self.assertIs(syncer, top.hub.syncer)
        self.assertIs(keeper.history, top.hub.history)
        self.assertEqual([(t.step, t.retention) for t in top.hub.history.tiers],
                         [(1, 3600), (60, 86400)])
        self.assertTrue(os.path.exists(os.path.join(self.data, "history.sqlite")))
        self.assertIsInstance(server, StreamServerEndpointService)
        hub = top.hub
        self.assertIs(peers, hub.peers)
        self.assertEqual(options["peers"], ("tcp:host=10.0.0.2:port=7420", "tcp:10.0.0.3:7421"))
        self.assertEqual((peers.gossip_interval, peers.peer_timeout), (0.5, 4.0))
        self.assertIsInstance(hub, Hub)
        self.assertIs(server.factory, hub)
        self.assertEqual(
            (hub.name, hub.endpoint, hub.started, hub.fleet.stale_after,
             hub.fleet.max_agents, hub.clock),
            ("hub-a", "tcp:7500:interface=10.0.0.1", 1000, 5.0, 9, self.reactor),
        )
        self.assertFalse(top.running)
        self.assertEqual(self.reactor.tcpServers, [])

    def test_start_listens(self):
        top = tap.makeService(parse("--listen", "tcp:7500:interface=10.0.0.1",
                                    "--peer", "10.0.0.2:7501", "--data", self.data),
                              self.reactor)
        top.startService()
        self.assertEqual(
            [(port, factory, interface) for port, factory, _backlog, interface
             in self.reactor.tcpServers],
            [(7500, top.hub, "10.0.0.1")],
        )
        self.assertEqual([(host, port) for host, port, *_ in self.reactor.tcpClients],
                         [("10.0.0.2", 7501)])
        self.successResultOf(top.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class ListeningServiceTests(SynchronousTestCase):
    """
    A port that cannot be bound ends the hub's start-up with one line.
    """

    def test_in_use(self):
        class Refused:
            def listen(self, factory):
                return defer.fail(CannotListenError(
                    "127.0.0.1", 7420, OSError(98, "Address already in use")))

        service = tap.ListeningService(Refused(), Factory(), "tcp:7420:interface=127.0.0.1")
        error = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(
            str(error),
            "loopy-hub: cannot listen on tcp:7420:interface=127.0.0.1: Address already in use")

    def test_listens(self):
        ports = []

        class Accepting:
            def listen(self, factory):
                ports.append(factory)
                return defer.succeed(object())

        factory = Factory()
        tap.ListeningService(Accepting(), factory, "tcp:7420").privilegedStartService()
        self.assertEqual(ports, [factory])
