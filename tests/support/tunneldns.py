"""
A DNS tunnel's server end, for the attack tests (twisted.names), on UDP and
TCP port 53 of one address: every name under the tunnel domain is answered
as a tunnel server would (TXT: random base32 "data"; A: 192.0.2.53), every
other name NXDOMAIN, as a domain-generation algorithm's names get.

Usage: python -m tests.support.tunneldns ADDRESS [DOMAIN]   (DOMAIN: t.example)
"""

import base64
import os
import sys

from twisted.internet import defer, reactor
from twisted.names import dns, error, server


class TunnelResolver:
    def __init__(self, domain: str):
        self.suffix = "." + domain.lower().strip(".")

    def query(self, query, timeout=None):
        name = query.name.name.decode("ascii", "replace").lower()
        if not name.endswith(self.suffix):
            return defer.fail(error.DomainError(name))
        if query.type == dns.TXT:
            data = base64.b32encode(os.urandom(120)).decode().lower().rstrip("=")
            payload = dns.Record_TXT(data[:96].encode(), data[96:].encode(), ttl=0)
        elif query.type == dns.A:
            payload = dns.Record_A("192.0.2.53", ttl=0)
        else:
            return defer.succeed(([], [], []))
        answer = dns.RRHeader(name=name, type=query.type, payload=payload, ttl=0, auth=True)
        return defer.succeed(([answer], [], []))


if __name__ == "__main__":
    address = sys.argv[1]
    factory = server.DNSServerFactory(clients=[TunnelResolver(
        sys.argv[2] if len(sys.argv) > 2 else "t.example")])
    reactor.listenUDP(53, dns.DNSDatagramProtocol(factory), interface=address)
    reactor.listenTCP(53, factory, interface=address)
    print("ready", flush=True)
    reactor.run()
