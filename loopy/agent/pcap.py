# -*- test-case-name: tests.test_pcap -*-
"""
Offline capture: replay a pcap or pcapng file through the same pipeline as
live capture (L{loopy.agent.capture.FrameSink}), for forensics, tests and
benchmarks.

L{CaptureFile} is Loopy's own reader (C{struct} only; scapy is not in the
capture path) of

 - classic pcap, both byte orders, microsecond (magic ``0xa1b2c3d4``) and
   nanosecond (``0xa1b23c4d``) timestamps:
   https://www.tcpdump.org/manpages/pcap-savefile.5.html
 - pcapng: section header blocks of either byte order (several sections per
   file), interface description blocks with their link type and the
   ``if_tsresol``/``if_tsoffset`` options, enhanced and simple packet blocks
   (``epb_flags`` direction read); other blocks are skipped:
   https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/

Link types (https://www.tcpdump.org/linktypes.html): 1 Ethernet; 101, 12,
14, 228, 229 raw IP (delivered as L{LINKTYPE_RAW}); 113 Linux cooked (SLL:
its 16-octet header is stripped, ``sll_pkttype`` 4 means outgoing, IPv4 and
IPv6 delivered as L{LINKTYPE_RAW}).  Packets of any other link type or SLL
protocol are counted in C{unsupported} and not delivered.

A file that is not a capture at all raises L{CaptureError} when opened.
Damage further in (truncation, a length over L{MAX_RECORD} octets, a broken
block) ends the replay there: it is counted in C{damaged} and described in
C{damage}, and never raises.

The service that feeds these records to the monitor is
L{loopy.agent.service.PcapSource}, beside the live L{CaptureService}.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator, Optional

from twisted.logger import Logger

from loopy.dissect.headers import LINKTYPE_ETHERNET, LINKTYPE_RAW
from loopy.errors import CaptureError

log = Logger()

#: The longest packet record accepted, in octets; a longer one is damage.
MAX_RECORD = 256 * 1024
#: The longest pcapng block accepted, in octets (a packet plus its options).
MAX_BLOCK = MAX_RECORD + 64 * 1024

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
PCAPNG_IDB = 1
PCAPNG_SPB = 3
PCAPNG_EPB = 6

LINKTYPE_NULL_RAW = 12  # LINKTYPE_RAW as some BSDs number it (DLT_RAW)
LINKTYPE_RAW_14 = 14  # ditto
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

#: File link type to the link type the frames are delivered as.
LINKTYPES = {
    1: LINKTYPE_ETHERNET,
    101: LINKTYPE_RAW,
    LINKTYPE_NULL_RAW: LINKTYPE_RAW,
    LINKTYPE_RAW_14: LINKTYPE_RAW,
    LINKTYPE_IPV4: LINKTYPE_RAW,
    LINKTYPE_IPV6: LINKTYPE_RAW,
}

_SLL = struct.Struct("!HHH8sH")
_SLL_OUTGOING = 4
_SLL_IP = frozenset({0x0800, 0x86DD})
_CHUNK = 1 << 20

#: One record: (frame bytes, ts seconds since epoch, interface number,
#: outgoing, link type) — the arguments of a FrameSink.
Record = tuple[bytes, float, int, bool, int]


def sniff(path: str) -> str:
    """
    What kind of capture file C{path} is, from its first four octets.

    :returns: ``"pcap"`` or ``"pcapng"``.
    :raises CaptureError: if it cannot be read or is neither.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CaptureError(f"cannot read capture file {path}: {e.strerror}") from None
    if len(head) == 4:
        (big,) = struct.unpack(">I", head)
        (little,) = struct.unpack("<I", head)
        if big == PCAPNG_SHB:
            return "pcapng"
        if PCAP_MAGIC_US in (big, little) or PCAP_MAGIC_NS in (big, little):
            return "pcap"
    raise CaptureError(
        f"{path} is not a pcap or pcapng capture file (first octets {head.hex() or 'none'}); "
        "write one with tcpdump -w or Wireshark"
    )


