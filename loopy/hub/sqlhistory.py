# -*- test-case-name: tests.test_history_store -*-
"""
The embedded history store: SQLite in the hub's data directory
(``DIR/history.sqlite``, WAL mode, C{synchronous=FULL}), written off the
reactor thread through L{twisted.enterprise.adbapi} with one connection.
The schema is in L{loopy.hub.sqlschema}, the reads in L{loopy.hub.sqlquery}.

Writes are group-committed: at most one write transaction is in flight;
everything queued while it runs goes into the next one, and each waiter's
Deferred fires when the transaction holding its write has committed (on
disk: C{synchronous=FULL}).  The queue is bounded (C{max_pending} writes):
past it a write fails at once with L{HistoryError} and is counted
C{refused}; the writer (an agent) keeps the report and sends it again.  A
commit that fails (disk full, I/O error) fails every waiter of that
transaction with L{HistoryError}, is counted in C{errors}, and the store
goes on with the next.

The store takes a C{runner}: anything with adbapi's
C{runInteraction(fn, *args) -> Deferred} (and C{close()}).
L{open_history} gives it an adbapi C{ConnectionPool}; L{SyncRunner} runs
each interaction at once on the calling thread, for tests and tools.
"""

from __future__ import annotations

import collections
import math
import os
import sqlite3
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from loopy.errors import ConfigError, HistoryError, WireError
from loopy.history import HistoryQuery, ReportRow, SyncRanges
from loopy.hub.history import DEFAULT_TIERS, IHistoryStore, Tier, check_row, extract
from loopy.hub.sqlquery import MAX_ANSWER_POINTS, read_history, read_missing, read_ranges
from loopy.hub.sqlschema import ALERT, FLUSH, REPORT, ROWS, Layout, configure
from loopy.model import Alert

log = Logger()

#: The history's file in the data directory.
FILE_NAME = "history.sqlite"
#: Writes waiting for a commit, at most (reports, alerts, row batches).
MAX_PENDING = 5000
#: Rows per agent and bucket kept in each detail table (top talkers …).
DETAIL_KEEP = 10
#: Fold written reports into the detail tables when this many wait …
FOLD_ROWS = 5000
#: … or the oldest has waited this long, seconds (or a query asks).
FOLD_SECONDS = 5.0
#: Alerts kept at most (the oldest go first).
MAX_ALERTS = 200_000
#: Rows one L{SqliteHistory.expire} call deletes, about.
EXPIRE_BUDGET = 50_000
#: Seq runs one L{SqliteHistory.ranges} answer holds at most.
MAX_SYNC_RANGES = 50_000
#: Largest C{top} a query may ask.
MAX_TOP = 200
#: Commit times kept for C{commit_p99} (those of the last minute).
COMMIT_SAMPLES = 4096


class SyncRunner:
    """
    adbapi's C{runInteraction} over one sqlite3 connection, run at once on
    the calling thread: commit if the function returns, roll back if it
    raises.  For tests and tools; a hub uses L{open_history}'s pool.
    """

    def __init__(self, path: str):
        self.connection = sqlite3.connect(path)
        configure(self.connection)

    def runInteraction(self, fn: Callable, *args: Any, **kwargs: Any) -> Deferred:
        cursor = self.connection.cursor()
        try:
            result = fn(cursor, *args, **kwargs)
            self.connection.commit()
        except BaseException:
            self.connection.rollback()
            return fail()
        finally:
            cursor.close()
        return succeed(result)

    def close(self) -> None:
        self.connection.close()


