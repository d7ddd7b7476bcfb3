"""
The phases of ``bench/history``, each on the real reactor with one
L{loopy.hub.sqlhistory.SqliteHistory} (an adbapi writer thread), as a hub
runs it:

* L{throughput}: simulated agents' reports, one a simulated second each,
  offered as fast as the store commits them (a window of writes waiting);
* L{steady}: agents at one report a second of wall time, with C{expire}
  every 10 s, measuring the process's CPU time (reactor and writer
  thread, extract and every SQLite call included) over wall time;
* L{sizes}: the bytes per row of each table, from SQLite's C{dbstat}
  (sqlite.org/dbstat.html), after pruning every closed bucket;
* L{logger}: the peer, the same values appended to a file as
  zlib-compressed JSON lines (fsync once per 500 lines).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from typing import Any

from twisted.internet import defer, task

from historybench.values import Values
from loopy.hub.sqlschema import PRUNE_GRACE

EPOCH = 1_700_000_000_000_000


def cpu() -> float:
    """
    User plus system CPU seconds of this process, all threads (times(2)).
    """
    t = os.times()
    return t.user + t.system


@defer.inlineCallbacks
def throughput(store: Any, agents: int, seconds: float, start: int,
               window: int = 2000):
    """
    Offer reports as fast as they commit for C{seconds} of wall time.

    :returns: C{(reports, wall seconds, cpu seconds, last simulated second)}.
    """
    values = Values(agents)
    done = defer.Deferred()
    state = {"next": 0, "out": 0, "ok": 0, "failed": 0}
    deadline = time.monotonic() + seconds

    def offer() -> None:
        while state["out"] < window and time.monotonic() < deadline:
            n = state["next"]
            state["next"] += 1
            state["out"] += 1
            second, agent = start + n // agents, n % agents
            d = store.add_report(values.value(agent, EPOCH, second - start + 1, second))
            d.addCallbacks(landed, failed)
        if state["out"] == 0 and not done.called:
            done.callback(None)

    def landed(_new: bool) -> None:
        state["out"] -= 1
        state["ok"] += 1
        offer()

    def failed(_f: Any) -> None:
        state["out"] -= 1
        state["failed"] += 1
        offer()

    wall, used = time.monotonic(), cpu()
    offer()
    yield done
    return (state["ok"], time.monotonic() - wall, cpu() - used,
            start + state["next"] // agents, state["failed"])


@defer.inlineCallbacks
def steady(store: Any, agents: int, seconds: float, warmup: float, start: int):
    """
    C{agents} agents at one report a second (a tenth of them every 0.1 s)
    for C{warmup} then C{seconds} seconds; C{expire} every 10 s.

    :returns: a dict: C{reports}, C{wall}, C{cpu} (in the measured part),
        C{pending_max}, C{failed}, C{expire_seconds} (wall time of expires).
    """
    values = Values(agents)
    state = {"tick": 0, "failed": 0, "pending_max": 0, "ok": 0}
    ticks = int((warmup + seconds) * 10)
    marks: dict[str, tuple[float, float, int]] = {}

    def failed(_f: Any) -> None:
        state["failed"] += 1

    def counted(_new: bool) -> None:
        state["ok"] += 1

    def tick() -> None:
        t = state["tick"]
        state["tick"] += 1
        second, part = start + t // 10, t % 10
        for agent in range(part, agents, 10):
            store.add_report(values.value(agent, EPOCH, second - start + 1, second)
                             ).addCallbacks(counted, failed)
        state["pending_max"] = max(state["pending_max"], store.stats()["pending"])
        if t == int(warmup * 10):
            marks["start"] = (time.monotonic(), cpu(), state["ok"])
        if t % 100 == 99:
            store.expire(float(second))
        if state["tick"] >= ticks:
            loop.stop()

    loop = task.LoopingCall(tick)
    yield loop.start(0.1)
    yield store._flush()  # the last writes and their fold
    wall, used, ok = marks["start"]
    return {"reports": state["ok"] - ok, "wall": time.monotonic() - wall,
            "cpu": cpu() - used, "pending_max": state["pending_max"],
            "failed": state["failed"]}


def sizes(path: str) -> dict[str, tuple[int, int]]:
    """
    Per table: C{(rows, bytes)}, the bytes of its b-tree and its indexes'
    (SQLite's C{dbstat} page sizes).
    """
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owner = dict(connection.execute("SELECT name, tbl_name FROM sqlite_master"
                                        " WHERE type IN ('table', 'index')").fetchall())
        out: dict[str, list[int]] = {}
        for name, size in connection.execute("SELECT name, sum(pgsize) FROM dbstat"
                                             " GROUP BY name"):
            table = owner.get(name, name)
            out.setdefault(table, [0, 0])[1] += size
        for table in out:
            if table in owner.values() and not table.startswith("sqlite_"):
                out[table][0] = connection.execute(
                    f"SELECT count(*) FROM {table}").fetchone()[0]
        return {t: (rows, size) for t, (rows, size) in out.items()}
    finally:
        connection.close()


def prune_all(store: Any, last_second: int):
    """
    Expire and prune as a clock well after the run would: every bucket
    closed, nothing past its retention.
    """
    return store.expire(float(last_second) + PRUNE_GRACE + 3600 + 60)


def logger(path: str, agents: int, seconds: int, start: int) -> dict[str, float]:
    """
    The peer: C{agents} × C{seconds} values as zlib-compressed JSON lines
    (level 6) appended to C{path}, fsync every C{agents} lines.

    :returns: C{reports}, C{cpu} seconds, C{bytes} of the file.
    """
    values = Values(agents)
    used = cpu()
    with open(path, "ab") as f:
        for second in range(start, start + seconds):
            for agent in range(agents):
                value = values.value(agent, EPOCH, second - start + 1, second)
                line = zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)
                f.write(len(line).to_bytes(4, "big") + line)
            f.flush()
            os.fsync(f.fileno())
    return {"reports": agents * seconds, "cpu": cpu() - used, "bytes": os.path.getsize(path)}
