"""
Tests for L{loopy.failover}: an ordered list of hubs as one client
endpoint, against a memory reactor.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeout
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionRefusedError,
    TimeoutError,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from loopy.failover import FailoverEndpoint, time_limit

HUBS = ("tcp:host=10.0.0.1:port=7420", "tcp:host=10.0.0.2:port=7420",
        "tcp:host=10.0.0.3:port=7420")


def backoff(cycles: int) -> float:
    """
    A backoff policy without jitter, so delays compare exactly.
    """
    return 100.0 * cycles


class FailoverEndpointTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.endpoint = FailoverEndpoint(self.reactor, HUBS, backoff=backoff)
        self.factory = Factory.forProtocol(Protocol)

    def attempt(self) -> Deferred:
        """
        Connect, and return the attempt's Deferred.
        """
        return self.endpoint.connect(self.factory)

    def hosts(self) -> list[str]:
        return [host for host, *_ in self.reactor.tcpClients]

    def refuse(self) -> Failure:
        """
        Fail the newest attempt with a refused connection.
        """
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(self.reactor.connectors[-1],
                                       Failure(ConnectionRefusedError()))

    def complete(self) -> None:
        """
        Complete the newest attempt.
        """
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        factory.buildProtocol(None).makeConnection(object())

    def test_order_and_wrap(self):
        """
        The first attempt goes to the first hub; every end moves to the next,
        wrapping around.
        """
        for _ in range(4):
            self.attempt()
            self.endpoint.lost()
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"])
        self.assertEqual(self.endpoint.current, HUBS[1])

    def test_failed_attempt_moves_on(self):
        """
        An attempt that fails moves to the next hub by itself, and logs
        where it goes next.
        """
        d = self.attempt()
        self.refuse()
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual((self.endpoint.index, self.endpoint.failures), (1, 1))
        self.assertEqual(repr(self.endpoint), "hub tcp:host=10.0.0.2:port=7420 (2 of 3)")
        self.attempt()
        self.assertEqual(self.hosts(), ["10.0.0.1", "10.0.0.2"])

    def test_connect_timeout(self):
        """
        An attempt not connected within 2 s fails with a TimeoutError and
        moves on.
        """
        d = self.attempt()
        self.reactor.advance(1.99)
        self.assertNoResult(d)
        self.reactor.advance(0.01)
        failure = self.failureResultOf(d, TimeoutError)
        self.assertIn("not connected within 2 s", failure.getErrorMessage())
        self.assertEqual(self.endpoint.current, HUBS[1])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connected_in_time(self):
        d = self.attempt()
        self.complete()
        self.assertIsInstance(self.successResultOf(d), Protocol)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual((self.endpoint.index, self.endpoint.failures), (0, 0))

    def test_cancelled_attempt_stays(self):
        """
        An attempt its caller cancels (the service stopping) is no failure
        of the hub.
        """
        d = self.attempt()
        d.cancel()
        self.failureResultOf(d, ConnectingCancelledError)
        self.assertEqual((self.endpoint.index, self.endpoint.failures), (0, 0))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_delays(self):
        """
        0.25 s between attempts while a cycle is under way; after a whole
        cycle of ends, the backoff for the number of whole cycles.
        """
        delays = []
        for _ in range(7):
            self.endpoint.lost()
            delays.append(self.endpoint.retry_delay(1))
        self.assertEqual(delays, [0.25, 0.25, 100.0, 0.25, 0.25, 200.0, 0.25])

    def test_linked_starts_again(self):
        """
        A connection accepted resets the count: the next end is the first
        of a new cycle.
        """
        for _ in range(3):
            self.endpoint.lost()
        self.endpoint.linked()
        self.endpoint.lost()
        self.assertEqual(self.endpoint.retry_delay(9), 0.25)

    def test_one_hub_is_plain_backoff(self):
        endpoint = FailoverEndpoint(self.reactor, HUBS[:1], backoff=backoff)
        delays = []
        for _ in range(3):
            endpoint.lost()
            delays.append(endpoint.retry_delay(1))
        self.assertEqual(delays, [100.0, 200.0, 300.0])
        self.assertEqual(endpoint.current, HUBS[0])

    def test_move_to(self):
        """
        A connection made apart (a failback) becomes the current one; its
        end moves to the hub after it.
        """
        self.endpoint.lost()
        self.endpoint.lost()
        self.endpoint.move_to(0)
        self.assertEqual((self.endpoint.current, self.endpoint.failures), (HUBS[0], 0))
        self.endpoint.lost()
        self.assertEqual(self.endpoint.current, HUBS[1])

    def test_connect_to_keeps_position(self):
        d = self.endpoint.connect_to(2, self.factory)
        self.refuse()
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(self.hosts(), ["10.0.0.3"])
        self.assertEqual((self.endpoint.index, self.endpoint.failures), (0, 0))

    def test_empty(self):
        self.assertRaises(ValueError, FailoverEndpoint, self.reactor, ())


class TimeLimitTests(SynchronousTestCase):
    def test_error(self):
        """
        When time is up, the Deferred fails with the given error, whatever
        its canceller gave.
        """
        clock = MemoryReactorClock()
        d = Deferred(lambda d: d.errback(RuntimeError("cancelled")))
        time_limit(d, 5, clock, DeferredTimeout("no answer within 5 s"))
        clock.advance(5)
        self.assertEqual(self.failureResultOf(d, DeferredTimeout).getErrorMessage(),
                         "no answer within 5 s")

    def test_in_time(self):
        clock = MemoryReactorClock()
        d = time_limit(Deferred(), 5, clock, DeferredTimeout())
        d.callback("answer")
        self.assertEqual(self.successResultOf(d), "answer")
        self.assertEqual(clock.getDelayedCalls(), [])
