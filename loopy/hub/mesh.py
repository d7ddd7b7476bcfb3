# -*- test-case-name: tests.test_mesh -*-
"""
The state hubs replicate among themselves, and the anti-entropy that does
it: Scuttlebutt, as in R. van Renesse, D. Dumitriu, V. Gough and C. Thomas,
"Efficient Reconciliation and Flow Control for Anti-Entropy Protocols"
(LADIS 2008).  Pure logic: nothing here touches the network or a clock.

Every replicated entry has a C{kind} and a C{key} (what it is about), an
C{order} (its version in the entry's own terms: a report's
``(epoch, seq)``, an alert's revision …; of two entries for one key the
higher order wins, and equal orders are the same entry), and a C{stamp}:
the origin that first wrote it, ``NAME#EPOCH`` of a hub run, and that
origin's write counter.  Each hub keeps, per origin, a watermark: the
highest counter up to which it holds every write of that origin or a
newer version of the same key.  The watermarks are the hub's I{digest}.

A hub pulls from a peer by sending its digest; the peer answers with the
entries it holds whose stamps are above the digest's watermarks, per
origin in counter order, up to a byte budget (so a large catch-up comes in
chunks, one at a time: flow control), and with its own watermark for each
origin it sent completely.  Applying the answer keeps, per key, the
higher order, and raises the watermarks.  So merges are idempotent and do
not depend on the order of deliveries or on the path an entry took; and a
peer is sent only what its digest shows it lacks.

A hub that restarts is a new origin (a new epoch), so the entries its last
run wrote come back to it from its peers.
"""

from __future__ import annotations

import json
import zlib
from bisect import bisect_right
from typing import Any, Iterable, Mapping, Optional

from attrs import field, frozen

from loopy.errors import WireError

#: The kinds of replicated entries, and what C{key} and C{order} are:
#:
#: =========  ==========================  ==================================
#: kind       key                          order (higher wins)
#: =========  ==========================  ==================================
#: ``hub``    hub name                     ``(epoch, beat)``
#: ``link``   agent id                     ``(epoch, link, 0 up / 1 down)``
#: ``report`` agent id                     ``(epoch, seq)``
#: ``alert``  ``(agent_id, epoch, seq)``   ``(revision,)``
#: ``ack``    ``(agent_id, epoch, seq)``   ``(-acknowledged_at, by)``
#: =========  ==========================  ==================================
KINDS = ("hub", "link", "report", "alert", "ack")

#: Octets of entries (compressed values) a pull answer carries at most; one
#: entry larger than this still goes, alone.
PULL_BYTES = 1024 * 1024
#: Largest value of one entry, in octets of JSON (as L{loopy.wire}'s
#: largest record).
MAX_VALUE_BYTES = 8 * 1024 * 1024


class Entry:
    """
    One replicated entry.

    Its value travels as a zlib stream of compact JSON (C{blob}), made once
    by the hub that wrote it and forwarded unchanged by every hub after, so
    relaying an entry costs no encoding; the value is decoded when a hub
    needs it.

    :ivar kind: one of L{KINDS}.
    :ivar key: a string, or a tuple of strings and integers.
    :ivar order: a tuple of numbers and strings; see L{KINDS}.
    :ivar origin: ``NAME#EPOCH`` of the hub run that wrote it first.
    :ivar counter: that origin's write counter, from 1.
    """

    __slots__ = ("kind", "key", "order", "origin", "counter", "_value", "_blob", "record")

    def __init__(self, kind: str, key: Any, order: tuple, origin: str, counter: int,
                 value: Optional[Mapping[str, Any]] = None, blob: Optional[bytes] = None):
        self.kind = kind
        self.key = key
        self.order = order
        self.origin = origin
        self.counter = counter
        self._value = value
        self._blob = blob
        #: The value as its record (L{parse}, L{write}), once made.
        self.record: Any = None

    @property
    def value(self) -> Mapping[str, Any]:
        """
        The JSON-shaped value (a dict).

        :raises WireError: if the blob is not one zlib stream of at most
            L{MAX_VALUE_BYTES} of JSON, or not an object.
        """
        if self._value is None:
            value = json.loads(_inflate(self._blob, MAX_VALUE_BYTES)) if self._blob else None
            if not isinstance(value, dict):
                raise WireError(f"a {self.kind} value must be an object")
            self._value = value
        return self._value

    @property
    def blob(self) -> bytes:
        """
        The value as a zlib stream of compact JSON, made once.
        """
        if self._blob is None:
            self._blob = zlib.compress(
                json.dumps(self._value, separators=(",", ":")).encode("utf-8"), 1)
            # The blob and the record say it all; a report's value is large.
            self._value = None
        return self._blob

    def __repr__(self) -> str:
        return (f"Entry({self.kind!r}, {self.key!r}, {self.order!r}, "
                f"{self.origin}:{self.counter})")


