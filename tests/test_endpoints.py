"""
Tests for L{loopy.endpoints}: hub addresses as users write them.
"""

from __future__ import annotations

from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from loopy.endpoints import hub_endpoint, listen_port, tcp_target
from loopy.errors import ConfigError


class HubEndpointTests(SynchronousTestCase):
    def assertConnectsTo(self, description, host, port):
        """
        Twisted's parser reads C{description} as a TCP connection to
        C{host}, C{port}, and so does L{tcp_target}.
        """
        reactor = MemoryReactor()
        clientFromString(reactor, description).connect(Factory())
        self.assertEqual(reactor.tcpClients[0][:2], (host, port))
        self.assertEqual(tcp_target(description), (host, port))

    def test_host(self):
        self.assertEqual(hub_endpoint("hub.example"), "tcp:host=hub.example:port=7420")
        self.assertConnectsTo("tcp:host=hub.example:port=7420", "hub.example", 7420)

    def test_host_port(self):
        self.assertEqual(hub_endpoint("10.0.0.9:7500"), "tcp:host=10.0.0.9:port=7500")

    def test_default_port(self):
        self.assertEqual(hub_endpoint("hub", default_port=9), "tcp:host=hub:port=9")
        self.assertEqual(hub_endpoint("hub:"), "tcp:host=hub:port=7420")

    def test_whitespace(self):
        self.assertEqual(hub_endpoint("  hub:1 \n"), "tcp:host=hub:port=1")

    def test_ipv6_bracketed(self):
        description = hub_endpoint("[2001:db8::9]:7500")
        self.assertEqual(description, r"tcp:host=2001\:db8\:\:9:port=7500")
        self.assertConnectsTo(description, "2001:db8::9", 7500)

    def test_ipv6_bracketed_no_port(self):
        self.assertEqual(hub_endpoint("[::1]"), r"tcp:host=\:\:1:port=7420")

    def test_ipv6_bare(self):
        description = hub_endpoint("fe80::1%eth0")
        self.assertEqual(description, r"tcp:host=fe80\:\:1%eth0:port=7420")
        self.assertConnectsTo(description, "fe80::1%eth0", 7420)

    def test_escapes(self):
        """
        Characters special in endpoint strings are escaped.
        """
        description = hub_endpoint("we=ird\\")
        self.assertEqual(description, r"tcp:host=we\=ird\\:port=7420")
        self.assertConnectsTo(description, "we=ird\\", 7420)

    def test_endpoint_strings_unchanged(self):
        for text in ["tcp:hub:7420", "tcp:host=hub:port=1", "unix:/run/loopy.sock",
                     "ssl:hub:7420", "tls:hub:7420"]:
            self.assertEqual(hub_endpoint(text), text)

    def test_bad_port(self):
        for text, port in [("hub:0", "0"), ("hub:65536", "65536"), ("hub:http", "http"),
                           ("[::1]:-1", "-1"), ("hub: 80x", " 80x")]:
            error = self.assertRaises(ConfigError, hub_endpoint, text)
            self.assertEqual(str(error), f"bad port in hub address {text!r}: use 1-65535")

    def test_highest_port(self):
        self.assertEqual(hub_endpoint("hub:65535"), "tcp:host=hub:port=65535")

    def test_empty(self):
        for text in ["", "   "]:
            error = self.assertRaises(ConfigError, hub_endpoint, text)
            self.assertEqual(str(error), "empty hub address")

    def test_no_host(self):
        for text in [":7420", "[]:7420", "[]"]:
            error = self.assertRaises(ConfigError, hub_endpoint, text)
            self.assertEqual(str(error), f"bad hub address {text!r}: no host")

    def test_bad_brackets(self):
        error = self.assertRaises(ConfigError, hub_endpoint, "[::1]7420")
        self.assertEqual(
            str(error), "bad hub address '[::1]7420': expected [IPV6]:PORT"
        )


class TcpTargetTests(SynchronousTestCase):
    def test_positional(self):
        self.assertEqual(tcp_target("tcp:10.0.0.9:7420"), ("10.0.0.9", 7420))
        self.assertEqual(tcp_target("ssl:hub:443:privateKey=x"), ("hub", 443))

    def test_named(self):
        self.assertEqual(tcp_target("tcp:port=7:host=hub:timeout=3"), ("hub", 7))
        self.assertEqual(tcp_target(r"tls:host=\:\:1:port=9"), ("::1", 9))

    def test_not_tcp(self):
        self.assertIsNone(tcp_target("unix:/run/loopy.sock"))
        self.assertIsNone(tcp_target("hub"))

    def test_incomplete(self):
        self.assertIsNone(tcp_target("tcp:hub"))
        self.assertIsNone(tcp_target("tcp:port=7"))
        self.assertIsNone(tcp_target("tcp:hub:http"))


class ListenPortTests(SynchronousTestCase):
    def test_port(self):
        self.assertEqual(listen_port("tcp:7420:interface=127.0.0.1"), 7420)
        self.assertEqual(listen_port("tcp:interface=\\:\\:1:port=7421"), 7421)
        self.assertEqual(listen_port("tcp6:0"), 0)

    def test_none(self):
        self.assertIsNone(listen_port("unix:/run/loopy.sock"))
        self.assertIsNone(listen_port("tcp:interface=127.0.0.1"))
        self.assertIsNone(listen_port("tcp:seven"))
