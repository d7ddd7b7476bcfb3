"""
Tests for L{loopy.ui.cli}: the options of ``loopy-ui``, and ``--json``
trying its hubs in order.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from loopy import testing
from loopy.errors import HistoryError, HubUnreachable
from loopy.history import HistoryQuery
from loopy.testing import T0
from loopy.ui import cli
from loopy.ui.history import history_json
from loopy.ui.timerange import TimeRange
from loopy.wire import BoundedAMP, GetFleet, GetHistory
from tests.test_ui_history import sample_history


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


class HistoryOptionsTests(testing.OptionsTestMixin, SynchronousTestCase):
    """
    C{--history}, C{--since}, C{--until} and C{--agent}, read against a
    fixed clock.
    """

    class options_class(cli.Options):
        clock = staticmethod(lambda: T0)

    def test_default_range(self):
        options = self.parse("--json", "--history")
        self.assertEqual((options["range"], options["agent"]), (TimeRange(3600), None))
        self.assertEqual(cli.history_start(options), (TimeRange(3600), None))

    def test_since_until_agent(self):
        options = self.parse("--history", "--since", "2h", "--until", "30m",
                             "--agent", "web-1")
        self.assertEqual(options["range"], TimeRange(5400, T0 - 1800))
        self.assertEqual(options["range"].query(T0, options["agent"]),
                         HistoryQuery(since=T0 - 7200, until=T0 - 1800, agent_id="web-1"))
        self.assertEqual(cli.history_start(options), (TimeRange(5400, T0 - 1800), "web-1"))
        self.assertEqual(self.parse("--history", "--since", "10m")["range"], TimeRange(600))
        epoch = self.parse("--history", "--since", str(T0 - 120), "--until", "now")
        self.assertEqual(epoch["range"], TimeRange(120))

    def test_without_history(self):
        self.assertIsNone(self.parse()["range"])
        self.assertIsNone(cli.history_start(self.parse("--json")))
        self.assertUsageError(["--since", "10m"], "--since needs --history")
        self.assertUsageError(["--json", "--agent", "a"], "--agent needs --history")

    def test_bad_times(self):
        error = self.assertUsageError(["--history", "--since", "yesterday"])
        self.assertIn("--since: cannot read time 'yesterday': give 10m", str(error))
        self.assertUsageError(["--history", "--since", "10"],
                              "--since: cannot read time '10': give a unit (10m, 10h …) or "
                              "seconds since the epoch")
        self.assertUsageError(["--history", "--since", "1h", "--until", "2h"],
                              "--since/--until: the start must be before the end (and "
                              "before now)")


class ServerProtocol(BoundedAMP):
    """
    A hub's end for the C{--json} tests: answers L{GetFleet} with
    L{testing.view} unless C{silent}, and L{GetHistory} with C{history} (a
    History, or an exception to fail with); keeps the history questions
    in C{queries}; fires C{lost} when closed.
    """

    def __init__(self, silent: bool, history=None):
        BoundedAMP.__init__(self)
        self.silent = silent
        self.history = history
        self.queries: list[HistoryQuery] = []
        self.lost = Deferred()

    @GetFleet.responder
    def get_fleet(self):
        return Deferred() if self.silent else {"view": testing.view()}

    @GetHistory.responder
    def get_history(self, query):
        self.queries.append(query)
        if self.silent:
            return Deferred()
        if isinstance(self.history, Exception):
            raise self.history
        return {"history": self.history}

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.lost.callback(None)


class HubsCase(unittest.TestCase):
    """
    Hubs on real listening sockets on 127.0.0.1 (L{ServerProtocol}).
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

    def listen(self, silent: bool = False, history=None) -> str:
        """
        The endpoint of a hub: answering, or C{silent} (it takes the
        connection and never answers).
        """
        def build():
            proto = ServerProtocol(silent, history)
            self.served.append(proto)
            return proto

        port = reactor.listenTCP(0, Factory.forProtocol(build), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"tcp:host=127.0.0.1:port={port.getHost().port}"


class FetchJsonTests(HubsCase):
    """
    L{cli.fetch_json} (``loopy-ui --json``): the hubs in order, the first
    that answers wins.
    """

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


class HistoryJsonTests(HubsCase):
    """
    C{--json --history}: L{cli.fetch_history_json}, then the real program
    against a real socket.
    """

    timeout = 60

    @inlineCallbacks
    def test_fetch(self):
        query = HistoryQuery(since=T0 - 10, until=T0, agent_id="agent-a")
        hubs = [self.listen(silent=True), self.listen(history=sample_history())]
        doc = yield cli.fetch_history_json(hubs, query, 0.5, reactor)
        self.assertEqual([a["agent_id"] for a in doc["agents"]], ["agent-a", "agent-b"])
        self.assertEqual(len(doc["agents"][0]["series"]), 10)
        self.assertEqual([p.queries for p in self.served], [[query], [query]])

    @inlineCallbacks
    def test_history_error(self):
        """
        A hub whose history fails the question is named with its error,
        and the next asked.
        """
        failing = self.listen(history=HistoryError("history store failed: disk I/O error"))
        error = yield self.assertFailure(
            cli.fetch_history_json([failing], HistoryQuery(since=T0), 5, reactor),
            HubUnreachable)
        self.assertEqual(str(error), f"cannot get the history from hub {failing}: "
                                     "history store failed: disk I/O error")

    def run_ui(self, *args: str):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        return getProcessOutputAndValue(sys.executable, ["-m", "loopy.ui.cli", *args],
                                        env=env)

    def hub_option(self, endpoint: str) -> str:
        return endpoint.replace("tcp:host=", "").replace(":port=", ":")

    @inlineCallbacks
    def test_program(self):
        """
        ``loopy-ui --json --history --since 10m --agent agent-a`` prints
        the document and exits 0; the hub was asked for the last 10
        minutes (until now) of agent-a.
        """
        hub = self.listen(history=sample_history())
        before = reactor.seconds()
        out, err, code = yield self.run_ui("--hub", self.hub_option(hub), "--json",
                                           "--history", "--since", "10m", "--agent",
                                           "agent-a")
        after = reactor.seconds()
        self.assertEqual((code, err), (0, b""))
        doc = json.loads(out)
        self.assertEqual(doc, json.loads(json.dumps(history_json(sample_history()))))
        [query] = self.served[0].queries
        self.assertEqual((query.until, query.agent_id), (None, "agent-a"))
        self.assertTrue(before - 600 - 1 <= query.since <= after - 600, query.since)

    @inlineCallbacks
    def test_program_errors(self):
        """
        A hub whose history fails, and a bad time: a message on stderr and
        exit code 2, nothing on stdout.
        """
        hub = self.listen(history=HistoryError("the range is bad"))
        out, err, code = yield self.run_ui("--hub", self.hub_option(hub), "--json",
                                           "--history", "--since", "2020-01-01",
                                           "--until", "2020-01-02")
        self.assertEqual((out, code), (b"", 2))
        self.assertIn(b"loopy-ui: cannot get the history from hub", err)
        self.assertIn(b"the range is bad", err)
        out, err, code = yield self.run_ui("--json", "--history", "--since", "soon")
        self.assertEqual((out, code), (b"", 2))
        self.assertIn(b"--since: cannot read time 'soon'", err)
