"""
Tests for L{loopy.ui.cli}: the options of ``loopy-ui``, and ``--json``
trying its hubs in order.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from loopy import testing
from loopy.errors import HubUnreachable
from loopy.ui import cli
from loopy.wire import BoundedAMP, GetFleet


class OptionsTests(testing.OptionsTestMixin, SynchronousTestCase):
    options_class = cli.Options

    def test_defaults(self):
        options = self.parse()
        self.assertEqual(
            {key: options[key] for key in ["hubs", "json", "timeout", "log", "drop-warning"]},
            {"hubs": ("tcp:host=127.0.0.1:port=7420",), "json": 0, "timeout": 10.0,
             "log": None, "drop-warning": 1.0},
        )

    def test_hub_list(self):
        options = self.parse("--hub", "hub-a", "--hub", "tcp:hub-b:7500")
        self.assertEqual(options["hubs"], ("tcp:host=hub-a:port=7420", "tcp:hub-b:7500"))

    def test_bad_hub(self):
        self.assertUsageError(["--hub", "hub-a", "--hub", ""], "empty hub address")
        self.assertUsageError(["--hub", "hub-a", "--hub", "hub-a:7420"],
                              "--hub 'hub-a:7420' is in the list twice")

    def test_drop_warning(self):
        self.assertEqual(self.parse("--drop-warning", "0.5")["drop-warning"], 0.5)
        error = self.assertUsageError(["--drop-warning", "0"])
        self.assertIn("must be a positive number", str(error))

    def test_log(self):
        path = self.mktemp()
        self.assertEqual(self.parse("--log", path)["log"], path)

    def test_log_unwritable(self):
        """
        A log file that cannot be opened is a usage error, before the
        screen is taken over.
        """
        path = self.mktemp() + "/missing-directory/ui.log"
        self.assertUsageError(["--log", path],
                              f"--log {path}: No such file or directory")


class ServerProtocol(BoundedAMP):
    """
    A hub's end for the C{--json} tests: answers L{GetFleet} with
    L{testing.view} unless C{silent}; fires C{lost} when closed.
    """

    def __init__(self, silent: bool):
        BoundedAMP.__init__(self)
        self.silent = silent
        self.lost = Deferred()

    @GetFleet.responder
    def get_fleet(self):
        return Deferred() if self.silent else {"view": testing.view()}

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.lost.callback(None)


class FetchJsonTests(unittest.TestCase):
    """
    L{cli.fetch_json} (``loopy-ui --json``) against real listening sockets
    on 127.0.0.1: the hubs in order, the first that answers wins.
    """

    def setUp(self):
        self.served: list[ServerProtocol] = []

    def tearDown(self):
        return gatherResults([p.lost for p in self.served])

    def closed_port(self) -> str:
        """
        The endpoint of a port nothing listens on (connection refused).
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"tcp:host=127.0.0.1:port={port}"

    def listen(self, silent: bool = False) -> str:
        """
        The endpoint of a hub: answering, or C{silent} (it takes the
        connection and never answers).
        """
        def build():
            proto = ServerProtocol(silent)
            self.served.append(proto)
            return proto

        port = reactor.listenTCP(0, Factory.forProtocol(build), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"tcp:host=127.0.0.1:port={port.getHost().port}"

    @inlineCallbacks
    def test_first_that_answers(self):
        """
        A refused hub, then a silent one (given up after C{timeout}), then
        one that answers: the document is the third's.
        """
        hubs = [self.closed_port(), self.listen(silent=True), self.listen()]
        doc = yield cli.fetch_json(hubs, 0.5, reactor)
        self.assertEqual(doc["hub"]["name"], testing.hub_info().name)
        self.assertEqual([a["agent_id"] for a in doc["agents"]], ["agent-a", "agent-b"])
        self.assertEqual(len(self.served), 2)

    @inlineCallbacks
    def test_first_answers(self):
        hubs = [self.listen(), self.closed_port()]
        doc = yield cli.fetch_json(hubs, 5, reactor)
        self.assertEqual(doc["hub"]["name"], testing.hub_info().name)

    @inlineCallbacks
    def test_none_answers(self):
        """
        No hub answers: L{HubUnreachable} names every hub tried and what
        went wrong with it.
        """
        refused, silent = self.closed_port(), self.listen(silent=True)
        error = yield self.assertFailure(cli.fetch_json([refused, silent], 0.5, reactor),
                                         HubUnreachable)
        self.assertEqual(
            str(error),
            f"cannot get the fleet from hub {refused}: Connection was refused by other "
            f"side: 111: Connection refused.; from hub {silent}: no answer within 0.5 s",
        )
