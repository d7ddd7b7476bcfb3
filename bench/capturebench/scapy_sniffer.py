"""
The scapy contender: scapy's sniffer (``AsyncSniffer``, the loop ``sniff()``
runs, so that SIGINT can be waited for instead of raised into it) with
``store=0`` and ``prn=observe``: a
callback doing the work of Loopy's analysers in scapy terms (per-host and
per-conversation octets, TCP connections by 5-tuple and their states, DNS
queries matched to responses, ICMP and ARP counts).

It reads with scapy's ``L2Socket``, which drops the outgoing copy of each
loopback frame before dissection, as libpcap and Loopy do (scapy's default
``L2ListenSocket`` would dissect every ``lo`` frame twice), and gives it the
agent's 8 MiB receive buffer and the kernel filter given as its argument.  Prints ``ready`` once listening; on SIGINT
prints one JSON line: frames seen, per-protocol counts and the kernel's drop
count for the socket (``PACKET_STATISTICS``, packet(7)).

Run with the virtualenv's Python, as root.
"""

import json
import signal
import socket
import struct
import sys
from collections import Counter, defaultdict

from scapy.arch.linux import L2Socket
from scapy.layers.dns import DNS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP
from scapy.sendrecv import AsyncSniffer

SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33

counts: Counter = Counter()
hosts: defaultdict = defaultdict(lambda: [0, 0])  # addr -> [octets sent, received]
conversations: defaultdict = defaultdict(int)  # (a, b) -> octets
connections: dict = {}  # (src, sport, dst, dport) of the SYN -> [state, packets, payload octets]
pending: dict = {}  # (client, sport, id) -> query time
answered: list = []  # (qname, rcode, latency in s), newest last


def observe(pkt) -> None:
    counts["frames"] += 1
    if IP in pkt:
        ip = pkt[IP]
        size = ip.len
        hosts[ip.src][0] += size
        hosts[ip.dst][1] += size
        conversations[(ip.src, ip.dst) if ip.src < ip.dst else (ip.dst, ip.src)] += size
        if TCP in pkt:
            counts["tcp"] += 1
            tcp = pkt[TCP]
            flags = int(tcp.flags)
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            entry = connections.get(key) or connections.get(
                (ip.dst, tcp.dport, ip.src, tcp.sport))
            if entry is None:
                entry = connections[key] = ["syn_sent" if flags & 0x12 == 0x02 else "established", 0, 0]
            entry[1] += 1
            entry[2] += len(tcp.payload)
            if flags & 0x04:
                entry[0] = "reset"
            elif flags & 0x01:
                entry[0] = "closed" if entry[0] == "fin_wait" else "fin_wait"
            elif flags & 0x12 == 0x12:
                entry[0] = "syn_received"
            elif entry[0] == "syn_received" and flags & 0x10:
                entry[0] = "established"
        elif UDP in pkt:
            counts["udp"] += 1
            if DNS in pkt:
                counts["dns"] += 1
                dns = pkt[DNS]
                udp = pkt[UDP]
                if dns.qr == 0:
                    pending[(ip.src, udp.sport, dns.id)] = pkt.time
                else:
                    asked = pending.pop((ip.dst, udp.dport, dns.id), None)
                    qname = dns.qd[0].qname if dns.qd else b""
                    answered.append((qname, dns.rcode,
                                     None if asked is None else pkt.time - asked))
                    del answered[:-200]
        elif ICMP in pkt:
            counts["icmp"] += 1
    elif ARP in pkt:
        counts["arp"] += 1


def main() -> None:
    sock = L2Socket(iface="lo", filter=sys.argv[1] if len(sys.argv) > 1 else None)
    sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 * 1024 * 1024)
    # SIGINT is taken with sigwait, never raised into scapy's loop (where a
    # KeyboardInterrupt can land in its clean-up and lose the result); the
    # sniffer thread inherits the blocked mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sniffer = AsyncSniffer(opened_socket=sock, store=0, prn=observe,
                           started_callback=lambda: print("ready", flush=True))
    sniffer.start()
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    _packets, drops = struct.unpack(
        "II", sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    try:
        sniffer.stop()
    except Exception:  # a sniffer that already ended: its counts stand
        pass
    result = dict(counts, kernel_drops=drops, connections=len(connections),
                  hosts=len(hosts), dns_answered=len(answered))
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
