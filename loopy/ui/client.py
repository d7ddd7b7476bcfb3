# -*- test-case-name: tests.test_ui_client -*-
"""
The UI's link to a hub: an AMP client, kept connected with backoff, that
watches the fleet and keeps the newest L{FleetView}, with the fleet's
alerts merged from the hub's L{AlertUpdate} pushes.

Runs in the reactor's thread.  The UI thread reads C{snapshot()} (one
attribute read of an immutable tuple, safe across threads) and asks for a
different detail agent with C{callFromThread(client.set_detail, id)}.
"""

from __future__ import annotations

import getpass
import socket
from typing import Optional

from attrs import evolve
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from loopy.hub.alerts import AlertBoard
from loopy.model import FleetView
from loopy.wire import AcknowledgeAlert, AlertUpdate, BoundedAMP, FleetUpdate, Watch

log = Logger()

CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"


class WatchProtocol(BoundedAMP):
    def __init__(self, client: "HubClient"):
        BoundedAMP.__init__(self)
        self._client = client

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        self._client._connected(self)

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self._client._disconnected(self)

    @FleetUpdate.responder
    def fleet_update(self, view):
        self._client._received(view)
        return {}

    @AlertUpdate.responder
    def alert_update(self, batch):
        self._client._alerts_changed(batch.alerts, batch.full)
        return {}


class HubClient:
    """
    Watches one hub.

    :ivar state: L{CONNECTING}, L{CONNECTED} or L{RECONNECTING}.
    :ivar updates: views received.
    :ivar alert_updates: alert pushes received.
    :ivar user: who acknowledges alerts from this UI (``user@host``).
    """

    def __init__(self, endpoint: str, reactor, user: Optional[str] = None):
        self.endpoint = endpoint
        self.user = user or default_user()
        self.alert_updates = 0
        self._alerts = AlertBoard()
        self._clock = reactor
        self._proto: Optional[WatchProtocol] = None
        self._detail = ""
        self.state = CONNECTING
        self.updates = 0
        # (view, hub-clock-free local receipt time): replaced whole, never mutated.
        self._latest: tuple[Optional[FleetView], Optional[float]] = (None, None)
        self._service = ClientService(
            clientFromString(reactor, endpoint),
            Factory.forProtocol(lambda: WatchProtocol(self)),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=5.0),
            clock=reactor,
        )

    def start(self) -> None:
        self._service.startService()

    def stop(self):
        return self._service.stopService()

    def snapshot(self) -> tuple[Optional[FleetView], Optional[float], str]:
        """
        The newest view, the local time it arrived, and the link state.
        """
        view, at = self._latest
        return view, at, self.state

    def set_detail(self, agent_id: str) -> None:
        """
        Ask for full reports of C{agent_id} ("" for none) in later pushes.
        """
        self._detail = agent_id
        if self._proto is not None:
            self._watch(self._proto)

    def acknowledge(self, key: tuple) -> None:
        """
        Acknowledge alert C{key} (``(agent_id, epoch, seq)``) as this UI's
        user; the hub pushes the change to every UI, this one included.
        Does nothing while no hub is linked.
        """
        if self._proto is None:
            return
        agent_id, epoch, seq = key
        d = self._proto.callRemote(AcknowledgeAlert, agent_id=agent_id, epoch=epoch,
                                   seq=seq, by=self.user)
        d.addErrback(lambda failure: log.warn("acknowledging alert {key} failed: {error}",
                                              key=key, error=failure.getErrorMessage()))

    def _watch(self, proto: WatchProtocol) -> None:
        d = proto.callRemote(Watch, detail=self._detail)

        def watching(answer):
            # The answer holds every alert the hub has: start from it.
            view = answer["view"]
            self._alerts.replace(view.alerts)
            self._received(view)

        d.addCallbacks(
            watching,
            lambda failure: log.warn("watch failed: {error}",
                                     error=failure.getErrorMessage()),
        )

    def _connected(self, proto: WatchProtocol) -> None:
        self._proto = proto
        self.state = CONNECTED
        self._watch(proto)

    def _disconnected(self, proto: WatchProtocol) -> None:
        if self._proto is proto:
            self._proto = None
            self.state = RECONNECTING

    def _received(self, view: FleetView) -> None:
        self.updates += 1
        self._latest = (evolve(view, alerts=self._alerts.entries()), self._clock.seconds())

    def _alerts_changed(self, entries, full: bool = False) -> None:
        self.alert_updates += 1
        if full:
            self._alerts.replace(entries)
            changed = True
        else:
            changed = [e for e in entries if self._alerts.apply(e) is not None]
        view, at = self._latest
        if changed and view is not None:
            self._latest = (evolve(view, alerts=self._alerts.entries()), at)


def default_user() -> str:
    """
    ``user@host`` of whoever runs this UI, for acknowledgements.
    """
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
