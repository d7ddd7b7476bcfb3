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
from loopy.dissect.headers import ACK, FIN, IPPROTO_TCP, RST, SYN, address_text
from loopy.model import TcpConnection, TcpSnapshot

SYN_SENT = "syn_sent"
SYN_RECEIVED = "syn_received"
ESTABLISHED = "established"
FIN_WAIT = "fin_wait"
CLOSED = "closed"
RESET = "reset"

_HALF_OPEN = (SYN_SENT, SYN_RECEIVED)
_ENDED = (CLOSED, RESET)
# Sequence numbers (RFC 1982 serial arithmetic): C{a} precedes C{b} when
# ``(a - b) & _MASK > _HALF``.
_HALF = 1 << 31
_MASK = (1 << 32) - 1


class _Connection:
    """
    A connection's mutable state inside the analyser (never leaves it).
    ``*_out`` is the client's direction, ``src``→``dst`` of the record, and
    ``*_in`` the reply; the addresses and ports are the table key's.

    One of these is kept for up to C{tcp_connections_max} connections, so
    it holds plain numbers in slots (no lists): 160 octets, about 650 with
    its key, numbers and table entry (960 with the lists it had before).

    :ivar client_first: whether the client (``src``) is the first end of
        the table key.
    :ivar fins: FINs seen, a bit per direction (L{_FIN_OUT}, L{_FIN_IN}).
    :ivar next_seq_out: the sequence number after the highest one seen
        ``src``→``dst`` (SYN and FIN count one), or None before any.
    :ivar syn_ts: ts of the SYN when the handshake was seen, else None.
    :ivar rtt: SYN to the ACK of the SYN-ACK, seconds, or None.
    """

    __slots__ = (
        "client_first", "state", "packets_out", "packets_in", "bytes_out",
        "bytes_in", "ip_bytes_out", "ip_bytes_in", "next_seq_out", "next_seq_in",
        "fins", "syn_ts", "rtt", "retransmissions", "first_seen", "last_seen",
    )

    def __init__(self, client_first: bool, state: str, ts: float):
        self.client_first = client_first
        self.state = state
        self.packets_out = self.packets_in = 0
        self.bytes_out = self.bytes_in = 0
        self.ip_bytes_out = self.ip_bytes_in = 0
        self.next_seq_out = self.next_seq_in = None
        self.fins = 0
        self.syn_ts = ts if state == SYN_SENT else None
        self.rtt = None
        self.retransmissions = 0
        self.first_seen = self.last_seen = ts

    def record(self, key: tuple) -> TcpConnection:
        """
        The connection as a report shows it.

        :param key: its table key (see L{TcpAnalyser}).
        """
        if self.client_first:
            saddr, sport, daddr, dport = key
        else:
            daddr, dport, saddr, sport = key
        return TcpConnection(
            src=address_text(saddr), sport=sport, dst=address_text(daddr), dport=dport,
            state=self.state,
            packets_out=self.packets_out, bytes_out=self.bytes_out,
            packets_in=self.packets_in, bytes_in=self.bytes_in,
            ip_bytes_out=self.ip_bytes_out, ip_bytes_in=self.ip_bytes_in,
            rtt_ms=None if self.rtt is None else round(self.rtt * 1000, 3),
            retransmissions=self.retransmissions,
            first_seen=self.first_seen, last_seen=self.last_seen,
        )


_FIN_OUT, _FIN_IN = 1, 2


