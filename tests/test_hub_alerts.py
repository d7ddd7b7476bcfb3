"""
Tests for L{loopy.hub.alerts.AlertBoard} and the hub's alert path: agents'
alerts merged by version, pushed at once to every UI, acknowledged from
any UI.
"""

from __future__ import annotations

import random

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from loopy import __version__, testing
from loopy.hub.alerts import AlertBoard
from loopy.hub.server import ALERT_BATCH, VIEW_ALERTS, Hub
from loopy.model import ACKNOWLEDGED, OVER
from loopy.testing import T0
from loopy.ui.client import HubClient
from loopy.wire import (
    AcknowledgeAlert,
    AgentHello,
    AlertUpdate,
    BoundedAMP,
    GetFleet,
    Report,
    SendAlert,
    Watch,
)
from tests.test_hub_server import FakeUI

EPOCH = 1_700_000_000_000_000


class AlertBoardTests(SynchronousTestCase):
    def test_mergeKeepsHighestRevision(self):
        board = AlertBoard()
        first = board.merge(testing.alert(revision=0), T0)
        self.assertEqual(first.alert.revision, 0)
        self.assertIsNotNone(board.merge(testing.alert(revision=2), T0 + 2))
        self.assertIsNone(board.merge(testing.alert(revision=1), T0 + 3))
        self.assertIsNone(board.merge(testing.alert(revision=2), T0 + 4))
        (entry,) = board.entries()
        self.assertEqual((entry.alert.revision, entry.received), (2, T0 + 2))
        self.assertEqual((board.merged, board.duplicates), (2, 2))

    def test_orderIndependent(self):
        """
        Any order and any number of deliveries of the same revisions give
        the same table.
        """
        revisions = [testing.alert(agent_id=a, seq=s, revision=r,
                                   state=OVER if r == 3 else "active")
                     for a in ("a", "b") for s in (1, 2) for r in range(4)]
        expected = None
        rng = random.Random(4)
        for _ in range(20):
            deliveries = revisions * 2
            rng.shuffle(deliveries)
            board = AlertBoard()
            for alert in deliveries:
                board.merge(alert, T0)
            got = [e.alert for e in board.entries()]
            expected = expected or got
            self.assertEqual(got, expected)
            self.assertEqual({a.revision for a in got}, {3})

    def test_acknowledgeSticks(self):
        """
        An acknowledgement is kept across the alert's later revisions;
        the first one wins.
        """
        board = AlertBoard()
        board.merge(testing.alert(), T0)
        key = ("agent-a", EPOCH, 1)
        entry = board.acknowledge(key, "ann@desk1", T0 + 1)
        self.assertEqual((entry.state, entry.acknowledged_by, entry.acknowledged_at),
                         (ACKNOWLEDGED, "ann@desk1", T0 + 1))
        self.assertIsNone(board.acknowledge(key, "bob@laptop", T0 + 2))
        board.merge(testing.alert(revision=1, state=OVER), T0 + 3)
        entry = board.get(key)
        self.assertEqual((entry.alert.state, entry.state, entry.acknowledged_by),
                         (OVER, ACKNOWLEDGED, "ann@desk1"))
        self.assertIsNone(board.acknowledge(("agent-a", EPOCH, 99), "ann", T0))

    def test_applyMergesBothWays(self):
        """
        apply() (a UI taking the hub's entries) keeps the higher revision
        and an acknowledgement from either side.
        """
        hub, ui = AlertBoard(), AlertBoard()
        hub.merge(testing.alert(revision=1), T0)
        acked = hub.acknowledge(("agent-a", EPOCH, 1), "ann", T0 + 1)
        ui.merge(testing.alert(revision=2), T0)
        entry = ui.apply(acked)
        self.assertEqual((entry.alert.revision, entry.acknowledged_by), (2, "ann"))
        self.assertIsNone(ui.apply(acked))

    def test_bound(self):
        """
        At the bound the oldest ended alert goes first, then the oldest
        active one; each is counted.
        """
        board = AlertBoard(max_alerts=3)
        board.merge(testing.alert(seq=1, ts=T0), T0)
        board.merge(testing.alert(seq=2, ts=T0 + 1, revision=1, state=OVER), T0)
        board.merge(testing.alert(seq=3, ts=T0 + 2), T0)
        board.merge(testing.alert(seq=4, ts=T0 + 3), T0)
        self.assertEqual([e.alert.seq for e in board.entries()], [4, 3, 1])
        board.merge(testing.alert(seq=5, ts=T0 + 4), T0)
        self.assertEqual([e.alert.seq for e in board.entries()], [5, 4, 3])
        self.assertEqual(board.dropped, 2)

    def test_markers(self):
        """
        Per agent: active, unacknowledged alerts and their worst severity.
        """
        board = AlertBoard()
        board.merge(testing.alert(seq=1, severity="warning"), T0)
        board.merge(testing.alert(seq=2, severity="critical"), T0)
        board.merge(testing.alert(seq=3, revision=1, state=OVER, severity="critical"), T0)
        board.merge(testing.alert(agent_id="b", seq=1, severity="info"), T0)
        self.assertEqual(board.markers(), {"agent-a": (2, "critical"), "b": (1, "info")})
        board.acknowledge(("agent-a", EPOCH, 2), "ann", T0)
        self.assertEqual(board.markers()["agent-a"], (1, "warning"))


