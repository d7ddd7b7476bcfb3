# -*- test-case-name: tests.test_ui_client -*-
"""
The UI's link to a hub: an AMP client, kept connected with backoff, that
watches the fleet and keeps the newest L{FleetView}.

Runs in the reactor's thread.  The UI thread reads C{snapshot()} (one
attribute read of an immutable tuple, safe across threads) and asks for a
different detail agent with C{callFromThread(client.set_detail, id)}.
"""

from __future__ import annotations

from typing import Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from loopy.model import FleetView
from loopy.wire import BoundedAMP, FleetUpdate, Watch

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


class HubClient:
    """
    Watches one hub.

    :ivar state: L{CONNECTING}, L{CONNECTED} or L{RECONNECTING}.
    :ivar updates: views received.
    """

    def __init__(self, endpoint: str, reactor):
        self.endpoint = endpoint
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

    def _watch(self, proto: WatchProtocol) -> None:
        d = proto.callRemote(Watch, detail=self._detail)
        d.addCallbacks(
            lambda answer: self._received(answer["view"]),
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
        self._latest = (view, self._clock.seconds())
