# -*- test-case-name: tests.test_analysis_ip -*-
"""
The IP analyser: packets and octets each way, the protocol mix, top talkers
and top conversations (as Wireshark's Statistics ▸ Conversations and
Endpoints, and iftop).
"""

from __future__ import annotations

from zope.interface import implementer

from loopy.analysis.base import AnalyserConfig, IAnalyser, prune_half, top
from loopy.dissect.headers import (
    ETH_P_ARP,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    address_text,
)
from loopy.model import Conversation, HostTraffic, IpSnapshot, ProtocolCount

_PROTOCOL_NAMES = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMP: "icmp",
    IPPROTO_ICMPV6: "icmpv6",
}


def protocol_name(packet) -> str:
    """
    The protocol-mix bucket of a packet: ``tcp``, ``udp``, ``icmp``,
    ``icmpv6``, ``arp``, ``ipv4-other``, ``ipv6-other`` or ``other``.
    """
    if packet.ip_version:
        return _PROTOCOL_NAMES.get(packet.proto) or f"ipv{packet.ip_version}-other"
    if packet.ethertype == ETH_P_ARP:
        return "arp"
    return "other"


@implementer(IAnalyser)
class IpAnalyser:
    """
    Counts traffic by direction, protocol, host and host pair.

    Tables: hosts (cap C{hosts_max}) and conversations (cap
    C{conversations_max}); at a cap the lighter half by octets is dropped and
    counted in C{hosts_evicted} / C{conversations_evicted}.

    Per packet it only adds to counters, with addresses as their raw octets
    (L{PacketSummary.saddr}); names, text and the order of a conversation's
    two hosts are worked out for the few rows a snapshot reports.
    """

    name = "ip"

    def __init__(self, config: AnalyserConfig):
        self._config = config
        self._last = (0, 0, 0, 0)
        # One set of counters per kind of packet, its ethertype, IP protocol
        # and direction made one int (see observe) ->
        # [packets, frame octets, IP octets (frame octets when not IP)];
        # the totals each way and the protocol mix are their sums.
        self._kinds: dict[int, list[int]] = {}
        # kind -> (protocol bucket name, outgoing)
        self._kind_names: dict[int, tuple[str, bool]] = {}
        # address octets -> [packets_sent, bytes_sent, packets_received,
        # bytes_received, then the same four at the previous snapshot]
        self._hosts: dict[bytes, list[int]] = {}
        # (a, b) address octets with a < b -> [packets_ab, bytes_ab,
        # packets_ba, bytes_ba, then the same four at the previous snapshot]
        self._conversations: dict[tuple[bytes, bytes], list[int]] = {}
        self._hosts_evicted = 0
        self._conversations_evicted = 0

    def observe(self, packet) -> None:
        # ethertype * 512 + proto (-1 to 255) is one int per pair; times 2
        # plus 1 when outgoing.
        kind = (packet.ethertype * 512 + packet.proto) * 2 + packet.outgoing
        counts = self._kinds.get(kind)
        if counts is None:
            counts = self._new_kind(packet, kind)
        size = packet.wire_len
        ip_len = packet.ip_len or size
        counts[0] += 1
        counts[1] += size
        counts[2] += ip_len
        if not packet.ip_version:
            return
        saddr = packet.saddr
        daddr = packet.daddr
        hosts = self._hosts
        host = hosts.get(saddr)
        if host is None:
            host = self._new_host(saddr)
        host[0] += 1
        host[1] += ip_len
        host = hosts.get(daddr)
        if host is None:
            host = self._new_host(daddr)
        host[2] += 1
        host[3] += ip_len
        if saddr < daddr:
            key, index = (saddr, daddr), 0
        else:
            key, index = (daddr, saddr), 2
        pair = self._conversations.get(key)
        if pair is None:
            pair = self._new_conversation(key)
        pair[index] += 1
        pair[index + 1] += ip_len

    def _new_kind(self, packet, kind: int) -> list[int]:
        """
        The counters of a kind of packet not seen before.
        """
        self._kind_names[kind] = (protocol_name(packet), bool(packet.outgoing))
        counts = self._kinds[kind] = [0, 0, 0]
        return counts

    def _new_host(self, addr: bytes) -> list[int]:
        hosts = self._hosts
        if len(hosts) >= self._config.hosts_max:
            self._hosts_evicted += prune_half(hosts, _octets)
        host = hosts[addr] = [0, 0, 0, 0, 0, 0, 0, 0]
        return host

    def _new_conversation(self, key: tuple[bytes, bytes]) -> list[int]:
        conversations = self._conversations
        if len(conversations) >= self._config.conversations_max:
            self._conversations_evicted += prune_half(conversations, _octets)
        pair = conversations[key] = [0, 0, 0, 0, 0, 0, 0, 0]
        return pair

    def _totals(self) -> tuple[tuple[int, int, int, int], dict[str, list[int]]]:
        """
        The counters of all kinds of packet, summed.

        :returns: ``(packets_in, packets_out, bytes_in, bytes_out)`` with
            frame octets, and protocol bucket name -> [packets, octets].
        """
        packets = [0, 0]
        octets = [0, 0]
        protocols: dict[str, list[int]] = {}
        for kind, counts in self._kinds.items():
            bucket, outgoing = self._kind_names[kind]
            packets[outgoing] += counts[0]
            octets[outgoing] += counts[1]
            total = protocols.setdefault(bucket, [0, 0])
            total[0] += counts[0]
            total[1] += counts[2]
        return (packets[0], packets[1], octets[0], octets[1]), protocols

    def snapshot(self, now: float, interval: float) -> IpSnapshot:
        current, protocols = self._totals()
        delta = [c - p for c, p in zip(current, self._last)]
        self._last = current
        seconds = interval if interval > 0 else 1.0
        n = self._config.top_n
        talkers = top(self._hosts.items(), n, key=lambda kv: _octets(kv[1]))
        pairs = top(self._conversations.items(), n, key=lambda kv: _octets(kv[1]))
        interval_talkers = _interval_top(self._hosts, n)
        interval_pairs = _interval_top(self._conversations, n)
        return IpSnapshot(
            packets_in=current[0],
            packets_out=current[1],
            bytes_in=current[2],
            bytes_out=current[3],
            pps_in=delta[0] / seconds,
            pps_out=delta[1] / seconds,
            bps_in=delta[2] * 8 / seconds,
            bps_out=delta[3] * 8 / seconds,
            protocols={
                name: ProtocolCount(packets=c[0], bytes=c[1])
                for name, c in sorted(protocols.items())
            },
            top_talkers=tuple(
                HostTraffic(address_text(addr), *counts[:4]) for addr, counts in talkers
            ),
            top_conversations=tuple(_conversation(a, b, counts) for (a, b), counts in pairs),
            interval_talkers=tuple(
                HostTraffic(address_text(addr), *counts) for addr, counts in interval_talkers
            ),
            interval_conversations=tuple(
                _conversation(a, b, counts) for (a, b), counts in interval_pairs
            ),
            hosts_tracked=len(self._hosts),
            hosts_evicted=self._hosts_evicted,
            conversations_tracked=len(self._conversations),
            conversations_evicted=self._conversations_evicted,
        )