def _inflate(data: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise WireError(f"not zlib data: {e}") from None
    if len(raw) > max_bytes or inflater.unconsumed_tail or not inflater.eof \
            or inflater.unused_data:
        raise WireError(f"not one zlib stream of at most {max_bytes} bytes")
    return raw


@frozen
class Batch:
    """
    A pull's answer.

    :ivar entries: entries above the puller's watermarks, per origin in
        counter order.
    :ivar complete: origin to the answering hub's watermark, for each
        origin whose every entry above the puller's watermark is in
        C{entries}.
    :ivar more: whether the byte budget cut the answer short (pull again).
    """

    entries: tuple[Entry, ...] = ()
    complete: Mapping[str, int] = field(factory=dict)
    more: bool = False


def origin_name(name: str, epoch: int) -> str:
    """
    The origin of a hub run: ``NAME#EPOCH``.
    """
    return f"{name}#{epoch}"


class _Log:
    """
    One origin's writes this hub holds, as ``(counter, (kind, key))`` pairs
    in counter order; superseded pairs stay until the next compaction.
    """

    __slots__ = ("counters", "keys", "watermark", "unsorted", "live")

    def __init__(self):
        self.counters: list[int] = []
        self.keys: list[tuple] = []
        self.watermark = 0
        self.unsorted = False
        #: Live pairs at the last compaction: the log is compacted again
        #: when it has grown to twice that (plus a little), so compaction
        #: costs O(1) amortized per write.
        self.live = 0

    def add(self, counter: int, ident: tuple) -> None:
        if self.counters and counter < self.counters[-1]:
            self.unsorted = True
        self.counters.append(counter)
        self.keys.append(ident)

    def sort(self) -> None:
        if self.unsorted:
            pairs = sorted(zip(self.counters, self.keys), key=lambda p: p[0])
            self.counters = [c for c, _ in pairs]
            self.keys = [k for _, k in pairs]
            self.unsorted = False


class ReplicaStore:
    """
    The entries a hub holds, by ``(kind, key)``, with a log per origin.

    Bounded: at most C{limits[kind]} entries of each kind.  A new key past
    its kind's bound is refused (counted in C{refused}); making room, where
    the policy is to forget old entries (alerts), is the caller's: see
    L{forget}.  At most C{max_origins} origins: past that the origin with
    the fewest live entries, oldest first, is forgotten with its watermark
    (counted in C{origins_dropped}).

    :ivar origin: this hub run's origin, ``NAME#EPOCH``.
    :ivar written: entries written here (L{put}).
    :ivar applied: entries taken from peers that were new here.
    :ivar stale: entries from peers at or below the order held.
    :ivar refused: per kind, new keys refused at the bound.
    """

    def __init__(self, name: str, epoch: int, limits: Mapping[str, int],
                 max_origins: int = 1024):
        self.origin = origin_name(name, epoch)
        self.limits = dict(limits)
        self.max_origins = max_origins
        self._entries: dict[tuple, Entry] = {}
        self._counts = dict.fromkeys(KINDS, 0)
        self._logs: dict[str, _Log] = {}
        self._counter = 0
        self.written = self.applied = self.stale = 0
        self.origins_dropped = 0
        self.refused = dict.fromkeys(KINDS, 0)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, kind: str, key: Any) -> Optional[Entry]:
        """
        The entry held for C{(kind, key)}, or None.
        """
        return self._entries.get((kind, key))

    def entries(self, kind: str) -> list[Entry]:
        """
        Every entry of C{kind} held.
        """
        return [e for e in self._entries.values() if e.kind == kind]

    def digest(self) -> dict[str, int]:
        """
        Origin to watermark: what this hub holds.
        """
        return {origin: log.watermark for origin, log in self._logs.items()}

    def put(self, kind: str, key: Any, order: tuple,
            value: Mapping[str, Any]) -> Optional[Entry]:
        """
        Write an entry at this hub (an agent's report, a link, an
        acknowledgement …), stamped with this hub's next counter.

        :returns: the entry, or None if an entry of at least that order is
            held or the kind is at its bound.
        """
        if not self._admits(kind, key, order):
            return None
        log = self._log(self.origin)
        self._counter += 1
        entry = Entry(kind, key, order, self.origin, self._counter, value)
        self._hold(entry)
        log.watermark = self._counter
        self.written += 1
        return entry

    def apply(self, batch: Batch) -> list[Entry]:
        """
        Take a peer's answer to a pull.

        :returns: the entries that were new here (to act on), in the
            answer's order.
        """
        changed = []
        for entry in batch.entries:
            log = self._log(entry.origin)
            if log is None:
                continue
            if entry.counter > log.watermark:
                log.watermark = entry.counter
            if entry.origin == self.origin and entry.counter > self._counter:
                # Our own writes from before a crash cannot share this
                # epoch; a peer claiming so is confused.  Keep counting above.
                self._counter = entry.counter
            if self._admits(entry.kind, entry.key, entry.order):
                self._hold(entry)
                self.applied += 1
                changed.append(entry)
        for origin, watermark in batch.complete.items():
            log = self._log(origin)
            if log is not None and watermark > log.watermark:
                log.watermark = watermark
        return changed

    def delta(self, digest: Mapping[str, int], budget: int = PULL_BYTES) -> Batch:
        """
        What a peer whose digest is C{digest} lacks, up to C{budget} octets
        of compressed values.  Origins take turns, one entry each, so when
        the budget cuts the answer every origin has moved on (a busy origin
        cannot starve the others); within an origin entries go in counter
        order.
        """
        pending = []
        for origin in sorted(self._logs):
            log = self._logs[origin]
            known = digest.get(origin, 0)
            if log.watermark > known:
                log.sort()
                pending.append((origin, log, bisect_right(log.counters, known)))
        out: list[Entry] = []
        complete: dict[str, int] = {}
        size = 0
        while pending:
            still = []
            for origin, log, index in pending:
                entry, index = self._next_live(origin, log, index)
                if entry is None:
                    complete[origin] = log.watermark
                    continue
                cost = len(entry.blob) + 64
                if out and size + cost > budget:
                    return Batch(entries=tuple(out), complete=complete, more=True)
                size += cost
                out.append(entry)
                still.append((origin, log, index + 1))
            pending = still
        return Batch(entries=tuple(out), complete=complete, more=False)

    def _next_live(self, origin: str, log: _Log, index: int) -> tuple[Optional[Entry], int]:
        """
        The first entry of C{origin}'s log at or after C{index} that is
        still held under that stamp, and its index.
        """
        counters, keys = log.counters, log.keys
        while index < len(counters):
            entry = self._entries.get(keys[index])
            if entry is not None and entry.origin == origin and entry.counter == counters[index]:
                return entry, index
            index += 1
        return None, index

    def forget(self, kind: str, key: Any) -> None:
        """
        Drop the entry for C{(kind, key)} (a bound's policy).  Its log
        pair goes at the next compaction; the watermark stays, so peers do
        not send it again.
        """
        if self._entries.pop((kind, key), None) is not None:
            self._counts[kind] -= 1

    def _admits(self, kind: str, key: Any, order: tuple) -> bool:
        held = self._entries.get((kind, key))
        if held is not None:
            if order <= held.order:
                self.stale += 1
                return False
            return True
        if self._counts[kind] >= self.limits.get(kind, 0):
            self.refused[kind] += 1
            return False
        return True

    def _hold(self, entry: Entry) -> None:
        ident = (entry.kind, entry.key)
        if self._entries.get(ident) is None:
            self._counts[entry.kind] += 1
        self._entries[ident] = entry
        log = self._logs[entry.origin]
        log.add(entry.counter, ident)
        if len(log.counters) > 2 * log.live + 64:
            self._compact(entry.origin, log)

    def _compact(self, origin: str, log: _Log) -> None:
        live_counters, live_keys = [], []
        for counter, ident in zip(log.counters, log.keys):
            entry = self._entries.get(ident)
            if entry is not None and entry.origin == origin and entry.counter == counter:
                live_counters.append(counter)
                live_keys.append(ident)
        log.counters, log.keys = live_counters, live_keys
        log.live = len(live_keys)

    def _log(self, origin: str) -> Optional[_Log]:
        log = self._logs.get(origin)
        if log is None:
            if len(self._logs) >= self.max_origins and not self._drop_origin():
                return None
            log = self._logs[origin] = _Log()
        return log

    def _drop_origin(self) -> bool:
        candidates = [o for o in self._logs if o != self.origin]
        if not candidates:
            return False

        def live(origin: str) -> int:
            return sum(1 for e in self._entries.values() if e.origin == origin)

        victim = min(candidates, key=lambda o: (live(o), o))
        for ident in [i for i, e in self._entries.items() if e.origin == victim]:
            self.forget(*ident)
        del self._logs[victim]
        self.origins_dropped += 1
        return True


