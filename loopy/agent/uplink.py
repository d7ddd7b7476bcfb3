# -*- test-case-name: tests.test_uplink -*-
"""
The agent's link to its hub: an AMP client kept connected by
L{ClientService} with exponential backoff, that introduces the agent
(L{AgentHello}) and then carries its reports (L{Report}) and, the moment
they are raised, updated or ended, its alerts (L{SendAlert}).
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from loopy import __version__
from loopy.errors import WireError
from loopy.model import AgentReport, Alert
from loopy.wire import AgentHello, BoundedAMP, Report, SendAlert

log = Logger()

#: Reconnect delays (Twisted's backoffPolicy): 0.5 s × 1.5^attempts, capped at
#: 10 s, plus up to 1 s of random jitter, so the first retry waits 0.75-1.75 s
#: and none waits more than 11 s.
RETRY_POLICY = backoffPolicy(initialDelay=0.5, maxDelay=10.0, factor=1.5)


class AgentLink(BoundedAMP):
    """
    One connection to a hub.
    """

    def __init__(self, uplink: "Uplink"):
        BoundedAMP.__init__(self)
        self._uplink = uplink
        self.ready = False

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        self._uplink._connected(self)

    def connectionLost(self, reason):
        BoundedAMP.connectionLost(self, reason)
        self._uplink._disconnected(self, reason)


class Uplink(Service):
    """
    Keeps a link to one hub and sends reports over it.

    Reports made while no hub is linked are not kept (counted in
    C{reports_unsent}); the spool that keeps them is a later step of the
    design (ARCHITECTURE.md decision 9).

    :ivar reports_sent: reports handed to a link.
    :ivar reports_acked: reports the hub answered.
    :ivar reports_unsent: reports made while no hub was linked.
    :ivar reports_failed: reports whose call failed (link lost, hub error).
    :ivar alerts_sent: alert revisions handed to a link.
    :ivar alerts_acked: alert revisions the hub answered.
    :ivar alerts_unsent: alert revisions made while no hub was linked (the
        alert's newest revision still reaches the hub in the reports after
        the link comes back, while the alert is active or ended less than
        the alert book's linger ago).
    :ivar alerts_failed: alert revisions whose call failed.
    """

    def __init__(self, endpoint: str, reactor, hello: Callable[[], dict]):
        """
        :param endpoint: the hub's client endpoint string (``tcp:HOST:PORT``).
        :param reactor: provides IReactorTCP (and the rest of what the
            endpoint needs) and IReactorTime.
        :param hello: returns L{AgentHello}'s arguments but ``version``.
        """
        self.endpoint = endpoint
        self._hello = hello
        self._link: Optional[AgentLink] = None
        self.hub_name: Optional[str] = None
        self.reports_sent = self.reports_acked = 0
        self.reports_unsent = self.reports_failed = 0
        self.alerts_sent = self.alerts_acked = 0
        self.alerts_unsent = self.alerts_failed = 0
        self._unsent_logged = 0
        self._waiting_link: list[Deferred] = []
        self._client = ClientService(
            clientFromString(reactor, endpoint),
            Factory.forProtocol(lambda: AgentLink(self)),
            retryPolicy=RETRY_POLICY,
            clock=reactor,
        )

    def startService(self):
        Service.startService(self)
        self._client.startService()

    def stopService(self):
        Service.stopService(self)
        return self._client.stopService()

    @property
    def linked(self) -> bool:
        """
        Whether a hub has accepted this agent's hello on a live link.
        """
        return self._link is not None and self._link.ready

    def when_linked(self) -> Deferred:
        """
        A Deferred that fires with None once a hub has accepted this agent
        (at once if one has).
        """
        if self.linked:
            return succeed(None)
        d = Deferred(lambda d: self._waiting_link.remove(d))
        self._waiting_link.append(d)
        return d

    def _connected(self, link: AgentLink) -> None:
        self._link = link
        d = link.callRemote(AgentHello, version=__version__, **self._hello())

        def accepted(answer):
            link.ready = True
            waiting, self._waiting_link = self._waiting_link, []
            for waiter in waiting:
                waiter.callback(None)
            self.hub_name = answer["hub"]
            log.info("linked to hub {hub} at {endpoint}",
                     hub=self.hub_name, endpoint=self.endpoint)
            if self.reports_unsent > self._unsent_logged:
                log.warn("{count} reports made while no hub was linked were dropped "
                         "({total} since start)",
                         count=self.reports_unsent - self._unsent_logged,
                         total=self.reports_unsent)
                self._unsent_logged = self.reports_unsent

        def refused(failure):
            log.warn("hub at {endpoint} refused this agent: {error}",
                     endpoint=self.endpoint, error=failure.getErrorMessage())
            link.transport.loseConnection()

        d.addCallbacks(accepted, refused)

    def _disconnected(self, link: AgentLink, reason) -> None:
        if self._link is link:
            self._link = None
            if link.ready:
                log.warn("lost hub {hub} at {endpoint} ({reason}); reconnecting",
                         hub=self.hub_name, endpoint=self.endpoint,
                         reason=reason.getErrorMessage())

    def send(self, report: AgentReport) -> Deferred:
        """
        Send a report if a hub is linked; count it as unsent otherwise.

        :returns: a Deferred that fires (never fails) once the hub answered
            or the call failed; at once if the report was not sent.
        """
        return self._call("reports", f"report {report.seq}", Report, report=report)

    def send_alert(self, alert: Alert) -> Deferred:
        """
        Send one alert revision at once if a hub is linked; count it as
        unsent otherwise.

        :returns: a Deferred that fires (never fails) once the hub answered
            or the call failed; at once if the alert was not sent.
        """
        return self._call("alerts", f"alert {alert.seq} revision {alert.revision}",
                          SendAlert, alert=alert)

    def _call(self, counters: str, what: str, command, **arguments) -> Deferred:
        """
        Call C{command} on the link, counting in C{counters}_sent, _acked,
        _unsent and _failed.

        :param what: names the record in log lines.
        """
        def count(outcome):
            name = f"{counters}_{outcome}"
            setattr(self, name, getattr(self, name) + 1)

        if not self.linked:
            count("unsent")
            return succeed(None)
        try:
            d = self._link.callRemote(command, **arguments)
        except WireError as e:
            # Encoding happens at once: a record past MAX_RECORD_BYTES.
            count("failed")
            log.error("{what} cannot be sent: {error}", what=what, error=e)
            return succeed(None)
        count("sent")

        def failed(failure):
            count("failed")
            log.warn("{what} not accepted: {error}", what=what,
                     error=failure.getErrorMessage())

        d.addCallbacks(lambda _answer: count("acked"), failed)
        return d