def _octets(counts: list[int]) -> int:
    """
    Octets both ways of a host's or conversation's counters.
    """
    return counts[1] + counts[3]


def _interval_top(table: dict, n: int) -> list:
    """
    The C{n} entries of a host or conversation table with the most octets
    since the previous snapshot, most first, as (key, [the four counters
    over the interval]); entries with none are left out.  Then marks every
    entry's counters as of now: one pass over the bounded table per report.
    """
    heavy = top(table.items(), n, key=lambda kv: kv[1][1] + kv[1][3] - kv[1][5] - kv[1][7])
    rows = []
    for key, c in heavy:
        delta = [c[0] - c[4], c[1] - c[5], c[2] - c[6], c[3] - c[7]]
        if delta[0] or delta[2]:
            rows.append((key, delta))
    for c in table.values():
        c[4:8] = c[0:4]
    return rows


def _conversation(a: bytes, b: bytes, counts: list[int]) -> Conversation:
    """
    The record of a conversation kept under address octets C{a} < C{b}:
    the record's ``a`` is the one whose text sorts first (``10.0.0.10``
    before ``10.0.0.9``), so the counts turn round when the orders differ.
    """
    a_text, b_text = address_text(a), address_text(b)
    if a_text <= b_text:
        return Conversation(a_text, b_text, *counts[:4])
    return Conversation(b_text, a_text, counts[2], counts[3], counts[0], counts[1])
