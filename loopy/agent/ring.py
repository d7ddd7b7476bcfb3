# -*- test-case-name: tests.test_capture -*-
"""
Live capture through a ``PACKET_RX_RING`` of version ``TPACKET_V3``: the
kernel writes frames into a ring of blocks shared with this process by
``mmap``, and wakes the reader once per block, not once per frame.

The layout read here is the kernel's (``linux/if_packet.h``; the kernel
document ``Documentation/networking/packet_mmap.rst``):

- the ring is C{block_nr} blocks of C{block_size} octets;
- a block starts with ``struct tpacket_block_desc``: ``version``,
  ``offset_to_priv``, then ``tpacket_hdr_v1``: ``block_status`` (offset 8),
  ``num_pkts`` (12), ``offset_to_first_pkt`` (16), ``blk_len``, ``seq_num``,
  and the first and last frames' timestamps;
- a frame starts with ``struct tpacket3_hdr`` (48 octets):
  ``tp_next_offset``, ``tp_sec``, ``tp_nsec``, ``tp_snaplen``, ``tp_len``,
  ``tp_status``, ``tp_mac``, ``tp_net``, then ``tp_rxhash``,
  ``tp_vlan_tci``, ``tp_vlan_tpid``; a ``struct sockaddr_ll`` follows it
  (``sll_pkttype`` at octet 10 of it), and the frame itself starts at
  ``tp_mac``.

A block belongs to this process while ``block_status`` has
``TP_STATUS_USER``; handing it back is writing ``TP_STATUS_KERNEL``.  The
kernel retires a partly filled block after C{block_timeout} milliseconds, so
at low rates a frame waits at most that long.

The kernel strips a VLAN tag it offloads into ``tp_vlan_tci``; it is put back
into the frame here (as libpcap does) so that VLAN counts stay right.
"""

from __future__ import annotations

import mmap
import socket
import struct

from twisted.logger import Logger

from loopy.agent.capture import PACKET_OUTGOING, SOL_PACKET, PacketSocket
from loopy.errors import CaptureError
from loopy.model import InterfaceStats

log = Logger()

PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6

#: ``struct tpacket_req3``: block size, block count, frame size, frame count,
#: block timeout (ms), private area size, feature word.
_REQ3 = struct.Struct("7I")
#: ``block_status``, ``num_pkts``, ``offset_to_first_pkt`` at octet 8.
_BLOCK = struct.Struct("III")
#: ``tpacket3_hdr`` up to ``tp_vlan_tpid``.
_FRAME = struct.Struct("IIIIIIHHIIH")
#: ``struct tpacket_stats_v3``: packets, drops, queue freezes.
_STATS_V3 = struct.Struct("III")
_BLOCK_STATUS = struct.Struct("I")
#: Offset of ``sll_pkttype``: after the 48-octet header (TPACKET_ALIGN'd),
#: 10 octets into ``struct sockaddr_ll``.
_PKTTYPE = 48 + 10
#: Frame size declared to the kernel; TPACKET_V3 packs frames of any size
#: into a block, so this only has to divide the block size.
_FRAME_SIZE = 2048
MIB = 1024 * 1024


class RingUnavailable(CaptureError):
    """
    The kernel would not set up a capture ring; batched reads still work.
    """


