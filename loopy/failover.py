# -*- test-case-name: tests.test_failover -*-
"""
An ordered list of hubs as one client endpoint, for L{ClientService}.

The rule (docs/reference.md, "Hub failover"):

* The first attempt goes to the first hub of the list.
* Every end of a connection moves to the next hub of the list, wrapping
  around: an attempt that fails, or is not connected within
  C{connect_timeout} (2 s), and a connection that closes, whether the hub
  refused the client's first command, the link was lost, or the client
  dropped a hub that stopped answering.
* The wait before the next attempt is C{cycle_delay} (0.25 s) while a cycle
  through the list is under way; after a whole cycle of ends with no link
  accepted in between (as many ends as there are hubs), it is the backoff
  policy's delay for the number of whole cycles so far.  With one hub this
  is the plain backoff.  An accepted link starts the count again.

The user of the endpoint says when a connection it made is accepted
(L{FailoverEndpoint.linked}) and when it ends (L{FailoverEndpoint.lost}):
the endpoint does not wrap protocols.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectingCancelledError, TimeoutError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: Seconds a connection attempt may take before it counts as failed.
CONNECT_TIMEOUT = 2.0
#: Seconds between attempts while a cycle through the list is under way.
CYCLE_DELAY = 0.25
#: Delay after a whole cycle failed (Twisted's backoffPolicy): 0.5 s ×
#: 1.5^cycles, capped at 10 s, plus up to 1 s of random jitter.
BACKOFF = backoffPolicy(initialDelay=0.5, maxDelay=10.0, factor=1.5)


def time_limit(d: Deferred, seconds: float, clock, error: Exception) -> Deferred:
    """
    Cancel C{d} after C{seconds}; it then fails with C{error} (rather than
    with whatever its cancellation gives: endpoints give
    L{ConnectingCancelledError}, which C{addTimeout} passes on).

    :param clock: IReactorTime.
    :returns: C{d}.
    """
    def timed_out(result, _seconds):
        if isinstance(result, Failure):
            raise error
        return result

    return d.addTimeout(seconds, clock, onTimeoutCancel=timed_out)


def connect_within(endpoint: IStreamClientEndpoint, factory: IProtocolFactory,
                   timeout: float, clock) -> Deferred:
    """
    C{endpoint.connect(factory)}, cancelled after C{timeout} seconds.

    :param clock: IReactorTime.
    :returns: the Deferred of the connection attempt; it fails with
        L{twisted.internet.error.TimeoutError} when the time is up.
    """
    return time_limit(endpoint.connect(factory), timeout, clock,
                      TimeoutError(f"not connected within {timeout:g} s"))


def cancelled(failure: Failure) -> bool:
    """
    Whether a connection attempt failed because its caller cancelled it.
    """
    return failure.check(CancelledError, ConnectingCancelledError) is not None


@implementer(IStreamClientEndpoint)
class FailoverEndpoint:
    """
    Connects to the hubs of an ordered list, one at a time, by the rule of
    this module's docstring.  Give L{retry_delay} to L{ClientService} as its
    C{retryPolicy}.

    :ivar endpoints: the hubs' client endpoint strings, in order of
        preference.
    :ivar index: position in C{endpoints} of the hub of the current
        connection, or of the next attempt.
    :ivar failures: connection ends since a connection was last accepted.
    """

    def __init__(self, reactor, endpoints: Sequence[str], *,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 cycle_delay: float = CYCLE_DELAY,
                 backoff: Callable[[int], float] = BACKOFF):
        """
        :param reactor: what the endpoints need (IReactorTCP …) and
            IReactorTime.
        :param endpoints: one client endpoint string per hub, at least one.
        :param connect_timeout: seconds an attempt may take.
        :param cycle_delay: seconds between attempts within a cycle.
        :param backoff: seconds to wait after C{n} whole cycles failed.
        :raises ValueError: for an empty list or a string Twisted cannot parse.
        """
        if not endpoints:
            raise ValueError("no hub endpoint given")
        self.endpoints = tuple(endpoints)
        self._clients = tuple(clientFromString(reactor, e) for e in self.endpoints)
        self._clock = reactor
        self._connect_timeout = connect_timeout
        self._cycle_delay = cycle_delay
        self._backoff = backoff
        self.index = 0
        self.failures = 0

    def __repr__(self) -> str:
        # ClientService logs its retries with the endpoint's repr.
        return f"hub {self.current} ({self.index + 1} of {len(self.endpoints)})"

    @property
    def current(self) -> str:
        """
        The endpoint string of the hub at L{index}.
        """
        return self.endpoints[self.index]

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        """
        Connect to the hub at L{index}; a failed attempt moves to the next.

        :returns: a Deferred firing with the protocol once connected, or
            failing as the hub's endpoint does, or with
            L{twisted.internet.error.TimeoutError} after C{connect_timeout}.
        """
        endpoint = self.current

        def failed(failure):
            if not cancelled(failure):
                self.lost()
                log.warn("cannot connect to hub at {endpoint}: {error}; next: {next}",
                         endpoint=endpoint, error=failure.getErrorMessage(),
                         next=self.current)
            return failure

        return self.connect_to(self.index, protocolFactory).addErrback(failed)

    def connect_to(self, index: int, protocolFactory: IProtocolFactory) -> Deferred:
        """
        Connect to the hub at position C{index}, as L{connect} does but
        leaving L{index} and L{failures} as they are (failback probes).
        """
        return connect_within(self._clients[index], protocolFactory,
                              self._connect_timeout, self._clock)

    def linked(self) -> None:
        """
        The hub at L{index} accepted the connection: count from zero again.
        """
        self.failures = 0

    def lost(self) -> None:
        """
        The connection to the hub at L{index} ended (or never came up): the
        next attempt goes to the next hub.
        """
        self.failures += 1
        self.index = (self.index + 1) % len(self.endpoints)

    def move_to(self, index: int) -> None:
        """
        A connection to the hub at C{index}, made apart from L{connect}
        (a failback), was accepted: it is now the current one.
        """
        self.index = index
        self.failures = 0

    def retry_delay(self, _attempt: int = 0) -> float:
        """
        Seconds to wait before the next attempt (a L{ClientService}
        C{retryPolicy}; its own count of attempts is not used).
        """
        cycles, within = divmod(self.failures, len(self.endpoints))
        if within or not cycles:
            return self._cycle_delay
        return self._backoff(cycles)
