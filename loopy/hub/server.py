# -*- test-case-name: tests.test_hub_server -*-
"""
The hub's AMP server: agents say hello and send reports; UIs watch the fleet
and get pushes, or ask for it once.

Pushes to a UI are flow-controlled: at most one L{FleetUpdate} per UI is in
flight, at most one per push interval; a tick that finds the previous push
unanswered skips that UI (counted in C{updates_coalesced}), so what a slow UI
costs the hub is bounded by one view.

Alerts travel apart from the fleet view, and at once: an agent's
L{SendAlert} (or the alerts a report carries) is merged into the hub's
L{AlertBoard}, and every change (a new revision, an acknowledgement) is
pushed to every watching UI as an L{AlertUpdate} without waiting for the
push tick.  At most one L{AlertUpdate} per UI is in flight; changes made
meanwhile wait in that UI's pending table (one entry per alert, so it is
bounded by the board) and go in the next, at most L{ALERT_BATCH} a time.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy import __version__
from loopy.errors import WireError
from loopy.hub.alerts import AlertBoard
from loopy.hub.fleet import FleetState
from loopy.model import AlertEntry, FleetView, HubInfo
from loopy.wire import (
    AcknowledgeAlert,
    AgentHello,
    AlertBatch,
    AlertUpdate,
    BoundedAMP,
    FleetUpdate,
    GetFleet,
    Report,
    SendAlert,
    Watch,
)

log = Logger()

#: Most alerts in one L{AlertUpdate}.
ALERT_BATCH = 200
#: Most alerts in a view (the newest), and most changes waiting for one UI:
#: past that the UI is sent the newest alerts whole instead.
VIEW_ALERTS = 1000


class HubProtocol(BoundedAMP):
    """
    One connection to the hub: an agent's or a UI's, as its first command says.
    """

    def __init__(self, hub: "Hub"):
        BoundedAMP.__init__(self)
        self.hub = hub
        self.agent_id: Optional[str] = None
        self.watching = False
        self.detail = ""
        self.push_in_flight = False
        self.alerts_in_flight = False
        self.pending_alerts: dict[tuple, AlertEntry] = {}
        self.resync_alerts = False
        self.on_protocol_error = lambda reason: hub.protocol_error()

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.hub.connection_lost(self)

    @AgentHello.responder
    def agent_hello(self, agent_id, hostname, epoch, version, link=None):
        if self.agent_id is not None and self.agent_id != agent_id:
            raise WireError("this link already belongs to agent " + self.agent_id)
        if not agent_id:
            raise WireError("empty agent_id")
        if self.agent_id is None:
            if not self.hub.fleet.linked(agent_id, hostname):
                raise WireError("the hub's agent table is full")
            self.agent_id = agent_id
            self.hub.agents_linked += 1
            log.info("agent {agent_id} ({hostname}, epoch {epoch}, {version}) linked "
                     "from {peer}", agent_id=agent_id, hostname=hostname, epoch=epoch,
                     version=version, peer=self.transport.getPeer())
        return {"hub": self.hub.name}

    @Report.responder
    def report(self, report):
        if self.agent_id is None or report.agent_id != self.agent_id:
            raise WireError("a report must follow AgentHello, for the same agent_id")
        accepted = self.hub.fleet.merge(report, self.hub.clock.seconds())
        for alert in report.alerts:
            self._check_alert(alert)
            self.hub.merge_alert(alert)
        return {"accepted": accepted}

    @SendAlert.responder
    def send_alert(self, alert):
        self._check_alert(alert)
        return {"accepted": self.hub.merge_alert(alert)}

    def _check_alert(self, alert) -> None:
        if self.agent_id is None or alert.agent_id != self.agent_id:
            raise WireError("an alert must follow AgentHello, for the same agent_id")

    @AcknowledgeAlert.responder
    def acknowledge_alert(self, agent_id, epoch, seq, by):
        return {"known": self.hub.acknowledge_alert((agent_id, epoch, seq), by[:200])}

    @Watch.responder
    def watch(self, detail):
        if not self.watching:
            self.watching = True
            self.hub.watchers.add(self)
        # The view carries the newest alerts: what was pending is in it.
        self.pending_alerts.clear()
        self.resync_alerts = False
        self.detail = detail
        return {"view": self.hub.view(detail={detail} if detail else ())}

    @GetFleet.responder
    def get_fleet(self):
        return {"view": self.hub.view(detail=True)}


class Hub(Factory):
    """
    The hub's state and its server factory.

    :ivar updates_coalesced: pushes skipped because the UI had not answered
        the previous one.
    :ivar protocol_errors: connections dropped for bad input.
    """

    def __init__(self, name: str, endpoint: str, clock, stale_after: float = 3.0,
                 push_interval: float = 1.0, max_agents: int = 10000,
                 max_alerts: int = 10000):
        self.name = name
        self.endpoint = endpoint
        self.clock = clock
        self.started = clock.seconds()
        self.fleet = FleetState(name, stale_after=stale_after, max_agents=max_agents)
        self.alerts = AlertBoard(max_alerts=max_alerts)
        self.watchers: set[HubProtocol] = set()
        self.agents_linked = 0
        self.alert_resyncs = 0
        self.updates_coalesced = 0
        self.protocol_errors = 0
        self._push = LoopingCall(self.push)
        self._push.clock = clock
        self._push_interval = push_interval

    def buildProtocol(self, addr):
        return HubProtocol(self)

    def startFactory(self):
        if not self._push.running:
            self._push.start(self._push_interval, now=False)

    def stopFactory(self):
        if self._push.running:
            self._push.stop()

    def protocol_error(self) -> None:
        self.protocol_errors += 1

    def connection_lost(self, proto: HubProtocol) -> None:
        self.watchers.discard(proto)
        if proto.agent_id is not None:
            self.agents_linked -= 1
            self.fleet.unlinked(proto.agent_id)
            log.info("agent {agent_id} unlinked", agent_id=proto.agent_id)

    def info(self) -> HubInfo:
        return HubInfo(
            name=self.name,
            endpoint=self.endpoint,
            version=__version__,
            started=self.started,
            now=self.clock.seconds(),
            agents_linked=self.agents_linked,
            uis_linked=len(self.watchers),
            updates_coalesced=self.updates_coalesced,
            protocol_errors=self.protocol_errors,
            alerts_held=len(self.alerts),
            alerts_dropped=self.alerts.dropped,
        )

    def view(self, detail=(), alerts: bool = True) -> FleetView:
        """
        The fleet as a UI sees it, with full reports for C{detail} (a set of
        agent ids, or True for every agent), and every alert if C{alerts}.
        """
        return FleetView(
            hub=self.info(),
            agents=self.fleet.entries(self.clock.seconds(), detail, self.alerts.markers()),
            alerts=self.alerts.entries()[:VIEW_ALERTS] if alerts else (),
        )

    def merge_alert(self, alert) -> bool:
        """
        Merge one alert revision and push it to the UIs if it was new.

        :returns: whether it was new.
        """
        entry = self.alerts.merge(alert, self.clock.seconds())
        if entry is None:
            return False
        self.alert_changed(entry)
        return True

    def acknowledge_alert(self, key: tuple, by: str) -> bool:
        """
        Acknowledge alert C{key} and push the change to the UIs.

        :returns: whether the hub holds that alert.
        """
        entry = self.alerts.acknowledge(key, by, self.clock.seconds())
        if entry is not None:
            log.info("alert {key} acknowledged by {by}", key=key, by=by)
            self.alert_changed(entry)
        return self.alerts.get(key) is not None

    def alert_changed(self, entry: AlertEntry) -> None:
        """
        Queue C{entry} for every watching UI and push at once to those with
        no alert push in flight.
        """
        for proto in list(self.watchers):
            if not proto.resync_alerts:
                proto.pending_alerts[entry.alert.key] = entry
                if len(proto.pending_alerts) > VIEW_ALERTS:
                    proto.pending_alerts.clear()
                    proto.resync_alerts = True
                    self.alert_resyncs += 1
            if not proto.alerts_in_flight:
                self._push_alerts(proto)

    def _push_alerts(self, proto: HubProtocol) -> None:
        pending = proto.pending_alerts
        if proto.resync_alerts:
            proto.resync_alerts = False
            batch = AlertBatch(alerts=self.alerts.entries()[:VIEW_ALERTS], full=True)
        elif pending:
            keys = list(pending)[:ALERT_BATCH]
            batch = AlertBatch(alerts=tuple(pending.pop(k) for k in keys))
        else:
            return
        proto.alerts_in_flight = True
        d = proto.callRemote(AlertUpdate, batch=batch)

        def done(_):
            proto.alerts_in_flight = False
            if proto in self.watchers:
                self._push_alerts(proto)

        def failed(failure):
            proto.alerts_in_flight = False
            log.warn("alert push to UI {peer} failed: {error}",
                     peer=proto.transport.getPeer() if proto.transport is not None else None,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)

    def push(self) -> None:
        """
        Send each watching UI the current view, unless its last push is
        still unanswered.
        """
        try:
            for proto in list(self.watchers):
                if proto.push_in_flight:
                    self.updates_coalesced += 1
                    continue
                self._push_to(proto)
        except Exception:
            log.failure("pushing fleet updates failed")

    def _push_to(self, proto: HubProtocol) -> None:
        proto.push_in_flight = True
        view = self.view(detail={proto.detail} if proto.detail else (), alerts=False)
        d = proto.callRemote(FleetUpdate, view=view)

        def done(result):
            proto.push_in_flight = False

        def failed(failure):
            proto.push_in_flight = False
            log.warn("push to UI {peer} failed: {error}", peer=proto.transport.getPeer()
                     if proto.transport is not None else None,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)
