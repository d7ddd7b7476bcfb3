# -*- test-case-name: tests.test_bpf -*-
"""
Kernel packet filters: tcpdump expressions (pcap-filter(7)) compiled to
classic BPF by libpcap (through scapy's binding) and attached to a socket
with ``SO_ATTACH_FILTER`` (kernel Documentation/networking/filter.rst).
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Iterable, Optional

from loopy.dissect.headers import LINKTYPE_ETHERNET, LINKTYPE_RAW
from loopy.errors import FilterError

SO_ATTACH_FILTER = 26
_SOCK_FILTER = struct.Struct("HBBI")
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return a constant

#: Octets of an accepted frame a filter keeps: tcpdump's default snapshot
#: length (libpcap's MAXIMUM_SNAPLEN), so that whole 64 KiB GSO/GRO frames
#: get through.
SNAPLEN = 262144

# pcap DLT_ values for pcap_open_dead (DLT_RAW is 12 on Linux, not 101).
_DLT = {LINKTYPE_ETHERNET: 1, LINKTYPE_RAW: 12}


def exclude_endpoints(endpoints: Iterable[tuple[str, int]]) -> Optional[str]:
    """
    A filter expression that drops TCP traffic to and from the given
    ``(host, port)`` pairs: the agent's own hub links.

    :returns: the expression, or None for no endpoints.
    """
    terms = [
        f"(tcp and host {host} and port {int(port)})" for host, port in endpoints
    ]
    if not terms:
        return None
    return "not (" + " or ".join(terms) + ")"


def combine(*expressions: Optional[str]) -> Optional[str]:
    """
    The conjunction of the expressions that are not None.
    """
    parts = [f"({e})" for e in expressions if e]
    return " and ".join(parts) if parts else None


def compile_filter(
    expression: str, linktype: int = LINKTYPE_ETHERNET, snaplen: int = SNAPLEN
) -> list:
    """
    Compile a tcpdump expression with libpcap.

    :param expression: pcap-filter(7) syntax.
    :param linktype: the link type of the socket it will run on.
    :param snaplen: octets of an accepted frame the program keeps (a socket
        filter's return value is how much of the frame the kernel passes on).
    :returns: the program as ``(code, jt, jf, k)`` tuples.
    :raises FilterError: if libpcap is missing or the expression does not
        compile (libpcap's message included).
    """
    try:
        from scapy.arch.common import compile_filter as pcap_compile
        from scapy.arch.common import free_filter
    except ImportError as e:  # pragma: no cover - scapy always has these
        raise FilterError(f"cannot compile filters: {e}") from None
    try:
        program = pcap_compile(expression, linktype=_DLT.get(linktype, linktype))
    except Exception as e:
        raise FilterError(f"bad capture filter {expression!r}: {e}") from None
    insns = program.bf_insns
    out = []
    for i in range(program.bf_len):
        insn = insns[i]
        # scapy declares k a signed int; the kernel's is unsigned (addresses
        # from 128.0.0.0 up would come out negative).
        k = insn.k & 0xFFFFFFFF
        if insn.code == _BPF_RET_K and k:
            # scapy compiles with a 65535-octet snapshot length: the kernel
            # would cut longer frames (lo's GSO frames are up to 65549).
            k = snaplen
        out.append((insn.code, insn.jt, insn.jf, k))
    free_filter(program)
    return out


def attach(sock: socket.socket, program: list) -> None:
    """
    Attach a compiled program to a socket (``SO_ATTACH_FILTER``).

    :raises FilterError: if the kernel refuses it.
    """
    raw = b"".join(_SOCK_FILTER.pack(*insn) for insn in program)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as e:
        raise FilterError(f"kernel refused the capture filter: {e}") from None
