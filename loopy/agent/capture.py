# -*- test-case-name: tests.test_capture -*-
"""
Live capture: one non-blocking ``AF_PACKET``/``SOCK_RAW`` socket per
interface (packet(7)), each a reactor reader that drains a bounded batch of
frames per wake-up.

Each socket is created listening to no protocol, gets its BPF filter, and
only then is bound to ``ETH_P_ALL`` on its interface, so no unfiltered frame
is ever queued.  Kernel timestamps come from ``SO_TIMESTAMPNS``; kernel drops
from ``PACKET_STATISTICS`` (which resets on every read, so it is summed here).
On loopback every frame is seen twice by a packet socket (once outgoing, once
incoming); the outgoing copy is skipped, as libpcap does.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Callable, Optional

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from loopy.dissect import bpf
from loopy.dissect.headers import LINKTYPE_ETHERNET, LINKTYPE_RAW
from loopy.errors import CaptureError
from loopy.model import InterfaceStats

log = Logger()

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
MSG_TRUNC = 0x20

#: ARPHRD_* (linux/if_arp.h) to the link type the frames start with.
ARPHRD_LINKTYPES = {
    1: LINKTYPE_ETHERNET,  # ARPHRD_ETHER
    772: LINKTYPE_ETHERNET,  # ARPHRD_LOOPBACK
    768: LINKTYPE_RAW,  # ARPHRD_TUNNEL (ipip)
    769: LINKTYPE_RAW,  # ARPHRD_TUNNEL6
    776: LINKTYPE_RAW,  # ARPHRD_SIT
    778: LINKTYPE_RAW,  # ARPHRD_IPGRE
    65534: LINKTYPE_RAW,  # ARPHRD_NONE (tun, wireguard)
}

_TIMESPEC = struct.Struct("qq")
_STATS = struct.Struct("II")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)

#: Receives each frame: (frame bytes, ts seconds, ifindex, outgoing, linktype).
FrameSink = Callable[[bytes, float, int, bool, int], None]


def interface_type(name: str) -> int:
    """
    The ARPHRD type of an interface, from ``/sys/class/net/NAME/type``.

    :raises CaptureError: if there is no such interface.
    """
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        raise CaptureError(f"no network interface named {name!r}") from None


def list_interfaces() -> list[str]:
    """
    Names of the interfaces that exist now, in index order.
    """
    return [name for _index, name in sorted(socket.if_nameindex())]


@implementer(IReadDescriptor)
class PacketSocket:
    """
    A capture socket on one interface, registered with the reactor.

    :ivar source: how frames are read (see L{InterfaceStats.source}).
    """

    source = "socket"

    def __init__(
        self,
        interface: str,
        sink: FrameSink,
        filter_expression: Optional[str] = None,
        promisc: bool = False,
        batch: int = 256,
        snaplen: int = 262144,
        rcvbuf: int = 8 * 1024 * 1024,
    ):
        """
        :param interface: interface name.
        :param sink: called once per frame.
        :param filter_expression: pcap-filter(7) expression, or None.
        :param promisc: put the interface in promiscuous mode while open.
        :param batch: most frames read per reactor wake-up.
        :param snaplen: octets kept of each frame (tcpdump's default).
        :param rcvbuf: socket receive buffer in octets (``SO_RCVBUFFORCE``).
        """
        self.interface = interface
        self._sink = sink
        self._filter = filter_expression
        self._promisc = promisc
        self._batch = batch
        self.snaplen = snaplen
        self._buffer = bytearray()
        self._view = memoryview(self._buffer)
        self._rcvbuf = rcvbuf
        self.sock: Optional[socket.socket] = None
        self.ifindex = 0
        self.linktype = LINKTYPE_ETHERNET
        self.loopback = False
        self.frames = self.bytes = self.kernel_drops = 0
        self.truncated = 0
        self.batches = self.full_batches = 0

    def open(self) -> None:
        """
        Open, filter and bind the socket.

        :raises CaptureError: with what to do, when the interface does not
            exist, its link type is unsupported, privilege is missing or the
            filter does not compile.
        """
        hatype = interface_type(self.interface)
        linktype = ARPHRD_LINKTYPES.get(hatype)
        if linktype is None:
            raise CaptureError(
                f"interface {self.interface} has link type {hatype}, "
                "which Loopy cannot decode"
            )
        try:
            self.ifindex = socket.if_nametoindex(self.interface)
        except OSError:
            raise CaptureError(f"no network interface named {self.interface!r}") from None
        self.linktype = linktype
        self.loopback = hatype == 772
        program = (
            bpf.compile_filter(self._filter, linktype, snaplen=self._filter_snaplen())
            if self._filter else None
        )
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureError(
                "capturing packets needs root or the CAP_NET_RAW capability: "
                "run the agent as root (it can drop to --uid/--gid after start)"
            ) from None
        try:
            if program is not None:
                bpf.attach(sock, program)
            self._prepare(sock)
            sock.bind((self.interface, ETH_P_ALL))
            if self._promisc:
                mreq = struct.pack("IHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            sock.setblocking(False)
        except OSError as e:
            self._unprepare()
            sock.close()
            raise CaptureError(f"cannot capture on {self.interface}: {e}") from None
        except BaseException:
            self._unprepare()
            sock.close()
            raise
        self.sock = sock

    def _filter_snaplen(self) -> int:
        """
        Octets the kernel filter keeps of a frame: one more than the read
        buffer, so that C{recvmsg} flags a longer frame with C{MSG_TRUNC}
        (counted in C{truncated}) instead of the filter cutting it unseen.
        """
        return self.snaplen + 1

    def _prepare(self, sock: socket.socket) -> None:
        """
        Set the socket up for reading, after its filter and before its bind:
        here a large receive queue and kernel timestamps.

        :raises OSError: if the kernel refuses.
        """
        self._buffer = bytearray(self.snaplen)
        self._view = memoryview(self._buffer)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self._rcvbuf)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _unprepare(self) -> None:
        """
        Undo what L{_prepare} set up beside the socket itself.
        """

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def logPrefix(self) -> str:
        return f"capture:{self.interface}"

    def doRead(self):
        """
        Read up to C{batch} frames and hand each to the sink.
        """
        sock = self.sock
        if sock is None:
            return
        recv = sock.recvmsg_into
        buffers = [self._buffer]
        view = self._view
        sink = self._sink
        ifindex, linktype, loopback = self.ifindex, self.linktype, self.loopback
        unpack_ts = _TIMESPEC.unpack_from
        count = 0
        for count in range(1, self._batch + 1):
            try:
                n, ancillary, flags, address = recv(buffers, _ANCILLARY)
            except BlockingIOError:
                count -= 1
                break
            except OSError as e:
                log.warn("capture on {interface} failed: {error}",
                         interface=self.interface, error=e)
                count -= 1
                break
            outgoing = address[2] == PACKET_OUTGOING
            if outgoing and loopback:
                continue
            if flags & MSG_TRUNC:
                self.truncated += 1
            ts = 0.0
            for _level, _type, data in ancillary:
                sec, nsec = unpack_ts(data)
                ts = sec + nsec * 1e-9
            self.frames += 1
            self.bytes += n
            sink(bytes(view[:n]), ts, ifindex, outgoing, linktype)
        else:
            self.full_batches += 1
        if count:
            self.batches += 1

    #: The layout of ``PACKET_STATISTICS`` for this socket's kind
    #: (``struct tpacket_stats``: packets, drops).
    _kernel_stats = _STATS

    def poll_kernel_stats(self) -> None:
        """
        Add the kernel's counters since the last poll (the kernel resets
        them on each read) to this socket's.
        """
        if self.sock is None:
            return
        layout = self._kernel_stats
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, layout.size)
        except OSError as e:
            log.warn("cannot read the kernel's counters for {interface}: {error}",
                     interface=self.interface, error=e)
            return
        self._add_kernel_stats(*layout.unpack(raw))

    def _add_kernel_stats(self, _packets: int, drops: int) -> None:
        self.kernel_drops += drops

    def stats(self) -> InterfaceStats:
        return InterfaceStats(
            name=self.interface, frames=self.frames, bytes=self.bytes,
            kernel_drops=self.kernel_drops, truncated=self.truncated,
            source=self.source,
        )

    def connectionLost(self, reason) -> None:
        self.close()

    def close(self) -> None:
        self._unprepare()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def is_root() -> bool:
    """
    Whether this process runs as root (capture needs root or CAP_NET_RAW).
    """
    return os.geteuid() == 0
