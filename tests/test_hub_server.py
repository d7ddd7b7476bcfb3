"""
Tests for L{loopy.hub.server}: agents and UIs talking to a hub over
in-memory AMP connections, with a fake clock.
"""

from __future__ import annotations

import zlib

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from loopy import __version__
from loopy.errors import WireError
from loopy.hub.server import Hub
from loopy.model import OFFLINE, ONLINE, STALE, FleetView, HubInfo
from loopy.wire import (
    MAX_BOX_KEYS,
    AgentHello,
    BoundedAMP,
    FleetUpdate,
    GetFleet,
    Report,
    Watch,
)
from loopy import testing
from loopy.testing import T0, box_bytes

EPOCH = 1_700_000_000_000_000


class FakeUI(BoundedAMP):
    """
    A UI's end of a hub link: keeps every pushed view.  While C{hold} is
    set, pushes are not answered until C{release()}.
    """

    def __init__(self):
        BoundedAMP.__init__(self)
        self.views: list[FleetView] = []
        self.hold = False
        self.waiting: list[Deferred] = []

    @FleetUpdate.responder
    def fleet_update(self, view):
        self.views.append(view)
        return self.answer()

    def answer(self):
        """
        The empty answer, or while C{hold} is set a Deferred of it.
        """
        if self.hold:
            d = Deferred()
            self.waiting.append(d)
            return d
        return {}

    def release(self):
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback({})


class RawReport(amp.Command):
    commandName = b"Report"
    arguments = [(b"report", amp.String())]
    response = [(b"accepted", amp.Boolean())]


class HubTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.hub = Hub("hub-a", "tcp:7420", self.clock, stale_after=3.0, push_interval=1.0)
        self.hub.doStart()
        self.addCleanup(self.assertEqual, self.clock.getDelayedCalls(), [])
        self.addCleanup(self.hub.doStop)
        self.pumps = []

    def connect(self, client_class=BoundedAMP):
        client, server, pump = connectedServerAndClient(
            lambda: self.hub.buildProtocol(None), client_class, clock=self.clock
        )
        self.pumps.append(pump)
        return client, server, pump

    def call(self, proto, command, **kw):
        """
        Call C{command} and move all the bytes; a Deferred with the call's
        result.  (AMP drops the link on an error answer to a call without an
        errback, so one is attached before the answer arrives.)
        """
        result = Deferred()
        proto.callRemote(command, **kw).addCallbacks(result.callback, result.errback)
        self.flush()
        return result

    def flush(self):
        for pump in self.pumps:
            pump.flush()

    def tick(self, seconds=1.0):
        self.clock.advance(seconds)
        self.flush()

    def agent(self, agent_id="agent-a", hostname="host-a"):
        client, server, pump = self.connect()
        d = self.call(
            client, AgentHello, agent_id=agent_id, hostname=hostname, epoch=EPOCH,
            version=__version__,
        )
        self.assertEqual(self.successResultOf(d), {"hub": "hub-a"})
        return client, pump

    def ui(self, detail=""):
        client, server, pump = self.connect(FakeUI)
        d = self.call(client, Watch, detail=detail)
        return client, self.successResultOf(d)["view"], pump

    def status(self, agent_id="agent-a"):
        return self.hub.fleet.status(agent_id, self.clock.seconds())

    # -- agents -------------------------------------------------------------

    def test_hello_then_report(self):
        agent, _ = self.agent()
        self.assertEqual(self.hub.agents_linked, 1)
        self.assertEqual(self.status(), STALE)
        report = testing.report(seq=1)
        d = self.call(agent, Report, report=report)
        self.assertEqual(self.successResultOf(d), {"accepted": True})
        (entry,) = self.hub.fleet.entries(T0, True)
        self.assertEqual((entry.report, entry.last_heard, entry.status), (report, T0, ONLINE))

    def test_duplicate_report(self):
        agent, _ = self.agent()
        self.call(agent, Report, report=testing.report(seq=2))
        d = self.call(agent, Report, report=testing.report(seq=2))
        self.assertEqual(self.successResultOf(d), {"accepted": False})
        self.assertEqual((self.hub.fleet.reports_merged, self.hub.mesh.stale), (1, 1))

    def test_report_before_hello(self):
        client, _, _ = self.connect()
        d = self.call(client, Report, report=testing.report())
        failure = self.failureResultOf(d, WireError)
        self.assertEqual(
            failure.getErrorMessage(),
            "a report must follow AgentHello, for the same agent_id",
        )
        self.assertEqual(len(self.hub.fleet), 0)

    def test_hello_again(self):
        """
        A second hello for the same agent on the same link is answered and
        does not count a second link.
        """
        agent, _ = self.agent()
        d = self.call(
            agent, AgentHello, agent_id="agent-a", hostname="host-a", epoch=EPOCH,
            version=__version__,
        )
        self.assertEqual(self.successResultOf(d), {"hub": "hub-a"})
        self.assertEqual(self.hub.agents_linked, 1)
        agent.transport.loseConnection()
        self.flush()
        self.assertEqual(self.status(), OFFLINE)

    def test_other_agent_on_link(self):
        """
        A link belongs to the first agent that said hello: another agent id
        is refused, in a hello or in a report.
        """
        agent, _ = self.agent("agent-a")
        d = self.call(
            agent, AgentHello, agent_id="agent-b", hostname="host-b", epoch=EPOCH,
            version=__version__,
        )
        failure = self.failureResultOf(d, WireError)
        self.assertEqual(
            failure.getErrorMessage(), "this link already belongs to agent agent-a"
        )
        d = self.call(agent, Report, report=testing.report(agent_id="agent-b"))
        self.failureResultOf(d, WireError)
        self.assertEqual([e.agent_id for e in self.hub.fleet.entries(T0)], ["agent-a"])
        self.assertEqual(self.hub.agents_linked, 1)

    def test_empty_agent_id(self):
        client, _, _ = self.connect()
        d = self.call(
            client, AgentHello, agent_id="", hostname="h", epoch=EPOCH, version=__version__
        )
        self.assertEqual(self.failureResultOf(d, WireError).getErrorMessage(), "empty agent_id")
        self.assertEqual(self.hub.agents_linked, 0)

    def test_table_full(self):
        self.hub.fleet.max_agents = 1
        self.agent("agent-a")
        client, _, _ = self.connect()
        d = self.call(
            client, AgentHello, agent_id="agent-b", hostname="h", epoch=EPOCH,
            version=__version__,
        )
        self.assertEqual(
            self.failureResultOf(d, WireError).getErrorMessage(),
            "the hub's agent table is full",
        )
        self.assertEqual(self.hub.agents_linked, 1)
        self.assertEqual(self.hub.fleet.agents_refused, 1)

    def test_disconnect_offline(self):
        agent, _ = self.agent()
        self.call(agent, Report, report=testing.report())
        self.assertEqual(self.status(), ONLINE)
        agent.transport.loseConnection()
        self.flush()
        self.assertEqual(self.status(), OFFLINE)
        self.assertEqual(self.hub.agents_linked, 0)

    def test_stale(self):
        agent, _ = self.agent()
        self.call(agent, Report, report=testing.report())
        self.tick(3.0)
        self.assertEqual(self.status(), ONLINE)
        self.tick(1.0)
        self.assertEqual(self.status(), STALE)

    def test_over_bound_counted(self):
        """
        A peer that breaks a box bound is dropped and counted.
        """
        proto = self.hub.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(box_bytes([(b"k%03d" % i, b"") for i in range(MAX_BOX_KEYS + 1)]))
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.hub.protocol_errors, 1)
        self.assertEqual(self.hub.info().protocol_errors, 1)

    def test_bad_record_counted(self):
        """
        A report that does not decode drops the agent, and is counted.
        """
        agent, pump = self.agent()
        d = self.call(agent, RawReport, report=zlib.compress(b"[]"))
        self.failureResultOf(d)
        self.assertTrue(pump.serverIO.disconnected)
        self.assertEqual(self.hub.protocol_errors, 1)
        self.assertEqual(self.status(), OFFLINE)

    # -- UIs ----------------------------------------------------------------

    def test_watch(self):
        agent, _ = self.agent()
        report = testing.report()
        self.call(agent, Report, report=report)
        ui, view, _ = self.ui()
        self.assertEqual(
            view.hub,
            HubInfo(
                name="hub-a",
                endpoint="tcp:7420",
                version=__version__,
                started=T0,
                now=T0,
                agents_linked=1,
                uis_linked=1,
            ),
        )
        self.assertEqual([(e.agent_id, e.status, e.report) for e in view.agents],
                         [("agent-a", ONLINE, None)])

    def test_watch_detail(self):
        """
        A watch for one agent gets that agent's report, in the answer and in
        pushes; watching again changes the detail and does not add a UI.
        """
        for agent_id in ["agent-a", "agent-b"]:
            agent, _ = self.agent(agent_id)
            self.call(agent, Report, report=testing.report(agent_id))
        ui, view, _ = self.ui("agent-b")
        self.assertEqual([e.report for e in view.agents], [None, testing.report("agent-b")])
        self.tick()
        self.assertEqual(
            [e.report for e in ui.views[-1].agents], [None, testing.report("agent-b")]
        )
        d = self.call(ui, Watch, detail="")
        self.assertEqual([e.report for e in self.successResultOf(d)["view"].agents],
                         [None, None])
        self.assertEqual(self.hub.info().uis_linked, 1)
        self.tick()
        self.assertEqual([e.report for e in ui.views[-1].agents], [None, None])

    def test_push(self):
        """
        Every push interval, each watching UI gets the current view.
        """
        ui, _, _ = self.ui()
        self.tick(0.5)
        self.assertEqual(ui.views, [])
        self.tick(0.5)
        self.assertEqual([v.hub.now for v in ui.views], [T0 + 1])
        agent, _ = self.agent()
        self.call(agent, Report, report=testing.report())
        self.tick()
        self.assertEqual([v.hub.now for v in ui.views], [T0 + 1, T0 + 2])
        self.assertEqual([e.agent_id for e in ui.views[-1].agents], ["agent-a"])
        self.assertEqual(self.hub.updates_coalesced, 0)

    def test_slow_ui_coalesced(self):
        """
        A UI that has not answered its last push is skipped, and each skip is
        counted; nothing is queued for it meanwhile.  Its answer lets the
        next tick push again.
        """
        ui, _, pump = self.ui()
        ui.hold = True
        self.tick()
        self.assertEqual(len(ui.views), 1)
        self.clock.advance(1)
        self.assertEqual(pump.serverIO.stream, [])
        self.flush()
        self.clock.advance(1)
        self.assertEqual(pump.serverIO.stream, [])
        self.assertEqual(len(ui.views), 1)
        self.assertEqual(self.hub.updates_coalesced, 2)
        ui.release()
        self.flush()
        self.tick()
        self.assertEqual(len(ui.views), 2)
        self.assertEqual(ui.views[-1].hub.updates_coalesced, 2)
        self.assertEqual(self.hub.updates_coalesced, 2)

    def test_slow_ui_does_not_hold_others(self):
        slow, _, _ = self.ui()
        fast, _, _ = self.ui()
        slow.hold = True
        self.tick()
        self.tick()
        self.tick()
        self.assertEqual((len(slow.views), len(fast.views)), (1, 3))
        self.assertEqual(self.hub.updates_coalesced, 2)

    def test_ui_gone(self):
        """
        A UI that disconnects with a push unanswered is no longer watched,
        and the hub logs no error.
        """
        ui, _, _ = self.ui()
        ui.hold = True
        self.tick()
        ui.transport.loseConnection()
        self.flush()
        self.assertEqual(self.hub.info().uis_linked, 0)
        self.tick()
        self.assertEqual(len(ui.views), 1)
        self.assertEqual(self.hub.updates_coalesced, 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_get_fleet(self):
        """
        GetFleet answers with every agent's report, and does not make the
        caller a watching UI.
        """
        for agent_id in ["agent-b", "agent-a"]:
            agent, _ = self.agent(agent_id)
            self.call(agent, Report, report=testing.report(agent_id))
        client, _, _ = self.connect(FakeUI)
        view = self.successResultOf(self.call(client, GetFleet))["view"]
        self.assertEqual(
            [(e.agent_id, e.report) for e in view.agents],
            [("agent-a", testing.report("agent-a")), ("agent-b", testing.report("agent-b"))],
        )
        self.assertEqual(view.hub.uis_linked, 0)
        self.tick()
        self.assertEqual(client.views, [])

    def test_stop_factory(self):
        """
        Stopping the factory stops the pushes.
        """
        ui, _, _ = self.ui()
        self.hub.doStop()
        self.tick()
        self.assertEqual(ui.views, [])
        self.hub.doStart()