class RingSocket(PacketSocket):
    """
    A capture socket reading a TPACKET_V3 ring (same interface and counters
    as L{PacketSocket}, whose open, filter and bind it shares).

    :ivar ring_fill: the largest fraction (0 to 1) of the ring's blocks that
        were waiting for this process at a wake-up since the last
        L{take_ring_fill}: near 1, the kernel is about to drop.
    :ivar freezes: times the kernel found the ring full (``tp_freeze_q_cnt``).
    """

    source = "ring"

    def __init__(self, interface, sink, filter_expression=None, promisc=False,
                 batch=256, snaplen=262144, ring_size=16 * MIB,
                 block_size=MIB, block_timeout=100, blocks_per_read=4):
        """
        See L{PacketSocket.__init__}; and

        :param ring_size: octets of the ring; rounded down to whole blocks,
            at least two.
        :param block_size: octets of one block (a multiple of the page size;
            larger frames are truncated to it).
        :param block_timeout: milliseconds after which the kernel hands over
            a block that is not full.
        :param blocks_per_read: most blocks read per wake-up (a 1 MiB block
            holds thousands of small frames); C{batch} is not used.
        """
        PacketSocket.__init__(self, interface, sink, filter_expression, promisc,
                              batch, snaplen)
        page = mmap.PAGESIZE
        self.block_size = max(page, block_size // page * page)
        self.block_nr = max(2, ring_size // self.block_size)
        self.block_timeout = block_timeout
        self._blocks_per_read = blocks_per_read
        self._ring = None
        self._next = 0
        self.ring_fill = 0.0
        self.freezes = 0

    def _filter_snaplen(self) -> int:
        # The ring reports each frame's whole length (tp_len) beside what it kept.
        return self.snaplen

    def _prepare(self, sock: socket.socket) -> None:
        """
        Ask for TPACKET_V3, set up the ring and map it.

        :raises RingUnavailable: if the kernel refuses (an old kernel, or
            not enough memory for the ring).
        """
        request = _REQ3.pack(
            self.block_size, self.block_nr, _FRAME_SIZE,
            self.block_size // _FRAME_SIZE * self.block_nr,
            self.block_timeout, 0, 0,
        )
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
            self._ring = mmap.mmap(sock.fileno(), self.block_size * self.block_nr,
                                   mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            raise RingUnavailable(
                f"no TPACKET_V3 ring of {self.block_nr} x {self.block_size} octets "
                f"on {self.interface}: {e}") from None
        self._next = 0

    def _unprepare(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def doRead(self):
        """
        Hand every frame of each block the kernel has handed over (at most
        C{blocks_per_read} blocks) to the sink, and give the blocks back.
        """
        ring = self._ring
        if ring is None:
            return
        block_size, block_nr = self.block_size, self.block_nr
        waiting = self._waiting_blocks()
        if waiting / block_nr > self.ring_fill:
            self.ring_fill = waiting / block_nr
        if not waiting:
            return
        sink = self._sink
        ifindex, linktype, loopback = self.ifindex, self.linktype, self.loopback
        unpack_block, unpack_frame = _BLOCK.unpack_from, _FRAME.unpack_from
        release = _BLOCK_STATUS.pack_into
        frames = octets = truncated = 0
        blocks = 0
        for blocks in range(1, min(waiting, self._blocks_per_read) + 1):
            base = self._next * block_size
            _status, count, position = unpack_block(ring, base + 8)
            position += base
            for _ in range(count):
                (next_offset, sec, nsec, snaplen, length, status, mac, _net,
                 _rxhash, vlan_tci, vlan_tpid) = unpack_frame(ring, position)
                outgoing = ring[position + _PKTTYPE] == PACKET_OUTGOING
                if not (outgoing and loopback):
                    start = position + mac
                    frame = ring[start:start + snaplen]
                    if status & TP_STATUS_VLAN_VALID:
                        frame = _with_vlan(frame, vlan_tci, vlan_tpid, status)
                    frames += 1
                    octets += snaplen
                    if snaplen < length:
                        truncated += 1
                    sink(frame, sec + nsec * 1e-9, ifindex, outgoing, linktype)
                position += next_offset
            release(ring, base + 8, TP_STATUS_KERNEL)
            self._next = (self._next + 1) % block_nr
        self.frames += frames
        self.bytes += octets
        self.truncated += truncated
        self.batches += 1
        if blocks < waiting:
            self.full_batches += 1

    def _waiting_blocks(self) -> int:
        """
        How many blocks, from the next one on, the kernel has handed over.
        """
        ring, block_size, block_nr = self._ring, self.block_size, self.block_nr
        index = self._next
        waiting = 0
        while waiting < block_nr:
            base = ((index + waiting) % block_nr) * block_size
            if not ring[base + 8] & TP_STATUS_USER:
                break
            waiting += 1
        return waiting

    def take_ring_fill(self) -> float:
        """
        The peak ring fill since the last call, then start a new period.
        """
        fill, self.ring_fill = self.ring_fill, 0.0
        return round(fill, 4)

    _kernel_stats = _STATS_V3

    def _add_kernel_stats(self, _packets: int, drops: int, freezes: int) -> None:
        self.kernel_drops += drops
        self.freezes += freezes

    def stats(self) -> InterfaceStats:
        """
        This socket's counters, for a report: the ring fill is the peak
        since the previous call (L{take_ring_fill}), so call it once a report.
        """
        return InterfaceStats(
            name=self.interface, frames=self.frames, bytes=self.bytes,
            kernel_drops=self.kernel_drops, truncated=self.truncated,
            source=self.source, ring_fill=self.take_ring_fill(),
            ring_freezes=self.freezes,
        )


def _with_vlan(frame: bytes, tci: int, tpid: int, status: int) -> bytes:
    """
    C{frame} with the 802.1Q tag the kernel took out put back after the
    Ethernet addresses.
    """
    if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
        tpid = 0x8100
    return frame[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + frame[12:]
