"""
Tests for L{loopy.ui.client.HubClient}: a UI watching a real L{Hub} over
in-memory connections.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import (
    IOPump,
    connect,
    connectedServerAndClient,
    makeFakeClient,
    makeFakeServer,
)
from twisted.trial.unittest import SynchronousTestCase

from loopy import __version__
from loopy.hub.server import Hub
from loopy.ui.client import CONNECTED, CONNECTING, RECONNECTING, HubClient
from loopy.errors import HistoryError, HubUnreachable
from loopy.history import HistoryQuery
from loopy.wire import AgentHello, BoundedAMP, GetHistory, Report, Watch
from loopy import testing
from loopy.testing import T0


class HubClientCase(SynchronousTestCase):
    """
    A L{HubClient} of C{hubs} on a memory reactor, started, and a real
    L{Hub} to accept its connections.
    """

    hubs: tuple[str, ...] = ("tcp:host=10.0.0.9:port=7420",)

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(T0)
        self.hub = Hub("hub-a", "tcp:7420", self.reactor, push_interval=1.0)
        self.hub.doStart()
        self.client = HubClient(self.hubs, self.reactor)
        self.pumps: list[IOPump] = []
        self.client.start()
        self.addCleanup(self.stop)

    def stop(self):
        d = self.client.stop()
        self.flush()
        self.successResultOf(d)
        self.hub.doStop()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def flush(self):
        for pump in self.pumps:
            pump.flush()

    def tick(self, seconds=1.0):
        self.reactor.advance(seconds)
        self.flush()

    def accept(self) -> IOPump:
        """
        Complete the client's newest connection attempt, to the hub.
        """
        host, port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        ui = factory.buildProtocol(IPv4Address("TCP", host, port))
        server = self.hub.buildProtocol(None)
        pump = connect(server, makeFakeServer(server), ui, makeFakeClient(ui),
                       clock=self.reactor)
        self.pumps.append(pump)
        return pump

    def agent_reports(self, agent_id="agent-a"):
        agent, _server, pump = connectedServerAndClient(
            lambda: self.hub.buildProtocol(None), BoundedAMP, clock=self.reactor
        )
        self.pumps.append(pump)
        answers = []
        for command, kw in [
            (AgentHello, dict(agent_id=agent_id, hostname="host-a", epoch=1,
                              version=__version__)),
            (Report, dict(report=testing.report(agent_id, epoch=1))),
        ]:
            agent.callRemote(command, **kw).addCallbacks(answers.append, answers.append)
            pump.flush()
        self.assertEqual(answers, [{"hub": "hub-a"}, {"accepted": True}])


class HubClientTests(HubClientCase):
    def test_connecting(self):
        self.assertEqual(
            [(host, port) for host, port, *_ in self.reactor.tcpClients],
            [("10.0.0.9", 7420)],
        )
        self.assertEqual(self.client.snapshot(), (None, None, CONNECTING))
        self.assertEqual(self.client.updates, 0)

    def test_watch_answer(self):
        """
        Once connected, the client watches the hub and keeps its answer,
        with the local time it arrived.
        """
        self.agent_reports()
        self.accept()
        view, at, state = self.client.snapshot()
        self.assertEqual((at, state, self.client.updates), (T0, CONNECTED, 1))
        self.assertEqual(view.hub.name, "hub-a")
        self.assertEqual(view.hub.uis_linked, 1)
        self.assertEqual([(e.agent_id, e.report) for e in view.agents], [("agent-a", None)])

    def test_pushes(self):
        self.accept()
        self.tick(0.5)
        self.assertEqual(self.client.updates, 1)
        self.tick(0.5)
        view, at, _ = self.client.snapshot()
        self.assertEqual((self.client.updates, at, view.hub.now), (2, T0 + 1, T0 + 1))
        self.agent_reports()
        self.tick()
        view, at, _ = self.client.snapshot()
        self.assertEqual((self.client.updates, at), (3, T0 + 2))
        self.assertEqual([e.agent_id for e in view.agents], ["agent-a"])

    def test_detail(self):
        """
        Asking for an agent's detail watches again at once; the answer and
        later pushes carry that agent's report.
        """
        self.agent_reports()
        self.accept()
        self.client.set_detail("agent-a")
        self.flush()
        view, _, _ = self.client.snapshot()
        self.assertEqual(self.client.updates, 2)
        self.assertEqual(view.agents[0].report, testing.report("agent-a", epoch=1))
        self.tick()
        self.assertEqual(self.client.updates, 3)
        self.assertEqual(self.client.snapshot()[0].agents[0].report,
                         testing.report("agent-a", epoch=1))
        self.client.set_detail("")
        self.flush()
        self.assertIsNone(self.client.snapshot()[0].agents[0].report)

    def test_detail_before_connected(self):
        """
        A detail asked for before the link is up is used by the first watch.
        """
        self.agent_reports()
        self.client.set_detail("agent-a")
        self.assertEqual(self.client.updates, 0)
        self.accept()
        self.assertEqual(self.client.snapshot()[0].agents[0].report,
                         testing.report("agent-a", epoch=1))

    def test_link_lost(self):
        """
        When the link is lost the client says so, keeps the last view, and
        reconnects after its backoff delay (0.75 s plus up to 1 s of jitter).
        """
        pump = self.accept()
        view = self.client.snapshot()[0]
        pump.server.transport.loseConnection()
        self.flush()
        self.assertEqual(self.client.snapshot(), (view, T0, RECONNECTING))
        self.assertEqual(self.hub.info().uis_linked, 0)
        self.reactor.advance(0.74)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(1.01)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.accept()
        view, at, state = self.client.snapshot()
        self.assertEqual((at, state, self.client.updates), (T0 + 1.75, CONNECTED, 2))


HUB_A, HUB_B = "tcp:host=10.0.0.1:port=7420", "tcp:host=10.0.0.2:port=7420"


class SilentHub(BoundedAMP):
    """
    A hub that takes a Watch and never answers it, nor pushes.
    """

    @Watch.responder
    def watch(self, detail):
        return Deferred()


class FailoverTests(HubClientCase):
    """
    A UI with hubs A and B moves along the list as the agent does, and
    says which hub it is on.
    """

    hubs = (HUB_A, HUB_B)

    def accept_with(self, server) -> IOPump:
        host, port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        ui = factory.buildProtocol(IPv4Address("TCP", host, port))
        pump = connect(server, makeFakeServer(server), ui, makeFakeClient(ui),
                       clock=self.reactor)
        self.pumps.append(pump)
        return pump

    def refuse(self):
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(self.reactor.connectors[-1],
                                       Failure(ConnectionRefusedError()))

    def hosts(self):
        return [host for host, *_ in self.reactor.tcpClients]

    def test_first_hub(self):
        self.assertEqual(self.hosts(), ["10.0.0.1"])
        self.assertEqual(self.client.endpoint_in_use, HUB_A)

    def test_refused_moves_on(self):
        self.refuse()
        self.assertEqual(self.client.endpoint_in_use, HUB_B)
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        self.accept()
        self.assertEqual((self.client.snapshot()[2], self.client.endpoint_in_use),
                         (CONNECTED, HUB_B))

    def test_lost_moves_on(self):
        pump = self.accept()
        pump.server.transport.loseConnection()
        self.flush()
        self.assertEqual((self.client.snapshot()[2], self.client.endpoint_in_use),
                         (RECONNECTING, HUB_B))
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_watch_refused_moves_on(self):
        """
        A peer that fails the Watch (here: it does not know the command)
        is left for the next hub.
        """
        pump = self.accept_with(BoundedAMP())
        self.assertTrue(pump.clientIO.disconnected)
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_silent_hub(self):
        """
        A hub that says nothing for 5 s is dropped, counted, and the next
        one tried 0.25 s later.
        """
        pump = self.accept_with(SilentHub())
        self.reactor.advance(4.99)
        self.assertFalse(pump.clientIO.disconnected)
        self.reactor.advance(0.01)
        self.flush()
        self.assertTrue(pump.clientIO.disconnected)
        self.assertEqual(self.client.links_timed_out, 1)
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_slow_pushing_hub(self):
        """
        A hub that pushes every 2 s (its views say so) is given five of
        those before it counts as silent.
        """
        self.hub._push_interval = 2.0
        self.hub.doStop()
        self.hub.doStart()
        pump = self.accept()
        self.assertEqual(self.client.silence_limit, 10.0)
        self.hub._push.stop()
        self.reactor.advance(9.99)
        self.flush()
        self.assertFalse(pump.clientIO.disconnected)
        self.reactor.advance(0.01)
        self.flush()
        self.assertEqual(self.client.links_timed_out, 1)
        self.hub._push.start(2.0, now=False)

    def test_pushes_keep_the_link(self):
        """
        A hub pushing every second is never silent for 5 s.
        """
        self.accept()
        for _ in range(20):
            self.tick()
        self.assertEqual((self.client.snapshot()[2], self.client.links_timed_out),
                         (CONNECTED, 0))
        self.assertEqual(self.client.updates, 21)

    def test_no_failback(self):
        """
        The UI stays on B while B works, even once A is back.
        """
        self.refuse()
        self.reactor.advance(0.25)
        self.accept()
        for _ in range(120):
            self.tick()
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])


class HistoryHub(SilentHub):
    """
    A hub that takes a Watch and never answers it, and answers
    L{GetHistory} with C{answer}: a History, an exception to fail with, or
    None for never.
    """

    def __init__(self, answer):
        SilentHub.__init__(self)
        self.answer = answer
        self.queries = []

    @GetHistory.responder
    def get_history(self, query):
        self.queries.append(query)
        if self.answer is None:
            return Deferred()
        if isinstance(self.answer, Exception):
            raise self.answer
        return {"history": self.answer}


class GetHistoryTests(FailoverTests):
    """
    L{HubClient.get_history}: the history of a range, asked of the hub the
    UI is linked to.
    """

    def history(self):
        from tests.test_ui_history import sample_history

        return sample_history()

    def test_answer(self):
        hub = HistoryHub(self.history())
        self.accept_with(hub)
        query = HistoryQuery(since=T0 - 600, agent_id="agent-a", max_points=60)
        d = self.client.get_history(query)
        self.flush()
        self.assertEqual(self.successResultOf(d), self.history())
        self.assertEqual(hub.queries, [query])
        self.assertEqual((self.client.history_queries, self.client.history_failures), (1, 0))

    def test_not_linked(self):
        """
        With no hub linked the question fails at once, naming the hub
        being tried.
        """
        failure = self.failureResultOf(self.client.get_history(HistoryQuery(since=T0)),
                                       HubUnreachable)
        self.assertEqual(failure.getErrorMessage(), f"no hub linked yet (trying {HUB_A})")
        self.assertEqual((self.client.history_queries, self.client.history_failures), (1, 1))

    def test_history_error(self):
        self.accept_with(HistoryHub(HistoryError("the range ends before it starts")))
        d = self.client.get_history(HistoryQuery(since=T0))
        self.flush()
        failure = self.failureResultOf(d, HistoryError)
        self.assertEqual(failure.getErrorMessage(), "the range ends before it starts")
        self.assertEqual(self.client.history_failures, 1)
        self.assertEqual(self.client.snapshot()[2], CONNECTED)

    def test_timeout(self):
        """
        No answer within C{history_timeout}: the question fails, and the
        link stays (the hub may be slow to read its history, not gone).
        """
        self.client.history_timeout = 3.0
        pump = self.accept_with(HistoryHub(None))
        d = self.client.get_history(HistoryQuery(since=T0))
        self.reactor.advance(2.99)
        self.assertNoResult(d)
        self.reactor.advance(0.01)
        failure = self.failureResultOf(d, TimeoutError)
        self.assertEqual(failure.getErrorMessage(),
                         f"hub {HUB_A} gave no history within 3 s")
        self.assertFalse(pump.clientIO.disconnected)

    def test_link_lost(self):
        pump = self.accept_with(HistoryHub(None))
        d = self.client.get_history(HistoryQuery(since=T0))
        pump.server.transport.loseConnection()
        self.flush()
        self.failureResultOf(d)
        self.assertEqual(self.client.history_failures, 1)

    def test_answer_is_a_word(self):
        """
        An answer counts as hearing from the hub: the link is not dropped
        as silent 5 s after the last push if a history answer came since.
        """
        pump = self.accept_with(HistoryHub(self.history()))
        self.reactor.advance(4)
        self.client.get_history(HistoryQuery(since=T0))
        self.flush()
        self.reactor.advance(4.5)
        self.assertFalse(pump.clientIO.disconnected)
        self.reactor.advance(0.5)
        self.flush()
        self.assertTrue(pump.clientIO.disconnected)