class AlertUI(FakeUI):
    """
    A UI's end that also keeps every alert push (held, like views, while
    C{hold} is set).
    """

    def __init__(self):
        FakeUI.__init__(self)
        self.batches = []
        self.full = []

    @AlertUpdate.responder
    def alert_update(self, batch):
        self.batches.append(batch.alerts)
        self.full.append(batch.full)
        return self.answer()


class HubAlertTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.hub = Hub("hub-a", "tcp:7420", self.clock, max_alerts=100)
        self.hub.doStart()
        self.addCleanup(self.hub.doStop)
        self.pumps = []

    def connect(self, client_class):
        client, server, pump = connectedServerAndClient(
            lambda: self.hub.buildProtocol(None), client_class, clock=self.clock)
        self.pumps.append(pump)
        return client

    def call(self, proto, command, **kw):
        result = Deferred()
        proto.callRemote(command, **kw).addCallbacks(result.callback, result.errback)
        for pump in self.pumps:
            pump.flush()
        return result

    def agent(self, agent_id="agent-a"):
        client = self.connect(BoundedAMP)
        self.successResultOf(self.call(client, AgentHello, agent_id=agent_id,
                                       hostname="host", epoch=EPOCH, version=__version__))
        return client

    def ui(self):
        client = self.connect(AlertUI)
        view = self.successResultOf(self.call(client, Watch, detail=""))["view"]
        return client, view

    def test_alertPushedAtOnce(self):
        """
        An agent's alert reaches every watching UI without waiting for the
        push tick, and the fleet view marks the agent.
        """
        agent = self.agent()
        ui1, _ = self.ui()
        ui2, _ = self.ui()
        alert = testing.alert()
        answer = self.successResultOf(self.call(agent, SendAlert, alert=alert))
        self.assertEqual(answer, {"accepted": True})
        for ui in (ui1, ui2):
            (batch,) = ui.batches
            self.assertEqual([e.alert for e in batch], [alert])
        view = self.successResultOf(self.call(ui1, GetFleet))["view"]
        self.assertEqual([e.alert for e in view.alerts], [alert])
        self.assertEqual((view.agents[0].alerts_active, view.agents[0].alert_severity),
                         (1, "warning"))
        self.assertEqual(view.hub.alerts_held, 1)

    def test_duplicateNotPushed(self):
        agent = self.agent()
        ui, _ = self.ui()
        self.call(agent, SendAlert, alert=testing.alert())
        answer = self.successResultOf(self.call(agent, SendAlert, alert=testing.alert()))
        self.assertEqual((answer, len(ui.batches)), ({"accepted": False}, 1))

    def test_reportCarriesAlerts(self):
        """
        Alerts in a report are merged like sent ones (a lost SendAlert
        heals at the next report).
        """
        agent = self.agent()
        ui, _ = self.ui()
        report = testing.report()
        from attrs import evolve
        report = evolve(report, alerts=(testing.alert(revision=1),))
        self.successResultOf(self.call(agent, Report, report=report))
        self.assertEqual(ui.batches[0][0].alert.revision, 1)

    def test_alertOfOtherAgentRefused(self):
        """
        An agent may send only its own alerts, and only after its hello.
        """
        agent = self.agent("agent-b")
        self.failureResultOf(self.call(agent, SendAlert, alert=testing.alert()))
        stranger = self.connect(BoundedAMP)
        self.failureResultOf(self.call(stranger, SendAlert, alert=testing.alert()))
        self.assertEqual(len(self.hub.alerts), 0)

    def test_flowControl(self):
        """
        With a push unanswered, later changes wait, folded per alert, and
        go together once it is answered.
        """
        agent = self.agent()
        ui, _ = self.ui()
        ui.hold = True
        for revision in range(4):
            self.call(agent, SendAlert, alert=testing.alert(revision=revision))
        self.call(agent, SendAlert, alert=testing.alert(seq=2))
        self.assertEqual(len(ui.batches), 1)
        ui.hold = False
        ui.release()
        for pump in self.pumps:
            pump.flush()
        self.assertEqual(len(ui.batches), 2)
        self.assertEqual(sorted((e.alert.seq, e.alert.revision) for e in ui.batches[1]),
                         [(1, 3), (2, 0)])

    def flush(self):
        for pump in self.pumps:
            pump.flush()

    def test_batchBounded(self):
        """
        One push carries at most ALERT_BATCH alerts; the rest follow.
        """
        agent = self.agent()
        ui, _ = self.ui()
        ui.hold = True
        for seq in range(1, ALERT_BATCH + 12):
            self.call(agent, SendAlert, alert=testing.alert(seq=seq))
        ui.hold = False
        ui.release()
        self.flush()
        self.assertEqual([len(b) for b in ui.batches], [1, ALERT_BATCH, 10])

    def test_resync(self):
        """
        A UI with more than VIEW_ALERTS changes waiting is sent the newest
        VIEW_ALERTS alerts whole, once its push in flight is answered, and
        nothing is kept pending for it meanwhile.
        """
        self.hub.alerts.max_alerts = self.hub.mesh.limits["alert"] = 5000
        ui, _ = self.ui()
        ui.hold = True
        for seq in range(1, VIEW_ALERTS + 3):
            self.hub.merge_alert(testing.alert(seq=seq, ts=T0 + seq))
        (proto,) = self.hub.watchers
        self.assertEqual((len(proto.pending_alerts), self.hub.alert_resyncs), (0, 1))
        ui.hold = False
        ui.release()
        self.flush()
        self.assertEqual([len(b) for b in ui.batches], [1, VIEW_ALERTS])
        self.assertEqual(ui.batches[1][0].alert.seq, VIEW_ALERTS + 2)
        self.assertTrue(ui.full[1])

    def test_acknowledgeReachesEveryUI(self):
        """
        A UI's acknowledgement is pushed to every UI, itself included.
        """
        agent = self.agent()
        ui1, _ = self.ui()
        ui2, _ = self.ui()
        self.call(agent, SendAlert, alert=testing.alert())
        answer = self.successResultOf(self.call(
            ui1, AcknowledgeAlert, agent_id="agent-a", epoch=EPOCH, seq=1, by="ann@desk1"))
        self.assertEqual(answer, {"known": True})
        for ui in (ui1, ui2):
            entry = ui.batches[-1][0]
            self.assertEqual((entry.state, entry.acknowledged_by), (ACKNOWLEDGED, "ann@desk1"))
        unknown = self.successResultOf(self.call(
            ui1, AcknowledgeAlert, agent_id="agent-a", epoch=EPOCH, seq=9, by="ann"))
        self.assertEqual(unknown, {"known": False})

    def test_watchAnswerHasAlerts(self):
        """
        A UI that starts watching gets every alert in the answer, and the
        periodic fleet pushes carry none.
        """
        agent = self.agent()
        self.call(agent, SendAlert, alert=testing.alert())
        _, view = self.ui()
        self.assertEqual(len(view.alerts), 1)
        self.assertEqual(self.hub.view(alerts=False).alerts, ())


