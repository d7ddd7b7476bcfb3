# -*- test-case-name: tests.test_uplink -*-
"""
Delivery of the agent's records to the linked hub: at least once, in
order, nothing forgotten before a hub's durable acknowledgement
(ARCHITECTURE.md decision 9; docs/reference.md, "Delivery").

Every report and alert revision is appended to the L{Spool} the moment it
is made (write-ahead), then sent at once if a hub is linked (live).  Any
answer to L{Report} or L{SendAlert}, C{accepted} True or False, means the
hub committed it to its history: the record leaves the spool.  Otherwise:

* the link is lost or times out before the answer: the record stays and
  goes again on the next link;
* C{HISTORY_ERROR} (or any error of the hub but C{WIRE_ERROR}): the record
  stays; the backlog pauses for the backoff delay (L{BACKOFF}: 0.75 s
  growing to 10 s, plus jitter) and then goes on, that record included —
  never a tight loop;
* C{WIRE_ERROR}: the hub cannot read the record; sending it again cannot
  help, so it is forgotten, logged and counted as failed.

When a hub accepts the agent, everything waiting in the spool that is not
already in flight — reports made while no hub was linked, calls lost with
the last link, records a previous run left — goes oldest first, at most
L{WINDOW} calls at a time, while live records go at once alongside.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

from attrs import evolve
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionClosed
from twisted.logger import Logger

from loopy.agent.spool import REPORT, Spool, kind_of
from loopy.errors import SpoolError, WireError
from loopy.failover import BACKOFF
from loopy.model import AgentReport
from loopy.wire import Report, SendAlert

log = Logger()

#: Backlog calls in flight at most on a link.
WINDOW = 8


def _what(record: Any) -> str:
    if isinstance(record, AgentReport):
        return f"report {record.seq}"
    return f"alert {record.seq} revision {record.revision}"


class Delivery:
    """
    Sends the spool's records over the current link until acknowledged
    (this module's docstring).

    :ivar spool: the L{Spool}.
    :ivar reports_sent: report calls made (replays included).
    :ivar reports_acked: report calls the hub answered.
    :ivar reports_unsent: reports made while no hub was linked (spooled,
        to go on the next link).
    :ivar reports_failed: report calls that failed (link lost, timeout,
        hub error).
    :ivar alerts_sent, alerts_acked, alerts_unsent, alerts_failed: the same
        for alert revisions.
    :ivar hub_errors: error answers that keep the record (C{HISTORY_ERROR},
        or an error of the hub's own).
    :ivar rejected: records a hub refused with C{WIRE_ERROR} (forgotten).
    """

    def __init__(self, spool: Spool, clock, *, window: int = WINDOW,
                 retry_delay: Callable[[int], float] = BACKOFF):
        """
        :param clock: IReactorTime, for the pause after a hub error.
        :param window: backlog calls in flight at most.
        :param retry_delay: seconds to pause after C{n} hub errors in a row.
        """
        self.spool = spool
        self._clock = clock
        self.window = window
        self._retry_delay = retry_delay
        self._send: Optional[Callable[..., Deferred]] = None
        self._generation = 0
        self._backlog: deque[int] = deque()
        self._in_flight: dict[int, int] = {}  # record id → link generation
        self._replaying = 0
        self._errors = 0
        self._pause = None
        for kind in ("reports", "alerts"):
            for outcome in ("sent", "acked", "unsent", "failed"):
                setattr(self, f"{kind}_{outcome}", 0)
        self.hub_errors = self.rejected = 0

    def _count(self, record: Any, outcome: str) -> None:
        name = ("reports_" if isinstance(record, AgentReport) else "alerts_") + outcome
        setattr(self, name, getattr(self, name) + 1)

    # The link.

    def linked(self, send: Callable[..., Deferred]) -> None:
        """
        A hub accepted the agent: send the backlog over C{send}.

        :param send: C{send(command, **arguments)} calls the command on the
            link and returns its Deferred.
        """
        self._generation += 1
        self._send = send
        self._replaying = 0
        self._errors = 0
        self._cancel_pause()
        self._rebuild()
        if self._backlog:
            log.info("sending {count} spooled records ({reports_unsent} reports made "
                     "while no hub was linked since start)", count=len(self._backlog),
                     reports_unsent=self.reports_unsent)
        self._pump()

    def unlinked(self) -> None:
        """
        The link is gone: what was in flight on it stays in the spool for
        the next link.
        """
        self._generation += 1
        self._send = None
        self._backlog.clear()
        self._in_flight.clear()
        self._replaying = 0
        self._cancel_pause()

    def stop(self) -> None:
        """
        Cancel the pause timer (the agent is stopping).
        """
        self._cancel_pause()

    def _rebuild(self) -> None:
        self._backlog = deque(i for i in self.spool.pending_ids() if i not in self._in_flight)

    def _cancel_pause(self) -> None:
        pause, self._pause = self._pause, None
        if pause is not None and pause.active():
            pause.cancel()

    # Records.

    def submit(self, record: Any) -> Deferred:
        """
        Keep a new report or alert revision in the spool and send it at once
        if a hub is linked.  A report is stamped with the spool's counters
        (C{report.delivery}) first.

        :returns: a Deferred that fires with None (never fails) once the hub
            answered or the call failed; at once if it was not sent now.
        """
        if isinstance(record, AgentReport):
            record = evolve(record, delivery=self.spool.stats())
        if self._send is None:
            self._count(record, "unsent")
        try:
            entry = self.spool.append(record)
        except WireError as e:
            self._count(record, "failed")
            log.error("{what} cannot be encoded and is not sent: {error}",
                      what=_what(record), error=e)
            return succeed(None)
        except SpoolError as e:
            log.error("{what} is not kept: {error}", what=_what(record), error=e)
            if self._send is None:
                self.spool.lost(record)
                return succeed(None)
            return self._call(None, record, backlog=False)
        if self._send is None:
            return succeed(None)
        return self._call(entry.record_id if entry is not None else None, record,
                          backlog=False)

    def _pump(self) -> None:
        """
        Send backlog records, oldest first, while the window has room and no
        pause is on.
        """
        while (self._send is not None and self._pause is None and self._backlog
               and self._replaying < self.window):
            record_id = self._backlog.popleft()
            if record_id in self._in_flight or record_id not in self.spool:
                continue
            record = self.spool.read(record_id)
            if record is not None:
                self._call(record_id, record, backlog=True)

    def _call(self, record_id: Optional[int], record: Any, backlog: bool) -> Deferred:
        kind = kind_of(record)
        command, argument = (Report, "report") if kind == REPORT else (SendAlert, "alert")
        generation = self._generation
        try:
            d = self._send(command, **{argument: record})
        except WireError as e:
            # The box is built at once: a record too large for the wire.
            self._count(record, "failed")
            log.error("{what} cannot be sent: {error}", what=_what(record), error=e)
            if record_id is not None:
                self.spool.forget(record_id)
            return succeed(None)
        self._count(record, "sent")
        if record_id is not None:
            self._in_flight[record_id] = generation
            self.spool.sent(record_id)
        if backlog:
            self._replaying += 1

        def done() -> bool:
            # Whether this call is still this delivery's own (not one from
            # a link since replaced).
            mine = generation == self._generation
            if record_id is not None and self._in_flight.get(record_id) == generation:
                del self._in_flight[record_id]
            if mine and backlog:
                self._replaying -= 1
            return mine

        def answered(_answer):
            done()
            self._count(record, "acked")
            self._errors = 0
            if record_id is not None:
                self.spool.ack(record_id)
            self._pump()

        def failed(failure):
            mine = done()
            self._count(record, "failed")
            if failure.check(WireError):
                self.rejected += 1
                log.error("the hub cannot read {what} ({error}); it is dropped",
                          what=_what(record), error=failure.getErrorMessage())
                if record_id is not None:
                    self.spool.forget(record_id)
                self._pump()
                return
            log.warn("{what} not written by the hub: {error}", what=_what(record),
                     error=failure.getErrorMessage())
            if record_id is None or self._send is None:
                return
            if not mine:
                # Sent on a link replaced since (a failback): it goes on
                # this one.
                self._backlog.appendleft(record_id)
                self._pump()
            elif not failure.check(ConnectionClosed):
                self._hold(failure)

        return d.addCallbacks(answered, failed)

    def _hold(self, failure) -> None:
        """
        The hub could not write a record: pause the backlog for the backoff
        delay, then send what waits again, oldest first.
        """
        self.hub_errors += 1
        if self._pause is not None:
            return
        self._errors += 1
        delay = self._retry_delay(self._errors)
        log.warn("the hub could not write a record ({error}); sending again in "
                 "{delay:.1f} s", error=failure.getErrorMessage(), delay=delay)
        self._pause = self._clock.callLater(delay, self._resume)

    def _resume(self) -> None:
        self._pause = None
        self._rebuild()
        self._pump()
