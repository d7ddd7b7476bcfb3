"""
Tests for L{loopy.agent.uplink}: the agent's link to its hub, against a
memory reactor and a fake hub.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import (
    ConnectionCompleter,
    IOPump,
    connect,
    makeFakeClient,
    makeFakeServer,
)
from twisted.trial.unittest import SynchronousTestCase

from loopy import __version__
from loopy.agent.monitor import Monitor
from loopy.agent.service import ReportLoop
from loopy.agent.uplink import Uplink
from loopy.agent.spool import MEMORY_MAX_BYTES, Spool
from loopy.failover import BACKOFF
from loopy.errors import HistoryError, WireError
from loopy.model import DeliveryStats
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


def seqs(records) -> list[int]:
    """
    The seq of each report (or alert) a hub received, in order.
    """
    return [r.seq for r in records]


def hello() -> dict:
    return {"agent_id": "agent-a", "hostname": "host-a", "epoch": EPOCH}


class UplinkCase(SynchronousTestCase):
    """
    An L{Uplink} to C{hubs} on a memory reactor, started; C{links_made}
    has the reactor time of each call of its C{on_link} hook.
    """

    hubs: tuple[str, ...] = ("tcp:host=10.0.0.9:port=7420",)
    failback = 60.0

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.links_made: list[float] = []
        self.uplink = self.make_uplink()
        self.uplink.on_link = lambda: self.links_made.append(self.reactor.seconds())
        self.pump: Optional[IOPump] = None
        self.pumps: list[IOPump] = []
        self.uplink.startService()
        self.addCleanup(self.stop)

    def make_uplink(self) -> Uplink:
        return Uplink(self.hubs, self.reactor, hello, failback=self.failback)

    def stop(self):
        d = self.uplink.stopService()
        self.flush()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def flush(self):
        for pump in self.pumps:
            pump.flush()

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
        self.pumps.append(self.pump)
        return hub

    def refuse(self):
        """
        Fail the newest connection attempt: connection refused.
        """
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(self.reactor.connectors[-1],
                                       Failure(ConnectionRefusedError()))

    def drop(self, hub: FakeHub):
        hub.transport.loseConnection()
        self.flush()

    def hosts(self) -> list[str]:
        """
        The host of every connection attempt so far.
        """
        return [host for host, *_ in self.reactor.tcpClients]


class UplinkTests(UplinkCase):
    def counters(self):
        u = self.uplink.delivery
        return dict(sent=u.reports_sent, acked=u.reports_acked,
                    unsent=u.reports_unsent, failed=u.reports_failed)

    def test_connects(self):
        self.assertEqual(
            [(host, port) for host, port, *_ in self.reactor.tcpClients],
            [("10.0.0.9", 7420)],
        )
        self.assertFalse(self.uplink.linked)

    def test_unsent_while_unlinked(self):
        """
        Reports made while no hub is linked are spooled, and sent in order
        once a hub accepts the agent.
        """
        self.uplink.send(testing.report(seq=1))
        self.uplink.send(testing.report(seq=2))
        self.assertEqual(self.counters(), dict(sent=0, acked=0, unsent=2, failed=0))
        self.assertEqual(len(self.uplink.delivery.spool), 2)
        hub = self.accept()
        self.pump.flush()
        self.assertEqual(seqs(hub.reports), [1, 2])
        self.assertEqual(self.counters(), dict(sent=2, acked=2, unsent=2, failed=0))
        self.assertEqual(len(self.uplink.delivery.spool), 0)

    def test_hello_on_connect(self):
        hub = self.accept()
        self.assertEqual(
            hub.hellos,
            [{"agent_id": "agent-a", "hostname": "host-a", "epoch": EPOCH,
              "version": __version__, "link": 1}],
        )
        self.assertTrue(self.uplink.linked)
        self.assertEqual(self.uplink.hub_name, "hub-a")

    def test_report_after_hello_answer(self):
        """
        Until the hub answers the hello, reports are not sent (and are
        counted as unsent); after, they are sent (the one spooled first)
        and acknowledged.
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
        self.assertEqual(seqs(hub.reports), [1])
        self.uplink.send(testing.report(seq=2))
        self.assertEqual(self.counters(), dict(sent=2, acked=1, unsent=1, failed=0))
        self.pump.flush()
        self.assertEqual(seqs(hub.reports), [1, 2])
        self.assertEqual(self.counters(), dict(sent=2, acked=2, unsent=1, failed=0))

    def alert_counters(self):
        u = self.uplink.delivery
        return dict(sent=u.alerts_sent, acked=u.alerts_acked,
                    unsent=u.alerts_unsent, failed=u.alerts_failed)

    def test_alert_sent_at_once(self):
        """
        An alert goes to the hub at once, on its own command; one made
        while no hub is linked is counted as unsent and goes when a hub
        accepts the agent; one the hub cannot read (C{WIRE_ERROR}) counts
        as failed and is not kept.
        """
        self.uplink.send_alert(testing.alert(seq=1))
        hub = self.accept()
        self.pump.flush()
        self.uplink.send_alert(testing.alert(seq=2))
        self.pump.flush()
        self.assertEqual(hub.alerts, [testing.alert(seq=1), testing.alert(seq=2)])
        self.assertEqual(self.alert_counters(), dict(sent=2, acked=2, unsent=1, failed=0))
        hub.alert_answer = WireError("no")
        self.uplink.send_alert(testing.alert(seq=3))
        self.pump.flush()
        self.assertEqual(self.alert_counters(), dict(sent=3, acked=2, unsent=1, failed=1))
        self.assertEqual((self.uplink.delivery.rejected, len(self.uplink.delivery.spool)),
                         (1, 0))
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
        A report in flight when the link is lost is counted as failed, and
        sent again on the next link (its answer never came: the hub may
        not have written it).
        """
        hub = FakeHub()
        hub.report_answer = Deferred()
        self.accept(hub)
        self.uplink.send(testing.report())
        self.pump.flush()
        self.drop(hub)
        self.assertEqual(self.counters(), dict(sent=1, acked=0, unsent=0, failed=1))
        self.assertFalse(self.uplink.linked)
        self.reactor.advance(1.75)
        second = self.accept()
        self.pump.flush()
        self.assertEqual(seqs(second.reports), [1])
        self.assertEqual(self.counters(), dict(sent=2, acked=1, unsent=0, failed=1))
        self.assertEqual((self.uplink.delivery.spool.replayed, len(self.uplink.delivery.spool)),
                         (1, 0))

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
        self.assertEqual(self.uplink.delivery.reports_unsent, 1)
        self.reactor.advance(1.75)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_reconnect_after_loss(self):
        """
        After the link is lost, reports count as unsent and the uplink
        reconnects after the first backoff delay (0.75 s plus up to 1 s of
        jitter), then says hello again, and sends them.
        """
        hub = self.accept()
        self.drop(hub)
        self.assertFalse(self.uplink.linked)
        self.uplink.send(testing.report())
        self.assertEqual(self.uplink.delivery.reports_unsent, 1)
        self.reactor.advance(0.74)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(1.01)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        second = self.accept()
        self.assertEqual([h["agent_id"] for h in second.hellos], ["agent-a"])
        self.assertTrue(self.uplink.linked)
        self.uplink.send(testing.report(seq=2))
        self.pump.flush()
        self.assertEqual(seqs(second.reports), [1, 2])

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
            delay = BACKOFF(attempt)
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


HUB_A, HUB_B, HUB_C = ("tcp:host=10.0.0.1:port=7420", "tcp:host=10.0.0.2:port=7420",
                       "tcp:host=10.0.0.3:port=7420")


def named(name: str) -> FakeHub:
    hub = FakeHub()
    hub.hello_answer = {"hub": name}
    return hub


class FailoverTests(UplinkCase):
    """
    With three hubs: every end of a connection moves to the next hub,
    0.25 s later within a cycle, with backoff after a whole cycle.
    """

    hubs = (HUB_A, HUB_B, HUB_C)

    def test_first_hub_first(self):
        self.assertEqual(self.hosts(), ["10.0.0.1"])
        self.accept(named("hub-a"))
        self.assertEqual((self.uplink.hub_name, self.uplink.hub_endpoint), ("hub-a", HUB_A))
        self.assertEqual((self.uplink.links, self.uplink.failovers), (1, 0))

    def test_lost_link_moves_on(self):
        """
        The link to A is lost: 0.25 s later the agent connects to B, says
        hello as its second link, and counts a failover.
        """
        a = self.accept(named("hub-a"))
        self.drop(a)
        self.reactor.advance(0.24)
        self.assertEqual(self.hosts(), ["10.0.0.1"])
        self.reactor.advance(0.01)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        b = self.accept(named("hub-b"))
        self.assertEqual([h["link"] for h in b.hellos], [2])
        self.assertEqual((self.uplink.hub_name, self.uplink.hub_endpoint), ("hub-b", HUB_B))
        self.assertEqual((self.uplink.links, self.uplink.failovers), (2, 1))
        self.uplink.send(testing.report(seq=5))
        self.flush()
        self.assertEqual(seqs(b.reports), [5])

    def test_refused_connection_moves_on(self):
        self.refuse()
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        self.accept(named("hub-b"))
        # Never linked to A: a first link, not a failover.
        self.assertEqual((self.uplink.links, self.uplink.failovers), (1, 0))
        self.assertEqual([h["link"] for h in self.pump.server.hellos], [1])

    def test_connect_timeout(self):
        """
        An attempt not connected within 2 s fails; the next hub is tried
        0.25 s later.
        """
        self.reactor.advance(2.0)
        self.assertEqual(self.hosts(), ["10.0.0.1"])
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_refused_hello_moves_on(self):
        """
        A hub that refuses the hello is hung up on; the next hub is tried
        0.25 s later, and the refused hello counts no link.
        """
        a = FakeHub()
        a.hello_answer = WireError("the hub's agent table is full")
        self.accept(a)
        self.assertTrue(self.pump.clientIO.disconnected)
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        b = self.accept(named("hub-b"))
        self.assertEqual([h["link"] for h in b.hellos], [1])

    def test_wraps_and_backs_off(self):
        """
        A whole cycle of failures waits the backoff (0.75-1.75 s after the
        first cycle, 1.125-2.125 s after the second), then goes round the
        list again from where it is, 0.25 s between hubs.
        """
        waits = []
        for _ in range(6):
            self.refuse()
            (retry,) = self.reactor.getDelayedCalls()
            waits.append(round(retry.getTime() - self.reactor.seconds(), 6))
            self.reactor.advance(retry.getTime() - self.reactor.seconds())
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2
                         + ["10.0.0.1"])
        self.assertEqual(waits[:2] + waits[3:5], [0.25] * 4)
        self.assertTrue(0.75 <= waits[2] <= 1.75, waits)
        self.assertTrue(1.125 <= waits[5] <= 2.125, waits)

    def test_hub_timeout(self):
        """
        A report unanswered for 3 s (a hub that stopped answering, no FIN):
        the link is aborted, counted, and the next hub tried 0.25 s later.
        """
        a = self.accept(named("hub-a"))
        a.report_answer = Deferred()
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.reactor.advance(2.99)
        self.assertTrue(self.uplink.linked)
        self.reactor.advance(0.01)
        self.flush()
        self.assertFalse(self.uplink.linked)
        self.assertEqual((self.uplink.links_timed_out, self.uplink.delivery.reports_failed),
                         (1, 1))
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        b = self.accept(named("hub-b"))
        self.assertEqual(self.uplink.failovers, 1)
        self.assertEqual(seqs(b.reports), [1])  # sent again

    def test_alert_timeout(self):
        a = self.accept(named("hub-a"))
        a.alert_answer = Deferred()
        self.uplink.send_alert(testing.alert(seq=1))
        self.reactor.advance(3)
        self.flush()
        self.assertEqual((self.uplink.linked, self.uplink.links_timed_out), (False, 1))

    def test_hello_timeout(self):
        a = FakeHub()
        a.hello_answer = Deferred()
        self.accept(a)
        self.reactor.advance(3)
        self.flush()
        self.assertTrue(self.pump.clientIO.disconnected)
        self.assertEqual(self.uplink.links_timed_out, 1)
        self.reactor.advance(0.25)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_answered_calls_leave_no_timer(self):
        self.accept(named("hub-a"))
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_hook_on_every_link(self):
        """
        The C{on_link} hook runs the moment each hello is accepted.
        """
        a = FakeHub()
        a.hello_answer = Deferred()
        self.accept(a)
        self.assertEqual(self.links_made, [])
        a.hello_answer.callback({"hub": "hub-a"})
        self.flush()
        self.assertEqual(self.links_made, [0.0])
        self.drop(a)
        self.reactor.advance(0.25)
        self.accept(named("hub-b"))
        self.assertEqual(self.links_made, [0.0, 0.25])


class FailbackTests(UplinkCase):
    """
    Linked to a hub after the first, the agent tries the hubs before it
    every 60 s, and moves to the first that accepts its hello.
    """

    hubs = (HUB_A, HUB_B)

    def setUp(self):
        UplinkCase.setUp(self)
        self.refuse()
        self.reactor.advance(0.25)
        self.b = self.accept(named("hub-b"))

    def test_moves_back(self):
        """
        60 s after linking to B the agent connects to A and says hello
        (link 2); A accepts: its link replaces B's, which is closed, and
        the hook runs (a report at once).
        """
        self.reactor.advance(59.99)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        self.reactor.advance(0.01)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2", "10.0.0.1"])
        b_pump = self.pump
        a = self.accept(named("hub-a"))
        self.assertEqual([h["link"] for h in a.hellos], [2])
        self.flush()
        self.assertTrue(b_pump.clientIO.disconnected)
        self.assertEqual((self.uplink.hub_name, self.uplink.hub_endpoint), ("hub-a", HUB_A))
        self.assertEqual((self.uplink.links, self.uplink.failbacks, self.uplink.failovers),
                         (2, 1, 0))
        self.assertEqual(self.links_made, [0.25, 60.25])
        self.uplink.send(testing.report(seq=7))
        self.flush()
        self.assertEqual((seqs(a.reports), self.b.reports), ([7], []))
        # Linked to the first hub: no more tries, no reconnection pending.
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_lost_after_failback(self):
        """
        When the link made by a failback is lost, the agent moves on to
        the next hub at once.
        """
        self.reactor.advance(60)
        a = self.accept(named("hub-a"))
        self.drop(a)
        self.assertFalse(self.uplink.linked)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"])
        self.accept(named("hub-b"))
        self.assertEqual((self.uplink.links, self.uplink.failovers), (3, 1))

    def test_not_taken(self):
        """
        A first hub still down, or refusing the hello: the agent stays on B
        and tries again 60 s later.
        """
        self.reactor.advance(60)
        self.refuse()
        self.reactor.advance(60)
        a = FakeHub()
        a.hello_answer = WireError("no")
        self.accept(a)
        self.assertTrue(self.pump.clientIO.disconnected)
        self.assertEqual((self.uplink.hub_endpoint, self.uplink.linked), (HUB_B, True))
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1"])
        self.reactor.advance(60)
        self.assertEqual(len(self.hosts()), 5)

    def test_link_lost_during_try(self):
        """
        The link to B lost while A is being tried: the try is abandoned and
        the agent goes on by the failover rule.
        """
        self.reactor.advance(60)
        probe = FakeHub()
        probe.hello_answer = Deferred()
        self.accept(probe)
        self.drop(self.b)
        self.assertTrue(self.pump.clientIO.disconnected)
        self.assertEqual(self.uplink.failbacks, 0)

    def test_stop_while_connecting_to_try(self):
        """
        Stopping while the try's connection attempt is under way cancels
        it; the cleanup checks that no timer is left.
        """
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)  # its connect timeout
        d = self.uplink.stopService()
        self.flush()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_during_try_hello(self):
        """
        Stopping while the try's hello is unanswered closes its connection
        and the hello's timer goes.
        """
        self.reactor.advance(60)
        probe = FakeHub()
        probe.hello_answer = Deferred()
        self.accept(probe)
        probe_pump = self.pump
        d = self.uplink.stopService()
        self.flush()
        self.successResultOf(d)
        self.assertTrue(probe_pump.clientIO.disconnected)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class NoFailbackTests(UplinkCase):
    hubs = (HUB_A, HUB_B)
    failback = 0

    def test_stays(self):
        self.refuse()
        self.reactor.advance(0.25)
        self.accept(named("hub-b"))
        self.reactor.advance(3600)
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])
        self.assertEqual(self.uplink.hub_endpoint, HUB_B)


class ReportOnLinkTests(UplinkCase):
    """
    The agent as assembled: the report loop sends a report the moment a
    hub accepts the agent, and counts its next interval from then.
    """

    hubs = (HUB_A, HUB_B)

    def setUp(self):
        UplinkCase.setUp(self)
        monitor = Monitor("agent-a", "host-a", EPOCH, [])
        self.loop = ReportLoop(monitor, CaptureStub(), self.uplink, 1.0, self.reactor)
        self.uplink.on_link = self.loop.report_now
        self.loop.startService()
        self.addCleanup(self.loop.stopService)

    def test_report_at_once_on_relink(self):
        a = self.accept(named("hub-a"))
        self.assertEqual(a.reports, [])  # no report made yet: nothing to measure
        self.reactor.advance(1.0)
        self.flush()
        self.assertEqual([r.seq for r in a.reports], [1])
        self.drop(a)
        self.reactor.advance(0.25)
        b = self.accept(named("hub-b"))
        self.assertEqual([(r.seq, r.ts, r.interval) for r in b.reports], [(2, 1.25, 0.25)])
        self.reactor.advance(0.99)
        self.flush()
        self.assertEqual(len(b.reports), 1)
        self.reactor.advance(0.01)
        self.flush()
        self.assertEqual([(r.seq, r.ts) for r in b.reports], [(2, 1.25), (3, 2.25)])

    def test_reports_carry_delivery(self):
        """
        The agent's reports carry its spool's counters: three made with no
        hub linked wait in the spool; the report made when a hub accepts
        the agent shows them waiting, the next one shows them acknowledged.
        """
        # No jitter: the next attempt is at 1.75 s, still pending (it times
        # out after CONNECT_TIMEOUT, at 3.75 s) when the hub takes it at 3.25 s.
        self.uplink._failover._backoff = lambda cycles: 1.5
        self.refuse()
        self.reactor.advance(0.25)
        self.refuse()
        for _ in range(3):
            self.reactor.advance(1.0)
        self.assertEqual(self.uplink.delivery.reports_unsent, 3)
        hub = self.accept(named("hub-a"))
        self.flush()
        self.assertEqual(seqs(hub.reports), [1, 2, 3, 4])
        waiting = hub.reports[3].delivery
        self.assertEqual((waiting.spool_records, waiting.oldest_ts, waiting.acked),
                         (3, hub.reports[0].ts, 0))
        self.reactor.advance(1.0)
        self.flush()
        after = hub.reports[4].delivery
        self.assertEqual((after.spool_records, after.acked, after.spool_bytes), (0, 4, 0))
        self.assertEqual(after, DeliveryStats(spool_max_bytes=MEMORY_MAX_BYTES, acked=4))


class HoldingHub(FakeHub):
    """
    A hub that holds every report's answer in C{held} until the test fires
    it.
    """

    def __init__(self, name: str = "hub-a"):
        FakeHub.__init__(self)
        self.hello_answer = {"hub": name}
        self.held: list[Deferred] = []

    @Report.responder
    def report(self, report):
        self.reports.append(report)
        d = Deferred()
        self.held.append(d)
        return d

    def answer(self, count: int = 1):
        for _ in range(count):
            self.held.pop(0).callback({"accepted": True})


class DeliveryTests(UplinkCase):
    """
    Every report and alert is kept until a hub answers it: spooled while
    no hub is linked, replayed in order on the next link alongside live
    reports, sent again after a lost answer or a history error.
    """

    hubs = (HUB_A, HUB_B)

    def spool(self) -> Spool:
        return self.uplink.delivery.spool

    def test_backlog_in_order_with_live_reports(self):
        """
        Twenty reports made with no hub linked go oldest first, eight calls
        in flight at most; a report made meanwhile goes at once.
        """
        for seq in range(1, 21):
            self.uplink.send(testing.report(seq=seq))
        hub = self.accept(HoldingHub())
        self.flush()
        self.assertEqual(seqs(hub.reports), list(range(1, 9)))
        self.uplink.send(testing.report(seq=21))
        self.flush()
        self.assertEqual(seqs(hub.reports), list(range(1, 9)) + [21])
        hub.answer(2)
        self.flush()
        self.assertEqual(seqs(hub.reports), list(range(1, 9)) + [21, 9, 10])
        while hub.held:
            hub.answer()
            self.flush()
        self.assertEqual(sorted(seqs(hub.reports)), list(range(1, 22)))
        self.assertEqual(seqs(hub.reports)[11:], list(range(11, 21)))
        self.assertEqual((len(self.spool()), self.spool().acked), (0, 21))

    def test_lost_answer_sent_again(self):
        """
        A report whose answer was lost with the link goes again, first, on
        the next link (hub B); its answer there takes it out of the spool.
        """
        a = self.accept(HoldingHub("hub-a"))
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.assertEqual(seqs(a.reports), [1])
        self.drop(a)
        self.uplink.send(testing.report(seq=2))
        self.reactor.advance(0.25)
        b = self.accept(named("hub-b"))
        self.flush()
        self.assertEqual(seqs(b.reports), [1, 2])
        self.assertEqual((len(self.spool()), self.spool().replayed), (0, 1))

    def test_history_error_retried_after_delay(self):
        """
        A C{HISTORY_ERROR} answer keeps the report; it goes again after the
        backoff delay (0.75 s to 1.75 s), not at once, and the backlog waits
        meanwhile; the link stays up.
        """
        hub = self.accept()
        hub.report_answer = HistoryError("the history's write queue is full")
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.assertEqual((seqs(hub.reports), len(self.spool())), ([1], 1))
        self.assertEqual(self.uplink.delivery.hub_errors, 1)
        self.reactor.advance(0.74)
        self.flush()
        self.assertEqual(seqs(hub.reports), [1])
        hub.report_answer = {"accepted": True}
        self.reactor.advance(1.01)
        self.flush()
        self.assertEqual(seqs(hub.reports), [1, 1])
        self.assertEqual(len(self.spool()), 0)
        self.assertTrue(self.uplink.linked)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_history_errors_back_off(self):
        """
        Errors in a row wait longer each time (the failover backoff).
        """
        hub = self.accept()
        hub.report_answer = HistoryError("disk I/O error")
        self.uplink.send(testing.report(seq=1))
        self.flush()
        waits = []
        for _ in range(3):
            (pause,) = self.reactor.getDelayedCalls()
            waits.append(pause.getTime() - self.reactor.seconds())
            self.reactor.advance(waits[-1])
            self.flush()
        self.assertEqual(len(hub.reports), 4)
        for wait, low in zip(waits, [0.75, 1.125, 1.6875]):
            self.assertTrue(low <= wait < low + 1, waits)
        hub.report_answer = {"accepted": True}
        self.reactor.advance(10)
        self.flush()
        self.assertEqual(len(self.spool()), 0)

    def test_accepted_false_is_an_ack(self):
        """
        A hub that already had the report answers C{accepted} False: that
        too means written; it leaves the spool.
        """
        hub = self.accept()
        hub.report_answer = {"accepted": False}
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.assertEqual((len(self.spool()), self.spool().acked), (0, 1))

    def test_alerts_spooled_and_replayed(self):
        self.uplink.send_alert(testing.alert(seq=1))
        self.uplink.send(testing.report(seq=1))
        self.uplink.send_alert(testing.alert(seq=1, revision=1))
        hub = self.accept()
        self.flush()
        self.assertEqual([(a.seq, a.revision) for a in hub.alerts], [(1, 0), (1, 1)])
        self.assertEqual(seqs(hub.reports), [1])
        self.assertEqual(len(self.spool()), 0)

    def test_in_flight_at_failback_goes_on_the_new_link(self):
        """
        Reports in flight on B when the agent moves back to A go to A once
        B's link closes without their answers.
        """
        self.refuse()
        self.reactor.advance(0.25)
        b = self.accept(HoldingHub("hub-b"))
        self.uplink.send(testing.report(seq=1))
        self.flush()
        self.reactor.advance(60)
        a = self.accept(named("hub-a"))
        self.flush()
        self.assertEqual(self.uplink.hub_name, "hub-a")
        self.assertEqual((seqs(b.reports), seqs(a.reports)), ([1], [1]))
        self.assertEqual(len(self.spool()), 0)

    def test_report_carries_delivery(self):
        """
        Each report carries the spool's counters as they were when it was
        made.
        """
        self.uplink.send(testing.report(seq=1))
        self.uplink.send(testing.report(seq=2))
        hub = self.accept()
        self.flush()
        self.uplink.send(testing.report(seq=3))
        self.flush()
        first, second, third = (r.delivery for r in hub.reports)
        self.assertEqual((first.spool_records, second.spool_records, third.spool_records),
                         (0, 1, 0))
        self.assertEqual((third.acked, third.spool_max_bytes, third.spool_on_disk),
                         (2, MEMORY_MAX_BYTES, False))
        self.assertEqual(second.oldest_ts, testing.report(seq=1).ts)


class DiskDeliveryTests(UplinkCase):
    """
    With a spool directory, what one run could not deliver goes with the
    next run.
    """

    def setUp(self):
        self.directory = self.mktemp()
        UplinkCase.setUp(self)

    def make_uplink(self):
        return Uplink(self.hubs, self.reactor, hello, failback=self.failback,
                      spool=Spool(self.directory, self.reactor))

    def test_restart_replays(self):
        self.uplink.send(testing.report(seq=1))
        self.uplink.send_alert(testing.alert(seq=1))
        self.successResultOf(self.uplink.stopService())
        self.uplink = self.make_uplink()
        self.uplink.startService()
        self.uplink.send(testing.report(seq=2, epoch=EPOCH + 1))
        hub = self.accept()
        self.flush()
        self.assertEqual([(r.epoch, r.seq) for r in hub.reports],
                         [(EPOCH, 1), (EPOCH + 1, 2)])
        self.assertEqual(hub.alerts, [testing.alert(seq=1)])
        spool = self.uplink.delivery.spool
        self.assertEqual((len(spool), spool.replayed, spool.acked), (0, 2, 3))

    def test_locked(self):
        """
        A second agent on the same spool cannot start.
        """
        from loopy.errors import SpoolError
        self.assertRaises(SpoolError, self.make_uplink().startService)


class CaptureStub:
    """
    What a report loop asks of a capture source, with nothing captured.
    """

    def poll_kernel_stats(self):
        pass
