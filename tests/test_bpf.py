# -*- test-case-name: tests.test_bpf -*-
"""
Tests for L{loopy.dissect.bpf}: filter text, compilation with libpcap, and
attaching programs to sockets.

The attach tests use kernel sockets that carry no network traffic: a packet
socket of protocol 0 (bound to nothing, it receives nothing) and a
C{AF_UNIX} datagram pair, on which the kernel runs a socket filter over each
datagram as if it were a frame.  That makes the kernel's own BPF interpreter
the ground truth for what a compiled program keeps.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from loopy.dissect.bpf import (
    SNAPLEN,
    attach,
    combine,
    compile_filter,
    exclude_endpoints,
)
from loopy.dissect.headers import LINKTYPE_ETHERNET, LINKTYPE_RAW
from loopy.errors import CaptureError, FilterError, LoopyError

SO_GET_FILTER = 26  # the same number as SO_ATTACH_FILTER (asm-generic/socket.h)
_INSN = struct.Struct("HBBI")  # struct sock_filter


def attached_program(sock: socket.socket) -> list:
    """
    Read back the classic BPF program attached to C{sock}
    (C{SO_GET_FILTER}, socket(7)), through libc: Python's C{getsockopt}
    counts its buffer in octets where the kernel counts instructions.

    :returns: the program as ``(code, jt, jf, k)`` tuples.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    count = ctypes.c_uint(0)
    if libc.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_GET_FILTER, None,
                       ctypes.byref(count)):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    buffer = ctypes.create_string_buffer(_INSN.size * count.value)
    if libc.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_GET_FILTER, buffer,
                       ctypes.byref(count)):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return [_INSN.unpack_from(buffer, i * _INSN.size) for i in range(count.value)]


def _ether(**fields) -> Ether:
    """
    Ethernet with both addresses given (scapy resolves none).
    """
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b", **fields)


class FilterTextTests(SynchronousTestCase):
    """
    L{exclude_endpoints} and L{combine}.
    """

    def test_noEndpoints(self):
        """
        No endpoints, no filter.
        """
        self.assertIsNone(exclude_endpoints([]))

    def test_oneEndpoint(self):
        """
        One endpoint: its TCP traffic either way is excluded.
        """
        self.assertEqual(exclude_endpoints([("192.0.2.10", 7400)]),
                         "not ((tcp and host 192.0.2.10 and port 7400))")

    def test_endpoints(self):
        """
        Several endpoints are or-ed; ports given as text become numbers.
        """
        self.assertEqual(
            exclude_endpoints([("192.0.2.10", "7400"), ("2001:db8::10", 7401)]),
            "not ((tcp and host 192.0.2.10 and port 7400) or "
            "(tcp and host 2001:db8::10 and port 7401))",
        )

    def test_badPort(self):
        """
        A port that is not a number is refused before libpcap sees it.
        """
        self.assertRaises(ValueError, exclude_endpoints, [("h", "http; rm")])

    def test_combine(self):
        """
        The expressions given are parenthesised and and-ed; None and empty
        ones are left out; none at all is None.
        """
        self.assertIsNone(combine())
        self.assertIsNone(combine(None, None, ""))
        self.assertEqual(combine("udp"), "(udp)")
        self.assertEqual(combine("udp or icmp", None, "not port 53"),
                         "(udp or icmp) and (not port 53)")


