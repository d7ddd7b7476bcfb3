#!/usr/bin/env python
"""
A developer benchmark of the agent's per-packet hot path: the header parser
(L{loopy.dissect.headers.decode}) and the built-in analysers' C{observe}.

Usage::

    python bench/hotpath.py [--frames 200000] [--pps 200000] [--repeat 3]
                            [--flows 1000000] [--no-memory] [--profile STAGE]

It builds a frame mix with scapy's layers (explicit MAC addresses, nothing is
sent anywhere): TCP connections (handshake, data both ways, FIN close, a few
retransmissions and resets), long TCP transfers, DNS over UDP (queries and
responses, answers, NXDOMAIN), other UDP, ICMP and ICMPv6 echo, and ARP; a
fifth of the IP traffic is IPv6.  Each packet shape is built once by scapy,
then addresses, ports and sequence numbers are written into a copy, so
building 200,000 frames takes a few seconds.  Timestamps spread the frames at
C{--pps} packets per second of capture time, which matters to the DNS answer
budget (responses per second).

Then it prints microseconds per packet (``time.perf_counter`` over the whole
list, or with C{--clock cpu} the process's CPU time, steadier on a shared
machine; best of C{--repeat}; fresh analysers for every run) for decode alone,
decode plus each analyser, and decode plus all of them; the snapshot time of
each analyser after the run; and, in a child process, the memory after
C{--flows} distinct flows (TCP handshakes between ever new address pairs,
a quarter IPv6, and a DNS query for a new name every eighth flow): the
process's resident set size and the size of the analysers' Python objects.

This is a developer tool, not a test; numbers depend on the machine.  On a
shared one, pin it to a core the others leave alone (``taskset -c 1 python
bench/hotpath.py --clock cpu``) and compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import struct
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402

from loopy.analysis.base import AnalyserConfig  # noqa: E402
from loopy.analysis.dns import DnsAnalyser  # noqa: E402
from loopy.analysis.ip import IpAnalyser  # noqa: E402
from loopy.detect.host import DetectAnalyser  # noqa: E402
from loopy.analysis.tcp import TcpAnalyser  # noqa: E402
from loopy.dissect.headers import decode  # noqa: E402

MAC_HOST = "02:00:00:00:00:01"
MAC_GATEWAY = "02:00:00:00:00:fe"
MSS = 1448  # TCP payload octets per full segment (1500 MTU, timestamps)

# Where addresses, ports and numbers sit in the frames built below.
_V4_ADDRS, _V4_L4 = 26, 34  # Ethernet 14 + IPv4 12; Ethernet 14 + IPv4 20
_V6_ADDRS, _V6_L4 = 22, 54  # Ethernet 14 + IPv6 8;  Ethernet 14 + IPv6 40
_PORTS = struct.Struct("!HH")
_PORTS_SEQ_ACK = struct.Struct("!HHII")
_DNS_ID = struct.Struct("!H")


# -- frames ------------------------------------------------------------------


def _ip(v6: bool, reply: bool):
    """
    A placeholder IP layer (addresses are written later); a reply comes from
    the gateway's MAC.
    """
    macs = dict(src=MAC_GATEWAY, dst=MAC_HOST) if reply else dict(src=MAC_HOST, dst=MAC_GATEWAY)
    ip = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6 else IP(src="192.0.2.1", dst="192.0.2.2")
    return Ether(**macs) / ip


@lru_cache(maxsize=None)
def _tcp_shape(v6: bool, reply: bool, flags: str, length: int) -> bytes:
    options = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None),
               ("WScale", 7)] if "S" in flags else [("NOP", None), ("NOP", None),
                                                    ("Timestamp", (1, 1))]
    return bytes(_ip(v6, reply) / TCP(sport=1, dport=2, flags=flags, options=options)
                 / (b"x" * length))


@lru_cache(maxsize=None)
def _udp_shape(v6: bool, reply: bool, length: int) -> bytes:
    return bytes(_ip(v6, reply) / UDP(sport=1, dport=2) / (b"u" * length))


@lru_cache(maxsize=None)
def _dns_shape(v6: bool, reply: bool, qname: str, rcode: int, answers: int) -> bytes:
    an = None
    for i in range(answers):
        rr = DNSRR(rrname=qname, type="A", ttl=300, rdata=f"198.51.100.{i + 1}")
        an = rr if an is None else an / rr
    message = DNS(id=0, qr=int(reply), rd=1, ra=int(reply), rcode=rcode,
                  qd=DNSQR(qname=qname, qtype="A"), an=an)
    return bytes(_ip(v6, reply) / UDP(sport=1, dport=2) / message)


@lru_cache(maxsize=None)
def _icmp_shape(v6: bool, reply: bool) -> bytes:
    if v6:
        layer = ICMPv6EchoReply(id=7, seq=1) if reply else ICMPv6EchoRequest(id=7, seq=1)
    else:
        layer = ICMP(type=0 if reply else 8, id=7, seq=1)
    return bytes(_ip(v6, reply) / layer / (b"p" * 56))


def _addresses(frame: bytearray, v6: bool, src: bytes, dst: bytes) -> int:
    """
    Write the IP addresses; returns the transport header's offset.
    """
    if v6:
        frame[_V6_ADDRS:_V6_ADDRS + 32] = src + dst
        return _V6_L4
    frame[_V4_ADDRS:_V4_ADDRS + 8] = src + dst
    return _V4_L4


def tcp_frame(v6, reply, flags, length, src, dst, sport, dport, seq, ack) -> bytes:
    frame = bytearray(_tcp_shape(v6, reply, flags, length))
    _PORTS_SEQ_ACK.pack_into(frame, _addresses(frame, v6, src, dst), sport, dport, seq, ack)
    return bytes(frame)


def udp_frame(v6, reply, length, src, dst, sport, dport) -> bytes:
    frame = bytearray(_udp_shape(v6, reply, length))
    _PORTS.pack_into(frame, _addresses(frame, v6, src, dst), sport, dport)
    return bytes(frame)


def dns_frame(v6, reply, qname, rcode, answers, src, dst, sport, dport, ident) -> bytes:
    frame = bytearray(_dns_shape(v6, reply, qname, rcode, answers))
    l4 = _addresses(frame, v6, src, dst)
    _PORTS.pack_into(frame, l4, sport, dport)
    _DNS_ID.pack_into(frame, l4 + 8, ident)
    return bytes(frame)


def icmp_frame(v6, reply, src, dst) -> bytes:
    frame = bytearray(_icmp_shape(v6, reply))
    _addresses(frame, v6, src, dst)
    return bytes(frame)


@lru_cache(maxsize=None)
def arp_frame(reply: bool, host: int) -> bytes:
    target = f"10.0.{host >> 8}.{host & 255}"
    if reply:
        return bytes(Ether(src=MAC_GATEWAY, dst=MAC_HOST) / ARP(
            op=2, hwsrc=MAC_GATEWAY, psrc=target, hwdst=MAC_HOST, pdst="10.0.0.1"))
    return bytes(Ether(src=MAC_HOST, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=MAC_HOST, psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst=target))


class Mix:
    """
    The frame mix: each flow appends C{(ts, frame, outgoing)} events; the
    list is sorted by time at the end.  Addresses: this host is 10.0.0.1 or
    2001:db8::1; peers are many.
    """

    HOST4 = bytes([10, 0, 0, 1])
    HOST6 = bytes.fromhex("20010db8000000000000000000000001")

    def __init__(self, seed: int, duration: float):
        self.random = random.Random(seed)
        self.duration = duration  # seconds of capture time
        self.events: list[tuple[float, bytes, bool]] = []
        self._port = 20000

    def peer(self, v6: bool) -> bytes:
        n = self.random.randrange(1, 1 << 20)
        if v6:
            return bytes.fromhex("20010db8ffff") + n.to_bytes(10, "big")
        return bytes([172, 16 + (n >> 16), (n >> 8) & 255, n & 255])

    def ephemeral(self) -> int:
        self._port = self._port + 1 if self._port < 60999 else 20000
        return self._port

    def start(self) -> float:
        return self.random.uniform(0, self.duration)

    def rtt(self) -> float:
        return self.random.uniform(0.0002, 0.05)

    def add(self, ts: float, frame: bytes, outgoing: bool) -> None:
        self.events.append((ts, frame, outgoing))

    # Each flow below is written from this host's side: ``out`` frames are
    # sent by it (outgoing), the rest received.

    def tcp_connection(self, v6: bool, client: bool, segments_out: int, segments_in: int,
                       close: str = "fin") -> None:
        """
        A TCP connection: handshake, C{segments_out} data segments from the
        client and C{segments_in} from the server (each acknowledged every
        second segment), then a FIN close or a reset.  About 1 in 100 data
        segments is sent twice (a retransmission).
        """
        r = self.random
        host, peer = (self.HOST6 if v6 else self.HOST4), self.peer(v6)
        cport, sport = self.ephemeral(), r.choice((443, 443, 443, 80, 22, 8080))
        caddr, saddr = (host, peer) if client else (peer, host)
        cseq, sseq = r.getrandbits(32), r.getrandbits(32)
        ts = self.start()
        rtt = self.rtt()

        def seg(from_client, flags, length):
            nonlocal ts, cseq, sseq
            if from_client:
                frame = tcp_frame(v6, not client, flags, length, caddr, saddr, cport, sport,
                                  cseq, sseq)
                cseq = (cseq + length + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF
            else:
                frame = tcp_frame(v6, client, flags, length, saddr, caddr, sport, cport,
                                  sseq, cseq)
                sseq = (sseq + length + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF
            self.add(ts, frame, from_client == client)
            ts += rtt / 2
            return frame

        seg(True, "S", 0)
        seg(False, "SA", 0)
        seg(True, "A", 0)
        for from_client, count in ((True, segments_out), (False, segments_in)):
            for i in range(count):
                length = MSS if i < count - 1 else r.randrange(1, MSS)
                frame = seg(from_client, "PA", length)
                if r.random() < 0.01:
                    self.add(ts, frame, from_client == client)
                if i % 2:
                    seg(not from_client, "A", 0)
            seg(not from_client, "A", 0)
        if close == "rst":
            seg(True, "R", 0)
            return
        seg(True, "FA", 0)
        seg(False, "FA", 0)
        seg(True, "A", 0)

    def dns_transaction(self, v6: bool, qname: str) -> None:
        """
        A query from this host to its resolver and the response: usually
        answers, sometimes NXDOMAIN, and now and then none at all.
        """
        r = self.random
        host = self.HOST6 if v6 else self.HOST4
        resolver = bytes.fromhex("20010db8000000000000000000000035") if v6 else bytes([10, 0, 0, 53])
        sport, ident = self.ephemeral(), r.getrandbits(16)
        ts = self.start()
        self.add(ts, dns_frame(v6, False, qname, 0, 0, host, resolver, sport, 53, ident), True)
        if r.random() < 0.03:
            return  # lost
        rcode, answers = (3, 0) if r.random() < 0.1 else (0, r.choice((1, 1, 2, 4)))
        self.add(ts + self.rtt(), dns_frame(v6, True, qname, rcode, answers, resolver, host,
                                            53, sport, ident), False)

    def udp_flow(self, v6: bool, packets: int) -> None:
        """
        A QUIC- or NTP-like UDP exchange with a peer.
        """
        r = self.random
        host, peer = (self.HOST6 if v6 else self.HOST4), self.peer(v6)
        sport, dport = self.ephemeral(), r.choice((443, 443, 123, 4500))
        ts = self.start()
        for i in range(packets):
            out = i % 3 != 1
            length = r.choice((48, 120, 1200, 1350)) if out else 1200
            if out:
                self.add(ts, udp_frame(v6, False, length, host, peer, sport, dport), True)
            else:
                self.add(ts, udp_frame(v6, True, length, peer, host, dport, sport), False)
            ts += self.rtt() / 4

    def ping(self, v6: bool, count: int) -> None:
        host, peer = (self.HOST6 if v6 else self.HOST4), self.peer(v6)
        ts = self.start()
        for _ in range(count):
            self.add(ts, icmp_frame(v6, False, host, peer), True)
            self.add(ts + self.rtt(), icmp_frame(v6, True, peer, host), False)
            ts += 1.0 / 8

    def arp(self) -> None:
        host = self.random.randrange(2, 512)
        ts = self.start()
        self.add(ts, arp_frame(False, host), True)
        self.add(ts + 0.0001, arp_frame(True, host), False)


def build_mix(frames: int, pps: float, seed: int = 3) -> list[tuple[bytes, float, bool]]:
    """
    The frame mix, about C{frames} frames spread at C{pps} over capture time.

    :returns: ``(frame, ts, outgoing)`` in time order, ts in seconds.
    """
    mix = Mix(seed, duration=frames / pps)
    r = mix.random
    names = [f"host{i}.example{i % 97}.com" for i in range(3000)]
    weights = [1.0 / (i + 1) for i in range(len(names))]  # a few popular names
    while len(mix.events) < frames:
        v6 = r.random() < 0.2
        kind = r.random()
        if kind < 0.33:  # short request/response connections (web, API)
            mix.tcp_connection(v6, r.random() < 0.7, r.choice((1, 1, 2)),
                               r.choice((1, 2, 4, 8)), "rst" if r.random() < 0.05 else "fin")
        elif kind < 0.345:  # long transfers, either way
            big = r.randrange(50, 400)
            out = r.random() < 0.3
            mix.tcp_connection(v6, True, big if out else 2, 2 if out else big)
        elif kind < 0.72:
            mix.dns_transaction(v6, r.choices(names, weights)[0])
        elif kind < 0.93:
            mix.udp_flow(v6, r.randrange(2, 30))
        elif kind < 0.98:
            mix.ping(v6, r.randrange(1, 5))
        else:
            mix.arp()
    mix.events.sort(key=lambda event: event[0])
    t0 = 1_700_000_000.0
    return [(frame, t0 + ts, out) for ts, frame, out in mix.events[:frames]]


def describe(frames) -> str:
    """
    A one-line census of the mix, by the header parser's reading.
    """
    counts: dict[str, int] = {}
    for frame, ts, out in frames:
        p = decode(frame, ts, 0, out)
        if p is None:
            kind = "malformed"
        elif not p.ip_version:
            kind = "arp" if p.ethertype == 0x0806 else "other"
        elif p.proto == 6:
            kind = "tcp"
        elif p.proto == 17:
            kind = "dns" if 53 in (p.sport, p.dport) else "udp"
        else:
            kind = "icmp"
        counts[kind] = counts.get(kind, 0) + 1
    v6 = sum(1 for f, _, _ in frames if f[12:14] == b"\x86\xdd")
    parts = [f"{k} {100 * n / len(frames):.1f}%" for k, n in sorted(counts.items())]
    return f"{len(frames)} frames: " + ", ".join(parts) + f"; IPv6 {100 * v6 / len(frames):.1f}%"


# -- timing ------------------------------------------------------------------


def _analysers(names, config):
    kinds = {"ip": IpAnalyser, "tcp": TcpAnalyser, "dns": DnsAnalyser,
             "detect": DetectAnalyser}
    return [kinds[name](config) for name in names]


#: Clocks to time a run with: elapsed time, or this process's CPU time (steadier
#: when other programs share the cores).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run(frames, analysers, clock=time.perf_counter) -> float:
    """
    Decode every frame and give it to every analyser, as the agent's
    monitor does (without its bookkeeping).

    :param clock: one of L{CLOCKS}.
    :returns: seconds taken.
    """
    observers = [a.observe for a in analysers]
    start = clock()
    if not observers:
        for frame, ts, out in frames:
            decode(frame, ts, 0, out)
    elif len(observers) == 1:
        (observe,) = observers
        for frame, ts, out in frames:
            packet = decode(frame, ts, 0, out)
            if packet is not None:
                observe(packet)
    else:
        for frame, ts, out in frames:
            packet = decode(frame, ts, 0, out)
            if packet is not None:
                for observe in observers:
                    observe(packet)
    return clock() - start


def best(frames, names, config, repeat, clock) -> tuple[float, list]:
    """
    Best of C{repeat} runs, fresh analysers each time.

    :returns: microseconds per packet, and the last run's analysers.
    """
    times = []
    for _ in range(repeat):
        analysers = _analysers(names, config)
        gc.collect()
        times.append(run(frames, analysers, clock))
    return min(times) * 1e6 / len(frames), analysers


STAGES = {
    "decode": (),
    "decode+ip": ("ip",),
    "decode+tcp": ("tcp",),
    "decode+dns": ("dns",),
    "decode+detect": ("detect",),
    "decode+all": ("ip", "tcp", "dns", "detect"),
}


def timing(frames, repeat: int, clock) -> None:
    config = AnalyserConfig()
    print(f"{'stage':<12} {'µs/packet':>10} {'over decode':>12} {'packets/s':>11}")
    decode_us = None
    last = []
    for stage, names in STAGES.items():
        us, last = best(frames, names, config, repeat, clock)
        if decode_us is None:
            decode_us = us
        extra = "" if not names else f"{us - decode_us:12.3f}"
        print(f"{stage:<12} {us:10.3f} {extra:>12} {1e6 / us:11,.0f}")
    now = frames[-1][1] + 1.0
    for analyser in last:
        start = time.perf_counter()
        analyser.snapshot(now, 1.0)
        print(f"snapshot {analyser.name}: {(time.perf_counter() - start) * 1e3:.2f} ms")


def profile(frames, stage: str) -> None:
    analysers = _analysers(STAGES[stage], AnalyserConfig())
    profiler = cProfile.Profile()
    profiler.runcall(run, frames, analysers)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


# -- memory ------------------------------------------------------------------


def _memory_status(field: str) -> int:
    """
    A size from ``/proc/self/status`` (proc(5)), in octets: ``VmRSS`` the
    resident set now, ``VmHWM`` its peak.  (``ru_maxrss`` would not do: a
    child started by fork and exec inherits the parent's peak.)
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no {field} in /proc/self/status")


def distinct_flows(flows: int):
    """
    Frames of C{flows} distinct flows, made on the fly (nothing kept): each a
    TCP SYN and SYN-ACK between a new client address and port and one of
    4096 servers (a quarter over IPv6), and for every eighth flow a DNS
    query for a new name that gets no response.

    :returns: an iterator of ``(frame, ts, outgoing)``.
    """
    syn4 = bytearray(_tcp_shape(False, False, "S", 0))
    synack4 = bytearray(_tcp_shape(False, True, "SA", 0))
    syn6 = bytearray(_tcp_shape(True, False, "S", 0))
    synack6 = bytearray(_tcp_shape(True, True, "SA", 0))
    t0 = 1_700_000_000.0
    for i in range(flows):
        ts = t0 + i * 1e-5  # 100,000 flows per second
        v6 = i % 4 == 3
        client_n, sport = divmod(i, 50000)
        sport += 10000
        server_n = i % 4096
        if v6:
            client = bytes.fromhex("20010db8aaaa") + client_n.to_bytes(10, "big")
            server = bytes.fromhex("20010db8bbbb") + server_n.to_bytes(10, "big")
            syn, synack = syn6, synack6
        else:
            client = bytes([10, 128 + (client_n >> 16), (client_n >> 8) & 255, client_n & 255])
            server = bytes([172, 16, server_n >> 8, server_n & 255])
            syn, synack = syn4, synack4
        l4 = _addresses(syn, v6, client, server)
        _PORTS_SEQ_ACK.pack_into(syn, l4, sport, 443, i, 0)
        yield bytes(syn), ts, True
        _addresses(synack, v6, server, client)
        _PORTS_SEQ_ACK.pack_into(synack, l4, 443, sport, 7 * i, i + 1)
        yield bytes(synack), ts + 0.0001, False
        if i % 8 == 0:
            yield _unique_query(v6, client, server, sport, i), ts, True


def _unique_query(v6: bool, client: bytes, server: bytes, sport: int, i: int) -> bytes:
    """
    A DNS query (A, IN) for ``q<10 hex digits of i>.com``, a name unique to
    C{i}.
    """
    frame = bytearray(_dns_shape(v6, False, "q0000000000.com", 0, 0))
    l4 = _addresses(frame, v6, client, server)
    _PORTS.pack_into(frame, l4, sport, 53)
    _DNS_ID.pack_into(frame, l4 + 8, i & 0xFFFF)
    name = l4 + 8 + 12 + 2  # UDP header, DNS header, label length, "q"
    frame[name:name + 10] = b"%010x" % i
    return bytes(frame)


def deep_size(root) -> int:
    """
    Octets held by C{root} and everything it refers to (C{sys.getsizeof}
    over C{gc.get_referents}, each object once; classes, modules and
    functions are not counted).
    """
    skip = (type, ModuleType, FunctionType, BuiltinFunctionType)
    seen = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def memory_child(flows: int) -> None:
    """
    In a child process: feed C{flows} distinct flows to fresh analysers and
    print the memory they hold, one ``name value`` per line.
    """
    analysers = _analysers(("ip", "tcp", "dns", "detect"), AnalyserConfig())
    observers = [a.observe for a in analysers]
    for frame, ts, out in distinct_flows(1):  # scapy builds its shapes here
        pass
    gc.collect()
    rss_before = _memory_status("VmRSS")
    ts = 0.0
    for frame, ts, out in distinct_flows(flows):
        packet = decode(frame, ts, 0, out)
        if packet is not None:
            for observe in observers:
                observe(packet)
    gc.collect()
    print(f"rss {_memory_status('VmRSS')}")
    print(f"rss_before {rss_before}")
    print(f"maxrss {_memory_status('VmHWM')}")
    print(f"analysers {deep_size(analysers)}")
    print("each " + " ".join(f"{a.name}={deep_size(a)}" for a in analysers))
    ip, tcp, dns = analysers
    print(f"tables hosts={len(ip._hosts)} conversations={len(ip._conversations)} "
          f"tcp={len(tcp._table)} dns_pending={len(dns._pending)} dns_names={len(dns._names)}")


def memory(flows: int) -> None:
    """
    Run L{memory_child} in a fresh interpreter and print what it measured.
    """
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", "--flows", str(flows)],
        check=True, capture_output=True, text=True,
    ).stdout
    result = dict(line.split(" ", 1) for line in out.splitlines())
    mib = 1 << 20
    print(f"after {flows:,} distinct flows ({result['tables']}):")
    each = ", ".join(f"{name} {int(size) / mib:.1f}"
                     for name, size in (pair.split("=") for pair in result["each"].split()))
    print(f"  analysers' Python objects: {int(result['analysers']) / mib:.1f} MiB ({each})")
    print(f"  process RSS: {int(result['rss']) / mib:.1f} MiB "
          f"(before the flows {int(result['rss_before']) / mib:.1f} MiB, "
          f"peak {int(result['maxrss']) / mib:.1f} MiB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--pps", type=float, default=200_000.0,
                        help="capture-time packets per second of the mix")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: time.perf_counter; cpu: time.process_time")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--profile", choices=sorted(STAGES),
                        help="print a cProfile of one stage instead of timing")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.flows)
        return
    start = time.perf_counter()
    frames = build_mix(args.frames, args.pps)
    print(f"built in {time.perf_counter() - start:.1f} s; {describe(frames)}")
    if args.profile:
        profile(frames, args.profile)
        return
    timing(frames, args.repeat, CLOCKS[args.clock])
    if not args.no_memory:
        memory(args.flows)


if __name__ == "__main__":
    main()
