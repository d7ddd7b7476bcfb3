# -*- test-case-name: tests.test_spool -*-
"""
The spool's records and segment files (L{loopy.agent.spool}).

A record is one frame, big-endian (Python L{struct}):

======  ====  ==============================================================
offset  size  field
======  ====  ==============================================================
0       4     magic, ``b"LSPL"``
4       1     version, 1
5       1     kind: 1 a report (L{AgentReport}), 2 an alert revision
              (L{Alert})
6       2     reserved, 0
8       4     payload length in octets
12      8     record id (unsigned; grows across agent restarts)
20      8     ts: the record's agent clock, seconds since the Unix epoch
              (IEEE 754 double; a report's C{ts}, an alert's C{updated})
28      4     CRC-32 (C{zlib.crc32}, the ISO-HDLC CRC of RFC 1952) of
              octets 0-27 and of the payload
32      n     payload: L{loopy.wire.encode_record} of the record
======  ====  ==============================================================

A segment holds frames back to back.  On disk it is the file
``<first id, 20 digits>.spool``; without a directory it is a byte array in
memory, with the same framing, so both count octets alike.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Any, Iterator, NamedTuple, Optional

from loopy.model import AgentReport, Alert
from loopy.wire import MAX_RECORD_BYTES

MAGIC = b"LSPL"
VERSION = 1
REPORT, ALERT = 1, 2
KIND_NAMES = {REPORT: "report", ALERT: "alert"}
RECORD_TYPES = {REPORT: AgentReport, ALERT: Alert}
HEADER = struct.Struct(">4sBBHIQd")
CRC = struct.Struct(">I")
#: Octets of framing per record.
FRAME_OVERHEAD = HEADER.size + CRC.size
#: Largest payload a frame may declare: a record's JSON bound (compression
#: never grows it by more than zlib's few octets per 16 KiB block).
MAX_PAYLOAD = MAX_RECORD_BYTES + MAX_RECORD_BYTES // 1000 + 64
SUFFIX = ".spool"


def frame(kind: int, record_id: int, ts: float, payload: bytes) -> bytes:
    """
    One record's frame (this module's docstring).

    :param kind: L{REPORT} or L{ALERT}.
    :param record_id: 0 to 2**64 - 1.
    :param ts: seconds since the Unix epoch.
    :param payload: the encoded record, at most L{MAX_PAYLOAD} octets.
    :raises ValueError: for a payload past L{MAX_PAYLOAD}.
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} octets exceeds {MAX_PAYLOAD}")
    header = HEADER.pack(MAGIC, VERSION, kind, 0, len(payload), record_id, ts)
    return header + CRC.pack(zlib.crc32(payload, zlib.crc32(header))) + payload


class Frame(NamedTuple):
    """
    A good frame found by L{scan}: C{offset} and C{length} (framing
    included) within the segment.
    """

    offset: int
    length: int
    kind: int
    record_id: int
    ts: float


def scan(data: bytes) -> tuple[list[Frame], int]:
    """
    The good frames of a segment's bytes, and how many damaged regions lay
    between them: a frame with a bad magic, version, kind, length or CRC,
    or cut short (a write the agent was killed in), is skipped up to the
    next magic that starts a good frame; a run of bad bytes counts once.

    :returns: (frames in file order, damaged regions).
    """
    frames: list[Frame] = []
    damaged = 0
    good = True
    position = 0
    end = len(data)
    while position < end:
        found = _frame_at(data, position)
        if found is not None:
            frames.append(found)
            position += found.length
            good = True
            continue
        if good:
            damaged += 1
            good = False
        position = data.find(MAGIC, position + 1)
        if position < 0:
            break
    return frames, damaged


def _frame_at(data: bytes, position: int) -> Optional[Frame]:
    if len(data) - position < FRAME_OVERHEAD:
        return None
    magic, version, kind, _reserved, length, record_id, ts = HEADER.unpack_from(
        data, position)
    if magic != MAGIC or version != VERSION or kind not in KIND_NAMES or length > MAX_PAYLOAD:
        return None
    start = position + FRAME_OVERHEAD
    if start + length > len(data):
        return None
    (crc,) = CRC.unpack_from(data, position + HEADER.size)
    header_crc = zlib.crc32(memoryview(data)[position:position + HEADER.size])
    if zlib.crc32(memoryview(data)[start:start + length], header_crc) != crc:
        return None
    return Frame(position, FRAME_OVERHEAD + length, kind, record_id, ts)


