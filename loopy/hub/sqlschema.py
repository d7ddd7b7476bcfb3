# -*- test-case-name: tests.test_history_store -*-
"""
The SQLite history's schema and the work of its writer: each method of
L{Layout} runs inside one transaction on the writer thread (adbapi's
C{runInteraction}), given a cursor.  L{loopy.hub.sqlhistory} queues the
work and says when it runs.

Schema (C{PRAGMA user_version} = L{SCHEMA_VERSION}; C{PRAGMA
application_id} = L{APPLICATION_ID} marks a Loopy history; SQLite "CREATE
TABLE", "WITHOUT ROWID" and "UPSERT" pages of sqlite.org/lang.html):

=======================  ==========================================  =============================
table                    key                                         holds
=======================  ==========================================  =============================
``meta``                 key                                         ``folded`` (highest report id
                                                                     folded into the detail
                                                                     tables), ``pruned_S`` (detail
                                                                     of tier S pruned below this
                                                                     bucket)
``agents``               id (integer), ``agent_id`` unique           the newest hostname
``reports`` (first tier) id (autoincrement); unique (agent, epoch,   one row per report: ts,
                         seq); indexes (agent, ts), (ts)             interval, one integer column
                                                                     per L{IntervalCounts} field,
                                                                     one per L{Peaks} field, and
                                                                     ``detail``: the row's lists as
                                                                     zlib-compressed JSON arrays
``series_S`` (tier S)    (agent, bucket)                             counts summed, peaks maxed,
                                                                     reports, interval summed, the
                                                                     newest (epoch, seq)
``talkers_S``            (agent, bucket, addr)                       the 4 counts summed
``conversations_S``      (agent, bucket, a, b)                       the 4 counts summed
``dns_S``                (agent, bucket, qname, qtype, rcode,        count summed
                         client)
``connections``          (agent, bucket of the second tier,          the connection with the newest
                         first_seen, src, sport, dst, dport)         last_seen
``alerts``               (agent_id, epoch, seq); index (ts)          the newest revision, as JSON
=======================  ==========================================  =============================

C{S} is a tier's step in seconds; C{bucket} the start of a bucket,
seconds since the Unix epoch, a multiple of S.  Every table but
``reports`` is C{WITHOUT ROWID} (small rows, clustered by key).

A report is written once: C{INSERT OR IGNORE} into ``reports``, and only
if that inserted a row, one UPSERT into each ``series_S`` adding its counts
(so duplicates are stored once and the sums do not depend on the order of
writes).  Its lists are folded into the detail tables (``talkers_S`` …)
later, many reports at once, summed first in memory (L{Layout.fold}); the
``meta`` row ``folded`` says which reports are folded, so a hub that died
before folding folds the rest when it opens (the first tier keeps each
report's lists).  Detail tables are bounded per bucket: once a bucket is
closed (its end L{PRUNE_GRACE} seconds ago), L{Layout.prune} keeps its top
C{keep} rows per agent (by octets, or count for DNS names) and deletes the
others, so a bucket's top lists are exact until then and approximate (a
row pruned from a bucket counts 0 there) after.
"""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from operator import attrgetter
from typing import Any, Iterable, Optional, Sequence

from loopy.errors import ConfigError
from loopy.history import DnsName, Peaks, ReportRow
from loopy.hub.history import COUNT_FIELDS, PEAK_FIELDS, Tier
from loopy.model import Alert, Conversation, HostTraffic, IntervalCounts, TcpConnection
from loopy.wire import to_json_value

#: The schema this module writes (C{PRAGMA user_version}).
SCHEMA_VERSION = 1
#: C{PRAGMA application_id} of a Loopy history ("Loop" in ASCII).
APPLICATION_ID = 0x4C6F6F70
#: Seconds after a bucket's end before its detail is pruned.
PRUNE_GRACE = 120.0
#: zlib level of the first tier's ``detail`` (1 fastest … 9 smallest).
DETAIL_LEVEL = 6

#: Item kinds in a write transaction.
REPORT, ROWS, ALERT, FLUSH = "report", "rows", "alert", "flush"

