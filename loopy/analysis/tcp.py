# -*- test-case-name: tests.test_analysis_tcp -*-
"""
The TCP analyser: connections by 5-tuple, their state, octets each way,
handshake RTT and retransmissions (RFC 9293; retransmission and RTT as
Wireshark's TCP analysis defines them).
"""

from __future__ import annotations

from collections import OrderedDict

from zope.interface import implementer

from loopy.analysis.base import AnalyserConfig, IAnalyser
from loopy.dissect.headers import ACK, FIN, IPPROTO_TCP, RST, SYN
from loopy.model import TcpConnection, TcpSnapshot

SYN_SENT = "syn_sent"
SYN_RECEIVED = "syn_received"
ESTABLISHED = "established"
FIN_WAIT = "fin_wait"
CLOSED = "closed"
RESET = "reset"

_HALF_OPEN = (SYN_SENT, SYN_RECEIVED)
_ENDED = (CLOSED, RESET)
_MOD = 1 << 32


def _seq_before(a: int, b: int) -> bool:
    """
    Whether sequence number C{a} precedes C{b} (RFC 1982 serial arithmetic).
    """
    return a != b and ((a - b) % _MOD) > (_MOD >> 1)


class _Connection:
    """
    A connection's mutable state inside the analyser (never leaves it).
    Index 0 of the pair lists is ``src``→``dst``, index 1 the reply.
    """

    __slots__ = (
        "src", "sport", "dst", "dport", "state", "packets", "bytes",
        "ip_bytes", "next_seq", "fin", "syn_ts", "rtt", "retransmissions",
        "first_seen", "last_seen",
    )

    def __init__(self, src, sport, dst, dport, state, ts):
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.state = state
        self.packets = [0, 0]
        self.bytes = [0, 0]
        self.ip_bytes = [0, 0]
        self.next_seq = [None, None]
        self.fin = [False, False]
        self.syn_ts = ts if state == SYN_SENT else None
        self.rtt = None
        self.retransmissions = 0
        self.first_seen = self.last_seen = ts

    def record(self) -> TcpConnection:
        return TcpConnection(
            src=self.src, sport=self.sport, dst=self.dst, dport=self.dport,
            state=self.state,
            packets_out=self.packets[0], bytes_out=self.bytes[0],
            packets_in=self.packets[1], bytes_in=self.bytes[1],
            ip_bytes_out=self.ip_bytes[0], ip_bytes_in=self.ip_bytes[1],
            rtt_ms=None if self.rtt is None else round(self.rtt * 1000, 3),
            retransmissions=self.retransmissions,
            first_seen=self.first_seen, last_seen=self.last_seen,
        )


