# -*- test-case-name: tests.test_ui_client -*-
"""
The UI's link to a hub of its failover list: an AMP client, kept connected
by L{ClientService} over a L{FailoverEndpoint}, that watches the fleet and
keeps the newest L{FleetView}, with the fleet's alerts merged from the hub's
L{AlertUpdate} pushes.

The UI moves to the next hub of its list as the agent does (docs/reference.md,
"Hub failover"): when an attempt fails, the hub fails the L{Watch}, the link
is lost, or the hub sends nothing for L{HubClient.silence_limit} seconds
(C{hub_timeout}, 5 s, or five of the hub's push intervals if longer).  It does not go back to an earlier hub by itself: any
hub of the mesh shows the whole fleet.

Runs in the reactor's thread.  The UI thread reads C{snapshot()} (one
attribute read of an immutable tuple, safe across threads) and asks for a
different detail agent with C{callFromThread(client.set_detail, id)}.

The history screen asks the linked hub for a range of history with
L{HubClient.get_history}; every hub of the mesh keeps the whole history, so
after a failover the next question goes to the next hub.
"""

from __future__ import annotations

import getpass
import socket
from typing import Optional, Sequence, Union

from attrs import evolve
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, TimeoutError, fail
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from loopy.errors import HubUnreachable
from loopy.failover import FailoverEndpoint, time_limit
from loopy.history import HistoryQuery
from loopy.hub.alerts import AlertBoard
from loopy.model import FleetView
from loopy.wire import (AcknowledgeAlert, AlertUpdate, BoundedAMP, FleetUpdate, GetHistory,
                        Watch)

log = Logger()

CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"

#: Seconds without a word from the hub (a push, an answer) before the UI
#: drops the link: five of the hub's default one-second push ticks.
HUB_TIMEOUT = 5.0
#: Delay after a whole cycle through the hub list failed: 0.5 s × 1.5^cycles,
#: capped at 5 s, plus up to 1 s of jitter.
RETRY_POLICY = backoffPolicy(initialDelay=0.5, maxDelay=5.0)
#: Seconds the UI waits for the answer to a history question (a week of
#: history is a bigger question than a push).
HISTORY_TIMEOUT = 15.0


class WatchProtocol(BoundedAMP):
    def __init__(self, client: "HubClient"):
        BoundedAMP.__init__(self)
        self._client = client

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        self._client._connected(self)

    def connectionLost(self, reason):
        # The client first, so the calls AMP fails next know the link is gone.
        self._client._disconnected(self)
        BoundedAMP.connectionLost(self, reason)

    @FleetUpdate.responder
    def fleet_update(self, view):
        self._client._received(view)
        self._client._heard(self)
        return {}

    @AlertUpdate.responder
    def alert_update(self, batch):
        self._client._heard(self)
        self._client._alerts_changed(batch.alerts, batch.full)
        return {}