@implementer(IHistoryStore)
class SqliteHistory:
    """
    The history in one SQLite file (see the module docstring).

    :param runner: C{runInteraction} over the file (L{SyncRunner} or an
        adbapi C{ConnectionPool}).
    :param layout: the tables (made by L{open_history}).
    :param reactor: the clock for the fold timer and the commit-time window.
    :param name: the hub's name, for the answers' C{hub}.
    :param paths: the database's files, whose sizes are C{stats()["bytes"]}.
    :param unfolded: C{(report id, row)} written but not yet folded.
    :param timer: seconds for measuring commit times (C{time.perf_counter}).
    """

    def __init__(self, runner: Any, layout: Layout, reactor: Any, *, name: str = "",
                 paths: Sequence[str] = (), max_pending: int = MAX_PENDING,
                 fold_rows: int = FOLD_ROWS, fold_seconds: float = FOLD_SECONDS,
                 max_alerts: int = MAX_ALERTS, expire_budget: int = EXPIRE_BUDGET,
                 unfolded: Sequence[tuple[int, ReportRow]] = (),
                 timer: Callable[[], float] = time.perf_counter):
        self.name = name
        self.max_pending = max_pending
        self.fold_rows = fold_rows
        self.fold_seconds = fold_seconds
        self.max_alerts = max_alerts
        self.expire_budget = expire_budget
        self._runner = runner
        self._layout = layout
        self._reactor = reactor
        self._paths = tuple(paths)
        self._timer = timer
        self._queue: list[tuple[str, Any, Deferred]] = []
        self._busy = False
        self._closed: Optional[Deferred] = None
        self._to_fold: list[tuple[int, ReportRow]] = list(unfolded)
        self._fold_since = reactor.seconds()
        self._fold_wanted = bool(unfolded)
        self._commit_times: collections.deque = collections.deque(maxlen=COMMIT_SAMPLES)
        self._counts = dict.fromkeys(
            ("reports", "duplicates", "alerts", "refused", "errors", "commits", "folds",
             "rejected", "expired", "pruned", "ranges_truncated"), 0)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._layout.tiers

    # -- writes -----------------------------------------------------------

    def add_report(self, value: Mapping[str, Any]) -> Deferred:
        try:
            row = extract(value)
        except WireError:
            return fail()
        return self._enqueue(REPORT, row)

    def add_rows(self, rows: Sequence[ReportRow]) -> Deferred:
        good = []
        for row in rows:
            try:
                good.append(check_row(row))
            except WireError as e:
                self._counts["rejected"] += 1
                log.warn("history: dropping a bad row from a peer: {error}", error=str(e))
        return self._enqueue(ROWS, tuple(good))

    def add_alert(self, alert: Alert) -> Deferred:
        if not isinstance(alert, Alert):
            return fail(WireError(f"not an alert: {type(alert).__name__}"))
        return self._enqueue(ALERT, alert)

    def _enqueue(self, kind: str, payload: Any, bounded: bool = True) -> Deferred:
        if self._closed is not None:
            return fail(HistoryError("the history is closed"))
        if bounded and len(self._queue) >= self.max_pending:
            self._counts["refused"] += 1
            return fail(HistoryError(
                f"the history's write queue is full ({self.max_pending} writes waiting);"
                " send again later"))
        d = Deferred()
        self._queue.append((kind, payload, d))
        self._kick()
        return d

    def _flush(self) -> Deferred:
        """
        A Deferred that fires when everything queued so far is committed
        and every written report is folded into the detail tables.
        """
        self._fold_wanted = True
        return self._enqueue(FLUSH, None, bounded=False)

    def _kick(self) -> None:
        if self._busy:
            return
        fold = bool(self._fold_wanted or len(self._to_fold) >= self.fold_rows or (
            self._to_fold and self._reactor.seconds() - self._fold_since >= self.fold_seconds))
        if not self._queue and not (fold and self._to_fold):
            return
        items, self._queue = self._queue, []
        folding = list(self._to_fold) if fold else None
        self._fold_wanted = False
        self._busy = True
        started = self._timer()
        d = self._runner.runInteraction(
            self._layout.write, [(kind, payload) for kind, payload, _d in items], folding)
        d.addCallbacks(self._committed, self._failed, callbackArgs=(items, folding, started),
                       errbackArgs=(items, folding))
        d.addErrback(lambda f: log.failure("history: after a commit", f))

    def _committed(self, result: tuple[list, list], items: list, folding: Optional[list],
                   started: float) -> None:
        results, new = result
        now = self._reactor.seconds()
        self._commit_times.append((now, self._timer() - started))
        self._counts["commits"] += 1
        if folding is not None:
            del self._to_fold[:len(folding)]
            self._counts["folds"] += 1
            self._fold_since = now
        elif new:
            if not self._to_fold:
                self._fold_since = now
            self._to_fold.extend(new)
        for (kind, payload, d), outcome in zip(items, results):
            if kind == REPORT:
                self._counts["reports" if outcome else "duplicates"] += 1
            elif kind == ROWS:
                self._counts["reports"] += outcome
                self._counts["duplicates"] += len(payload) - outcome
            elif kind == ALERT:
                self._counts["alerts"] += outcome
        for (_kind, _payload, d), outcome in zip(items, results):
            d.callback(outcome)
        self._busy = False
        self._kick()

    def _failed(self, failure: Any, items: list, folding: Optional[list]) -> None:
        self._counts["errors"] += 1
        self._layout.agent_ids.clear()  # ids the rolled-back transaction made
        log.failure("history: a commit failed", failure)
        if folding is not None:
            self._fold_since = self._reactor.seconds()  # try folding again later
        message = (f"the history could not commit ({failure.getErrorMessage()});"
                   " send again later")
        for _kind, _payload, d in items:
            d.errback(HistoryError(message))
        self._busy = False
        self._kick()

    # -- reads ------------------------------------------------------------

    def query(self, q: HistoryQuery, now: float) -> Deferred:
        until = now if q.until is None else q.until
        if not all(_finite(v) for v in (q.since, until, now)):
            return fail(HistoryError("a history range needs finite times"))
        if q.since >= until:
            return fail(HistoryError(
                f"a history range must start before it ends (since {q.since} >= until {until})"))
        if not (isinstance(q.max_points, int) and isinstance(q.top, int)
                and q.max_points >= 1 and q.top >= 1):
            return fail(HistoryError("max_points and top must be at least 1"))
        query = HistoryQuery(since=q.since, until=until, agent_id=q.agent_id,
                             max_points=min(q.max_points, MAX_ANSWER_POINTS),
                             top=min(q.top, MAX_TOP))
        d = self._flush()
        d.addErrback(lambda _f: None)  # answer from what is committed
        d.addCallback(lambda _: self._runner.runInteraction(
            read_history, self._layout, query, float(q.since), float(until), now, self.name))
        return d.addErrback(self._read_failed)

    def ranges(self, since: float) -> Deferred:
        if not _finite(since):
            return fail(HistoryError("ranges need a finite since"))
        d = self._runner.runInteraction(read_ranges, since, MAX_SYNC_RANGES)

        def counted(result: tuple[SyncRanges, int]) -> SyncRanges:
            self._counts["ranges_truncated"] += result[1]
            return result[0]

        return d.addCallbacks(counted, self._read_failed)

    def missing(self, have: SyncRanges, since: float, budget: int) -> Deferred:
        if not _finite(since) or not isinstance(have, SyncRanges):
            return fail(HistoryError("missing needs ranges and a finite since"))
        if not isinstance(budget, int) or budget < 1:
            return fail(HistoryError(f"a catch-up budget must be at least 1, not {budget!r}"))
        d = self._runner.runInteraction(read_missing, have, since, budget)
        return d.addErrback(self._read_failed)

    def _read_failed(self, failure: Any) -> Any:
        if failure.check(HistoryError):
            return failure
        log.failure("history: a read failed", failure)
        raise HistoryError(f"the history could not be read ({failure.getErrorMessage()})")

    # -- maintenance ------------------------------------------------------

    def expire(self, now: float) -> Deferred:
        if not _finite(now):
            return fail(HistoryError("expire needs a finite time"))

        def maintain(txn: Any) -> tuple[int, int]:
            expired = self._layout.expire(txn, now, self.expire_budget, self.max_alerts)
            return expired, self._layout.prune(txn, now)

        def counted(result: tuple[int, int]) -> int:
            self._counts["expired"] += result[0]
            self._counts["pruned"] += result[1]
            return sum(result)

        return self._runner.runInteraction(maintain).addCallbacks(counted, self._read_failed)

    def stats(self) -> dict[str, Any]:
        now = self._reactor.seconds()
        while self._commit_times and self._commit_times[0][0] < now - 60:
            self._commit_times.popleft()
        times = sorted(duration for _at, duration in self._commit_times)
        p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)] if times else 0.0
        size = sum(os.path.getsize(p) for p in self._paths if os.path.exists(p))
        return {**self._counts, "pending": len(self._queue), "commit_p99": p99,
                "bytes": size, "unfolded": len(self._to_fold)}

    def close(self) -> Deferred:
        if self._closed is not None:
            return self._closed
        d = self._flush()
        self._closed = d
        d.addErrback(lambda f: log.failure("history: the last commit failed", f))
        d.addCallback(lambda _: self._runner.close())
        return d


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _prepare(directory: str, tiers: Sequence[Tier], keep: int
             ) -> tuple[str, Layout, list[tuple[int, ReportRow]]]:
    """
    Make the directory and the schema; read what is left to fold.

    :raises ConfigError: if the directory cannot be made or written, or the
        file is not a Loopy history this version can use.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot make the history directory {directory}: {e.strerror}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"the history directory {directory} is not writable by this user")
    path = os.path.join(directory, FILE_NAME)
    layout = Layout(tiers, keep)
    try:
        connection = sqlite3.connect(path)
        try:
            configure(connection)
            layout.create(connection)
            unfolded = layout.unfolded(connection.cursor())
        finally:
            connection.close()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except sqlite3.Error as e:
        raise ConfigError(f"{path} is not a usable Loopy history: {e}") from None
    return path, layout, unfolded


def open_history(directory: str, name: str, tiers: Sequence[Tier] = DEFAULT_TIERS,
                 reactor: Any = None, *, keep: int = DETAIL_KEEP,
                 **options: Any) -> SqliteHistory:
    """
    Open (or make) the history in C{directory}, written by one adbapi
    thread.  Blocks while it checks the schema (at start, before the
    reactor runs).

    :param options: L{SqliteHistory}'s (C{max_pending} …).
    :raises ConfigError: see L{_prepare}.
    """
    if reactor is None:
        from twisted.internet import reactor
    path, layout, unfolded = _prepare(directory, tiers, keep)
    pool = adbapi.ConnectionPool("sqlite3", path, check_same_thread=False, cp_min=1,
                                 cp_max=1, cp_openfun=configure, cp_reactor=reactor)
    return SqliteHistory(pool, layout, reactor, name=name, paths=(path, path + "-wal"),
                         unfolded=unfolded, **options)


def open_sync(directory: str, name: str, tiers: Sequence[Tier] = DEFAULT_TIERS,
              reactor: Any = None, *, keep: int = DETAIL_KEEP,
              **options: Any) -> SqliteHistory:
    """
    As L{open_history}, with a L{SyncRunner}: every interaction runs at
    once on the calling thread (tests, tools).
    """
    path, layout, unfolded = _prepare(directory, tiers, keep)
    return SqliteHistory(SyncRunner(path), layout, reactor, name=name,
                         paths=(path, path + "-wal"), unfolded=unfolded, **options)

