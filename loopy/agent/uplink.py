# -*- test-case-name: tests.test_uplink -*-
"""
The agent's link to a hub of its failover list: an AMP client kept connected
by L{ClientService} over a L{FailoverEndpoint}, that introduces the agent
(L{AgentHello}) and then carries its reports (L{Report}) and, the moment
they are raised, updated or ended, its alerts (L{SendAlert}).  Every record
is kept in the agent's spool until a hub acknowledges it
(L{loopy.agent.delivery}, L{loopy.agent.spool}).

The agent is linked to one hub at a time.  It moves to the next hub of the
list when an attempt fails, a hub refuses its hello, the link is lost, or a
call on the link goes unanswered for C{hub_timeout} seconds (the link is
aborted: a cut link sends no FIN).  While linked to a hub that is not the
first of the list it tries the hubs before it every C{failback} seconds
(L{Uplink}); the rule in full is in docs/reference.md, "Hub failover".
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from loopy import __version__
from loopy.agent.delivery import Delivery
from loopy.agent.spool import Spool
from loopy.failover import CONNECT_TIMEOUT, FailoverEndpoint, cancelled
from loopy.model import AgentReport, Alert
from loopy.wire import AgentHello, BoundedAMP

log = Logger()

#: Seconds a call on the link may go unanswered before the link is aborted.
HUB_TIMEOUT = 3.0
#: Seconds between tries of the hubs before the linked one (0: never).
FAILBACK = 60.0


class AgentLink(BoundedAMP):
    """
    One connection to a hub.

    :ivar endpoint: the hub's client endpoint string.
    :ivar probe: made by a failback try, not by the L{ClientService}.
    :ivar ready: whether the hub accepted the agent's hello on it.
    :ivar why: why the agent hung up, or None.
    :ivar closed: whether the connection is closed.
    """

    def __init__(self, uplink: "Uplink", endpoint: str, probe: bool = False):
        BoundedAMP.__init__(self)
        self._uplink = uplink
        self.endpoint = endpoint
        self.probe = probe
        self.ready = False
        self.why: Optional[str] = None
        self.closed = False
        self._lost: list[Deferred] = []

    def connectionMade(self):
        BoundedAMP.connectionMade(self)
        if not self.probe:
            self._uplink._connected(self)

    def connectionLost(self, reason):
        # Closed before AMP fails the calls in flight, whose errbacks look.
        self.closed = True
        BoundedAMP.connectionLost(self, reason)
        self._uplink._disconnected(self, reason)
        waiting, self._lost = self._lost, []
        for d in waiting:
            d.callback(None)

    def hang_up(self, why: str, abort: bool = False) -> None:
        """
        Close the connection (at once, dropping what is buffered, if
        C{abort}), saying why in the log lines that follow; nothing if it
        is closed.
        """
        if self.closed:
            return
        self.why = self.why or why
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def when_lost(self) -> Deferred:
        """
        A Deferred that fires with None once the connection is closed.
        """
        if self.closed:
            return succeed(None)
        d = Deferred()
        self._lost.append(d)
        return d


class Uplink(Service):
    """
    Keeps a link to one hub of an ordered list and delivers the agent's
    reports and alerts over it (L{Delivery}: spooled first, sent at once if
    linked, the backlog sent on each new link).

    :ivar endpoints: the hubs' client endpoint strings, in order.
    :ivar hub_name: the name of the hub linked last (None before).
    :ivar hub_endpoint: its endpoint string (None before).
    :ivar links: hellos accepted since start; each hello carries the number
        it gets if accepted (L{AgentHello}'s C{link}).
    :ivar failovers: links accepted at a hub other than the one linked
        before (failbacks not counted).
    :ivar failbacks: moves back to a hub earlier in the list.
    :ivar links_timed_out: links and failback tries aborted because a call
        went unanswered for C{hub_timeout} seconds.
    :ivar delivery: the L{Delivery}, with the counters of reports and
        alerts sent, acknowledged, spooled while unlinked and failed.
    :ivar on_link: called with no argument each time a hub accepts the
        agent (the report loop's L{report_now
        <loopy.agent.service.ReportLoop.report_now>}), or None.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], reactor,
                 hello: Callable[[], dict], *, hub_timeout: float = HUB_TIMEOUT,
                 failback: float = FAILBACK, connect_timeout: float = CONNECT_TIMEOUT,
                 on_link: Optional[Callable[[], object]] = None,
                 spool: Optional[Spool] = None):
        """
        :param endpoints: the hubs' client endpoint strings
            (``tcp:HOST:PORT``), in order of preference; or one string.
        :param reactor: provides IReactorTCP (and the rest of what the
            endpoints need) and IReactorTime.
        :param hello: returns L{AgentHello}'s arguments but ``version`` and
            ``link``.
        :param hub_timeout: seconds a call may go unanswered.
        :param failback: seconds between tries of the hubs before the
            linked one; 0 for never.
        :param connect_timeout: seconds a connection attempt may take.
        :param spool: where records wait for acknowledgement [default: a
            memory spool of the default size]; opened when the service
            starts (L{Spool.open} raises L{loopy.errors.SpoolError}) and
            closed when it has stopped.
        """
        if isinstance(endpoints, str):
            endpoints = (endpoints,)
        # Delays: 0.25 s within a cycle through the list, then
        # loopy.failover.BACKOFF (0.5 s × 1.5^cycles, at most 10 s, + jitter).
        self._failover = FailoverEndpoint(reactor, endpoints,
                                          connect_timeout=connect_timeout)
        self.endpoints = self._failover.endpoints
        self._clock = reactor
        self._hello = hello
        self.hub_timeout = hub_timeout
        self.failback = failback
        self.on_link = on_link
        self._link: Optional[AgentLink] = None
        self._adopted = False  # the link came from a failback; ClientService stopped
        self._probe: Optional[AgentLink] = None
        self._probing: Optional[Deferred] = None
        self._failback_call = None
        self._why = "no link yet"
        self.hub_name: Optional[str] = None
        self.hub_endpoint: Optional[str] = None
        self.links = self.failovers = self.failbacks = self.links_timed_out = 0
        self.delivery = Delivery(spool if spool is not None else Spool(None, reactor),
                                 reactor)
        self._waiting_link: list[Deferred] = []
        self._client = ClientService(
            self._failover,
            Factory.forProtocol(lambda: AgentLink(self, self._failover.current)),
            retryPolicy=self._failover.retry_delay,
            clock=reactor,
        )

    def startService(self):
        self.delivery.spool.open()
        Service.startService(self)
        self._client.startService()

    def stopService(self):
        Service.stopService(self)
        self._stop_failback()
        self.delivery.stop()  # its pause timer
        stopping = [self._client.stopService()]
        if self._adopted and self._link is not None:
            stopping.append(self._link.when_lost())
            self._link.hang_up("the agent is stopping")

        def stopped(_):
            self.delivery.spool.close()

        return gatherResults(stopping).addCallback(stopped)

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

    # The link's life.

    def _connected(self, link: AgentLink) -> None:
        self._link = link

        def refused(failure):
            if link.why is None and not link.closed:
                log.warn("hub at {endpoint} refused this agent: {error}",
                         endpoint=link.endpoint, error=failure.getErrorMessage())
                link.hang_up(f"hello refused: {failure.getErrorMessage()}")

        self._say_hello(link).addCallbacks(lambda answer: self._accepted(link, answer),
                                           refused)

    def _say_hello(self, link: AgentLink) -> Deferred:
        return self._remote(link, AgentHello, version=__version__, link=self.links + 1,
                            **self._hello())

    def _accepted(self, link: AgentLink, answer: dict) -> None:
        """
        A hub accepted the hello on C{link}, which is now the agent's link.
        """
        link.ready = True
        self.links += 1
        previous, self.hub_endpoint = self.hub_endpoint, link.endpoint
        self.hub_name = answer["hub"]
        if link.probe:
            link.probe = False
            log.info("moved back to hub {hub} at {endpoint} (link {link}), earlier in "
                     "the hub list than {previous}", hub=self.hub_name,
                     endpoint=link.endpoint, link=self.links, previous=previous)
        else:
            self._failover.linked()
            if previous is None or previous == link.endpoint:
                log.info("linked to hub {hub} at {endpoint} (link {link})",
                         hub=self.hub_name, endpoint=link.endpoint, link=self.links)
            else:
                self.failovers += 1
                log.warn("moved to hub {hub} at {endpoint} (link {link}); left "
                         "{previous}: {why}", hub=self.hub_name, endpoint=link.endpoint,
                         link=self.links, previous=previous, why=self._why)
        self._schedule_failback()
        self.delivery.linked(lambda command, **arguments:
                             self._remote(link, command, **arguments))
        if self.on_link is not None:
            try:
                self.on_link()
            except Exception:
                log.failure("the hook on a new hub link failed")
        waiting, self._waiting_link = self._waiting_link, []
        for waiter in waiting:
            waiter.callback(None)

    def _disconnected(self, link: AgentLink, reason) -> None:
        if link is self._probe:
            self._probe = None
            return
        if link is not self._link:
            return  # the link left by a failback
        self._link = None
        self.delivery.unlinked()
        self._failover.lost()
        self._why = link.why or f"link lost ({reason.getErrorMessage()})"
        self._stop_failback()
        if self.running:
            if link.ready:
                log.warn("lost hub {hub} at {endpoint} ({why}); trying {next}",
                         hub=self.hub_name, endpoint=link.endpoint, why=self._why,
                         next=self._failover.current)
            elif link.why is None:
                log.warn("hub at {endpoint} closed the link before accepting this "
                         "agent ({reason}); trying {next}", endpoint=link.endpoint,
                         reason=reason.getErrorMessage(), next=self._failover.current)
        if self._adopted:
            self._adopted = False
            if self.running:
                self._client.startService()

    def _remote(self, proto: AgentLink, command, **arguments) -> Deferred:
        """
        C{proto.callRemote(command, **arguments)}; unanswered after
        C{hub_timeout} seconds, the connection is aborted (and the call
        fails).

        :raises WireError: if the arguments cannot be encoded.
        """
        d = proto.callRemote(command, **arguments)
        timer = self._clock.callLater(self.hub_timeout, self._silent, proto, command)

        def answered(result):
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(answered)

    def _silent(self, link: AgentLink, command) -> None:
        self.links_timed_out += 1
        log.warn("hub at {endpoint} did not answer {command} within {timeout:g} s; "
                 "dropping the link", endpoint=link.endpoint, command=command.__name__,
                 timeout=self.hub_timeout)
        link.hang_up(f"no answer within {self.hub_timeout:g} s", abort=True)

    # Failback: back to a hub earlier in the list.

    def _schedule_failback(self) -> None:
        if (self.failback and self.running and self.linked and self._failover.index > 0
                and self._failback_call is None and self._probing is None):
            self._failback_call = self._clock.callLater(self.failback, self._try_failback, 0)

    def _stop_failback(self) -> None:
        call, self._failback_call = self._failback_call, None
        if call is not None and call.active():
            call.cancel()
        probing, self._probing = self._probing, None
        probe, self._probe = self._probe, None
        if probing is not None:
            probing.cancel()
        if probe is not None:
            probe.hang_up("failback abandoned")

    def _try_failback(self, index: int) -> None:
        """
        Connect to the hub at C{index} and say hello; if it accepts, move to
        it, else try the next hub before the linked one, and after the last
        wait for the next failback time.
        """
        self._failback_call = None
        if not self.linked or index >= self._failover.index:
            self._schedule_failback()
            return
        endpoint = self._failover.endpoints[index]
        factory = Factory.forProtocol(lambda: AgentLink(self, endpoint, probe=True))
        self._probing = d = self._failover.connect_to(index, factory)

        def connected(probe):
            self._probe = probe
            return self._say_hello(probe).addCallback(lambda answer: (probe, answer))

        def accepted(result):
            probe, answer = result
            self._probing = self._probe = None
            self._move_back(index, probe, answer)

        def failed(failure):
            if cancelled(failure):
                return  # the link was lost or the agent is stopping
            self._probing = None
            log.info("failback: hub at {endpoint} not taken ({error})",
                     endpoint=endpoint, error=failure.getErrorMessage())
            probe, self._probe = self._probe, None
            if probe is not None:
                probe.hang_up("failback refused")
            self._try_failback(index + 1)

        d.addCallback(connected).addCallbacks(accepted, failed)

    def _move_back(self, index: int, probe: AgentLink, answer: dict) -> None:
        """
        The failback try at C{index} was accepted: its link replaces the
        current one, which is closed; the L{ClientService} stays stopped
        until this link ends.
        """
        old, self._link = self._link, probe
        self._failover.move_to(index)
        self.failbacks += 1
        if self._adopted:
            old.hang_up("moved back to a hub earlier in the list")
        else:
            self._adopted = True
            old.why = "moved back to a hub earlier in the list"
            self._client.stopService()
        self._accepted(probe, answer)

    # Sending.

    def send(self, report: AgentReport) -> Deferred:
        """
        Deliver a report: stamp it with the spool's counters, spool it, and
        send it at once if a hub is linked (L{Delivery.submit}).

        :returns: a Deferred that fires (never fails) once the hub answered
            or the call failed; at once if the report was not sent now.
        """
        return self.delivery.submit(report)

    def send_alert(self, alert: Alert) -> Deferred:
        """
        Deliver one alert revision: spool it and send it at once if a hub
        is linked (L{Delivery.submit}).

        :returns: as L{send}.
        """
        return self.delivery.submit(alert)