class ClientAlertTests(SynchronousTestCase):
    """
    L{HubClient} keeps the fleet's alerts: the Watch answer's, then the
    pushes merged in, and sends acknowledgements.
    """

    def test_client(self):
        clock = Clock()
        clock.advance(T0)
        hub = Hub("hub-a", "tcp:7420", clock)
        hub.doStart()
        self.addCleanup(hub.doStop)
        hub.merge_alert(testing.alert(seq=1))
        client = HubClient("tcp:127.0.0.1:7420", clock, user="ann@desk1")
        from loopy.ui.client import WatchProtocol

        proto, server, pump = connectedServerAndClient(
            lambda: hub.buildProtocol(None), lambda: WatchProtocol(client), clock=clock)
        pump.flush()
        view, _, _ = client.snapshot()
        self.assertEqual([e.alert.seq for e in view.alerts], [1])
        hub.merge_alert(testing.alert(seq=2, ts=T0 + 1))
        pump.flush()
        view, _, _ = client.snapshot()
        self.assertEqual([e.alert.seq for e in view.alerts], [2, 1])
        client.acknowledge(("agent-a", EPOCH, 2))
        pump.flush()
        view, _, _ = client.snapshot()
        self.assertEqual(view.alerts[0].acknowledged_by, "ann@desk1")
        # A fleet push keeps the alerts the client holds.
        hub.push()
        pump.flush()
        view, _, _ = client.snapshot()
        self.assertEqual(len(view.alerts), 2)
