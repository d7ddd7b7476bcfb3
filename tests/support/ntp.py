"""
NTP-like UDP for the benign traffic of the attack tests: a server that
answers each 48-octet client packet (mode 3) with a server packet (mode 4),
and a client that asks a few times from an ephemeral port, as chrony or
ntpdate do (RFC 5905 section 7.3: only the header, no real time keeping).

Usage: python -m tests.support.ntp serve ADDRESS
       python -m tests.support.ntp ask ADDRESS [COUNT]
"""

import socket
import sys
import time

#: LI 0, version 4, mode 3 (client) / mode 4 (server), then 47 octets.
CLIENT = bytes([0x23]) + bytes(47)
SERVER = bytes([0x24, 2]) + bytes(46)


def serve(address: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 123))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        if len(data) >= 48 and data[0] & 7 == 3:
            sock.sendto(SERVER, peer)


def ask(address: str, count: int) -> int:
    """
    Send C{count} queries, 0.1 s apart; return how many were answered.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    answered = 0
    for i in range(count):
        sock.sendto(CLIENT, (address, 123))
        try:
            answered += len(sock.recv(512)) >= 48
        except socket.timeout:
            pass
        if i + 1 < count:
            time.sleep(0.1)
    return answered


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        sys.exit(0 if ask(sys.argv[2], count) == count else 1)