def encode_batch(batch: Batch) -> bytes:
    """
    A batch on the wire: one line of JSON, ``{"e": [[kind, key, order,
    origin, counter, length], …], "c": {origin: watermark}, "m": more}``,
    a newline, then each entry's blob (L{Entry.blob}), of the lengths the
    line gives, one after another.  Blobs go as made, not encoded again.
    """
    blobs = [entry.blob for entry in batch.entries]
    head = json.dumps({
        "e": [[e.kind, e.key, e.order, e.origin, e.counter, len(blob)]
              for e, blob in zip(batch.entries, blobs)],
        "c": batch.complete,
        "m": batch.more,
    }, separators=(",", ":")).encode("utf-8")
    return b"".join([head, b"\n", *blobs])


def decode_batch(data: bytes, max_bytes: int) -> Batch:
    """
    Inverse of L{encode_batch}, checking every field's shape.  Values stay
    compressed until asked for (L{Entry.value}).

    :raises WireError: if the data is not a well-formed batch or is larger
        than C{max_bytes}.
    """
    if len(data) > max_bytes:
        raise WireError(f"gossip batch is larger than {max_bytes} bytes")
    head, newline, blobs = data.partition(b"\n")
    if not newline:
        raise WireError("gossip batch has no header line")
    try:
        doc = json.loads(head)
    except ValueError as e:
        raise WireError(f"gossip batch header is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise WireError("gossip batch must be an object")
    rows, complete, more = doc.get("e"), doc.get("c"), doc.get("m")
    if not isinstance(rows, list) or not isinstance(complete, dict) \
            or not isinstance(more, bool):
        raise WireError("gossip batch needs e (list), c (object) and m (boolean)")
    for origin, watermark in complete.items():
        if not _is_count(watermark):
            raise WireError(f"bad watermark for origin {origin!r}")
    entries = []
    offset = 0
    for row in rows:
        entry, length = _entry(row)
        entry._blob = blobs[offset:offset + length]
        offset += length
        entries.append(entry)
    if offset != len(blobs):
        raise WireError("gossip batch lengths do not match its data")
    return Batch(entries=tuple(entries), complete=complete, more=more)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(row: Any) -> tuple[Entry, int]:
    if not isinstance(row, list) or len(row) != 6:
        raise WireError("a gossip entry is [kind, key, order, origin, counter, length]")
    kind, key, order, origin, counter, length = row
    if kind not in KINDS:
        raise WireError(f"unknown gossip entry kind {kind!r}")
    if isinstance(key, list):
        key = tuple(key)
    if not (isinstance(key, str) or (isinstance(key, tuple) and all(
            isinstance(k, (str, int)) and not isinstance(k, bool) for k in key))):
        raise WireError(f"bad {kind} key {key!r}"[:200])
    if not isinstance(order, list) or not all(
            isinstance(o, (int, float, str)) and not isinstance(o, bool) for o in order):
        raise WireError(f"bad {kind} order {order!r}"[:200])
    if not isinstance(origin, str) or not _is_count(counter) or counter == 0:
        raise WireError("bad gossip entry stamp")
    if not _is_count(length):
        raise WireError("bad gossip entry length")
    return Entry(kind, key, tuple(order), origin, counter), length


@frozen
class ReportHead:
    """
    What a hub needs of a report a peer sent to list its agent: the
    report's identity, time and fleet-screen line.  The whole report is
    made from the entry only when a UI asks for it (L{load_report}), so
    relaying the fleet's reports costs a hub no record-making.

    :ivar summary: an L{loopy.model.AgentSummary}.
    """

    agent_id: str
    hostname: str
    epoch: int
    seq: int
    ts: float
    summary: Any

    @property
    def version(self) -> tuple[int, int]:
        return (self.epoch, self.seq)


def _record_kinds() -> dict[str, tuple]:
    from loopy.model import Acknowledgement, AgentLink, AgentReport, Alert, HubBeat

    return {
        "hub": (HubBeat, lambda r: r.name, lambda r: r.order),
        "link": (AgentLink, lambda r: r.agent_id, lambda r: r.order),
        "report": (AgentReport, lambda r: r.agent_id, lambda r: r.version),
        "alert": (Alert, lambda r: r.key, lambda r: (r.revision,)),
        "ack": (Acknowledgement, lambda r: (r.agent_id, r.epoch, r.seq), lambda r: r.order),
    }


#: Kind to (record type, key of a record, order of a record).
RECORD_KINDS = _record_kinds()


def write(store: ReplicaStore, kind: str, record: Any,
          value: Optional[Any] = None) -> Optional[Entry]:
    """
    Write C{record} (of C{kind}'s type in L{RECORD_KINDS}) at this hub.

    :param value: the record's JSON value if the caller has it already
        (L{loopy.wire.to_json_value}).
    :returns: the entry, or None if it was not newer (see L{ReplicaStore.put}).
    """
    from loopy.wire import to_json_value

    _type, key_of, order_of = RECORD_KINDS[kind]
    if value is None:
        value = to_json_value(record)
    entry = store.put(kind, key_of(record), order_of(record), value)
    if entry is not None:
        entry.record = record
    return entry


def parse(entry: Entry) -> Any:
    """
    The record of an entry from a peer (for a report, its L{ReportHead});
    kept in C{entry.record}.

    :raises WireError: if the value does not decode or structure into its
        kind's record, or its key or order is not the record's.
    """
    from loopy.model import summarize_value
    from loopy.wire import converter

    record_type, key_of, order_of = RECORD_KINDS[entry.kind]
    value = entry.value
    try:
        if entry.kind == "report":
            record = ReportHead(agent_id=value["agent_id"], hostname=value["hostname"],
                                epoch=value["epoch"], seq=value["seq"], ts=value["ts"],
                                summary=summarize_value(value))
            if not (isinstance(record.agent_id, str) and isinstance(record.hostname, str)
                    and _is_count(record.epoch) and _is_count(record.seq)
                    and isinstance(record.ts, (int, float))):
                raise ValueError("agent_id, hostname, epoch, seq or ts of the wrong type")
        else:
            record = converter.structure(value, record_type)
    except Exception as e:
        raise WireError(f"bad {entry.kind} entry: {e!r}"[:300]) from None
    if key_of(record) != entry.key or tuple(order_of(record)) != entry.order:
        raise WireError(f"{entry.kind} entry's key or order is not its value's")
    entry.record = record
    entry._value = None  # decoded again if ever needed (load_report)
    return record


def load_report(entry: Entry) -> Any:
    """
    The whole L{loopy.model.AgentReport} of a report entry.

    :raises WireError: if its value does not structure into one.
    """
    from loopy.model import AgentReport
    from loopy.wire import converter

    try:
        return converter.structure(entry.value, AgentReport)
    except Exception as e:
        raise WireError(f"bad report entry: {e!r}"[:300]) from None


def same_entries(stores: Iterable[ReplicaStore], kinds: Iterable[str] = KINDS) -> bool:
    """
    Whether every store holds the same keys of C{kinds} at the same orders
    (what convergence means; for tests and benchmarks).
    """
    kinds = set(kinds)
    views = [
        {ident: entry.order for ident, entry in store._entries.items() if ident[0] in kinds}
        for store in stores
    ]
    return all(view == views[0] for view in views[1:])
