# -*- test-case-name: tests.test_history_sync -*-
"""
History catch-up between peer hubs.

Gossip (L{loopy.hub.mesh}) carries each agent's newest report, and every
hub writes the reports it takes to its history; a report superseded before
a hub pulled it, or written while that hub was down or cut off, never
reaches it that way.  So each hub also asks its peers for the history rows
it lacks (L{loopy.wire.HistorySync}): it sends what it holds at the finest
tier as seq ranges per agent run, and the peer answers with the rows (and
alert revisions) outside them, a budget's worth at a time.

 - When a peer link comes up (a hub started, came back, or a partition
   healed) the hub catches up over the finest tier's whole retention.
 - Every C{interval} seconds it catches up over the last C{window} seconds
   from each linked peer in turn, which fills what gossip skipped.

One catch-up runs at a time; a link that comes up meanwhile is queued
(a set of peer names, so bounded by the mesh's hubs).  Rows that come
back are written through the same dedupe as every other write, so a row
two peers both send is stored once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from loopy.hub.mesh import PULL_BYTES
from loopy.wire import HistorySync

if TYPE_CHECKING:
    from loopy.hub.server import Hub

log = Logger()

#: Seconds between catch-ups over the recent window.
SYNC_INTERVAL = 5.0
#: The recent window, seconds.
SYNC_WINDOW = 120.0
#: Seconds a peer may take to answer one HistorySync (it reads its store).
SYNC_TIMEOUT = 30.0
#: Most answers taken in one catch-up from one peer (each at most about
#: PULL_BYTES); the rest waits for the next catch-up.
MAX_PAGES = 200


class HistorySyncer(TimerService):
    """
    Catches this hub's history up from its peers: a catch-up every
    C{interval} seconds (L{tick}), and one over the finest tier's retention
    for each peer that links.

    :ivar rows: rows taken from peers that were new here, cumulative.
    :ivar alerts: alert revisions taken that were new here, cumulative.
    :ivar syncs: catch-ups finished.
    :ivar failures: catch-ups that failed (the peer or the store).
    """

    def __init__(self, hub: "Hub", reactor, interval: float = SYNC_INTERVAL,
                 window: float = SYNC_WINDOW):
        TimerService.__init__(self, interval, self.tick)
        self.clock = reactor
        self.hub = hub
        self.reactor = reactor
        self.window = window
        self.rows = self.alerts = self.syncs = self.failures = 0
        #: Peers owed a catch-up over the whole retention, to where it
        #: starts (None: the retention's start; a time: where one cut
        #: short at MAX_PAGES goes on from).
        self._full: dict[str, Optional[float]] = {}
        self._turn = 0
        self._running: Optional[Deferred] = None

    def peer_linked(self, name: str) -> None:
        """
        A first link to peer C{name} came up: catch up over the whole
        retention of the finest tier.
        """
        self._full[name] = None
        # Not at once: the peer's hello may still wait for its answer, and
        # the peer takes commands on the link only after that answer.
        self.reactor.callLater(0, self.tick)

    def tick(self) -> None:
        """
        Start the next catch-up if none runs: a queued full one first, else
        the recent window from the next linked peer.
        """
        history = self.hub.history
        linked = self.hub.peers.linked
        if self._running is not None or history is None or not linked or not self.running:
            return
        for gone in set(self._full) - set(linked):
            del self._full[gone]
        now = self.reactor.seconds()
        oldest = now - history.tiers[0].retention
        if self._full:
            name = sorted(self._full)[0]
            since = max(oldest, self._full.pop(name) or oldest)
        else:
            self._turn += 1
            name = linked[self._turn % len(linked)]
            since = now - self.window
        self._running = d = Deferred.fromCoroutine(self._catch_up(name, since))

        def done(_):
            self._running = None

        d.addBoth(done)

    async def _catch_up(self, name: str, since: float) -> None:
        history = self.hub.history
        try:
            have = await history.ranges(since)
            for _ in range(MAX_PAGES):
                protos = self.hub.peers.links.get(name)
                if not protos:
                    return
                d = protos[0].callRemote(HistorySync, since=since, have=have)
                d.addTimeout(SYNC_TIMEOUT, self.reactor)
                answer = await d
                rows = answer["rows"]
                if rows.rows:
                    self.rows += await history.add_rows(rows.rows)
                for alert in rows.alerts:
                    if await history.add_alert(alert):
                        self.alerts += 1
                if not answer["more"]:
                    break
                if rows.rows:
                    # Oldest first: what is left is at or after the last row.
                    since = max(since, rows.rows[-1].ts)
            else:
                # Cut short: the rest at the next tick, from where it stopped.
                self._full[name] = since
                log.info("history catch-up from peer hub {name} goes on at the next "
                         "tick, from {since}", name=name, since=since)
            self.syncs += 1
        except Exception as e:
            self.failures += 1
            log.warn("history catch-up from peer hub {name} failed: {error}", name=name,
                     error=str(e) or e.__class__.__name__)


def answer(hub: "Hub", since: float, have) -> Deferred:
    """
    The answer to a peer's L{HistorySync}: what this hub's history has
    since C{since} that C{have} lacks, at most about L{PULL_BYTES}.
    """
    d = hub.history.missing(have, since, PULL_BYTES)
    return d.addCallback(lambda result: {"rows": result[0], "more": result[1]})


#: Seconds between retention ticks.
EXPIRE_INTERVAL = 60.0
#: Most retention passes in one tick.
EXPIRE_PASSES = 10


class HistoryKeeper(TimerService):
    """
    Runs the history's retention (L{IHistoryStore.expire
    <loopy.hub.history.IHistoryStore.expire>}) every C{interval} seconds,
    again at once while a pass deleted rows (a pass has a bound on rows; at
    most L{EXPIRE_PASSES} a time), and closes the store when the hub stops.

    :ivar expired: rows deleted by retention, cumulative.
    """

    def __init__(self, history, reactor, interval: float = EXPIRE_INTERVAL):
        TimerService.__init__(self, interval, self.expire)
        self.clock = reactor
        self.history = history
        self.reactor = reactor
        self.expired = 0

    def stopService(self):
        d = TimerService.stopService(self)
        return d.addCallback(lambda _: self.history.close())

    def expire(self) -> Deferred:
        """
        The retention passes of one tick (the timer waits for them); a
        failure is logged, and the next tick tries again.
        """
        return Deferred.fromCoroutine(self._expire())

    async def _expire(self) -> None:
        deleted = 0
        try:
            for _ in range(EXPIRE_PASSES):
                rows = await self.history.expire(self.reactor.seconds())
                deleted += rows
                if not rows:
                    break
        except Exception as e:
            log.warn("history retention failed: {error}", error=str(e) or repr(e))
        self.expired += deleted
        if deleted:
            log.info("history retention deleted {rows} rows", rows=deleted)