class CompileFilterTests(SynchronousTestCase):
    """
    L{compile_filter}: tcpdump expressions to classic BPF with libpcap.
    """

    def test_ethernet(self):
        """
        On Ethernet, ``ip`` is the program ``tcpdump -y EN10MB -dd ip``
        prints.
        """
        self.assertEqual(compile_filter("ip"), [
            (0x28, 0, 0, 12), (0x15, 0, 1, 0x0800), (0x06, 0, 0, 0x40000),
            (0x06, 0, 0, 0),
        ])

    def test_raw(self):
        """
        On raw IP links (LINKTYPE_RAW, DLT_RAW) the version nibble is tested
        instead, as ``tcpdump -y RAW -dd ip`` prints.
        """
        self.assertEqual(compile_filter("ip", LINKTYPE_RAW), [
            (0x30, 0, 0, 0), (0x54, 0, 0, 0xF0), (0x15, 0, 1, 0x40),
            (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0),
        ])

    def test_otherLinktype(self):
        """
        A link type without an entry in the DLT table goes to libpcap as it
        is: on Linux cooked captures (113) the protocol is at offset 14.
        """
        self.assertEqual(compile_filter("ip", 113)[:2],
                         [(0x28, 0, 0, 14), (0x15, 0, 1, 0x0800)])

    def test_acceptedFramesKeptWhole(self):
        """
        Every accepting return keeps L{SNAPLEN} octets, not the 65535 scapy
        compiles with; rejecting returns stay 0.
        """
        program = compile_filter("tcp and port 7400 or udp")
        returns = {insn[3] for insn in program if insn[0] == 0x06}
        self.assertEqual(returns, {0, SNAPLEN})
        self.assertEqual(SNAPLEN, 262144)
        returns = {insn[3] for insn in compile_filter("ip", snaplen=96)
                   if insn[0] == 0x06}
        self.assertEqual(returns, {0, 96})

    def test_syntaxError(self):
        """
        An expression libpcap cannot parse raises L{FilterError} with the
        expression and libpcap's message.
        """
        error = self.assertRaises(FilterError, compile_filter, "tcp port")
        self.assertIn("'tcp port'", str(error))
        self.assertIn("syntax error", str(error))

    def test_badValue(self):
        """
        libpcap's message names the bad value.
        """
        error = self.assertRaises(FilterError, compile_filter, "port 99999")
        self.assertIn("illegal port number 99999 > 65535", str(error))

    def test_notOnThisLink(self):
        """
        An expression that needs a header the link does not have: MAC
        addresses on a raw IP link.
        """
        error = self.assertRaises(FilterError, compile_filter,
                                  "ether host 02:00:00:00:00:01", LINKTYPE_RAW)
        self.assertIn("ethernet addresses supported only on", str(error))
        program = compile_filter("ether host 02:00:00:00:00:01", LINKTYPE_ETHERNET)
        self.assertEqual(program[:2], [(0x20, 0, 0, 8), (0x15, 0, 2, 0x00000001)])

    def test_unsignedOperands(self):
        """
        Operands are unsigned 32-bit numbers, as the kernel's
        C{struct sock_filter} has them: an IPv4 address from 128.0.0.0 up
        compares as itself, not as a negative number.
        """
        program = compile_filter("dst host 192.0.2.10")
        self.assertIn((0x15, 0, 1, 0xC000020A), program)
        for code, jt, jf, k in program:
            self.assertTrue(0 <= k <= 0xFFFFFFFF, (code, jt, jf, k))

    def test_errorHierarchy(self):
        """
        L{FilterError} is a capture error and a Loopy error.
        """
        self.assertTrue(issubclass(FilterError, CaptureError))
        self.assertTrue(issubclass(FilterError, LoopyError))


