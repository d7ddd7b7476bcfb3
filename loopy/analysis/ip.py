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
    """

    name = "ip"

    def __init__(self, config: AnalyserConfig):
        self._config = config
        self._packets_in = self._packets_out = 0
        self._bytes_in = self._bytes_out = 0
        self._last = (0, 0, 0, 0)
        # protocol name -> [packets, bytes]
        self._protocols: dict[str, list[int]] = {}
        # addr -> [packets_sent, bytes_sent, packets_received, bytes_received]
        self._hosts: dict[str, list[int]] = {}
        # (a, b) with a < b -> [packets_ab, bytes_ab, packets_ba, bytes_ba]
        self._conversations: dict[tuple[str, str], list[int]] = {}
        self._hosts_evicted = 0
        self._conversations_evicted = 0

    def observe(self, packet) -> None:
        size = packet.wire_len
        if packet.outgoing:
            self._packets_out += 1
            self._bytes_out += size
        else:
            self._packets_in += 1
            self._bytes_in += size
        bucket = protocol_name(packet)
        ip_len = packet.ip_len or size
        counts = self._protocols.get(bucket)
        if counts is None:
            counts = self._protocols[bucket] = [0, 0]
        counts[0] += 1
        counts[1] += ip_len
        if not packet.ip_version:
            return
        src, dst = packet.src, packet.dst
        self._host(src, 0, ip_len)
        self._host(dst, 2, ip_len)
        if src < dst:
            key, index = (src, dst), 0
        else:
            key, index = (dst, src), 2
        pair = self._conversations.get(key)
        if pair is None:
            if len(self._conversations) >= self._config.conversations_max:
                self._conversations_evicted += prune_half(
                    self._conversations, lambda v: v[1] + v[3]
                )
            pair = self._conversations[key] = [0, 0, 0, 0]
        pair[index] += 1
        pair[index + 1] += ip_len

    def _host(self, addr: str, index: int, ip_len: int) -> None:
        host = self._hosts.get(addr)
        if host is None:
            if len(self._hosts) >= self._config.hosts_max:
                self._hosts_evicted += prune_half(self._hosts, lambda v: v[1] + v[3])
            host = self._hosts[addr] = [0, 0, 0, 0]
        host[index] += 1
        host[index + 1] += ip_len

    def snapshot(self, now: float, interval: float) -> IpSnapshot:
        current = (self._packets_in, self._packets_out, self._bytes_in, self._bytes_out)
        delta = [c - p for c, p in zip(current, self._last)]
        self._last = current
        seconds = interval if interval > 0 else 1.0
        n = self._config.top_n
        talkers = top(self._hosts.items(), n, key=lambda kv: kv[1][1] + kv[1][3])
        pairs = top(self._conversations.items(), n, key=lambda kv: kv[1][1] + kv[1][3])
        return IpSnapshot(
            packets_in=self._packets_in,
            packets_out=self._packets_out,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            pps_in=delta[0] / seconds,
            pps_out=delta[1] / seconds,
            bps_in=delta[2] * 8 / seconds,
            bps_out=delta[3] * 8 / seconds,
            protocols={
                name: ProtocolCount(packets=c[0], bytes=c[1])
                for name, c in sorted(self._protocols.items())
            },
            top_talkers=tuple(HostTraffic(addr, *counts) for addr, counts in talkers),
            top_conversations=tuple(
                Conversation(a, b, *counts) for (a, b), counts in pairs
            ),
            hosts_tracked=len(self._hosts),
            hosts_evicted=self._hosts_evicted,
            conversations_tracked=len(self._conversations),
            conversations_evicted=self._conversations_evicted,
        )
