"""
A DNS amplification attack as the victim sees it: large DNS responses
(``ANY`` (255) answered with TXT records, about 1,300 octets each) to queries the
victim never sent, from open resolvers whose address the attacker spoofed
the victim's into.  Sent from the attacker's namespace with scapy, each
frame addressed from the attacker's MAC to the victim's.

Prints one JSON line when done: ``{"first": T, "sent": N}`` (T: when the
first frame was handed to the kernel, seconds since the epoch).

Usage: python -m tests.support.dnsamp --iface eth0 --src-mac M --dst-mac M
       --dst ADDR --reflector ADDR [--reflector ADDR ...] [--rate PPS]
       [--seconds S]
"""

import argparse
import json
import random
import time

from scapy.config import conf
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether


def responses(args, count: int = 64) -> list[bytes]:
    """
    C{count} distinct response frames, cycling over the reflectors.
    """
    frames = []
    for i in range(count):
        qname = f"amp{random.randrange(1000)}.example"
        answers = [DNSRR(rrname=qname, type="TXT", ttl=300, rdata="v=spf1 " + "x" * 240)
                   for _ in range(5)]
        dns = DNS(id=random.randrange(65536), qr=1, rd=1, ra=1,
                  qd=DNSQR(qname=qname, qtype=255), an=answers)
        frame = (Ether(src=args.src_mac, dst=args.dst_mac)
                 / IP(src=args.reflector[i % len(args.reflector)], dst=args.dst)
                 / UDP(sport=53, dport=random.randrange(20000, 60000)) / dns)
        frames.append(bytes(frame))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iface", required=True)
    parser.add_argument("--src-mac", required=True)
    parser.add_argument("--dst-mac", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--reflector", action="append", required=True)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    frames = responses(args)
    sock = conf.L2socket(iface=args.iface)
    start = time.monotonic()
    first = time.time()
    sent = 0
    try:
        while time.monotonic() - start < args.seconds:
            sock.send(frames[sent % len(frames)])
            sent += 1
            ahead = start + sent / args.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    finally:
        sock.close()
    print(json.dumps({"first": first, "sent": sent}), flush=True)


if __name__ == "__main__":
    main()