class AttachTests(SynchronousTestCase):
    """
    L{attach} on kernel sockets.
    """

    def packetSocket(self) -> socket.socket:
        """
        A packet socket of protocol 0: it receives nothing until bound, so
        the test sees no traffic.  Needs CAP_NET_RAW.
        """
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise SkipTest("packet sockets need CAP_NET_RAW")
        self.addCleanup(sock.close)
        return sock

    def datagramPair(self):
        """
        A connected C{AF_UNIX} datagram pair, buffers big enough for a
        64 KiB frame.

        :returns: (sender, receiver); filters go on the receiver.
        """
        sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        self.addCleanup(receiver.close)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return sender, receiver

    def kept(self, sender, receiver, frame: bytes):
        """
        Send C{frame} through the pair.

        :returns: the octets the receiver's filter let through, or None when
            it dropped the frame.
        """
        sender.send(frame)
        try:
            return receiver.recv(1 << 18, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    def test_packetSocket(self):
        """
        A compiled program attaches to a packet socket, and the kernel holds
        exactly that program.
        """
        sock = self.packetSocket()
        program = compile_filter("tcp and port 7400")
        attach(sock, program)
        self.assertEqual(attached_program(sock), program)

    def test_replace(self):
        """
        Attaching again replaces the program.
        """
        sock = self.packetSocket()
        attach(sock, compile_filter("udp"))
        program = compile_filter("icmp")
        attach(sock, program)
        self.assertEqual(attached_program(sock), program)

    def test_kernelRefuses(self):
        """
        A program the kernel's checker refuses (empty, unknown opcode, a
        jump past the end, no return) raises L{FilterError}.
        """
        sock = self.packetSocket()
        for program in ([], [(0xFFFF, 0, 0, 0)], [(0x15, 5, 5, 0), (0x06, 0, 0, 0)],
                        [(0x28, 0, 0, 12)]):
            error = self.assertRaises(FilterError, attach, sock, program)
            self.assertIn("kernel refused the capture filter", str(error))

    def test_excludeHubLinks(self):
        """
        The agent's filter run by the kernel: TCP to and from the hub
        endpoints is dropped, everything else IP is kept whole.
        """
        sender, receiver = self.datagramPair()
        expression = combine("ip or ip6", exclude_endpoints(
            [("192.0.2.10", 7400), ("2001:db8::10", 7400)]))
        attach(receiver, compile_filter(expression))
        frames = {
            "to hub": _ether() / IP(src="192.0.2.2", dst="192.0.2.10")
            / TCP(sport=40000, dport=7400),
            "from hub": _ether() / IP(src="192.0.2.10", dst="192.0.2.2")
            / TCP(sport=7400, dport=40000) / Raw(b"report"),
            "to hub v6": _ether() / IPv6(src="2001:db8::2", dst="2001:db8::10")
            / TCP(sport=40000, dport=7400),
            "other port": _ether() / IP(src="192.0.2.2", dst="192.0.2.10")
            / TCP(sport=40000, dport=7401),
            "other host": _ether() / IP(src="192.0.2.2", dst="192.0.2.11")
            / TCP(sport=40000, dport=7400),
            "udp to hub port": _ether() / IP(src="192.0.2.2", dst="192.0.2.10")
            / UDP(sport=40000, dport=7400),
            "v6 other": _ether() / IPv6(src="2001:db8::2", dst="2001:db8::11")
            / TCP(sport=40000, dport=7400),
            "arp": _ether() / ARP(psrc="192.0.2.2", pdst="192.0.2.10"),
        }
        kept = {name for name, packet in frames.items()
                if self.kept(sender, receiver, bytes(packet)) == bytes(packet)}
        self.assertEqual(kept, {"other port", "other host", "udp to hub port",
                                "v6 other"})

    def test_largestFrameKeptWhole(self):
        """
        A 65549-octet frame (a full-size IPv4 GSO frame on lo) passes the
        filter whole: the program does not cut it to 65535 octets.
        """
        sender, receiver = self.datagramPair()
        attach(receiver, compile_filter("tcp"))
        frame = bytes(_ether() / IP(src="127.0.0.1", dst="127.0.0.1")
                      / TCP(sport=1, dport=2) / Raw(b"\x00" * (65535 - 40)))
        self.assertEqual(len(frame), 65549)
        received = self.kept(sender, receiver, frame)
        self.assertEqual(len(received), len(frame))

    def test_rawLink(self):
        """
        A program compiled for raw IP links runs on frames that start with
        the IP header.
        """
        sender, receiver = self.datagramPair()
        attach(receiver, compile_filter("udp", LINKTYPE_RAW))
        udp = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
        udp6 = bytes(IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2))
        tcp = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2))
        self.assertEqual(self.kept(sender, receiver, udp), udp)
        self.assertEqual(self.kept(sender, receiver, udp6), udp6)
        self.assertIsNone(self.kept(sender, receiver, tcp))