@implementer(IAnalyser)
class TcpAnalyser:
    """
    Tracks TCP connections.

    The table holds at most C{tcp_connections_max} connections in
    least-recently-active order; at the cap the least recently active is
    dropped (C{connections_evicted}).  Idle connections age out after
    C{tcp_idle_timeout} (established), C{tcp_half_open_timeout} (half-open) or
    C{tcp_linger} (closed, reset), counted in C{connections_expired}.
    """

    name = "tcp"

    def __init__(self, config: AnalyserConfig):
        self._config = config
        self._table: OrderedDict[tuple, _Connection] = OrderedDict()
        self._counts = dict.fromkeys(
            ("syn", "syn_ack", "established", "closed", "reset",
             "retransmissions", "evicted", "expired"), 0
        )
        self._states: dict[str, int] = {}

    # -- per packet --------------------------------------------------------

    def observe(self, packet) -> None:
        if packet.proto != IPPROTO_TCP or packet.fragment:
            return
        key = (packet.src, packet.sport, packet.dst, packet.dport)
        table = self._table
        conn = table.get(key)
        side = 0
        if conn is None:
            rkey = (packet.dst, packet.dport, packet.src, packet.sport)
            conn = table.get(rkey)
            if conn is not None:
                key, side = rkey, 1
        flags = packet.flags
        if conn is not None and flags & SYN and not flags & ACK \
                and conn.state in _ENDED:
            # The 5-tuple is reused by a new connection, oriented by its SYN
            # (from either end: a connection picked up mid-stream may have
            # been oriented the wrong way round).
            self._remove(key)
            conn = None
            key = (packet.src, packet.sport, packet.dst, packet.dport)
        if conn is None:
            conn, key, side = self._open(packet, key)
            if conn is None:
                return
        else:
            table.move_to_end(key)
        self._account(conn, side, packet)

    def _open(self, packet, key):
        flags = packet.flags
        src, sport, dst, dport = key
        if flags & RST:
            return None, key, 0
        if flags & SYN and not flags & ACK:
            state, side = SYN_SENT, 0
        elif flags & SYN:
            # We missed the SYN: the sender of the SYN-ACK is the server.
            state, side = SYN_RECEIVED, 1
        else:
            # Mid-stream: take the lower port as the server's.
            state, side = ESTABLISHED, 1 if sport < dport else 0
        if side:
            key = (dst, dport, src, sport)
        if len(self._table) >= self._config.tcp_connections_max:
            self._remove(next(iter(self._table)))
            self._counts["evicted"] += 1
        conn = _Connection(*key, state, packet.ts)
        self._table[key] = conn
        self._states[state] = self._states.get(state, 0) + 1
        if state == SYN_RECEIVED:
            self._counts["syn_ack"] += 1
        return conn, key, side

    def _account(self, conn: _Connection, side: int, packet) -> None:
        flags = packet.flags
        conn.last_seen = packet.ts
        conn.packets[side] += 1
        conn.bytes[side] += packet.payload_len
        conn.ip_bytes[side] += packet.ip_len
        self._sequence(conn, side, packet)
        if flags & RST:
            if conn.state != RESET:
                self._set_state(conn, RESET)
                self._counts["reset"] += 1
            return
        state = conn.state
        if flags & SYN:
            if not flags & ACK:
                if side == 0 and state == SYN_SENT and conn.packets[0] == 1:
                    self._counts["syn"] += 1
            elif side == 1 and state == SYN_SENT:
                self._set_state(conn, SYN_RECEIVED)
                self._counts["syn_ack"] += 1
        elif state == SYN_RECEIVED and side == 0 and flags & ACK:
            self._set_state(conn, ESTABLISHED)
            self._counts["established"] += 1
            if conn.syn_ts is not None:
                conn.rtt = max(0.0, packet.ts - conn.syn_ts)
        if flags & FIN and not conn.fin[side]:
            conn.fin[side] = True
            if conn.fin[1 - side]:
                if conn.state not in _ENDED:
                    self._set_state(conn, CLOSED)
                    self._counts["closed"] += 1
            elif conn.state != FIN_WAIT:
                self._set_state(conn, FIN_WAIT)

    def _sequence(self, conn: _Connection, side: int, packet) -> None:
        """
        Count a retransmission: payload at sequence numbers already covered in
        this direction, keep-alives (one octet just below) excepted.
        """
        length = packet.payload_len
        seq = packet.seq
        expected = conn.next_seq[side]
        if expected is not None and length and _seq_before(seq, expected):
            keepalive = length <= 1 and (seq + 1) % _MOD == expected
            if not keepalive:
                conn.retransmissions += 1
                self._counts["retransmissions"] += 1
        flags = packet.flags
        end = (seq + length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) % _MOD
        if expected is None or _seq_before(expected, end):
            conn.next_seq[side] = end

    def _set_state(self, conn: _Connection, state: str) -> None:
        states = self._states
        states[conn.state] -= 1
        states[state] = states.get(state, 0) + 1
        conn.state = state

    def _remove(self, key) -> None:
        conn = self._table.pop(key)
        self._states[conn.state] -= 1

    # -- per report --------------------------------------------------------

    def _expire(self, now: float) -> None:
        config = self._config
        shortest = min(config.tcp_linger, config.tcp_half_open_timeout,
                       config.tcp_idle_timeout)
        table = self._table
        stale = []
        # Least recently active first: stop at the first entry too fresh to
        # expire under any timeout.
        for key, conn in table.items():
            idle = now - conn.last_seen
            if idle < shortest:
                break
            if conn.state in _ENDED:
                limit = config.tcp_linger
            elif conn.state in _HALF_OPEN:
                limit = config.tcp_half_open_timeout
            else:
                limit = config.tcp_idle_timeout
            if idle >= limit:
                stale.append(key)
        for key in stale:
            self._remove(key)
        self._counts["expired"] += len(stale)

    def snapshot(self, now: float, interval: float) -> TcpSnapshot:
        self._expire(now)
        states = self._states
        half_open = states.get(SYN_SENT, 0) + states.get(SYN_RECEIVED, 0)
        ended = states.get(CLOSED, 0) + states.get(RESET, 0)
        recent = []
        limit = self._config.report_connections
        for conn in reversed(self._table.values()):
            if len(recent) >= limit:
                break
            recent.append(conn.record())
        counts = self._counts
        return TcpSnapshot(
            syn=counts["syn"],
            syn_ack=counts["syn_ack"],
            established=counts["established"],
            closed=counts["closed"],
            reset=counts["reset"],
            half_open=half_open,
            active=len(self._table) - ended,
            retransmissions=counts["retransmissions"],
            connections=tuple(recent),
            connections_tracked=len(self._table),
            connections_evicted=counts["evicted"],
            connections_expired=counts["expired"],
        )