@implementer(IAnalyser)
class TcpAnalyser:
    """
    Tracks TCP connections.

    The table holds at most C{tcp_connections_max} connections in
    least-recently-active order; at the cap the least recently active is
    dropped (C{connections_evicted}).  Idle connections age out after
    C{tcp_idle_timeout} (established), C{tcp_half_open_timeout} (half-open) or
    C{tcp_linger} (closed, reset), counted in C{connections_expired}.

    Keys are ``(addr, port, addr, port)`` with the addresses as octets
    (L{PacketSummary.saddr}; text only in a snapshot's records), the lower
    address (then port) first, so that one lookup finds a connection from
    a packet either way; the connection knows which end is its client.
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
        # Written straight through (one call for most segments): this runs
        # for every packet.
        if packet.proto != IPPROTO_TCP or packet.fragment:
            return
        saddr, sport, daddr, dport = packet.saddr, packet.sport, packet.daddr, packet.dport
        # forward: the packet comes from the key's first end.
        if saddr < daddr or saddr == daddr and sport < dport:
            key, forward = (saddr, sport, daddr, dport), True
        else:
            key, forward = (daddr, dport, saddr, sport), False
        table = self._table
        conn = table.get(key)
        flags = packet.flags
        if conn is not None:
            if flags & SYN and not flags & ACK and conn.state in _ENDED:
                # The 5-tuple is reused by a new connection, oriented by its
                # SYN (from either end: a connection picked up mid-stream may
                # have been oriented the wrong way round).
                self._remove(key)
                conn = None
            else:
                table.move_to_end(key)
                side = 0 if forward == conn.client_first else 1
        if conn is None:
            conn, side = self._open(packet, key, forward)
            if conn is None:
                return

        # Counters and sequence space of the packet's direction.
        ts = packet.ts
        conn.last_seen = ts
        length = packet.payload_len
        seq = packet.seq
        if side:
            conn.packets_in += 1
            conn.bytes_in += length
            conn.ip_bytes_in += packet.ip_len
            expected = conn.next_seq_in
        else:
            conn.packets_out += 1
            conn.bytes_out += length
            conn.ip_bytes_out += packet.ip_len
            expected = conn.next_seq_out
        # A retransmission: payload at sequence numbers already covered in
        # this direction, keep-alives (one octet just below) excepted.
        if expected is not None and length and ((seq - expected) & _MASK) > _HALF:
            if length > 1 or (seq + 1) & _MASK != expected:
                conn.retransmissions += 1
                self._counts["retransmissions"] += 1
        end = seq + length
        if flags & (SYN | FIN | RST):
            end += (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        end &= _MASK
        if expected is None or ((expected - end) & _MASK) > _HALF:
            if side:
                conn.next_seq_in = end
            else:
                conn.next_seq_out = end

        # The state machine.
        if flags & (SYN | FIN | RST):
            self._handshake_or_close(conn, side, flags, ts)
        elif flags & ACK and conn.state == SYN_RECEIVED and not side:
            self._established(conn, ts)

    def _open(self, packet, key: tuple, forward: bool):
        """
        Start tracking the connection of a packet not in the table.

        :param key: the table key; C{forward} whether the packet comes from
            its first end.
        :returns: the connection and the packet's side (0 from the client),
            or ``(None, 0)`` for a reset, which starts nothing.
        """
        flags = packet.flags
        if flags & RST:
            return None, 0
        if flags & SYN and not flags & ACK:
            state, side = SYN_SENT, 0
        elif flags & SYN:
            # We missed the SYN: the sender of the SYN-ACK is the server.
            state, side = SYN_RECEIVED, 1
        else:
            # Mid-stream: take the lower port as the server's.
            state, side = ESTABLISHED, 1 if packet.sport < packet.dport else 0
        # A connection from a port to itself has one end, and the packets
        # after the first all count as the client's.
        client_first = forward if side == 0 or key[:2] == key[2:] else not forward
        if len(self._table) >= self._config.tcp_connections_max:
            self._remove(next(iter(self._table)))
            self._counts["evicted"] += 1
        conn = _Connection(client_first, state, packet.ts)
        self._table[key] = conn
        self._states[state] = self._states.get(state, 0) + 1
        if state == SYN_RECEIVED:
            self._counts["syn_ack"] += 1
        return conn, side

    def _handshake_or_close(self, conn: _Connection, side: int, flags: int,
                            ts: float) -> None:
        """
        The state changes of a segment with SYN, FIN or RST.
        """
        if flags & RST:
            if conn.state != RESET:
                self._set_state(conn, RESET)
                self._counts["reset"] += 1
            return
        state = conn.state
        if flags & SYN:
            if not flags & ACK:
                if side == 0 and state == SYN_SENT and conn.packets_out == 1:
                    self._counts["syn"] += 1
            elif side == 1 and state == SYN_SENT:
                self._set_state(conn, SYN_RECEIVED)
                self._counts["syn_ack"] += 1
        elif state == SYN_RECEIVED and side == 0 and flags & ACK:
            self._established(conn, ts)
        if flags & FIN:
            fin, other = (_FIN_IN, _FIN_OUT) if side else (_FIN_OUT, _FIN_IN)
            if not conn.fins & fin:
                conn.fins |= fin
                if conn.fins & other:
                    if conn.state not in _ENDED:
                        self._set_state(conn, CLOSED)
                        self._counts["closed"] += 1
                elif conn.state != FIN_WAIT:
                    self._set_state(conn, FIN_WAIT)

    def _established(self, conn: _Connection, ts: float) -> None:
        """
        The client acknowledged the SYN-ACK: the handshake is complete.
        """
        self._set_state(conn, ESTABLISHED)
        self._counts["established"] += 1
        if conn.syn_ts is not None:
            conn.rtt = max(0.0, ts - conn.syn_ts)

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
        for key, conn in reversed(self._table.items()):
            if len(recent) >= limit:
                break
            recent.append(conn.record(key))
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