_counts_of = attrgetter(*COUNT_FIELDS)
_peaks_of = attrgetter(*PEAK_FIELDS)
_COUNTS = ", ".join(COUNT_FIELDS)
_PEAKS = ", ".join(PEAK_FIELDS)
#: The columns of ``reports`` that make a row, in L{row_from_db}'s order.
ROW_COLUMNS = f"epoch, seq, ts, interval, {_COUNTS}, {_PEAKS}, detail"

_TALKER = ("packets_sent", "bytes_sent", "packets_received", "bytes_received")
_CONVERSATION = ("packets_ab", "bytes_ab", "packets_ba", "bytes_ba")
_CONNECTION = ("state", "packets_out", "bytes_out", "packets_in", "bytes_in",
               "ip_bytes_out", "ip_bytes_in", "rtt_ms", "retransmissions", "last_seen")
#: Detail tables: name, key columns after (agent, bucket), value columns,
#: the rank a bucket's rows are pruned by.
DETAIL_TABLES = (
    ("talkers", ("addr",), _TALKER, "bytes_sent + bytes_received"),
    ("conversations", ("a", "b"), _CONVERSATION, "bytes_ab + bytes_ba"),
    ("dns", ("qname", "qtype", "rcode", "client"), ("count",), "count"),
)
_CONNECTION_KEY = ("first_seen", "src", "sport", "dst", "dport")


def configure(connection: sqlite3.Connection) -> None:
    """
    The pragmas of every connection: WAL (readers do not block the
    writer), C{synchronous=FULL} (a commit is on disk when it returns,
    sqlite.org/pragma.html#pragma_synchronous), a busy timeout, and a
    page cache of 64 MiB (the indexes' pages a write touches stay cached).
    """
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA cache_size=-65536")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")


def encode_detail(row: ReportRow) -> bytes:
    """
    A row's lists as compressed JSON arrays (field order as the records'):
    ``{"t": talkers, "c": conversations, "d": dns_names, "x": connections}``.
    """
    detail = {
        "t": [(t.addr, t.packets_sent, t.bytes_sent, t.packets_received, t.bytes_received)
              for t in row.talkers],
        "c": [(c.a, c.b, c.packets_ab, c.bytes_ab, c.packets_ba, c.bytes_ba)
              for c in row.conversations],
        "d": [(d.qname, d.qtype, d.rcode, d.client, d.count) for d in row.dns_names],
        "x": [(c.src, c.sport, c.dst, c.dport, c.state, c.packets_out, c.bytes_out,
               c.packets_in, c.bytes_in, c.ip_bytes_out, c.ip_bytes_in, c.rtt_ms,
               c.retransmissions, c.first_seen, c.last_seen) for c in row.connections],
    }
    return zlib.compress(json.dumps(detail, separators=(",", ":")).encode("utf-8"),
                         DETAIL_LEVEL)


def decode_detail(blob: bytes) -> dict[str, tuple]:
    """
    Inverse of L{encode_detail}: C{talkers}, C{conversations}, C{dns_names}
    and C{connections} as tuples of records.  A damaged blob gives empty
    lists (the row's counts are still good).
    """
    try:
        detail = json.loads(zlib.decompress(blob))
        return {
            "talkers": tuple(HostTraffic(*t) for t in detail["t"]),
            "conversations": tuple(Conversation(*c) for c in detail["c"]),
            "dns_names": tuple(DnsName(*d) for d in detail["d"]),
            "connections": tuple(TcpConnection(*c) for c in detail["x"]),
        }
    except (zlib.error, ValueError, TypeError, KeyError):
        return {}


def row_from_db(agent_id: str, hostname: str, record: Sequence[Any]) -> ReportRow:
    """
    A L{ReportRow} from the columns L{ROW_COLUMNS} of one ``reports`` row.
    """
    n, p = len(COUNT_FIELDS), len(PEAK_FIELDS)
    return ReportRow(
        agent_id=agent_id, hostname=hostname, epoch=record[0], seq=record[1],
        ts=record[2], interval=record[3], counts=IntervalCounts(*record[4:4 + n]),
        peaks=Peaks(*record[4 + n:4 + n + p]), **decode_detail(record[4 + n + p]))


