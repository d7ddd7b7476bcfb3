# -*- test-case-name: tests.test_spool -*-
"""
The agent's spool: every report and alert revision the agent makes, kept
from the moment it is made until a hub acknowledges a durable write of it
(write-ahead; ARCHITECTURE.md decision 9).  The uplink appends each record
here before it sends it (L{loopy.agent.delivery}), and acknowledges it here
when the hub answers.

With a directory (``--spool DIR``) records go to disk::

    DIR/lock                     flock(2)ed while an agent uses the spool
    DIR/state.json               what is done, and the lasting counters
                                 (L{spooldir})
    DIR/<first id>.spool         segments, framed records (L{segments})

* A record is written with write(2) the moment it is appended, so it
  survives the agent being killed; segments and the state file are
  fsync(2)ed at most once a second and whenever a segment is closed, so a
  power loss costs at most the last second.
* A killed agent's records are replayed by the next run: they keep their
  own epoch and seq (the hub stores each ``(agent_id, epoch, seq)`` once).
  Records a hub acknowledged after the last state write are sent again;
  the hub's dedupe absorbs them.
* Memory holds an index only (id, kind, ts, segment, offset, length): at
  most C{max_bytes} / 32 entries.  Payloads are read back to be sent again.

Without a directory the same class keeps the frames in memory, within the
same bound (default L{MEMORY_MAX_BYTES}); they are lost if the agent dies.

The bound, C{max_bytes}, is on the octets of all segments (framing and
frames already done included): it holds after every append (while a
segment is being compacted, its kept frames exist twice for a moment).
When a record does not fit:

1. the oldest segment holding a report loses all its reports; its alerts
   are kept, rewritten into a new segment (merged with the segment before
   it if both fit in one).  Repeat while needed;
2. only when no report is left, the oldest segment's alerts go.

So the oldest reports go first, in segment units (an eighth of the spool
at most, L{SEGMENT_BYTES} at most), and no alert goes while a report is
left.  A segment whose records are all done is deleted at once.  A record
larger than the whole bound is not kept (counted as dropped).

Counters (L{DeliveryStats}): C{reports_dropped}, C{alerts_dropped} and
C{corrupt} last across restarts in the state file; C{replayed} and
C{acked} count this run.  A damaged record (bad magic, length or CRC, a
write cut short) is skipped up to the next good one and counted in
C{corrupt}; the rest of the spool is kept.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.logger import Logger

from loopy.agent import spooldir
from loopy.agent.segments import (
    ALERT,
    KIND_NAMES,
    RECORD_TYPES,
    REPORT,
    Entry,
    Segment,
    frame,
    kind_of,
    payload_of,
    scan,
    segment_files,
    segment_name,
    write_segment,
)
from loopy.errors import SpoolError, WireError
from loopy.model import DeliveryStats
from loopy.wire import decode_record, encode_record

log = Logger()

MIB = 1024 * 1024
#: Default bound of a spool directory (``--spool-size``).
DISK_MAX_BYTES = 256 * MIB
#: Default bound without a directory: a quarter of a typical agent's RSS
#: again; about 4 hours of 1 s reports of 4 KiB (compressed).
MEMORY_MAX_BYTES = 64 * MIB
#: Largest segment (a single larger record gets a segment of its own).
SEGMENT_BYTES = 4 * MIB
#: Seconds between fsyncs at most.
SYNC_INTERVAL = 1.0


class Spool:
    """
    Records waiting for a hub's acknowledgement, in id order, within a
    byte bound (this module's docstring).

    :ivar directory: the spool directory, or None for memory.
    :ivar max_bytes: the bound on the segments' octets.
    :ivar reports_dropped: reports dropped at the bound, cumulative.
    :ivar alerts_dropped: alert revisions dropped at the bound, cumulative.
    :ivar corrupt: damaged records skipped, cumulative.
    :ivar replayed: sends of a record sent before (or left by a previous
        run), this run.
    :ivar acked: records acknowledged, this run.
    :ivar disk_bytes: octets of all segments now.
    """

    def __init__(self, directory: Optional[str], clock, max_bytes: Optional[int] = None,
                 *, segment_bytes: Optional[int] = None,
                 sync_interval: float = SYNC_INTERVAL):
        """
        :param directory: where to keep the segments, or None for memory.
        :param clock: IReactorTime, for the fsync timer.
        :param max_bytes: the bound [default: L{DISK_MAX_BYTES} with a
            directory, L{MEMORY_MAX_BYTES} without].
        :param segment_bytes: segment size [default: L{SEGMENT_BYTES}, or
            an eighth of the bound if smaller].
        :raises ValueError: for a bound under 1 KiB.
        """
        if max_bytes is None:
            max_bytes = DISK_MAX_BYTES if directory is not None else MEMORY_MAX_BYTES
        if max_bytes < 1024:
            raise ValueError(f"a spool of {max_bytes} octets is too small (1 KiB at least)")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(SEGMENT_BYTES, max_bytes // 8)
        self._clock = clock
        self._sync_interval = sync_interval
        self._segments: list[Segment] = []
        self._active: Optional[Segment] = None
        self._pending: dict[int, Entry] = {}
        self._waiting = {REPORT: 0, ALERT: 0}
        self.pending_bytes = 0
        self.disk_bytes = 0
        self.next_id = 1
        self.reports_dropped = self.alerts_dropped = self.corrupt = 0
        self.replayed = self.acked = 0
        self._lock_fd: Optional[int] = None
        self._open = False
        self._sync_call = None
        self._last_sync = float("-inf")
        self._state_dirty = self._dir_dirty = False

    # Life.

    def open(self) -> None:
        """
        Take the directory's lock and index what a previous run left.

        :raises SpoolError: if the directory cannot be made or written, or
            another agent holds its lock.
        """
        if self._open:
            return
        if self.directory is not None:
            self._lock_fd = spooldir.lock(self.directory)
            state = spooldir.read_state(self.directory)
            try:
                self._restore(state)
            except OSError as e:
                self._unlock()
                raise SpoolError(f"cannot read the spool in {self.directory}: {e}") from None
            if self._pending:
                log.info("spool {directory}: {records} records ({bytes} octets) left "
                         "by a previous run, to be sent again", directory=self.directory,
                         records=len(self._pending), bytes=self.pending_bytes)
        self._open = True
        self._make_room(0)

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # releases the flock

    def close(self) -> None:
        """
        Write and fsync what is pending, close the files, release the lock.
        What is left waits for the next run (on disk) or is lost (memory).
        """
        if not self._open:
            return
        if self._sync_call is not None and self._sync_call.active():
            self._sync_call.cancel()
        self.sync()
        self._open = False
        for segment in self._segments:
            segment.close()
        self._unlock()

    # What a previous run left.

    def _restore(self, state: dict) -> None:
        """
        Index the segments left in the directory: skip what the state says
        is done, damaged frames (counted) and duplicates (a compaction cut
        short leaves two copies).
        """
        self.next_id = max(1, state.get("next_id", 1))
        for key in spooldir.COUNTERS:
            setattr(self, key, state.get(key, 0))
        done = spooldir.done_test(state)
        spooldir.remove_leftovers(self.directory)
        damaged_segments = []
        for first_id, path in segment_files(self.directory):
            segment = Segment(first_id, path)
            data = segment.read_all()
            segment.size = len(data)
            frames, damaged = scan(data)
            if damaged:
                log.warn("spool segment {path}: {count} damaged regions skipped",
                         path=path, count=damaged)
            self.corrupt += damaged
            if damaged:
                damaged_segments.append(segment)
            for found in frames:
                self.next_id = max(self.next_id, found.record_id + 1)
                if found.record_id in self._pending or done(found.record_id):
                    continue
                entry = Entry(found.record_id, found.kind, found.ts, segment, found.offset,
                              found.length, sends=1)
                self._pending[found.record_id] = entry
                self._count_in(entry)
            if segment.waiting:
                self._segments.append(segment)
                self.disk_bytes += segment.size
            else:
                segment.remove()
        self._pending = {e.record_id: e for e in sorted(self._pending.values(),
                                                        key=lambda e: e.record_id)}
        for segment in damaged_segments:
            if segment in self._segments:
                # Rewritten without the damage, so it is counted once.
                self._compact(segment)
        self._state_dirty = True

    # Records.

    def append(self, record: Any) -> Optional[Entry]:
        """
        Keep C{record} (an L{AgentReport} or L{Alert}): written at once,
        making room by the drop rule if the bound needs it.

        :returns: its entry; None if it is larger than the whole bound (it
            is then counted as dropped).
        :raises WireError: if it cannot be encoded (too large for the wire).
        :raises SpoolError: if the spool is closed or the disk refuses the
            write (the record is not kept).
        """
        if not self._open:
            raise SpoolError("the spool is closed")
        kind = kind_of(record)
        ts = record.ts if kind == REPORT else record.updated
        payload = encode_record(record)
        record_id = self.next_id
        data = frame(kind, record_id, ts, payload)
        if len(data) > self.max_bytes:
            self._count_dropped(kind, 1)
            log.error("a {kind} of {size} octets is larger than the whole spool "
                      "({max} octets) and is not kept", kind=KIND_NAMES[kind],
                      size=len(data), max=self.max_bytes)
            return None
        try:
            self._make_room(len(data))
            segment = self._segment_for(record_id, len(data))
            offset = segment.append(data)
        except OSError as e:
            raise SpoolError(f"cannot write to the spool {self.directory}: {e}") from None
        self.next_id += 1
        self.disk_bytes += len(data)
        entry = Entry(record_id, kind, ts, segment, offset, len(data))
        self._pending[record_id] = entry
        self._count_in(entry)
        self._schedule_sync()
        return entry

    def _segment_for(self, record_id: int, size: int) -> Segment:
        active = self._active
        if active is not None and active.size and active.size + size > self.segment_bytes:
            active.sync()  # fsync a segment when it is closed
            active.close()
            active = None
        if active is None:
            path = None
            if self.directory is not None:
                path = os.path.join(self.directory, segment_name(record_id))
                self._dir_dirty = True
            active = self._active = Segment(record_id, path)
            self._segments.append(active)
        return active

    def _count_in(self, entry: Entry) -> None:
        entry.segment.pending[entry.kind] += 1
        entry.segment.pending_bytes += entry.length
        self._waiting[entry.kind] += 1
        self.pending_bytes += entry.length

    def _release(self, entry: Entry) -> None:
        """
        Forget a record that is done (acknowledged, dropped, damaged);
        delete its segment if nothing in it waits any more.
        """
        del self._pending[entry.record_id]
        segment = entry.segment
        segment.pending[entry.kind] -= 1
        segment.pending_bytes -= entry.length
        self._waiting[entry.kind] -= 1
        self.pending_bytes -= entry.length
        self._state_dirty = True
        if not segment.waiting:
            self._drop_segment(segment)
        self._schedule_sync()

    def _drop_segment(self, segment: Segment) -> None:
        self._segments.remove(segment)
        self.disk_bytes -= segment.size
        if segment is self._active:
            self._active = None
        segment.remove()
        self._dir_dirty = True

    def __contains__(self, record_id: int) -> bool:
        return record_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def pending_ids(self) -> list[int]:
        """
        The ids of the records waiting, oldest first.
        """
        return list(self._pending)

    def entry(self, record_id: int) -> Optional[Entry]:
        return self._pending.get(record_id)

    def read(self, record_id: int) -> Optional[Any]:
        """
        Read a waiting record back.

        :returns: the L{AgentReport} or L{Alert}; None if it is not waiting,
            or is damaged (then it is counted in C{corrupt} and forgotten).
        """
        entry = self._pending.get(record_id)
        if entry is None:
            return None
        try:
            payload = payload_of(entry.segment.read(entry.offset, entry.length))
            if payload is None:
                raise WireError("bad framing or CRC")
            return decode_record(payload, RECORD_TYPES[entry.kind])
        except (OSError, WireError) as e:
            log.error("spool record {id} is damaged and skipped: {error}",
                      id=record_id, error=e)
            self.corrupt += 1
            self._release(entry)
            return None

    def sent(self, record_id: int) -> None:
        """
        Note that a record was handed to a link; a second send (or the
        first of a record left by a previous run) counts in C{replayed}.
        """
        entry = self._pending.get(record_id)
        if entry is not None:
            if entry.sends:
                self.replayed += 1
            entry.sends += 1

    def ack(self, record_id: int) -> bool:
        """
        A hub acknowledged a durable write of the record: forget it.

        :returns: whether it was still waiting (not dropped meanwhile).
        """
        entry = self._pending.get(record_id)
        if entry is None:
            return False
        self.acked += 1
        self._release(entry)
        return True

    def forget(self, record_id: int) -> None:
        """
        Forget a record no hub will take (the uplink counts and logs it).
        """
        entry = self._pending.get(record_id)
        if entry is not None:
            self._release(entry)

    def lost(self, record: Any) -> None:
        """
        Count a record that could not be kept (the disk refused it) and was
        not delivered either, as dropped.
        """
        self._count_dropped(kind_of(record), 1)

    def _count_dropped(self, kind: int, count: int) -> None:
        if kind == REPORT:
            self.reports_dropped += count
        else:
            self.alerts_dropped += count
        self._state_dirty = True

    # The bound.

    def _make_room(self, size: int) -> None:
        """
        Drop records by the rule of this module's docstring until C{size}
        more octets fit under the bound.

        :raises OSError: if a compaction cannot be written.
        """
        while self._segments and self.disk_bytes + size > self.max_bytes:
            kind = REPORT if self._waiting[REPORT] else ALERT
            segment = next(s for s in self._segments if s.pending[kind])
            victims = [e for e in self._pending.values()
                       if e.segment is segment and e.kind == kind]
            for entry in victims:
                del self._pending[entry.record_id]
                segment.pending[kind] -= 1
                segment.pending_bytes -= entry.length
                self.pending_bytes -= entry.length
            self._waiting[kind] -= len(victims)
            self._count_dropped(kind, len(victims))
            log.warn("spool full ({max} octets): dropped the {count} oldest {kind}s, "
                     "ids {first} to {last}", max=self.max_bytes, count=len(victims),
                     kind=KIND_NAMES[kind], first=victims[0].record_id,
                     last=victims[-1].record_id)
            if segment.waiting:
                self._compact(segment)
            else:
                self._drop_segment(segment)
            self._schedule_sync()

    def _compact(self, segment: Segment) -> None:
        """
        Rewrite C{segment} with its waiting frames alone, merged with the
        segment before it when both fit in one segment.
        """
        index = self._segments.index(segment)
        olds = [segment]
        if index:
            before = self._segments[index - 1]
            if (before is not self._active
                    and before.pending_bytes + segment.pending_bytes <= self.segment_bytes):
                olds.insert(0, before)
        kept = [e for e in self._pending.values() if e.segment in olds]
        data = bytearray()
        offsets = []
        for entry in kept:
            offsets.append(len(data))
            data += entry.segment.read(entry.offset, entry.length)
        new = write_segment(self.directory, kept[0].record_id, bytes(data))
        for entry, offset in zip(kept, offsets):
            entry.segment, entry.offset = new, offset
            new.pending[entry.kind] += 1
            new.pending_bytes += entry.length
        at = self._segments.index(olds[0])
        for old in olds:
            self._segments.remove(old)
            self.disk_bytes -= old.size
            if old is self._active:
                self._active = None
            if old.path is not None and old.path == new.path:
                old.close()
            else:
                old.remove()
        self._segments.insert(at, new)
        self.disk_bytes += new.size
        self._dir_dirty = True

    # Durability.

    def _schedule_sync(self) -> None:
        if self.directory is None or not self._open:
            return
        if self._sync_call is not None and self._sync_call.active():
            return
        delay = max(0.0, self._last_sync + self._sync_interval - self._clock.seconds())
        self._sync_call = self._clock.callLater(delay, self.sync)

    def sync(self) -> None:
        """
        fsync(2) the segments written since the last sync, write the state
        file if it changed, and fsync the directory if files came or went.
        Errors are logged, not raised (the records stay written).
        """
        self._sync_call = None
        if self.directory is None:
            return
        self._last_sync = self._clock.seconds()
        try:
            for segment in self._segments:
                segment.sync()
            if self._state_dirty:
                self._state_dirty = False
                spooldir.write_state(self.directory, spooldir.make_state(
                    self._pending, self.next_id,
                    {key: getattr(self, key) for key in spooldir.COUNTERS}))
                self._dir_dirty = True
            if self._dir_dirty:
                self._dir_dirty = False
                spooldir.sync_directory(self.directory)
        except OSError as e:
            log.error("cannot sync the spool {directory}: {error}",
                      directory=self.directory, error=e)

    # What the reports show.

    def stats(self) -> DeliveryStats:
        """
        The spool's counters now, as every report carries them.
        """
        oldest = next(iter(self._pending.values()), None)
        return DeliveryStats(
            spool_records=len(self._pending),
            spool_bytes=self.pending_bytes,
            spool_max_bytes=self.max_bytes,
            spool_on_disk=self.directory is not None,
            oldest_ts=oldest.ts if oldest is not None else None,
            reports_dropped=self.reports_dropped,
            alerts_dropped=self.alerts_dropped,
            corrupt=self.corrupt,
            replayed=self.replayed,
            acked=self.acked,
        )

