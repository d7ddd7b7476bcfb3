"""
A small authoritative DNS server for end-to-end tests (twisted.names), on
UDP and TCP port 53 of one loopback address.

Zone ``loopy.test``: ``www``/``tcp`` A 192.0.2.10, ``mail`` AAAA 2001:db8::25,
``text`` TXT; ``fail.loopy.test`` answers SERVFAIL; any other name NXDOMAIN.

Usage: python -m tests.support.dnsserver ADDRESS [PORT]
"""

import sys

from twisted.internet import defer, reactor
from twisted.names import dns, error, server  # noqa: F401


class Resolver:
    records = {
        ("www.loopy.test", dns.A): dns.Record_A("192.0.2.10", ttl=60),
        ("tcp.loopy.test", dns.A): dns.Record_A("192.0.2.11", ttl=60),
        ("mail.loopy.test", dns.AAAA): dns.Record_AAAA("2001:db8::25", ttl=60),
        ("text.loopy.test", dns.TXT): dns.Record_TXT(b"loopy", ttl=60),
    }

    def query(self, query, timeout=None):
        name = query.name.name.decode("ascii").lower()
        if name == "fail.loopy.test":
            # twisted.names answers SERVFAIL for failures other than DomainError.
            return defer.fail(RuntimeError("SERVFAIL on purpose"))
        record = self.records.get((name, query.type))
        if record is None:
            return defer.fail(error.DomainError())
        answer = dns.RRHeader(name=name, type=query.type, payload=record, ttl=60, auth=True)
        return defer.succeed(([answer], [], []))


def main(address, port=53):
    factory = server.DNSServerFactory()
    # Not through authorities=: the ResolverChain there turns every failure
    # into a DomainError (NXDOMAIN), and fail.loopy.test must be SERVFAIL.
    factory.resolver = Resolver()
    reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface=address)
    reactor.listenTCP(port, factory, interface=address)
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 53)