def payload_of(data: bytes) -> Optional[bytes]:
    """
    The payload of one whole frame, or None if its framing or CRC is bad.
    """
    found = _frame_at(data, 0)
    if found is None or found.length != len(data):
        return None
    return bytes(data[FRAME_OVERHEAD:])


class Entry:
    """
    The index entry of one record waiting in the spool.

    :ivar sends: times it was handed to a link in this run (a record a
        previous run left counts as sent once already).
    """

    __slots__ = ("record_id", "kind", "ts", "segment", "offset", "length", "sends")

    def __init__(self, record_id: int, kind: int, ts: float, segment: Segment,
                 offset: int, length: int, sends: int = 0):
        self.record_id = record_id
        self.kind = kind
        self.ts = ts
        self.segment = segment
        self.offset = offset
        self.length = length
        self.sends = sends


def kind_of(record: Any) -> int:
    """
    L{REPORT} for an L{AgentReport}, L{ALERT} for an L{Alert}.

    :raises TypeError: for anything else.
    """
    if isinstance(record, AgentReport):
        return REPORT
    if isinstance(record, Alert):
        return ALERT
    raise TypeError(f"cannot spool a {type(record).__name__}")


def segment_name(first_id: int) -> str:
    return f"{first_id:020d}{SUFFIX}"


def segment_files(directory: str) -> Iterator[tuple[int, str]]:
    """
    The segment files of a spool directory, as (first id, path), in id order;
    files of other names are left alone.
    """
    found = []
    for name in os.listdir(directory):
        stem = name[:-len(SUFFIX)]
        if name.endswith(SUFFIX) and stem.isdigit():
            found.append((int(stem), os.path.join(directory, name)))
    return iter(sorted(found))


class Segment:
    """
    One segment: frames appended at its end, read back by offset.

    :ivar first_id: the id in its name (its first record's when made).
    :ivar path: its file, or None in memory.
    :ivar size: octets in it, dead frames included.
    :ivar pending: frames in it still waiting, by kind.
    :ivar pending_bytes: octets of those frames.
    """

    def __init__(self, first_id: int, path: Optional[str], size: int = 0):
        self.first_id = first_id
        self.path = path
        self.size = size
        self.pending = {REPORT: 0, ALERT: 0}
        self.pending_bytes = 0
        self.unsynced = False
        self._fd: Optional[int] = None
        self._data = bytearray() if path is None else None

    @property
    def waiting(self) -> int:
        return self.pending[REPORT] + self.pending[ALERT]

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                               0o600)
        return self._fd

    def append(self, data: bytes) -> int:
        """
        Write C{data} at the end at once (write(2): it survives the agent
        being killed, not a power loss before L{sync}).

        :returns: its offset.
        :raises OSError: if the disk refuses (ENOSPC, EIO …); a partial write
            is cut off again.
        """
        offset = self.size
        if self._data is not None:
            self._data += data
        else:
            fd = self._open()
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                try:
                    os.ftruncate(fd, offset)
                except OSError:
                    pass
                raise
            self.unsynced = True
        self.size += len(data)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        """
        :raises OSError: if the file cannot be read.
        """
        if self._data is not None:
            return bytes(self._data[offset:offset + length])
        return os.pread(self._open(), length, offset)

    def read_all(self) -> bytes:
        if self._data is not None:
            return bytes(self._data)
        with open(self.path, "rb") as f:
            return f.read()

    def sync(self) -> None:
        """
        fsync(2) what was written (nothing in memory).
        """
        if self.unsynced and self._fd is not None:
            os.fsync(self._fd)
        self.unsynced = False

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def remove(self) -> None:
        """
        Close and delete the file (a missing one is no error).
        """
        self.close()
        self._data = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def write_segment(directory: Optional[str], first_id: int, data: bytes) -> Segment:
    """
    A new segment holding C{data}, written whole: on disk to a temporary
    file, fsynced, then renamed to its name (rename(2) replaces a file of
    that name atomically).

    :raises OSError: if the disk refuses.
    """
    if directory is None:
        segment = Segment(first_id, None)
        segment.append(data)
        return segment
    path = os.path.join(directory, segment_name(first_id))
    temporary = path + ".new"
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return Segment(first_id, path, size=len(data))