class HubClient:
    """
    Watches one hub of an ordered list at a time.

    :ivar state: L{CONNECTING}, L{CONNECTED} or L{RECONNECTING}.
    :ivar endpoints: the hubs' client endpoint strings, in order.
    :ivar updates: views received.
    :ivar alert_updates: alert pushes received.
    :ivar links_timed_out: links dropped because the hub said nothing for
        C{hub_timeout} seconds.
    :ivar user: who acknowledges alerts from this UI (``user@host``).
    :ivar history_queries: history questions asked of a hub.
    :ivar history_failures: those that failed (no hub linked, no answer
        within C{history_timeout}, C{HISTORY_ERROR}, link lost).
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], reactor,
                 user: Optional[str] = None, hub_timeout: float = HUB_TIMEOUT,
                 history_timeout: float = HISTORY_TIMEOUT):
        """
        :param endpoints: the hubs' client endpoint strings, in order of
            preference; or one string.
        :param reactor: what the endpoints need, and IReactorTime.
        :param hub_timeout: seconds of silence from a linked hub before the
            link is dropped and the next hub tried.
        :param history_timeout: seconds to wait for the answer to a
            history question.
        """
        if isinstance(endpoints, str):
            endpoints = (endpoints,)
        self._failover = FailoverEndpoint(reactor, endpoints, backoff=RETRY_POLICY)
        self.endpoints = self._failover.endpoints
        self.user = user or default_user()
        self.hub_timeout = hub_timeout
        self.history_timeout = history_timeout
        self.history_queries = 0
        self.history_failures = 0
        self.alert_updates = 0
        self.links_timed_out = 0
        self._alerts = AlertBoard()
        self._clock = reactor
        self._proto: Optional[WatchProtocol] = None
        self._silence = None
        self._stopping = False
        self._detail = ""
        self.state = CONNECTING
        self.updates = 0
        # (view, hub-clock-free local receipt time): replaced whole, never mutated.
        self._latest: tuple[Optional[FleetView], Optional[float]] = (None, None)
        self._service = ClientService(
            self._failover,
            Factory.forProtocol(lambda: WatchProtocol(self)),
            retryPolicy=self._failover.retry_delay,
            clock=reactor,
        )

    @property
    def endpoint_in_use(self) -> str:
        """
        The endpoint string of the hub linked, or being tried.
        """
        return self._failover.current

    def start(self) -> None:
        self._service.startService()

    def stop(self):
        self._stopping = True
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

    def get_history(self, query: HistoryQuery) -> Deferred:
        """
        Ask the linked hub for the history of a range (L{GetHistory}).  The
        answer counts as a word from the hub (see L{silence_limit}).  A
        failed question is not asked again, nor of another hub: the caller
        asks again (the history screen does, every few seconds).

        :returns: a Deferred firing with a L{loopy.history.History}, or
            failing with L{HubUnreachable} while no hub is linked,
            L{TimeoutError} after C{history_timeout} seconds,
            L{loopy.errors.HistoryError} when the hub's history cannot
            answer (a bad range, a store failure), or the link's loss.
        """
        self.history_queries += 1
        proto = self._proto
        if proto is None:
            self.history_failures += 1
            return fail(HubUnreachable(
                f"no hub linked yet (trying {self.endpoint_in_use})"))

        def answered(answer):
            self._heard(proto)
            result.callback(answer["history"])

        def failed(failure):
            self.history_failures += 1
            return failure

        # The caller gets a Deferred of its own: a failure left at the end
        # of callRemote's would make AMP drop the link as unhandled, and a
        # time limit cancels this one, not the call (a late answer is
        # ignored).
        result = Deferred().addErrback(failed)
        call = proto.callRemote(GetHistory, query=query)
        call.addCallbacks(answered, result.errback)
        return time_limit(result, self.history_timeout, self._clock, TimeoutError(
            f"hub {self.endpoint_in_use} gave no history within {self.history_timeout:g} s"))

    def _watch(self, proto: WatchProtocol) -> None:
        d = proto.callRemote(Watch, detail=self._detail)

        def watching(answer):
            # The answer holds every alert the hub has: start from it.
            self._failover.linked()
            view = answer["view"]
            self._alerts.replace(view.alerts)
            self._received(view)
            self._heard(proto)

        def failed(failure):
            if proto is self._proto:
                log.warn("watch at hub {endpoint} failed: {error}; trying the next hub",
                         endpoint=self.endpoint_in_use, error=failure.getErrorMessage())
                proto.transport.loseConnection()

        d.addCallbacks(watching, failed)

    def _heard(self, proto: WatchProtocol) -> None:
        """
        The hub on C{proto} said something: count its silence from now.
        """
        if proto is not self._proto:
            return
        if self._silence is not None and self._silence.active():
            self._silence.reset(self.silence_limit)
        else:
            self._silence = self._clock.callLater(self.silence_limit, self._silent, proto)

    @property
    def silence_limit(self) -> float:
        """
        Seconds of silence before the link is dropped: C{hub_timeout}, or
        five of the hub's push intervals if that is longer (as its views
        say).
        """
        view, _at = self._latest
        pushes = 5 * view.hub.push_interval if view is not None else 0.0
        return max(self.hub_timeout, pushes)

    def _silent(self, proto: WatchProtocol) -> None:
        self._silence = None
        self.links_timed_out += 1
        log.warn("hub at {endpoint} said nothing for {timeout:g} s; dropping the link",
                 endpoint=self.endpoint_in_use, timeout=self.silence_limit)
        proto.transport.abortConnection()

    def _connected(self, proto: WatchProtocol) -> None:
        self._proto = proto
        self.state = CONNECTED
        self._heard(proto)
        self._watch(proto)

    def _disconnected(self, proto: WatchProtocol) -> None:
        if self._proto is proto:
            self._proto = None
            self.state = RECONNECTING
            if self._silence is not None and self._silence.active():
                self._silence.cancel()
            self._silence = None
            left = self.endpoint_in_use
            self._failover.lost()
            if not self._stopping:
                log.warn("lost hub at {endpoint}; trying {next}", endpoint=left,
                         next=self.endpoint_in_use)

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
