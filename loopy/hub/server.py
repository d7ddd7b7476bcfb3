# -*- test-case-name: tests.test_hub_server -*-
"""
The hub's AMP server: agents say hello and send reports; UIs watch the fleet
and get pushes, or ask for it once.

Pushes to a UI are flow-controlled: at most one L{FleetUpdate} per UI is in
flight, at most one per push interval; a tick that finds the previous push
unanswered skips that UI (counted in C{updates_coalesced}), so what a slow UI
costs the hub is bounded by one view.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from loopy import __version__
from loopy.errors import WireError
from loopy.hub.fleet import FleetState
from loopy.model import FleetView, HubInfo
from loopy.wire import AgentHello, BoundedAMP, FleetUpdate, GetFleet, Report, Watch

log = Logger()


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
        self.on_protocol_error = lambda reason: hub.protocol_error()

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self.hub.connection_lost(self)

    @AgentHello.responder
    def agent_hello(self, agent_id, hostname, epoch, version):
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
        return {"accepted": accepted}

    @Watch.responder
    def watch(self, detail):
        if not self.watching:
            self.watching = True
            self.hub.watchers.add(self)
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
                 push_interval: float = 1.0, max_agents: int = 10000):
        self.name = name
        self.endpoint = endpoint
        self.clock = clock
        self.started = clock.seconds()
        self.fleet = FleetState(name, stale_after=stale_after, max_agents=max_agents)
        self.watchers: set[HubProtocol] = set()
        self.agents_linked = 0
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
        )

    def view(self, detail=()) -> FleetView:
        """
        The fleet as a UI sees it, with full reports for C{detail} (a set of
        agent ids, or True for every agent).
        """
        return FleetView(
            hub=self.info(), agents=self.fleet.entries(self.clock.seconds(), detail)
        )

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
        view = self.view(detail={proto.detail} if proto.detail else ())
        d = proto.callRemote(FleetUpdate, view=view)

        def done(result):
            proto.push_in_flight = False

        def failed(failure):
            proto.push_in_flight = False
            log.warn("push to UI {peer} failed: {error}", peer=proto.transport.getPeer()
                     if proto.transport is not None else None,
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)