class CaptureFile:
    """
    A capture file opened for reading, one pass.

    :ivar kind: ``"pcap"`` or ``"pcapng"``.
    :ivar frames: records delivered.
    :ivar bytes: octets of those records as captured.
    :ivar unsupported: records of a link type or SLL protocol Loopy does not
        decode (not delivered).
    :ivar damaged: 1 if reading stopped at damage, else 0.
    :ivar damage: what the damage was, or None.
    :ivar interfaces: pcapng interfaces seen, all sections together
        (classic pcap: one).  A record's interface number indexes this list.
    """

    def __init__(self, path: str):
        """
        :param path: the file.
        :raises CaptureError: if it is not a pcap/pcapng file, or its header
            is cut short.
        """
        self.path = path
        self.kind = sniff(path)
        self.frames = self.bytes = self.unsupported = self.damaged = 0
        self.damage: Optional[str] = None
        self.interfaces: list[int] = []
        self._file: Optional[BinaryIO] = open(path, "rb")
        self._buf = b""
        self._pos = 0
        if self.kind == "pcap":
            self._records = self._classic(self._header())
        else:
            if not self._need(12):
                raise CaptureError(f"{path} is cut short inside its pcapng section header")
            if self._buf[8:12] not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise CaptureError(
                    f"{path} has a pcapng section header with a bad byte-order magic")
            self._records = self._pcapng()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def _need(self, n: int) -> bool:
        """
        Make C{n} octets available at C{_pos}; False at the end of the file.
        """
        if len(self._buf) - self._pos >= n:
            return True
        if self._file is None:
            return False
        rest = self._buf[self._pos:]
        more = self._file.read(max(n - len(rest), _CHUNK))
        self._buf = rest + more
        self._pos = 0
        return len(self._buf) >= n

    def _stop(self, why: str) -> None:
        self.damaged = 1
        self.damage = why
        log.warn("capture file {path} is damaged after {frames} frames: {why}",
                 path=self.path, frames=self.frames, why=why)

    def _header(self) -> tuple[str, float, int]:
        if not self._need(24):
            raise CaptureError(f"{self.path} is cut short inside its pcap file header")
        magic_le = struct.unpack_from("<I", self._buf)[0]
        order = "<" if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic, _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(
            order + "IHHiIII", self._buf)
        self._pos = 24
        self.interfaces.append(network & 0x0FFFFFFF)  # upper bits: FCS length
        return order, (1e-9 if magic == PCAP_MAGIC_NS else 1e-6), network & 0x0FFFFFFF

    def _deliver(self, data: bytes, linktype: int):
        """
        The frame and link type to hand on, or None when unsupported.
        """
        delivered = LINKTYPES.get(linktype)
        if delivered is not None:
            return data, delivered, False
        if linktype == LINKTYPE_LINUX_SLL and len(data) >= _SLL.size:
            pkttype, _hatype, _alen, _addr, protocol = _SLL.unpack_from(data)
            if protocol in _SLL_IP:
                return data[_SLL.size:], LINKTYPE_RAW, pkttype == _SLL_OUTGOING
        self.unsupported += 1
        return None

    def _classic(self, header) -> Iterator[Record]:
        order, unit, linktype = header
        record = struct.Struct(order + "IIII")
        size = record.size
        fast = LINKTYPES.get(linktype)
        deliver = self._deliver
        while True:
            if not self._need(size):
                if len(self._buf) > self._pos:
                    self._stop("file ends inside a record header")
                return
            sec, frac, caplen, _origlen = record.unpack_from(self._buf, self._pos)
            if caplen > MAX_RECORD:
                self._stop(f"record of {caplen} octets (most accepted: {MAX_RECORD})")
                return
            if not self._need(size + caplen):
                self._stop("file ends inside a record")
                return
            start = self._pos + size
            data = self._buf[start:start + caplen]
            self._pos = start + caplen
            ts = sec + frac * unit
            if fast is not None:
                self.frames += 1
                self.bytes += caplen
                yield data, ts, 0, False, fast
                continue
            out = deliver(data, linktype)
            if out is not None:
                self.frames += 1
                self.bytes += caplen
                yield out[0], ts, 0, out[2], out[1]

    def _pcapng(self) -> Iterator[Record]:
        order = "<"
        # Per section: (link type, units per second, offset s, global number).
        section: list[tuple[int, int, int, int]] = []
        newest = 0.0
        first = True
        while True:
            if not self._need(12):
                if len(self._buf) > self._pos:
                    self._stop("file ends inside a block header")
                return
            buf, pos = self._buf, self._pos
            if buf[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                (bom,) = struct.unpack_from("<I", buf, pos + 8)
                if bom == PCAPNG_BOM:
                    order = "<"
                elif bom == 0x4D3C2B1A:
                    order = ">"
                else:
                    if first:
                        raise CaptureError(
                            f"{self.path} has a pcapng section header with a bad "
                            "byte-order magic")
                    self._stop("section header with a bad byte-order magic")
                    return
                section = []
            elif first:
                raise CaptureError(f"{self.path} does not start with a pcapng section header")
            first = False
            btype, length = struct.unpack_from(order + "II", buf, pos)
            if length < 12 or length % 4 or length > MAX_BLOCK:
                self._stop(f"block of type {btype:#x} with length {length}")
                return
            if not self._need(length):
                self._stop(f"file ends inside a block of type {btype:#x}")
                return
            buf, pos = self._buf, self._pos
            self._pos = pos + length
            (trailer,) = struct.unpack_from(order + "I", buf, pos + length - 4)
            if trailer != length:
                self._stop(f"block of type {btype:#x} has lengths {length} and {trailer}")
                return
            body = pos + 8
            end = pos + length - 4
            if btype == PCAPNG_EPB:
                if length < 32:
                    self._stop("enhanced packet block too short")
                    return
                iface, high, low, caplen, _origlen = struct.unpack_from(
                    order + "IIIII", buf, body)
                data_at = body + 20
                padded = (caplen + 3) & ~3
                if iface >= len(section) or caplen > MAX_RECORD or data_at + padded > end:
                    self._stop(f"enhanced packet block for interface {iface} "
                               f"with {caplen} octets does not fit")
                    return
                linktype, per_second, offset, number = section[iface]
                sec, frac = divmod((high << 32) | low, per_second)
                ts = offset + sec + frac / per_second
                newest = ts
                outgoing = False
                if data_at + padded < end:
                    outgoing = _epb_outgoing(buf, data_at + padded, end, order)
            elif btype == PCAPNG_SPB:
                if not section:
                    self._stop("simple packet block before any interface")
                    return
                (origlen,) = struct.unpack_from(order + "I", buf, body)
                data_at = body + 4
                caplen = min(origlen, end - data_at)
                linktype, _per_second, _offset, number = section[0]
                ts = newest  # simple packet blocks carry no time: the last one seen
                outgoing = False
            else:
                if btype == PCAPNG_IDB:
                    if length < 20:
                        self._stop("interface description block too short")
                        return
                    linktype, _reserved, _snaplen = struct.unpack_from(order + "HHI", buf, body)
                    per_second, offset = _idb_options(buf, body + 8, end, order)
                    section.append((linktype, per_second, offset, len(self.interfaces)))
                    self.interfaces.append(linktype)
                continue
            data = buf[data_at:data_at + caplen]
            delivered = LINKTYPES.get(linktype)
            if delivered is None:
                out = self._deliver(data, linktype)
                if out is None:
                    continue
                data, delivered, outgoing = out[0], out[1], outgoing or out[2]
            self.frames += 1
            self.bytes += caplen
            yield data, ts, number, outgoing, delivered


def _options(buf: bytes, at: int, end: int, order: str) -> Iterator[tuple[int, bytes]]:
    """
    The (code, value) options between C{at} and C{end}, up to opt_endofopt.
    """
    header = struct.Struct(order + "HH")
    while at + 4 <= end:
        code, length = header.unpack_from(buf, at)
        if code == 0:
            return
        at += 4
        if at + length > end:
            return
        yield code, buf[at:at + length]
        at += (length + 3) & ~3


def _idb_options(buf: bytes, at: int, end: int, order: str) -> tuple[int, int]:
    """
    An interface's timestamp units per second (``if_tsresol``, default 10^6)
    and offset in seconds (``if_tsoffset``, default 0).
    """
    per_second, offset = 10 ** 6, 0
    for code, value in _options(buf, at, end, order):
        if code == 9 and len(value) >= 1:
            exponent = value[0] & 0x7F
            if exponent <= 60:  # beyond that no real clock; keep the default
                per_second = 2 ** exponent if value[0] & 0x80 else 10 ** exponent
                per_second = max(per_second, 1)
        elif code == 14 and len(value) >= 8:
            (offset,) = struct.unpack(order + "q", value[:8])
    return per_second, offset


def _epb_outgoing(buf: bytes, at: int, end: int, order: str) -> bool:
    """
    Whether an enhanced packet block's ``epb_flags`` say outbound.
    """
    for code, value in _options(buf, at, end, order):
        if code == 2 and len(value) >= 4:
            return struct.unpack(order + "I", value[:4])[0] & 3 == 2
    return False
