"""
Tests for L{loopy.agent.uplink}: the agent's link to its hub, against a
memory reactor and a fake hub.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import (
    ConnectionCompleter,
    IOPump,
    connect,
    makeFakeClient,
    makeFakeServer,
)
from twisted.trial.unittest import SynchronousTestCase

from loopy import __version__
from loopy.agent.uplink import RETRY_POLICY, Uplink
from loopy.errors import WireError
from loopy.wire import AgentHello, BoundedAMP, Report, SendAlert
from loopy import testing

EPOCH = 1_700_000_000_000_000


class FakeHub(BoundedAMP):
    """
    The hub's end of an agent link.  C{hello_answer} and C{report_answer}
    are what the responders return (or raise, if an exception); a
    L{Deferred} holds the answer until fired.
    """

    def __init__(self):
        BoundedAMP.__init__(self)
        self.hellos: list[dict] = []
        self.reports: list = []
        self.alerts: list = []
        self.alert_answer: object = {"accepted": True}
        self.hello_answer: object = {"hub": "hub-a"}
        self.report_answer: object = {"accepted": True}

    def _answer(self, answer):
        if isinstance(answer, Exception):
            raise answer
        return answer

    @AgentHello.responder
    def agent_hello(self, **hello):
        self.hellos.append(hello)
        return self._answer(self.hello_answer)

    @Report.responder
    def report(self, report):
        self.reports.append(report)
        return self._answer(self.report_answer)

    @SendAlert.responder
    def send_alert(self, alert):
        self.alerts.append(alert)
        return self._answer(self.alert_answer)


class UplinkTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.uplink = Uplink(
            "tcp:host=10.0.0.9:port=7420",
            self.reactor,
            lambda: {"agent_id": "agent-a", "hostname": "host-a", "epoch": EPOCH},
        )
        self.pump: Optional[IOPump] = None
        self.uplink.startService()
        self.addCleanup(self.stop)

    def stop(self):
        d = self.uplink.stopService()
        if self.pump is not None:
            self.pump.flush()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def accept(self, hub: Optional[FakeHub] = None) -> FakeHub:
        """
        Complete the newest connection attempt, to C{hub} (a new
        L{FakeHub} by default).
        """
        host, port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        hub = hub or FakeHub()
        link = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.pump = connect(
            hub, makeFakeServer(hub), link, makeFakeClient(link), clock=self.reactor
        )
        return hub

    def drop(self, hub: FakeHub):
        hub.transport.loseConnection()
        self.pump.flush()

    def counters(self):
        u = self.uplink
        return dict(sent=u.reports_sent, acked=u.reports_acked,
                    unsent=u.reports_unsent, failed=u.reports_failed)

    def test_connects(self):
        self.assertEqual(
            [(host, port) for host, port, *_ in self.reactor.tcpClients],
            [("10.0.0.9", 7420)],
        )
        self.assertFalse(self.uplink.linked)

    def test_unsent_while_unlinked(self):
        self.uplink.send(testing.report(seq=1))
        self.uplink.send(testing.report(seq=2))
        self.assertEqual(self.counters(), dict(sent=0, acked=0, unsent=2, failed=0))

    def test_hello_on_connect(self):
        hub = self.accept()
        self.assertEqual(
            hub.hellos,
            [{"agent_id": "agent-a", "hostname": "host-a", "epoch": EPOCH,
              "version": __version__}],
        )
        self.assertTrue(self.uplink.linked)
        self.assertEqual(self.uplink.hub_name, "hub-a")

    def test_report_after_hello_answer(self):
        """
        Until the hub answers the hello, reports are not sent (and are
        counted as unsent); after, they are sent and acknowledged.
        """
        hub = FakeHub()
        hub.hello_answer = Deferred()
        self.accept(hub)
        self.assertEqual(len(hub.hellos), 1)
        self.assertFalse(self.uplink.linked)
        self.uplink.send(testing.report(seq=1))
        self.pump.flush()
        self.assertEqual(hub.reports, [])
        hub.hello_answer.callback({"hub": "hub-a"})
        self.pump.flush()
        self.assertTrue(self.uplink.linked)
        self.uplink.send(testing.report(seq=2))
        self.assertEqual(self.counters(), dict(sent=1, acked=0, unsent=1, failed=0))
        self.pump.flush()
        self.assertEqual(hub.reports, [testing.report(seq=2)])
        self.assertEqual(self.counters(), dict(sent=1, acked=1, unsent=1, failed=0))

    def alert_counters(self):
        u = self.uplink
        return dict(sent=u.alerts_sent, acked=u.alerts_acked,
                    unsent=u.alerts_unsent, failed=u.alerts_failed)

    def test_alert_sent_at_once(self):
        """
        An alert goes to the hub at once, on its own command; one made
        while no hub is linked is counted as unsent; one the hub refuses
        as failed.
        """
        self.uplink.send_alert(testing.alert(seq=1))
        hub = self.accept()
        self.pump.flush()
        self.uplink.send_alert(testing.alert(seq=2))
        self.pump.flush()
        self.assertEqual(hub.alerts, [testing.alert(seq=2)])
        self.assertEqual(self.alert_counters(), dict(sent=1, acked=1, unsent=1, failed=0))
        hub.alert_answer = WireError("no")
        self.uplink.send_alert(testing.alert(seq=3))
        self.pump.flush()
        self.assertEqual(self.alert_counters(), dict(sent=2, acked=1, unsent=1, failed=1))
        self.assertTrue(self.uplink.linked)

    def test_report_refused(self):
        """
        A report the hub answers with an error is counted as failed; the
        link stays up.
        """
        hub = FakeHub()
        hub.report_answer = WireError("no")
        self.accept(hub)
        self.uplink.send(testing.report())
        self.pump.flush()
        self.assertEqual(self.counters(), dict(sent=1, acked=0, unsent=0, failed=1))
        self.assertTrue(self.uplink.linked)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_report_lost(self):
        """
        A report in flight when the link is lost is counted as failed.
        """
        hub = FakeHub()
        hub.report_answer = Deferred()
        self.accept(hub)
        self.uplink.send(testing.report())
        self.pump.flush()
        self.drop(hub)
        self.assertEqual(self.counters(), dict(sent=1, acked=0, unsent=0, failed=1))
        self.assertFalse(self.uplink.linked)

    def test_hello_refused(self):
        """
        A hub that refuses the hello is hung up on, and tried again later.
        """
        hub = FakeHub()
        hub.hello_answer = WireError("the hub's agent table is full")
        self.accept(hub)
        self.assertTrue(self.pump.clientIO.disconnected)
        self.assertFalse(self.uplink.linked)
        self.uplink.send(testing.report())
        self.assertEqual(self.uplink.reports_unsent, 1)
        self.reactor.advance(1.75)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_reconnect_after_loss(self):
        """
        After the link is lost, reports count as unsent and the uplink
        reconnects after the first backoff delay (0.75 s plus up to 1 s of
        jitter), then says hello again.
        """
        hub = self.accept()
        self.drop(hub)
        self.assertFalse(self.uplink.linked)
        self.uplink.send(testing.report())
        self.assertEqual(self.uplink.reports_unsent, 1)
        self.reactor.advance(0.74)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(1.01)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        second = self.accept()
        self.assertEqual([h["agent_id"] for h in second.hellos], ["agent-a"])
        self.assertTrue(self.uplink.linked)
        self.uplink.send(testing.report(seq=2))
        self.pump.flush()
        self.assertEqual(second.reports, [testing.report(seq=2)])

    def test_backoff(self):
        """
        Failed connection attempts are retried with growing delays.
        """
        completer = ConnectionCompleter(self.reactor)
        for attempt in range(1, 5):
            completer.failOnce()
            self.assertEqual(self.reactor.tcpClients, [])
            low = 0.5 * 1.5**attempt
            self.reactor.advance(low - 0.01)
            self.assertEqual(self.reactor.tcpClients, [], attempt)
            self.reactor.advance(1.01)
            self.assertEqual(len(self.reactor.tcpClients), 1, attempt)

    def test_retry_policy(self):
        for attempt, low in [(1, 0.75), (2, 1.125), (5, 0.5 * 1.5**5), (9, 10.0), (50, 10.0)]:
            delay = RETRY_POLICY(attempt)
            self.assertTrue(low <= delay < low + 1, (attempt, delay))

    def test_stop_while_waiting(self):
        """
        Stopping while waiting to retry cancels the retry.
        """
        ConnectionCompleter(self.reactor).failOnce()
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.successResultOf(self.uplink.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_while_linked(self):
        """
        Stopping hangs up and does not reconnect.
        """
        self.accept()
        d = self.uplink.stopService()
        self.assertNoResult(d)
        self.pump.flush()
        self.successResultOf(d)
        self.assertFalse(self.uplink.linked)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