def _upsert(table: str, keys: Sequence[str], adds: Sequence[str] = (),
            maxes: Sequence[str] = (), newest: bool = False) -> str:
    """
    An INSERT of C{keys}, (with C{newest}) C{epoch, seq}, C{adds} and
    C{maxes} that, on a key already held, adds C{adds}, keeps the larger
    C{maxes} and (with C{newest}) the higher C{(epoch, seq)}.
    """
    columns = (*keys, *(("epoch", "seq") if newest else ()), *adds, *maxes)
    sets = [f"{c} = {c} + excluded.{c}" for c in adds]
    sets += [f"{c} = max({c}, excluded.{c})" for c in maxes]
    if newest:
        later = "(excluded.epoch, excluded.seq) > (epoch, seq)"
        sets += [f"{c} = CASE WHEN {later} THEN excluded.{c} ELSE {c} END"
                 for c in ("epoch", "seq")]
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
            f" ({', '.join('?' * len(columns))}) ON CONFLICT ({', '.join(keys)})"
            f" DO UPDATE SET {', '.join(sets)}")


class Layout:
    """
    The tables of one set of tiers, and the writer's work on them.

    :ivar agent_ids: agent id to (row id in ``agents``, hostname), a cache
        used by the writer only, cleared when a transaction fails.
    """

    def __init__(self, tiers: Sequence[Tier], keep: int):
        self.tiers = tuple(tiers)
        self.steps = tuple(int(t.step) for t in self.tiers[1:])
        self.keep = keep
        self.agent_ids: dict[str, tuple[int, str]] = {}
        self._insert = (f"INSERT OR IGNORE INTO reports (agent, {ROW_COLUMNS}) VALUES"
                        f" ({', '.join('?' * (6 + len(COUNT_FIELDS) + len(PEAK_FIELDS)))})")
        self._series = {
            s: _upsert(f"series_{s}", ("agent", "bucket"), ("reports", "interval", *COUNT_FIELDS),
                       PEAK_FIELDS, newest=True)
            for s in self.steps}
        self._details = {
            (name, s): _upsert(f"{name}_{s}", ("agent", "bucket", *key), values)
            for s in self.steps for name, key, values, _rank in DETAIL_TABLES}
        self._connection = (
            f"INSERT INTO connections (agent, bucket, {', '.join(_CONNECTION_KEY)},"
            f" {', '.join(_CONNECTION)}) VALUES ({', '.join('?' * 17)})"
            f" ON CONFLICT (agent, bucket, {', '.join(_CONNECTION_KEY)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _CONNECTION)
            + " WHERE excluded.last_seen > connections.last_seen")

    # -- schema -----------------------------------------------------------

    def create(self, connection: sqlite3.Connection) -> None:
        """
        Make the tables this layout needs (those of new tiers too), or
        refuse a file that is not a Loopy history of a known version.

        :raises ConfigError: naming the problem.
        """
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application != APPLICATION_ID and (application or tables):
            raise ConfigError("it is not a Loopy history (another program's SQLite file)")
        if application == APPLICATION_ID and version > SCHEMA_VERSION:
            raise ConfigError(
                f"it has history schema version {version}, newer than this Loopy's"
                f" ({SCHEMA_VERSION}): use a newer Loopy or another --data directory")
        counts = ", ".join(f"{c} INTEGER NOT NULL" for c in COUNT_FIELDS)
        statements = [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS agents (id INTEGER PRIMARY KEY,"
            " agent_id TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS reports (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            f" agent INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
            f" ts REAL NOT NULL, interval REAL NOT NULL, {counts}, {_PEAKS},"
            f" detail BLOB NOT NULL)",
            "CREATE UNIQUE INDEX IF NOT EXISTS reports_key ON reports (agent, epoch, seq)",
            "CREATE INDEX IF NOT EXISTS reports_agent_ts ON reports (agent, ts)",
            "CREATE INDEX IF NOT EXISTS reports_ts ON reports (ts)",
            f"CREATE TABLE IF NOT EXISTS connections (agent INTEGER, bucket INTEGER,"
            f" {', '.join(_CONNECTION_KEY)}, {', '.join(_CONNECTION)},"
            f" PRIMARY KEY (agent, bucket, {', '.join(_CONNECTION_KEY)})) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS alerts (agent_id TEXT, epoch INTEGER, seq INTEGER,"
            " revision INTEGER, ts REAL, value TEXT, PRIMARY KEY (agent_id, epoch, seq))"
            " WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts)",
            "INSERT OR IGNORE INTO meta VALUES ('folded', 0)",
        ]
        for s in self.steps:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS series_{s} (agent INTEGER, bucket INTEGER,"
                f" epoch INTEGER, seq INTEGER, reports INTEGER, interval REAL, {counts},"
                f" {_PEAKS}, PRIMARY KEY (agent, bucket)) WITHOUT ROWID")
            for name, key, values, _rank in DETAIL_TABLES:
                statements.append(
                    f"CREATE TABLE IF NOT EXISTS {name}_{s} (agent INTEGER, bucket INTEGER,"
                    f" {', '.join(key)}, {', '.join(values)},"
                    f" PRIMARY KEY (agent, bucket, {', '.join(key)})) WITHOUT ROWID")
            statements.append(f"INSERT OR IGNORE INTO meta VALUES ('pruned_{s}', 0)")
        for statement in statements:
            connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.commit()

    def unfolded(self, cursor: Any) -> list[tuple[int, ReportRow]]:
        """
        The reports written but not yet folded into the detail tables (a
        hub that stopped before folding them), oldest first.
        """
        cursor.execute("SELECT value FROM meta WHERE key = 'folded'")
        folded = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT r.id, a.agent_id, a.hostname, {', '.join('r.' + c for c in ROW_COLUMNS.split(', '))}"
            f" FROM reports r JOIN agents a ON a.id = r.agent WHERE r.id > ? ORDER BY r.id",
            (folded,))
        return [(record[0], row_from_db(record[1], record[2], record[3:]))
                for record in cursor.fetchall()]

    # -- writes -----------------------------------------------------------

    def write(self, txn: Any, items: Sequence[tuple[str, Any]],
              fold: Optional[Sequence[tuple[int, ReportRow]]]) -> tuple[list, list]:
        """
        One group commit's work.

        :param items: C{(kind, payload)}: L{REPORT} and a L{ReportRow},
            L{ROWS} and a sequence of them, L{ALERT} and an L{Alert},
            L{FLUSH} and None.
        :param fold: None, or C{(report id, row)} to fold into the detail
            tables with the new rows of this transaction.
        :returns: a result per item (True/False if new, the number of new
            rows, None for L{FLUSH}) and the new rows as C{(id, row)}.
        """
        try:
            return self._write(txn, items, fold)
        except BaseException:
            self.agent_ids.clear()  # ids made in a rolled-back transaction
            raise

    def _write(self, txn, items, fold):
        results: list = []
        new: list[tuple[int, ReportRow]] = []
        for kind, payload in items:
            if kind == REPORT:
                before = len(new)
                self._add(txn, payload, new)
                results.append(len(new) > before)
            elif kind == ROWS:
                before = len(new)
                for row in payload:
                    self._add(txn, row, new)
                results.append(len(new) - before)
            elif kind == ALERT:
                results.append(self._alert(txn, payload))
            else:
                results.append(None)
        for step in self.steps if new else ():
            txn.executemany(self._series[step], [
                (self.agent_ids[row.agent_id][0], int(row.ts // step * step), row.epoch,
                 row.seq, 1, row.interval, *_counts_of(row.counts), *_peaks_of(row.peaks))
                for _id, row in new])
        if fold is not None and (fold or new):
            self.fold(txn, [*fold, *new])
        return results, new

    def _agent(self, txn: Any, agent_id: str, hostname: str) -> int:
        known = self.agent_ids.get(agent_id)
        if known is not None and known[1] == hostname:
            return known[0]
        txn.execute("INSERT INTO agents (agent_id, hostname) VALUES (?, ?) ON CONFLICT"
                    " (agent_id) DO UPDATE SET hostname = excluded.hostname",
                    (agent_id, hostname))
        txn.execute("SELECT id FROM agents WHERE agent_id = ?", (agent_id,))
        ident = txn.fetchone()[0]
        self.agent_ids[agent_id] = (ident, hostname)
        return ident

    def _add(self, txn: Any, row: ReportRow, new: list) -> None:
        agent = self._agent(txn, row.agent_id, row.hostname)
        txn.execute(self._insert, (agent, row.epoch, row.seq, row.ts, row.interval,
                                   *_counts_of(row.counts), *_peaks_of(row.peaks),
                                   encode_detail(row)))
        if txn.rowcount == 1:
            new.append((txn.lastrowid, row))

    def _alert(self, txn: Any, alert: Alert) -> bool:
        txn.execute(
            "INSERT INTO alerts (agent_id, epoch, seq, revision, ts, value)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, epoch, seq) DO UPDATE SET"
            " revision = excluded.revision, ts = excluded.ts, value = excluded.value"
            " WHERE excluded.revision > alerts.revision",
            (alert.agent_id, alert.epoch, alert.seq, alert.revision, alert.ts,
             json.dumps(to_json_value(alert), separators=(",", ":"))))
        return txn.rowcount == 1

    def fold(self, txn: Any, fold: Iterable[tuple[int, ReportRow]]) -> None:
        """
        Add rows' lists into the detail tables of every coarse tier, summed
        in memory first (a talker seen in many reports of a bucket is one
        UPSERT), and mark them folded.
        """
        sums: dict[tuple[str, int], dict[tuple, list]] = {
            (name, s): {} for s in self.steps for name, *_rest in DETAIL_TABLES}
        connections: dict[tuple, tuple] = {}
        low = {s: math.inf for s in self.steps}
        first_step = self.steps[0]
        top = 0
        for ident, row in fold:
            top = max(top, ident)
            agent = self._agent(txn, row.agent_id, row.hostname)
            for s in self.steps:
                bucket = int(row.ts // s * s)
                low[s] = min(low[s], bucket)
                _sum(sums["talkers", s], [((agent, bucket, t.addr), (
                    t.packets_sent, t.bytes_sent, t.packets_received, t.bytes_received))
                    for t in row.talkers])
                _sum(sums["conversations", s], [((agent, bucket, c.a, c.b), (
                    c.packets_ab, c.bytes_ab, c.packets_ba, c.bytes_ba))
                    for c in row.conversations])
                _sum(sums["dns", s], [((agent, bucket, d.qname, d.qtype, d.rcode, d.client),
                                       (d.count,)) for d in row.dns_names])
            for c in row.connections:
                key = (agent, int(c.first_seen // first_step * first_step), c.first_seen,
                       c.src, c.sport, c.dst, c.dport)
                value = (c.state, c.packets_out, c.bytes_out, c.packets_in, c.bytes_in,
                         c.ip_bytes_out, c.ip_bytes_in, c.rtt_ms, c.retransmissions,
                         c.last_seen)
                held = connections.get(key)
                if held is None or value[-1] > held[-1]:
                    connections[key] = value
                low[first_step] = min(low[first_step], key[1])
        for (name, s), table in sums.items():
            if table:
                txn.executemany(self._details[name, s],
                                [(*key, *value) for key, value in table.items()])
        if connections:
            txn.executemany(self._connection,
                            [(*key, *value) for key, value in connections.items()])
        txn.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'folded'", (top,))
        for s, bucket in low.items():
            if bucket < math.inf:
                txn.execute("UPDATE meta SET value = min(value, ?) WHERE key = ?",
                            (bucket, f"pruned_{s}"))

    # -- maintenance ------------------------------------------------------

    def expire(self, txn: Any, now: float, budget: int, max_alerts: int) -> int:
        """
        Delete rows older than their tier's retention: first-tier reports
        by C{ts}; coarse buckets that ended before ``now - retention``;
        connections with the second tier; alerts (by C{ts}) with the
        coarsest, and the oldest past C{max_alerts}.  Stops after about
        C{budget} rows (one statement deletes one agent's expired buckets
        of one table); the next call goes on.

        :returns: rows deleted.
        """
        txn.execute("DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE ts < ?"
                    " ORDER BY ts LIMIT ?)", (now - self.tiers[0].retention, budget))
        deleted = txn.rowcount
        agents = [r[0] for r in txn.execute("SELECT id FROM agents").fetchall()]
        tables = [(s, t, f"{name}_{s}") for s, t in zip(self.steps, self.tiers[1:])
                  for name in ("series", *(d[0] for d in DETAIL_TABLES))]
        tables.append((self.steps[0], self.tiers[1], "connections"))
        for step, tier, table in tables:
            last = math.floor((now - tier.retention) / step) * step - step
            for agent in agents:
                if deleted >= budget:
                    return deleted
                txn.execute(f"DELETE FROM {table} WHERE agent = ? AND bucket <= ?",
                            (agent, last))
                deleted += txn.rowcount
        txn.execute("DELETE FROM alerts WHERE (agent_id, epoch, seq) IN (SELECT agent_id,"
                    " epoch, seq FROM alerts WHERE ts < ? ORDER BY ts LIMIT ?)",
                    (now - self.tiers[-1].retention, max(0, budget - deleted)))
        deleted += txn.rowcount
        txn.execute("SELECT count(*) FROM alerts")
        over = min(txn.fetchone()[0] - max_alerts, budget - deleted)
        if over > 0:
            txn.execute("DELETE FROM alerts WHERE (agent_id, epoch, seq) IN (SELECT agent_id,"
                        " epoch, seq FROM alerts ORDER BY ts LIMIT ?)", (over,))
            deleted += txn.rowcount
        return deleted

    def prune(self, txn: Any, now: float) -> int:
        """
        Keep the top C{keep} rows per agent of each closed bucket (ended
        L{PRUNE_GRACE} seconds ago or more) of each detail table, from the
        ``pruned_S`` mark on; move the mark.

        :returns: rows deleted.
        """
        deleted = 0
        agents = [r[0] for r in txn.execute("SELECT id FROM agents").fetchall()]
        for s in self.steps:
            txn.execute("SELECT value FROM meta WHERE key = ?", (f"pruned_{s}",))
            mark = txn.fetchone()[0]
            end = math.floor((now - PRUNE_GRACE) / s) * s
            if mark >= end:
                continue
            tables = [(f"{name}_{s}", key, rank) for name, key, _v, rank in DETAIL_TABLES]
            if s == self.steps[0]:
                tables.append(("connections", _CONNECTION_KEY, "ip_bytes_in + ip_bytes_out"))
            for table, key, rank in tables:
                columns = ", ".join(("bucket", *key))
                sql = (f"DELETE FROM {table} WHERE agent = ?1 AND ({columns}) IN"
                       f" (SELECT {columns} FROM (SELECT {columns}, row_number() OVER"
                       f" (PARTITION BY bucket ORDER BY {rank} DESC, {columns}) AS rank"
                       f" FROM {table} WHERE agent = ?1 AND bucket >= ?2 AND bucket < ?3)"
                       f" WHERE rank > ?4)")
                for agent in agents:
                    txn.execute(sql, (agent, mark, end, self.keep))
                    deleted += txn.rowcount
            txn.execute("UPDATE meta SET value = ? WHERE key = ?", (end, f"pruned_{s}"))
        return deleted


def _sum(table: dict[tuple, list], items: list[tuple[tuple, tuple]]) -> None:
    for key, values in items:
        held = table.get(key)
        if held is None:
            table[key] = list(values)
        else:
            for i, v in enumerate(values):
                held[i] += v
